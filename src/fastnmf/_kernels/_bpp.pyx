# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""bpp — ANLS by block principal pivoting (docs/algorithms.md, "bpp"; Kim & Park 2011).

Each half-step solves min_{x ≥ 0} ½ xᵀ(A + l2 I)x − (b − l1)ᵀx exactly for every column x
of F (k×p), b the matching column of B. Per column, a passive set P (the entries allowed
to be positive; warm-started from F > 0) gives x_P = (A + l2 I)_PP⁻¹ (b − l1)_P, x = 0
elsewhere, and the gradient y = (A + l2 I)x − (b − l1). The infeasible entries — x_i < 0
in P, y_i < 0 outside — are exchanged between P and its complement: all of them while their
number keeps falling (or for up to BACKUPS more rounds), else only the one of largest index
(Kim & Park's backup rule, which guarantees termination). A column is solved when none is
left. The solution is taken if it lowers the half-step objective g (als's) and keeps every
live component alive, else the half-step is one HALS sweep from F (as in als): exact solves
from a poor start can kill components for good, and on a singular Gram (k above the rank
of the other factor) the ridged solves are not exact. Columns sharing a passive set share one Cholesky factorization: in each round the
unsolved columns are sorted by their set and solved group by group. A dead component
(A[t, t] + l2 = 0) stays out of every passive set.

Taking the solution or the sweep is decided over the whole factor, so the row-block engine
runs it on a guess (Params.speculative), as als's choice: each block solves its columns,
keeps the guessed candidate and adds into the evidence the pieces of both objectives, of
the zero-row test and of the inexact flag; ``bpp_settle`` takes the whole half-step's
choice from them and, if it is not the guess, redoes the half-step from the factor before
the pass.
"""

from cython cimport floating
from libc.stdint cimport uint64_t, int64_t, int32_t, uintptr_t
from libc.stdlib cimport qsort
from libc.string cimport memcpy, memset
from libc.math cimport fabs

from ._blas cimport gemm, cholesky, chol_solve_cols
from ._common cimport (Half, Params, kernel_capsule, hals_sweep, next_permutation,
                       transpose)
from ._als cimport half_objective, kills_component, count_rows, evidence_kills

# The evidence (_common.pxd, Half.evidence): g of the solution and of the incoming factor,
# the blocks with an inexact solve, then per component the blocks where the solution's row
# and the incoming factor's row have a non-zero entry.
cdef enum:
    EV_G_NEW = 0
    EV_G_OLD = 1
    EV_INEXACT = 2
    EV_ROWS = 3

# Kim & Park's backup allowance: full exchanges tolerated without progress.
cdef int BACKUPS = 3
# Ridge tries when a passive block is not numerically positive definite.
cdef int RIDGE_TRIES = 8

cdef struct Key:
    uint64_t key     # the passive set (k <= 64), else a hash of it
    int64_t col


cdef int compare_keys(const void* a, const void* b) noexcept nogil:
    cdef const Key* x = <const Key*> a
    cdef const Key* y = <const Key*> b
    if x.key != y.key:
        return -1 if x.key < y.key else 1
    if x.col != y.col:
        return -1 if x.col < y.col else 1
    return 0


cdef inline Py_ssize_t words(Py_ssize_t k) noexcept nogil:
    return (k + 63) // 64


cdef inline void* aligned(void* at) noexcept nogil:
    return <void*> ((<uintptr_t> at + 15) & ~(<uintptr_t> 15))


cdef inline bint in_set(const uint64_t* mask, Py_ssize_t i) noexcept nogil:
    return (mask[i >> 6] >> (i & 63)) & 1


cdef inline void flip(uint64_t* mask, Py_ssize_t i) noexcept nogil:
    mask[i >> 6] ^= (<uint64_t> 1) << (i & 63)


cdef inline uint64_t set_key(const uint64_t* mask, Py_ssize_t nw) noexcept nogil:
    """The set itself for k <= 64, else an FNV-1a-style mix of its words."""
    cdef uint64_t h = 1469598103934665603ULL
    cdef Py_ssize_t w
    if nw == 1:
        return mask[0]
    for w in range(nw):
        h = (h ^ mask[w]) * 1099511628211ULL
        h ^= h >> 29
    return h


cdef int factor_block(Py_ssize_t k, const floating* Aq, const int32_t* idx, Py_ssize_t s,
                      floating* C) noexcept nogil:
    """C ← Cholesky factor of Aq[idx, idx] (s×s), with a growing ridge if needed.
    Returns 0 (exact), the number of ridge tries it took, or -1 (no factor)."""
    cdef Py_ssize_t a, b
    cdef double trace = 0, ridge = 0
    cdef int info = 0, attempt
    for a in range(s):
        trace += Aq[idx[a] * k + idx[a]]
    for attempt in range(RIDGE_TRIES + 1):
        for a in range(s):
            for b in range(s):
                C[a * s + b] = Aq[idx[a] * k + idx[b]]
            C[a * s + a] += <floating> ridge
        info = cholesky(<int> s, C)
        if info == 0:
            return attempt
        ridge = (trace / s) * (1e-10 if floating is double else 1e-5) if ridge == 0 \
            else ridge * 100
    return -1


cdef bint solve_group(Py_ssize_t k, const floating* Aq, const floating* Bc, floating* Xc,
                      const uint64_t* mask, const Key* keys, Py_ssize_t g,
                      int32_t* idx, floating* C, floating* R) noexcept nogil:
    """x_P = Aq_PP⁻¹ b_P, x = 0 elsewhere, for the g columns keys[0..g) whose passive set
    is ``mask``: one factorization, g right-hand sides. Returns True if the block needed
    a ridge (the solutions are then not exact)."""
    cdef Py_ssize_t s = 0, i, c, a
    cdef int64_t j
    cdef int tries = 0
    for i in range(k):
        if in_set(mask, i):
            idx[s] = <int32_t> i
            s += 1
    if s:
        tries = factor_block(k, Aq, idx, s, C)
        if tries < 0:
            s = 0  # a hopeless block: leave these columns at zero this round
    for c in range(g):
        j = keys[c].col
        for a in range(s):
            R[c * s + a] = Bc[j * k + idx[a]]
    if s:
        chol_solve_cols(<int> s, <int> g, C, R)
    for c in range(g):
        j = keys[c].col
        memset(Xc + j * k, 0, k * sizeof(floating))
        for a in range(s):
            Xc[j * k + idx[a]] = R[c * s + a]
    return tries != 0


cdef double projected_gradient(Py_ssize_t k, Py_ssize_t p, const floating* F,
                               const floating* A, const floating* B, double l1, double l2,
                               floating* T) noexcept nogil:
    """Σ |projected gradient| of the half-step objective at F (scikit-learn's violation);
    T (k×p) scratch."""
    cdef Py_ssize_t i
    cdef double g, viol = 0
    gemm(False, False, <int> k, <int> p, <int> k, <floating> 1, A, <int> k, F, <int> p,
         <floating> 0, T, <int> p)
    for i in range(k * p):
        g = <double> T[i] + l2 * F[i] - B[i] + l1
        if F[i] > 0:
            viol += fabs(g)
        elif g < 0:
            viol -= g
    return viol


cdef Py_ssize_t bpp_region_len(Py_ssize_t k, Py_ssize_t P, double beta) noexcept nogil:
    """Entries (of 4 bytes or more) of bpp's own region for a half-step of F (k×p), p <= P,
    as ``Region.carve`` lays it out: B's columns and one group's right-hand sides (k·P
    each), then the passive sets (P bitmasks of ⌈k/64⌉ words), two int32 per column, k
    indices, sort keys (16 bytes), the list of unsolved columns (8 bytes), a sweep order (k
    indices of 8 bytes), with room for alignment."""
    cdef Py_ssize_t byte_count = (8 * P * ((k + 63) // 64) + 8 * P + 4 * k + 16 * P + 8 * P
                                  + 8 * k + 64)
    return 2 * k * P + byte_count // 4 + 1


cdef struct Region:
    void* Bc            # p×k: the columns of B − l1
    void* R             # right-hand sides of one group
    uint64_t* masks     # p passive sets of words(k) words
    int32_t* best
    int32_t* backups
    int32_t* idx        # k entries: one passive set's indices
    Key* keys
    int64_t* active
    Py_ssize_t* order   # k entries: the closing sweep's order in a block of the engine
    char* end           # one past the last byte used


cdef inline void carve(Region* r, floating* E, Py_ssize_t k, Py_ssize_t p) noexcept nogil:
    """bpp's own region E for a half-step of F (k×p), sized by bpp_region_len."""
    cdef Py_ssize_t nw = words(k)
    r.Bc = E
    r.R = E + k * p
    r.masks = <uint64_t*> aligned(E + 2 * k * p)
    r.best = <int32_t*> (r.masks + p * nw)
    r.backups = r.best + p
    r.idx = r.backups + p
    r.keys = <Key*> aligned(r.idx + k)
    r.active = <int64_t*> (r.keys + p)
    r.order = <Py_ssize_t*> (r.active + p)
    r.end = <char*> (r.order + k)


def region_fits(Py_ssize_t k, Py_ssize_t p, Py_ssize_t P, bint single=False):
    """Whether ``carve`` of a half-step of F (k×p) ends within bpp_region_len(k, P) entries
    of the dtype, wherever the region starts (for the tests)."""
    cdef Region r
    cdef Py_ssize_t size = sizeof(float) if single else sizeof(double), shift
    cdef Py_ssize_t length = bpp_region_len(k, P, 2)
    for shift in range(0, 16, size):  # the region's start, at every alignment it can have
        if single:
            carve(&r, <float*> (<char*> 0 + 4096 + shift), k, p)
        else:
            carve(&r, <double*> (<char*> 0 + 4096 + shift), k, p)
        if r.end > <char*> 0 + 4096 + shift + length * size:
            return False
    return True


cdef double bpp_half(const Half* h, floating* F, const floating* A,
                     const floating* B) noexcept nogil:
    """Solve the half-step for F (k×p) exactly, in place. T (k×p), C, S (k×k) and its own
    region (bpp_region_len) are scratch. Returns the violation at the incoming F if
    ``measure``."""
    cdef Py_ssize_t k = h.k, p = h.p
    cdef double l1 = h.l1, l2 = h.l2
    cdef const Params* prm = h.prm
    cdef floating* C = <floating*> h.C
    cdef floating* E = <floating*> h.own
    cdef Region r
    carve(&r, E, k, p)
    cdef Py_ssize_t nw = words(k), i, j, c, g, a, start, n_active, n_next, rounds
    cdef double viol = projected_gradient(k, p, F, A, B, l1, l2, <floating*> h.T) \
        if h.measure else 0
    cdef floating* Xc = <floating*> h.T        # p×k: the columns of F, one per row
    cdef floating* Bc = <floating*> r.Bc
    cdef floating* R = <floating*> r.R
    cdef uint64_t* masks = r.masks
    cdef int32_t* best = r.best
    cdef int32_t* backups = r.backups
    cdef int32_t* idx = r.idx
    cdef Key* keys = r.keys
    cdef int64_t* active = r.active
    cdef floating* Aq = <floating*> h.S
    cdef floating* x
    cdef const floating* b
    cdef uint64_t* mask
    cdef int32_t bad
    cdef double g_new, g_old
    cdef bint inexact = False
    # objectives this close (relative) are equal to rounding: near an exact fit the
    # expanded g cancels, and an exact solution (no ridge, every column solved) is then
    # taken
    cdef double SAME_OBJECTIVE = 1e-13 if floating is double else 1e-6
    cdef double y
    cdef floating fl1 = l1
    # Aq = A + l2 I; the columns of F and of B − l1, one per row
    memcpy(Aq, A, k * k * sizeof(floating))
    for i in range(k):
        Aq[i * k + i] += <floating> l2
    transpose(k, p, F, Xc, prm.n_threads)
    transpose(k, p, B, Bc, prm.n_threads)
    if fl1 != 0:
        for i in range(k * p):
            Bc[i] -= fl1
    # warm start: P = {i : F[i, j] > 0}, dead components excluded
    memset(masks, 0, p * nw * sizeof(uint64_t))
    for j in range(p):
        for i in range(k):
            if Xc[j * k + i] > 0 and Aq[i * k + i] > 0:
                flip(masks + j * nw, i)
        best[j] = <int32_t> (k + 1)
        backups[j] = BACKUPS
        active[j] = j
    n_active = p
    rounds = 0
    while n_active and rounds < 10 * k + 10:
        rounds += 1
        # solve every unsolved column, one factorization per distinct passive set
        for c in range(n_active):
            keys[c].col = active[c]
            keys[c].key = set_key(masks + active[c] * nw, nw)
        qsort(keys, n_active, sizeof(Key), compare_keys)
        start = 0
        while start < n_active:
            mask = masks + keys[start].col * nw
            g = 1
            while (start + g < n_active and keys[start + g].key == keys[start].key
                   and same_set(masks + keys[start + g].col * nw, mask, nw)):
                g += 1
            inexact |= solve_group(k, Aq, Bc, Xc, mask, keys + start, g, idx, C, R)
            start += g
        # exchange the infeasible entries of each column (listed in idx first)
        n_next = 0
        for c in range(n_active):
            j = active[c]
            x = Xc + j * k
            b = Bc + j * k
            mask = masks + j * nw
            bad = 0
            for i in range(k):
                if in_set(mask, i):
                    if x[i] < 0:
                        idx[bad] = <int32_t> i
                        bad += 1
                elif Aq[i * k + i] > 0:
                    y = -b[i]  # x is 0 outside P: the full row product is (Aq x)_i
                    for a in range(k):
                        y += <double> Aq[i * k + a] * x[a]
                    if y < 0:
                        idx[bad] = <int32_t> i
                        bad += 1
            if bad == 0:
                continue
            active[n_next] = j
            n_next += 1
            if bad < best[j]:
                best[j] = bad
                backups[j] = BACKUPS
            elif backups[j] > 0:
                backups[j] -= 1
            else:  # the backup rule: exchange only the infeasible entry of largest index
                flip(mask, idx[bad - 1])
                continue
            for a in range(bad):
                flip(mask, idx[a])
        n_active = n_next
    # The solution, clipped where the round cap left a column unsolved, component-major
    # in E. It is taken if it lowers the half-step objective and keeps every live
    # component alive (a zeroed one would stay dead: its Gram diagonal becomes 0); else
    # the half-step is one HALS sweep from F, as in als. (Exact solves from a poor start
    # can kill components; on a singular Gram the ridge makes the solve inexact.)
    transpose(p, k, Xc, E, prm.n_threads)
    for i in range(k * p):
        if not E[i] > 0:
            E[i] = 0
    inexact |= n_active > 0  # the round cap left columns unsolved
    if h.guess >= 0:  # a block of the engine: the evidence, the guessed candidate kept
        count_rows(k, p, E, h.evidence + EV_ROWS)
        count_rows(k, p, F, h.evidence + EV_ROWS + k)
        h.evidence[EV_G_NEW] += half_objective(k, p, E, A, B, l1, l2, C)
        h.evidence[EV_G_OLD] += half_objective(k, p, F, A, B, l1, l2, C)
        h.evidence[EV_INEXACT] += inexact
        if h.guess:
            memcpy(F, E, k * p * sizeof(floating))
        else:
            next_permutation(k, r.order, False, h.rng)
            hals_sweep(k, p, F, A, B, l1, l2, r.order, <floating*> h.v, False, prm.n_threads,
                       NULL)
        return viol
    if not kills_component(k, p, E, F):
        g_new = half_objective(k, p, E, A, B, l1, l2, C)
        g_old = half_objective(k, p, F, A, B, l1, l2, C)
        if takes_solution(g_new, g_old, inexact, SAME_OBJECTIVE):
            memcpy(F, E, k * p * sizeof(floating))
            return viol
    next_permutation(k, h.perm, False, h.rng)
    hals_sweep(k, p, F, A, B, l1, l2, h.perm, <floating*> h.v, False, prm.n_threads, NULL)
    return viol


cdef inline bint takes_solution(double g_new, double g_old, bint inexact,
                                double same) noexcept nogil:
    """Whether the solution (objective g_new) replaces the factor (g_old)."""
    return g_new <= g_old + (0 if inexact else same * (fabs(g_new) + fabs(g_old)))


cdef int bpp_settle(const Half* h, floating* F, const floating* A, const floating* B,
                    const double* evidence, bint* redo) noexcept nogil:
    """The whole half-step's choice (_common.pxd, SettleF64): 1 the solution, 0 the
    sweep; another choice than the guess is redone. (The order the engine draws for the
    pass is never read by bpp, whose closing sweep keeps the components' order.)"""
    cdef double same = 1e-13 if floating is double else 1e-6
    cdef int outcome = (not evidence_kills(h.k, evidence + EV_ROWS)
                        and takes_solution(evidence[EV_G_NEW], evidence[EV_G_OLD],
                                           evidence[EV_INEXACT] != 0, same))
    redo[0] = outcome != h.guess
    return outcome


cdef Py_ssize_t bpp_spec_len(Py_ssize_t k, Py_ssize_t p, const Params* prm) noexcept nogil:
    return EV_ROWS + 2 * k


cdef inline bint same_set(const uint64_t* a, const uint64_t* b, Py_ssize_t nw) noexcept nogil:
    cdef Py_ssize_t w
    for w in range(nw):
        if a[w] != b[w]:
            return False
    return True

# The entry points _solve.pyx dispatches to (_common.pxd, Kernel).
KERNEL = kernel_capsule(bpp_half[float], bpp_half[double], bpp_region_len, NULL, NULL,
                        bpp_settle[float], bpp_settle[double], bpp_spec_len)
