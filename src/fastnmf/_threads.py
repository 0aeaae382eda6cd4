"""Threads: how many a call may use, and BLAS held to one thread while the kernels run.

The kernels share their large products and sweeps among OpenMP threads themselves, each
thread calling single-threaded BLAS on its own block (NMF-MATH.md, "Many matrices at
once"). BLAS libraries' own worker threads busy-wait between calls; beside our threads, or
beside another library's spinning workers (numpy and scipy wheels each bundle an
OpenBLAS), a multi-threaded BLAS call then stalls on a descheduled worker and runs many
times slower. So while a kernel runs, every BLAS library is held to one thread.
"""

import os
import threading

from threadpoolctl import ThreadpoolController

__all__ = ["cores", "forked", "single_threaded_blas"]

# GNU OpenMP is not fork-safe: a child forked after the parent ran a parallel region hangs
# in its first parallel region of more than one thread. A forked child therefore runs the
# kernels on one thread (the results are the same; multiprocessing's "spawn" and
# "forkserver" children start fresh and keep every core).
_forked = False


def _after_fork_in_child():
    global _forked
    _forked = True
    single_threaded_blas._reset()


def cores():
    """The cores this process may run on: 1 in a child forked from a fastnmf process."""
    if _forked:
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def forked():
    """True in a process forked from one that imported fastnmf."""
    return _forked


class _SingleThreadedBLAS:
    """Context manager: all BLAS libraries at one thread inside, restored on the way out.

    Re-entrant and safe across Python threads (a count of holders: the first entrant saves
    and limits, the last one out restores), unlike nested ``threadpool_limits``, which can
    restore each other's settings in the wrong order. The library list is read once, on
    first use (the BLAS that matters, scipy's, is loaded with the kernels).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._holders = 0
        self._libs = None
        self._saved = ()

    def __enter__(self):
        with self._lock:
            if self._holders == 0:
                if self._libs is None:
                    self._libs = [lib for lib in ThreadpoolController().lib_controllers
                                  if lib.user_api == "blas"]
                self._saved = tuple(lib.num_threads for lib in self._libs)
                for lib in self._libs:
                    lib.set_num_threads(1)
            self._holders += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                for lib, count in zip(self._libs, self._saved):
                    lib.set_num_threads(count)
        return False

    def _reset(self):
        """In a forked child: no holders (their threads did not come along), a new lock."""
        self._lock = threading.Lock()
        self._holders = 0


single_threaded_blas = _SingleThreadedBLAS()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
