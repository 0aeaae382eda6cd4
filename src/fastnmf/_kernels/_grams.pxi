# A factor's Gram F Fᵀ: tiny ones as NumPy rounds them, large ones from fixed pieces.
# Included by _common.pyx (one module: the cdef functions are declared in _common.pxd).


# A factor's Gram comes from small_gram rather than syrk up to SMALL_GRAM multiply-adds
# and SMALL_GRAM_COLS columns: OpenBLAS' x86-64 kernels sum a longer inner dimension by
# blocks of 128 (Haswell and Zen on Windows) to 448 entries, which small_gram would not
# reproduce. (OpenBLAS' syrk, its scaling, packing and kernel, took 16 % of a 50 x 30,
# k = 5 call: 517 -> 447 us.) Where the BLAS has OpenBLAS' FMA kernels (Haswell, Zen,
# SkylakeX: SMALL_GRAMS, set at import), every entry of its syrk up to SMALL_GRAM_COLS
# columns and k <= SMALL_GRAM_MAX_K is that same chain of fused multiply-adds
# (test_small_gram_sums_as_syrk checks it entry by entry), and small_gram replaces it for
# any k²p there: syrk packs F and takes a buffer from OpenBLAS' pool under a mutex on
# every call, which at these sizes costs more than the sums (syrk / small_gram per Gram,
# one thread, AMD EPYC, OpenBLAS 0.3.30: 1.1 (k = 8, p = 100) to 2.4 (k = 3, p = 30) in
# float64, 0.8 (float32, k = 8, p = 128) to 2.4; an earlier whole 100 x 80, k = 8 call
# had syrk the faster, 2.11 against 2.3 ms), and from two threads of one batch each call
# contends for that pool (the packing routines and pthread_mutex_lock in the issue's
# Intel profile). A vectorized copy of these sums (F's columns copied as rows, several
# rows of the Gram in vectors at once) won only for some k, as GCC kept its sums in
# registers or not: not kept.
cdef Py_ssize_t SMALL_GRAM = 2048
cdef Py_ssize_t SMALL_GRAM_COLS = 128
cdef Py_ssize_t SMALL_GRAM_MAX_K = 11
cdef bint SMALL_GRAMS = False


def small_grams(value=None):
    """SMALL_GRAMS, and with ``value`` set it (returns the old value): set at import from
    the BLAS's kernels; the tests set it between calls (never while one runs)."""
    global SMALL_GRAMS
    old = SMALL_GRAMS
    if value is not None:
        SMALL_GRAMS = bool(value)
    return old


cdef void factor_gram(Py_ssize_t k, Py_ssize_t p, const floating* F, floating* out,
                      floating* v, Py_ssize_t P, int n_threads) noexcept nogil:
    """out (k×k) = F Fᵀ for F (k×p, p <= P), v the workspace region of that name.
    small_gram up to SMALL_GRAM multiply-adds and SMALL_GRAM_COLS columns (with
    SMALL_GRAMS, any k²p for k <= SMALL_GRAM_MAX_K), one BLAS call below
    PARALLEL_MIN_WORK (and under GRAM_PIECES·64 columns), else GRAM_PIECES pieces of
    columns, each a single-threaded call into its own k×k, shared among the threads and
    added in order: the pieces depend on the shape alone, so the sum is the same for any
    thread count."""
    cdef Py_ssize_t kk = k * k, w = (p + GRAM_PIECES - 1) // GRAM_PIECES, c, i
    cdef floating* piece = v + sums_at(k, n_threads) + sums_len(P)
    if p <= SMALL_GRAM_COLS and (kk * p <= SMALL_GRAM
                                 or (SMALL_GRAMS and k <= SMALL_GRAM_MAX_K)):
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
SMALL_GRAM_K = SMALL_GRAM_MAX_K
