# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""NNDSVD initialization (Boutsidis & Gallopoulos 2008; docs/algorithms.md, "Starting points").

``split`` (``nndsvd_split`` without the GIL) turns each of the k leading singular triplets
into a non-negative pair of factors; ``lu_basis``, ``orthonormal_rows`` and ``svd_rows`` are
the small dense steps of _init.randomized_svd, which finds those triplets.
"""

import numpy as np

from cython cimport floating
from libc.math cimport sqrt, fabs

from scipy.linalg cimport cython_lapack as lapack

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


def lu_basis(floating[:, ::1] Y):
    """The rows (r × p, r = min(ell, p)) of P L, where Yᵀ = P L U (Y: ell × p rows): the
    basis ``scipy.linalg.lu(Yᵀ, permute_l=True)`` gives, scikit-learn's power-iteration
    normalizer (the same entries: LAPACK getrf, then L's rows put back in place)."""
    cdef int l = Y.shape[0], p = Y.shape[1], r = min(l, p)
    out = np.array(Y, copy=True)
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
    out = np.array(T, copy=True)
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
    cdef floating[::1] work = np.empty(lwork, dtype=dtype)
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
    a = np.array(B, copy=True)  # column-major: Bᵀ (s × ell) = U1 Σ V1ᵀ, so Ub = V1, Vbt = U1ᵀ
    cdef floating[:, ::1] A = a
    sigma = np.empty(r, dtype=dtype)
    vbt = np.empty((r, s), dtype=dtype)  # U1 (s × r, column-major)
    ub = np.empty((l, r), dtype=dtype)  # V1ᵀ (r × ell, column-major)
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
    cdef floating[::1] work = np.empty(lwork, dtype=dtype)
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
