"""Starting factors: random, NNDSVD and its variants, custom copies (NumPy, both paths).

Formulas: docs/algorithms.md, "Starting points"; the draws follow scikit-learn's so that the
same int ``random_state`` gives scikit-learn's random start.
"""

import threading

import numpy as np
import scipy.sparse as sp

from . import _registry
from ._chunked import Chunked
from ._dask import DaskRows, times as dask_times
from ._kernels._common import ChunkStream, aligned_empty, left_product
from ._kernels._solve import reads_once as _kernel_reads_once
from ._kernels._nndsvd import (lu_basis as _k_lu_basis, orthonormal_rows as _k_orthonormal_rows,
                               randomized_svd_dense as _k_randomized_svd_dense,
                               split as _k_split, svd_rows as _k_svd_rows)
from ._threads import single_threaded_blas

__all__ = ["initialize", "LazyRNG", "randomized_svd", "planned_nndsvd"]

# scikit-learn's randomized SVD takes k + this many random directions.
_OVERSAMPLES = 10


class LazyRNG:
    """``random_state`` made into a generator on first use: an int seeds a RandomState
    (scikit-learn's draws), None gives a fresh ``default_rng()``, a Generator or RandomState
    is used as given.

    An int seed reseeds this thread's spare RandomState, when no other LazyRNG holds it
    (seeding one takes about 1 µs, building one about 80: a tiny problem's whole start),
    and hands it back when this LazyRNG is dropped.
    """

    __slots__ = ("_seed", "_rng", "_spare")

    def __init__(self, random_state):
        self._seed = random_state
        self._rng = random_state if not (random_state is None or isinstance(random_state, int)) else None
        self._spare = False

    def get(self):
        if self._rng is None:
            if self._seed is None:
                self._rng = np.random.default_rng()
            else:
                rng = getattr(_SPARE, "rng", _NOT_YET)
                if rng is None:  # another LazyRNG of this thread holds the spare
                    self._rng = np.random.RandomState(self._seed)
                else:
                    _SPARE.rng = None
                    if rng is _NOT_YET:
                        rng = np.random.RandomState(self._seed)
                    else:
                        rng.seed(self._seed)  # the same stream as RandomState(seed)
                    self._rng, self._spare = rng, True
        return self._rng

    def restarted(self):
        """The generator as scikit-learn's ``check_random_state`` gives it a second time:
        an int seed starts its stream again (a new LazyRNG), anything else goes on."""
        return LazyRNG(self._seed) if isinstance(self._seed, int) else self

    def for_svd(self):
        """The generator of NNDSVD's randomized SVD: this one, or with None a RandomState
        seeded 0, so that a default call (``random_state=None``) stays deterministic
        (scikit-learn's draws there from NumPy's global RandomState)."""
        return LazyRNG(0) if self._seed is None and self._rng is None else self

    def uint63(self):
        """One integer seed in [0, 2**63) drawn from the generator."""
        rng = self.get()
        if isinstance(rng, np.random.Generator):
            return int(rng.integers(0, 2**63, dtype=np.int64))
        return int(rng.randint(0, 2**63, dtype=np.int64))

    def __del__(self):
        if self._spare:
            _SPARE.rng = self._rng


_SPARE = threading.local()  # .rng: this thread's spare RandomState, or None while in use
_NOT_YET = object()  # no spare made on this thread yet


# Bytes of one piece of the random start's draw of W (float64 normals): W's own size is all
# the start adds, however many rows X has.
_DRAW_BYTES = 1 << 20


def _mean(X):
    with np.errstate(over="ignore"):  # an overflow shows up as the solver's clear error
        if sp.issparse(X) and X.dtype.kind == "f":
            # scipy's X.mean() (the sum of the data scaled by 1 / (n·m)), bit for bit,
            # without its copy of the whole matrix nor one of the data
            return _pairwise_sum(X.data, 1.0 / (X.shape[0] * X.shape[1]))
        return X.mean()


# Entries of data scaled at a time by _pairwise_sum (NumPy's pairwise blocks are 128).
_SUM_PIECE = 1 << 18


def _pairwise_sum(data, scale, lo=0, n=None):
    """np.sum(data[lo:lo + n] * scale, dtype=data.dtype), bit for bit, with no temporary
    larger than _SUM_PIECE entries: NumPy sums a contiguous array pairwise, each half
    (cut at a multiple of 8) summed the same way, so a span longer than a piece is the sum
    of its two halves, and a piece is NumPy's own sum."""
    n = len(data) if n is None else n
    if n <= max(_SUM_PIECE, 128):
        return np.sum(data[lo:lo + n] * scale, dtype=data.dtype)
    half = n // 2 - (n // 2) % 8
    return (_pairwise_sum(data, scale, lo, half)
            + _pairwise_sum(data, scale, lo + half, n - half))


def initialize(prob, rng):
    """Return the starting (W, H) of shape (n, k) and (k, m), in prob.dtype: H C-contiguous,
    W made (random, nndsvd*) or copied (custom, by validation) Fortran-ordered, so that Wᵀ,
    which the kernels update, is C-contiguous without another copy of W."""
    X, k, dtype = prob.X, prob.k, prob.dtype
    if not prob.update_H:
        H = prob.H
        if prob.W is not None:
            W = prob.W
        elif _registry.SOLVERS[prob.solver].keeps_zeros:  # zeros would stay zeros
            W = np.full((prob.n, k), np.sqrt(_mean(X) / k), dtype=dtype, order="F")
        else:
            W = np.zeros((prob.n, k), dtype=dtype, order="F")
        return W, H
    if prob.init == "custom":
        return prob.W, prob.H
    if prob.init == "random":
        avg = np.sqrt(_mean(X) / k)
        gen = rng.get()
        H = avg * gen.standard_normal(size=(k, prob.m)).astype(dtype, copy=False)
        np.abs(H, out=H)
        W = np.empty((k, prob.n), dtype=dtype).T
        rows = max(1, _DRAW_BYTES // (8 * k))
        for r0 in range(0, prob.n, rows):  # the same stream as one draw, a piece at a time
            piece = avg * gen.standard_normal(size=(min(rows, prob.n - r0), k)).astype(
                dtype, copy=False)
            W[r0:r0 + rows] = np.abs(piece, out=piece)
        return W, np.ascontiguousarray(H, dtype=dtype)
    return _nndsvd(X, k, prob.init, rng, dtype, prob.n_threads, columns=not reads_once(prob))


def randomized_svd(X, k, rng, n_threads=1, columns=True):
    """Leading k singular triplets of X as (Uᵀ (k×n), σ (k), Vᵀ (k×m)), by scikit-learn's
    randomized SVD: ``sklearn.utils.extmath.randomized_svd(X, k, random_state=...)`` with
    its defaults (Halko, Martinsson & Tropp 2011, algorithm 4.4 with subspace iteration).

    With M = X, or Xᵀ when X is wide (s = min(n, m) columns), and ell = k + 10: Ω is an
    s × ell standard normal draw (``rng.normal``, in X's dtype: the same draw as
    scikit-learn's for the same seed); q = 7 power iterations when k < s / 10, else 4, each
    followed by an LU normalization; then Q = orth(M Y), the SVD of the ell × s matrix QᵀM,
    and U = Q Ũ. The subspace span(M (MᵀM)^q Ω) is scikit-learn's, so the triplets, and
    the start made from them, are scikit-learn's up to rounding, whatever X's storage.

    The products with X are the solvers' threaded ones for a dense X (``_times``; BLAS held
    to one thread by the caller), the same on X's CSR for a sparse X (CSRPair:
    scipy.sparse's products bit for bit), the workers' for a Dask X
    (_dask.times: each product a pass where the blocks are); the small LU, QR and SVD
    steps are compiled (_kernels/_nndsvd.pyx). Powering the Gram matrix MᵀM instead would
    save passes for a small s, but a Gram product by gemm rounds differently on a worker
    thread than on the main one (measured: 1e-12), and concurrent calls must equal serial ones.
    """
    Y = omega(X, k, rng)
    if sp.issparse(X):  # the compiled products on X's CSR (and Xᵀ's: ``columns``)
        return randomized_svd_steps(CSRPair(X, columns), k, Y, n_threads)
    if isinstance(X, DaskRows):  # each product on the workers
        return randomized_svd_steps(X, k, Y, n_threads)
    # A dense X: the same steps in one compiled call (rsvd_core), bit for bit; X out of
    # core: the same call, each product a pass over X's chunks.
    if isinstance(X, Chunked):
        X = ChunkStream(X)
    return _k_randomized_svd_dense(X, k, k + _OVERSAMPLES, power_iterations(k, min(X.shape)),
                                   Y, n_threads)


def randomized_svd_steps(X, k, Y, n_threads=1):
    """randomized_svd from its start Y (``omega``), step by step: for a sparse X (a
    CSRPair) or a Dask X, and the statement of what rsvd_core does for a dense
    one (the tests check that the two agree bit for bit)."""
    n, m = X.shape
    q = power_iterations(k, min(n, m))
    wide = n < m  # M = Xᵀ: products with M are products with X from the other side
    # Bases are kept as rows (ell × dimension), the layout the kernels' products take.
    for _ in range(q):
        Y = _k_lu_basis(_times(X, Y, wide, n_threads))  # (M Y)ᵀ
        Y = _k_lu_basis(_times(X, Y, not wide, n_threads))  # (Mᵀ Z)ᵀ
    Qt = _k_orthonormal_rows(_times(X, Y, wide, n_threads))  # ell × p, p = max(n, m)
    B = _times(X, Qt, not wide, n_threads)  # QᵀM, ell × s
    Ub, sigma, Vbt = _k_svd_rows(B)
    UQt = left_product(Qt, np.ascontiguousarray(Ub[:, :k].T), True)  # (Q Ub)ᵀ, k × p: M's left vectors
    Vt = Vbt[:k]  # k × s: M's right vectors
    return (Vt, sigma[:k], UQt) if wide else (UQt, sigma[:k], Vt)


def power_iterations(k, s):
    """scikit-learn's count of power iterations for k components of a matrix whose smaller
    side is s."""
    return 7 if k < 0.1 * s else 4


def omega(X, k, rng):
    """The randomized SVD's start Ω (s × ell, s = min(n, m)), transposed to ell × s rows:
    scikit-learn's draw (``rng.normal`` in X's dtype)."""
    s = min(X.shape)
    return np.ascontiguousarray(
        rng.get().normal(size=(s, k + _OVERSAMPLES)).astype(X.dtype, copy=False).T)


def _times(X, F, transpose, n_threads):
    """F Xᵀ (F: ell × m) or, with ``transpose``, F X (F: ell × n), as ell-row arrays."""
    F = np.ascontiguousarray(F, dtype=X.dtype)
    if isinstance(X, DaskRows):
        return dask_times(X, F, transpose)
    if isinstance(X, CSRPair):
        if transpose and not X.columns:
            return _scipy_left_times(X.matrix, F)
        return _sparse_times(X, F, transpose, n_threads)
    return left_product(X, F, transpose, n_threads)


# Multiply-adds of one compiled call of a sparse start's product (a piece of its rows):
# tens of milliseconds, between which Python takes a Ctrl-C (a dense X's start checks
# inside its one call: rsvd_core).
_PIECE_WORK = 1 << 26


def _sparse_times(X, F, transpose, n_threads):
    """F Xᵀ (or with ``transpose`` F X, from Xᵀ's CSR) for a CSRPair X, by pieces of the
    CSR's rows of about _PIECE_WORK multiply-adds each, each piece's columns of the
    product one call: each row's sums are the same whichever piece it is in (the products
    are bit-identical for any thread count for the same reason), so the result is the
    whole call's, bit for bit."""
    n, m = X.shape
    data, indptr, indices = X.operands[3:] if transpose else X.operands[:3]
    rows, cols = (m, n) if transpose else (n, m)
    ell = F.shape[0]
    bounds = _pieces(indptr, ell)
    if len(bounds) <= 2:
        return left_product(X.operands, F, transpose, n_threads, X.shape)
    none = np.empty(0, dtype=indptr.dtype)
    out = aligned_empty((ell, rows), F.dtype)
    for r0, r1 in zip(bounds[:-1], bounds[1:]):
        lo, hi = indptr[r0], indptr[r1]
        piece = (data[lo:hi], indptr[r0:r1 + 1] - lo, indices[lo:hi],
                 data[:0], none, indices[:0])
        out[:, r0:r1] = left_product(piece, F, False, n_threads, (int(r1 - r0), cols))
    return out


def _pieces(indptr, ell):
    """Row boundaries (0, ..., rows) of pieces of a CSR of about _PIECE_WORK multiply-adds
    each with ``ell`` vectors (only (0, rows) when it is less than that in all)."""
    rows = indptr.shape[0] - 1
    step = max(1, _PIECE_WORK // max(ell, 1))  # stored entries of a piece
    if indptr[rows] <= step:
        return np.array([0, rows])
    return np.unique(np.concatenate([
        np.searchsorted(indptr, np.arange(step, indptr[rows], step), side="right") - 1,
        [0, rows]]))


def _scipy_left_times(X, F):
    """F X for a CSR X (n × m; F: ell × n) as scipy.sparse forms it, ``(X.T @ F.T).T``,
    bit for bit, by pieces of X's rows (_pieces), Python taking a Ctrl-C between them:
    scipy's own routine (csc_matvecs, on Xᵀ as a CSC) adds each row's terms into one
    running output, row after row, so running it row piece after row piece into the
    same output adds the same terms in the same order. (A scipy without that routine
    under that name: the one product.)"""
    from scipy.sparse import _sparsetools

    matvecs = getattr(_sparsetools, "csc_matvecs", None)
    bounds = _pieces(X.indptr, F.shape[0])
    if matvecs is None or X.format != "csr" or len(bounds) <= 2 or F.dtype != X.dtype:
        return np.ascontiguousarray((X.T @ F.T).T)
    n, m = X.shape
    ell = F.shape[0]
    Ft = np.ascontiguousarray(F.T)  # n × ell, as scipy reads it
    out = np.zeros((m, ell), dtype=X.dtype)
    for r0, r1 in zip(bounds[:-1], bounds[1:]):
        matvecs(m, int(r1 - r0), ell, X.indptr[r0:r1 + 1], X.indices, X.data,
                Ft[r0:r1].ravel(), out.ravel())
    return np.ascontiguousarray(out.T)


class CSRPair:
    """A sparse X as the range finder's compiled products take it: X's CSR and, with
    ``columns``, Xᵀ's (``operands``, made once for all the products), with X's shape and
    dtype. The products are scipy.sparse's bit for bit: each entry summed over a row's
    non-zeros in their order, from 0, each product rounded and then added, as scipy's
    csr_matvecs does; and Xᵀ's CSR lists a row's entries in the order in which
    csc_matvecs adds them (X's rows, in order). Threaded by rows: each row's sums are the
    same for any thread count. Without ``columns`` (a call whose solve reads X by rows
    only, which makes no transposed copy: the row-block engine), F X is scipy's own.
    On a CSR 2667 x 3000 at 2 %, ell = 20, one thread: F Xᵀ 0.32 ms, F X 0.32 ms, against
    scipy's 0.77 and 0.66 ms."""

    def __init__(self, X, columns=True):
        self.matrix, self.columns = X, columns
        self.shape, self.dtype = X.shape, X.dtype
        self.operands = operands(X, columns)


def operands(X, columns=True):
    """X as the kernels take it: the dense array itself, an X out of core as the stream
    of its chunks, or a sparse X's CSR and, with ``columns``, Xᵀ's CSR (else three empty
    arrays in its place)."""
    if isinstance(X, np.ndarray):
        return X
    if isinstance(X, Chunked):
        return ChunkStream(X)
    return _sparse_operands(X, columns)


def _sparse_operands(X, columns):
    """X's CSR and Xᵀ's CSR as the kernels take them (int64 indptr, int32 indices: X was
    checked, its sides are below 2**31); without ``columns``, Xᵀ's three are empty."""
    def arrays(M):
        return (M.data, X.dtype), (M.indptr, np.int64), (M.indices, np.int32)

    pairs = arrays(X if X.format == "csr" else X.tocsr())
    if columns:
        pairs += arrays(X.T if X.format == "csc" else X.T.tocsr())
    else:
        pairs += tuple((np.empty(0), t) for _, t in pairs)
    return tuple(np.asarray(a, dtype=t) for a, t in pairs)


def reads_once(prob):
    """Whether the kernels read X once per iteration on ``prob`` (the row-block engine:
    docs/algorithms.md, "One pass over X"), by the kernels' own rule."""
    X = prob.X
    return _kernel_reads_once(prob.solver, prob.n, prob.m, X.dtype.itemsize,
                              X.nnz if sp.issparse(X) else -1, prob.update_H, prob.beta,
                              prob.accelerate)


def planned_nndsvd(prob, rng):
    """A start the compiled batch makes itself, in its parallel loop: for a dense X with
    init 'nndsvd' or 'nndsvda', (Ω, q, fill) drawn and computed as ``initialize`` would
    (the draws from the same generator, in the same order), for rsvd_core and split;
    else None (the start is made here)."""
    if not prob.update_H or prob.init not in ("nndsvd", "nndsvda") or sp.issparse(prob.X):
        return None
    fill = float(_mean(prob.X)) if prob.init == "nndsvda" else -1.0
    Y = omega(prob.X, prob.k, rng.for_svd())
    return Y, power_iterations(prob.k, min(prob.n, prob.m)), fill


def _nndsvd(X, k, variant, rng, dtype, n_threads=1, columns=True):
    """NNDSVD (Boutsidis & Gallopoulos 2008) and its a/ar variants, as factors (W, H).

    The singular triplets come from ``randomized_svd`` (scikit-learn's, for any storage of
    X), the split into non-negative parts from the compiled ``split``.
    """
    fill = float(_mean(X)) if variant == "nndsvda" else -1.0
    with single_threaded_blas:
        Wt, s, H = randomized_svd(X, k, rng.for_svd(), n_threads=n_threads, columns=columns)
    Wt = np.ascontiguousarray(Wt, dtype=dtype)
    H = np.ascontiguousarray(H, dtype=dtype)
    _k_split(Wt, np.asarray(s, dtype=dtype), H, fill)
    W = Wt.T  # a view; the compiled solvers take Wt back without a copy
    if variant == "nndsvdar":
        avg = _mean(X)
        gen = rng.restarted().get()  # as scikit-learn, which seeds a second generator
        W[W == 0] = abs(avg * gen.standard_normal(size=int((W == 0).sum())) / 100)
        H[H == 0] = abs(avg * gen.standard_normal(size=int((H == 0).sum())) / 100)
    return W, H
