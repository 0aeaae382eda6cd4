# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Many factorizations in one nogil region: an OpenMP ``prange`` over the items, each thread
with its own workspace, each item (started by the caller) solved by the same cores as
``fastnmf.nmf`` (no reference twin: tested against a loop of
``fastnmf.nmf``). BLAS must be single-threaded meanwhile (the caller limits it)."""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdint cimport uint64_t, int64_t
from cpython.pyport cimport PY_SSIZE_T_MAX

from ._common cimport (XData, Params, Trace, Hook, STATUS_STOPPED, prepare_x,
                      init_trace, trace_status, take_history, aligned_len)
from ._solve cimport solve_core, fill_params, solver_workspace_len
from ._nndsvd cimport rsvd_core, nndsvd_split
from ._nndsvd import rsvd_sizes
from ._common import aligned_empty

# Per-item status beyond the solver's: the start's SVD (rsvd_core) did not converge.
cdef enum:
    INIT_FAILED = 3
STATUS_INIT_FAILED = INIT_FAILED
STATUS_NOT_RUN = STATUS_STOPPED  # stopped part-way, or never started: the batch was stopped


cdef void run_items(int solver, Py_ssize_t count, Py_ssize_t k, XData* xs, Params* ps,
                    Trace* ts, int64_t* wt_ptrs, int64_t* h_ptrs, const int64_t* omega_ptrs,
                    const int* powers, const int* ells, const double* fills, int* status,
                    floating* work, Py_ssize_t wlen, int* iwork, Py_ssize_t iwlen,
                    floating* sigma, Py_ssize_t* perm, int64_t* done, int n_threads,
                    volatile int* stop) noexcept nogil:
    cdef Py_ssize_t i
    cdef int tid, info
    cdef floating* Wt
    cdef floating* H
    for i in prange(count, schedule="dynamic", chunksize=1, num_threads=n_threads):
        tid = threadid()
        Wt = <floating*> wt_ptrs[i]
        H = <floating*> h_ptrs[i]
        if stop[0] != 0:  # the batch was stopped: start nothing more
            status[i] = STATUS_STOPPED
            continue
        if powers[i] >= 0:  # the planned nndsvd* start: _init._nndsvd's steps
            info = rsvd_core(&xs[i], k, ells[i], powers[i], <const floating*> omega_ptrs[i],
                             Wt, H, sigma + tid * k, work + tid * wlen, iwork + tid * iwlen, 1)
            if info != 0:
                status[i] = INIT_FAILED
                done[tid * 8] += 1
                continue
            nndsvd_split(k, xs[i].n, xs[i].m, Wt, H, sigma + tid * k, fills[i])
        status[i] = solve_core(solver, &xs[i], k, Wt, H, work + tid * wlen, perm + tid * k,
                               &ps[i], &ts[i])
        done[tid * 8] += 1  # one cache line per thread; summed by the progress monitor


def solve_many(str solver, list operands, list Wts, list Hs, double[::1] sqnorms,
               double[:, ::1] regs, uint64_t[::1] seeds, list omegas=None,
               const int[::1] powers=None, const double[::1] fills=None, *, int max_iter, double tol, bint update_H,
               bint shuffle, int n_threads, int64_t[::1] done, int[::1] stop, double beta=2,
               bint accelerate=False):
    """Solve every item in one nogil prange, from the factors given or, where
    ``powers[i]`` >= 0, from the nndsvd* start the item's thread makes first (rsvd_core
    from Ω = ``omegas[i]`` with powers[i] power iterations, then the split with
    ``fills[i]``: _init.planned_nndsvd's plan; Wts[i] and Hs[i] are overwritten).

    operands[i]: X_i as ``_solve.solve`` takes it; Wts[i] (k×n_i), Hs[i] (k×m_i): the
    factors, C-contiguous, all of one dtype, updated in place; regs[i] = (l1_W, l2_W, l1_H,
    l2_H); seeds[i]: the sweep-order seed; ``done`` (8·n_threads int64) counts
    finished items per thread; once ``stop[0]`` (an int array of one, set from another
    thread) is non-zero, every item still running ends after its current half-step (its
    status STATUS_NOT_RUN; no item polls anything else, and nothing takes the GIL) and no
    other item starts. Returns (n_iter, converged, history list, final_err, status)
    arrays, one entry per item.
    """
    if Wts and Wts[0].dtype == np.float32:
        return _solve_many[float](solver, operands, Wts, Hs, sqnorms, regs, seeds, omegas,
                                  powers, fills, max_iter, tol, update_H, shuffle,
                                  n_threads, done, stop, beta, accelerate)
    return _solve_many[double](solver, operands, Wts, Hs, sqnorms, regs, seeds, omegas,
                               powers, fills, max_iter, tol, update_H, shuffle, n_threads,
                               done, stop, beta, accelerate)


cdef _solve_many(str solver, list operands, list Wts, list Hs, double[::1] sqnorms,
                 double[:, ::1] regs, uint64_t[::1] seeds, list omegas,
                 const int[::1] powers, const double[::1] fills, int max_iter, double tol, bint update_H,
                 bint shuffle, int n_threads, int64_t[::1] done, int[::1] stop, double beta,
                 bint accelerate, floating kind=0):
    cdef Py_ssize_t count = len(Wts), i, n, m
    cdef Py_ssize_t k = Wts[0].shape[0] if count else 1
    cdef int solver_id = 0
    cdef Py_ssize_t wlen = 1, iwlen = 1
    dtype = np.float64 if floating is double else np.float32
    # Per-item records live in byte buffers owned by these arrays.
    xs_buf = np.zeros(max(count, 1) * sizeof(XData), dtype=np.uint8)
    ps_buf = np.zeros(max(count, 1) * sizeof(Params), dtype=np.uint8)
    ts_buf = np.zeros(max(count, 1) * sizeof(Trace), dtype=np.uint8)
    cdef unsigned char[::1] xs_mv = xs_buf, ps_mv = ps_buf, ts_mv = ts_buf
    cdef XData* xs = <XData*> &xs_mv[0]
    cdef Params* ps = <Params*> &ps_mv[0]
    cdef Trace* ts = <Trace*> &ts_mv[0]
    cdef int64_t[::1] wt_ptrs = np.zeros(max(count, 1), dtype=np.int64)
    cdef int64_t[::1] h_ptrs = np.zeros(max(count, 1), dtype=np.int64)
    cdef int[::1] status = np.zeros(max(count, 1), dtype=np.intc)
    cdef int64_t[::1] omega_ptrs = np.zeros(max(count, 1), dtype=np.int64)
    cdef int[::1] item_powers = np.full(max(count, 1), -1, dtype=np.intc)
    cdef int[::1] ells = np.zeros(max(count, 1), dtype=np.intc)
    cdef double[::1] item_fills = np.zeros(max(count, 1), dtype=np.float64)
    cdef const floating[:, ::1] omega
    cdef floating[:, ::1] Wt, H
    cdef Hook hook  # shared by every item: only its stop flag is read
    hook.call = NULL
    hook.owner = NULL
    hook.each_check = False
    hook.stop = &stop[0]
    for i in range(count):
        Wt = Wts[i]
        H = Hs[i]
        n, m = Wt.shape[1], H.shape[1]
        if Wt.shape[0] != k or H.shape[0] != k:
            raise ValueError("every item must have the same n_components")
        prepare_x(&xs[i], operands[i], n, m, sqnorms[i], H)
        wt_ptrs[i] = <int64_t> &Wt[0, 0]
        h_ptrs[i] = <int64_t> &H[0, 0]
        # one thread each: the items are the parallel loop
        solver_id = fill_params(&ps[i], solver, &xs[i], max_iter, tol, regs[i, 0], regs[i, 1],
                                regs[i, 2], regs[i, 3], update_H, shuffle, seeds[i], beta, 1,
                                accelerate)
        init_trace(&ts[i])
        ts[i].hook = &hook
        wlen = max(wlen, solver_workspace_len(solver_id, &xs[i], k, &ps[i]))
        if powers is not None and powers[i] >= 0:
            if xs[i].sparse:
                raise ValueError("a planned start needs a dense X")
            omega = omegas[i]
            if omega.shape[1] != min(n, m) or omega.shape[0] < k:
                raise ValueError("omega does not match the item")
            omega_ptrs[i] = <int64_t> &omega[0, 0]
            item_powers[i], ells[i], item_fills[i] = powers[i], omega.shape[0], fills[i]
            size, isize = rsvd_sizes(n, m, k, omega.shape[0], powers[i])
            wlen, iwlen = max(wlen, size), max(iwlen, isize)
    if done.shape[0] < 8 * n_threads:
        raise ValueError("done must hold 8 * n_threads counters")
    if wlen > PY_SSIZE_T_MAX // 8 // n_threads:  # each item's size was checked, not the sum
        raise MemoryError(f"n_jobs={n_threads} workspaces of {wlen} entries each do not fit "
                          "in memory")
    wlen = aligned_len(wlen, sizeof(floating))  # each thread's share aligned as nmf's
    cdef floating[::1] work = aligned_empty(wlen * n_threads, dtype)
    cdef Py_ssize_t[::1] perm = np.empty(k * n_threads, dtype=np.intp)
    cdef int[::1] iwork = np.empty(iwlen * n_threads, dtype=np.intc)
    cdef floating[::1] sigma = np.empty(k * n_threads, dtype=dtype)
    try:
        if count:
            with nogil:
                run_items(solver_id, count, k, xs, ps, ts, &wt_ptrs[0], &h_ptrs[0],
                          &omega_ptrs[0], &item_powers[0], &ells[0], &item_fills[0],
                          &status[0], &work[0], wlen, &iwork[0], iwlen, &sigma[0],
                          &perm[0], &done[0], n_threads, &stop[0])
        for i in range(count):
            status[i] = trace_status(&ts[i], status[i])
    finally:  # every history buffer freed, whatever happens
        histories = [take_history(&ts[i]) for i in range(count)]
    n_iter = np.array([ts[i].n_iter for i in range(count)], dtype=np.intp)
    converged = np.array([ts[i].converged for i in range(count)], dtype=bool)
    final_err = np.array([ts[i].final_err for i in range(count)], dtype=np.float64)
    return n_iter, converged, histories, final_err, np.asarray(status)[:count].copy()
