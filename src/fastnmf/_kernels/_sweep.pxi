# The HALS sweep: blocks of columns, tiles of registers.
# Included by _common.pyx (one module: the cdef functions are declared in _common.pxd).


cdef inline double* block_sums(floating* v, Py_ssize_t k, int n_threads) noexcept nogil:
    """The doubles after the per-thread vectors of region v (8-byte aligned)."""
    cdef uintptr_t at = <uintptr_t> (v + sums_at(k, n_threads))
    return <double*> ((at + 7) & ~(<uintptr_t> 7))


cdef inline Py_ssize_t sweep_width(Py_ssize_t k, Py_ssize_t size) noexcept nogil:
    """Columns per block of a sweep: the k rows of a block fill about SWEEP_BYTES (they
    are read once per component: they should stay in the first-level cache), a multiple
    of 32 between SWEEP_MIN and SWEEP_BLOCK. Depends on k and the dtype only."""
    cdef Py_ssize_t w = SWEEP_BYTES // (k * size)
    w -= w % 32
    return SWEEP_MIN if w < SWEEP_MIN else (SWEEP_BLOCK if w > SWEEP_BLOCK else w)


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
    cdef double d, total
    for j in range(w):
        g[j] = fl1 - Bt[j] + fl2 * Ft[j]
    for r in range(k):
        a = A[t * k + r]
        if a != 0:
            Fr = F + r * p + j0
            for j in range(w):
                g[j] += a * Fr[j]
    # The two sums below are chains of additions in column order (scikit-learn's order
    # within a tile), kept in a local: through viol or dsum, which may alias F for all the
    # compiler knows, each addition went through memory.
    if measure:  # |g| where F > 0, else -g where g < 0, else nothing (adds +0: the same)
        total = viol[0]
        for j in range(w):
            gj = g[j]
            # Selects, not branches: a test of F's sign mispredicts about half the time
            # (38 % of sweep_block's samples sat on that jump, a sparse fit at k = 10).
            total += fabs(gj) if Ft[j] > 0 else (-gj if gj < 0 else 0)
        viol[0] = total
    if hess > 0:  # Ft ← max(Ft − g / hess, 0), written as a select that vectorizes
        if track:
            total = dsum[0]
            for j in range(w):
                old = Ft[j]
                gj = old - g[j] / hess
                Ft[j] = 0 if gj < 0 else gj
                d = Ft[j] - old
                total += d * d
            dsum[0] = total
        else:
            for j in range(w):
                gj = Ft[j] - g[j] / hess
                Ft[j] = 0 if gj < 0 else gj
