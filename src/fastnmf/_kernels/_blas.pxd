# cython: language_level=3
# Fused nogil wrappers over scipy.linalg.cython_blas / cython_lapack for row-major
# (C-contiguous) matrices. A row-major M×N matrix is, to Fortran BLAS, its column-major
# transpose; every wrapper below does that bookkeeping once so that kernels read as the
# formulas of docs/algorithms.md.

from cython cimport floating
from scipy.linalg cimport cython_blas as blas
from scipy.linalg cimport cython_lapack as lapack

cdef inline void gemm(bint trans_a, bint trans_b, int M, int N, int K, floating alpha,
                      const floating* A, int lda, const floating* B, int ldb,
                      floating beta, floating* C, int ldc) noexcept nogil:
    """C (M×N) = alpha · op(A) · op(B) + beta · C, all row-major; op(A) is M×K."""
    # Column-major: Cᵀ = op(B)ᵀ · op(A)ᵀ, so the operands swap and the flags stay.
    cdef char ta = 84 if trans_a else 78  # 'T' / 'N'
    cdef char tb = 84 if trans_b else 78
    if floating is double:
        blas.dgemm(&tb, &ta, &N, &M, &K, &alpha, <double*> B, &ldb, <double*> A, &lda,
                   &beta, C, &ldc)
    else:
        blas.sgemm(&tb, &ta, &N, &M, &K, &alpha, <float*> B, &ldb, <float*> A, &lda,
                   &beta, C, &ldc)


cdef inline void syrk(bint outer, int k, int p, const floating* F, int ldf,
                      floating* C) noexcept nogil:
    """For row-major F (k×p): C = F Fᵀ (k×k) if ``outer``, else C = Fᵀ F (p×p); row-major,
    both triangles filled."""
    # Column-major F is Fᵀ (p×k) =: Fc; F Fᵀ = Fcᵀ Fc (trans 'T'), Fᵀ F = Fc Fcᵀ (trans 'N').
    # syrk fills the column-major lower triangle, the row-major upper one, as NumPy's
    # Fᵀ F does (scikit-learn's Grams: OpenBLAS rounds the two triangles differently);
    # copy it down.
    cdef char uplo = 76  # 'L'
    cdef char tr = 84 if outer else 78
    cdef int size = k if outer else p, depth = p if outer else k
    cdef floating one = 1.0, zero = 0.0
    cdef Py_ssize_t i, j
    if floating is double:
        blas.dsyrk(&uplo, &tr, &size, &depth, &one, <double*> F, &ldf, &zero, C, &size)
    else:
        blas.ssyrk(&uplo, &tr, &size, &depth, &one, <float*> F, &ldf, &zero, C, &size)
    for i in range(size):
        for j in range(i + 1, size):
            C[j * size + i] = C[i * size + j]


cdef inline void gram(int k, int p, const floating* F, int ldf, floating* C) noexcept nogil:
    """C (k×k) = F Fᵀ for row-major F (k×p)."""
    syrk(True, k, p, F, ldf, C)


cdef inline int cholesky(int k, floating* C) noexcept nogil:
    """In place: the Cholesky factor of the symmetric positive definite C (k×k).

    Returns LAPACK's info: 0 on success, > 0 when C is not positive definite.
    """
    cdef char uplo = 85  # 'U': C = UᵀU with U column-major upper
    cdef int info = 0
    if floating is double:
        lapack.dpotrf(&uplo, &k, C, &k, &info)
    else:
        lapack.spotrf(&uplo, &k, C, &k, &info)
    return info


cdef inline void chol_solve(int k, int p, const floating* U, floating* B) noexcept nogil:
    """In place: B (k×p, row-major) ← C⁻¹ B, with U from ``cholesky(k, C)``."""
    # Column-major B is Bᵀ (p×k); we need Bᵀ C⁻¹ = Bᵀ U⁻¹ U⁻ᵀ: two right-side solves.
    cdef char side = 82, uplo = 85, notr = 78, tr = 84, nodiag = 78  # R U N T N
    cdef floating one = 1.0
    if floating is double:
        blas.dtrsm(&side, &uplo, &notr, &nodiag, &p, &k, &one, <double*> U, &k, B, &p)
        blas.dtrsm(&side, &uplo, &tr, &nodiag, &p, &k, &one, <double*> U, &k, B, &p)
    else:
        blas.strsm(&side, &uplo, &notr, &nodiag, &p, &k, &one, <float*> U, &k, B, &p)
        blas.strsm(&side, &uplo, &tr, &nodiag, &p, &k, &one, <float*> U, &k, B, &p)


cdef inline void chol_solve_cols(int s, int g, const floating* U, floating* R) noexcept nogil:
    """In place: R ← C⁻¹ R for g right-hand sides of s entries each, stored one after the
    other (column-major s×g), with U from ``cholesky(s, C)``."""
    cdef char uplo = 85  # 'U'
    cdef int info = 0
    if floating is double:
        lapack.dpotrs(&uplo, &s, &g, <double*> U, &s, R, &s, &info)
    else:
        lapack.spotrs(&uplo, &s, &g, <float*> U, &s, R, &s, &info)


cdef inline double dot(Py_ssize_t n, const floating* x, const floating* y) noexcept nogil:
    """Σ x·y accumulated in double (four partial sums)."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t i, n4 = n - n % 4
    for i in range(0, n4, 4):
        s0 += <double> x[i] * y[i]
        s1 += <double> x[i + 1] * y[i + 1]
        s2 += <double> x[i + 2] * y[i + 2]
        s3 += <double> x[i + 3] * y[i + 3]
    for i in range(n4, n):
        s0 += <double> x[i] * y[i]
    return (s0 + s1) + (s2 + s3)
