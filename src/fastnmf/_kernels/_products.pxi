# The products with X (the only code that reads X during the iterations) and the
# transposes they use; left_product for the randomized SVD of the start.
# Included by _common.pyx (one module: the cdef functions are declared in _common.pxd).


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


# Whether a dense float32 X's products are formed with X's rows (or columns) as the first
# operand and the factor transposed second (X_b Hᵀ, w×k; X_bᵀ W_b, m×k), the k-wide result
# then transposed (k entries per row of X moved: little beside the product's k
# multiply-adds per entry of X). Which way is faster is a property of the BLAS's gemm
# kernels, the same code on any CPU that runs them. Measured on an AMD EPYC (Zen 5), cd,
# time per iteration rows first over the usual way, 500 x 400 to 2666 x 2000, k = 5 to 30,
# BLAS held to one thread: OpenBLAS's Haswell kernels (which its Zen target, AMD Zen 1-3,
# uses too) 0.71-0.98 in float32 on one thread and on two, 0.90-1.13 in float64 (so
# float64 stays the usual way); its SkylakeX kernels 1.00-1.22 in float32. Set at import
# from the BLAS that scipy's cython_blas calls (fastnmf._threads.blas_kernels). Whatever
# the kernels, the two-pass loop's float32 products along X's storage order are formed
# rows first (by_rows).
cdef bint ROWS_FIRST = False


def rows_first(value=None):
    """ROWS_FIRST, and with ``value`` set it (returns the old value): set at import from
    the BLAS's kernels; the tests and the bench set it between calls (never while one
    runs) to run a float32 X both ways side by side."""
    global ROWS_FIRST
    old = ROWS_FIRST
    if value is not None:
        ROWS_FIRST = bool(value)
    return old


cdef inline bint rows_first_call(const XData* x, Py_ssize_t k) noexcept nogil:
    """Whether the engine's products with a dense X's blocks are formed rows first: float32
    with ROWS_FIRST, unless they are narrow_call's."""
    return ROWS_FIRST and not x.sparse and x.itemsize == 4 and not narrow_call(x, k)


cdef bint acc_transposed(const XData* x, Py_ssize_t k) noexcept nogil:
    """Whether block_add_H's accumulator holds (Wᵀ X)ᵀ (m×k): a sparse X's always, a dense
    X's when its products are formed rows first (rows_first_call)."""
    return x.sparse or rows_first_call(x, k)


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


def left_product(X, floating[:, ::1] F, bint trans, int n_threads=1, shape=None):
    """The solvers' threaded products with X, for the randomized range finder: F Xᵀ (l×n)
    for F (l×m), or with ``trans`` F X (l×m) for F (l×n). X a dense array (n×m, C- or
    F-contiguous, F's dtype), a ChunkStream, or a sparse X's operands (the tuple of
    prepare_x; F X needs Xᵀ's CSR) with X's ``shape``. Bit-identical for any
    ``n_threads``; hold BLAS to one thread around it (_threads.single_threaded_blas)."""
    cdef XData x
    cdef Py_ssize_t l = F.shape[0], n, m, P
    if isinstance(X, tuple):
        if shape is None:
            raise ValueError("a sparse X's operands need X's shape")
        n, m = shape
    else:
        n, m = X.shape[0], X.shape[1]
    if F.shape[1] != (n if trans else m):
        raise ValueError("F does not match X")
    dtype = np.float64 if floating is double else np.float32
    out = aligned_empty((l, m if trans else n), dtype)
    cdef floating[:, ::1] B = out
    cdef floating[::1] T = None
    cdef floating* scratch = NULL
    prepare_x(&x, X, n, m, 0.0, F)
    if x.sparse:  # F's transpose, then a row's accumulator per thread (sparse_times)
        P = n if n > m else m
        T = np.empty(l * P + max(n_threads, 1) * acc_stride(l), dtype=dtype)
        scratch = &T[0]
    if trans and x.sparse and x.cptr == NULL:
        raise ValueError("F X needs Xᵀ's CSR in the operands")
    with nogil:
        if trans:
            product_H(&x, l, &F[0, 0], &B[0, 0], scratch, n_threads)
        else:
            product_W(&x, l, &F[0, 0], &B[0, 0], scratch, n_threads)
    if x.source != NULL:
        X.raise_if_failed()
    return out


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


# A sparse row's gather (gather_windows) and scatter (scatter_windows) reach rows of a
# k-column matrix at the non-zeros' columns: random rows, which stall the loop when they
# are not in the core's cache (Hᵀ or the m × k accumulator of the sparse case, 5000 x 30
# float64: 1.2 MB each). Each non-zero asks the memory for the row of the one
# PREFETCH_AHEAD places on (far enough to cover a read from L3, near enough to be in
# cache still when its turn comes: on an AMD EPYC 2, 4, 8 and 16 gave the same). Only for
# rows of two cache lines or more (PREFETCH_MIN_BYTES): below, the hint costs more than
# it hides (AMD EPYC, 1 and 2 threads: float64 k = 8 1.01-1.03 x the time without it,
# float32 k = 16 1.07 x; float64 k = 16 to 30 0.87-0.96 x).
cdef Py_ssize_t PREFETCH_AHEAD = 8
cdef Py_ssize_t PREFETCH_MIN_BYTES = 128


cdef inline void ahead(const floating* row, Py_ssize_t s0, Py_ssize_t s3) noexcept nogil:
    """Ask for the entries s0 .. s3 + 8 of ``row`` (its first and last cache lines)."""
    fastnmf_prefetch(row + s0)
    fastnmf_prefetch(row + s3 + 7)


cdef inline Py_ssize_t prefetch_until(Py_ssize_t p0, Py_ssize_t p1,
                                      Py_ssize_t row_bytes) noexcept nogil:
    """The non-zeros p0 .. (returned) of a row that ask for the row PREFETCH_AHEAD on."""
    if row_bytes < PREFETCH_MIN_BYTES:
        return p0
    return p1 - PREFETCH_AHEAD


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
    """Column r of sparse_times' ``out``, gathered in ``a`` (k entries): each entry c the
    sum over the row's non-zeros p, in order, of data[p] · Ft[ind[p], c]."""
    cdef Py_ssize_t c, c0
    if k < 8:
        gather_small(ptr[r], ptr[r + 1], ind, data, k, Ft, a)
    else:
        c0 = 0
        while c0 < k:  # up to 32 entries at a time, summed in registers
            gather_windows(ptr[r], ptr[r + 1], ind, data, k, Ft, c0, a)
            c0 += 32
    for c in range(k):
        out[c * rows + r] = a[c]


cdef void gather_small(Py_ssize_t p0, Py_ssize_t p1, const int32_t* ind,
                       const floating* data, Py_ssize_t k, const floating* Ft,
                       floating* a) noexcept nogil:
    """a[0 .. k) of sparse_row for k < 8: gather_few with k a constant in each call.
    (Its own function: written out in sparse_row, these seven copies slowed the k >= 8
    path of the calls that inline sparse_row, k = 10 by 1.4 x.)"""
    if k == 1:
        gather_few(p0, p1, ind, data, 1, Ft, a)
    elif k == 2:
        gather_few(p0, p1, ind, data, 2, Ft, a)
    elif k == 3:
        gather_few(p0, p1, ind, data, 3, Ft, a)
    elif k == 4:
        gather_few(p0, p1, ind, data, 4, Ft, a)
    elif k == 5:
        gather_few(p0, p1, ind, data, 5, Ft, a)
    elif k == 6:
        gather_few(p0, p1, ind, data, 6, Ft, a)
    else:
        gather_few(p0, p1, ind, data, 7, Ft, a)


cdef inline void gather_few(Py_ssize_t p0, Py_ssize_t p1, const int32_t* ind,
                            const floating* data, Py_ssize_t k, const floating* Ft,
                            floating* a) noexcept nogil:
    """a[0 .. k) of sparse_row for k < 8, called with k a constant: inlined, its sums
    stay in registers through the row (in memory, a's entries were loaded and stored
    again at every non-zero: a chain of store-to-load forwards)."""
    cdef Py_ssize_t c, p
    cdef floating v
    cdef const floating* row
    cdef floating t[8]
    for c in range(k):
        t[c] = 0
    for p in range(p0, p1):
        v = data[p]
        row = Ft + <Py_ssize_t> ind[p] * k
        for c in range(k):
            t[c] += v * row[c]
    for c in range(k):
        a[c] = t[c]


cdef inline void gather_windows(Py_ssize_t p0, Py_ssize_t p1, const int32_t* ind,
                                const floating* data, Py_ssize_t k, const floating* Ft,
                                Py_ssize_t c0, floating* a) noexcept nogil:
    """a[c0 .. min(c0 + 32, k)) of sparse_row (k >= 8): up to four windows of 8 entries
    whose sums stay in registers through the row (an accumulator in memory is loaded and
    stored again at every non-zero: a chain of store-to-load forwards). A window that
    would pass k ends at k instead, overlapping the one before it: the entries they share
    are the same sums, in the same order, so each entry is what the plain loop gives."""
    cdef Py_ssize_t c, p
    cdef Py_ssize_t nw = (k - c0 + 7) // 8
    cdef Py_ssize_t s0 = c0 if c0 + 8 <= k else k - 8
    cdef Py_ssize_t s1 = c0 + 8 if c0 + 16 <= k else k - 8
    cdef Py_ssize_t s2 = c0 + 16 if c0 + 24 <= k else k - 8
    cdef Py_ssize_t s3 = c0 + 24 if c0 + 32 <= k else k - 8
    cdef Py_ssize_t until = prefetch_until(p0, p1, k * <Py_ssize_t> sizeof(floating))
    cdef floating v
    cdef const floating* row
    cdef floating t0[8]
    cdef floating t1[8]
    cdef floating t2[8]
    cdef floating t3[8]
    for c in range(8):
        t0[c] = 0
        t1[c] = 0
        t2[c] = 0
        t3[c] = 0
    # One loop per window count, written out: a single loop with ``if nw > i`` inside
    # ran the benchmark's sparse case 1.15 x slower than before windows (float32), these
    # 1.13 x faster.
    if nw >= 4:
        for p in range(p0, p1):
            if p < until:
                ahead(Ft + <Py_ssize_t> ind[p + PREFETCH_AHEAD] * k, s0, s3)
            v = data[p]
            row = Ft + <Py_ssize_t> ind[p] * k
            for c in range(8):
                t0[c] += v * row[s0 + c]
            for c in range(8):
                t1[c] += v * row[s1 + c]
            for c in range(8):
                t2[c] += v * row[s2 + c]
            for c in range(8):
                t3[c] += v * row[s3 + c]
    elif nw == 3:
        for p in range(p0, p1):
            if p < until:
                ahead(Ft + <Py_ssize_t> ind[p + PREFETCH_AHEAD] * k, s0, s3)
            v = data[p]
            row = Ft + <Py_ssize_t> ind[p] * k
            for c in range(8):
                t0[c] += v * row[s0 + c]
            for c in range(8):
                t1[c] += v * row[s1 + c]
            for c in range(8):
                t2[c] += v * row[s2 + c]
    elif nw == 2:
        for p in range(p0, p1):
            if p < until:
                ahead(Ft + <Py_ssize_t> ind[p + PREFETCH_AHEAD] * k, s0, s3)
            v = data[p]
            row = Ft + <Py_ssize_t> ind[p] * k
            for c in range(8):
                t0[c] += v * row[s0 + c]
            for c in range(8):
                t1[c] += v * row[s1 + c]
    else:
        for p in range(p0, p1):
            if p < until:
                ahead(Ft + <Py_ssize_t> ind[p + PREFETCH_AHEAD] * k, s0, s3)
            v = data[p]
            row = Ft + <Py_ssize_t> ind[p] * k
            for c in range(8):
                t0[c] += v * row[s0 + c]
    for c in range(8):
        a[s0 + c] = t0[c]
        if nw > 1:
            a[s1 + c] = t1[c]
        if nw > 2:
            a[s2 + c] = t2[c]
        if nw > 3:
            a[s3 + c] = t3[c]


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
    (k×P scratch, or NULL) and transposed into B where ``by_rows``; by the narrow kernels
    (narrow_part) where they run."""
    cdef Py_ssize_t cols = x.n if for_W else x.m, w, c
    cdef bint narrow = narrow_whole(x, k) or narrow_both(x, k)
    cdef bint rows = by_rows(x, for_W, T) and not narrow
    cdef floating* out = T if rows else B
    if threads_for(2, <double> x.n * x.m * k) == 1:
        dense_part(x, k, F, out, rows, narrow, for_W, 0, cols)
    else:
        w = chunk_width(cols, for_W == x.fortran, sizeof(floating))
        for c in prange((cols + w - 1) // w, schedule="dynamic", num_threads=n_threads):
            dense_part(x, k, F, out, rows, narrow, for_W, c * w,
                       (c + 1) * w if (c + 1) * w < cols else cols)
    if rows:
        transpose(cols, k, T, B, n_threads)


cdef inline bint by_rows(const XData* x, bint for_W, const floating* T) noexcept nogil:
    """Whether a float32 product is computed as (X's rows or columns) Fᵀ into T (cols×k) and
    then transposed: every one with ROWS_FIRST, else those along X's storage order (rows
    of a C-ordered X for H Xᵀ, columns of an F-ordered one for Wᵀ X):
    OpenBLAS packs X faster as the second operand of sgemm (single-threaded, 2000 x 1000,
    k = 20: 1.12 against 1.34 ms; 3 to 18 % from 500 x 400 to 8000 x 4000), while its
    SkylakeX dgemm is faster the other way (2.88 against 3.56 ms)."""
    if T == NULL or x.other != NULL:
        return False
    return floating is float and (ROWS_FIRST or for_W != x.fortran)


cdef inline void dense_part(const XData* x, Py_ssize_t k, const floating* F, floating* out,
                            bint rows, bint narrow, bint for_W, Py_ssize_t c0,
                            Py_ssize_t c1) noexcept nogil:
    if narrow and narrow_part(x, k, F, out, for_W, c0, c1):
        return
    if rows:
        rows_part(x, k, F, out, for_W, c0, c1)
    elif for_W:
        dense_W_part(x, k, F, out, c0, c1)
    else:
        dense_H_part(x, k, F, out, c0, c1)


cdef inline bint narrow_part(const XData* x, Py_ssize_t k, const floating* F, floating* B,
                             bint for_W, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """Columns c0..c1 of dense_product's B by the narrow kernels (_narrow.pxi): where they
    are stored rows of X (or of Xᵀ), by narrow_times, else stored columns, by narrow_add;
    with X stored both ways (narrow_both), by narrow_add on the layout whose stored
    columns they are when there are at least its strip of them, else by narrow_times on
    the other. False (nothing done) for a piece too narrow for them (BLAS then forms it,
    in B's layout all the same)."""
    cdef Py_ssize_t w = c1 - c0, cols = x.n if for_W else x.m
    cdef Py_ssize_t ld = x.n if x.fortran else x.m  # a stored row's entries
    cdef Py_ssize_t stored = x.m if x.fortran else x.n  # stored rows
    cdef Py_ssize_t strip = 64 if floating is float else 32  # narrow_add's columns
    cdef const floating* X = <const floating*> x.dense
    cdef bint along = for_W != x.fortran  # B's columns are X's stored rows
    if x.other != NULL and along == (w >= strip):  # (narrow_both) the other layout suits
        X = <const floating*> x.other
        ld, stored = stored, ld
        along = not along
    if along:
        if w < 4:
            return False
        narrow_times(X + c0 * ld, w, ld, F, k, B + c0, cols)
        return True
    if w < strip:
        return False
    narrow_add(X + c0, ld, stored, w, F, k, B + c0, True)
    return True


cdef inline void rows_part(const XData* x, Py_ssize_t k, const floating* F, floating* T,
                           bint for_W, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """Rows c0..c1 of T (cols×k) = (X's rows c0..c1 for H Xᵀ, its columns for Wᵀ X) Fᵀ
    (see by_rows): stored rows of X (or of Xᵀ) along its storage order, else a strided
    piece of every stored row, transposed by the call."""
    cdef int q = x.m if for_W else x.n, kk = k, w = c1 - c0
    cdef int ld = x.n if x.fortran else x.m  # a stored row's entries
    cdef const floating* X = <const floating*> x.dense
    if w <= 0:
        return
    if for_W != x.fortran:
        gemm(False, True, w, kk, q, <floating> 1, X + c0 * q, q, F, q, <floating> 0,
             T + c0 * k, kk)
    else:
        gemm(True, True, w, kk, q, <floating> 1, X + c0, ld, F, q, <floating> 0,
             T + c0 * k, kk)


cdef void product_W(const XData* x, Py_ssize_t k, const floating* H, floating* B,
                    floating* T, int n_threads) noexcept nogil:
    """B (k×n) = H Xᵀ: the product the W half-step needs (X Hᵀ, stored transposed).

    A large dense X is split into chunks of rows (``chunk_width``), one single-threaded
    BLAS call each (the caller holds BLAS to one thread: see _threads), shared among
    ``n_threads`` threads. T (k×P, P = max(n, m)) and the region v after it are
    scratch (a sparse X; a float32 X, see by_rows); T may be NULL for a dense X. An X out
    of core is read a chunk at a time (stream_product, its own scratch).
    """
    cdef Py_ssize_t n = x.n, m = x.m, P = n if n > m else m
    if x.source != NULL:
        stream_product(x, k, H, B, True, n_threads)
        return
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
    if x.source != NULL:
        stream_product(x, k, Wt, B, False, n_threads)
        return
    if x.sparse:
        transpose(k, n, Wt, T, n_threads)  # W (n×k)
        sparse_times(m, x.cptr, x.cind, <const floating*> x.cdata, k, T, B, T + k * P,
                     n_threads)
        return
    dense_product(x, k, Wt, B, T, False, n_threads)


# The row-block engine's products with a block of rows X_b of X (rows r0..r0+w), the
# only places it reads X (_solve.pyx, engine_pass).

cdef void block_product_W(const XData* x, Py_ssize_t k, const floating* H,
                          const floating* Ht, Py_ssize_t r0, Py_ssize_t w, floating* B,
                          floating* a, floating* T) noexcept nogil:
    """B (k×w) = H X_bᵀ: a dense X (C order) by narrow_times or one BLAS call
    (rows_first_call: X_b Hᵀ into T, w×k, then transposed); a sparse X from its CSR rows,
    gathering the rows of Ht = Hᵀ (m×k) in ``a`` (acc_stride(k) entries)."""
    cdef Py_ssize_t j
    cdef const floating* Xb = <const floating*> x.dense + r0 * x.m
    if x.sparse:
        for j in range(w):
            sparse_row(j, x.rptr + r0, x.rind, <const floating*> x.rdata, k, Ht, B, w, a)
        return
    if w >= 4 and narrow_call(x, k):
        narrow_times(Xb, w, x.m, H, k, B, w)
        return
    if rows_first_call(x, k):
        gemm(False, True, <int> w, <int> k, <int> x.m, <floating> 1, Xb, <int> x.m, H,
             <int> x.m, <floating> 0, T, <int> k)
        transpose(w, k, T, B, 1)
        return
    gemm(False, True, <int> k, <int> w, <int> x.m, <floating> 1, H, <int> x.m, Xb,
         <int> x.m, <floating> 0, B, <int> w)


cdef void block_add_H(const XData* x, Py_ssize_t k, const floating* F, Py_ssize_t r0,
                      Py_ssize_t w, floating* acc, bint first, floating* a) noexcept nogil:
    """Add F X_b into ``acc`` (F: k×w, the block's columns of Wᵀ), or set it when ``first``:
    a dense X by narrow_add or one BLAS call, acc k×m (rows_first_call: its transpose, by
    X_bᵀ Fᵀ); a sparse X scattered from its CSR rows, acc the transpose (m×k, row-major),
    each row's k-vector of F gathered in ``a`` first (acc_transposed)."""
    cdef Py_ssize_t j, c, m = x.m
    cdef const int64_t* ptr = x.rptr + r0
    cdef const floating* data = <const floating*> x.rdata
    cdef const floating* Xb = <const floating*> x.dense + r0 * m
    cdef Py_ssize_t strip = 64 if floating is float else 32  # narrow_add's columns
    if m >= strip and narrow_call(x, k):
        narrow_add(Xb, m, w, m, F, k, acc, first)
        return
    if rows_first_call(x, k):
        gemm(True, True, <int> m, <int> k, <int> w, <floating> 1, Xb, <int> m, F, <int> w,
             <floating> (0 if first else 1), acc, <int> k)
        return
    if not x.sparse:
        gemm(False, False, <int> k, <int> m, <int> w, <floating> 1, F, <int> w, Xb, <int> m,
             <floating> (0 if first else 1), acc, <int> m)
        return
    if first:
        memset(acc, 0, m * k * sizeof(floating))
    for j in range(w):
        for c in range(k):
            a[c] = F[c * w + j]
        if k < 8:
            scatter_small(ptr[j], ptr[j + 1], x.rind, data, k, a, acc)
            continue
        c = 0
        while c < k:  # up to 32 entries at a time, held in registers
            if floating is double:
                scatter_windows(ptr[j], ptr[j + 1], x.rind, data, k, a, c, acc)
            else:
                SCATTER_F32(ptr[j], ptr[j + 1], x.rind, data, k, a, c, acc)
            c += 32


cdef void scatter_small(Py_ssize_t p0, Py_ssize_t p1, const int32_t* ind,
                        const floating* data, Py_ssize_t k, const floating* a,
                        floating* acc) noexcept nogil:
    """block_add_H's sparse row for k < 8: scatter_few with k a constant in each call
    (as gather_small)."""
    if k == 1:
        scatter_few(p0, p1, ind, data, 1, a, acc)
    elif k == 2:
        scatter_few(p0, p1, ind, data, 2, a, acc)
    elif k == 3:
        scatter_few(p0, p1, ind, data, 3, a, acc)
    elif k == 4:
        scatter_few(p0, p1, ind, data, 4, a, acc)
    elif k == 5:
        scatter_few(p0, p1, ind, data, 5, a, acc)
    elif k == 6:
        scatter_few(p0, p1, ind, data, 6, a, acc)
    else:
        scatter_few(p0, p1, ind, data, 7, a, acc)


cdef inline void scatter_few(Py_ssize_t p0, Py_ssize_t p1, const int32_t* ind,
                             const floating* data, Py_ssize_t k, const floating* a,
                             floating* acc) noexcept nogil:
    """block_add_H's sparse row for k < 8, called with k a constant (as gather_few): a
    held in registers through the row."""
    cdef Py_ssize_t c, p
    cdef floating v
    cdef floating* out
    cdef floating t[8]
    for c in range(k):
        t[c] = a[c]
    for p in range(p0, p1):
        v = data[p]
        out = acc + <Py_ssize_t> ind[p] * k
        for c in range(k):
            out[c] = out[c] + v * t[c]


# block_add_H calls the float version through a pointer, which GCC cannot inline: inlined
# there, GCC 12 made scalar code of it and spilled (the sparse case 1.2-1.4 x slower than
# the plain loop); on its own it is vectorized as the double version is.
ctypedef void (*ScatterF32)(Py_ssize_t, Py_ssize_t, const int32_t*, const float*,
                           Py_ssize_t, const float*, Py_ssize_t, float*) noexcept nogil
cdef ScatterF32 SCATTER_F32 = scatter_windows[float]


cdef void scatter_windows(Py_ssize_t p0, Py_ssize_t p1, const int32_t* ind,
                          const floating* data, Py_ssize_t k, const floating* a,
                          Py_ssize_t c0, floating* acc) noexcept nogil:
    """Entries c0 .. min(c0 + 32, k) of block_add_H's sparse row (k >= 8): for each
    non-zero p, acc row ind[p] += data[p] · a, by up to four windows of 8 entries of a
    held in registers through the row (read from memory at every non-zero, a may alias
    acc for all the compiler knows). As in gather_windows, a window past k ends at k:
    - behind another window of this call, it overlaps that one. Both are loaded before
      either is stored, and the entries they share get the same sum twice (the same
      old value, a and data[p]), so each entry is the plain loop's. (Storing one window
      before loading the other makes the load wait for a partly overlapping store.)
    - alone (the last call's only window), it overlaps the previous call's entries, long
      since stored: its lanes there are zero, adding +0.0 (a sum started at +0.0 is
      never -0.0 in round-to-nearest, and x + 0.0 is x bit for bit for any other x)."""
    cdef Py_ssize_t c, p
    cdef Py_ssize_t nw = (k - c0 + 7) // 8
    cdef Py_ssize_t s0 = c0 if c0 + 8 <= k else k - 8
    cdef Py_ssize_t s1 = c0 + 8 if c0 + 16 <= k else k - 8
    cdef Py_ssize_t s2 = c0 + 16 if c0 + 24 <= k else k - 8
    cdef Py_ssize_t s3 = c0 + 24 if c0 + 32 <= k else k - 8
    cdef Py_ssize_t until = prefetch_until(p0, p1, k * <Py_ssize_t> sizeof(floating))
    cdef floating v
    cdef floating* out
    cdef floating t0[8]
    cdef floating t1[8]
    cdef floating t2[8]
    cdef floating t3[8]
    cdef floating u0[8]
    cdef floating u1[8]
    cdef floating u2[8]
    cdef floating u3[8]
    for c in range(8):
        t0[c] = a[s0 + c]
        t1[c] = a[s1 + c]
        t2[c] = a[s2 + c]
        t3[c] = a[s3 + c]
    for c in range(c0 - s0):  # nw == 1, past k: the lanes of the call before
        t0[c] = 0
    # One loop per window count, written out (see gather_windows).
    if nw >= 4:
        for p in range(p0, p1):
            if p < until:
                ahead(acc + <Py_ssize_t> ind[p + PREFETCH_AHEAD] * k, s0, s3)
            v = data[p]
            out = acc + <Py_ssize_t> ind[p] * k
            for c in range(8):
                u0[c] = out[s0 + c]
            for c in range(8):
                u1[c] = out[s1 + c]
            for c in range(8):
                u2[c] = out[s2 + c]
            for c in range(8):
                u3[c] = out[s3 + c]
            for c in range(8):
                out[s0 + c] = u0[c] + v * t0[c]
            for c in range(8):
                out[s1 + c] = u1[c] + v * t1[c]
            for c in range(8):
                out[s2 + c] = u2[c] + v * t2[c]
            for c in range(8):
                out[s3 + c] = u3[c] + v * t3[c]
    elif nw == 3:
        for p in range(p0, p1):
            if p < until:
                ahead(acc + <Py_ssize_t> ind[p + PREFETCH_AHEAD] * k, s0, s3)
            v = data[p]
            out = acc + <Py_ssize_t> ind[p] * k
            for c in range(8):
                u0[c] = out[s0 + c]
            for c in range(8):
                u1[c] = out[s1 + c]
            for c in range(8):
                u2[c] = out[s2 + c]
            for c in range(8):
                out[s0 + c] = u0[c] + v * t0[c]
            for c in range(8):
                out[s1 + c] = u1[c] + v * t1[c]
            for c in range(8):
                out[s2 + c] = u2[c] + v * t2[c]
    elif nw == 2:
        for p in range(p0, p1):
            if p < until:
                ahead(acc + <Py_ssize_t> ind[p + PREFETCH_AHEAD] * k, s0, s3)
            v = data[p]
            out = acc + <Py_ssize_t> ind[p] * k
            for c in range(8):
                u0[c] = out[s0 + c]
            for c in range(8):
                u1[c] = out[s1 + c]
            for c in range(8):
                out[s0 + c] = u0[c] + v * t0[c]
            for c in range(8):
                out[s1 + c] = u1[c] + v * t1[c]
    else:  # (u0 as above: updated in place, GCC 12 leaves this loop scalar)
        for p in range(p0, p1):
            if p < until:
                ahead(acc + <Py_ssize_t> ind[p + PREFETCH_AHEAD] * k, s0, s3)
            v = data[p]
            out = acc + <Py_ssize_t> ind[p] * k
            for c in range(8):
                u0[c] = out[s0 + c]
            for c in range(8):
                out[s0 + c] = u0[c] + v * t0[c]
