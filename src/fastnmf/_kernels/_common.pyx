# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Shared pieces of the solver cores (see _common.pxd for the records and the workspace)."""

from cython cimport floating
from libc.math cimport sqrt, fabs, isfinite, fma, fmaf
from libc.stdint cimport int32_t, int64_t, uint64_t, uintptr_t
from libc.stdlib cimport realloc, free
from libc.string cimport memcpy
from cython.parallel cimport prange, threadid

import numpy as np

from ._blas cimport gemm, gram, dot


cdef int prepare_x(XData* x, object X, Py_ssize_t n, Py_ssize_t m, double sqnorm,
                   const floating[:, ::1] like) except -1:
    """Fill ``x`` from X: a dense ndarray (C- or F-contiguous) or the tuple
    (data, indptr, indices, data_t, indptr_t, indices_t) of X's and Xᵀ's CSR
    (int64 indptr, int32 indices), in the dtype of ``like``. X must outlive ``x``."""
    cdef const floating[::1] xd, rd, cd
    cdef const int64_t[::1] rptr, cptr
    cdef const int32_t[::1] rind, cind
    x.n = n
    x.m = m
    x.sqnorm = sqnorm
    if isinstance(X, tuple):
        rd, rptr, rind, cd, cptr, cind = X
        if rptr.shape[0] != n + 1 or cptr.shape[0] != m + 1:
            raise ValueError("sparse operands do not match the factors' shapes")
        x.sparse = True
        x.fortran = False
        x.dense = NULL
        x.other = NULL
        x.rdata = &rd[0] if rd.shape[0] else NULL
        x.rptr = &rptr[0]
        x.rind = &rind[0] if rind.shape[0] else NULL
        x.cdata = &cd[0] if cd.shape[0] else NULL
        x.cptr = &cptr[0]
        x.cind = &cind[0] if cind.shape[0] else NULL
        return 0
    if X.shape != (n, m) or not (X.flags.c_contiguous or X.flags.f_contiguous):
        raise ValueError("X must be C- or F-contiguous and match the factors' shapes")
    x.sparse = False
    x.fortran = not X.flags.c_contiguous
    xd = X.ravel(order="K")  # a view: X is contiguous
    x.dense = &xd[0]
    x.other = NULL
    return 0


cdef double x_entries(const XData* x) noexcept nogil:
    """The entries of X a product reads: n·m dense, nnz sparse (validation drops explicit
    zeros: they change nothing, accelerate's sweep cap included)."""
    return <double> x.rptr[x.n] if x.sparse else <double> x.n * x.m


cdef Py_ssize_t workspace_len(Py_ssize_t n, Py_ssize_t m, Py_ssize_t k, double beta,
                              int n_threads, Py_ssize_t region) noexcept nogil:
    """Entries of one call's workspace (the layout in _common.pxd), ``region`` those of the
    solver's own region."""
    cdef Py_ssize_t P = n if n > m else m
    cdef Py_ssize_t size = 4 * k * k + 2 * k * P + vectors_len(k, P, n_threads)
    if beta != 2:
        size += 2 * k * P + 2 * P + 2 * k
    size += region
    if keeps_other_order(n, m, k):
        size += n * m  # a tiny dense X in its other order, last (see other_order)
    return size


cdef inline bint keeps_other_order(Py_ssize_t n, Py_ssize_t m, Py_ssize_t k) noexcept nogil:
    return n * m * k <= OTHER_ORDER_WORK


cdef bint other_order(XData* x, Py_ssize_t k, floating* end) noexcept nogil:
    """For a tiny dense X, store X in its other order in the n·m entries before ``end``
    (the workspace's end) and point x.other at it: both products then run as plain
    (untransposed) BLAS calls, which OpenBLAS serves by its small-matrix kernels, several
    times faster than its packing path at these sizes (50 x 30, k = 5: 25 % of a call).
    Only up to OTHER_ORDER_WORK multiply-adds: from 100 x 80, k = 8 on, two such calls
    side by side (nmf_batch on two cores) ran 8 % slower than the packing path, which
    the copy no longer pays for. Returns whether it did."""
    cdef floating* O = end - x.n * x.m
    if x.sparse or not keeps_other_order(x.n, x.m, k):
        return False
    if x.fortran:  # X stored m×n: O is X in C order
        transpose(x.m, x.n, <const floating*> x.dense, O, 1)
    else:
        transpose(x.n, x.m, <const floating*> x.dense, O, 1)
    x.other = O
    return True


cdef Py_ssize_t vectors_len(Py_ssize_t k, Py_ssize_t P, int n_threads) noexcept nogil:
    """Entries of the workspace's region v: per thread acc_stride(k) (a sparse row's
    accumulator), then two doubles per sweep block (its violation and change) with room
    for alignment, then GRAM_PIECES k×k pieces of a Gram (factor_gram)."""
    return sums_at(k, n_threads) + sums_len(P) + GRAM_PIECES * k * k


cdef inline Py_ssize_t sums_at(Py_ssize_t k, int n_threads) noexcept nogil:
    """Where the per-block sums start in region v (after the threads' accumulators)."""
    return n_threads * acc_stride(k)


cdef inline Py_ssize_t sums_len(Py_ssize_t P) noexcept nogil:
    """Entries for two doubles per sweep block, with room for alignment."""
    return 4 * (P // SWEEP_MIN + 3)


cdef inline Py_ssize_t acc_stride(Py_ssize_t k) noexcept nogil:
    """Entries between two threads' accumulators of k entries: k rounded up to 16, plus 16
    (at least 64 bytes apart: no cache line written by two threads; 20000 x 5000 CSR,
    k = 30, with accumulators k apart the sparse products ran 1.7x slower)."""
    return (k + 15) // 16 * 16 + 16


# A factor's Gram comes from small_gram rather than syrk up to SMALL_GRAM multiply-adds
# (OpenBLAS' syrk, its scaling, packing and kernel, took 16 % of a 50 x 30, k = 5 call:
# 517 -> 447 us with dot products of our own; at 100 x 80, k = 8, 6400, syrk is the faster:
# 2.11 against 2.3 ms) and SMALL_GRAM_COLS columns: OpenBLAS' x86-64 kernels sum a longer
# inner dimension by blocks of 128 (Haswell and Zen on Windows) to 448 entries, which
# small_gram would not reproduce.
cdef Py_ssize_t SMALL_GRAM = 2048
cdef Py_ssize_t SMALL_GRAM_COLS = 128


cdef void factor_gram(Py_ssize_t k, Py_ssize_t p, const floating* F, floating* out,
                      floating* v, Py_ssize_t P, int n_threads) noexcept nogil:
    """out (k×k) = F Fᵀ for F (k×p, p <= P), v the workspace region of that name.
    small_gram up to SMALL_GRAM multiply-adds and SMALL_GRAM_COLS columns, one BLAS call
    below PARALLEL_MIN_WORK (and under GRAM_PIECES·64 columns), else GRAM_PIECES pieces
    of columns, each a single-threaded call into its own k×k, shared among the threads
    and added in order: the pieces depend on the shape alone, so the sum is the same for
    any thread count."""
    cdef Py_ssize_t kk = k * k, w = (p + GRAM_PIECES - 1) // GRAM_PIECES, c, i
    cdef floating* piece = v + sums_at(k, n_threads) + sums_len(P)
    if kk * p <= SMALL_GRAM and p <= SMALL_GRAM_COLS:
        small_gram(k, p, F, out)
        return
    if <double> kk * p < PARALLEL_MIN_WORK or p < GRAM_PIECES * 64:
        gram(<int> k, <int> p, F, <int> p, out)
        return
    for c in prange(GRAM_PIECES, schedule="dynamic",
                    num_threads=threads_for(n_threads, <double> kk * p)):
        gram(<int> k, <int> (w if (c + 1) * w <= p else p - c * w), F + c * w, <int> p,
             piece + c * kk)
    for i in range(kk):
        out[i] = piece[i]
    for c in range(1, GRAM_PIECES):
        for i in range(kk):
            out[i] += piece[c * kk + i]


cdef void small_gram(Py_ssize_t k, Py_ssize_t p, const floating* F,
                     floating* out) noexcept nogil:
    """out (k×k) = F Fᵀ, each entry summed in F's dtype from 0, its p products added in
    order, each by one fused multiply-add: how OpenBLAS' gemm and syrk kernels for
    Haswell and later, Zen and SkylakeX sum within one block of the inner dimension, so
    the same bits as NumPy's Fᵀ F (scikit-learn's cd Grams) for the small F it serves
    (up to rows beyond 8 of some kernels' edge cases, k >= 12). Another rounding of these
    tiny Grams sends degenerate runs elsewhere (scikit-learn's
    test_non_negative_factorization_consistency). Each sum is a chain of dependent
    additions: a block of 2 rows × 4 columns of the upper triangle at a time gives eight
    independent chains (indices past the end repeat the last row or column)."""
    cdef Py_ssize_t a, b, i, j
    cdef Py_ssize_t r[2]
    cdef Py_ssize_t c[4]
    cdef floating s[8]
    cdef const floating* x0
    cdef const floating* x1
    cdef const floating* y0
    cdef const floating* y1
    cdef const floating* y2
    cdef const floating* y3
    cdef floating f0, f1, g0, g1, g2, g3
    for a in range(0, k, 2):
        r[0] = a
        r[1] = a + 1 if a + 1 < k else a
        x0 = F + r[0] * p
        x1 = F + r[1] * p
        for b in range(a, k, 4):
            for j in range(4):
                c[j] = b + j if b + j < k else k - 1
            y0 = F + c[0] * p
            y1 = F + c[1] * p
            y2 = F + c[2] * p
            y3 = F + c[3] * p
            for j in range(8):
                s[j] = 0
            for i in range(p):
                f0 = x0[i]
                f1 = x1[i]
                g0 = y0[i]
                g1 = y1[i]
                g2 = y2[i]
                g3 = y3[i]
                s[0] = fmadd(f0, g0, s[0])
                s[1] = fmadd(f0, g1, s[1])
                s[2] = fmadd(f0, g2, s[2])
                s[3] = fmadd(f0, g3, s[3])
                s[4] = fmadd(f1, g0, s[4])
                s[5] = fmadd(f1, g1, s[5])
                s[6] = fmadd(f1, g2, s[6])
                s[7] = fmadd(f1, g3, s[7])
            for j in range(8):  # fma(x, y, s) = fma(y, x, s): either triangle's order
                out[r[j // 4] * k + c[j % 4]] = s[j]
                out[c[j % 4] * k + r[j // 4]] = s[j]


cdef inline floating fmadd(floating a, floating b, floating c) noexcept nogil:
    """a·b + c rounded once (one instruction where the build targets FMA)."""
    if floating is double:
        return fma(a, b, c)
    else:
        return fmaf(a, b, c)


def factor_gram_hook(const floating[:, ::1] F, int n_threads=1):
    """F Fᵀ as the solvers form a factor's Gram (factor_gram), for the tests."""
    cdef Py_ssize_t k = F.shape[0], p = F.shape[1]
    dtype = np.float64 if floating is double else np.float32
    out = np.empty((k, k), dtype=dtype)
    cdef floating[:, ::1] C = out
    cdef floating[::1] v = np.empty(vectors_len(k, p, n_threads), dtype=dtype)
    with nogil:
        factor_gram(k, p, &F[0, 0], &C[0, 0], &v[0], p, n_threads)
    return out


# The shape limits of the tiny Grams (small_gram), for the tests.
SMALL_GRAM_WORK = SMALL_GRAM
SMALL_GRAM_WIDTH = SMALL_GRAM_COLS


cdef inline double* block_sums(floating* v, Py_ssize_t k, int n_threads) noexcept nogil:
    """The doubles after the per-thread vectors of region v (8-byte aligned)."""
    cdef uintptr_t at = <uintptr_t> (v + sums_at(k, n_threads))
    return <double*> ((at + 7) & ~(<uintptr_t> 7))


cdef int threads_for(int n_threads, double work) noexcept nogil:
    """The threads worth starting for ``work`` multiply-adds: all of ``n_threads`` for a
    large task, else 1 (waking a thread costs more than a small task)."""
    return n_threads if work >= PARALLEL_MIN_WORK else 1


cdef inline Py_ssize_t sweep_width(Py_ssize_t k, Py_ssize_t size) noexcept nogil:
    """Columns per block of a sweep: the k rows of a block fill about SWEEP_BYTES (they
    are read once per component: they should stay in the first-level cache), a multiple
    of 32 between SWEEP_MIN and SWEEP_BLOCK. Depends on k and the dtype only."""
    cdef Py_ssize_t w = SWEEP_BYTES // (k * size)
    w -= w % 32
    return SWEEP_MIN if w < SWEEP_MIN else (SWEEP_BLOCK if w > SWEEP_BLOCK else w)


# Chunks of a threaded dense product, handed out one at a time (schedule dynamic): a
# thread that loses its core for a while leaves its share to the others.
cdef Py_ssize_t PRODUCT_CHUNKS = 16
# A chunk across X's storage order (columns of a C-ordered X) reads a piece of every row:
# pieces of at least STRIDED_BYTES keep the memory streams long (8000 x 4000, k = 50:
# Wᵀ X in 4 chunks of 1000 columns took 43 ms, in 16 of 256 columns 52 ms), as long as
# there are STRIDED_CHUNKS chunks or more to share.
cdef Py_ssize_t STRIDED_BYTES = 8192
cdef Py_ssize_t STRIDED_CHUNKS = 4


cdef inline Py_ssize_t round16(Py_ssize_t c) noexcept nogil:
    return (c + 15) // 16 * 16


cdef inline Py_ssize_t chunk_width(Py_ssize_t cols, bint strided,
                                   Py_ssize_t size) noexcept nogil:
    """Columns per chunk of a threaded dense product: at most PRODUCT_CHUNKS chunks of at
    least 256 (a multiple of 16: each BLAS call packs the other factor anew, wide chunks
    keep that small); ``strided`` chunks (across X's storage order, entries of ``size``
    bytes) wider, see STRIDED_BYTES. It depends on the shape only, so every thread count
    makes the same BLAS calls and the same result."""
    cdef Py_ssize_t c = round16((cols + PRODUCT_CHUNKS - 1) // PRODUCT_CHUNKS)
    cdef Py_ssize_t wide
    if strided:
        wide = round16((cols + STRIDED_CHUNKS - 1) // STRIDED_CHUNKS)
        if wide > STRIDED_BYTES // size:
            wide = STRIDED_BYTES // size
        if wide > c:
            c = wide
    return c if c > 256 else 256


# Multiply-adds from which a product runs threaded (the Python side holds BLAS to one
# thread from there on).
THREADED_WORK = PARALLEL_MIN_WORK


def left_product(X, floating[:, ::1] F, bint transpose, int n_threads=1):
    """The solvers' threaded products with a dense X (n×m, C- or F-contiguous, F's dtype),
    for the randomized range finder: F Xᵀ (l×n) for F (l×m), or with ``transpose`` F X
    (l×m) for F (l×n). Bit-identical for any ``n_threads``; hold BLAS to one thread
    around it (_threads.single_threaded_blas)."""
    cdef XData x
    cdef Py_ssize_t l = F.shape[0], n = X.shape[0], m = X.shape[1]
    if F.shape[1] != (n if transpose else m):
        raise ValueError("F does not match X")
    dtype = np.float64 if floating is double else np.float32
    out = np.empty((l, m if transpose else n), dtype=dtype)
    cdef floating[:, ::1] B = out
    prepare_x(&x, X, n, m, 0.0, F)
    with nogil:
        if transpose:
            product_H(&x, l, &F[0, 0], &B[0, 0], NULL, n_threads)
        else:
            product_W(&x, l, &F[0, 0], &B[0, 0], NULL, n_threads)
    return out


# scan reads its buffer in pieces of SCAN_PIECE entries (a fixed size: the sums, added
# piece by piece in order, are the same for any thread count), 8 lanes at a time.
cdef Py_ssize_t SCAN_PIECE = 65536


def scan(const floating[::1] values, int n_threads=1):
    """(minimum, maximum, all finite, Σ values² in double) in one pass over a contiguous
    buffer, shared among up to ``n_threads`` threads; the same result for any count."""
    cdef Py_ssize_t size = values.shape[0], pieces = (size + SCAN_PIECE - 1) // SCAN_PIECE
    cdef Py_ssize_t c
    cdef double[:, ::1] part = np.empty((pieces, 4))
    cdef double vmin, vmax, s = 0, z = 0
    cdef int nt = threads_for(n_threads, <double> size)
    with nogil:
        if nt == 1:
            for c in range(pieces):
                scan_piece(&values[0], c * SCAN_PIECE, size, &part[c, 0])
        else:
            for c in prange(pieces, schedule="static", num_threads=nt):
                scan_piece(&values[0], c * SCAN_PIECE, size, &part[c, 0])
        vmin, vmax = part[0, 1], part[0, 2]
        for c in range(pieces):
            s += part[c, 0]
            vmin = part[c, 1] if part[c, 1] < vmin else vmin
            vmax = part[c, 2] if part[c, 2] > vmax else vmax
            z += part[c, 3]
    return vmin, vmax, z == 0, s


cdef void scan_piece(const floating* values, Py_ssize_t i0, Py_ssize_t size,
                     double* out) noexcept nogil:
    """out = (Σ v², min, max, Σ (v − v)) over values[i0 : i0 + SCAN_PIECE] (within size):
    8 independent lanes, which the compiler vectorizes; the last sum is 0 exactly when
    every entry is finite (inf − inf and NaN are NaN)."""
    cdef Py_ssize_t i, l, i1 = i0 + SCAN_PIECE if i0 + SCAN_PIECE < size else size
    cdef Py_ssize_t body = i0 + (i1 - i0) // 8 * 8
    cdef double acc[8]
    cdef double lo[8]
    cdef double hi[8]
    cdef double fin[8]
    cdef double v
    for l in range(8):
        acc[l] = 0
        fin[l] = 0
        lo[l] = values[i0]
        hi[l] = values[i0]
    for i in range(i0, body, 8):
        for l in range(8):
            v = values[i + l]
            acc[l] += v * v
            lo[l] = v if v < lo[l] else lo[l]
            hi[l] = v if v > hi[l] else hi[l]
            fin[l] += v - v
    for i in range(body, i1):
        v = values[i]
        acc[0] += v * v
        lo[0] = v if v < lo[0] else lo[0]
        hi[0] = v if v > hi[0] else hi[0]
        fin[0] += v - v
    out[0] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
    out[1] = lo[0]
    out[2] = hi[0]
    out[3] = 0
    for l in range(8):
        out[1] = lo[l] if lo[l] < out[1] else out[1]
        out[2] = hi[l] if hi[l] > out[2] else out[2]
        out[3] += fin[l]


ctypedef fused index_t:
    int32_t
    int64_t


def first_decrease(const index_t[:] values):
    """The first i with values[i + 1] < values[i], or -1: one pass, no temporary (a sparse
    matrix's indptr is checked with it before anything reads through it)."""
    cdef Py_ssize_t i, found = -1
    with nogil:
        for i in range(values.shape[0] - 1):
            if values[i + 1] < values[i]:
                found = i
                break
    return found


def first_outside(const index_t[:] values, int64_t bound):
    """The first i with values[i] outside [0, bound), or -1: one pass, no temporary."""
    cdef Py_ssize_t i, found = -1
    with nogil:
        for i in range(values.shape[0]):
            if values[i] < 0 or values[i] >= bound:
                found = i
                break
    return found


cdef void transpose(Py_ssize_t rows, Py_ssize_t cols, const floating* F, floating* Ft,
                    int n_threads) noexcept nogil:
    """Ft (cols×rows) = Fᵀ for row-major F (rows×cols), by blocks of 64 columns of F
    (rows short streams read, a contiguous block written), shared among threads."""
    cdef Py_ssize_t nb = (cols + 63) // 64, b
    if threads_for(n_threads, 4.0 * rows * cols) == 1:  # memory-bound: worth it sooner
        for b in range(nb):
            transpose_block(rows, cols, F, Ft, b * 64)
        return
    for b in prange(nb, schedule="dynamic", num_threads=n_threads):
        transpose_block(rows, cols, F, Ft, b * 64)


cdef inline void transpose_block(Py_ssize_t rows, Py_ssize_t cols, const floating* F,
                                 floating* Ft, Py_ssize_t j0) noexcept nogil:
    cdef Py_ssize_t i, j, j1 = j0 + 64 if j0 + 64 < cols else cols
    for j in range(j0, j1):
        for i in range(rows):
            Ft[j * rows + i] = F[i * cols + j]


cdef void sparse_times(Py_ssize_t rows, const int64_t* ptr, const int32_t* ind,
                       const floating* data, Py_ssize_t k, const floating* Ft,
                       floating* out, floating* acc, int n_threads) noexcept nogil:
    """out (k×rows, component-major) = (Y · Ftᵀ)ᵀ for CSR Y (rows×q) and row-major Ft (q×k).

    Rows are shared among up to ``n_threads`` OpenMP threads; each row gathers the
    k-vectors Ft[j] of its non-zeros into its thread's accumulator (k contiguous entries
    at acc + thread · acc_stride(k): the loop vectorizes), then stores them as
    column r of ``out``. A row's sum is the same whatever the threads.
    """
    cdef Py_ssize_t r, c, p
    cdef int nt = threads_for(n_threads, <double> ptr[rows] * k)
    if nt == 1:
        for r in range(rows):
            sparse_row(r, ptr, ind, data, k, Ft, out, rows, acc)
        return
    for r in prange(rows, schedule="dynamic", chunksize=64, num_threads=nt):
        sparse_row(r, ptr, ind, data, k, Ft, out, rows, acc + threadid() * acc_stride(k))


cdef inline void sparse_row(Py_ssize_t r, const int64_t* ptr, const int32_t* ind,
                            const floating* data, Py_ssize_t k, const floating* Ft,
                            floating* out, Py_ssize_t rows, floating* a) noexcept nogil:
    """Column r of sparse_times' ``out``, gathered in ``a`` (k entries)."""
    cdef Py_ssize_t c, p
    cdef floating v
    cdef const floating* row
    for c in range(k):
        a[c] = 0
    for p in range(ptr[r], ptr[r + 1]):
        v = data[p]
        row = Ft + <Py_ssize_t> ind[p] * k
        for c in range(k):
            a[c] += v * row[c]
    for c in range(k):
        out[c * rows + r] = a[c]


cdef inline void dense_W_part(const XData* x, Py_ssize_t k, const floating* H, floating* B,
                              Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """Columns c0..c1 of B (k×n) = H Xᵀ, that is rows c0..c1 of X."""
    cdef int n = x.n, m = x.m, kk = k, w = c1 - c0
    cdef const floating* X = <const floating*> x.dense
    if w <= 0:
        return
    if x.fortran or x.other != NULL:  # Xᵀ stored m×n
        if not x.fortran:
            X = <const floating*> x.other
        gemm(False, False, kk, w, m, <floating> 1, H, m, X + c0, n, <floating> 0, B + c0, n)
    else:
        gemm(False, True, kk, w, m, <floating> 1, H, m, X + c0 * m, m, <floating> 0,
             B + c0, n)


cdef inline void dense_H_part(const XData* x, Py_ssize_t k, const floating* Wt, floating* B,
                              Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """Columns c0..c1 of B (k×m) = Wᵀ X, that is columns c0..c1 of X."""
    cdef int n = x.n, m = x.m, kk = k, w = c1 - c0
    cdef const floating* X = <const floating*> x.dense
    if w <= 0:
        return
    if x.fortran and x.other == NULL:  # stored Xᵀ is m×n
        gemm(False, True, kk, w, n, <floating> 1, Wt, n, X + c0 * n, n, <floating> 0,
             B + c0, m)
        return
    if x.fortran:  # X in C order
        X = <const floating*> x.other
    gemm(False, False, kk, w, n, <floating> 1, Wt, n, X + c0, m, <floating> 0, B + c0, m)


cdef void dense_product(const XData* x, Py_ssize_t k, const floating* F, floating* B,
                        floating* T, bint for_W, int n_threads) noexcept nogil:
    """B = H Xᵀ (k×n, ``for_W``, F = H) or B = Wᵀ X (k×m, F = Wt) for a dense X: one
    call below the threading threshold, else chunks of ``chunk_width`` columns of B (by
    the shape alone, so that any thread count makes the same calls); computed in T
    (k×P scratch, or NULL) and transposed into B where ``by_rows``."""
    cdef Py_ssize_t cols = x.n if for_W else x.m, w, c
    cdef bint rows = by_rows(x, for_W, T)
    cdef floating* out = T if rows else B
    if threads_for(2, <double> x.n * x.m * k) == 1:
        dense_part(x, k, F, out, rows, for_W, 0, cols)
    else:
        w = chunk_width(cols, for_W == x.fortran, sizeof(floating))
        for c in prange((cols + w - 1) // w, schedule="dynamic", num_threads=n_threads):
            dense_part(x, k, F, out, rows, for_W, c * w,
                       (c + 1) * w if (c + 1) * w < cols else cols)
    if rows:
        transpose(cols, k, T, B, n_threads)


cdef inline bint by_rows(const XData* x, bint for_W, const floating* T) noexcept nogil:
    """Whether a float32 product along X's storage order (rows of a C-ordered X for
    H Xᵀ, columns of an F-ordered one for Wᵀ X) is computed as (X's stored rows) Fᵀ into
    T (cols×k) and then transposed: OpenBLAS packs X faster as the second operand of
    sgemm (single-threaded, 2000 x 1000, k = 20: 1.12 against 1.34 ms; 3 to 18 % from
    500 x 400 to 8000 x 4000), while dgemm is faster the other way (2.88 against 3.56 ms)."""
    return floating is float and T != NULL and x.other == NULL and for_W != x.fortran


cdef inline void dense_part(const XData* x, Py_ssize_t k, const floating* F, floating* out,
                            bint rows, bint for_W, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    if rows:
        rows_part(x, k, F, out, for_W, c0, c1)
    elif for_W:
        dense_W_part(x, k, F, out, c0, c1)
    else:
        dense_H_part(x, k, F, out, c0, c1)


cdef inline void rows_part(const XData* x, Py_ssize_t k, const floating* F, floating* T,
                           bint for_W, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """Rows c0..c1 of T (cols×k) = (stored rows c0..c1 of X) Fᵀ (see by_rows)."""
    cdef int q = x.m if for_W else x.n, kk = k, w = c1 - c0
    if w <= 0:
        return
    gemm(False, True, w, kk, q, <floating> 1, <const floating*> x.dense + c0 * q, q, F, q,
         <floating> 0, T + c0 * k, kk)


cdef void product_W(const XData* x, Py_ssize_t k, const floating* H, floating* B,
                    floating* T, int n_threads) noexcept nogil:
    """B (k×n) = H Xᵀ: the product the W half-step needs (X Hᵀ, stored transposed).

    A large dense X is split into chunks of rows (``chunk_width``), one single-threaded
    BLAS call each (the caller holds BLAS to one thread: see _threads), shared among
    ``n_threads`` threads. T (k×P, P = max(n, m)) and the region v after it are
    scratch (a sparse X; a float32 X, see by_rows); T may be NULL for a dense X.
    """
    cdef Py_ssize_t n = x.n, m = x.m, P = n if n > m else m
    if x.sparse:
        transpose(k, m, H, T, n_threads)  # Hᵀ (m×k)
        sparse_times(n, x.rptr, x.rind, <const floating*> x.rdata, k, T, B, T + k * P,
                     n_threads)
        return
    dense_product(x, k, H, B, T, True, n_threads)


cdef void product_H(const XData* x, Py_ssize_t k, const floating* Wt, floating* B,
                    floating* T, int n_threads) noexcept nogil:
    """B (k×m) = Wᵀ X: the product the H half-step needs (threads and scratch as
    product_W, over blocks of columns of X)."""
    cdef Py_ssize_t n = x.n, m = x.m, P = n if n > m else m
    if x.sparse:
        transpose(k, n, Wt, T, n_threads)  # W (n×k)
        sparse_times(m, x.cptr, x.cind, <const floating*> x.cdata, k, T, B, T + k * P,
                     n_threads)
        return
    dense_product(x, k, Wt, B, T, False, n_threads)


cdef double loss_sq(const XData* x, Py_ssize_t k, Py_ssize_t p, const floating* F,
                    const floating* B, const floating* G, const floating* A) noexcept nogil:
    """‖X − WH‖² = ‖X‖² − 2⟨F, B⟩ + ⟨G, A⟩ where B is F's product with X (F = Wᵀ or H)
    and G, A are the Grams WᵀW, HHᵀ: no n × m work."""
    return x.sqnorm - 2 * dot(k * p, F, B) + dot(k * k, G, A)


# The final error of a dense float64 X comes from the last loss unless the relative error
# is below 1e-3 (squared: FINAL_DIRECT); forming it directly costs about one product.
cdef double FINAL_DIRECT = 1e-6


cdef double accurate_loss_sq(const XData* x, Py_ssize_t k, const floating* Wt,
                            const floating* H, double err_sq, floating* T,
                            Py_ssize_t T_len) noexcept nogil:
    """``err_sq`` from the expanded formula, or — when the relative error is so small that
    the formula cancels (below 1e-6 in float64, 1e-3 in float32) and X is dense — the
    error formed directly (docs/algorithms.md, "Measuring the error")."""
    cdef double d
    if not formed(x, err_sq, 1e-12 if floating is double else 1e-6):
        return err_sq
    d = direct_error(x, k, Wt, H, T, T_len)
    return d * d


cdef inline bint formed(const XData* x, double err_sq, double near) noexcept nogil:
    """Whether the error is formed directly rather than taken from the loss: a dense X
    fitted closer than ``near`` (‖X − WH‖² / ‖X‖²)."""
    return not x.sparse and err_sq < near * x.sqnorm


cdef double direct_error(const XData* x, Py_ssize_t k, const floating* Wt,
                         const floating* H, floating* T, Py_ssize_t T_len) noexcept nogil:
    """‖X − WH‖_F for dense X, formed a block of rows at a time in T (no n × m temporary)."""
    cdef Py_ssize_t n = x.n, m = x.m, b = T_len // m, r0, rb, i, j
    cdef const floating* X = <const floating*> x.dense
    cdef double s = 0, d
    if b > n:
        b = n
    r0 = 0
    while r0 < n:
        rb = b if r0 + b <= n else n - r0
        if x.fortran:
            for i in range(rb):
                for j in range(m):
                    T[i * m + j] = X[j * n + r0 + i]
        else:
            memcpy(T, X + r0 * m, rb * m * sizeof(floating))
        # T ← T − W[r0:r0+rb] H, with W rows taken as columns of Wt (k×n)
        gemm(True, False, <int> rb, <int> m, <int> k, <floating> -1, Wt + r0, <int> n, H,
             <int> m, <floating> 1, T, <int> m)
        for i in range(rb * m):
            d = T[i]
            s += d * d
        r0 += rb
    return sqrt(s)


cdef double hals_sweep(Py_ssize_t k, Py_ssize_t p, floating* F, const floating* A,
                       const floating* B, double l1, double l2, const Py_ssize_t* perm,
                       floating* v, bint measure, int n_threads, double* change) noexcept nogil:
    """One HALS / coordinate-descent sweep over the rows of F (k×p), in place.

    For t in perm: F[t] ← max(0, F[t] − (A[t]·F + l2·F[t] − B[t] + l1) / (A[t, t] + l2)),
    docs/algorithms.md's cd update with scikit-learn's regularization. Columns are independent,
    so the sweep runs block by block of sweep_width columns (same result, cache-resident
    rows), the blocks shared among up to ``n_threads`` threads; v is the workspace region
    of that name. Returns Σ |projected gradient| over the sweep (scikit-learn's violation)
    if ``measure``, else 0; if ``change`` is not NULL, stores ‖F_after − F_before‖²_F there.
    Both are summed block by block in order, whatever the threads.
    """
    cdef Py_ssize_t width = sweep_width(k, sizeof(floating))
    cdef Py_ssize_t nb = (p + width - 1) // width, b
    cdef double* sums = block_sums(v, k, n_threads)
    cdef double viol = 0, moved = 0
    cdef bint track = change != NULL
    cdef floating fl1 = l1, fl2 = l2
    cdef int nt = threads_for(n_threads, <double> k * k * p) if nb > 1 else 1
    if nt == 1:
        for b in range(nb):
            sums[0] = 0
            viol += sweep_block(k, p, F, A, B, fl1, fl2, perm, b * width, width, measure,
                                track, sums)
            moved += sums[0]
    else:
        for b in prange(nb, schedule="dynamic", num_threads=nt):
            sums[2 * b + 1] = 0
            sums[2 * b] = sweep_block(k, p, F, A, B, fl1, fl2, perm, b * width, width,
                                      measure, track, &sums[2 * b + 1])
        for b in range(nb):
            viol += sums[2 * b]
            moved += sums[2 * b + 1]
    if track:
        change[0] = moved
    return viol


cdef double sweep_block(Py_ssize_t k, Py_ssize_t p, floating* F, const floating* A,
                        const floating* B, floating fl1, floating fl2,
                        const Py_ssize_t* perm, Py_ssize_t j0, Py_ssize_t width,
                        bint measure, bint track, double* moved) noexcept nogil:
    """hals_sweep on the columns j0 .. j0 + width of F, a tile of SWEEP_TILE_BYTES at a
    time; returns their violation (0 unless ``measure``); adds their squared change to
    ``moved`` if ``track``."""
    cdef Py_ssize_t tile = SWEEP_TILE_BYTES // sizeof(floating)  # a constant to the compiler
    cdef Py_ssize_t jb = width if j0 + width <= p else p - j0
    cdef Py_ssize_t tiled = jb - jb % tile, s, t, j
    cdef floating hess
    cdef floating acc[SWEEP_TILE_MAX]
    cdef double viol = 0, dsum = 0
    for s in range(k):
        t = perm[s]
        hess = A[t * k + t] + fl2
        for j in range(tiled // tile):
            sweep_tile(k, p, F, A, B, fl1, fl2, t, hess, j0 + j * tile, tile, measure,
                       track, &viol, &dsum, acc)
        if tiled < jb:
            sweep_tile(k, p, F, A, B, fl1, fl2, t, hess, j0 + tiled, jb - tiled, measure,
                       track, &viol, &dsum, acc)
    if track:
        moved[0] += dsum
    return viol


cdef inline void sweep_tile(Py_ssize_t k, Py_ssize_t p, floating* F, const floating* A,
                            const floating* B, floating fl1, floating fl2, Py_ssize_t t,
                            floating hess, Py_ssize_t j0, Py_ssize_t w, bint measure,
                            bint track, double* viol, double* dsum,
                            floating* g) noexcept nogil:
    """Row t of F on the columns j0 .. j0 + w, at most a tile (g: the caller's local array,
    which with the constant w of a whole tile stays in registers): each
    column's gradient summed in the order of scikit-learn's kernel, its violation added to
    ``viol`` if ``measure``, the update, its squared change added to ``dsum`` if ``track``.
    Columns are independent, so a tile finishes before the next one starts."""
    cdef Py_ssize_t r, j
    cdef floating a, gj, old
    cdef floating* Ft = F + t * p + j0
    cdef const floating* Bt = B + t * p + j0
    cdef const floating* Fr
    cdef double d
    for j in range(w):
        g[j] = fl1 - Bt[j] + fl2 * Ft[j]
    for r in range(k):
        a = A[t * k + r]
        if a != 0:
            Fr = F + r * p + j0
            for j in range(w):
                g[j] += a * Fr[j]
    if measure:
        for j in range(w):
            gj = g[j]
            if Ft[j] > 0:
                viol[0] += fabs(gj)
            elif gj < 0:
                viol[0] -= gj
    if hess > 0:  # Ft ← max(Ft − g / hess, 0), written as a select that vectorizes
        if track:
            for j in range(w):
                old = Ft[j]
                gj = old - g[j] / hess
                Ft[j] = 0 if gj < 0 else gj
                d = Ft[j] - old
                dsum[0] += d * d
        else:
            for j in range(w):
                gj = Ft[j] - g[j] / hess
                Ft[j] = 0 if gj < 0 else gj


cdef inline uint64_t splitmix64(uint64_t* state) noexcept nogil:
    state[0] += 0x9E3779B97F4A7C15ULL
    cdef uint64_t z = state[0]
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef void next_permutation(Py_ssize_t k, Py_ssize_t* perm, bint shuffle,
                           uint64_t* state) noexcept nogil:
    """The order of one sweep: 0..k-1, or a Fisher–Yates shuffle of it from SplitMix64."""
    cdef Py_ssize_t i, j, tmp
    for i in range(k):
        perm[i] = i
    if shuffle:
        for i in range(k - 1, 0, -1):
            j = <Py_ssize_t> (splitmix64(state) % <uint64_t> (i + 1))
            tmp = perm[i]
            perm[i] = perm[j]
            perm[j] = tmp


# Entries of a history's first buffer; it doubles when full.
cdef Py_ssize_t HISTORY_START = 64


cdef void init_trace(Trace* t) noexcept nogil:
    """An empty trace: no history buffer yet (record allocates it), no hook."""
    t.history = NULL
    t.n_hist = 0
    t.capacity = 0
    t.out_of_memory = False
    t.n_iter = 0
    t.converged = False
    t.final_err = 0
    t.hook = NULL


cdef bint grow_history(Trace* t) noexcept nogil:
    """Double the history's buffer (C realloc: safe in any thread, no GIL); False if the
    memory is not there (the buffer is then unchanged)."""
    cdef Py_ssize_t capacity = 2 * t.capacity if t.capacity else HISTORY_START
    cdef double* grown = <double*> realloc(t.history, capacity * sizeof(double))
    if grown == NULL:
        return False
    t.history = grown
    t.capacity = capacity
    return True


cdef double record(Trace* t, double err_sq) noexcept nogil:
    """Append ‖X − WH‖_F (from its square, clamped at 0) to the history, growing it as it
    fills (a history as long as max_iter is never reserved); return it."""
    cdef double err = sqrt(err_sq) if err_sq > 0 else 0.0
    if not isfinite(err_sq):
        err = err_sq
    if t.n_hist < t.capacity or grow_history(t):
        t.history[t.n_hist] = err
        t.n_hist += 1
    else:
        t.out_of_memory = True
    return err


cdef int trace_status(const Trace* t, int status) noexcept nogil:
    """A solver's ``status``, or STATUS_NO_MEMORY if its history could not grow."""
    return STATUS_NO_MEMORY if status == STATUS_OK and t.out_of_memory else status


cdef object take_history(Trace* t):
    """The trace's history as a new float64 array; frees its buffer (call it once, also
    when the solve failed)."""
    cdef double[::1] out
    try:
        history = np.empty(t.n_hist, dtype=np.float64)
        out = history
        if t.n_hist:
            memcpy(&out[0], t.history, t.n_hist * sizeof(double))
    finally:
        free(t.history)
        t.history = NULL
        t.n_hist = t.capacity = 0
    return history


cdef int finish(const XData* x, Py_ssize_t k, const floating* Wt, const floating* H,
                floating* T, Py_ssize_t T_len, double err_sq, Trace* t) noexcept nogil:
    """Set the final error and the status. The last loss is accurate to about
    1e-16 · ‖X‖² / ‖X − WH‖² (relative): for a dense float64 X it is the final error
    unless the fit is closer than FINAL_DIRECT (then the error is formed directly, as it
    always is for float32); a sparse X always takes the loss (docs/algorithms.md)."""
    if not isfinite(err_sq):
        return STATUS_NONFINITE
    if (floating is float and not x.sparse) or formed(x, err_sq, FINAL_DIRECT):
        t.final_err = direct_error(x, k, Wt, H, T, T_len)
    else:
        t.final_err = sqrt(err_sq) if err_sq > 0 else 0.0
    if not isfinite(t.final_err):
        return STATUS_NONFINITE
    return STATUS_OK


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


def omp_max_threads():
    """OpenMP's thread count for a parallel region started by the calling thread
    (``omp_get_max_threads``: OMP_NUM_THREADS, omp_set_num_threads as threadpoolctl's
    OpenMP limits call it); 1 in a build without OpenMP."""
    return fastnmf_omp_max_threads()
