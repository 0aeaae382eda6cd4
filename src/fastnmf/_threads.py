"""Threads: how many a call may use, how OpenMP's idle threads wait, and BLAS held to one
thread while the kernels run.

How many (``default_threads``): the rule of scikit-learn's own OpenMP code. OpenMP's
``omp_get_max_threads()`` in the calling thread -- which carries ``OMP_NUM_THREADS``
(read when the runtime loads: set by loky for its workers and by Dask's nanny for its
worker processes) and ``threadpoolctl.threadpool_limits(..., user_api="openmp")`` -- taken
as it is when ``OMP_NUM_THREADS`` is set, else capped by the CPUs this process may use
(its affinity mask and its cgroup's CPU quota, as a container sets it).

How they wait (``loading_openmp``): GNU OpenMP's threads spin for up to 300000 rounds
(milliseconds) at every barrier and after every parallel region before they sleep. With
another busy process on the machine, a spinning thread holds a core its partner or that
process needs, and a call on two threads ran 18-27 times slower than on one. So the
runtime is loaded with ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep at once, wake
within microseconds) -- unless the user set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``
themselves -- and the variable is removed again right after the load, so the environment
that the user and child processes see is unchanged. The price, on an idle machine: each
barrier wakes its partner through the kernel (600x400, k=20, 50 iterations on 2 threads:
25 ms against 17.5 ms spinning, the time of one thread); a short spin (GOMP_SPINCOUNT
20000) lost the shared case again (TF-IDF 1.9x the one-thread time beside a busy process).

BLAS at one thread (``single_threaded_blas``): the kernels share their large products
and sweeps among OpenMP threads themselves, each thread calling single-threaded BLAS on
its own block (docs/algorithms.md, "Threads"). BLAS libraries' own worker threads
busy-wait between calls; beside our threads, or beside another library's spinning
workers (numpy and scipy wheels each bundle an OpenBLAS), a multi-threaded BLAS call then
stalls on a descheduled worker and runs many times slower. So while a kernel runs, every
BLAS library is held to one thread.
"""

import contextlib
import ctypes
import functools
import math
import os
import sys
import threading

from threadpoolctl import ThreadpoolController

__all__ = ["available_cpus", "blas_kernels", "cpu_quota", "default_threads",
           "exiting_after_interrupt", "forked",
           "haswell_kernels", "loading_openmp", "single_threaded_blas", "skylakex_kernels"]

# GNU OpenMP is not fork-safe: a child forked after the parent ran a parallel region of
# more than one thread hangs in its first such region (the child has none of the team's
# threads, which the runtime still counts on). The runtime is shared with every library
# in the process that loads the same libgomp, so whether one ran before the fork cannot be
# known here: a forked child runs the kernels on one thread (the results are the same).
# multiprocessing's "spawn" children, and "forkserver" ones that do not preload fastnmf,
# start fresh and keep every core.
_forked = False


def _after_fork_in_child():
    global _forked
    _forked = True
    single_threaded_blas._reset()


def forked():
    """True in a process forked from one that imported fastnmf (then every call here runs
    on one thread)."""
    return _forked


def exiting_after_interrupt():
    """Whether the interpreter is exiting because a KeyboardInterrupt ended the main thread.
    Python delivers signals to the main thread alone, and then waits for every other
    (non-daemon) thread before it exits: a call running in one of those would hold the
    process for as long as it runs. So a compiled loop outside the main thread asks this
    as often as the main thread's loop checks for signals, and stops with a
    KeyboardInterrupt. (CPython sets ``threading._SHUTTING_DOWN`` once the main thread has
    ended, before it calls the functions registered to run then, a ThreadPoolExecutor's
    join among them, and joins the threads; the main thread's uncaught exception is in
    ``sys.last_exc``, ``sys.last_value`` before Python 3.12.)"""
    if not getattr(threading, "_SHUTTING_DOWN", False):
        return False
    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    return isinstance(last, KeyboardInterrupt)


# -- how many threads ----------------------------------------------------------------


def _affinity_cpus():
    if hasattr(os, "sched_getaffinity"):
        try:
            return len(os.sched_getaffinity(0))
        except OSError:  # pragma: no cover - platform dependent
            pass
    return os.cpu_count() or 1


def _cgroup_dirs(root, proc_cgroup):
    """The directories of this process's cgroup and its ancestors that may hold a CPU
    bandwidth limit: cgroup v2 (``0::/path``) and v1's cpu controller; also the mount
    point itself, which is the process's own cgroup inside a container."""
    try:
        with open(proc_cgroup) as fh:
            lines = fh.read().splitlines()
    except OSError:
        lines = []
    dirs = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            mounts = [root]
        elif "cpu" in controllers.split(","):
            mounts = [os.path.join(root, name) for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu")]
        else:
            continue
        for mount in mounts:
            parts = [p for p in path.split("/") if p]
            for depth in range(len(parts), -1, -1):
                dirs.append(os.path.join(mount, *parts[:depth]))
    dirs += [root, os.path.join(root, "cpu"), os.path.join(root, "cpu,cpuacct")]
    return list(dict.fromkeys(dirs))


def _read_quota(directory):
    """quota / period of one cgroup directory (v2 cpu.max or v1 cfs files), or None."""
    try:
        with open(os.path.join(directory, "cpu.max")) as fh:
            fields = fh.read().split()
        if len(fields) == 2 and fields[0] != "max":
            return int(fields[0]) / int(fields[1])
        return None
    except (OSError, ValueError, ZeroDivisionError):
        pass
    try:
        with open(os.path.join(directory, "cpu.cfs_quota_us")) as fh:
            quota = int(fh.read())
        with open(os.path.join(directory, "cpu.cfs_period_us")) as fh:
            period = int(fh.read())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


@functools.lru_cache(maxsize=8)
def cpu_quota(root="/sys/fs/cgroup", proc_cgroup="/proc/self/cgroup"):
    """The CPUs this process's cgroup CPU bandwidth quota allows (ceil(quota / period),
    the tightest along the hierarchy), or None when there is no quota."""
    quotas = [q for q in map(_read_quota, _cgroup_dirs(root, proc_cgroup)) if q is not None]
    return max(1, math.ceil(min(quotas))) if quotas else None


def available_cpus():
    """The CPUs this process may use: its affinity mask, capped by its CPU quota."""
    cpus = _affinity_cpus()
    quota = cpu_quota()
    return max(1, min(cpus, quota) if quota is not None else cpus)


def default_threads():
    """The threads of a call with ``n_threads=None`` (see the module's docstring): 1 in a
    forked child; OpenMP's count in this thread (``OMP_NUM_THREADS``, threadpoolctl's
    OpenMP limit) when ``OMP_NUM_THREADS`` was set as the runtime loaded, else that count
    capped by :func:`available_cpus`. (The variable as it was then, not ``os.environ``
    now: OpenMP read it then, and Dask's nanny sets it to 1 in its parent process's
    ``os.environ`` before spawning workers, where it stays.)"""
    if _forked:
        return 1
    from ._kernels._common import omp_max_threads

    count = omp_max_threads()
    if not _omp_num_threads_at_load:
        count = min(count, available_cpus())
    return max(1, count)


# -- how OpenMP's idle threads wait ------------------------------------------------------

_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
_omp_num_threads_at_load = os.environ.get("OMP_NUM_THREADS")


@contextlib.contextmanager
def loading_openmp():
    """The block in which the kernels load the OpenMP runtime (which reads its
    environment once, then): notes ``OMP_NUM_THREADS`` as the runtime sees it, and has
    waiting threads sleep -- ``OMP_WAIT_POLICY=PASSIVE`` for the block unless the user set
    a wait policy, removed again on the way out. The policy takes effect only if the
    runtime is first loaded inside the block."""
    global _omp_num_threads_at_load
    _omp_num_threads_at_load = os.environ.get("OMP_NUM_THREADS")
    if any(name in os.environ for name in _WAIT_VARIABLES):
        yield
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        yield
    finally:
        os.environ.pop("OMP_WAIT_POLICY", None)


# -- BLAS held to one thread -----------------------------------------------------------

_OPENBLAS_AFFIXES = [(p, s) for p in ("", "scipy_") for s in ("", "64_", "_64")]


def _loaded(lib):
    """ctypes' handle of the library that threadpoolctl's controller ``lib`` controls (it
    is loaded already: not loaded again), or None."""
    try:
        return ctypes.CDLL(lib.filepath, mode=getattr(os, "RTLD_NOLOAD", 0))
    except OSError:
        return None


def _openblas_functions(lib):
    """OpenBLAS's own ``openblas_get_num_threads`` and ``openblas_set_num_threads`` of the
    library ``lib`` controls (with the symbol affixes of its build), or None.

    Needed because threadpoolctl (>= 3.6) lets only the first Python thread that set an
    OpenBLAS limit set one again, while that thread lives; from any other thread its
    ``set_num_threads`` silently does nothing. With OpenBLAS's own threads (not its
    OpenMP build) the count is one process-wide variable, set from any thread alike.
    """
    dynlib = _loaded(lib)
    if dynlib is None:
        return None
    for prefix, suffix in _OPENBLAS_AFFIXES:
        get = getattr(dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
        if get is None:
            continue
        set_ = getattr(dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
        if set_ is None:
            return None
        get.argtypes, get.restype = [], ctypes.c_int
        set_.argtypes, set_.restype = [ctypes.c_int], None
        return get, set_
    return None


@functools.lru_cache(maxsize=None)
def _blas_controllers():
    """threadpoolctl's controllers of the BLAS libraries loaded, read once (the BLAS that
    matters, scipy's, is loaded with the kernels)."""
    return tuple(c for c in ThreadpoolController().lib_controllers if c.user_api == "blas")


# -- the BLAS's kernels -------------------------------------------------------------------

# OpenBLAS's core names (lower case) that run its Haswell kernels: its Haswell target and
# its Zen target (AMD Zen 1-3), whose gemm kernels are the Haswell ones.
HASWELL_KERNELS = ("haswell", "zen")
# Its core names that run its SkylakeX (AVX-512) gemm kernels, with small-matrix kernels
# that skip packing: its SkylakeX, Cooperlake and Sapphire Rapids targets (the last two
# add bfloat16 kernels only); it picks them on AMD Zen 5 too (seen on an AMD EPYC).
SKYLAKEX_KERNELS = ("skylakex", "cooperlake", "sapphirerapids")


def blas_kernels():
    """The kernel family of the BLAS that scipy's cython_blas calls (and so the kernels):
    OpenBLAS's core name in lower case (``openblas_get_corename``: "haswell", "skylakex",
    "zen", ...; ``OPENBLAS_CORETYPE`` sets it) for the OpenBLAS library with the
    32-bit-integer ``dgemm_`` (numpy's wheels bundle another, with 64-bit integers), or
    None for another BLAS."""
    for lib in _blas_controllers():
        dynlib = _loaded(lib) if lib.internal_api == "openblas" else None
        if dynlib is not None and any(hasattr(dynlib, f"{prefix}dgemm_")
                                      for prefix in ("", "scipy_")):
            name = getattr(lib, "architecture", None)
            return name.lower() if name else None
    return None


def haswell_kernels():
    """Whether the BLAS that scipy calls runs OpenBLAS's Haswell kernels (HASWELL_KERNELS),
    with which fastnmf forms a dense X's products its own way (the measurements are in
    _kernels/_products.pxi and _narrow.pxi): for 4 <= k <= 128 in registers where the CPU
    has AVX-512 (``_common.narrow_kernels``), else a float32 X's rows first
    (``_common.rows_first``)."""
    return blas_kernels() in HASWELL_KERNELS


def skylakex_kernels():
    """Whether the BLAS that scipy calls runs OpenBLAS's SkylakeX kernels
    (SKYLAKEX_KERNELS): fastnmf then forms a dense X's products in registers as with the
    Haswell kernels, except for a small X (``_common.narrow_small``)."""
    return blas_kernels() in SKYLAKEX_KERNELS


class _Lib:
    """One BLAS library: how to read and set its thread count, and whether that count is
    per thread (OpenBLAS built on OpenMP) or one for the whole process."""

    def __init__(self, controller):
        self.get = controller.get_num_threads
        self.set = controller.set_num_threads
        self.per_thread = (controller.internal_api == "openblas"
                           and getattr(controller, "threading_layer", None) == "openmp")
        if controller.internal_api == "openblas" and not self.per_thread:
            functions = _openblas_functions(controller)
            if functions is not None:
                self.get, self.set = functions


class _SingleThreadedBLAS:
    """Context manager: all BLAS libraries at one thread inside, restored on the way out,
    whichever Python thread enters.

    Re-entrant and safe across Python threads. A process-wide count (OpenBLAS's own
    threads, MKL, BLIS) is held by a count of holders: the first entrant saves and limits
    it, the last one out restores it -- unlike nested ``threadpool_limits``, which can
    restore each other's settings in the wrong order -- unless somebody else set another
    count meanwhile (theirs stands). What cannot be told apart: a ``threadpool_limits``
    block that another Python thread enters while a call holds the count saves the 1 it
    finds, so it runs on the restored count once the call ends and leaves 1 behind when
    it ends (threadpoolctl's limits of a process-wide count are the process's, not a
    thread's; two such blocks in two threads do the same to each other). A per-thread
    count (OpenBLAS on OpenMP) is saved, limited and restored by each entering thread for
    itself. The library list is read once, on first use (the BLAS that matters, scipy's,
    is loaded with the kernels).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._holders = 0
        self._libs = None
        self._saved = ()
        self._local = threading.local()

    def _libraries(self):
        if self._libs is None:
            self._libs = [_Lib(c) for c in _blas_controllers()]
        return self._libs

    def __enter__(self):
        with self._lock:
            libs = self._libraries()
            if self._holders == 0:
                self._saved = self._limit([lib for lib in libs if not lib.per_thread])
            self._holders += 1
        stack = self._local.__dict__.setdefault("stack", [])
        stack.append(self._limit([lib for lib in libs if lib.per_thread]))
        return self

    @staticmethod
    def _limit(libs):
        """Set ``libs`` to one thread; return (lib, former count) of those that changed."""
        saved = tuple((lib, count) for lib, count in ((lib, lib.get()) for lib in libs)
                      if count != 1)
        for lib, _ in saved:
            lib.set(1)
        return saved

    def __exit__(self, *exc):
        for lib, count in self._local.stack.pop():
            lib.set(count)
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                for lib, count in self._saved:
                    if lib.get() == 1:  # else set meanwhile by someone else: theirs stands
                        lib.set(count)
        return False

    def _before_fork(self):
        self._lock.acquire()

    def _after_fork_in_parent(self):
        self._lock.release()

    def _reset(self):
        """In a forked child: no holders (their threads did not come along), a new lock, and
        the process-wide counts that holders in the parent had limited set back (else the
        child's BLAS would stay at one thread for its life)."""
        self._lock = threading.Lock()
        if self._holders:
            for lib, count in self._saved:
                lib.set(count)
        self._holders = 0
        self._saved = ()
        self._local = threading.local()


single_threaded_blas = _SingleThreadedBLAS()
if hasattr(os, "register_at_fork"):
    # A fork waits for the holders' lock, so that the child never copies a count limited
    # but not yet recorded as saved, or recorded as restored but not yet restored.
    os.register_at_fork(before=single_threaded_blas._before_fork,
                        after_in_parent=single_threaded_blas._after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
