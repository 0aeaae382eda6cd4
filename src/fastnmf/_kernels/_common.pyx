# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Shared pieces of the solver cores (see _common.pxd for the records and the workspace), one
module in files by job: _xdata.pxi (X and the workspace layout), _grams.pxi (a factor's
Gram), _products.pxi (the products with X, transposes), _narrow.pxi (the engine's
products in registers for a small k), _scan.pxi (validation's passes),
_sweep.pxi (the HALS sweep), _loss.pxi (the loss, the formed error and the trace),
_rng.pxi (the sweep order's random numbers), _stream.pxi (an X out of core, read a chunk
at a time). Each has its NumPy twin of the same name in
reference/ (.py); _scan.pxi has none (the reference shares fastnmf.nmf's validation),
_narrow.pxi none (the reference's products are NumPy's, as for BLAS)."""

from cython cimport floating
from libc.math cimport sqrt, fabs, isfinite, fma, fmaf
from libc.stdint cimport int32_t, int64_t, uint64_t, uintptr_t
from libc.stdlib cimport malloc, realloc, free
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.exc cimport PyErr_CheckSignals
from cpython.pycapsule cimport PyCapsule_New, PyCapsule_GetPointer
from libc.string cimport memcpy, memset
from cython.parallel cimport prange, threadid

import threading

import numpy as np

from .._threads import exiting_after_interrupt

from ._blas cimport gemm, gram, dot

include "_xdata.pxi"
include "_grams.pxi"
include "_products.pxi"
include "_narrow.pxi"
include "_scan.pxi"
include "_sweep.pxi"
include "_loss.pxi"
include "_rng.pxi"
include "_stream.pxi"


# The name a capsule of a Kernel carries (a capsule of another name is refused).
cdef const char* KERNEL_NAME = b"fastnmf._kernels.Kernel"


cdef void free_kernel(object capsule) noexcept:
    free(PyCapsule_GetPointer(capsule, KERNEL_NAME))


cdef object kernel_capsule(HalfF32 half_f32, HalfF64 half_f64, RegionLen region_len,
                           LossLoopF32 loss_loop_f32, LossLoopF64 loss_loop_f64,
                           SettleF32 settle_f32=NULL, SettleF64 settle_f64=NULL,
                           SpecLen spec_len=NULL):
    """A solver module's KERNEL: a capsule holding its entry points (_common.pxd, Kernel)."""
    if (settle_f32 == NULL) != (spec_len == NULL) or (settle_f64 == NULL) != (spec_len == NULL):
        raise ValueError("a solver's KERNEL settles in both dtypes and has a spec_len, or not")
    cdef Kernel* held = <Kernel*> malloc(sizeof(Kernel))
    if held == NULL:
        raise MemoryError()
    held.half_f32, held.half_f64, held.region_len = half_f32, half_f64, region_len
    held.loss_loop_f32, held.loss_loop_f64 = loss_loop_f32, loss_loop_f64
    held.settle_f32, held.settle_f64, held.spec_len = settle_f32, settle_f64, spec_len
    return PyCapsule_New(held, KERNEL_NAME, free_kernel)


cdef Kernel kernel_of(object capsule) except *:
    """The Kernel a solver module's KERNEL holds (a ValueError for anything else)."""
    cdef Kernel* held = <Kernel*> PyCapsule_GetPointer(capsule, KERNEL_NAME)
    if held.half_f32 == NULL or held.half_f64 == NULL:
        raise ValueError("a solver's KERNEL has no half-step")
    return held[0]


cdef int threads_for(int n_threads, double work) noexcept nogil:
    """The threads worth starting for ``work`` multiply-adds: all of ``n_threads`` for a
    large task, else 1 (waking a thread costs more than a small task)."""
    return n_threads if work >= PARALLEL_MIN_WORK else 1


cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define fastnmf_omp_max_threads() omp_get_max_threads()
    #else
    #define fastnmf_omp_max_threads() 1
    #endif
    """
    int fastnmf_omp_max_threads() noexcept nogil


cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define fastnmf_prefetch(p) __builtin_prefetch((const void*) (p))
    #else
    #define fastnmf_prefetch(p) ((void) 0)
    #endif
    """
    void fastnmf_prefetch(const void* p) noexcept nogil


# WORK_ALIGN (_common.pxd): bytes to which the arrays that BLAS and LAPACK read and write
# are aligned: the workspaces (a solver's, the nndsvd start's and each of its parts, each
# thread's share of nmf_batch's), the start's factors and the range finder's products
# and bases. A cache line, and AVX-512's vector. Some of OpenBLAS's kernels sum a
# different way by where their operands start (its Sandybridge kernels,
# OPENBLAS_CORETYPE=Sandybridge: nmf_batch's second thread, whose share of the workspace
# started 40 bytes further into a cache line, made other nndsvd starts than fastnmf.nmf,
# 1e-12 apart), so one alignment for all keeps the bits the same on any thread, in any
# call and on either path of the start (rsvd_core, _init.randomized_svd_steps).


def aligned_empty(shape, dtype):
    """An uninitialized C-ordered array of ``shape`` (an int or a tuple) and ``dtype``
    whose first entry is WORK_ALIGN bytes aligned (a view into a slightly longer array).
    Its address read through the buffer protocol: ``ndarray.ctypes.data`` took 0.8 µs of a
    1.4 µs call."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    cdef Py_ssize_t itemsize = np.dtype(dtype).itemsize, count = 1, d
    for d in shape:
        count *= d
    buf = np.empty(count + WORK_ALIGN // itemsize, dtype=dtype)
    cdef Py_buffer view
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    cdef uintptr_t at = <uintptr_t> view.buf
    PyBuffer_Release(&view)
    cdef Py_ssize_t skip = ((WORK_ALIGN - <Py_ssize_t> (at % WORK_ALIGN))
                          % WORK_ALIGN) // itemsize
    out = buf[skip:skip + count]
    return out if len(shape) == 1 else out.reshape(shape)


def omp_max_threads():
    """OpenMP's thread count for a parallel region started by the calling thread
    (``omp_get_max_threads``: OMP_NUM_THREADS, omp_set_num_threads as threadpoolctl's
    OpenMP limits call it); 1 in a build without OpenMP."""
    return fastnmf_omp_max_threads()


# Multiply-adds between two looks at the clock (under 1 ms on the fastest paths, about
# 20 ms on the slowest: a sparse X on one thread), and the seconds between two signal checks.
cdef double SIGNAL_WORK = 4194304.0
cdef double SIGNAL_INTERVAL = 0.02


cdef class Watch:
    """What the loop's Hook reports to, with the GIL: Python's pending signals (when called
    from the main thread, the only one Python delivers them to; from another thread, whether
    the interpreter is exiting because Ctrl-C ended the main thread: _threads.
    exiting_after_interrupt) and a progress callback (``verbose`` and the user's
    ``callback``: _api._reporter). An exception raised by either (a KeyboardInterrupt from
    Ctrl-C's handler, or the callback's own) stops the loop; the caller raises it
    (``raise_if_stopped``). Made for each call by the solve loop, and by the dense
    start's randomized SVD (rsvd_core), whose steps it checks between."""

    def __init__(self, progress=None):
        self.progress = progress
        self.signals = threading.current_thread() is threading.main_thread()
        self.error = None
        self.hook.call = watch_call
        self.hook.owner = <void*> self
        self.hook.each_check = progress is not None
        self.hook.every = SIGNAL_WORK
        self.hook.interval = SIGNAL_INTERVAL
        self.hook.owed = 0
        self.hook.last = fastnmf_clock()
        self.hook.stop = NULL

    cdef int event(self, int it, double err):
        try:
            if it >= 0 and self.progress is not None:
                self.progress(it, err)
            if self.signals:
                PyErr_CheckSignals()
            elif exiting_after_interrupt():  # the process would wait for this call
                raise KeyboardInterrupt
        except BaseException as exc:
            self.error = exc
            return 1
        return 0

    def raise_if_stopped(self, int status):
        if status == STATUS_STOPPED:
            error, self.error = self.error, None
            raise error


cdef int watch_call(Hook* h, int it, double err) noexcept nogil:
    with gil:
        return (<Watch> h.owner).event(it, err)
