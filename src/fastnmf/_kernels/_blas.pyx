# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Test hooks for the BLAS wrappers of _blas.pxd (each checked against NumPy in the tests)."""

from cython cimport floating
from ._blas cimport gemm, gram, cholesky, chol_solve, dot


def gemm_hook(bint trans_a, bint trans_b, double alpha, const floating[:, ::1] A,
              const floating[:, ::1] B, double beta, floating[:, ::1] C):
    """C = alpha op(A) op(B) + beta C for C-contiguous arrays."""
    cdef int M = C.shape[0], N = C.shape[1]
    cdef int K = A.shape[0] if trans_a else A.shape[1]
    with nogil:
        gemm(trans_a, trans_b, M, N, K, <floating> alpha, &A[0, 0], A.shape[1], &B[0, 0],
             B.shape[1], <floating> beta, &C[0, 0], N)


def gram_hook(const floating[:, ::1] F, floating[:, ::1] C):
    """C = F Fᵀ."""
    with nogil:
        gram(F.shape[0], F.shape[1], &F[0, 0], F.shape[1], &C[0, 0])


def chol_solve_hook(floating[:, ::1] C, floating[:, ::1] B):
    """B ← C⁻¹ B in place (C is overwritten by its factor); returns potrf's info."""
    cdef int info
    with nogil:
        info = cholesky(C.shape[0], &C[0, 0])
        if info == 0:
            chol_solve(C.shape[0], B.shape[1], &C[0, 0], &B[0, 0])
    return info


def dot_hook(const floating[::1] x, const floating[::1] y):
    """Σ x·y in double."""
    return dot(x.shape[0], &x[0], &y[0])
