# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Many factorizations in one nogil region: an OpenMP ``prange`` over the items, each thread
with its own workspace, each item (started by the caller) solved by the same cores as
``fastnmf.nmf`` (no reference twin: tested against a loop of ``fastnmf.nmf``). The items
are handed over one at a time (``Batch.add``), also while the loop runs in another thread:
an item is solved once it is handed over and a thread is free. BLAS must be
single-threaded meanwhile (the caller limits it)."""

import numpy as np

cimport cython
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdint cimport uint64_t, int64_t, uintptr_t
from libc.stdlib cimport malloc, free

from ._common cimport (XData, Params, Trace, Hook, STATUS_STOPPED, STATUS_NO_MEMORY,
                      WORK_ALIGN, prepare_x, init_trace, trace_status, take_history)
from ._solve cimport solve_core, fill_params, kernel_id, solver_workspace_len
from ._nndsvd cimport rsvd_core, nndsvd_split, RSVD_STOPPED
from ._nndsvd import rsvd_sizes

# Per-item status beyond the solver's: the start's SVD (rsvd_core) did not converge.
cdef enum:
    INIT_FAILED = 3
STATUS_INIT_FAILED = INIT_FAILED
STATUS_NOT_RUN = STATUS_STOPPED  # stopped part-way, or never started: the batch was stopped

# An item's slot: not handed over (yet, or at all: its start failed), an item with its
# factors, an item whose thread makes its nndsvd* start first.
cdef enum:
    NO_ITEM = 0
    STARTED = 1
    PLANNED = 2

cdef extern from *:
    """
    /* The count of items handed over: stored by the thread that hands them over, read by
       the loop's threads (release / acquire: an item's records are complete before its
       slot counts). A thread with no item to take yet naps (it does not spin: the thread
       handing items over needs a core too), ``us`` microseconds. */
    #if defined(_MSC_VER)
    #include <windows.h>
    static int64_t fastnmf_load_count(volatile int64_t* p) {
        return InterlockedCompareExchange64((volatile LONG64*) p, 0, 0);
    }
    static void fastnmf_store_count(volatile int64_t* p, int64_t v) {
        InterlockedExchange64((volatile LONG64*) p, (LONG64) v);
    }
    static void fastnmf_nap(int us) { Sleep(us >= 1000 ? us / 1000 : 0); }
    #else
    #include <time.h>
    static int64_t fastnmf_load_count(volatile int64_t* p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    static void fastnmf_store_count(volatile int64_t* p, int64_t v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    static void fastnmf_nap(int us) {
        struct timespec ts = {0, 1000L * us};
        nanosleep(&ts, NULL);
    }
    #endif
    """
    int64_t fastnmf_load_count(int64_t* p) noexcept nogil
    void fastnmf_store_count(int64_t* p, int64_t v) noexcept nogil
    void fastnmf_nap(int us) noexcept nogil


# Microseconds of a thread's first nap waiting for a slot, and of its longest.
cdef enum:
    NAP_FIRST = 20
    NAP_MOST = 1000


cdef struct Scratch:
    # One thread's workspace, grown as the items it takes need (released by the batch):
    # ``work`` starts WORK_ALIGN bytes aligned in ``raw``, as fastnmf.nmf's workspace does.
    void* raw
    void* work
    Py_ssize_t work_bytes
    int* iwork
    Py_ssize_t iwork_len


cdef bint fit(Scratch* s, Py_ssize_t work_bytes, Py_ssize_t iwork_len) noexcept nogil:
    """Grow ``s`` to at least these sizes (its contents are not kept); False if the memory
    is not there."""
    cdef void* raw
    cdef int* iw
    if work_bytes > s.work_bytes:
        raw = malloc(work_bytes + WORK_ALIGN)
        if raw == NULL:
            return False
        free(s.raw)
        s.raw = raw
        s.work = <void*> ((<uintptr_t> raw + WORK_ALIGN - 1) // WORK_ALIGN * WORK_ALIGN)
        s.work_bytes = work_bytes
    if iwork_len > s.iwork_len:
        iw = <int*> malloc(iwork_len * sizeof(int))
        if iw == NULL:
            return False
        free(s.iwork)
        s.iwork = iw
        s.iwork_len = iwork_len
    return True


cdef void run_items(int solver, Py_ssize_t count, Py_ssize_t k, XData* xs, Params* ps,
                    Trace* ts, const int* kinds, const int64_t* wt_ptrs,
                    const int64_t* h_ptrs, const int64_t* omega_ptrs, const int* powers,
                    const int* ells, const double* fills, const int64_t* wlens,
                    const int64_t* iwlens, int* status, Scratch* scratch, floating* sigma,
                    Py_ssize_t* perm, int64_t* done, int n_threads, volatile int* stop,
                    int64_t* handed) noexcept nogil:
    cdef Py_ssize_t i
    cdef int tid, info, nap
    cdef floating* Wt
    cdef floating* H
    cdef floating* work
    for i in prange(count, schedule="dynamic", chunksize=1, num_threads=n_threads):
        tid = threadid()
        nap = NAP_FIRST
        while fastnmf_load_count(handed) <= i and stop[0] == 0:
            fastnmf_nap(nap)  # from 20 µs, doubled up to 1 ms: a long wait costs little CPU
            nap = min(2 * nap, NAP_MOST)
        if stop[0] != 0:  # the batch was stopped: start nothing more
            status[i] = STATUS_STOPPED
            continue
        if kinds[i] == NO_ITEM:
            continue
        if not fit(&scratch[tid], wlens[i] * sizeof(floating), iwlens[i]):
            status[i] = STATUS_NO_MEMORY
            done[tid * 8] += 1
            continue
        work = <floating*> scratch[tid].work
        Wt = <floating*> wt_ptrs[i]
        H = <floating*> h_ptrs[i]
        if kinds[i] == PLANNED:  # the planned nndsvd* start: _init._nndsvd's steps
            info = rsvd_core(&xs[i], k, ells[i], powers[i], <const floating*> omega_ptrs[i],
                             Wt, H, sigma + tid * k, work, scratch[tid].iwork, 1, &ts[i])
            if info == RSVD_STOPPED:  # the batch was stopped
                status[i] = STATUS_STOPPED
                done[tid * 8] += 1
                continue
            if info != 0:
                status[i] = INIT_FAILED
                done[tid * 8] += 1
                continue
            nndsvd_split(k, xs[i].n, xs[i].m, Wt, H, sigma + tid * k, fills[i])
        status[i] = solve_core(solver, &xs[i], k, Wt, H, work, perm + tid * k, &ps[i],
                               &ts[i])
        done[tid * 8] += 1  # one cache line per thread; summed by the progress monitor


@cython.no_gc_clear  # __dealloc__ reads the traces' buffer
cdef class Batch:
    """``count`` factorizations of rank ``k`` in one dtype and one solver's settings,
    solved by ``run`` in one nogil prange over their slots on ``n_threads`` threads.

    Slot j is filled by ``add`` (the item) or ``skip`` (no item: its start failed), in slot
    order, from one thread, before or while ``run`` runs in another: a thread of the loop
    that reaches a slot not yet filled naps until it is (or until ``stop[0]`` is set). Once
    ``stop[0]`` (an int array of one, set from another thread) is non-zero, every item
    still running ends after its current half-step (its status STATUS_NOT_RUN; no item
    polls anything else, and nothing takes the GIL) and no other item starts; the slots not
    filled by then need never be. ``done`` (8·n_threads int64) counts finished items per
    thread. ``results`` (after ``run``) returns (n_iter, converged, history list,
    final_err, status), one entry per slot."""

    cdef readonly Py_ssize_t count, k
    cdef str solver
    cdef int solver_id, n_threads, max_iter
    cdef double tol, beta
    cdef bint update_H, shuffle, accelerate, is_double, ran
    cdef object xs_buf, ps_buf, ts_buf, dtype
    cdef XData* xs
    cdef Params* ps
    cdef Trace* ts
    cdef int[::1] kinds, powers, ells, status
    cdef int64_t[::1] wt_ptrs, h_ptrs, omega_ptrs, wlens, iwlens, done
    cdef double[::1] fills
    cdef int[::1] stop
    cdef list held  # each slot's arrays, which its records point into
    cdef Hook hook  # shared by every item: only its stop flag is read
    cdef int64_t handed  # slots filled (fastnmf_store_count / fastnmf_load_count)

    def __init__(self, str solver, Py_ssize_t count, Py_ssize_t k, dtype, *, int max_iter,
                 double tol, bint update_H, bint shuffle, int n_threads,
                 int64_t[::1] done, int[::1] stop, double beta=2, bint accelerate=False):
        if done.shape[0] < 8 * n_threads:
            raise ValueError("done must hold 8 * n_threads counters")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError("a batch's dtype must be float32 or float64")
        self.solver, self.count, self.k, self.n_threads = solver, count, k, n_threads
        self.solver_id = kernel_id(solver)
        self.max_iter, self.tol, self.update_H, self.shuffle = max_iter, tol, update_H, shuffle
        self.beta, self.accelerate = beta, accelerate
        self.is_double = self.dtype == np.float64
        self.done, self.stop = done, stop
        slots = max(count, 1)
        # Per-slot records live in byte buffers owned by these arrays.
        self.xs_buf = np.zeros(slots * sizeof(XData), dtype=np.uint8)
        self.ps_buf = np.zeros(slots * sizeof(Params), dtype=np.uint8)
        self.ts_buf = np.zeros(slots * sizeof(Trace), dtype=np.uint8)
        cdef unsigned char[::1] xs_mv = self.xs_buf, ps_mv = self.ps_buf, ts_mv = self.ts_buf
        self.xs = <XData*> &xs_mv[0]
        self.ps = <Params*> &ps_mv[0]
        self.ts = <Trace*> &ts_mv[0]
        self.kinds = np.zeros(slots, dtype=np.intc)
        self.powers = np.zeros(slots, dtype=np.intc)
        self.ells = np.zeros(slots, dtype=np.intc)
        self.status = np.full(slots, STATUS_STOPPED, dtype=np.intc)
        self.wt_ptrs = np.zeros(slots, dtype=np.int64)
        self.h_ptrs = np.zeros(slots, dtype=np.int64)
        self.omega_ptrs = np.zeros(slots, dtype=np.int64)
        self.wlens = np.zeros(slots, dtype=np.int64)
        self.iwlens = np.zeros(slots, dtype=np.int64)
        self.fills = np.zeros(slots, dtype=np.float64)
        self.held = [None] * count
        self.hook.call = NULL
        self.hook.owner = NULL
        self.hook.each_check = False
        self.hook.stop = &stop[0]
        cdef Py_ssize_t j
        for j in range(count):
            init_trace(&self.ts[j])
            self.ts[j].hook = &self.hook
        self.handed = 0
        self.ran = False

    def __dealloc__(self):
        cdef Py_ssize_t j
        if self.ts != NULL:  # histories that results() did not take
            for j in range(self.count):
                free(self.ts[j].history)
                self.ts[j].history = NULL

    def add(self, operand, Wt, H, double sqnorm, regs, uint64_t seed, omega=None,
            int power=-1, double fill=-1.0):
        """Fill the next slot: X as ``_solve.solve`` takes it, the factors Wt (k×n) and H
        (k×m), C-contiguous, of the batch's dtype, updated in place (both overwritten when
        ``power`` >= 0: the item's thread first makes the nndsvd* start, rsvd_core from
        Ω = ``omega`` with ``power`` power iterations, then the split with ``fill``:
        _init.planned_nndsvd's plan); regs = (l1_W, l2_W, l1_H, l2_H); ``seed``: the
        sweep-order seed."""
        if self.is_double:
            _add_item[double](self, operand, Wt, H, sqnorm, regs, seed, omega, power, fill)
        else:
            _add_item[float](self, operand, Wt, H, sqnorm, regs, seed, omega, power, fill)

    def skip(self):
        """Fill the next slot with no item (its start failed)."""
        cdef Py_ssize_t j = self.handed
        if j >= self.count:
            raise ValueError("every slot of the batch is filled already")
        self.kinds[j] = NO_ITEM
        fastnmf_store_count(&self.handed, j + 1)

    def run(self):
        """Solve the slots (once), without the GIL, as they are filled."""
        if self.ran:
            raise RuntimeError("a batch runs once")
        self.ran = True
        if self.is_double:
            _run_batch[double](self)
        else:
            _run_batch[float](self)

    def results(self):
        """(n_iter, converged, histories, final_err, status), one entry per slot (a slot
        with no item: STATUS_NOT_RUN); takes the histories (call once, after run)."""
        cdef Py_ssize_t j, count = self.count
        status = np.asarray(self.status)[:count].copy()
        for j in range(count):
            status[j] = trace_status(&self.ts[j], status[j])
        histories = [take_history(&self.ts[j]) for j in range(count)]
        n_iter = np.array([self.ts[j].n_iter for j in range(count)], dtype=np.intp)
        converged = np.array([self.ts[j].converged for j in range(count)], dtype=bool)
        final_err = np.array([self.ts[j].final_err for j in range(count)], dtype=np.float64)
        return n_iter, converged, histories, final_err, status


cdef _add_item(Batch b, operand, Wt_, H_, double sqnorm, regs, uint64_t seed, omega_,
               int power, double fill, floating kind=0):
    cdef Py_ssize_t j = b.handed, n, m, wlen
    cdef floating[:, ::1] Wt = Wt_
    cdef floating[:, ::1] H = H_
    cdef const floating[:, ::1] omega
    if j >= b.count:
        raise ValueError("every slot of the batch is filled already")
    n, m = Wt.shape[1], H.shape[1]
    if Wt.shape[0] != b.k or H.shape[0] != b.k:
        raise ValueError("every item must have the batch's n_components")
    cdef XData* x = &b.xs[j]
    prepare_x(x, operand, n, m, sqnorm, H)
    l1_W, l2_W, l1_H, l2_H = regs
    # one thread each: the items are the parallel loop
    fill_params(&b.ps[j], b.solver, x, b.max_iter, b.tol, l1_W, l2_W, l1_H, l2_H, b.update_H,
                b.shuffle, seed, b.beta, 1, b.accelerate)
    wlen = solver_workspace_len(b.solver_id, x, b.k, &b.ps[j])
    b.iwlens[j] = 1
    b.kinds[j] = STARTED
    if power >= 0:
        if x.sparse:
            raise ValueError("a planned start needs a dense X")
        omega = omega_
        if omega.shape[1] != min(n, m) or omega.shape[0] < b.k:
            raise ValueError("omega does not match the item")
        b.omega_ptrs[j] = <int64_t> &omega[0, 0]
        b.powers[j], b.ells[j], b.fills[j] = power, omega.shape[0], fill
        size, isize = rsvd_sizes(n, m, b.k, omega.shape[0], power)
        wlen, b.iwlens[j] = max(wlen, size), isize
        b.kinds[j] = PLANNED
    b.wlens[j] = wlen
    b.wt_ptrs[j] = <int64_t> &Wt[0, 0]
    b.h_ptrs[j] = <int64_t> &H[0, 0]
    b.held[j] = (operand, Wt_, H_, omega_)
    fastnmf_store_count(&b.handed, j + 1)


cdef _run_batch(Batch b, floating kind=0):
    cdef Py_ssize_t k = b.k, t
    cdef int n_threads = b.n_threads
    cdef Scratch* scratch = <Scratch*> malloc(n_threads * sizeof(Scratch))
    if scratch == NULL:
        raise MemoryError()
    for t in range(n_threads):
        scratch[t].raw = scratch[t].work = NULL
        scratch[t].iwork = NULL
        scratch[t].work_bytes = scratch[t].iwork_len = 0
    cdef floating[::1] sigma
    cdef Py_ssize_t[::1] perm
    try:
        sigma = np.empty(k * n_threads, dtype=b.dtype)
        perm = np.empty(k * n_threads, dtype=np.intp)
        if b.count:
            with nogil:
                run_items(b.solver_id, b.count, k, b.xs, b.ps, b.ts, &b.kinds[0],
                          &b.wt_ptrs[0], &b.h_ptrs[0], &b.omega_ptrs[0], &b.powers[0],
                          &b.ells[0], &b.fills[0], &b.wlens[0], &b.iwlens[0], &b.status[0],
                          scratch, &sigma[0], &perm[0], &b.done[0], n_threads, &b.stop[0],
                          &b.handed)
    finally:
        for t in range(n_threads):
            free(scratch[t].raw)
            free(scratch[t].iwork)
        free(scratch)
