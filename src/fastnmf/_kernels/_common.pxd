# cython: language_level=3
# Shared pieces of the nogil solver cores: the problem, parameter and trace records, the
# workspace layout, the products with X (the only code that touches X), Grams, the loss,
# the HALS sweep and the stopping bookkeeping. NMF-MATH.md names every formula used here.

from cython cimport floating
from libc.stdint cimport int32_t, int64_t, uint64_t

cdef enum:
    STATUS_OK = 0
    STATUS_NONFINITE = 1

cdef enum:
    SOLVER_CD = 0
    SOLVER_ALS = 1
    SOLVER_MU = 2
    SOLVER_BPP = 3

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

cdef struct XData:
    Py_ssize_t n, m
    bint sparse
    bint fortran            # dense X stored as its transpose (m×n, C-contiguous)
    const void* dense       # n×m (or m×n when fortran), the computation dtype
    const void* other       # NULL, or a copy of X in the other order (small X: see solve)
    const void* rdata       # CSR of X: data, indptr (n+1), indices
    const int64_t* rptr
    const int32_t* rind
    const void* cdata       # CSR of Xᵀ (that is, CSC of X)
    const int64_t* cptr
    const int32_t* cind
    double sqnorm           # ‖X‖²_F, accumulated in double

cdef struct Params:
    int max_iter
    double tol
    double l1_W, l2_W, l1_H, l2_H
    bint update_H
    bint shuffle
    uint64_t seed
    int check_every
    bint verbose
    double beta             # the β of the loss: 2 Frobenius, 1 Kullback-Leibler, 0 Itakura-Saito
    int n_threads           # OpenMP threads of the products and sweeps (1 inside a batch)
    bint accelerate         # cd: repeat the sweeps before the next product (accelerated HALS)
    double x_entries        # X's entries a product reads: n·m dense, nnz sparse (prepare_x)

cdef struct Trace:
    double* history         # capacity max_iter // check_every + 1
    Py_ssize_t n_hist
    int n_iter
    bint converged
    double final_err
    double* live            # NULL, or 2 doubles: (iteration, error) of the latest check

# Workspace (one array per call, in the computation dtype), in this order:
#   A (k×k)  Gram of the fixed factor          G (k×k)  Gram of the updated factor
#   C (k×k)  Cholesky scratch                  S (k×k)  Gram scratch
#   B (k×P)  product with X, P = max(n, m)     T (k×P)  scratch (transposes, proposals, ...)
#   v (vectors_len: per-thread vectors, per-block violations, pieces of a Gram)
#   and for a β other than 2 (mu): Y1, Y2 (k×P each, blocks of rows of X and WH), z (2P + 2k)
#   or for bpp: E (bpp_extra_len: B's columns, right-hand sides, passive sets, state)
cdef int prepare_x(XData* x, object X, Py_ssize_t n, Py_ssize_t m, double sqnorm,
                   const floating[:, ::1] like) except -1
cdef double x_entries(const XData* x) noexcept nogil
cdef Py_ssize_t workspace_len(Py_ssize_t n, Py_ssize_t m, Py_ssize_t k, double beta,
                              int n_threads, int solver) noexcept nogil
cdef Py_ssize_t bpp_extra_len(Py_ssize_t k, Py_ssize_t P) noexcept nogil
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
cdef double record(Trace* t, double err_sq, int it, const Params* p) noexcept nogil
cdef int finish(const XData* x, Py_ssize_t k, const floating* Wt, const floating* H,
                floating* T, Py_ssize_t T_len, double err_sq, Trace* t) noexcept nogil
