# cython: language_level=3
# Shared pieces of the nogil solver cores: the problem, parameter and trace records, the
# workspace layout, the products with X (the only code that touches X), Grams, the loss,
# the HALS sweep and the stopping bookkeeping. docs/algorithms.md states every formula used here.

from cython cimport floating
from libc.stdint cimport int32_t, int64_t, uint64_t

cdef enum:
    STATUS_OK = 0
    STATUS_NONFINITE = 1
    STATUS_STOPPED = 4      # the Hook said stop (2 is _result's STATUS_OVERFLOW, 3 the batch's)
    STATUS_NO_MEMORY = 5    # the history could not grow (see record)

# Columns per block of a HALS sweep (at most SWEEP_BLOCK, at least SWEEP_MIN): its k rows
# take about SWEEP_BYTES, to stay in the first-level cache. A block is swept a tile of
# SWEEP_TILE_BYTES of columns at a time (32 float64, 64 float32: four AVX-512 or eight
# AVX2 registers), their gradients held in registers while the k rows stream past.
cdef enum:
    SWEEP_BLOCK = 512
    SWEEP_MIN = 32
    SWEEP_BYTES = 16384
    SWEEP_TILE_BYTES = 256
    SWEEP_TILE_MAX = 64  # entries of a float32 tile

# A factor's Gram of at least PARALLEL_MIN_WORK multiply-adds is summed from GRAM_PIECES
# pieces of its columns, computed side by side.
cdef enum:
    GRAM_PIECES = 4

# Multiply-adds below which a product, sweep or transpose runs on one thread (about 0.1 ms
# of work: below it, waking threads and the closing barrier cost more than they save, and
# far more when another process holds a core).
cdef enum:
    PARALLEL_MIN_WORK = 1048576

# Multiply-adds of a product up to which a dense X is also kept in its other order.
cdef enum:
    OTHER_ORDER_WORK = 32768

# Bytes to which the arrays BLAS and LAPACK work on are aligned (_common.pyx says why).
cdef enum:
    WORK_ALIGN = 64


cdef inline Py_ssize_t aligned_len(Py_ssize_t count, Py_ssize_t itemsize) noexcept nogil:
    """``count`` entries of ``itemsize`` bytes rounded up to whole WORK_ALIGN bytes: the
    length of a part of a workspace after which the next part starts as aligned."""
    cdef Py_ssize_t per = WORK_ALIGN // itemsize
    return (count + per - 1) // per * per

cdef struct Source

cdef struct XData:
    Py_ssize_t n, m
    bint sparse
    bint fortran            # dense X stored as its transpose (m×n, C-contiguous)
    const void* dense       # n×m (or m×n when fortran), the computation dtype
    int itemsize            # bytes of an entry of the computation dtype (4 or 8)
    double entries          # the entries a product reads: n·m dense, nnz sparse (x_entries)
    const void* other       # NULL, or a copy of X in the other order (small X: see solve)
    const void* rdata       # CSR of X: data, indptr (n+1), indices
    const int64_t* rptr
    const int32_t* rind
    const void* cdata       # CSR of Xᵀ (that is, CSC of X)
    const int64_t* cptr
    const int32_t* cind
    double sqnorm           # ‖X‖²_F, accumulated in double
    Source* source          # NULL, or X is read from elsewhere a chunk of rows at a time:
                            # dense and other are NULL, the products go through _stream.pxi

# X out of core (read from a file, an HDF5 or zarr array, ...): the rows of the stored
# matrix (X, or Xᵀ when ``fortran``) in ``count`` chunks of ``rows`` rows (the last may have
# fewer), handed over one at a time by ``fetch`` (which takes the GIL to read): it fills
# ``chunk`` with chunk c as an in-memory X of w × q (C order), valid until the next fetch,
# and returns 0, or non-zero when the read failed (the owner keeps the exception; ``failed``
# is then set and every later pass does nothing). ``scratch``: the owner's buffer of
# stream_scratch_len entries (the factors' chunk copies, a chunk's product, products' T).
cdef struct Source:
    int (*fetch)(Source* s, Py_ssize_t c, XData* chunk) noexcept nogil
    void* owner
    Py_ssize_t rows
    Py_ssize_t count
    bint failed
    void* scratch

cdef struct Params:
    int max_iter
    double tol
    double l1_W, l2_W, l1_H, l2_H
    bint update_H
    bint shuffle
    uint64_t seed
    int check_every
    bint stop_on_decrease   # the registry's stops_on: "decrease" (True) or "gradient"
    double beta             # the β of the loss: 2 Frobenius, 1 Kullback-Leibler, 0 Itakura-Saito
    int n_threads           # OpenMP threads of the products and sweeps (1 inside a batch)
    bint accelerate         # cd: repeat the sweeps before the next product (accelerated HALS)
    double x_entries        # X's entries a product reads: n·m dense, nnz sparse (prepare_x)
    bint separable          # the registry's separable (and not accelerate): the half-step of
                            # W may run block by block of rows (the row-block engine)
    bint speculative        # not separable, but its Kernel settles (below): the engine runs
                            # the W half-step by blocks on a guess of its one whole-factor
                            # decision and settles it after the pass


# What a half-step is given besides F (k×p, updated in place), A (k×k: the other factor's
# Gram) and B (k×p: the other factor's product with X), which are arguments of the
# computation's dtype. The scratch regions are of that dtype too (void*: a struct has no
# fused members); each solver casts the ones it uses.
cdef struct Half:
    Py_ssize_t k, p
    double l1, l2            # the penalties of this factor
    bint measure             # return the violation (Σ |projected gradient|) at the incoming F
    bint keep_order          # perm is this half-step's sweep order already (the row-block
                             # engine draws it once for all its blocks): do not draw it
    Py_ssize_t* perm         # k entries: the sweep order
    uint64_t* rng            # the sweep-order generator's state
    const Params* prm
    void* T                  # k×P scratch
    void* C                  # k×k scratch
    void* S                  # k×k scratch
    void* v                  # vectors_len(k, P, threads) entries (the sweep's sums, Gram pieces)
    void* own                # the solver's own region, own_len entries (NULL when none)
    Py_ssize_t own_len
    # A speculative solver's half-step on one block of the engine (guess >= 0; -1: a whole
    # half-step): it takes the outcome ``guess`` of its whole-factor decision and adds into
    # ``evidence`` (spec_len doubles) what the decision is taken from; the sweep orders are
    # those the whole half-step would draw from *rng (read, not advanced).
    int guess
    double* evidence
    bint sure                # the engine's last guess held (engine_pass)


cdef struct Trace:
    double* history         # n_hist errors in a C buffer of `capacity`, grown by record
    Py_ssize_t n_hist       # (start a Trace with init_trace, end it with take_history)
    Py_ssize_t capacity
    bint out_of_memory      # the history could not grow: its later entries are lost
    int n_iter
    bint converged
    double final_err
    Hook* hook              # NULL, or the loop's call-out between checks (below)

# The loop's one call-out between convergence checks: signal checks, progress and verbose
# output, and a batch's stop. The loop reports its work (``tick``: multiply-adds, after each
# half-step) and its checks (``at_check``); either returns True when the loop must stop (it
# then returns STATUS_STOPPED at once). ``call`` (which takes the GIL) is made at every check
# when ``each_check``, and when ``every`` multiply-adds have been done since the last call and
# ``interval`` seconds have passed: work decides when to look at the clock (so a tiny call
# never does), the clock when to take the GIL (so a fast call does not take it every
# millisecond, and waits for it at most once an interval while other Python threads run).
# A batch's items share one Hook with ``call`` NULL: they only poll ``stop``, never the GIL.
cdef struct Hook:
    int (*call)(Hook* h, int it, double err) noexcept nogil  # it < 0: work done, no check
    void* owner             # what ``call`` reports to (a Python object, borrowed)
    bint each_check         # call at every check (a progress callback, verbose output)
    double every            # multiply-adds between two looks at the clock
    double interval         # seconds between two calls due to work
    double owed             # multiply-adds since the last look at the clock
    double last             # the clock at the last call due to work
    volatile int* stop      # NULL, or a flag that ends the loop once non-zero (set elsewhere)

# What a Hook's ``call`` reports to (_common.pyx): Python's signals, a progress callback.
cdef class Watch:
    cdef Hook hook
    cdef object progress
    cdef bint signals
    cdef object error
    cdef int event(self, int it, double err)

# A solver's compiled entry points, one record per solver: its module's ``KERNEL``, a
# capsule made by ``kernel_capsule``, which ``_kernels/_solve.pyx`` gathers at import for
# every registry entry (so the loop names no solver). The half-step in each dtype; the
# entries of its own workspace region (NULL: none); and, for a solver that serves losses
# other than Frobenius, its loop for them (NULL: Frobenius only; _solve.pyx's docstring
# says why such a loop is not the Frobenius one).
ctypedef double (*HalfF32)(const Half* h, float* F, const float* A,
                           const float* B) noexcept nogil
ctypedef double (*HalfF64)(const Half* h, double* F, const double* A,
                           const double* B) noexcept nogil
ctypedef Py_ssize_t (*RegionLen)(Py_ssize_t k, Py_ssize_t P, double beta) noexcept nogil
ctypedef int (*LossLoopF32)(const XData* x, Py_ssize_t k, float* Wt, float* H, float* work,
                            const Params* p, Trace* t) noexcept nogil
ctypedef int (*LossLoopF64)(const XData* x, Py_ssize_t k, double* Wt, double* H,
                            double* work, const Params* p, Trace* t) noexcept nogil
# A speculative solver's (Params.speculative) settling of a guessed decision, after the
# engine's pass ran every block with outcome h.guess: from the blocks' summed ``evidence``,
# the outcome the whole half-step takes (returned). F (k×p) is then that half-step's
# result, with *h.rng as it leaves the generator: either as the pass left them, or
# carried on here with A and B (B = the product the pass kept; accelerated cd's further
# sweeps), or, with *redo set, not: the engine then redoes the whole half-step from the
# factor and the generator's state before the pass (engine_pass). With F, A and B NULL
# (the blocks live elsewhere: _dask.py, settle_of) it only decides: an outcome it cannot
# take from the evidence is returned with *redo set, for the blocks to be redone on that
# guess from the factor before the pass and settled again.
ctypedef int (*SettleF32)(const Half* h, float* F, const float* A, const float* B,
                          const double* evidence, bint* redo) noexcept nogil
ctypedef int (*SettleF64)(const Half* h, double* F, const double* A, const double* B,
                          const double* evidence, bint* redo) noexcept nogil
# Doubles of a speculative solver's evidence for a half-step of F (k×p).
ctypedef Py_ssize_t (*SpecLen)(Py_ssize_t k, Py_ssize_t p, const Params* prm) noexcept nogil

cdef struct Kernel:
    HalfF32 half_f32
    HalfF64 half_f64
    RegionLen region_len
    LossLoopF32 loss_loop_f32
    LossLoopF64 loss_loop_f64
    SettleF32 settle_f32    # NULL (with spec_len): separable, or the engine never runs it
    SettleF64 settle_f64
    SpecLen spec_len

cdef object kernel_capsule(HalfF32 half_f32, HalfF64 half_f64, RegionLen region_len,
                           LossLoopF32 loss_loop_f32, LossLoopF64 loss_loop_f64,
                           SettleF32 settle_f32=*, SettleF64 settle_f64=*,
                           SpecLen spec_len=*)
cdef Kernel kernel_of(object capsule) except *

cdef extern from *:
    """
    #if defined(_WIN32)
    #include <windows.h>
    static double fastnmf_clock(void) { return (double) GetTickCount64() * 1e-3; }
    #else
    #include <time.h>
    static double fastnmf_clock(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
    }
    #endif
    """
    double fastnmf_clock() noexcept nogil  # seconds, monotonic


cdef inline bint tick(Trace* t, double work) noexcept nogil:
    """Count ``work`` multiply-adds done; call out if due. True: stop."""
    cdef Hook* h = t.hook
    cdef double now
    if h == NULL:
        return False
    if h.stop != NULL and h.stop[0] != 0:
        return True
    if h.call == NULL:
        return False
    h.owed += work
    if h.owed < h.every:
        return False
    h.owed = 0
    now = fastnmf_clock()
    if now - h.last < h.interval:
        return False
    h.last = now
    return h.call(h, -1, 0.0) != 0


cdef inline bint at_check(Trace* t, double work, int it, double err) noexcept nogil:
    """A convergence check at iteration ``it`` found error ``err`` (after ``work``
    multiply-adds since the last tick). True: stop."""
    cdef Hook* h = t.hook
    if h != NULL and h.each_check and h.call != NULL:
        if h.stop != NULL and h.stop[0] != 0:
            return True
        h.owed = 0
        return h.call(h, it, err) != 0
    return tick(t, work)

# Workspace (one array per call, in the computation dtype), in this order:
#   A (k×k)  Gram of the fixed factor          G (k×k)  Gram of the updated factor
#   C (k×k)  Cholesky scratch                  S (k×k)  Gram scratch
#   B (k×P)  product with X, P = max(n, m)     T (k×P)  scratch (transposes, proposals, ...)
#            (each k×m only, when the row-block engine reads X by rows: B is then Wᵀ X,
#            T the H half-step's scratch and Hᵀ; _solve.product_len)
#   v (vectors_len: per-thread vectors, per-block violations, pieces of a Gram)
#   then the solver's own region (its length from its Kernel's region_len: bpp's passive
#   sets and state, mu's blocks of X and WH for a β other than 2; cd and als have none),
#   carved by the solver itself; with the row-block engine the region is in the engine's
#   scratch instead, which follows (its slabs during a pass; the region, the k×P products
#   and a whole half-step's scratch between passes: _solve.idle_len)
cdef int prepare_x(XData* x, object X, Py_ssize_t n, Py_ssize_t m, double sqnorm,
                   const floating[:, ::1] like) except -1
cdef double x_entries(const XData* x) noexcept nogil
cdef Py_ssize_t workspace_len(Py_ssize_t n, Py_ssize_t m, Py_ssize_t k, int n_threads,
                              Py_ssize_t region, Py_ssize_t bt) noexcept nogil
cdef bint other_order(XData* x, Py_ssize_t k, floating* end) noexcept nogil

cdef Py_ssize_t vectors_len(Py_ssize_t k, Py_ssize_t P, int n_threads) noexcept nogil
cdef void factor_gram(Py_ssize_t k, Py_ssize_t p, const floating* F, floating* out,
                      floating* v, Py_ssize_t P, int n_threads) noexcept nogil
cdef int threads_for(int n_threads, double work) noexcept nogil

cdef void transpose(Py_ssize_t rows, Py_ssize_t cols, const floating* F, floating* Ft,
                    int n_threads) noexcept nogil
cdef void product_W(const XData* x, Py_ssize_t k, const floating* H, floating* B,
                    floating* T, int n_threads) noexcept nogil
cdef void product_H(const XData* x, Py_ssize_t k, const floating* Wt, floating* B,
                    floating* T, int n_threads) noexcept nogil
cdef void block_product_W(const XData* x, Py_ssize_t k, const floating* H,
                          const floating* Ht, Py_ssize_t r0, Py_ssize_t w, floating* B,
                          floating* a, floating* T) noexcept nogil
cdef bint acc_transposed(const XData* x, Py_ssize_t k) noexcept nogil
cdef void block_add_H(const XData* x, Py_ssize_t k, const floating* F, Py_ssize_t r0,
                      Py_ssize_t w, floating* acc, bint first, floating* a) noexcept nogil
cdef Py_ssize_t stream_scratch_len(Py_ssize_t k, Py_ssize_t rows, Py_ssize_t q) noexcept nogil
cdef bint fetch_chunk(const XData* x, Py_ssize_t c, XData* chunk,
                      Py_ssize_t* r0) noexcept nogil
cdef bint source_failed(const XData* x) noexcept nogil
cdef void copy_columns(Py_ssize_t k, const floating* F, Py_ssize_t ld, Py_ssize_t c0,
                       Py_ssize_t w, floating* out, bint back) noexcept nogil
cdef double loss_sq(const XData* x, Py_ssize_t k, Py_ssize_t p, const floating* F,
                    const floating* B, const floating* G, const floating* A) noexcept nogil
cdef double accurate_loss_sq(const XData* x, Py_ssize_t k, const floating* Wt,
                            const floating* H, double err_sq, floating* T,
                            Py_ssize_t T_len) noexcept nogil
cdef double direct_error(const XData* x, Py_ssize_t k, const floating* Wt,
                         const floating* H, floating* T, Py_ssize_t T_len) noexcept nogil
cdef double hals_sweep(Py_ssize_t k, Py_ssize_t p, floating* F, const floating* A,
                       const floating* B, double l1, double l2, const Py_ssize_t* perm,
                       floating* v, bint measure, int n_threads,
                       double* change) noexcept nogil
cdef void next_permutation(Py_ssize_t k, Py_ssize_t* perm, bint shuffle,
                           uint64_t* state) noexcept nogil
cdef void init_trace(Trace* t) noexcept nogil
cdef double record(Trace* t, double err_sq) noexcept nogil
cdef int trace_status(const Trace* t, int status) noexcept nogil
cdef object take_history(Trace* t)
cdef int finish(const XData* x, Py_ssize_t k, const floating* Wt, const floating* H,
                floating* T, Py_ssize_t T_len, double err_sq, Trace* t) noexcept nogil
