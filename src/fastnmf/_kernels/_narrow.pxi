# The products with a dense X when k is small, in registers instead of BLAS calls: the
# row-block engine's with a block of rows X_b (w × m), B = H X_bᵀ (k × w) as dot products
# of rows (narrow_times) and acc (k × m) += F X_b (narrow_add), and the two-pass loop's
# (narrow_part in _products.pxi: its chunks of stored rows by narrow_times, of stored
# columns by narrow_add). OpenBLAS's Haswell kernels (which its Zen target uses too) pack
# both operands of every call and run these narrow shapes well below their peak; these
# loops read X straight from the cache, keep a 4 × 4 block of dot products (narrow_times;
# 6 × 4 with AVX-512's 32 registers) or a 4-row strip of acc (narrow_add; 5 rows with
# 32 registers) in vector registers, and use fused multiply-adds
# (fma: one rounding, whatever the instruction set, so every build level gives the same
# bits; without FMA instructions, x86-64's baseline, a library call).
# Measured on an AMD EPYC (Zen 5), cd, time per iteration these loops over BLAS, BLAS held
# to one thread, with the Haswell kernels: 1333 x 1000, one thread, float64 0.52 (k = 10)
# and 0.65 (k = 40), float32 0.49 and 0.72; 8000 x 4000, two threads, float64 0.63
# (k = 20), 0.78 (k = 50), 0.86 (k = 128), float32 0.70, 0.71, 0.81. The two-pass loop's
# (X below ENGINE_MIN_BYTES), whole calls, 200 iterations: 0.58-0.99 (50 x 30 k = 5, which
# narrow_call leaves to BLAS, to 400 x 300 k = 20; float32 0.61-0.99). A tiny X kept in
# both orders (narrow_both), same measure, one thread: float64 0.63-0.99 (500 x 10 k = 6 to
# 40 x 30 k = 27; 50 x 30 k = 5 0.81), float32 0.59-0.87 (200 x 20 k = 8 to 70 x 40
# k = 11); float32 with both sides under 64, 1.17-1.19 (BLAS keeps those). With the SkylakeX
# kernels (small-matrix kernels without packing) they lost: float64 1.41 and 1.03
# (1333 x 1000, k = 10 and 40), 1.09 and 1.25 (8000 x 4000, k = 20 and 50); float32
# 0.85-1.55. Since put_strip adds by vectors they win there too except on a small X (same
# machine, random start, two threads: 500 x 400 to 8000 x 4000, k = 5 to 128, 0.47-1.04,
# one thread 0.51-1.09; whole calls of 200 iterations on 50 x 30 to 100 x 80, where
# OpenBLAS's small-matrix kernels run, 1.00-1.50; the medium case of bench/compare.py,
# 2000 x 1000, k = 20, nndsvda, 200 iterations: float64 345 -> 274 ms, float32 227 ->
# 142 ms). Whole calls, nndsvda, 200 iterations, two threads: an X of n·m·k up to 10^6
# 0.50-1.52, mixed (float64 1.09-1.28 up to 100 x 80, k = 8, 0.71-0.97 from 300 x 200,
# k = 10; float32 1.00-1.52 up to 200 x 100, k = 10, 0.50-1.12 above), past it 0.60-1.17
# (k = 6, whose blocks of 4 and strips of 4 overlap by 2 rows, 1.00-1.17 from 700 x 500
# to 2000 x 1000, 1.02 at 8000 x 2000; k >= 7 0.60-1.05). So they run where the BLAS's
# kernels are the Haswell or the SkylakeX ones and the CPU has AVX2 and FMA at least
# (NARROW_KERNELS, set at import as ROWS_FIRST is), for 4 <= k <= NARROW_MAX_K: with
# AVX-512 128, the largest k measured; with AVX2 alone, whose 16 vector registers take
# smaller blocks (dots3x2, strip4x1: _narrow16.h), 20 (fastnmf/_kernels/__init__.py says
# why); with the SkylakeX kernels (NARROW_SMALL False) not on the two-pass loop's X of
# SMALL_BLAS_WORK multiply-adds or fewer (narrow_whole). Exact tails for k = 6 (a 2-row
# block of H, a 2-row strip of F after the blocks of 4) were slower still (1.00-1.13 x
# the overlapping blocks), and 6 rows of H by 4 of X (dots6x4 with the two exchanged)
# 0.92 in cache but 1.01-1.10 on 8000 x 2000: neither kept.
# Included by _common.pyx.


cdef extern from *:
    """
    #if defined(__AVX512F__)
    #define FASTNMF_WIDE_REGISTERS 1
    #else
    #define FASTNMF_WIDE_REGISTERS 0
    #endif
    """
    # Whether this build has 32 vector registers of 8 float64 lanes (x86-64-v4: AVX-512):
    # narrow_times then takes 6 rows of X at a time (dots6x4) or, for k = 5 and 9, 5 rows
    # of H (dots4x5), and narrow_add 5 rows of F where that makes fewer strips
    # (narrow_strip5: strips_of_five); with FASTNMF_AVX2_KERNELS the blocks below; else
    # (the baseline) 4 and 4 (dots4x4, narrow_strip). The same sums either way: every
    # level gives the same bits.
    bint FASTNMF_WIDE_REGISTERS


cdef extern from "_narrow16.h":
    # Whether this build has 16 vector registers of 4 float64 lanes with fused multiply-adds
    # (x86-64-v3: AVX2 and FMA, without AVX-512): narrow_times then takes blocks of 3 rows
    # of X by 2 of H (dots3x2), narrow_add strips of 4 rows of F by ``lanes`` columns
    # (strip4x1), their vector loops from _narrow16.h (dots4x4 and narrow_strip spill
    # there). The same sums either way. As an AVX2-only CPU runs them (FASTNMF_CPU=
    # x86_64_v3, OPENBLAS_CORETYPE=Haswell, AMD EPYC Zen 5, one thread), per block of 64
    # rows H X_bᵀ then F X_b (as the engine forms them), over BLAS: float64 0.79-0.93
    # (2000 x 1000 to 8000 x 4000, k = 8 and 20), float32 0.85-1.07. Tried and not kept:
    # strips of 3 rows by 2·lanes columns (16 registers) and blocks of 6 rows of X by 1 of
    # H (7 loads for 6 multiply-adds, more than two a cycle: 0.84-1.21), a prefetch of X's
    # rows ahead in strip4x1, the vector loops unrolled twice, and strips of 5 rows where
    # strips_of_five (10 independent sums, for the FMA latency of 5 cycles of Intel's
    # Haswell and Broadwell, which strip4x1's 8 do not cover; Zen 5's latency is 4): no
    # change on Zen 5, untried on those.
    bint FASTNMF_AVX2_KERNELS
    void fastnmf_dots3x2_d(const double* x0, const double* x1, const double* x2,
                           const double* h0, const double* h1, Py_ssize_t end, double* s00,
                           double* s01, double* s10, double* s11, double* s20,
                           double* s21) noexcept nogil
    void fastnmf_dots3x2_s(const float* x0, const float* x1, const float* x2,
                           const float* h0, const float* h1, Py_ssize_t end, float* s00,
                           float* s01, float* s10, float* s11, float* s20,
                           float* s21) noexcept nogil
    void fastnmf_strip4x1_d(const double* X, Py_ssize_t w, Py_ssize_t ld, const double* F,
                            Py_ssize_t ldf, double* a0, double* a1, double* a2,
                            double* a3) noexcept nogil
    void fastnmf_strip4x1_s(const float* X, Py_ssize_t w, Py_ssize_t ld, const float* F,
                            Py_ssize_t ldf, float* a0, float* a1, float* a2,
                            float* a3) noexcept nogil


cdef bint NARROW_KERNELS = False
# The largest k the narrow kernels take: 128 with AVX-512's registers, less with AVX2's
# (set at import: fastnmf/_kernels/__init__.py says why).
cdef Py_ssize_t NARROW_MAX_K = 128
# Whether the two-pass loop's products with a small X (n·m·k up to SMALL_BLAS_WORK) run in
# the narrow kernels too: with the Haswell kernels, which pack every operand; not with the
# SkylakeX ones, whose small-matrix kernels (OpenBLAS takes them for M·N·K of at most
# 100³, without packing) were faster on the smallest X (above). The engine's blocks do
# not look (each block's products are the same calls whatever X's rows: narrow_call).
cdef bint NARROW_SMALL = True
cdef double SMALL_BLAS_WORK = 1e6
# Bytes of a row of X that narrow_times and narrow_add take at a time: 4 rows' pieces
# (16 KiB) stay in the first-level cache (32-48 KiB on current x86 cores) and k rows'
# (160 KiB at k = 40, 512 KiB at 128) in the second (512 KiB to 2 MiB) while the other
# factor's rows pass them. A multiple of both kernels' strips (64 and 256 bytes). Without
# pieces, on 8000 x 4000 float64 (two threads), these loops were 1.00 x BLAS at k = 40
# and 1.06-1.14 x at k = 50 to 80; with them 0.81 and 0.87.
cdef Py_ssize_t NARROW_PIECE_BYTES = 4096
# Bytes of the pieces of X's rows in a band of narrow_add (narrow_band): the band stays in
# the core's own cache (L2: 1-2 MiB on current x86 cores, 512 KiB on AMD Zen 2/3) while
# all k rows of F pass it. Without bands narrow_add ran each 4-row strip of F over every
# row of X: for the start's products on 8000 x 4000 float64 (k + 10 = 60 columns) X's
# pieces came from memory 15 times, and the start plus one iteration took 1.50 s against
# 0.56 s on BLAS's SkylakeX kernels. Measured (AMD EPYC, Zen 5, two threads), that call:
# bands of 128 KiB 0.68 s, 256 KiB 0.66, 512 KiB 0.67, 1 MiB 0.70. An X in cache gains
# nothing from bands (the two-pass loop below ENGINE_MIN_BYTES, 100 iterations: 1.00-1.14
# x the time with 256 KiB), so a band is 1 MiB: such an X, and every block of the engine
# (ENGINE_BLOCK_BYTES or 64 rows), is one band and adds in the same order as before.
cdef Py_ssize_t NARROW_BAND_BYTES = 1048576


def narrow_kernels(value=None):
    """NARROW_KERNELS, and with ``value`` set it (returns the old value): set at import
    from the BLAS's kernels and the CPU; the tests and the bench set it between calls
    (never while one runs)."""
    global NARROW_KERNELS
    old = NARROW_KERNELS
    if value is not None:
        NARROW_KERNELS = bool(value)
    return old


def narrow_max_k(value=None):
    """NARROW_MAX_K, and with ``value`` set it (returns the old value): set at import from
    the CPU's vector registers (fastnmf/_kernels/__init__.py); the tests set it between
    calls."""
    global NARROW_MAX_K
    old = NARROW_MAX_K
    if value is not None:
        NARROW_MAX_K = int(value)
    return old


def narrow_small(value=None):
    """NARROW_SMALL, and with ``value`` set it (returns the old value): set at import from
    the BLAS's kernels; the tests and the bench set it between calls."""
    global NARROW_SMALL
    old = NARROW_SMALL
    if value is not None:
        NARROW_SMALL = bool(value)
    return old


def narrow_hook(const floating[:, ::1] X, const floating[:, ::1] F, floating[:, ::1] out,
                bint add, bint first=True):
    """For the tests: ``out`` (k × w) = F Xᵀ by narrow_times (F: k × m), or with ``add``
    out (k × m) += F X, = with ``first``, by narrow_add (F: k × w), for X (w × m)."""
    cdef Py_ssize_t w = X.shape[0], m = X.shape[1], k = F.shape[0]
    cdef Py_ssize_t lanes = 16 if floating is float else 8
    if k < 4 or (not add and w < 4) or (add and m < 4 * lanes):
        raise ValueError("narrow kernels need k >= 4, and w >= 4 or m >= 4·lanes")
    if F.shape[1] != (w if add else m) or out.shape[0] != k or out.shape[1] != (m if add else w):
        raise ValueError("shapes do not match")
    with nogil:
        if add:
            narrow_add(&X[0, 0], m, w, m, &F[0, 0], k, &out[0, 0], first)
        else:
            narrow_times(&X[0, 0], w, m, &F[0, 0], k, &out[0, 0], w)


cdef bint narrow_call(const XData* x, Py_ssize_t k) noexcept nogil:
    """Whether the products with a dense X run in narrow_times and narrow_add: those of
    their pieces that are wide enough (at least 4 rows for narrow_times, 4·lanes columns
    for narrow_add); the others go to BLAS, into the same layout (the engine's
    accumulator k × m). Not for an X with fewer than 4·lanes columns, whose rows are
    mostly the dot products' tails (50 x 30 float32, k = 5: 1.22 x BLAS's time). The
    same for every chunk of rows of one X (it reads k and X's columns only): the engine's
    accumulator keeps one layout through a pass (acc_transposed)."""
    return narrow_k(k) and not x.sparse and x.m >= narrow_least(x)


cdef inline bint narrow_whole(const XData* x, Py_ssize_t k) noexcept nogil:
    """Whether the two-pass loop's products with a dense X (the whole of X, its own
    rows' count known) run in the narrow kernels: narrow_call's rule, and with NARROW_SMALL
    unset only past SMALL_BLAS_WORK multiply-adds."""
    return narrow_call(x, k) and (NARROW_SMALL or <double> x.n * x.m * k > SMALL_BLAS_WORK)


cdef inline bint narrow_k(Py_ssize_t k) noexcept nogil:
    """Whether the narrow kernels run at all for this k (narrow_call, narrow_both)."""
    return NARROW_KERNELS and 4 <= k <= NARROW_MAX_K


cdef inline Py_ssize_t narrow_least(const XData* x) noexcept nogil:
    """4·lanes: the fewest entries of a side of X that the narrow kernels take."""
    return 64 if x.itemsize == 4 else 32


cdef inline bint narrow_both(const XData* x, Py_ssize_t k) noexcept nogil:
    """Whether the two-pass loop's products with a tiny dense X that keeps its other
    order too (other_order: X stored both ways) run in the narrow kernels, each on the
    layout that suits it (narrow_part): narrow_add where the product has 4·lanes columns
    or more, else narrow_times, whose dot products then run along X's longer side. For
    4 <= k <= NARROW_MAX_K and an X with 4·lanes rows or columns (narrow_call's rule
    for either side; with both sides shorter, BLAS forms them), with NARROW_SMALL (such
    an X is within SMALL_BLAS_WORK)."""
    cdef Py_ssize_t least = narrow_least(x)
    return (x.other != NULL and NARROW_SMALL and narrow_k(k)
            and (x.n >= least or x.m >= least))


cdef void narrow_times(const floating* X, Py_ssize_t w, Py_ssize_t m, const floating* H,
                       Py_ssize_t k, floating* B, Py_ssize_t ldb) noexcept nogil:
    """B (k × w, rows ldb apart) = H X_bᵀ for X_b (w × m, rows of m entries) and H (k × m);
    w, k >= 4. Each entry is a dot product of a row of X_b and a row of H, taken over
    pieces of NARROW_PIECE_BYTES of the rows in turn (a piece of 4 or 6 rows of X_b stays
    in the core's first cache while every row of H passes it), each piece's sum in
    ``lanes`` partial sums (entry c into lane c mod lanes) added pairwise, the pieces'
    sums added in order: the same order whichever block it is computed in. Blocks of 4
    rows (6 with FASTNMF_WIDE_REGISTERS, when w >= 6: dots6x4) × 4 rows of H; the last
    block of each ends at w (at k), overlapping the one before, and writes only what that
    one did not (``r_from``, ``t_from``). AMD EPYC (Zen 5), Haswell kernels, two threads,
    8000 x 4000 float64: H Xᵀ for 50 and 60 rows of H 27.6 and 26.5 ms with 4 rows, 22.4
    and 25.2 ms with 6; cd with k = 50 53.4 against 49.1 ms per iteration."""
    cdef Py_ssize_t piece = NARROW_PIECE_BYTES // sizeof(floating)
    cdef Py_ssize_t hs = 4
    cdef Py_ssize_t rows = 4
    cdef Py_ssize_t j, t, j0, t0, c0, c1
    if FASTNMF_WIDE_REGISTERS:
        hs = 5 if fewer_by_fives(k) else 4
        rows = 6 if w >= 6 and hs == 4 else 4
    elif FASTNMF_AVX2_KERNELS:  # dots3x2
        hs = 2
        rows = 3
    c0 = 0
    while c0 < m:
        c1 = c0 + piece if c0 + piece < m else m
        j = 0
        while j < w:
            j0 = j if j + rows <= w else w - rows
            t = 0
            while t < k:
                t0 = t if t + hs <= k else k - hs
                if hs == 2:
                    dots3x2(X + j0 * m + c0, c1 - c0, m, H + t0 * m + c0,
                            B + t0 * ldb + j0, ldb, c0 > 0, j - j0, t - t0)
                elif hs == 5:
                    dots4x5(X + j0 * m + c0, c1 - c0, m, H + t0 * m + c0,
                            B + t0 * ldb + j0, ldb, c0 > 0, j - j0, t - t0)
                elif rows == 6:
                    dots6x4(X + j0 * m + c0, c1 - c0, m, H + t0 * m + c0,
                            B + t0 * ldb + j0, ldb, c0 > 0, j - j0, t - t0)
                else:
                    dots4x4(X + j0 * m + c0, c1 - c0, m, H + t0 * m + c0,
                            B + t0 * ldb + j0, ldb, c0 > 0, j - j0, t - t0)
                t += hs
            j += rows
        c0 = c1


cdef inline bint fewer_by_fives(Py_ssize_t k) noexcept nogil:
    """Whether H's rows go by blocks of 5 (dots4x5): where they form fewer dot products
    than blocks of 4 (each block ends at k, overlapping the one before) for k below 10,
    that is k = 5 (5 rows instead of 8) and 9 (10 instead of 12). From k = 10 on,
    dots6x4's reuse of H gains as much: 2666 x 2000 and 8000 x 4000 float64, k = 10,
    the same time per iteration either way (AMD EPYC, Zen 5). 50 x 30, k = 5, whole
    calls: 0.93 x the time (tiny2 pairs, 496 against 514-522 µs)."""
    return k == 5 or k == 9


cdef void dots4x4(const floating* X, Py_ssize_t m, Py_ssize_t ld, const floating* H,
                  floating* out, Py_ssize_t ldo, bint add, Py_ssize_t r_from,
                  Py_ssize_t t_from) noexcept nogil:
    """out[t·ldo + r] = Σ_{c < m} X[r·ld + c] H[t·ld + c] for r, t < 4, or += with ``add``;
    only rows r >= r_from of rows t >= t_from of out are written (narrow_times)."""
    cdef floating s00[16]
    cdef floating s01[16]
    cdef floating s02[16]
    cdef floating s03[16]
    cdef floating s10[16]
    cdef floating s11[16]
    cdef floating s12[16]
    cdef floating s13[16]
    cdef floating s20[16]
    cdef floating s21[16]
    cdef floating s22[16]
    cdef floating s23[16]
    cdef floating s30[16]
    cdef floating s31[16]
    cdef floating s32[16]
    cdef floating s33[16]
    cdef Py_ssize_t L = 16 if floating is float else 8
    cdef Py_ssize_t c, l, end = m - m % L
    cdef const floating* x0 = X
    cdef const floating* x1 = X + ld
    cdef const floating* x2 = X + 2 * ld
    cdef const floating* x3 = X + 3 * ld
    cdef const floating* h0 = H
    cdef const floating* h1 = H + ld
    cdef const floating* h2 = H + 2 * ld
    cdef const floating* h3 = H + 3 * ld
    for l in range(16 if floating is float else 8):
        s00[l] = 0
        s01[l] = 0
        s02[l] = 0
        s03[l] = 0
        s10[l] = 0
        s11[l] = 0
        s12[l] = 0
        s13[l] = 0
        s20[l] = 0
        s21[l] = 0
        s22[l] = 0
        s23[l] = 0
        s30[l] = 0
        s31[l] = 0
        s32[l] = 0
        s33[l] = 0
    c = 0
    while c < end:
        for l in range(16 if floating is float else 8):
            s00[l] = fused(x0[c + l], h0[c + l], s00[l])
            s01[l] = fused(x0[c + l], h1[c + l], s01[l])
            s02[l] = fused(x0[c + l], h2[c + l], s02[l])
            s03[l] = fused(x0[c + l], h3[c + l], s03[l])
            s10[l] = fused(x1[c + l], h0[c + l], s10[l])
            s11[l] = fused(x1[c + l], h1[c + l], s11[l])
            s12[l] = fused(x1[c + l], h2[c + l], s12[l])
            s13[l] = fused(x1[c + l], h3[c + l], s13[l])
            s20[l] = fused(x2[c + l], h0[c + l], s20[l])
            s21[l] = fused(x2[c + l], h1[c + l], s21[l])
            s22[l] = fused(x2[c + l], h2[c + l], s22[l])
            s23[l] = fused(x2[c + l], h3[c + l], s23[l])
            s30[l] = fused(x3[c + l], h0[c + l], s30[l])
            s31[l] = fused(x3[c + l], h1[c + l], s31[l])
            s32[l] = fused(x3[c + l], h2[c + l], s32[l])
            s33[l] = fused(x3[c + l], h3[c + l], s33[l])
        c += L
    for l in range(m - end):  # the last entries, into the first lanes
        s00[l] = fused(x0[c + l], h0[c + l], s00[l])
        s01[l] = fused(x0[c + l], h1[c + l], s01[l])
        s02[l] = fused(x0[c + l], h2[c + l], s02[l])
        s03[l] = fused(x0[c + l], h3[c + l], s03[l])
        s10[l] = fused(x1[c + l], h0[c + l], s10[l])
        s11[l] = fused(x1[c + l], h1[c + l], s11[l])
        s12[l] = fused(x1[c + l], h2[c + l], s12[l])
        s13[l] = fused(x1[c + l], h3[c + l], s13[l])
        s20[l] = fused(x2[c + l], h0[c + l], s20[l])
        s21[l] = fused(x2[c + l], h1[c + l], s21[l])
        s22[l] = fused(x2[c + l], h2[c + l], s22[l])
        s23[l] = fused(x2[c + l], h3[c + l], s23[l])
        s30[l] = fused(x3[c + l], h0[c + l], s30[l])
        s31[l] = fused(x3[c + l], h1[c + l], s31[l])
        s32[l] = fused(x3[c + l], h2[c + l], s32[l])
        s33[l] = fused(x3[c + l], h3[c + l], s33[l])
    if t_from <= 0:
        put4(out, add, r_from, lanes_sum(s00), lanes_sum(s10), lanes_sum(s20), lanes_sum(s30))
    if t_from <= 1:
        put4(out + ldo, add, r_from, lanes_sum(s01), lanes_sum(s11), lanes_sum(s21),
             lanes_sum(s31))
    if t_from <= 2:
        put4(out + 2 * ldo, add, r_from, lanes_sum(s02), lanes_sum(s12), lanes_sum(s22),
             lanes_sum(s32))
    put4(out + 3 * ldo, add, r_from, lanes_sum(s03), lanes_sum(s13), lanes_sum(s23),
         lanes_sum(s33))


cdef void dots4x5(const floating* X, Py_ssize_t m, Py_ssize_t ld, const floating* H,
                  floating* out, Py_ssize_t ldo, bint add, Py_ssize_t r_from,
                  Py_ssize_t t_from) noexcept nogil:
    """dots4x4 for 5 rows of H (t < 5), with FASTNMF_WIDE_REGISTERS, where blocks of 5
    rows of H waste less than blocks of 4 (fewer_by_fives: k = 5 takes one block, not two
    overlapping by 3 rows). Each sum as dots4x4 forms it: the bits do not depend on which
    kernel formed it."""
    cdef floating s00[16]
    cdef floating s01[16]
    cdef floating s02[16]
    cdef floating s03[16]
    cdef floating s04[16]
    cdef floating s10[16]
    cdef floating s11[16]
    cdef floating s12[16]
    cdef floating s13[16]
    cdef floating s14[16]
    cdef floating s20[16]
    cdef floating s21[16]
    cdef floating s22[16]
    cdef floating s23[16]
    cdef floating s24[16]
    cdef floating s30[16]
    cdef floating s31[16]
    cdef floating s32[16]
    cdef floating s33[16]
    cdef floating s34[16]
    cdef Py_ssize_t L = 16 if floating is float else 8
    cdef Py_ssize_t c, l, end = m - m % L
    cdef const floating* x0 = X
    cdef const floating* x1 = X + 1 * ld
    cdef const floating* x2 = X + 2 * ld
    cdef const floating* x3 = X + 3 * ld
    cdef const floating* h0 = H
    cdef const floating* h1 = H + 1 * ld
    cdef const floating* h2 = H + 2 * ld
    cdef const floating* h3 = H + 3 * ld
    cdef const floating* h4 = H + 4 * ld
    for l in range(16 if floating is float else 8):
        s00[l] = 0
        s01[l] = 0
        s02[l] = 0
        s03[l] = 0
        s04[l] = 0
        s10[l] = 0
        s11[l] = 0
        s12[l] = 0
        s13[l] = 0
        s14[l] = 0
        s20[l] = 0
        s21[l] = 0
        s22[l] = 0
        s23[l] = 0
        s24[l] = 0
        s30[l] = 0
        s31[l] = 0
        s32[l] = 0
        s33[l] = 0
        s34[l] = 0
    c = 0
    while c < end:
        for l in range(16 if floating is float else 8):
            s00[l] = fused(x0[c + l], h0[c + l], s00[l])
            s01[l] = fused(x0[c + l], h1[c + l], s01[l])
            s02[l] = fused(x0[c + l], h2[c + l], s02[l])
            s03[l] = fused(x0[c + l], h3[c + l], s03[l])
            s04[l] = fused(x0[c + l], h4[c + l], s04[l])
            s10[l] = fused(x1[c + l], h0[c + l], s10[l])
            s11[l] = fused(x1[c + l], h1[c + l], s11[l])
            s12[l] = fused(x1[c + l], h2[c + l], s12[l])
            s13[l] = fused(x1[c + l], h3[c + l], s13[l])
            s14[l] = fused(x1[c + l], h4[c + l], s14[l])
            s20[l] = fused(x2[c + l], h0[c + l], s20[l])
            s21[l] = fused(x2[c + l], h1[c + l], s21[l])
            s22[l] = fused(x2[c + l], h2[c + l], s22[l])
            s23[l] = fused(x2[c + l], h3[c + l], s23[l])
            s24[l] = fused(x2[c + l], h4[c + l], s24[l])
            s30[l] = fused(x3[c + l], h0[c + l], s30[l])
            s31[l] = fused(x3[c + l], h1[c + l], s31[l])
            s32[l] = fused(x3[c + l], h2[c + l], s32[l])
            s33[l] = fused(x3[c + l], h3[c + l], s33[l])
            s34[l] = fused(x3[c + l], h4[c + l], s34[l])
        c += L
    for l in range(m - end):  # the last entries, into the first lanes
        s00[l] = fused(x0[c + l], h0[c + l], s00[l])
        s01[l] = fused(x0[c + l], h1[c + l], s01[l])
        s02[l] = fused(x0[c + l], h2[c + l], s02[l])
        s03[l] = fused(x0[c + l], h3[c + l], s03[l])
        s04[l] = fused(x0[c + l], h4[c + l], s04[l])
        s10[l] = fused(x1[c + l], h0[c + l], s10[l])
        s11[l] = fused(x1[c + l], h1[c + l], s11[l])
        s12[l] = fused(x1[c + l], h2[c + l], s12[l])
        s13[l] = fused(x1[c + l], h3[c + l], s13[l])
        s14[l] = fused(x1[c + l], h4[c + l], s14[l])
        s20[l] = fused(x2[c + l], h0[c + l], s20[l])
        s21[l] = fused(x2[c + l], h1[c + l], s21[l])
        s22[l] = fused(x2[c + l], h2[c + l], s22[l])
        s23[l] = fused(x2[c + l], h3[c + l], s23[l])
        s24[l] = fused(x2[c + l], h4[c + l], s24[l])
        s30[l] = fused(x3[c + l], h0[c + l], s30[l])
        s31[l] = fused(x3[c + l], h1[c + l], s31[l])
        s32[l] = fused(x3[c + l], h2[c + l], s32[l])
        s33[l] = fused(x3[c + l], h3[c + l], s33[l])
        s34[l] = fused(x3[c + l], h4[c + l], s34[l])
    if t_from <= 0:
        put4(out, add, r_from, lanes_sum(s00), lanes_sum(s10), lanes_sum(s20),
             lanes_sum(s30))
    if t_from <= 1:
        put4(out + 1 * ldo, add, r_from, lanes_sum(s01), lanes_sum(s11), lanes_sum(s21),
             lanes_sum(s31))
    if t_from <= 2:
        put4(out + 2 * ldo, add, r_from, lanes_sum(s02), lanes_sum(s12), lanes_sum(s22),
             lanes_sum(s32))
    if t_from <= 3:
        put4(out + 3 * ldo, add, r_from, lanes_sum(s03), lanes_sum(s13), lanes_sum(s23),
             lanes_sum(s33))
    put4(out + 4 * ldo, add, r_from, lanes_sum(s04), lanes_sum(s14), lanes_sum(s24),
         lanes_sum(s34))


cdef void dots6x4(const floating* X, Py_ssize_t m, Py_ssize_t ld, const floating* H,
                  floating* out, Py_ssize_t ldo, bint add, Py_ssize_t r_from,
                  Py_ssize_t t_from) noexcept nogil:
    """dots4x4 for 6 rows of X: out[t·ldo + r] = Σ_{c < m} X[r·ld + c] H[t·ld + c] for
    r < 6, t < 4, or += with ``add``; only rows r >= r_from of rows t >= t_from of out are
    written. Each sum as dots4x4 forms it (the same lanes, the same pairwise order), so
    the bits do not depend on which of the two formed it. With 32 vector registers (24
    sums, 4 rows of H, one row of X at a time) each row of H that passes the 6 rows of X
    serves 6 sums instead of 4: a third less of H comes from the second-level cache."""
    cdef floating s00[16]
    cdef floating s01[16]
    cdef floating s02[16]
    cdef floating s03[16]
    cdef floating s10[16]
    cdef floating s11[16]
    cdef floating s12[16]
    cdef floating s13[16]
    cdef floating s20[16]
    cdef floating s21[16]
    cdef floating s22[16]
    cdef floating s23[16]
    cdef floating s30[16]
    cdef floating s31[16]
    cdef floating s32[16]
    cdef floating s33[16]
    cdef floating s40[16]
    cdef floating s41[16]
    cdef floating s42[16]
    cdef floating s43[16]
    cdef floating s50[16]
    cdef floating s51[16]
    cdef floating s52[16]
    cdef floating s53[16]
    cdef Py_ssize_t L = 16 if floating is float else 8
    cdef Py_ssize_t c, l, end = m - m % L
    cdef const floating* x0 = X
    cdef const floating* x1 = X + 1 * ld
    cdef const floating* x2 = X + 2 * ld
    cdef const floating* x3 = X + 3 * ld
    cdef const floating* x4 = X + 4 * ld
    cdef const floating* x5 = X + 5 * ld
    cdef const floating* h0 = H
    cdef const floating* h1 = H + 1 * ld
    cdef const floating* h2 = H + 2 * ld
    cdef const floating* h3 = H + 3 * ld
    for l in range(16 if floating is float else 8):
        s00[l] = 0
        s01[l] = 0
        s02[l] = 0
        s03[l] = 0
        s10[l] = 0
        s11[l] = 0
        s12[l] = 0
        s13[l] = 0
        s20[l] = 0
        s21[l] = 0
        s22[l] = 0
        s23[l] = 0
        s30[l] = 0
        s31[l] = 0
        s32[l] = 0
        s33[l] = 0
        s40[l] = 0
        s41[l] = 0
        s42[l] = 0
        s43[l] = 0
        s50[l] = 0
        s51[l] = 0
        s52[l] = 0
        s53[l] = 0
    c = 0
    while c < end:
        for l in range(16 if floating is float else 8):
            s00[l] = fused(x0[c + l], h0[c + l], s00[l])
            s01[l] = fused(x0[c + l], h1[c + l], s01[l])
            s02[l] = fused(x0[c + l], h2[c + l], s02[l])
            s03[l] = fused(x0[c + l], h3[c + l], s03[l])
            s10[l] = fused(x1[c + l], h0[c + l], s10[l])
            s11[l] = fused(x1[c + l], h1[c + l], s11[l])
            s12[l] = fused(x1[c + l], h2[c + l], s12[l])
            s13[l] = fused(x1[c + l], h3[c + l], s13[l])
            s20[l] = fused(x2[c + l], h0[c + l], s20[l])
            s21[l] = fused(x2[c + l], h1[c + l], s21[l])
            s22[l] = fused(x2[c + l], h2[c + l], s22[l])
            s23[l] = fused(x2[c + l], h3[c + l], s23[l])
            s30[l] = fused(x3[c + l], h0[c + l], s30[l])
            s31[l] = fused(x3[c + l], h1[c + l], s31[l])
            s32[l] = fused(x3[c + l], h2[c + l], s32[l])
            s33[l] = fused(x3[c + l], h3[c + l], s33[l])
            s40[l] = fused(x4[c + l], h0[c + l], s40[l])
            s41[l] = fused(x4[c + l], h1[c + l], s41[l])
            s42[l] = fused(x4[c + l], h2[c + l], s42[l])
            s43[l] = fused(x4[c + l], h3[c + l], s43[l])
            s50[l] = fused(x5[c + l], h0[c + l], s50[l])
            s51[l] = fused(x5[c + l], h1[c + l], s51[l])
            s52[l] = fused(x5[c + l], h2[c + l], s52[l])
            s53[l] = fused(x5[c + l], h3[c + l], s53[l])
        c += L
    for l in range(m - end):  # the last entries, into the first lanes
        s00[l] = fused(x0[c + l], h0[c + l], s00[l])
        s01[l] = fused(x0[c + l], h1[c + l], s01[l])
        s02[l] = fused(x0[c + l], h2[c + l], s02[l])
        s03[l] = fused(x0[c + l], h3[c + l], s03[l])
        s10[l] = fused(x1[c + l], h0[c + l], s10[l])
        s11[l] = fused(x1[c + l], h1[c + l], s11[l])
        s12[l] = fused(x1[c + l], h2[c + l], s12[l])
        s13[l] = fused(x1[c + l], h3[c + l], s13[l])
        s20[l] = fused(x2[c + l], h0[c + l], s20[l])
        s21[l] = fused(x2[c + l], h1[c + l], s21[l])
        s22[l] = fused(x2[c + l], h2[c + l], s22[l])
        s23[l] = fused(x2[c + l], h3[c + l], s23[l])
        s30[l] = fused(x3[c + l], h0[c + l], s30[l])
        s31[l] = fused(x3[c + l], h1[c + l], s31[l])
        s32[l] = fused(x3[c + l], h2[c + l], s32[l])
        s33[l] = fused(x3[c + l], h3[c + l], s33[l])
        s40[l] = fused(x4[c + l], h0[c + l], s40[l])
        s41[l] = fused(x4[c + l], h1[c + l], s41[l])
        s42[l] = fused(x4[c + l], h2[c + l], s42[l])
        s43[l] = fused(x4[c + l], h3[c + l], s43[l])
        s50[l] = fused(x5[c + l], h0[c + l], s50[l])
        s51[l] = fused(x5[c + l], h1[c + l], s51[l])
        s52[l] = fused(x5[c + l], h2[c + l], s52[l])
        s53[l] = fused(x5[c + l], h3[c + l], s53[l])
    if t_from <= 0:
        put6(out, add, r_from, lanes_sum(s00), lanes_sum(s10), lanes_sum(s20),
             lanes_sum(s30), lanes_sum(s40), lanes_sum(s50))
    if t_from <= 1:
        put6(out + 1 * ldo, add, r_from, lanes_sum(s01), lanes_sum(s11), lanes_sum(s21),
             lanes_sum(s31), lanes_sum(s41), lanes_sum(s51))
    if t_from <= 2:
        put6(out + 2 * ldo, add, r_from, lanes_sum(s02), lanes_sum(s12), lanes_sum(s22),
             lanes_sum(s32), lanes_sum(s42), lanes_sum(s52))
    put6(out + 3 * ldo, add, r_from, lanes_sum(s03), lanes_sum(s13), lanes_sum(s23),
         lanes_sum(s33), lanes_sum(s43), lanes_sum(s53))


cdef void dots3x2(const floating* X, Py_ssize_t m, Py_ssize_t ld, const floating* H,
                  floating* out, Py_ssize_t ldo, bint add, Py_ssize_t r_from,
                  Py_ssize_t t_from) noexcept nogil:
    """dots4x4 for 3 rows of X and 2 of H (r < 3, t < 2), with FASTNMF_AVX2_KERNELS (16
    vector registers): 6 sums of 2 vectors each (a vector of AVX2 holds half of the
    ``lanes`` partial sums), the 2 rows of H, one vector of X at a time: 15 registers,
    where dots4x4 spills (46 of its 80 multiply-adds read the stack in the x86-64-v3
    build). 5 loads for 6 multiply-adds (the AVX2 cores of Intel and AMD load two vectors
    and issue two fused multiply-adds a cycle); 12 independent sums, enough to keep both
    multiply-add units busy through their latency of 4-5 cycles. The vector loop is
    _narrow16.h's; the last entries (m past a multiple of the lanes) and the sums' lanes
    added here, as dots4x4 does: the bits do not depend on the build level."""
    cdef floating s00[16]
    cdef floating s01[16]
    cdef floating s10[16]
    cdef floating s11[16]
    cdef floating s20[16]
    cdef floating s21[16]
    cdef Py_ssize_t L = 16 if floating is float else 8
    cdef Py_ssize_t l, c = m - m % L
    cdef const floating* x0 = X
    cdef const floating* x1 = X + ld
    cdef const floating* x2 = X + 2 * ld
    cdef const floating* h0 = H
    cdef const floating* h1 = H + ld
    if floating is float:
        fastnmf_dots3x2_s(x0, x1, x2, h0, h1, c, s00, s01, s10, s11, s20, s21)
    else:
        fastnmf_dots3x2_d(x0, x1, x2, h0, h1, c, s00, s01, s10, s11, s20, s21)
    for l in range(m - c):  # the last entries, into the first lanes
        s00[l] = fused(x0[c + l], h0[c + l], s00[l])
        s01[l] = fused(x0[c + l], h1[c + l], s01[l])
        s10[l] = fused(x1[c + l], h0[c + l], s10[l])
        s11[l] = fused(x1[c + l], h1[c + l], s11[l])
        s20[l] = fused(x2[c + l], h0[c + l], s20[l])
        s21[l] = fused(x2[c + l], h1[c + l], s21[l])
    if t_from <= 0:
        put3(out, add, r_from, lanes_sum(s00), lanes_sum(s10), lanes_sum(s20))
    put3(out + ldo, add, r_from, lanes_sum(s01), lanes_sum(s11), lanes_sum(s21))


cdef inline void put3(floating* out, bint add, Py_ssize_t r_from, floating a, floating b,
                      floating c) noexcept nogil:
    """out[r] = the r-th value (r >= r_from), or += with ``add`` (dots3x2)."""
    if r_from <= 0:
        out[0] = out[0] + a if add else a
    if r_from <= 1:
        out[1] = out[1] + b if add else b
    out[2] = out[2] + c if add else c


cdef inline void put6(floating* out, bint add, Py_ssize_t r_from, floating a, floating b,
                      floating c, floating d, floating e, floating f) noexcept nogil:
    """out[r] = the r-th value (r >= r_from), or += with ``add`` (dots6x4)."""
    if r_from <= 0:
        out[0] = out[0] + a if add else a
    if r_from <= 1:
        out[1] = out[1] + b if add else b
    if r_from <= 2:
        out[2] = out[2] + c if add else c
    if r_from <= 3:
        out[3] = out[3] + d if add else d
    if r_from <= 4:
        out[4] = out[4] + e if add else e
    out[5] = out[5] + f if add else f


cdef inline void put4(floating* out, bint add, Py_ssize_t r_from, floating a, floating b,
                      floating c, floating d) noexcept nogil:
    """out[r] = the r-th value (r >= r_from), or += with ``add`` (dots4x4)."""
    if r_from <= 0:
        out[0] = out[0] + a if add else a
    if r_from <= 1:
        out[1] = out[1] + b if add else b
    if r_from <= 2:
        out[2] = out[2] + c if add else c
    out[3] = out[3] + d if add else d


cdef inline floating fused(floating a, floating b, floating c) noexcept nogil:
    """a·b + c rounded once."""
    if floating is float:
        return fmaf(a, b, c)
    return fma(a, b, c)


cdef inline floating lanes_sum(const floating* s) noexcept nogil:
    """The partial sums of dots4x4 added pairwise, in a fixed order."""
    if floating is float:
        return ((((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])))
                + (((s[8] + s[9]) + (s[10] + s[11])) + ((s[12] + s[13]) + (s[14] + s[15]))))
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))


cdef void narrow_add(const floating* X, Py_ssize_t ld, Py_ssize_t w, Py_ssize_t cols,
                     const floating* F, Py_ssize_t k, floating* acc,
                     bint first) noexcept nogil:
    """acc (k × cols) += F X_b, or = with ``first``, for F (k × w) and X_b (w × cols); the
    rows of X_b and of acc are ``ld`` entries apart; w >= 1, k >= 4, cols >= 4·lanes.
    Strips of 4 rows (5 with FASTNMF_WIDE_REGISTERS where strips_of_five: narrow_strip5)
    × 4·lanes columns of the product summed in registers over a band of X_b's rows in
    order, then added to acc; a piece of NARROW_PIECE_BYTES of X_b's rows at a time, and
    within it a band of rows at a time (narrow_band: the band's pieces stay in the core's
    own cache while every strip passes them), the bands in order. The last
    strip of each direction ends at k (at cols), overlapping the one before; only its
    entries that the one before did not add are added (narrow_strip's ``t_from``,
    ``c_from``)."""
    cdef Py_ssize_t W2 = (16 if floating is float else 8) if FASTNMF_AVX2_KERNELS else (
        64 if floating is float else 32)
    cdef Py_ssize_t piece = NARROW_PIECE_BYTES // sizeof(floating)  # a multiple of W2
    cdef Py_ssize_t band = narrow_band(piece if piece < cols else cols, sizeof(floating))
    cdef Py_ssize_t rows = 5 if FASTNMF_WIDE_REGISTERS and strips_of_five(k) else 4
    cdef Py_ssize_t t, c, t0, c0, p0, p1, r0, r1
    p0 = 0
    while p0 < cols:  # X_b's columns a piece at a time: it stays in cache through k
        p1 = p0 + piece if p0 + piece < cols else cols
        r0 = 0
        while r0 < w:
            r1 = r0 + band if r0 + band < w else w
            t = 0
            while t < k:
                t0 = t if t + rows <= k else k - rows
                c = p0
                while c < p1:
                    c0 = c if c + W2 <= cols else cols - W2
                    if FASTNMF_AVX2_KERNELS:
                        strip4x1(X + r0 * ld + c0, r1 - r0, ld, F + t0 * w + r0, w,
                                 acc + t0 * ld + c0, first and r0 == 0, t - t0, c - c0)
                    elif rows == 5:
                        narrow_strip5(X + r0 * ld + c0, r1 - r0, ld, F + t0 * w + r0, w,
                                      acc + t0 * ld + c0, first and r0 == 0, t - t0,
                                      c - c0)
                    else:
                        narrow_strip(X + r0 * ld + c0, r1 - r0, ld, F + t0 * w + r0, w,
                                     acc + t0 * ld + c0, first and r0 == 0, t - t0, c - c0)
                    c += W2
                t += rows
            r0 = r1
        p0 = p1


cdef inline bint strips_of_five(Py_ssize_t k) noexcept nogil:
    """Whether narrow_add takes F's rows 5 at a time (narrow_strip5): where that makes
    fewer strips than 4 at a time (each strip reads X_b's piece once; the last ends at k,
    overlapping the one before), k = 5, 9, 10, 13-15, 17-20, ...; with as many strips
    either way (k = 6-8, 11, 12, 16, ...) strips of 4 form fewer sums (8 rows for k = 6
    against 10). AMD EPYC (Zen 5), 2000 x 1000, cd, random start, 50 iterations, whole
    calls, k = 6, 7, 8, 11, 12, 16: 0.94-0.97 x the time with 5 rows for every k >= 5,
    float64 and float32, with the Haswell and the SkylakeX kernels; the same bits."""
    return (k + 4) // 5 < (k + 3) // 4


cdef inline Py_ssize_t narrow_band(Py_ssize_t piece, Py_ssize_t size) noexcept nogil:
    """Rows of X_b in a band of narrow_add: their pieces (``piece`` entries of ``size``
    bytes each) NARROW_BAND_BYTES together, at least 4."""
    cdef Py_ssize_t rows = NARROW_BAND_BYTES // (piece * size)
    return rows if rows > 4 else 4


cdef void narrow_strip(const floating* X, Py_ssize_t w, Py_ssize_t ld, const floating* F,
                       Py_ssize_t ldf, floating* acc, bint first, Py_ssize_t t_from,
                       Py_ssize_t c_from) noexcept nogil:
    """acc[t·ld + c] (+)= Σ_j F[t·ldf + j] X[j·ld + c] for t < 4, c < 4·lanes, summed over j
    in order from zero in registers; only rows t >= t_from and columns c >= c_from are
    written (narrow_add). The sums are 16 arrays of a vector's lanes each (a<t><chunk>:
    row t, columns chunk·lanes ...), as in dots4x4: the compiler keeps them in vector
    registers (one array of a strip's columns per row went to the stack, and every
    multiply-add read and wrote it there: 8000 x 4000 float64, narrow_add took 1.2 x the
    time of narrow_times for the same multiply-adds)."""
    cdef floating a00[16]
    cdef floating a01[16]
    cdef floating a02[16]
    cdef floating a03[16]
    cdef floating a10[16]
    cdef floating a11[16]
    cdef floating a12[16]
    cdef floating a13[16]
    cdef floating a20[16]
    cdef floating a21[16]
    cdef floating a22[16]
    cdef floating a23[16]
    cdef floating a30[16]
    cdef floating a31[16]
    cdef floating a32[16]
    cdef floating a33[16]
    cdef Py_ssize_t L = 16 if floating is float else 8
    cdef Py_ssize_t j, l
    cdef floating f0, f1, f2, f3
    cdef const floating* x
    for l in range(16 if floating is float else 8):
        a00[l] = 0
        a01[l] = 0
        a02[l] = 0
        a03[l] = 0
        a10[l] = 0
        a11[l] = 0
        a12[l] = 0
        a13[l] = 0
        a20[l] = 0
        a21[l] = 0
        a22[l] = 0
        a23[l] = 0
        a30[l] = 0
        a31[l] = 0
        a32[l] = 0
        a33[l] = 0
    for j in range(w):
        x = X + j * ld
        f0 = F[j]
        f1 = F[ldf + j]
        f2 = F[2 * ldf + j]
        f3 = F[3 * ldf + j]
        for l in range(16 if floating is float else 8):
            a00[l] = fused(f0, x[l], a00[l])
            a01[l] = fused(f0, x[L + l], a01[l])
            a02[l] = fused(f0, x[2 * L + l], a02[l])
            a03[l] = fused(f0, x[3 * L + l], a03[l])
            a10[l] = fused(f1, x[l], a10[l])
            a11[l] = fused(f1, x[L + l], a11[l])
            a12[l] = fused(f1, x[2 * L + l], a12[l])
            a13[l] = fused(f1, x[3 * L + l], a13[l])
            a20[l] = fused(f2, x[l], a20[l])
            a21[l] = fused(f2, x[L + l], a21[l])
            a22[l] = fused(f2, x[2 * L + l], a22[l])
            a23[l] = fused(f2, x[3 * L + l], a23[l])
            a30[l] = fused(f3, x[l], a30[l])
            a31[l] = fused(f3, x[L + l], a31[l])
            a32[l] = fused(f3, x[2 * L + l], a32[l])
            a33[l] = fused(f3, x[3 * L + l], a33[l])
    if t_from <= 0:
        put_strip(acc, a00, a01, a02, a03, first, c_from)
    if t_from <= 1:
        put_strip(acc + ld, a10, a11, a12, a13, first, c_from)
    if t_from <= 2:
        put_strip(acc + 2 * ld, a20, a21, a22, a23, first, c_from)
    put_strip(acc + 3 * ld, a30, a31, a32, a33, first, c_from)


cdef void narrow_strip5(const floating* X, Py_ssize_t w, Py_ssize_t ld, const floating* F,
                        Py_ssize_t ldf, floating* acc, bint first, Py_ssize_t t_from,
                        Py_ssize_t c_from) noexcept nogil:
    """narrow_strip for 5 rows of F (t < 5), with FASTNMF_WIDE_REGISTERS: 20 sums, 4
    vectors of a row of X and 5 broadcasts of F in registers (6 rows spilled two sums to
    the stack), so each piece of X's rows read serves 5 rows of the strip instead of 4.
    Each sum as narrow_strip forms it: the bits do not depend on which of the two formed
    it. AMD EPYC (Zen 5), Haswell kernels, two threads, F X for 8000 x 4000 float64 and
    50/60 rows of F: 28.9/34.0 ms with 4 rows, 26.2/29.5 ms with 5; cd, k = 50,
    50.3-52.2 against 49.7-50.6 ms per iteration."""
    cdef floating a00[16]
    cdef floating a01[16]
    cdef floating a02[16]
    cdef floating a03[16]
    cdef floating a10[16]
    cdef floating a11[16]
    cdef floating a12[16]
    cdef floating a13[16]
    cdef floating a20[16]
    cdef floating a21[16]
    cdef floating a22[16]
    cdef floating a23[16]
    cdef floating a30[16]
    cdef floating a31[16]
    cdef floating a32[16]
    cdef floating a33[16]
    cdef floating a40[16]
    cdef floating a41[16]
    cdef floating a42[16]
    cdef floating a43[16]
    cdef Py_ssize_t L = 16 if floating is float else 8
    cdef Py_ssize_t j, l
    cdef floating f0, f1, f2, f3, f4
    cdef const floating* x
    for l in range(16 if floating is float else 8):
        a00[l] = 0
        a01[l] = 0
        a02[l] = 0
        a03[l] = 0
        a10[l] = 0
        a11[l] = 0
        a12[l] = 0
        a13[l] = 0
        a20[l] = 0
        a21[l] = 0
        a22[l] = 0
        a23[l] = 0
        a30[l] = 0
        a31[l] = 0
        a32[l] = 0
        a33[l] = 0
        a40[l] = 0
        a41[l] = 0
        a42[l] = 0
        a43[l] = 0
    for j in range(w):
        x = X + j * ld
        f0 = F[j]
        f1 = F[ldf + j]
        f2 = F[2 * ldf + j]
        f3 = F[3 * ldf + j]
        f4 = F[4 * ldf + j]
        for l in range(16 if floating is float else 8):
            a00[l] = fused(f0, x[l], a00[l])
            a01[l] = fused(f0, x[L + l], a01[l])
            a02[l] = fused(f0, x[2 * L + l], a02[l])
            a03[l] = fused(f0, x[3 * L + l], a03[l])
            a10[l] = fused(f1, x[l], a10[l])
            a11[l] = fused(f1, x[L + l], a11[l])
            a12[l] = fused(f1, x[2 * L + l], a12[l])
            a13[l] = fused(f1, x[3 * L + l], a13[l])
            a20[l] = fused(f2, x[l], a20[l])
            a21[l] = fused(f2, x[L + l], a21[l])
            a22[l] = fused(f2, x[2 * L + l], a22[l])
            a23[l] = fused(f2, x[3 * L + l], a23[l])
            a30[l] = fused(f3, x[l], a30[l])
            a31[l] = fused(f3, x[L + l], a31[l])
            a32[l] = fused(f3, x[2 * L + l], a32[l])
            a33[l] = fused(f3, x[3 * L + l], a33[l])
            a40[l] = fused(f4, x[l], a40[l])
            a41[l] = fused(f4, x[L + l], a41[l])
            a42[l] = fused(f4, x[2 * L + l], a42[l])
            a43[l] = fused(f4, x[3 * L + l], a43[l])
    if t_from <= 0:
        put_strip(acc, a00, a01, a02, a03, first, c_from)
    if t_from <= 1:
        put_strip(acc + ld, a10, a11, a12, a13, first, c_from)
    if t_from <= 2:
        put_strip(acc + 2 * ld, a20, a21, a22, a23, first, c_from)
    if t_from <= 3:
        put_strip(acc + 3 * ld, a30, a31, a32, a33, first, c_from)
    put_strip(acc + 4 * ld, a40, a41, a42, a43, first, c_from)


cdef void strip4x1(const floating* X, Py_ssize_t w, Py_ssize_t ld, const floating* F,
                   Py_ssize_t ldf, floating* acc, bint first, Py_ssize_t t_from,
                   Py_ssize_t c_from) noexcept nogil:
    """narrow_strip for ``lanes`` columns (c < lanes, one chunk), with
    FASTNMF_AVX2_KERNELS (16 vector registers): 4 sums of 2 vectors each, a row's chunk of
    X (2 vectors) and the 4 broadcasts of F in registers, where narrow_strip's 16 sums of
    2 vectors spill. 6 loads for 8 multiply-adds; 4 rows of F per strip, so X's band is
    read k / 4 times, as with narrow_strip. The vector loop is _narrow16.h's; each sum as
    narrow_strip forms it (over j in order from zero): the bits do not depend on the build
    level."""
    cdef floating a0[16]
    cdef floating a1[16]
    cdef floating a2[16]
    cdef floating a3[16]
    if floating is float:
        fastnmf_strip4x1_s(X, w, ld, F, ldf, a0, a1, a2, a3)
    else:
        fastnmf_strip4x1_d(X, w, ld, F, ldf, a0, a1, a2, a3)
    if t_from <= 0:
        put_chunk(acc, a0, first, c_from)
    if t_from <= 1:
        put_chunk(acc + ld, a1, first, c_from)
    if t_from <= 2:
        put_chunk(acc + 2 * ld, a2, first, c_from)
    put_chunk(acc + 3 * ld, a3, first, c_from)


cdef inline void put_chunk(floating* acc, const floating* s, bint first,
                           Py_ssize_t c_from) noexcept nogil:
    """acc[c] = s[c], or += unless ``first``, for c_from <= c < lanes (strip4x1, and each
    chunk of put_strip): a whole chunk by one loop over its lanes (vector loads, adds and
    stores); nothing for c_from >= lanes."""
    cdef Py_ssize_t c, l
    if c_from == 0:
        for l in range(16 if floating is float else 8):
            acc[l] = s[l] if first else acc[l] + s[l]
        return
    for c in range(c_from, 16 if floating is float else 8):
        acc[c] = s[c] if first else acc[c] + s[c]


cdef inline void put_strip(floating* acc, const floating* s0, const floating* s1,
                           const floating* s2, const floating* s3, bint first,
                           Py_ssize_t c_from) noexcept nogil:
    """acc[c] = a row's sum at column c (its chunk c // L, lane c % L, L lanes of a vector),
    or += unless ``first``, for c_from <= c < 4·L (narrow_strip): each chunk by put_chunk,
    whose loop over a whole chunk's lanes the compiler turns into vector loads, adds and
    stores (GCC unswitches ``first``); written as one loop over c choosing the chunk, it
    stayed scalar (4·L loads, adds and stores per row), which took more time than the
    strip's own multiply-adds over an engine block's 64 rows of float32. The same
    additions either way."""
    cdef Py_ssize_t L = 16 if floating is float else 8
    put_chunk(acc, s0, first, c_from)
    put_chunk(acc + L, s1, first, c_from - L if c_from > L else 0)
    put_chunk(acc + 2 * L, s2, first, c_from - 2 * L if c_from > 2 * L else 0)
    put_chunk(acc + 3 * L, s3, first, c_from - 3 * L if c_from > 3 * L else 0)
