# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The one iteration loop of every solver, and its Python entry.

Both factors are stored component-major inside the loop: Wᵀ (k×n) and H (k×m), so that a
half-step for either is the same operation on a k×p matrix F with A (the other factor's
Gram) and B (the other factor's product with X). ``solve_core`` runs without the GIL and
allocates nothing; ``solve`` allocates the one workspace, releases the GIL once and calls it.
"""

import numpy as np

from cython cimport floating
from libc.math cimport isfinite
from libc.stdint cimport uint64_t

from ._common cimport (
    XData, Params, Trace, STATUS_OK, STATUS_NONFINITE, SOLVER_CD, SOLVER_ALS, SOLVER_MU,
    SOLVER_BPP, vectors_len,
    prepare_x, x_entries, workspace_len, other_order, product_W, product_H, factor_gram,
    loss_sq, accurate_loss_sq, record, finish,
)
from ._cd cimport cd_half
from ._als cimport als_half
from ._mu cimport mu_half, mu_beta_core
from ._bpp cimport bpp_half

SOLVER_IDS = {"cd": SOLVER_CD, "als": SOLVER_ALS, "mu": SOLVER_MU, "bpp": SOLVER_BPP}
# Iterations between two convergence checks (and history entries), per solver.
CHECK_EVERY = {"cd": 1, "als": 1, "mu": 10, "bpp": 1}


cdef inline double half_step(int solver, Py_ssize_t k, Py_ssize_t p, floating* F,
                             const floating* A, const floating* B, double l1, double l2,
                             floating* T, floating* C, floating* S, floating* v,
                             Py_ssize_t* perm, uint64_t* rng, bint measure,
                             const Params* prm, floating* E) noexcept nogil:
    if solver == SOLVER_CD:
        return cd_half(k, p, F, A, B, l1, l2, T, C, S, v, perm, rng, measure, prm)
    if solver == SOLVER_ALS:
        return als_half(k, p, F, A, B, l1, l2, T, C, S, v, perm, rng, measure, prm)
    if solver == SOLVER_BPP:
        return bpp_half(k, p, F, A, B, l1, l2, T, C, S, v, perm, rng, measure, prm, E)
    return mu_half(k, p, F, A, B, l1, l2, T, C, S, v, perm, rng, measure, prm)


cdef int solve_core(int solver, const XData* x, Py_ssize_t k, floating* Wt, floating* H,
                    floating* work, Py_ssize_t* perm, const Params* p,
                    Trace* t) noexcept nogil:
    """Alternate the half-steps of ``solver`` on Wᵀ (k×n) and H (k×m), in place.

    Per iteration: W half-step with A = HHᵀ, B = H Xᵀ; then (if update_H) the H half-step
    with G = WᵀW, B = Wᵀ X; then the loss from those Grams and products (no n × m work).
    Stopping (NMF-MATH.md): cd and als stop when the sweep's projected-gradient norm falls
    to tol × its value at the first iteration; mu, checked every ``check_every`` iterations,
    when (previous error − error) / initial error < tol. tol = 0 never stops early.
    Returns STATUS_OK, or STATUS_NONFINITE if the loss stops being finite.
    """
    cdef Py_ssize_t n = x.n, m = x.m, P = n if n > m else m, kk = k * k
    cdef floating* A = work
    cdef floating* G = A + kk
    cdef floating* C = G + kk
    cdef floating* S = C + kk
    cdef floating* B = S + kk
    cdef floating* T = B + k * P
    cdef floating* v = T + k * P
    cdef floating* E = v + vectors_len(k, P, p.n_threads)  # bpp's region
    cdef Py_ssize_t T_len = k * P
    cdef uint64_t rng = p.seed
    cdef double err_sq, err, err0, prev, viol, viol0 = 0
    cdef bint conv, measure
    cdef int it
    cdef XData own = x[0]
    if solver == SOLVER_MU and p.beta != 2:
        return mu_beta_core(x, k, Wt, H, work, p, t)
    if other_order(&own, k, work + workspace_len(n, m, k, p.beta, p.n_threads, solver)):
        x = &own
    t.n_hist = 0
    t.n_iter = 0
    t.converged = False
    factor_gram(k, m, H, A, v, P, p.n_threads)
    product_W(x, k, H, B, T, p.n_threads)
    factor_gram(k, n, Wt, G, v, P, p.n_threads)
    err_sq = loss_sq(x, k, n, Wt, B, G, A)
    if not isfinite(err_sq):
        return STATUS_NONFINITE
    err0 = prev = record(t, accurate_loss_sq(x, k, Wt, H, err_sq, T, T_len), 0, p)
    for it in range(1, p.max_iter + 1):
        if it > 1 and p.update_H:
            product_W(x, k, H, B, T, p.n_threads)
        # The violation is needed at every check when tol > 0; with tol = 0 only for the
        # first iteration and the last (the `converged` flag): skip its cost in between.
        measure = p.tol > 0 or it == 1 or it == p.max_iter
        viol = half_step(solver, k, n, Wt, A, B, p.l1_W, p.l2_W, T, C, S, v, perm, &rng,
                         measure, p, E)
        factor_gram(k, n, Wt, G, v, P, p.n_threads)
        if p.update_H:
            product_H(x, k, Wt, B, T, p.n_threads)
            viol += half_step(solver, k, m, H, G, B, p.l1_H, p.l2_H, T, C, S, v, perm,
                              &rng, measure, p, E)
            factor_gram(k, m, H, A, v, P, p.n_threads)
            err_sq = loss_sq(x, k, m, H, B, G, A)
        else:
            err_sq = loss_sq(x, k, n, Wt, B, G, A)
        t.n_iter = it
        if not isfinite(err_sq):
            return STATUS_NONFINITE
        if it % p.check_every:
            continue
        err = record(t, accurate_loss_sq(x, k, Wt, H, err_sq, T, T_len), it, p)
        if solver == SOLVER_MU:
            conv = err0 == 0 or (prev - err) / err0 < p.tol
            prev = err
        else:
            if it == 1:
                viol0 = viol
            conv = viol0 == 0 or viol / viol0 <= p.tol
        t.converged = conv
        if conv and p.tol > 0:
            break
    return finish(x, k, Wt, H, T, T_len, err_sq, t)


def solve(str solver, X, floating[:, ::1] Wt, floating[:, ::1] H, double sqnorm, *,
          int max_iter, double tol, double l1_W, double l2_W, double l1_H, double l2_H,
          bint update_H, bint shuffle, uint64_t seed, bint verbose, double beta=2,
          double[::1] live=None, int n_threads=1, bint accelerate=False):
    """Run ``solver`` on Wt (k×n) and H (k×m) in place.

    X is a dense ndarray (C- or F-contiguous, the dtype of Wt) or a tuple
    (data, indptr, indices, data_t, indptr_t, indices_t) of X's CSR and Xᵀ's CSR, with
    int64 indptr and int32 indices. ``live`` (2 float64), if given, receives the iteration
    and error of each check as the loop runs. Returns (n_iter, converged, history,
    final_err, status).
    """
    cdef XData x
    cdef Params p
    cdef Trace t
    cdef Py_ssize_t k = Wt.shape[0], n = Wt.shape[1], m = H.shape[1]
    cdef int solver_id = SOLVER_IDS[solver]
    cdef int status
    prepare_x(&x, X, n, m, sqnorm, H)
    p.max_iter = max_iter
    p.tol = tol
    p.l1_W, p.l2_W, p.l1_H, p.l2_H = l1_W, l2_W, l1_H, l2_H
    p.update_H = update_H
    p.shuffle = shuffle
    p.seed = seed
    p.check_every = CHECK_EVERY[solver]
    p.verbose = verbose
    p.beta = beta
    p.n_threads = max(n_threads, 1)
    p.accelerate = accelerate
    p.x_entries = x_entries(&x)
    dtype = np.float64 if floating is double else np.float32
    cdef floating[::1] work = np.empty(workspace_len(n, m, k, beta, p.n_threads, solver_id), dtype=dtype)
    cdef Py_ssize_t[::1] perm = np.empty(k, dtype=np.intp)
    history = np.empty(max_iter // p.check_every + 1, dtype=np.float64)
    cdef double[::1] hist = history
    t.history = &hist[0]
    t.live = &live[0] if live is not None else NULL
    with nogil:
        status = solve_core(solver_id, &x, k, &Wt[0, 0], &H[0, 0], &work[0], &perm[0],
                            &p, &t)
    return t.n_iter, bool(t.converged), history[:t.n_hist].copy(), t.final_err, status
