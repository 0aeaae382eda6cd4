# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The iteration loop of every solver for the Frobenius loss, the dispatch to the solvers'
half-steps, and the Python entry.

Both factors are stored component-major inside the loop: Wᵀ (k×n) and H (k×m), so that a
half-step for either is the same operation on a k×p matrix F with A (the other factor's
Gram) and B (the other factor's product with X). ``solve_core`` runs without the GIL and
allocates nothing; ``solve`` allocates the one workspace, releases the GIL once and calls it.

The other β-divergences (mu only, ``_mu.mu_loss_loop``) have a loop of their own, for a
reason of the mathematics: for β ≠ 2 the gradient is not a function of the Grams and the
products with X (A, B) that this loop forms once per half-step: each update needs
X ∘ (WH)^(β−2) and (WH)^(β−1), a pass over X together with WH for each factor, and the loss
D_β(X ‖ WH) is not ‖X‖² − 2⟨B, F⟩ + ⟨A, G⟩ but another pass. The two loops share the
stopping rule, the trace and the hook.
"""

import importlib

import numpy as np

from cython cimport floating
from libc.math cimport isfinite, INFINITY
from libc.stdint cimport uint64_t, uintptr_t

from cython.parallel cimport prange
from libc.string cimport memcpy

from ._blas cimport dot
from ._common cimport (
    XData, Source, Half, Params, Trace, Hook, Kernel, kernel_of, STATUS_OK, STATUS_NONFINITE,
    STATUS_STOPPED, Watch, vectors_len, prepare_x, x_entries, workspace_len, other_order, product_W,
    product_H, factor_gram,
    loss_sq, accurate_loss_sq, record, finish, tick, at_check, fastnmf_clock, init_trace,
    trace_status, take_history, next_permutation, threads_for, transpose, block_product_W,
    block_add_H, acc_transposed, fetch_chunk, source_failed, copy_columns,
)

from .._registry import SOLVERS
from ._common import aligned_empty

# Every registry solver's entry points (its module's KERNEL), indexed by the solver's place
# in the registry: its kernel id. Gathered once, at import.
cdef enum:
    MAX_SOLVERS = 16
cdef Kernel KERNELS[MAX_SOLVERS]
cdef dict KERNEL_IDS = {}
if len(SOLVERS) > MAX_SOLVERS:
    raise ImportError("fastnmf: more solvers in _registry.SOLVERS than _solve.MAX_SOLVERS")
for _id, _entry in enumerate(SOLVERS.values()):
    KERNELS[_id] = kernel_of(importlib.import_module(f"._{_entry.name}", __package__).KERNEL)
    KERNEL_IDS[_entry.name] = _id
    if _entry.losses != ("frobenius",) and KERNELS[_id].loss_loop_f64 == NULL:
        raise ImportError(f"fastnmf: solver {_entry.name!r} lists losses other than "
                          "Frobenius but its KERNEL has no loss loop")


cdef int kernel_id(str solver) except -1:
    """The kernel id of ``solver``, a registry name."""
    return KERNEL_IDS[solver]


cdef int fill_params(Params* p, str solver, const XData* x, int max_iter, double tol,
                     double l1_W, double l2_W, double l1_H, double l2_H, bint update_H,
                     bint shuffle, uint64_t seed, double beta, int n_threads,
                     bint accelerate) except -1:
    """Every field of ``p`` for a call of ``solver`` on ``x``: the arguments, and the
    registry's facts the loop reads (check cadence, stopping rule). Returns the solver's
    kernel id. The one place a Params is filled (solve, and each item of a batch)."""
    cdef object entry = SOLVERS[solver]
    cdef int solver_id = kernel_id(solver)
    p.max_iter = max_iter
    p.tol = tol
    p.l1_W, p.l2_W, p.l1_H, p.l2_H = l1_W, l2_W, l1_H, l2_H
    p.update_H = update_H
    p.shuffle = shuffle
    p.seed = seed
    p.check_every = entry.check_every
    p.stop_on_decrease = entry.stops_on == "decrease"
    p.beta = beta
    p.n_threads = max(n_threads, 1)
    p.accelerate = accelerate
    p.x_entries = x_entries(x)
    p.separable = entry.separable and not accelerate
    p.speculative = not p.separable and KERNELS[solver_id].settle_f64 != NULL
    return solver_id


cdef inline double half_step(int solver, const Half* h, floating* F, const floating* A,
                             const floating* B) noexcept nogil:
    """One half-step of F (k×p) by the solver of kernel id ``solver``."""
    if floating is double:
        return KERNELS[solver].half_f64(h, F, A, B)
    else:
        return KERNELS[solver].half_f32(h, F, A, B)


cdef inline int settle(int solver, const Half* h, floating* F, const floating* A,
                       const floating* B, const double* evidence, bint* redo) noexcept nogil:
    """The speculative solver's settling of its guess (_common.pxd, SettleF64)."""
    if floating is double:
        return KERNELS[solver].settle_f64(h, F, A, B, evidence, redo)
    else:
        return KERNELS[solver].settle_f32(h, F, A, B, evidence, redo)


cdef Py_ssize_t region_len(int solver, Py_ssize_t k, Py_ssize_t P, double beta) noexcept nogil:
    """Entries of the solver's own workspace region (it carves them itself)."""
    if KERNELS[solver].region_len == NULL:
        return 0
    return KERNELS[solver].region_len(k, P, beta)


cdef Py_ssize_t base_len(int solver, const XData* x, Py_ssize_t k,
                         const Params* p) noexcept nogil:
    """Entries of the workspace before the row-block engine's scratch (_common.pxd); with
    the engine, the solver's own region is in that scratch (idle_len), not here."""
    cdef Py_ssize_t P = x.n if x.n > x.m else x.m
    cdef Py_ssize_t region = 0 if uses_engine(x, k, p) else region_len(solver, k, P, p.beta)
    return workspace_len(x.n, x.m, k, p.n_threads, region, product_len(x, k, p))


cdef Py_ssize_t product_len(const XData* x, Py_ssize_t k, const Params* p) noexcept nogil:
    """Entries of the workspace's B and of its T: k·P (P = max(n, m)), or k·m when the
    row-block engine reads X by its rows: B is then the pass's C = Wᵀ X and the H
    half-step's, T that half-step's scratch and a sparse X's Hᵀ. What needs k·P (the first
    loss's product, the formed error, a speculative solver's whole half-step of W) takes
    the engine's scratch while no pass runs (idle_len), so that no k × n array but W's
    own is made for them. (By columns, the W half-step takes B = H Xᵀ from the pass.)"""
    cdef Py_ssize_t P = x.n if x.n > x.m else x.m
    return k * x.m if uses_engine(x, k, p) and not x.fortran else k * P


cdef inline bint short_products(const XData* x, Py_ssize_t k, const Params* p) noexcept nogil:
    """Whether the first loss's cross term comes from a pass of its own (engine_cross)
    rather than from the k×n product H Xᵀ: the row-block engine reads by its rows (not a
    Fortran X by its columns) a sparse X or an X out of core, for a separable solver."""
    return (uses_engine(x, k, p) and p.separable and not x.fortran
            and (x.sparse or x.source != NULL))


cdef Py_ssize_t idle_len(int solver, const XData* x, Py_ssize_t k,
                         const Params* p) noexcept nogil:
    """Entries of the engine's scratch while no pass runs (the slabs' area, made at least
    this long): the own region of the half-step the engine does not cut; unless the first
    loss is a pass (short_products), the first loss's product and its scratch, k·P each,
    and a sparse product's vectors (product_W; then the formed error's T, k·P); for a
    speculative solver, a whole half-step of the factor the engine cuts (engine_pass's
    redo: its T, then its own region)."""
    cdef Py_ssize_t P = x.n if x.n > x.m else x.m
    cdef Py_ssize_t cut = x.m if x.fortran else x.n, other = x.n if x.fortran else x.m
    cdef Py_ssize_t size = region_len(solver, k, other, p.beta), redo
    cdef Py_ssize_t first = 2 * k * P + vectors_len(k, P, p.n_threads)
    if not short_products(x, k, p) and size < first:
        size = first
    if p.speculative:
        redo = k * cut + region_len(solver, k, cut, p.beta)
        if size < redo:
            size = redo
    return size


cdef Py_ssize_t engine_scratch_len(int solver, const XData* x, Py_ssize_t k,
                                   const Params* p) noexcept nogil:
    """Entries of the engine's scratch: its slabs during a pass, idle_len between."""
    cdef XData rows_of
    engine_view(x, &rows_of)
    cdef Py_ssize_t slabs = engine_slabs(&rows_of, k) * slab_len(solver, &rows_of, k, p)
    cdef Py_ssize_t idle = idle_len(solver, x, k, p)
    return slabs if slabs > idle else idle


cdef Py_ssize_t solver_workspace_len(int solver, const XData* x, Py_ssize_t k,
                                     const Params* p) noexcept nogil:
    """Entries of one call's workspace for ``solver`` on ``x`` (the engine's scratch, then
    for a speculative solver the factor the engine cuts before a pass and its B, last)."""
    cdef Py_ssize_t size = base_len(solver, x, k, p)
    if uses_engine(x, k, p):
        size += engine_scratch_len(solver, x, k, p)
        if p.speculative:
            size += 2 * k * (x.m if x.fortran else x.n)
    return size


# ---------------------------------------------------------------------------------------
# The row-block engine (docs/algorithms.md, "One pass over X"): for a solver whose W
# half-step is separable by rows, an iteration reads X once. Block by block of rows X_b:
# B_b = H X_bᵀ, the half-step of W_b, then (X_b still in cache) W_bᵀ X_b added into the
# product the H half-step needs, C = Wᵀ X. The blocks are cut into ``engine_slabs``
# consecutive runs, one accumulator of C each, summed in slab order after the pass: the
# result does not depend on the thread count. The iterates are the two-pass loop's up to
# the order of the additions in C.
#
# A speculative solver (Params.speculative: accelerated cd, als, bpp) takes one decision
# over the whole factor in its W half-step, which blocks cannot take alone. The pass runs
# each block on a guess of it (Half.guess: the last iteration's outcome) while the blocks
# add what decides it into their slab's evidence; after the pass the solver settles it
# (_common.pxd, SettleF64) from the summed evidence, the factor before the pass and B,
# which the pass keeps. A right guess costs nothing more; a wrong one costs the solver's
# whole half-step redone without X and one more pass for C (engine_pass). Until an outcome
# repeats (a sweep count still moving) the pass guesses 1 (one sweep: nothing to redo) and
# forms no C, which gets its own pass as in the two-pass loop. The iterates are the
# two-pass loop's either way.

# What a pass over X does (engine_slab): the W half-step and C; the W half-step only; C
# only, from W as it is.
cdef enum:
    PASS_BOTH = 0
    PASS_HALF = 1
    PASS_C = 2

# X's size (bytes) from which a dense X goes through the engine: beyond a core's own cache
# (L2: 512 KiB on AMD Zen 2/3, 1-2 MiB on Zen 4 and current Intel), where the second pass
# reads X from farther away. Measured on an Intel Xeon (cd, time per iteration, one pass
# over two): 300 x 200 float64 (0.5 MB) 1.05-1.11, 600 x 500 float32 (1.2 MB) 0.75,
# 8000 x 4000 float32 0.71 (2 threads), 0.76 (1 thread).
cdef double ENGINE_MIN_BYTES = 1048576.0
# A sparse X goes through the engine from ENGINE_SPARSE_FACTOR times that (8 MiB of
# entries and column indices): the engine reads it by a gather (B_b) and a scatter (C, k
# entries of a row of the accumulator written back per non-zero), the two-pass loop by two
# gathers, over X's CSR and its transposed copy. Below, X and the copy (16 MiB together)
# stay in a last-level cache of that size or more (current x86 servers: 30 MB and up), so
# the second read costs little and the scatter more. Measured on an AMD EPYC (Zen 5,
# 32 MiB L3), time per call of one pass over two, 50 iterations: 1.2-3.1 MiB 1.08-1.44
# (one thread), 0.90-1.34 (two); 5.3 MiB 1.00-1.20 (one), 0.92-1.48 (two); 7.6-11.4 MiB
# 0.88-1.11 and 0.84-1.20; 30-46 MiB 0.79-1.05 and 0.84-1.09 (k = 5, 10, 30; the larger
# ratios at k = 5). Above it the copy would cost a call X's size again (issue 17).
cdef double ENGINE_SPARSE_FACTOR = 8.0
# Bytes of a block of rows of X: it stays in the core's own cache (L2, 1-2 MiB on current
# x86 cores, 512 KiB on older AMD) between its two products. Rows of a block: at least
# ENGINE_MIN_ROWS (each block's product packs H afresh, k·m entries: a block of r rows
# reads r·m entries of X, so r well above k keeps that small). Measured on an Intel Xeon
# (one pass over two passes, 1 and 2 threads): blocks of 512 KiB or 1 MiB were as fast on
# 8000 x 4000 float32 k = 20 and slower on 600 x 500 float32 (0.93-1.58 against 0.75);
# at least 128 rows, or 8k rows, slower on 8000 x 4000 float32 (0.72-0.97 against 0.60-
# 0.72); on float64 with k = 10 to 40 every choice was within noise of the two passes.
cdef Py_ssize_t ENGINE_BLOCK_BYTES = 262144
cdef Py_ssize_t ENGINE_MIN_ROWS = 64
# Accumulators of C (slabs): see engine_slabs.
cdef Py_ssize_t ENGINE_SLABS = 8
cdef double ENGINE_ENTRIES_PER_ACC = 8


def engine_min_bytes(value=None):
    """ENGINE_MIN_BYTES, and with ``value`` set it (returns the old value; a sparse X's
    threshold is ENGINE_SPARSE_FACTOR times it): for the tests and the bench, to run one X
    through both loops side by side."""
    global ENGINE_MIN_BYTES
    old = ENGINE_MIN_BYTES
    if value is not None:
        ENGINE_MIN_BYTES = float(value)
    return old


cdef void engine_shape(XData* x, Py_ssize_t n, Py_ssize_t m, int itemsize,
                       double nnz) noexcept nogil:
    """An XData holding only what the engine's rule and layout read: the shape, the dtype's
    size and the entries (nnz >= 0: a sparse X's)."""
    x.n, x.m, x.itemsize = n, m, itemsize
    x.sparse = nnz >= 0
    x.fortran = False
    x.entries = nnz if nnz >= 0 else <double> n * m
    x.source = NULL


def engine_plan(Py_ssize_t n, Py_ssize_t m, Py_ssize_t k, int itemsize, double nnz=-1):
    """(rows per block, slabs) of the engine for X (n×m) of ``itemsize`` bytes an entry,
    dense, or sparse with ``nnz`` stored entries (the reference twin cuts its blocks the
    same way)."""
    cdef XData x
    engine_shape(&x, n, m, itemsize, nnz)
    return engine_rows(&x), engine_slabs(&x, k)


def reads_once(str solver, Py_ssize_t n, Py_ssize_t m, int itemsize, double nnz,
               bint update_H, double beta, bint accelerate):
    """Whether a call reads X once per iteration (uses_engine), for the Python side to
    know before it makes the operands (a sparse X's transpose is then not made)."""
    cdef XData x
    cdef Params p
    engine_shape(&x, n, m, itemsize, nnz)
    fill_params(&p, solver, &x, 1, 0, 0, 0, 0, 0, update_H, False, 0, beta, 1, accelerate)
    return uses_engine(&x, 1, &p)


cdef bint uses_engine(const XData* x, Py_ssize_t k, const Params* p) noexcept nogil:
    """Whether the loop reads X once per iteration (the row-block engine) on this call:
    a solver separable by rows (not accelerated) or speculative, H updated, the Frobenius
    loss, and X of at least ENGINE_MIN_BYTES (engine_bytes; a sparse X
    ENGINE_SPARSE_FACTOR times that) or out of core."""
    return ((p.separable or p.speculative) and p.update_H and p.beta == 2
            and (x.source != NULL or engine_bytes(x) >= ENGINE_MIN_BYTES
                 * (ENGINE_SPARSE_FACTOR if x.sparse else 1)))


cdef void engine_view(const XData* x, XData* view) noexcept nogil:
    """The matrix whose rows the engine reads: X itself, or for a Fortran-ordered X
    (stored as Xᵀ, m×n in C order) Xᵀ, whose rows are X's columns: the pass then updates H
    a block of columns at a time and forms H Xᵀ, the W half-step's product, on the way."""
    view[0] = x[0]
    if x.fortran:
        view.n, view.m = x.m, x.n
        view.fortran = False
        view.other = NULL


cdef inline double engine_bytes(const XData* x) noexcept nogil:
    """X's bytes as the engine reads them: its entries, and a sparse X's column indices."""
    return x_entries(x) * (x.itemsize + (4 if x.sparse else 0))


cdef inline Py_ssize_t engine_rows(const XData* x) noexcept nogil:
    """Rows of X in a block of the engine: about ENGINE_BLOCK_BYTES of X, at least
    ENGINE_MIN_ROWS."""
    cdef double row_bytes = engine_bytes(x) / x.n
    cdef Py_ssize_t r = ENGINE_MIN_ROWS
    if row_bytes * r < ENGINE_BLOCK_BYTES:
        r = <Py_ssize_t> (ENGINE_BLOCK_BYTES / (row_bytes if row_bytes > 1 else 1))
    return r if r < x.n else x.n


cdef inline Py_ssize_t engine_slabs(const XData* x, Py_ssize_t k) noexcept nogil:
    """Slabs (accumulators of C) of the engine, a function of the shape only: their k·m
    entries together at most 1/ENGINE_ENTRIES_PER_ACC of X's, but at least two slabs (when
    there are two blocks: two threads can share the pass), at most ENGINE_SLABS."""
    cdef Py_ssize_t rows = engine_rows(x)
    cdef Py_ssize_t blocks = (x.n + rows - 1) // rows
    cdef Py_ssize_t s = <Py_ssize_t> (x_entries(x) / (ENGINE_ENTRIES_PER_ACC * k * x.m))
    if s < 2:
        s = 2
    if s > ENGINE_SLABS:
        s = ENGINE_SLABS
    return s if s < blocks else blocks


cdef inline Py_ssize_t slab_len(int solver, const XData* x, Py_ssize_t k,
                                const Params* p) noexcept nogil:
    """Entries of a slab's scratch: its accumulator (k·m), then a block's F, B and T
    (k×rows each), two k×k, k for a gathered row, the half-step's vectors and the
    solver's own region; a speculative solver's evidence last (slab_evidence)."""
    cdef Py_ssize_t r = engine_rows(x)
    cdef Py_ssize_t size
    if x.source != NULL and x.sparse:  # a chunk's rows from its entries (ChunkStream.fetch):
        r += 1                         # the same up to rounding
    size = (k * x.m + 3 * k * r + 2 * k * k + k + vectors_len(k, r, 1)
                            + region_len(solver, k, r, p.beta))
    if p.speculative:
        size += (8 * KERNELS[solver].spec_len(k, x.n, p) + 8) // x.itemsize + 1
    return size


cdef inline Py_ssize_t evidence_len(int solver, Py_ssize_t k, const Half* h) noexcept nogil:
    """Doubles of the evidence of a pass on a guess (h.guess >= 0; else 0)."""
    return KERNELS[solver].spec_len(k, h.p, h.prm) if h.guess >= 0 else 0


cdef inline double* slab_evidence(void* slab, Py_ssize_t stride, Py_ssize_t itemsize,
                                  Py_ssize_t count) noexcept nogil:
    """A slab's evidence, ``count`` doubles at its end, 8-byte aligned (slab_len)."""
    cdef uintptr_t at = <uintptr_t> slab + stride * itemsize - 8 * count - 8
    return <double*> ((at + 7) & ~(<uintptr_t> 7))


cdef double engine_slab(int solver, const XData* x, Py_ssize_t k, const floating* H,
                        const floating* Ht, floating* Wt, const floating* A, const Half* hw,
                        floating* acc, Py_ssize_t b0, Py_ssize_t b1, bint fresh,
                        double* evidence, floating* keep, Py_ssize_t ldk,
                        int mode) noexcept nogil:
    """Blocks b0..b1-1 of the pass: update their rows of W (columns of Wᵀ) and set ``acc``
    (the slab: its first k·m entries) to Σ W_bᵀ X_b over them (block_add_H's layout), or
    add that sum into it unless ``fresh``; the rest of the slab is scratch (slab_len).
    On a guess (hw.guess >= 0) the blocks add into ``evidence`` and their B_b go to
    ``keep`` (Bᵀ's layout, rows of ``ldk``). ``mode``: what the pass does (PASS_BOTH;
    PASS_HALF: no sum; PASS_C: W as it is, only the sum).
    Returns the sum of the blocks' violations."""
    cdef Py_ssize_t n = x.n, m = x.m, rows = engine_rows(x), b, r0, w, c, j
    cdef floating* F = acc + k * m
    cdef floating* B = F + k * rows
    cdef floating* T = B + k * rows
    cdef floating* C = T + k * rows
    cdef floating* S = C + k * k
    cdef floating* a = S + k * k
    cdef floating* v = a + k
    cdef double viol = 0
    cdef Params q = hw.prm[0]
    cdef Half h = hw[0]
    q.n_threads = 1  # the slabs are the parallel loop
    h.prm = &q
    h.keep_order = True
    h.T, h.C, h.S, h.v = T, C, S, v
    h.own_len = region_len(solver, k, rows, q.beta)
    h.own = (v + vectors_len(k, rows, 1)) if h.own_len else NULL
    h.evidence = evidence
    for b in range(b0, b1):
        r0 = b * rows
        w = rows if r0 + rows <= n else n - r0
        h.p = w
        for c in range(k):
            for j in range(w):
                F[c * w + j] = Wt[c * n + r0 + j]
        if mode != PASS_C:
            block_product_W(x, k, H, Ht, r0, w, B, a, T)
            if keep != NULL:
                for c in range(k):
                    for j in range(w):
                        keep[c * ldk + r0 + j] = B[c * w + j]
            viol += half_step(solver, &h, F, A, B)
            for c in range(k):
                for j in range(w):
                    Wt[c * n + r0 + j] = F[c * w + j]
        if mode != PASS_HALF:
            block_add_H(x, k, F, r0, w, acc, fresh and b == b0, a)
    return viol


cdef double engine_pass(int solver, const XData* x, Py_ssize_t k, const floating* H,
                        floating* Wt, const floating* A, floating* C, floating* T,
                        Half* hw, floating* slabs, Py_ssize_t slab_stride,
                        floating* keep) noexcept nogil:
    """One pass over X: the W half-step (given A = HHᵀ) and C = Wᵀ X (k×m) with the new W
    (on engine_view's Xᵀ, with the factors' roles exchanged: the H half-step and H Xᵀ).
    ``slabs``: engine_slabs entries of ``slab_stride`` each, and at least idle_len (a
    redo's scratch); T: k·m entries of scratch (Hᵀ for a sparse X). On a guess (hw.guess
    >= 0, a speculative solver): ``keep``, 2·k·n entries, takes the factor before the
    pass and B; the guess is settled after the pass
    (another outcome: one more pass, for C only) and hw.guess becomes the outcome. The pass
    takes hw.guess and forms C only if the last two outcomes were the same (hw.sure), else
    it guesses 1 and C has its own pass.
    Returns the violation."""
    cdef Py_ssize_t n = x.n, nev = evidence_len(solver, k, hw)
    cdef uint64_t rng0 = hw.rng[0]
    cdef floating* Bk = NULL
    cdef bint bet = nev and hw.sure  # the pass forms C on the guess
    cdef bint redo = False
    cdef double viol
    cdef int outcome
    cdef Half h = hw[0]
    if not h.keep_order:
        next_permutation(k, h.perm, h.prm.shuffle, h.rng)  # the sweep order of every block
        h.keep_order = True
    if nev:
        memcpy(keep, Wt, k * n * sizeof(floating))
        Bk = keep + k * n
        if not bet:
            h.guess = 1
    viol = engine_run(solver, x, k, H, Wt, A, C, T, &h, slabs, slab_stride, Bk,
                      PASS_HALF if nev and not bet else PASS_BOTH)
    if not nev or source_failed(x):
        return viol
    outcome = settle(solver, &h, Wt, A, Bk,
                     slab_evidence(slabs, slab_stride, sizeof(floating), nev), &redo)
    if outcome != h.guess or not bet:  # C from the settled W
        if redo:  # the whole half-step, from before the pass (B was kept: X is not read),
            memcpy(Wt, keep, k * n * sizeof(floating))  # its scratch in the idle slabs
            hw.rng[0] = rng0
            h = hw[0]
            h.guess, h.keep_order, h.measure = -1, False, False
            h.T = slabs
            h.own_len = region_len(solver, k, n, h.prm.beta)
            h.own = (slabs + k * n) if h.own_len else NULL
            half_step(solver, &h, Wt, A, Bk)
        engine_run(solver, x, k, H, Wt, A, C, T, &h, slabs, slab_stride, NULL, PASS_C)
    hw.sure = outcome == hw.guess
    hw.guess = outcome
    return viol


cdef double engine_run(int solver, const XData* x, Py_ssize_t k, const floating* H,
                       floating* Wt, const floating* A, floating* C, floating* T,
                       const Half* hw, floating* slabs, Py_ssize_t slab_stride,
                       floating* keep, int mode) noexcept nogil:
    """engine_pass's pass, its sweep order drawn: in memory or a chunk at a time."""
    if x.sparse and mode != PASS_C:
        transpose(k, x.m, H, T, hw.prm.n_threads)  # Hᵀ (m×k), gathered by block_product_W
    if x.source != NULL:
        return stream_pass(solver, x, k, H, Wt, A, C, T, hw, slabs, slab_stride, keep, mode)
    return engine_part(solver, x, k, H, Wt, A, C, T, hw, slabs, slab_stride,
                       engine_slabs(x, k), True, True, keep, x.n, mode)


cdef double engine_part(int solver, const XData* x, Py_ssize_t k, const floating* H,
                        floating* Wt, const floating* A, floating* C, const floating* T,
                        const Half* hw, floating* slabs, Py_ssize_t slab_stride,
                        Py_ssize_t S, bint first, bint last, floating* keep, Py_ssize_t ldk,
                        int mode) noexcept nogil:
    """engine_pass's blocks of X, cut into S slabs (at most X's blocks when ``first``):
    their accumulators and evidence set (``first``) or added to, and (``last``) summed
    into C and into slab 0's evidence, in slab order (engine_slab: keep, ldk, mode)."""
    cdef Py_ssize_t rows = engine_rows(x), s, i, km = k * x.m
    cdef Py_ssize_t blocks = (x.n + rows - 1) // rows
    cdef Py_ssize_t nev = 0 if mode == PASS_C else evidence_len(solver, k, hw)
    cdef double viols[16]  # ENGINE_SLABS or fewer
    cdef double* evs[16]
    cdef double viol = 0
    cdef int nt = threads_for(hw.prm.n_threads, 2.0 * x_entries(x) * k)
    if nt > S:
        nt = <int> S
    for s in range(S):
        evs[s] = slab_evidence(slabs + s * slab_stride, slab_stride, sizeof(floating),
                               nev) if nev else NULL
        if first and nev:
            for i in range(nev):
                evs[s][i] = 0
    if nt == 1:
        for s in range(S):
            viols[s] = engine_slab(solver, x, k, H, T, Wt, A, hw, slabs + s * slab_stride,
                                   s * blocks // S, (s + 1) * blocks // S, first, evs[s],
                                   keep, ldk, mode)
    else:
        for s in prange(S, schedule="dynamic", num_threads=nt):
            viols[s] = engine_slab(solver, x, k, H, T, Wt, A, hw, slabs + s * slab_stride,
                                   s * blocks // S, (s + 1) * blocks // S, first, evs[s],
                                   keep, ldk, mode)
    for s in range(S):
        viol += viols[s]
    if not last:
        return viol
    for s in range(1, S):  # the slabs' sums, in slab order, into slab 0
        for i in range(nev):
            evs[0][i] += evs[s][i]
        if mode != PASS_HALF:
            for i in range(km):
                slabs[i] = slabs[i] + slabs[s * slab_stride + i]
    if mode == PASS_HALF:
        return viol
    if acc_transposed(x, k):  # slab 0 holds (Wᵀ X)ᵀ
        transpose(x.m, k, slabs, C, hw.prm.n_threads)
    else:
        memcpy(C, slabs, km * sizeof(floating))
    return viol


cdef double stream_pass(int solver, const XData* x, Py_ssize_t k, const floating* H,
                        floating* Wt, const floating* A, floating* C, floating* T,
                        const Half* hw, floating* slabs, Py_ssize_t slab_stride,
                        floating* keep, int mode) noexcept nogil:
    """engine_pass for an X out of core: the in-memory pass's blocks on each chunk in turn
    (on a copy of its columns of Wᵀ), the slabs of the first chunk's cut added to through
    the pass and summed into C after the last chunk; B's blocks into ``keep`` (k rows of
    n) unless NULL. T: Hᵀ for sparse chunks (engine_run)."""
    cdef Source* src = x.source
    cdef Py_ssize_t c, r0, w, S = 0
    cdef floating* Fc = <floating*> src.scratch
    cdef double viol = 0
    cdef XData chunk
    for c in range(src.count):
        if not fetch_chunk(x, c, &chunk, &r0):
            return 0
        if c == 0:  # the longest chunk: every slab gets blocks (no more than X's)
            S = engine_slabs(&chunk, k)
            if S > engine_slabs(x, k):
                S = engine_slabs(x, k)
        w = chunk.n
        copy_columns(k, Wt, x.n, r0, w, Fc, False)
        viol += engine_part(solver, &chunk, k, H, Fc, A, C, T, hw, slabs, slab_stride, S,
                            c == 0, c == src.count - 1, keep + r0 if keep != NULL else NULL,
                            x.n, mode)
        if mode != PASS_C:
            copy_columns(k, Wt, x.n, r0, w, Fc, True)
    return viol


cdef double engine_cross(const XData* x, Py_ssize_t k, const floating* H,
                         const floating* Ht, const floating* Wt, floating* slabs,
                         Py_ssize_t slab_stride, int n_threads) noexcept nogil:
    """⟨Wᵀ, H Xᵀ⟩ (the loss's cross term, = ⟨H, Wᵀ X⟩) by blocks of rows, without the k×n
    product: B_b = H X_bᵀ in a slab's scratch, its dot with W_b's columns of Wᵀ; the slabs'
    sums added in slab order (any thread count gives the same). Ht = Hᵀ for a sparse X; an
    X out of core a chunk at a time."""
    cdef Py_ssize_t rows, blocks, S, s, b, c, r0, w, i, c0, ldw = x.n
    cdef double parts[16]  # ENGINE_SLABS or fewer
    cdef double total = 0
    cdef XData chunk
    cdef const XData* xs = x
    cdef Py_ssize_t count = 1 if x.source == NULL else x.source.count
    cdef int nt
    for i in range(count):
        c0 = 0
        if x.source != NULL:
            if not fetch_chunk(x, i, &chunk, &c0):
                return 0
            xs = &chunk
        rows = engine_rows(xs)
        blocks = (xs.n + rows - 1) // rows
        S = engine_slabs(xs, k)
        if S > engine_slabs(x, k):
            S = engine_slabs(x, k)
        nt = threads_for(n_threads, 2.0 * x_entries(xs) * k)
        nt = <int> S if nt > S else nt
        for s in prange(S, schedule="dynamic", num_threads=nt):
            parts[s] = cross_slab(xs, k, H, Ht, Wt + c0, ldw, slabs + s * slab_stride,
                                  s * blocks // S, (s + 1) * blocks // S)
        for s in range(S):
            total += parts[s]
    return total


cdef double cross_slab(const XData* x, Py_ssize_t k, const floating* H, const floating* Ht,
                       const floating* Wt, Py_ssize_t ldw, floating* scratch, Py_ssize_t b0,
                       Py_ssize_t b1) noexcept nogil:
    """engine_cross over blocks b0..b1-1 (Wᵀ's columns from Wt with leading dimension ldw;
    scratch: a slab's, k·m + k·rows + k·rows + ... entries: see slab_len)."""
    cdef Py_ssize_t rows = engine_rows(x), b, c, j, r0, w
    cdef floating* B = scratch + k * x.m + k * rows
    cdef floating* T = B + k * rows
    cdef floating* a = T + k * rows + 2 * k * k
    cdef double part = 0
    for b in range(b0, b1):
        r0 = b * rows
        w = rows if r0 + rows <= x.n else x.n - r0
        block_product_W(x, k, H, Ht, r0, w, B, a, T)
        for c in range(k):
            for j in range(w):
                part += <double> Wt[c * ldw + r0 + j] * B[c * w + j]
    return part


cdef int solve_core(int solver, const XData* x, Py_ssize_t k, floating* Wt, floating* H,
                    floating* work, Py_ssize_t* perm, const Params* p,
                    Trace* t) noexcept nogil:
    """Alternate the half-steps of ``solver`` on Wᵀ (k×n) and H (k×m), in place.

    Per iteration: W half-step with A = HHᵀ, B = H Xᵀ; then (if update_H) the H half-step
    with G = WᵀW, B = Wᵀ X; then the loss from those Grams and products (no n × m work).
    Stopping (docs/algorithms.md, "Stopping rules and check cadence"), at a check every
    ``p.check_every`` iterations, by the registry's rule for the solver: "gradient" (cd,
    als, bpp) when the sweep's projected-gradient norm falls to tol × its value at the
    first iteration, "decrease" (mu) when (previous error − error) / initial error < tol.
    tol = 0 never stops early.
    After each half-step the loop reports its work to ``t.hook``, and each check (_common.pxd,
    Hook); the hook changes nothing the loop computes.
    Returns STATUS_OK, STATUS_NONFINITE if the loss stops being finite, or STATUS_STOPPED
    when the hook says stop (the factors are then left part-way).
    """
    cdef Py_ssize_t n = x.n, m = x.m, P = n if n > m else m, kk = k * k
    cdef floating* A = work
    cdef floating* G = A + kk
    cdef floating* C = G + kk
    cdef floating* S = C + kk
    cdef Py_ssize_t T_len = product_len(x, k, p)
    cdef floating* B = S + kk
    cdef floating* T = B + T_len
    cdef floating* v = T + T_len
    cdef Py_ssize_t base = base_len(solver, x, k, p)
    cdef bint engine = uses_engine(x, k, p)
    cdef bint by_columns = engine and x.fortran  # the pass reads Xᵀ's rows (engine_view)
    cdef XData rows_of
    cdef Py_ssize_t slab_stride = 0
    cdef floating* keep = NULL  # a speculative solver's factor before a pass, and B
    # The engine's scratch (its slabs) while no pass runs: the first loss's product and
    # the formed error's T, k·P each (idle_len); without the engine, T itself.
    cdef floating* idle = work + base
    cdef floating* Te = T
    cdef Py_ssize_t Te_len = T_len
    cdef Half* other  # the half-step the engine does not cut
    if engine:
        engine_view(x, &rows_of)
        slab_stride = slab_len(solver, &rows_of, k, p)
        keep = idle + engine_scratch_len(solver, x, k, p)
        if not short_products(x, k, p):  # (else X is sparse or out of core: never formed
            Te, Te_len = idle, k * P     # from T)
    # Multiply-adds of a half-step (a product with X, then the sweep or solve and a Gram:
    # an estimate, for the hook's pacing only).
    cdef double work_W = p.x_entries * k + 2.0 * kk * n
    cdef double work_H = p.x_entries * k + 2.0 * kk * m if p.update_H else 0.0
    cdef uint64_t rng = p.seed
    cdef double err_sq, err, err0, prev, viol, viol0 = 0
    cdef bint conv, measure
    cdef int it, status
    cdef XData own = x[0]
    cdef Half hw, hh  # the W and the H half-steps
    hw.k, hw.p, hw.l1, hw.l2 = k, n, p.l1_W, p.l2_W
    hw.keep_order = False
    hw.perm, hw.rng, hw.prm = perm, &rng, p
    hw.T, hw.C, hw.S, hw.v = T, C, S, v
    hw.own_len = region_len(solver, k, P, p.beta)  # last but for the tiny X's copy (other_order)
    hw.own = (v + vectors_len(k, P, p.n_threads)) if hw.own_len else NULL
    hw.evidence = NULL
    # the engine's first guess for a speculative solver: 1 (one sweep; the proposal; the
    # solution), then each pass's outcome
    hw.guess = 1 if engine and p.speculative and not by_columns else -1
    hw.sure = False
    hh = hw
    hh.p, hh.l1, hh.l2 = m, p.l1_H, p.l2_H
    hh.guess = 1 if by_columns and p.speculative else -1
    if engine:  # the other half-step's own region in the idle scratch; the cut one runs
        other = &hw if by_columns else &hh  # by blocks (its redo: engine_pass)
        hw.own_len = hh.own_len = 0
        hw.own = hh.own = NULL
        other.own_len = region_len(solver, k, n if by_columns else m, p.beta)
        other.own = idle if other.own_len else NULL
    if p.beta != 2:  # validation lets only a solver with a loss loop take another loss
        if floating is double:
            return KERNELS[solver].loss_loop_f64(x, k, Wt, H, work, p, t)
        else:
            return KERNELS[solver].loss_loop_f32(x, k, Wt, H, work, p, t)
    if other_order(&own, k, work + base):
        x = &own
    t.n_hist = 0
    t.n_iter = 0
    t.converged = False
    factor_gram(k, m, H, A, v, P, p.n_threads)
    factor_gram(k, n, Wt, G, v, P, p.n_threads)
    if short_products(x, k, p):  # B holds no H Xᵀ: the loss's cross term by its own pass
        if x.sparse:
            transpose(k, m, H, T, p.n_threads)
        err_sq = x.sqnorm - 2 * engine_cross(x, k, H, T, Wt, work + base, slab_stride,
                                             p.n_threads) + dot(kk, G, A)
    elif engine and not by_columns:  # B and T are k×m: H Xᵀ in the idle scratch
        product_W(x, k, H, idle, idle + k * P, p.n_threads)
        err_sq = loss_sq(x, k, n, Wt, idle, G, A)
    else:  # (by columns, the first W half-step takes this B)
        product_W(x, k, H, B, T, p.n_threads)
        err_sq = loss_sq(x, k, n, Wt, B, G, A)
    if source_failed(x):
        return STATUS_STOPPED
    if not isfinite(err_sq):
        return STATUS_NONFINITE
    err0 = prev = record(t, accurate_loss_sq(x, k, Wt, H, err_sq, Te, Te_len))
    if source_failed(x):
        return STATUS_STOPPED
    if at_check(t, 0, 0, err0):
        return STATUS_STOPPED
    for it in range(1, p.max_iter + 1):
        # The violation is needed at every check when tol > 0; with tol = 0 only for the
        # first iteration and the last (the `converged` flag): skip its cost in between.
        measure = p.tol > 0 or it == 1 or it == p.max_iter
        hw.measure = hh.measure = measure
        if engine and not by_columns:  # one pass: the W half-step and B = Wᵀ X, new W
            viol = engine_pass(solver, &rows_of, k, H, Wt, A, B, T, &hw, work + base,
                               slab_stride, keep)
        else:  # (by columns, B = H Xᵀ is the last pass's)
            if it > 1 and p.update_H and not by_columns:
                product_W(x, k, H, B, T, p.n_threads)
            viol = half_step(solver, &hw, Wt, A, B)
        factor_gram(k, n, Wt, G, v, P, p.n_threads)
        if tick(t, work_W):
            return STATUS_STOPPED
        if by_columns:  # one pass over Xᵀ: the H half-step and B = H Xᵀ with the new H
            viol += engine_pass(solver, &rows_of, k, Wt, H, G, B, T, &hh, work + base,
                                slab_stride, keep)
            factor_gram(k, m, H, A, v, P, p.n_threads)
            err_sq = loss_sq(x, k, n, Wt, B, G, A)
        elif p.update_H:
            if not engine:
                product_H(x, k, Wt, B, T, p.n_threads)
            viol += half_step(solver, &hh, H, G, B)
            factor_gram(k, m, H, A, v, P, p.n_threads)
            err_sq = loss_sq(x, k, m, H, B, G, A)
        else:
            err_sq = loss_sq(x, k, n, Wt, B, G, A)
        t.n_iter = it
        if source_failed(x):
            return STATUS_STOPPED
        if not isfinite(err_sq):
            return STATUS_NONFINITE
        if it % p.check_every:
            if tick(t, work_H):
                return STATUS_STOPPED
            continue
        err = record(t, accurate_loss_sq(x, k, Wt, H, err_sq, Te, Te_len))
        if source_failed(x):
            return STATUS_STOPPED
        if p.stop_on_decrease:
            conv = err0 == 0 or (prev - err) / err0 < p.tol
            prev = err
        else:
            if it == 1:
                viol0 = viol
            conv = viol0 == 0 or viol / viol0 <= p.tol
        t.converged = conv
        if at_check(t, work_H, it, err):
            return STATUS_STOPPED
        if conv and p.tol > 0:
            break
    status = finish(x, k, Wt, H, Te, Te_len, err_sq, t)
    return STATUS_STOPPED if source_failed(x) else status


def solve(str solver, X, floating[:, ::1] Wt, floating[:, ::1] H, double sqnorm, *,
          int max_iter, double tol, double l1_W, double l2_W, double l1_H, double l2_H,
          bint update_H, bint shuffle, uint64_t seed, double beta=2,
          progress=None, int n_threads=1, bint accelerate=False):
    """Run ``solver`` on Wt (k×n) and H (k×m) in place.

    X is a dense ndarray (C- or F-contiguous, the dtype of Wt), a tuple
    (data, indptr, indices, data_t, indptr_t, indices_t) of X's CSR and Xᵀ's CSR, with
    int64 indptr and int32 indices, or a ChunkStream (X out of core: its reads' errors are
    raised here). ``progress(iteration, error)``, if given, is called at
    each convergence check (iteration 0: the start) as the loop runs. Ctrl-C (on the main thread) or an exception from
    ``progress`` stops the loop within a few tens of milliseconds of work and is raised
    here. Returns (n_iter, converged, history, final_err, status).
    """
    cdef XData x
    cdef Params p
    cdef Trace t
    cdef Py_ssize_t k = Wt.shape[0], n = Wt.shape[1], m = H.shape[1]
    cdef int solver_id, status
    cdef Watch watch = Watch(progress)
    prepare_x(&x, X, n, m, sqnorm, H)
    solver_id = fill_params(&p, solver, &x, max_iter, tol, l1_W, l2_W, l1_H, l2_H, update_H,
                            shuffle, seed, beta, n_threads, accelerate)
    if x.source != NULL and p.beta != 2:
        raise ValueError("an X out of core takes the Frobenius loss only (the other "
                         "β-divergences read X in memory)")
    if x.sparse and x.source == NULL and x.cptr == NULL and not uses_engine(&x, k, &p):
        raise ValueError("this call reads X by columns too: Xᵀ's CSR is needed")
    dtype = np.float64 if floating is double else np.float32
    cdef floating[::1] work = aligned_empty(solver_workspace_len(solver_id, &x, k, &p), dtype)
    cdef Py_ssize_t[::1] perm = np.empty(k, dtype=np.intp)
    init_trace(&t)
    t.hook = &watch.hook  # every thread's loop calls out: signals, or the exit after one
    try:
        with nogil:
            status = solve_core(solver_id, &x, k, &Wt[0, 0], &H[0, 0], &work[0], &perm[0],
                                &p, &t)
    finally:
        history = take_history(&t)
    if x.source != NULL:
        X.raise_if_failed()
    watch.raise_if_stopped(status)
    return t.n_iter, bool(t.converged), history, t.final_err, trace_status(&t, status)


# ---------------------------------------------------------------------------------------
# The pieces of an iteration one at a time, for a loop that runs elsewhere: fastnmf's Dask
# driver (_dask.py) runs the row-block engine's pass on each block of X where the block
# lives, and the H half-step where the loop runs. A speculative solver's pass runs on a
# guess there as in engine_pass: the blocks return their evidence, ``settle_of`` takes the
# decision where the loop runs, and a wrong guess is redone block by block (half_step_of on
# the block's factor before the pass and its B_b, kept beside the block).

def speculative(str solver, bint accelerate=False):
    """Whether the engine runs ``solver``'s W half-step on a guess (Params.speculative):
    not separable by rows, but its kernel settles a guessed decision."""
    cdef XData x
    cdef Params p
    engine_shape(&x, 1, 1, 8, -1)
    fill_params(&p, solver, &x, 1, 0, 0, 0, 0, 0, True, False, 0, 2, 1, accelerate)
    return bool(p.speculative)


cdef Py_ssize_t piece_params(Params* p, str solver, const XData* x, double l1, double l2,
                             bint shuffle, bint accelerate, double entries, int n_threads,
                             int guess) except -1:
    """fill_params for one piece of an iteration (the W half-step's penalties l1, l2;
    ``entries``: the whole X's, when >= 0), with its guess checked against the solver."""
    cdef int solver_id = fill_params(p, solver, x, 1, 0, l1, l2, 0, 0, True, shuffle, 0, 2,
                                     n_threads, accelerate)
    if entries >= 0:
        p.x_entries = entries
    if guess >= 0 and not p.speculative:
        raise ValueError(f"solver {solver!r} takes no guess (it is not speculative)")
    return solver_id


cdef object evidence_array(int solver, Py_ssize_t k, Half* h, Py_ssize_t whole, int guess):
    """The zeroed evidence of a guess on blocks of a factor of ``whole`` columns (None
    without a guess), h.evidence pointing at it."""
    cdef double[::1] ev
    h.guess, h.evidence, h.sure = guess, NULL, False
    if guess < 0:
        return None
    out = np.zeros(KERNELS[solver].spec_len(k, whole, h.prm), dtype=np.float64)
    if guess > out.shape[0]:
        raise ValueError(f"guess {guess} is past the solver's evidence")
    ev = out
    h.evidence = &ev[0]
    return out


def half_step_of(str solver, floating[:, ::1] F, const floating[:, ::1] A,
                 const floating[:, ::1] B, double l1, double l2, uint64_t rng,
                 const Py_ssize_t[::1] perm=None, bint shuffle=False, bint accelerate=False,
                 double entries=-1, int n_threads=1, int guess=-1, Py_ssize_t whole=-1):
    """One half-step of ``solver`` on F (k×p, in place) given A (k×k) and B (k×p), the
    penalties l1, l2 and the sweep-order generator's state ``rng``; with ``perm``, that
    sweep order (the solver draws none). ``entries``: X's (n·m, or its non-zeros), for
    accelerate's sweep cap. With ``guess`` >= 0 (a speculative solver), F is a block of a
    factor of ``whole`` columns, run on that outcome of the decision as a block of the
    engine is (the orders read from ``rng``, not drawn from it). Returns (violation at the
    incoming F, the generator's new state, the block's evidence or None)."""
    cdef Py_ssize_t k = F.shape[0], q = F.shape[1], kk = k * k
    cdef Params p
    cdef Half h
    cdef XData x
    cdef int solver_id
    cdef double viol
    if A.shape[0] != k or A.shape[1] != k or B.shape[0] != k or B.shape[1] != q:
        raise ValueError("A must be k×k and B k×p for F k×p")
    if perm is not None and perm.shape[0] != k:
        raise ValueError("perm must hold k entries")
    engine_shape(&x, 1, q, sizeof(floating), -1)
    solver_id = piece_params(&p, solver, &x, 0, 0, shuffle, accelerate, entries, n_threads,
                             guess)
    dtype = np.float64 if floating is double else np.float32
    cdef Py_ssize_t own = region_len(solver_id, k, q, 2)
    cdef floating[::1] work = np.empty(2 * kk + k * q + vectors_len(k, q, p.n_threads) + own + 1,
                                       dtype=dtype)
    cdef Py_ssize_t[::1] order = np.arange(k, dtype=np.intp) if perm is None else np.array(perm)
    h.k, h.p, h.l1, h.l2 = k, q, l1, l2
    h.measure = True
    h.keep_order = perm is not None
    h.perm, h.rng, h.prm = &order[0], &rng, &p
    h.C, h.S = &work[0], &work[kk]
    h.T = &work[2 * kk]
    h.v = &work[2 * kk + k * q]
    h.own_len = own
    h.own = &work[2 * kk + k * q + vectors_len(k, q, p.n_threads)] if own else NULL
    evidence = evidence_array(solver_id, k, &h, whole if whole > q else q, guess)
    with nogil:
        viol = half_step(solver_id, &h, &F[0, 0], &A[0, 0], &B[0, 0])
    return viol, rng, evidence


def settle_of(str solver, const double[::1] evidence, int guess, Py_ssize_t k,
              Py_ssize_t whole, uint64_t rng, bint shuffle=False, bint accelerate=False,
              double entries=-1):
    """The decision of a speculative solver's W half-step (k × ``whole``) from its blocks'
    summed ``evidence`` on ``guess`` (the kernel's settle, without the factor: it only
    decides). Returns (outcome, redo, the generator's new state): with ``redo`` the blocks
    are redone on ``outcome`` from the factor before the pass and settled again; without,
    they hold the half-step's result and the generator is as the half-step leaves it."""
    cdef XData x
    cdef Params p
    cdef Half h
    cdef bint redo = False
    cdef int solver_id, outcome
    cdef Py_ssize_t[::1] order = np.arange(k, dtype=np.intp)
    engine_shape(&x, 1, whole, 8, -1)
    solver_id = piece_params(&p, solver, &x, 0, 0, shuffle, accelerate, entries, 1, guess)
    h.k, h.p = k, whole
    h.perm, h.rng, h.prm = &order[0], &rng, &p
    h.guess = guess
    if guess < 0 or evidence.shape[0] != evidence_len(solver_id, k, &h):
        raise ValueError("the evidence of a guess is needed")
    outcome = KERNELS[solver_id].settle_f64(&h, NULL, NULL, NULL, &evidence[0], &redo)
    return outcome, bool(redo), rng


def block_pass(str solver, X, floating[:, ::1] Wt, const floating[:, ::1] H,
               const floating[:, ::1] A, const Py_ssize_t[::1] perm, double l1, double l2,
               int n_threads=1, *, int guess=-1, str mode="both", floating[:, ::1] keep=None,
               uint64_t rng=0, bint shuffle=False, bint accelerate=False, double entries=-1,
               Py_ssize_t whole=-1):
    """The row-block engine's pass over one block of rows X_b (a dense C-ordered array or a
    CSR's (data, indptr, indices) in Wt's dtype, w × m) with its rows of W: Wt (k×w) updated
    in place by ``solver``'s half-step (sweep order ``perm``, given A = HHᵀ), and W_bᵀ X_b
    (k×m) formed with the new rows. The same blocks, slabs and sums as engine_pass on X_b
    in memory. ``mode``: "both", "half" (no W_bᵀ X_b) or "c" (Wt as it is, only W_bᵀ X_b).
    A speculative solver runs on ``guess`` as engine_pass's blocks do (the other arguments
    as half_step_of's), its B_b into ``keep`` (k×w). Returns (W_bᵀ X_b or None, violation,
    the evidence or None)."""
    cdef Py_ssize_t k = Wt.shape[0], w = Wt.shape[1], m = H.shape[1]
    cdef XData x
    cdef Params p
    cdef Half h
    cdef int solver_id
    cdef double viol
    cdef int pass_mode = {"both": PASS_BOTH, "half": PASS_HALF, "c": PASS_C}[mode]
    cdef floating* kept = NULL
    if H.shape[0] != k or A.shape[0] != k or A.shape[1] != k or perm.shape[0] != k:
        raise ValueError("H must be k×m, A k×k and perm k entries for Wt k×w")
    if isinstance(X, tuple):
        data, indptr, indices = X
        X = (data, indptr, indices, np.empty(0, dtype=data.dtype), np.empty(0, np.int64),
             np.empty(0, np.int32))
    prepare_x(&x, X, w, m, 0.0, H)
    solver_id = piece_params(&p, solver, &x, l1, l2, shuffle, accelerate, entries,
                             n_threads, guess)
    if pass_mode != PASS_C and not p.separable and guess < 0:
        raise ValueError(f"solver {solver!r} is not separable by rows: it runs on a guess")
    dtype = np.float64 if floating is double else np.float32
    cdef Py_ssize_t stride = slab_len(solver_id, &x, k, &p)
    cdef floating[::1] slabs = np.empty(engine_slabs(&x, k) * stride, dtype=dtype)
    cdef floating[::1] T = np.empty(k * m + 1, dtype=dtype)
    out = np.empty((k, m), dtype=dtype)
    cdef floating[:, ::1] C = out
    cdef double[::1] ev
    cdef double* summed
    cdef Py_ssize_t i
    cdef Py_ssize_t[::1] order = np.array(perm)
    h.k, h.l1, h.l2 = k, l1, l2
    h.p = whole if whole > w else w  # (engine_part's evidence_len: the whole factor's)
    h.measure = True
    h.keep_order = True  # the driver's sweep order
    h.perm, h.rng, h.prm = &order[0], &rng, &p
    evidence = evidence_array(solver_id, k, &h, h.p, guess if pass_mode != PASS_C else -1)
    if evidence is not None:
        if evidence.shape[0] > KERNELS[solver_id].spec_len(k, w, &p):
            raise ValueError("the slabs hold less evidence than the guess needs")
        if keep is None or keep.shape[0] != k or keep.shape[1] != w:
            raise ValueError("a guess keeps B_b: keep must be k×w")
        kept = &keep[0, 0]
    with nogil:
        viol = engine_run(solver_id, &x, k, &H[0, 0], &Wt[0, 0], &A[0, 0], &C[0, 0], &T[0],
                          &h, &slabs[0], stride, kept, pass_mode)
    if evidence is not None:  # the slabs' evidence, summed into slab 0's (engine_part)
        ev = evidence
        summed = slab_evidence(&slabs[0], stride, sizeof(floating), ev.shape[0])
        for i in range(ev.shape[0]):
            ev[i] = summed[i]
    return (None if pass_mode == PASS_HALF else out), viol, evidence
