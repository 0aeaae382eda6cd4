# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""NNDSVD initialization (Boutsidis & Gallopoulos 2008; docs/algorithms.md, "Starting points").

``split`` (``nndsvd_split`` without the GIL) turns each of the k leading singular triplets
into a non-negative pair of factors; ``lu_basis``, ``orthonormal_rows`` and ``svd_rows`` are
the small dense steps of _init.randomized_svd, which finds those triplets.
"""

import numpy as np

from cython cimport floating
from libc.math cimport sqrt, fabs

from libc.string cimport memcpy
from scipy.linalg cimport cython_lapack as lapack

from ._common cimport (XData, Trace, Watch, prepare_x, product_W, product_H, aligned_len,
                      init_trace, take_history, tick, STATUS_STOPPED)
from ._common import ChunkStream, aligned_empty

# Entries below this are set to zero (then filled, for nndsvda), as scikit-learn does.
cdef double NNDSVD_EPS = 1e-6


cdef inline double norm_part(Py_ssize_t p, const floating* x, floating sign) noexcept nogil:
    """‖max(sign · x, 0)‖₂."""
    cdef double s = 0, v
    cdef Py_ssize_t i
    for i in range(p):
        v = sign * x[i]
        if v > 0:
            s += v * v
    return sqrt(s)


cdef void nndsvd_split(Py_ssize_t k, Py_ssize_t n, Py_ssize_t m, floating* Wt, floating* H,
                       const floating* sigma, double fill) noexcept nogil:
    """Rows of Wt (k×n) and H (k×m) hold unit singular vectors u_c, v_c with values σ_c,
    leading first; replace them by NNDSVD's non-negative factors.

    Component 0 (the leading triplet, non-negative up to sign) becomes √σ|u|, √σ|v|; any
    other takes the positive or the negative parts of (u, v), whichever pair has the larger
    product of norms (a pair of zero norm leaves the component at zero). Entries below
    1e-6 become 0, then ``fill`` if ``fill`` >= 0 (nndsvda).
    """
    cdef Py_ssize_t c, i
    cdef floating sign, scale_u, scale_v
    cdef double up, un, vp, vn, mp, mn, lam
    cdef floating* u
    cdef floating* v
    for c in range(k):
        u = Wt + c * n
        v = H + c * m
        if c == 0:
            sign = 1
            scale_u = scale_v = <floating> sqrt(sigma[0])
            for i in range(n):
                u[i] = fabs(u[i])
            for i in range(m):
                v[i] = fabs(v[i])
        else:
            up, un = norm_part(n, u, 1), norm_part(n, u, -1)
            vp, vn = norm_part(m, v, 1), norm_part(m, v, -1)
            mp, mn = up * vp, un * vn
            if mp > mn:
                sign, lam = 1, sqrt(sigma[c] * mp)
                scale_u, scale_v = <floating> (lam / up), <floating> (lam / vp)
            elif mn > 0:
                sign, lam = -1, sqrt(sigma[c] * mn)
                scale_u, scale_v = <floating> (lam / un), <floating> (lam / vn)
            else:
                sign, scale_u, scale_v = 1, 0, 0
        for i in range(n):
            u[i] = scale_u * (sign * u[i]) if sign * u[i] > 0 else 0
            if u[i] < NNDSVD_EPS:
                u[i] = <floating> fill if fill >= 0 else 0
        for i in range(m):
            v[i] = scale_v * (sign * v[i]) if sign * v[i] > 0 else 0
            if v[i] < NNDSVD_EPS:
                v[i] = <floating> fill if fill >= 0 else 0


def split(floating[:, ::1] Ut, const floating[::1] sigma, floating[:, ::1] Vt, double fill):
    """In place: Ut (k×n), Vt (k×m) holding singular vectors ← NNDSVD's factors."""
    with nogil:
        nndsvd_split(Ut.shape[0], Ut.shape[1], Vt.shape[1], &Ut[0, 0], &Vt[0, 0], &sigma[0],
                     fill)


# --- the small dense steps of scikit-learn's randomized SVD (_init.randomized_svd) ----------
#
# A basis is kept as rows: an ell × p C-contiguous array, which LAPACK reads as the p × ell
# column-major matrix whose columns are the basis vectors (leading dimension p). Called once
# per power iteration on small matrices, so each is one compiled call without the GIL
# (scipy.linalg's wrappers cost 20-40 µs each there: a tiny problem's whole start).

cdef inline int _getrf(int p, int l, floating* A, int* ipiv) noexcept nogil:
    cdef int info
    if floating is double:
        lapack.dgetrf(&p, &l, A, &p, ipiv, &info)
    else:
        lapack.sgetrf(&p, &l, A, &p, ipiv, &info)
    return info


cdef inline void _laswp_back(int ncols, int p, floating* A, int r, int* ipiv) noexcept nogil:
    """The row interchanges ipiv[r-1], ..., ipiv[0] applied to A's ncols columns."""
    cdef int one = 1, minus_one = -1
    if floating is double:
        lapack.dlaswp(&ncols, A, &p, &one, &r, ipiv, &minus_one)
    else:
        lapack.slaswp(&ncols, A, &p, &one, &r, ipiv, &minus_one)


def _aligned_copy(F):
    """A C-ordered copy of the 2-D array F, WORK_ALIGN-aligned (_common.aligned_empty)."""
    F = np.asarray(F)
    out = aligned_empty(F.shape, F.dtype)
    out[...] = F
    return out


def lu_basis(floating[:, ::1] Y):
    """The rows (r × p, r = min(ell, p)) of P L, where Yᵀ = P L U (Y: ell × p rows): the
    basis ``scipy.linalg.lu(Yᵀ, permute_l=True)`` gives, scikit-learn's power-iteration
    normalizer (the same entries: LAPACK getrf, then L's rows put back in place)."""
    cdef int l = Y.shape[0], p = Y.shape[1], r = min(l, p)
    out = _aligned_copy(Y)
    cdef floating[:, ::1] A = out
    cdef int[::1] ipiv = np.empty(r, dtype=np.intc)
    cdef Py_ssize_t c, i
    with nogil:
        _getrf(p, l, &A[0, 0], &ipiv[0])  # info > 0 (a zero pivot) still leaves P L
        for c in range(r):  # column c of L: zeros above its unit diagonal
            for i in range(c):
                A[c, i] = 0
            A[c, c] = 1
        _laswp_back(r, p, &A[0, 0], r, &ipiv[0])
    return out[:r]


def orthonormal_rows(floating[:, ::1] T):
    """Orthonormal rows (r × p, r = min(ell, p)) spanning the rows of T (ell × p): the Q of
    T's economic QR (LAPACK geqrf, orgqr)."""
    cdef int l = T.shape[0], p = T.shape[1], r = min(l, p), lwork = -1, info
    dtype = np.float64 if floating is double else np.float32
    out = _aligned_copy(T)
    cdef floating[:, ::1] A = out
    cdef floating[::1] tau = np.empty(r, dtype=dtype)
    cdef floating q1, q2
    if floating is double:  # workspace queries
        lapack.dgeqrf(&p, &l, &A[0, 0], &p, &tau[0], &q1, &lwork, &info)
        lapack.dorgqr(&p, &r, &r, &A[0, 0], &p, &tau[0], &q2, &lwork, &info)
    else:
        lapack.sgeqrf(&p, &l, &A[0, 0], &p, &tau[0], &q1, &lwork, &info)
        lapack.sorgqr(&p, &r, &r, &A[0, 0], &p, &tau[0], &q2, &lwork, &info)
    lwork = <int> max(q1, q2, 1)
    cdef floating[::1] work = aligned_empty(lwork, dtype)
    with nogil:
        if floating is double:
            lapack.dgeqrf(&p, &l, &A[0, 0], &p, &tau[0], &work[0], &lwork, &info)
            lapack.dorgqr(&p, &r, &r, &A[0, 0], &p, &tau[0], &work[0], &lwork, &info)
        else:
            lapack.sgeqrf(&p, &l, &A[0, 0], &p, &tau[0], &work[0], &lwork, &info)
            lapack.sorgqr(&p, &r, &r, &A[0, 0], &p, &tau[0], &work[0], &lwork, &info)
    return out[:r]


def svd_rows(floating[:, ::1] B):
    """B (ell × s) = Ub diag(σ) Vbt by LAPACK gesdd: returns Ub (ell × r), σ (r, descending)
    and Vbt (r × s), r = min(ell, s)."""
    cdef int l = B.shape[0], s = B.shape[1], r = min(l, s), lwork = -1, info
    cdef char jobz = 83  # 'S'
    dtype = np.float64 if floating is double else np.float32
    a = _aligned_copy(B)  # column-major: Bᵀ (s × ell) = U1 Σ V1ᵀ, so Ub = V1, Vbt = U1ᵀ
    cdef floating[:, ::1] A = a
    sigma = aligned_empty(r, dtype)
    vbt = aligned_empty((r, s), dtype)  # U1 (s × r, column-major)
    ub = aligned_empty((l, r), dtype)  # V1ᵀ (r × ell, column-major)
    cdef floating[::1] S = sigma
    cdef floating[:, ::1] U1 = vbt, V1t = ub
    cdef int[::1] iwork = np.empty(8 * r, dtype=np.intc)
    cdef floating q
    if floating is double:
        lapack.dgesdd(&jobz, &s, &l, &A[0, 0], &s, &S[0], &U1[0, 0], &s, &V1t[0, 0], &r, &q,
                      &lwork, &iwork[0], &info)
    else:
        lapack.sgesdd(&jobz, &s, &l, &A[0, 0], &s, &S[0], &U1[0, 0], &s, &V1t[0, 0], &r, &q,
                      &lwork, &iwork[0], &info)
    lwork = <int> max(q, 1)
    cdef floating[::1] work = aligned_empty(lwork, dtype)
    with nogil:
        if floating is double:
            lapack.dgesdd(&jobz, &s, &l, &A[0, 0], &s, &S[0], &U1[0, 0], &s, &V1t[0, 0], &r,
                          &work[0], &lwork, &iwork[0], &info)
        else:
            lapack.sgesdd(&jobz, &s, &l, &A[0, 0], &s, &S[0], &U1[0, 0], &s, &V1t[0, 0], &r,
                          &work[0], &lwork, &iwork[0], &info)
    if info != 0:
        raise np.linalg.LinAlgError(f"the SVD for NNDSVD did not converge (info={info})")
    return ub, sigma, vbt


# --- the whole randomized SVD of a dense X in one call without the GIL --------------------
#
# rsvd_core runs _init.randomized_svd's steps for a dense X: the same products (the
# solvers' product_W / product_H, T = NULL as left_product passes it), the same LAPACK
# calls with the same workspace sizes, in the same order, so its triplets are the Python
# path's bit for bit; but as one call without the GIL, so that a batch can start its items
# inside its parallel loop. Scratch: rsvd_sizes(n, m, k, ell) entries of the dtype and ints.

cdef inline void _geqrf(int p, int l, floating* A, floating* tau, floating* work,
                        int lwork, int* info) noexcept nogil:
    if floating is double:
        lapack.dgeqrf(&p, &l, A, &p, tau, work, &lwork, info)
    else:
        lapack.sgeqrf(&p, &l, A, &p, tau, work, &lwork, info)


cdef inline void _orgqr(int p, int r, floating* A, floating* tau, floating* work,
                        int lwork, int* info) noexcept nogil:
    if floating is double:
        lapack.dorgqr(&p, &r, &r, A, &p, tau, work, &lwork, info)
    else:
        lapack.sorgqr(&p, &r, &r, A, &p, tau, work, &lwork, info)


cdef inline void _gesdd(int s, int l, floating* A, floating* S, floating* U1, floating* V1t,
                        floating* work, int lwork, int* iwork, int* info) noexcept nogil:
    cdef char jobz = 83  # 'S'
    cdef int r = min(l, s)
    if floating is double:
        lapack.dgesdd(&jobz, &s, &l, A, &s, S, U1, &s, V1t, &r, work, &lwork, iwork, info)
    else:
        lapack.sgesdd(&jobz, &s, &l, A, &s, S, U1, &s, V1t, &r, work, &lwork, iwork, info)


cdef inline int _qr_lwork(int p, int l, floating* A, floating* tau) noexcept nogil:
    """orthonormal_rows' workspace: the larger of geqrf's and orgqr's optimal sizes."""
    cdef floating q1 = 0, q2 = 0
    cdef int info, r = min(l, p)
    _geqrf(p, l, A, tau, &q1, -1, &info)
    _orgqr(p, r, A, tau, &q2, -1, &info)
    return <int> max(q1, q2, 1)


cdef inline int _svd_lwork(int s, int l, floating* A, floating* S, int* iwork) noexcept nogil:
    """svd_rows' workspace: gesdd's optimal size."""
    cdef floating q = 0
    cdef int info
    _gesdd(s, l, A, S, A, A, &q, -1, iwork, &info)
    return <int> max(q, 1)


cdef inline int _lu_rows(int l, int p, floating* A, int* ipiv) noexcept nogil:
    """lu_basis in place on A (l × p rows): its first r = min(l, p) rows become the basis."""
    cdef int r = min(l, p)
    cdef Py_ssize_t c, i
    _getrf(p, l, A, ipiv)  # info > 0 (a zero pivot) still leaves P L
    for c in range(r):
        for i in range(c):
            A[c * p + i] = 0
        A[c * p + c] = 1
    _laswp_back(r, p, A, r, ipiv)
    return r


cdef inline bint _times_x(const XData* x, int l, const floating* F, floating* out,
                          bint right, int n_threads, Trace* t) noexcept nogil:
    """_init._times for a dense X: F X (``right``; F: l × n) or F Xᵀ (F: l × m); then
    the product's work counted on ``t`` (NULL: none). True: its hook says stop."""
    if right:
        product_H(x, l, F, out, NULL, n_threads)
    else:
        product_W(x, l, F, out, NULL, n_threads)
    return t != NULL and tick(t, <double> l * x.n * x.m)


cdef inline int _final_rows(int n, int m, int ell, int q) noexcept nogil:
    """Rows of the basis after the power iterations (each LU keeps min(rows, columns))."""
    cdef bint wide = n < m
    cdef int l = ell, it
    for it in range(q):
        l = min(l, m if wide else n)
        l = min(l, n if wide else m)
    return l


def rsvd_sizes(Py_ssize_t n, Py_ssize_t m, Py_ssize_t k, Py_ssize_t ell, Py_ssize_t q):
    """(entries of the dtype, ints) of rsvd_core's scratch for a dense n × m X: its bases,
    the SVD's factors and the LAPACK workspaces of the queries rsvd_core makes (the larger
    of the float32 and float64 ones)."""
    cdef int s = min(n, m), P = max(n, m), l = _final_rows(n, m, ell, q), r = min(l, P)
    cdef double d = 0
    cdef float f = 0
    cdef int iw = 0
    cdef Py_ssize_t lapack_len = max(_qr_lwork(P, l, &d, &d), _qr_lwork(P, l, &f, &f),
                                     _svd_lwork(s, r, &d, &d, &iw),
                                     _svd_lwork(s, r, &f, &f, &iw))
    return (2 * _part(ell * P) + _part(ell * s) + _part(ell * ell) + 2 * _part(ell)
            + _part(k * ell) + lapack_len), 9 * ell


cdef inline Py_ssize_t _part(Py_ssize_t count) noexcept nogil:
    """``count`` entries of rsvd_core's workspace rounded up to whole WORK_ALIGN bytes of
    float32 (so of float64 too), whichever dtype it holds: each part then starts as aligned
    as the workspace, as the step-by-step path's separate arrays do."""
    return aligned_len(count, sizeof(float))


cdef int rsvd_core(const XData* x, Py_ssize_t k, int ell, int q, const floating* omega,
                   floating* Wt, floating* Ht, floating* sigma, floating* work,
                   int* iwork, int n_threads, Trace* t) noexcept nogil:
    """The randomized SVD of _init.randomized_svd for a dense X (n × m): ``omega`` the
    ell × s start (Ω transposed, s = min(n, m)), q power iterations. Writes X's k leading
    left vectors as rows of Wt (k × n), right vectors as rows of Ht (k × m), σ (k).
    Returns gesdd's info (0: done), or RSVD_STOPPED when the hook of ``t`` (NULL: none)
    says stop: it is told each product's work, as the solve loop tells it each
    half-step's (so Ctrl-C ends the start as it ends the iterations)."""
    cdef int n = x.n, m = x.m, s = min(n, m), P = max(n, m), l = ell, it, r, r2, c, i
    cdef bint wide = n < m
    cdef int rows_wide = m if wide else n   # columns of a product F X (wide) / F Xᵀ
    cdef int rows_tall = n if wide else m
    cdef floating* Ya = work                             # each part aligned (_part)
    cdef floating* Yb = Ya + _part(<Py_ssize_t> ell * P)
    cdef floating* U1 = Yb + _part(<Py_ssize_t> ell * P)   # r2 × s
    cdef floating* V1t = U1 + _part(<Py_ssize_t> ell * s)  # r × r2
    cdef floating* tau = V1t + _part(<Py_ssize_t> ell * ell)
    cdef floating* S = tau + _part(ell)
    cdef floating* F2 = S + _part(ell)                     # k × r
    cdef floating* lw = F2 + _part(k * ell)
    cdef floating* tmp
    cdef int* ipiv = iwork
    cdef int* iw = iwork + ell
    cdef int lwork, info = 0
    cdef XData xq
    memcpy(Yb, omega, <Py_ssize_t> ell * s * sizeof(floating))
    for it in range(q):
        if _times_x(x, l, Yb, Ya, wide, n_threads, t):        # l × rows_wide
            return RSVD_STOPPED
        l = _lu_rows(l, rows_wide, Ya, ipiv)
        tmp = Ya; Ya = Yb; Yb = tmp
        if _times_x(x, l, Yb, Ya, not wide, n_threads, t):    # l × rows_tall
            return RSVD_STOPPED
        l = _lu_rows(l, rows_tall, Ya, ipiv)
        tmp = Ya; Ya = Yb; Yb = tmp
    if _times_x(x, l, Yb, Ya, wide, n_threads, t):            # l × P
        return RSVD_STOPPED
    lwork = _qr_lwork(P, l, Ya, tau)
    _geqrf(P, l, Ya, tau, lw, lwork, &info)
    r = min(l, P)
    _orgqr(P, r, Ya, tau, lw, lwork, &info)            # Qt: r × P, in Ya
    if _times_x(x, r, Ya, Yb, not wide, n_threads, t):        # B = Qᵀ M: r × s, in Yb
        return RSVD_STOPPED
    r2 = min(r, s)
    lwork = _svd_lwork(s, r, Yb, S, iw)
    _gesdd(s, r, Yb, S, U1, V1t, lw, lwork, iw, &info)
    if info != 0:
        return info
    for c in range(k):                                 # F2 = Ub[:, :k]ᵀ (k × r)
        for i in range(r):
            F2[c * r + i] = V1t[i * r2 + c]
        sigma[c] = S[c]
    xq.n, xq.m, xq.sparse, xq.fortran = r, P, False, False
    xq.dense, xq.other, xq.sqnorm, xq.source = Ya, NULL, 0, NULL
    _times_x(&xq, k, F2, Wt if not wide else Ht, True, n_threads, NULL)   # (Q Ub)ᵀ: k × P
    memcpy(Ht if not wide else Wt, U1, k * s * sizeof(floating))    # Vbt[:k]: k × s
    return 0


def randomized_svd_dense(X, Py_ssize_t k, int ell, int q, const floating[:, ::1] omega,
                         int n_threads=1):
    """rsvd_core for a dense X (C- or F-contiguous, omega's dtype): (Wt (k × n), σ (k),
    Ht (k × m)), as _init.randomized_svd returns them. LinAlgError if gesdd fails."""
    cdef XData x
    cdef Py_ssize_t n = X.shape[0], m = X.shape[1]
    dtype = np.float64 if floating is double else np.float32
    wt = aligned_empty((k, n), dtype)
    ht = aligned_empty((k, m), dtype)
    sig = np.empty(k, dtype=dtype)
    cdef floating[:, ::1] Wt = wt, Ht = ht
    cdef floating[::1] S = sig
    size, isize = rsvd_sizes(n, m, k, ell, q)
    cdef floating[::1] work = aligned_empty(size, dtype)
    cdef int[::1] iwork = np.empty(isize, dtype=np.intc)
    cdef int info
    cdef Trace t
    cdef Watch watch = Watch()
    prepare_x(&x, X, n, m, 0.0, omega)
    init_trace(&t)
    t.hook = &watch.hook
    with nogil:
        info = rsvd_core(&x, k, ell, q, &omega[0, 0], &Wt[0, 0], &Ht[0, 0], &S[0], &work[0],
                         &iwork[0], n_threads, &t)
    take_history(&t)  # (none: nothing was recorded)
    if isinstance(X, ChunkStream):
        X.raise_if_failed()
    if info == RSVD_STOPPED:
        watch.raise_if_stopped(STATUS_STOPPED)
    if info != 0:
        raise np.linalg.LinAlgError(f"the SVD for NNDSVD did not converge (info={info})")
    return wt, sig, ht
