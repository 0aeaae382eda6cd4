"""Every check of fastnmf's arguments, and the one helper that words their errors.

``check_nmf_args`` turns the user's arguments into a :class:`Problem`: arrays in the
computation dtype and layout the kernels take, the solver and init resolved, the
regularization split into L1/L2 parts for W and H. Nothing downstream re-checks.
"""

import math
import sys
import numbers
import warnings

import numpy as np
import scipy.sparse as sp

from ._kernels._common import scan
from ._threads import default_threads, forked

__all__ = ["SOLVERS", "INITS", "BETA_LOSSES", "Problem", "check_nmf_args", "error_message",
           "resolve_threads"]

SOLVERS = ("cd", "als", "mu", "bpp")
INITS = ("random", "nndsvd", "nndsvda", "nndsvdar", "custom")
BETA_LOSSES = ("frobenius", "kullback-leibler", "itakura-saito")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


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
        "verbose", "n_threads", "accelerate",
    )

    def __init__(self, **kw):
        for name in self.__slots__:
            setattr(self, name, kw[name])

    def scale_exponent(self):
        """e (a multiple of 4) such that X · 2⁻ᵉ has its maximum near 1, when X's scale is
        extreme for its dtype (products could overflow, or NNDSVD's absolute threshold
        would zero everything); else 0. Scaling by a power of two is exact."""
        high = 100 if self.dtype == np.float64 else 40
        if self.xmax == 0 or -40 <= math.log2(self.xmax) <= high:
            return 0
        return 4 * round(math.log2(self.xmax) / 4)

    def scaled(self, e):
        """This problem with X · 2⁻ᵉ: the solution is (W, H) · 2^(−e/2), the regularization
        is rescaled to match (the L1 terms by 2^(−3e/2), the L2 terms by 2⁻ᵉ)."""
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
                  l1_W=_ldexp(self.l1_W, -3 * e // 2), l1_H=_ldexp(self.l1_H, -3 * e // 2),
                  l2_W=_ldexp(self.l2_W, -e), l2_H=_ldexp(self.l2_H, -e))
        return Problem(**kw)


def _ldexp(value, exponent):
    """value · 2^exponent, capped at the largest float (a regularization that large just
    means: all zero)."""
    try:
        return math.ldexp(value, exponent)
    except OverflowError:
        return sys.float_info.max


def _computation_dtype(dtype, arg):
    if dtype in _FLOATS:
        return dtype
    if dtype.kind in "biuf":
        return np.dtype(np.float64)
    raise TypeError(error_message(arg, "must hold real numbers", got=f"dtype {dtype}"))


def _scan(values, arg, n_threads=1):
    """One pass over a contiguous buffer, checked: (‖·‖² in float64, maximum)."""
    vmin, vmax, finite, sqnorm = scan(values.reshape(-1, order="A"), n_threads)
    if not finite:
        raise ValueError(error_message(arg, "contains NaN or infinity"))
    if vmin < 0:
        raise ValueError(error_message(arg, "must be non-negative; its minimum is", f"{vmin:g}"))
    return sqnorm, vmax


def check_X(X, arg="X", n_threads=1):
    """Return (X, ‖X‖², max X): X as a float32/float64 ndarray (C or F contiguous) or a
    canonical CSR/CSC matrix; its one pass runs on up to ``n_threads`` threads."""
    if sp.issparse(X):
        if X.ndim != 2:
            raise ValueError(error_message(arg, "must be 2-D", got=f"shape {X.shape}"))
        dtype = _computation_dtype(X.dtype, arg)
        if X.format not in ("csr", "csc"):
            X = X.tocsr()
        if X.dtype != dtype:
            X = X.astype(dtype)
        if not X.has_canonical_format:  # duplicates would count twice in ‖X‖²
            X = X.copy()
            X.sum_duplicates()
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(error_message(arg, "is empty", got=f"shape {X.shape}"))
        data = np.ascontiguousarray(X.data)
        sqnorm, xmax = _scan(data, arg, n_threads) if data.size else (0.0, 0.0)
        return X, sqnorm, max(xmax, 0.0)
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(error_message(arg, "must be an array-like or a scipy.sparse matrix",
                                      got=type(X).__name__))
    try:
        X = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(error_message(arg, "could not be read as a 2-D array", got=str(exc)))
    if X.dtype == object:
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(error_message(arg, "must hold real numbers", got="dtype object"))
    if X.ndim != 2:
        raise ValueError(error_message(arg, "must be a 2-D array", got=f"shape {X.shape}"))
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(error_message(arg, "is empty", got=f"shape {X.shape}"))
    dtype = _computation_dtype(X.dtype, arg)
    if X.dtype != dtype or not (X.flags.c_contiguous or X.flags.f_contiguous):
        X = np.asarray(X, dtype=dtype, order="C")
    return (X, *_scan(X, arg, n_threads))


def _check_int(value, arg, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(error_message(arg, "must be an int", got=f"{value!r}"))
    if value < low:
        raise ValueError(error_message(arg, f"must be >= {low}", got=f"{value!r}"))
    return int(value)


def _check_real(value, arg, low=0.0, high=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(error_message(arg, "must be a real number", got=f"{value!r}"))
    value = float(value)
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        bounds = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise ValueError(error_message(arg, "must be", bounds, got=f"{value!r}"))
    return value


def _check_factor(F, arg, shape, dtype, shape_hint):
    if F is None:
        raise ValueError(error_message(arg, "must be given", shape_hint))
    if sp.issparse(F):
        raise TypeError(error_message(arg, "must be a dense array", got="a sparse matrix"))
    try:
        F = np.asarray(F)
    except Exception as exc:
        raise ValueError(error_message(arg, "could not be read as an array", got=str(exc)))
    _computation_dtype(F.dtype if F.dtype != object else np.dtype(np.float64), arg)
    if F.shape != shape:
        raise ValueError(error_message(arg, f"must have shape {shape} {shape_hint}",
                                       got=f"{F.shape}"))
    F = np.array(F, dtype=dtype, order="C", copy=True)
    _scan(F, arg)
    return F


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


def check_nmf_args(X, n_components, *, solver, init, W, H, update_H, max_iter, tol,
                   beta_loss, alpha_W, alpha_H, l1_ratio, random_state, shuffle, verbose,
                   n_threads, accelerate):
    """Validate the arguments of ``fastnmf.nmf``; return a :class:`Problem`."""
    if not isinstance(solver, str) or solver not in SOLVERS:
        raise ValueError(error_message("solver", "must be one of", _choices(SOLVERS),
                                       got=f"{solver!r}"))
    if init is not None and (not isinstance(init, str) or init not in INITS):
        raise ValueError(error_message("init", "must be None or one of", _choices(INITS),
                                       got=f"{init!r}"))
    beta = _check_beta_loss(beta_loss, solver)
    if accelerate and solver != "cd":
        raise ValueError(error_message(
            "accelerate", f"applies to solver='cd' only (repeated HALS sweeps); solver "
            f"{solver!r} has no such option", got=f"{accelerate!r}"))
    n_threads = resolve_threads(n_threads, "n_threads")
    X, sqnorm, xmax = check_X(X, n_threads=n_threads)
    if beta <= 0 and _has_zeros(X):
        raise ValueError(error_message(
            "X", f"contains zeros, which beta_loss={beta_loss!r} (β <= 0) cannot fit (the "
            "divergence is infinite there); add a small value to X or use β > 0"))
    n, m = X.shape
    k = _check_int(n_components, "n_components", 1)
    max_iter = _check_int(max_iter, "max_iter", 1)
    tol = _check_real(tol, "tol")
    alpha_W = _check_real(alpha_W, "alpha_W")
    alpha_H = alpha_W if (isinstance(alpha_H, str) and alpha_H == "same") else alpha_H
    if isinstance(alpha_H, str):
        raise ValueError(error_message("alpha_H", "must be 'same' or a real number >= 0",
                                       got=f"{alpha_H!r}"))
    alpha_H = _check_real(alpha_H, "alpha_H")
    l1_ratio = _check_real(l1_ratio, "l1_ratio", 0.0, 1.0)
    random_state = check_random_state(random_state)
    dtype = X.dtype
    hint = f"for X of shape {X.shape} and n_components={k}"
    update_H = bool(update_H)
    if not update_H:
        H = _check_factor(H, "H", (k, m), dtype, f"when update_H=False ({hint})")
        if W is not None:
            W = _check_factor(W, "W", (n, k), dtype, hint)
        init = "custom" if W is not None else None
    elif init == "custom":
        W = _check_factor(W, "W", (n, k), dtype, f"when init='custom' ({hint})")
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
    return Problem(
        X=X, sqnorm=sqnorm, xmax=xmax, beta=beta, n=n, m=m, k=k, dtype=dtype, solver=solver, init=init, W=W, H=H,
        update_H=update_H, max_iter=max_iter, tol=tol,
        l1_W=m * alpha_W * l1_ratio, l2_W=m * alpha_W * (1.0 - l1_ratio),
        l1_H=n * alpha_H * l1_ratio, l2_H=n * alpha_H * (1.0 - l1_ratio),
        random_state=random_state, shuffle=bool(shuffle), verbose=bool(verbose),
        n_threads=n_threads, accelerate=bool(accelerate),
    )


def resolve_threads(value, name):
    """The thread count of ``value``: None → ``default_threads()`` (OMP_NUM_THREADS,
    threadpoolctl's OpenMP limit, the CPU quota and the affinity mask, as scikit-learn's
    OpenMP code decides); a positive int as it is; a negative int counts back from the
    default count (-1 = the default). 1 in a forked child whatever it says (see _threads)."""
    if value is None:
        return default_threads()
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(error_message(name, "must be None or an int", got=type(value).__name__))
    if value == 0:
        raise ValueError(error_message(name, "must be None, a positive int, or a negative int "
                                       "counting back from the available threads", got="0"))
    if forked():
        return 1
    return int(value) if value > 0 else max(1, default_threads() + 1 + int(value))


_BETA_VALUES = {"frobenius": 2.0, "kullback-leibler": 1.0, "itakura-saito": 0.0}


def _check_beta_loss(beta_loss, solver):
    """The β of ``beta_loss`` (2 Frobenius, 1 Kullback-Leibler, 0 Itakura-Saito, or a float)."""
    if isinstance(beta_loss, str):
        if beta_loss not in BETA_LOSSES:
            raise ValueError(error_message("beta_loss", "must be a float or one of",
                                           _choices(BETA_LOSSES), got=f"{beta_loss!r}"))
        beta = _BETA_VALUES[beta_loss]
    elif isinstance(beta_loss, numbers.Real) and not isinstance(beta_loss, bool):
        beta = float(beta_loss)
        if not math.isfinite(beta):
            raise ValueError(error_message("beta_loss", "must be finite",
                                           got=f"{beta_loss!r}"))
    else:
        raise TypeError(error_message("beta_loss", "must be a float or one of",
                                      _choices(BETA_LOSSES), got=f"{beta_loss!r}"))
    if beta != 2 and solver != "mu":
        raise ValueError(error_message(
            "beta_loss", f"other than 'frobenius' (2) needs solver='mu' (solver {solver!r} "
            "minimizes the Frobenius norm)", got=f"{beta_loss!r}"))
    return beta


def _has_zeros(X):
    if sp.issparse(X):
        return X.nnz < X.shape[0] * X.shape[1] or bool((X.data == 0).any())
    return bool(X.min() == 0)
