"""Every check of fastnmf's arguments, and the one helper that words their errors.

``check_nmf_args`` turns the user's arguments into a :class:`Problem`: arrays in the
computation dtype and layout the kernels take, the solver and init resolved, the
regularization split into L1/L2 parts for W and H. Nothing downstream re-checks.
"""

import math
import numbers
import os
import sys
import warnings

import numpy as np
import scipy.sparse as sp

from . import _registry
from ._chunked import Chunked, beyond_range, is_out_of_core, open_chunked
from ._dask import is_distributed, open_dask
from ._kernels._common import first_decrease, first_outside, first_unsorted, scan
from ._threads import default_threads, forked

__all__ = ["SOLVERS", "INITS", "BETA_LOSSES", "Problem", "canonical_sparse", "check_nmf_args",
           "check_options", "check_shape", "check_sparse_structure", "checked_sparse",
           "error_message", "has_zeros", "most_threads", "resolve_threads", "scale2",
           "scale_exponent", "with_int_indices"]

SOLVERS = tuple(_registry.SOLVERS)
INITS = ("random", "nndsvd", "nndsvda", "nndsvdar", "custom")
BETA_LOSSES = tuple(_registry.LOSSES)
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# The kernels count in C ints: BLAS dimensions, int32 sparse indices, iterations. Every size
# that reaches them is checked against these before anything proportional to it is allocated.
_INDEX_LIMIT = 2**31  # n and m (and n_components) must be below it
_MAX_ITER = 2**31 - 2  # the loops run to max_iter + 1 in a C int
# The most bytes the factors and the workspace of one problem may take: beyond any memory,
# yet far from where a size computed in C (entries of the workspace, per thread) overflows.
_MAX_BYTES = 2**48
# X's Frobenius norm must stay this far below float64's largest value: the errors reported
# (history, reconstruction_err) are of its order (the first one up to a few times it).
_NORM_HEADROOM = 2.0**-2
# The sparse formats whose index arrays are checked as they are (others are converted first).
_INDEXED = ("csr", "csc", "bsr", "coo")


def error_message(arg, what, allowed=None, got=None):
    """'<arg> <what>[; allowed] [; got <got>].' — the form of every fastnmf error."""
    msg = f"{arg} {what}"
    if allowed is not None:
        msg += f" {allowed}"
    if got is not None:
        msg += f"; got {got}"
    return msg + "."


def _choices(options):
    return ", ".join(repr(o) for o in options)


class Problem:
    """A validated factorization problem (internal)."""

    __slots__ = (
        "X", "sqnorm", "xmax", "beta", "n", "m", "k", "dtype", "solver", "init", "W", "H", "update_H",
        "max_iter", "tol", "l1_W", "l2_W", "l1_H", "l2_H", "random_state", "shuffle",
        "verbose", "n_threads", "accelerate", "callback", "gather_W",
    )

    def __init__(self, **kw):
        for name in self.__slots__:
            setattr(self, name, kw[name])

    def scale_exponent(self):
        """scale_exponent of this problem's X."""
        return scale_exponent(self.xmax, self.dtype)

    def scaled(self, e):
        """This problem with X · 2⁻ᵉ: the solution is (W, H) · 2^(−e/2), the regularization
        is rescaled to match (see regularization_shift) and the errors are those of X times
        2^(−error_shift(e))."""
        if isinstance(self.X, Chunked):  # scaled as it is read
            X = self.X.scaled(e).scan("X", self.n_threads)
            sqnorm, xmax = X.sqnorm, X.xmax
        else:
            if sp.issparse(self.X):
                X = self.X.copy()
                X.data = np.ldexp(X.data, -e)
            else:
                X = np.ldexp(self.X, -e)  # exact, and no 2^-e factor to overflow the dtype
            sqnorm, xmax = _scan(X.data if sp.issparse(X) else X, "X", self.n_threads)
        kw = {name: getattr(self, name) for name in self.__slots__}
        kw.update(X=X, sqnorm=sqnorm, xmax=xmax,
                  W=None if self.W is None else np.ldexp(self.W, -e // 2),
                  H=None if self.H is None else np.ldexp(self.H, -e // 2),
                  **self.regularization(e))
        return Problem(**kw)

    def error_shift(self, e):
        """s such that an error sqrt(2 D_β) for X · 2⁻ᵉ is that for X times 2⁻ˢ: D_β is
        homogeneous of degree β (s = e for the Frobenius norm, e/2 for Kullback-Leibler)."""
        return e * self.beta / 2

    def regularization_shift(self, name, e):
        """s such that the term ``name`` (l1_W, l2_W, l1_H or l2_H) for X · 2⁻ᵉ is the
        given one times 2⁻ˢ: it must scale as D_β does (2^(−βe)) while ‖W‖₁ scales by
        2^(−e/2) and ‖W‖² by 2⁻ᵉ (s = 3e/2 and e for the Frobenius norm)."""
        return self.beta * e - (e / 2 if name.startswith("l1") else e)

    def regularization(self, e):
        """The L1/L2 terms for X · 2⁻ᵉ; a term too large for a float is inf
        (check_nmf_args refuses those)."""
        return {name: scale2(getattr(self, name), -self.regularization_shift(name, e))
                for name in ("l1_W", "l2_W", "l1_H", "l2_H")}


def scale_exponent(xmax, dtype):
    """e (a multiple of 4) such that X · 2⁻ᵉ has its maximum near 1, when X's scale
    (its largest entry ``xmax``) is extreme for ``dtype`` (products could overflow, or
    NNDSVD's absolute threshold would zero everything); else 0. Scaling by a power of two
    is exact."""
    high = 100 if dtype == np.float64 else 40
    if xmax == 0 or -40 <= math.log2(xmax) <= high:
        return 0
    return 4 * round(math.log2(xmax) / 4)


def scale2(values, exponent):
    """values · 2^exponent, exact for an integral exponent (ldexp); an array follows
    numpy's overflow rules (np.errstate), a float is inf where it overflows."""
    whole = math.floor(exponent)
    part = 2.0 ** (exponent - whole)  # 1 for an integral exponent
    if isinstance(values, np.ndarray):
        return np.ldexp(values * part if part != 1 else values, whole)
    try:
        return math.ldexp(values * part, whole)
    except OverflowError:
        return math.inf


def _computation_dtype(dtype, arg):
    if dtype in _FLOATS:
        return dtype
    if dtype.kind == "f" and dtype.newbyteorder("=") in _FLOATS:  # big-endian float32
        return dtype.newbyteorder("=")
    if dtype.kind in "biuf":
        return np.dtype(np.float64)
    raise TypeError(error_message(arg, "must hold real numbers", got=f"dtype {dtype}"))


def _converted(X, dtype, arg, **kw):
    """X (an array or a sparse matrix) as ``dtype``: a value beyond its range (a
    longdouble's 1e400 for float64) is an error saying so, not an infinity found later."""
    try:
        with np.errstate(over="raise"):
            return X.astype(dtype, **kw) if sp.issparse(X) else np.asarray(X, dtype, **kw)
    except FloatingPointError:
        raise ValueError(error_message(arg, f"has entries {beyond_range(dtype)}",
                                       got=f"dtype {X.dtype}")) from None


def _nullable_as_nan(X):
    """A pandas DataFrame with pandas' own numeric or boolean column dtypes (Float32/64,
    Int64, boolean, ...: NumPy reads such a frame as objects, a missing value as
    pandas.NA) as an array with NaN for each missing value, so that one is reported as
    such: float32 when every column is, else float64. Any other X as it is (NumPy reads
    it: an object array, text included, is taken where every entry reads as a number)."""
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(X, "to_numpy") or not hasattr(dtypes, "__iter__"):
        return X
    dtypes = list(dtypes)
    if all(isinstance(d, np.dtype) for d in dtypes):
        return X
    kinds = [d if isinstance(d, np.dtype) else getattr(d, "numpy_dtype", None)  # (masked)
             for d in dtypes]
    if not kinds or any(not isinstance(k, np.dtype) or k.kind not in "biuf" for k in kinds):
        return X
    target = np.float32 if all(k == np.float32 for k in kinds) else np.float64
    return X.to_numpy(dtype=target, na_value=np.nan)


def _missing_as_nan(A):
    """An object array with pandas' missing value (pandas.NA, which float() refuses) as
    NaN, so that it is refused as a missing value; any other array as it is."""
    pd = sys.modules.get("pandas")
    if A.dtype != object or pd is None:
        return A
    missing = np.asarray(pd.isna(A), dtype=bool)
    return np.where(missing, np.nan, A) if missing.any() else A


def _scan(values, arg, n_threads=1):
    """One pass over a contiguous buffer, checked: (‖·‖² in float64, maximum)."""
    vmin, vmax, finite, sqnorm = scan(values.reshape(-1, order="A"), n_threads)
    if not finite:
        raise ValueError(error_message(arg, "contains NaN or infinity"))
    if vmin < 0:
        raise ValueError(error_message(arg, "must be non-negative; its minimum is", f"{vmin:g}"))
    return sqnorm, vmax


def check_X(X, arg="X", n_threads=1, out_of_core=True):
    """Return (X, ‖X‖², max X): X as a float32/float64 ndarray (C or F contiguous, aligned)
    or a canonical CSR/CSC matrix (its arrays contiguous and aligned), or with
    ``out_of_core`` an X read a chunk at a time (_chunked: a memmap, an h5py or zarr
    array, ...) as a scanned Chunked; its one pass runs on up to ``n_threads`` threads.
    Sizes and sparse structure are checked before anything reads through them or
    allocates in proportion to them."""
    if sp.issparse(X):
        return _check_sparse_X(X, arg, n_threads)
    if out_of_core and is_out_of_core(X):
        if is_distributed(X):  # a Dask array with a distributed client: blocks stay there
            X = open_dask(X, arg, n_threads, _computation_dtype, check_shape)
        X = open_chunked(X, arg, n_threads, _computation_dtype, check_shape)
        return X, X.sqnorm, X.xmax
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(error_message(arg, "must be an array-like or a scipy.sparse matrix",
                                      got=type(X).__name__))
    if np.ma.is_masked(X):  # np.asarray would factorize the values under the mask
        raise ValueError(error_message(
            arg, "is a masked array with masked entries; NMF takes every entry as data "
            "(it has no missing values): pass X.filled(value)",
            got=f"{int(np.ma.count_masked(X))} masked"))
    X = _nullable_as_nan(X)
    try:
        X = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(error_message(arg, "could not be read as a 2-D array", got=str(exc)))
    if X.dtype == object:
        try:
            X = _missing_as_nan(X).astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(error_message(arg, "must hold real numbers", got="dtype object"))
    if X.ndim != 2:
        raise ValueError(error_message(arg, "must be a 2-D array", got=f"shape {X.shape}"))
    check_shape(X.shape, arg)
    dtype = _computation_dtype(X.dtype, arg)
    if X.dtype != dtype or not (X.flags.c_contiguous or X.flags.f_contiguous):
        X = _converted(X, dtype, arg, order="C")
    if not X.flags.aligned:  # e.g. a buffer unpickled at an odd offset (Dask does that)
        X = X.copy(order="K")
    return (X, *_scan(X, arg, n_threads))


def check_shape(shape, arg):
    """A matrix's shape (n, m) as the kernels can take it: neither empty nor beyond C ints;
    checked before anything is allocated in proportion to it."""
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(error_message(arg, "is empty", got=f"shape {shape}"))
    if max(shape) >= _INDEX_LIMIT:
        raise ValueError(error_message(
            arg, "has too many rows or columns: each of n, m must be below 2**31 (the "
            "kernels index them with C ints)", got=f"shape {shape}"))


def checked_sparse(X, arg):
    """A sparse X of any format as a CSR or CSC in its computation dtype, in the form the
    kernels take (canonical_sparse), its structure checked before anything reads
    through it."""
    dtype = check_sparse_structure(X, arg)
    given = X
    X = with_int_indices(X)  # (a new matrix, the kernels' own: not copied again)
    if X.format not in ("csr", "csc"):
        try:
            X = X.tocsr()
        except (ValueError, IndexError) as exc:  # a dok's key beyond its shape, say
            raise ValueError(error_message(arg, f"is a malformed {X.format.upper()} matrix",
                                           got=str(exc))) from None
        if given.format not in _INDEXED:  # lil, dok, dia: their CSR is checked instead
            _check_structure(X, arg)
    if X.dtype != dtype:
        X = _converted(X, dtype, arg)
    return canonical_sparse(X, X is given)


def with_int_indices(X):
    """X with int32/int64 index arrays: another integer type (uint64, int8, ...), which
    scipy's compiled routines refuse or mishandle, as a new matrix with int64 ones (the
    caller's X unchanged); X itself when they are already."""
    fmt = X.format
    names = {"csr": ("indices", "indptr"), "csc": ("indices", "indptr"),
             "bsr": ("indices", "indptr"), "coo": ("row", "col")}.get(fmt, ())
    if all(getattr(X, name).dtype in (np.int32, np.int64) for name in names):
        return X
    data = X.data.copy()  # its own: canonical_sparse may change it in place
    if fmt == "coo":
        return type(X)((data, (X.row.astype(np.int64), X.col.astype(np.int64))),
                       shape=X.shape)
    return type(X)((data, X.indices.astype(np.int64), X.indptr.astype(np.int64)),
                   shape=X.shape)


def _check_sparse_X(X, arg, n_threads):
    X = checked_sparse(X, arg)
    sqnorm, xmax = _scan(X.data, arg, n_threads) if X.data.size else (0.0, 0.0)
    return X, sqnorm, max(xmax, 0.0)


def check_sparse_structure(X, arg):
    """A sparse X's shape, and its index arrays where it has them (CSR, CSC, BSR, COO),
    before any conversion allocates in proportion to the shape or scipy reads through
    them (malformed indices make its conversions and reductions read and write out of
    bounds). Returns the computation dtype."""
    if X.ndim != 2:
        raise ValueError(error_message(arg, "must be 2-D", got=f"shape {X.shape}"))
    check_shape(X.shape, arg)
    dtype = _computation_dtype(X.dtype, arg)
    if X.format in _INDEXED:
        _check_structure(X, arg)
    return dtype


def _canonical(X):
    """Whether each row of a CSR (column of a CSC) has strictly increasing indices: read
    from the structure, not from scipy's cached flag (see first_unsorted)."""
    indptr, indices = X.indptr, X.indices
    if indptr.dtype != indices.dtype or indptr.dtype not in (np.int32, np.int64):
        indptr, indices = indptr.astype(np.int64), indices.astype(np.int64)
    return first_unsorted(indptr, indices) < 0


def canonical_sparse(X, given, keep_order=False):
    """A checked CSR or CSC X in the form the kernels take, copied only where it must
    change (never X itself when ``given``): duplicates summed (they would count twice in
    ‖X‖²), explicit zeros dropped (so that no sum over the stored entries and no decision
    by their count, accelerate's sweep cap, sees them), its arrays contiguous and
    aligned; with ``keep_order``, an X without duplicates keeps its entries in their
    order (scikit-learn's NNDSVD start sums them in that order), else each row sorted."""
    if not _canonical(X):
        Y = X.copy() if given or keep_order else X  # sum_duplicates sorts too
        # (scipy's sum_duplicates and sort_indices skip the work where its cached flags
        # say it is done: they may be stale)
        Y.has_sorted_indices = Y.has_canonical_format = False
        Y.sum_duplicates()
        if not keep_order or Y.nnz < X.nnz:
            X, given = Y, False
    if np.count_nonzero(X.data) < X.data.shape[0]:
        X = X.copy() if given else X
        X.eliminate_zeros()
    if not all(a.flags.aligned and a.flags.c_contiguous
               for a in (X.data, X.indices, X.indptr)):
        X = X.copy()  # fresh arrays: contiguous and aligned
    return X


def _check_structure(X, arg):
    """X's index arrays consistent with its shape and with each other, in one pass over
    each (no temporaries): a ValueError naming what is wrong, never a read out of bounds."""
    n, m = X.shape
    fmt = X.format

    def bad(what, got):
        return ValueError(error_message(arg, f"is a malformed {fmt.upper()} matrix: {what}",
                                        got=got))

    data = np.asarray(X.data)
    if data.ndim != (3 if fmt == "bsr" else 1):
        raise bad(f"its data must be a {3 if fmt == 'bsr' else 1}-D array",
                  f"shape {data.shape}")
    if fmt == "coo":
        for name, bound in (("row", n), ("col", m)):
            idx = _index_array(getattr(X, name), name, bad)
            if idx.shape[0] != data.shape[0]:
                raise bad(f"its {name} and data arrays must have the same length",
                          f"{idx.shape[0]} and {data.shape[0]}")
            at = first_outside(idx, bound)
            if at >= 0:
                raise bad(f"its {name} indices must be in [0, {bound})",
                          f"{name}[{at}] = {idx[at]}")
        return
    if fmt == "bsr":
        R, C = X.blocksize
        if n % R or m % C or data.shape[1:] != (R, C):
            raise bad(f"its blocks ({R}x{C}) must tile its shape {X.shape} and its data",
                      f"data of shape {data.shape}")
        major, minor, kind = n // R, m // C, "block column"
    else:
        major, minor = (n, m) if fmt == "csr" else (m, n)
        kind = "column" if fmt == "csr" else "row"
    indptr = _index_array(X.indptr, "indptr", bad)
    indices = _index_array(X.indices, "indices", bad)
    nnz = indices.shape[0]
    if indptr.shape[0] != major + 1:
        raise bad(f"its indptr must have {major + 1} entries", f"{indptr.shape[0]}")
    if data.shape[0] != nnz:
        raise bad("its data and indices arrays must have the same length",
                  f"{data.shape[0]} and {nnz}")
    if indptr[0] != 0:
        raise bad("its indptr must start at 0", f"indptr[0] = {indptr[0]}")
    at = first_decrease(indptr)
    if at >= 0:
        raise bad("its indptr must be non-decreasing",
                  f"indptr[{at + 1}] = {indptr[at + 1]} < indptr[{at}] = {indptr[at]}")
    if indptr[-1] != nnz:
        raise bad(f"its indptr must end at the number of stored entries ({nnz})",
                  f"indptr[-1] = {indptr[-1]}")
    at = first_outside(indices, minor)
    if at >= 0:
        raise bad(f"its {kind} indices must be in [0, {minor})", f"indices[{at}] = {indices[at]}")


def _index_array(a, name, bad):
    """``a`` as a 1-D int32/int64 array (a copy only for another integer type)."""
    a = np.asarray(a)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise bad(f"its {name} must be a 1-D integer array", f"{a.dtype} of shape {a.shape}")
    if a.dtype not in (np.int32, np.int64):
        a = a.astype(np.int64)  # values beyond int64 wrap negative: still refused
    return a


def _check_choice(value, arg, choices, rule):
    """A name among ``choices``: another string is a ValueError, anything else a
    TypeError, each listing the choices."""
    if not isinstance(value, str):
        raise TypeError(error_message(arg, rule, _choices(choices), got=f"{value!r}"))
    if value not in choices:
        raise ValueError(error_message(arg, rule, _choices(choices), got=f"{value!r}"))
    return str(value)  # (a str subclass, NumPy's str_ say, as the kernels take it)


def _check_flag(value, arg):
    """A switch: a bool (NumPy's too) or an int (verbose levels, 0 and 1), as its truth
    value; anything else (a string such as "no", None, a float) is a TypeError rather than
    its truth value."""
    if not isinstance(value, (bool, np.bool_, numbers.Integral)):
        raise TypeError(error_message(arg, "must be a bool", got=f"{value!r}"))
    return bool(value)


def _check_int(value, arg, low, high):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(error_message(arg, "must be an int", got=f"{value!r}"))
    if value < low:
        raise ValueError(error_message(arg, f"must be >= {low}", got=f"{value!r}"))
    if value > high:
        raise ValueError(error_message(arg, f"must be an int in [{low}, {high}]",
                                       got=f"{value!r}"))
    return int(value)


def _check_real(value, arg, low=0.0, high=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(error_message(arg, "must be a real number", got=f"{value!r}"))
    try:
        value = float(value)
    except OverflowError:  # an int beyond any float
        raise ValueError(error_message(arg, "must be finite", got="an int beyond float64's "
                                       f"range ({len(str(abs(value)))} digits)")) from None
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        bounds = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise ValueError(error_message(arg, "must be", bounds, got=f"{value!r}"))
    return value


def _check_factor(F, arg, shape, dtype, shape_hint, order="C"):
    if F is None:
        raise ValueError(error_message(arg, "must be given", shape_hint))
    if sp.issparse(F):
        raise TypeError(error_message(arg, "must be a dense array", got="a sparse matrix"))
    try:
        F = _missing_as_nan(np.asarray(_nullable_as_nan(F)))
    except Exception as exc:
        raise ValueError(error_message(arg, "could not be read as an array", got=str(exc)))
    _computation_dtype(F.dtype if F.dtype != object else np.dtype(np.float64), arg)
    if F.shape != shape:
        raise ValueError(error_message(arg, f"must have shape {shape} {shape_hint}",
                                       got=f"{F.shape}"))
    with np.errstate(over="ignore"):
        G = np.array(F, dtype=dtype, order=order, copy=True)
        if G.dtype != F.dtype and not np.isfinite(G).all():
            wide = np.asarray(F, dtype=np.float64)
            if np.isfinite(wide).all():  # finite values beyond X's dtype
                raise ValueError(error_message(
                    arg, f"has values beyond {dtype.name}'s range (X's dtype, the "
                    "computation's)", got=f"largest magnitude {np.max(np.abs(wide)):.4g}"))
    _scan(G, arg)
    return G


def check_random_state(random_state):
    """None | int | Generator | RandomState -> the same, checked (used lazily by _init)."""
    if random_state is None or isinstance(random_state, (np.random.Generator,
                                                         np.random.RandomState)):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if not 0 <= random_state < 2**32:
            raise ValueError(error_message("random_state", "must be an int in [0, 2**32 - 1]",
                                           got=f"{random_state!r}"))
        return int(random_state)
    raise TypeError(error_message(
        "random_state", "must be None, an int, a numpy.random.Generator or RandomState",
        got=type(random_state).__name__))


def check_options(n_components, *, solver, init, update_H, max_iter, tol, beta_loss,
                  alpha_W, alpha_H, l1_ratio, shuffle, verbose, n_threads, accelerate,
                  callback, W=None, H=None, random_state=None, gather_W=True):
    """The arguments of ``fastnmf.nmf`` that depend neither on X nor on the call's factors
    and generator, checked: a dict for ``check_nmf_args(options=...)`` (``nmf_batch``
    checks them once for all its items; W, H, random_state and gather_W are taken and
    left to check_nmf_args)."""
    solver = _check_choice(solver, "solver", SOLVERS, "must be one of")
    if init is not None:
        init = _check_choice(init, "init", INITS, "must be None or one of")
    update_H, shuffle, verbose, accelerate = (
        _check_flag(value, name) for value, name in ((update_H, "update_H"),
                                                      (shuffle, "shuffle"),
                                                      (verbose, "verbose"),
                                                      (accelerate, "accelerate")))
    beta = _check_beta_loss(beta_loss, solver)
    if accelerate and not _registry.SOLVERS[solver].accelerate:
        takes = " or ".join(f"{s.name!r}" for s in _registry.SOLVERS.values() if s.accelerate)
        raise ValueError(error_message(
            "accelerate", f"applies to solver={takes} only (repeated HALS sweeps); solver "
            f"{solver!r} has no such option", got=f"{accelerate!r}"))
    if callback is not None and not callable(callback):
        raise TypeError(error_message("callback", "must be None or a callable",
                                      got=type(callback).__name__))
    n_threads = resolve_threads(n_threads, "n_threads")
    k = _check_int(n_components, "n_components", 1, _INDEX_LIMIT - 1)
    max_iter = _check_int(max_iter, "max_iter", 1, _MAX_ITER)
    tol = _check_real(tol, "tol")
    alpha_W = _check_real(alpha_W, "alpha_W")
    alpha_H = alpha_W if (isinstance(alpha_H, str) and alpha_H == "same") else alpha_H
    if isinstance(alpha_H, str):
        raise ValueError(error_message("alpha_H", "must be 'same' or a real number >= 0",
                                       got=f"{alpha_H!r}"))
    alpha_H = _check_real(alpha_H, "alpha_H")
    l1_ratio = _check_real(l1_ratio, "l1_ratio", 0.0, 1.0)
    return dict(solver=solver, init=init, beta=beta, beta_loss=beta_loss, k=k,
                update_H=update_H, max_iter=max_iter, tol=tol, alpha_W=alpha_W,
                alpha_H=alpha_H, l1_ratio=l1_ratio, shuffle=shuffle, verbose=verbose,
                n_threads=n_threads, accelerate=accelerate, callback=callback)


def check_nmf_args(X, n_components, *, W, H, random_state, gather_W=True, out_of_core=True,
                   options=None, **kwargs):
    """Validate the arguments of ``fastnmf.nmf``; return a :class:`Problem`. Without
    ``out_of_core`` (a batch's items, the reference), an X that ``fastnmf.nmf`` reads a
    chunk at a time is read into memory instead. ``options``: check_options's dict for
    the other arguments (``kwargs``), when they were checked already."""
    o = check_options(n_components, **kwargs) if options is None else options
    solver, init, beta, k, n_threads = o["solver"], o["init"], o["beta"], o["k"], o["n_threads"]
    if out_of_core and is_out_of_core(X) and beta != 2:
        raise ValueError(error_message(
            "beta_loss", "other than 'frobenius' needs X in memory (its updates read X with "
            "WH entry by entry); X is read a chunk at a time here (a memmap, an HDF5, zarr "
            "or Dask array): pass np.asarray(X) to factorize it in memory",
            got=f"{o['beta_loss']!r}"))
    gather_W = _check_flag(gather_W, "gather_W")
    if not gather_W and not (out_of_core and is_distributed(X)):
        raise ValueError(error_message(
            "gather_W", "set to False keeps W on the cluster as a Dask array: it needs X as "
            "a Dask array while a distributed client is active (fastnmf.nmf; not nmf_batch's "
            "items nor the reference)", got=f"X of type {type(X).__name__}"))
    X, sqnorm, xmax = check_X(X, n_threads=n_threads, out_of_core=out_of_core)
    if beta <= 0 and has_zeros(X):
        raise ValueError(error_message(
            "X", f"contains zeros, which beta_loss={o['beta_loss']!r} (β <= 0) cannot fit (the "
            "divergence is infinite there); add a small value to X or use β > 0"))
    n, m = X.shape
    _check_size(n, m, k, X.dtype)
    alpha_W, alpha_H, l1_ratio = o["alpha_W"], o["alpha_H"], o["l1_ratio"]
    random_state = check_random_state(random_state)
    dtype = X.dtype
    hint = f"for X of shape {X.shape} and n_components={k}"
    update_H = o["update_H"]
    if not update_H:
        H = _check_factor(H, "H", (k, m), dtype, f"when update_H=False ({hint})")
        if W is not None:
            W = _check_factor(W, "W", (n, k), dtype, hint, order="F")
        init = "custom" if W is not None else None
    elif init == "custom":
        W = _check_factor(W, "W", (n, k), dtype, f"when init='custom' ({hint})", order="F")
        H = _check_factor(H, "H", (k, m), dtype, f"when init='custom' ({hint})")
    else:
        if W is not None or H is not None:
            warnings.warn("W and H are used only with init='custom' (or H with "
                          "update_H=False); the given ones are ignored.", RuntimeWarning,
                          stacklevel=3)
        W = H = None
        if init is None:
            init = "nndsvda" if k <= min(n, m) else "random"
        elif init != "random" and k > min(n, m):
            raise ValueError(error_message(
                "n_components", f"must be <= min(n, m) = {min(n, m)} with init={init!r}",
                "(use init='random' for more components)", got=f"{k}"))
    prob = Problem(
        X=X, sqnorm=sqnorm, xmax=xmax, beta=beta, n=n, m=m, k=k, dtype=dtype, solver=solver, init=init, W=W, H=H,
        update_H=update_H, max_iter=o["max_iter"], tol=o["tol"],
        l1_W=m * alpha_W * l1_ratio, l2_W=m * alpha_W * (1.0 - l1_ratio),
        l1_H=n * alpha_H * l1_ratio, l2_H=n * alpha_H * (1.0 - l1_ratio),
        random_state=random_state, shuffle=o["shuffle"], verbose=o["verbose"],
        n_threads=n_threads, accelerate=o["accelerate"], callback=o["callback"],
        gather_W=gather_W,
    )
    _check_scale(prob, {"l1_W": ("alpha_W", alpha_W, m * l1_ratio),
                        "l2_W": ("alpha_W", alpha_W, m * (1.0 - l1_ratio)),
                        "l1_H": ("alpha_H", alpha_H, n * l1_ratio),
                        "l2_H": ("alpha_H", alpha_H, n * (1.0 - l1_ratio))})
    return prob


def _check_size(n, m, k, dtype):
    """n_components within what the factors and the workspace can address (sizes computed
    in C stay far from overflowing; numpy refuses what does not fit in memory)."""
    P, size = max(n, m), dtype.itemsize

    def need(k):  # bytes, at least: W, H, three k×k and six k×P arrays of the workspace
        return ((n + m) * k + 8 * k * k + 6 * k * P) * size

    if need(k) > _MAX_BYTES:
        most = int((-(6 * P + n + m) + math.sqrt((6 * P + n + m) ** 2 + 32 * _MAX_BYTES / size))
                   / 16)
        while need(most) > _MAX_BYTES:
            most -= 1
        raise ValueError(error_message(
            "n_components", f"is too large for X of shape {(n, m)}: the factors and the "
            f"workspace would take {need(k) / 2**40:.3g} TiB; it must be an int in [1, {most}]",
            got=f"{k}"))


def _check_scale(prob, coefficients):
    """What the scaling of an X of extreme scale (Problem.scale_exponent) cannot absorb:
    a regularization term beyond the computation dtype, an X whose errors are beyond
    float64. ``coefficients``: for each term, (argument, its value, term / value)."""
    e = prob.scale_exponent()
    largest = float(np.finfo(prob.dtype).max)
    for name, value in prob.regularization(e).items():
        arg, alpha, coef = coefficients[name]
        if value > largest:  # the term is coef · alpha · 2^-shift: the most alpha can be
            shift = prob.regularization_shift(name, e)
            most = 2.0 ** (math.log2(largest) - math.log2(coef) + shift)
            raise ValueError(error_message(
                arg, f"is too large for {prob.dtype.name} computation (its "
                f"{name[:2].upper()} term, {coef:g} · {arg}"
                f"{f' · 2**{-shift:g}' if shift else ''}, exceeds {prob.dtype.name}'s "
                f"largest value); it must be in [0, {most:.4g}]", got=f"{alpha!r}"))
    if prob.dtype == np.float64 and prob.beta == 2 and prob.xmax > 0:
        log2_norm = _log2_norm(prob.X, prob.sqnorm, prob.xmax)
        if log2_norm > math.log2(largest * _NORM_HEADROOM):
            raise ValueError(error_message(
                "X", "is too large for float64: its errors (history, reconstruction_err) "
                "are of the order of ‖X‖_F, which is within a factor "
                f"{1 / _NORM_HEADROOM:g} of float64's largest value; rescale X",
                got=f"‖X‖_F = 2**{log2_norm:.1f}"))


def most_threads():
    """The largest thread count asked for that is taken: far more threads than the
    machine's CPUs only fail (or crash OpenMP)."""
    return max(64, 4 * (os.cpu_count() or 1))


def resolve_threads(value, name):
    """The thread count of ``value``: None → ``default_threads()`` (OMP_NUM_THREADS,
    threadpoolctl's OpenMP limit, the CPU quota and the affinity mask, as scikit-learn's
    OpenMP code decides); a positive int as it is; a negative int counts back from the
    default count (-1 = the default). 1 in a forked child whatever it says (see _threads)."""
    if value is None:
        return default_threads()
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(error_message(name, "must be None or an int", got=type(value).__name__))
    most = most_threads()
    if not -most <= value <= most:
        raise ValueError(error_message(name, f"must be None or a non-zero int in [-{most}, "
                                       f"{most}] (at least 64, at most 4 × the CPUs)",
                                       got=f"{value}"))
    if value == 0:
        raise ValueError(error_message(name, "must be None, a positive int, or a negative int "
                                       "counting back from the available threads", got="0"))
    if forked():
        return 1
    return int(value) if value > 0 else max(1, default_threads() + 1 + int(value))


def _check_beta_loss(beta_loss, solver):
    """The β of ``beta_loss`` (2 Frobenius, 1 Kullback-Leibler, 0 Itakura-Saito, or a float)."""
    if isinstance(beta_loss, str):
        if beta_loss not in BETA_LOSSES:
            raise ValueError(error_message("beta_loss", "must be a float or one of",
                                           _choices(BETA_LOSSES), got=f"{beta_loss!r}"))
        beta = _registry.LOSSES[beta_loss].beta
    elif isinstance(beta_loss, numbers.Real) and not isinstance(beta_loss, bool):
        beta = float(beta_loss)
        if not math.isfinite(beta):
            raise ValueError(error_message("beta_loss", "must be finite",
                                           got=f"{beta_loss!r}"))
    else:
        raise TypeError(error_message("beta_loss", "must be a float or one of",
                                      _choices(BETA_LOSSES), got=f"{beta_loss!r}"))
    if _registry.loss_of_beta(beta) not in _registry.SOLVERS[solver].losses:
        serves = " or ".join(f"{s.name!r}" for s in _registry.SOLVERS.values()
                             if _registry.loss_of_beta(beta) in s.losses)
        raise ValueError(error_message(
            "beta_loss", f"other than 'frobenius' (2) needs solver={serves} (solver "
            f"{solver!r} minimizes the Frobenius norm)", got=f"{beta_loss!r}"))
    return beta


def _log2_norm(X, sqnorm, xmax):
    """log2 ‖X‖_F: from ‖X‖² where that did not overflow, else from a pass over X
    divided by its maximum (only for an X of norm beyond 1e154)."""
    if math.isfinite(sqnorm):
        return 0.5 * math.log2(sqnorm) if sqnorm > 0 else -math.inf
    if isinstance(X, Chunked):
        total = 0.0
        for c in range(X.count):
            total += float(np.square(X.values(X.read(c)) / xmax).sum())
        X.close()
        return math.log2(xmax) + 0.5 * math.log2(total)
    values = X.data if sp.issparse(X) else X.reshape(-1, order="A")
    step = 2**24  # pieces: no temporary the size of X
    total = math.fsum(float(np.square(values[i:i + step] / xmax).sum())
                      for i in range(0, values.shape[0], step))
    return math.log2(xmax) + 0.5 * math.log2(total)


def has_zeros(X):
    """Whether X (checked: a canonical sparse matrix or an array) holds a zero."""
    if sp.issparse(X):
        return X.nnz < X.shape[0] * X.shape[1] or bool((X.data == 0).any())
    return bool(X.min() == 0)
