# A factor's Gram F Fᵀ: tiny ones as NumPy rounds them, large ones from fixed pieces.
# Included by _common.pyx (one module: the cdef functions are declared in _common.pxd).


# A factor's Gram comes from tiny_gram rather than syrk for 2 <= k <= TINY_GRAM_K and up to
# SMALL_GRAM_COLS columns: OpenBLAS' x86-64 kernels sum a longer inner dimension by blocks
# of 128 (Haswell and Zen on Windows) to 448 entries, which one chain per entry would not
# reproduce. Within those bounds every entry of OpenBLAS' syrk with the FMA kernels of
# Haswell, Zen and SkylakeX is one chain of fused multiply-adds from 0 in column order
# (test_factor_gram_as_numpy checks it entry by entry), and so is tiny_gram's: it replaces
# syrk where the BLAS has those kernels (TINY_GRAMS, set at import), and elsewhere up to
# SMALL_GRAM multiply-adds only. syrk packs F and takes a buffer from OpenBLAS' pool under
# a mutex on every call, far more than the sums at these sizes; from two threads of one
# batch, each call contends for that pool (the packing routines and pthread_mutex_lock in
# the issue's Intel profile). small_gram, the same sums one entry at a time, serves
# k >= 12 up to SMALL_GRAM (OpenBLAS' edge kernels order some entries otherwise) and k = 1.
cdef Py_ssize_t SMALL_GRAM = 2048
cdef Py_ssize_t SMALL_GRAM_COLS = 128
cdef Py_ssize_t TINY_GRAM_K = 11
cdef bint TINY_GRAMS = False


def tiny_grams(value=None):
    """TINY_GRAMS, and with ``value`` set it (returns the old value): set at import from
    the BLAS's kernels; the tests set it between calls (never while one runs)."""
    global TINY_GRAMS
    old = TINY_GRAMS
    if value is not None:
        TINY_GRAMS = bool(value)
    return old


def tiny_gram_max_k(value=None):
    """TINY_GRAM_K, and with ``value`` set it (returns the old value): the tests and the
    bench set it between calls (1: tiny_gram off, as before it)."""
    global TINY_GRAM_K
    old = TINY_GRAM_K
    if value is not None:
        if not 1 <= value <= 11:  # tiny_gram_rows holds 12 columns
            raise ValueError("tiny_gram takes k up to 11")
        TINY_GRAM_K = value
    return old


cdef void factor_gram(Py_ssize_t k, Py_ssize_t p, const floating* F, floating* out,
                      floating* v, Py_ssize_t P, int n_threads) noexcept nogil:
    """out (k×k) = F Fᵀ for F (k×p, p <= P), v the workspace region of that name.
    tiny_gram for 2 <= k <= TINY_GRAM_K and p <= SMALL_GRAM_COLS (with TINY_GRAMS, else
    up to SMALL_GRAM multiply-adds), small_gram for other k up to SMALL_GRAM
    multiply-adds and SMALL_GRAM_COLS columns, one BLAS call below PARALLEL_MIN_WORK (and
    under GRAM_PIECES·64 columns), else GRAM_PIECES pieces of columns, each a
    single-threaded call into its own k×k, shared among the threads and added in order:
    the pieces depend on the shape alone, so the sum is the same for any thread count."""
    cdef Py_ssize_t kk = k * k, w = (p + GRAM_PIECES - 1) // GRAM_PIECES, c, i
    cdef floating* piece = v + sums_at(k, n_threads) + sums_len(P)
    if p <= SMALL_GRAM_COLS and 2 <= k <= TINY_GRAM_K and (TINY_GRAMS or kk * p <= SMALL_GRAM):
        tiny_gram(k, p, F, out)
        return
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


cdef void tiny_gram(Py_ssize_t k, Py_ssize_t p, const floating* F,
                    floating* out) noexcept nogil:
    """out (k×k) = F Fᵀ for 2 <= k <= TINY_GRAM_K, p <= SMALL_GRAM_COLS: tiny_gram_rows
    with k and its padded width constants in each call."""
    if k == 2:
        tiny_gram_rows(p, F, out, 2, 4)
    elif k == 3:
        tiny_gram_rows(p, F, out, 3, 4)
    elif k == 4:
        tiny_gram_rows(p, F, out, 4, 4)
    elif k == 5:
        tiny_gram_rows(p, F, out, 5, 8)
    elif k == 6:
        tiny_gram_rows(p, F, out, 6, 8)
    elif k == 7:
        tiny_gram_rows(p, F, out, 7, 8)
    elif k == 8:
        tiny_gram_rows(p, F, out, 8, 8)
    elif k == 9:
        tiny_gram_rows(p, F, out, 9, 12)
    elif k == 10:
        tiny_gram_rows(p, F, out, 10, 12)
    else:
        tiny_gram_rows(p, F, out, 11, 12)


cdef inline void tiny_gram_rows(Py_ssize_t p, const floating* F, floating* out,
                                Py_ssize_t k, Py_ssize_t kp) noexcept nogil:
    """tiny_gram, called with k and kp (k rounded up to 4) constants: inlined, each loop
    over the kp columns is a few vector instructions and the sums stay in registers.
    F's columns are copied first as the rows of T (p×kp, zeros past k); then, 4 rows of
    the Gram at a time, each of their entries (a, b) is the chain of fused multiply-adds
    of T[i, a]·T[i, b] over i in order, from 0: a row's kp entries in vectors, the 4
    rows independent chains (small_gram's sums, 4 + kp/lanes times fewer instructions).
    A row past k repeats the last one; fma(x, y, s) = fma(y, x, s), so entry (a, b) and
    (b, a) are the same sum."""
    cdef floating T[128 * 12]  # SMALL_GRAM_COLS x 12
    cdef floating s0[12]
    cdef floating s1[12]
    cdef floating s2[12]
    cdef floating s3[12]
    cdef floating x0, x1, x2, x3
    cdef const floating* t
    cdef Py_ssize_t i, a, b, r1, r2, r3
    for i in range(p):
        for a in range(k):
            T[i * kp + a] = F[a * p + i]
        for a in range(k, kp):
            T[i * kp + a] = 0
    for a in range(0, k, 4):
        r1 = a + 1 if a + 1 < k else a
        r2 = a + 2 if a + 2 < k else a
        r3 = a + 3 if a + 3 < k else a
        for b in range(kp):
            s0[b] = 0
            s1[b] = 0
            s2[b] = 0
            s3[b] = 0
        for i in range(p):
            t = T + i * kp
            x0 = t[a]
            x1 = t[r1]
            x2 = t[r2]
            x3 = t[r3]
            for b in range(kp):
                s0[b] = fmadd(x0, t[b], s0[b])
                s1[b] = fmadd(x1, t[b], s1[b])
                s2[b] = fmadd(x2, t[b], s2[b])
                s3[b] = fmadd(x3, t[b], s3[b])
        for b in range(k):
            out[a * k + b] = s0[b]
            out[r1 * k + b] = s1[b]
            out[r2 * k + b] = s2[b]
            out[r3 * k + b] = s3[b]


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


# The shape limits of the tiny Grams (tiny_gram, small_gram), for the tests.
SMALL_GRAM_WORK = SMALL_GRAM
SMALL_GRAM_WIDTH = SMALL_GRAM_COLS
TINY_GRAM_MAX_K = TINY_GRAM_K
