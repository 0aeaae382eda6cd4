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

__all__ = ["cores", "single_threaded_blas"]


def cores():
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


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


single_threaded_blas = _SingleThreadedBLAS()
