"""The result record of a factorization and the kernels' status codes."""

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["NMFResult", "raise_for_status"]


@dataclass(frozen=True, slots=True, repr=False)
class NMFResult:
    """The outcome of one factorization ``X ≈ W @ H``; immutable.

    Attributes
    ----------
    W : ndarray of shape (n, k)
        Non-negative left factor, in the dtype of the computation (a dask.array with
        ``gather_W=False``: its blocks stay on the cluster's workers).
    H : ndarray of shape (k, m)
        Non-negative right factor.
    n_iter : int
        Iterations performed.
    converged : bool
        True when the ``tol`` criterion held at the last convergence check.
    reconstruction_err : float
        ``‖X − WH‖_F`` (not squared) at the end, as scikit-learn's ``reconstruction_err_``.
    history : ndarray of shape (n_checks + 1,), float64
        ``‖X − WH‖_F`` at the start and after each convergence check.
    solver : str
        The solver used.
    """

    W: np.ndarray
    H: np.ndarray
    n_iter: int
    converged: bool
    reconstruction_err: float
    history: np.ndarray
    solver: str

    def __post_init__(self):
        for name in ("W", "H", "history"):
            value = getattr(self, name)
            if isinstance(value, np.ndarray):  # (not a Dask W: gather_W=False)
                value.flags.writeable = False

    def __reduce__(self):
        # Rebuild through the constructor so that the arrays are read-only again.
        return (NMFResult, (self.W, self.H, self.n_iter, self.converged,
                            self.reconstruction_err, self.history, self.solver))

    def __repr__(self):
        n, k = self.W.shape
        m = self.H.shape[1]
        return (
            f"NMFResult(solver={self.solver!r}, shape=({n}, {m}), n_components={k}, "
            f"dtype={self.W.dtype}, n_iter={self.n_iter}, converged={self.converged}, "
            f"reconstruction_err={self.reconstruction_err:.6g})"
        )


# Status codes returned by the nogil cores (see _kernels/_common.pxd).
STATUS_OK = 0
STATUS_NONFINITE = 1
STATUS_OVERFLOW = 2
STATUS_STOPPED = 4
STATUS_NO_MEMORY = 5

_STATUS_MESSAGES = {
    STATUS_NONFINITE: (
        FloatingPointError,
        "the {solver!r} solver produced a non-finite value at iteration {n_iter}: {cause}",
    ),
    STATUS_OVERFLOW: (
        OverflowError,
        "X is too large to factorize in {dtype}: ‖X‖² overflows; rescale X",
    ),
    STATUS_STOPPED: (
        RuntimeError,
        "the {solver!r} solver was stopped at iteration {n_iter}: its batch ended (an "
        "interrupt, or a failure of its executor)",
    ),
    STATUS_NO_MEMORY: (
        MemoryError,
        "the {solver!r} solver ran out of memory for its history of errors at iteration "
        "{n_iter}",
    ),
}


def raise_for_status(status, prob, n_iter):
    """Turn the status code of a kernel that solved ``prob`` (a Problem) into the matching
    exception."""
    if status == STATUS_OK:
        return
    exc, msg = _STATUS_MESSAGES.get(
        status, (RuntimeError, "the {solver!r} kernel returned the unknown status %d" % status)
    )
    dtype = np.dtype(prob.dtype).name
    cause = _overflow_cause(prob, dtype) if status == STATUS_NONFINITE else ""
    raise exc(msg.format(solver=prob.solver, n_iter=n_iter, dtype=dtype, cause=cause))


# How far (powers of two) a given start's scale, max(W) · max(H), may lie from X's largest
# entry before a non-finite value is put down to it.
_START_SPREAD = 64


def _overflow_cause(prob, dtype):
    """What most likely took ``prob``'s arithmetic beyond its dtype: X itself is rescaled
    into range beforehand (Problem.scale_exponent) and the regularization checked
    (_validation._check_scale), which leaves a given start far from X's scale, a β far
    from 0, 1 and 2, or values spread over more orders of magnitude than the dtype
    holds."""
    given = [(name, F) for name, F in (("W", prob.W), ("H", prob.H)) if F is not None]
    tops = {name: float(np.max(F)) for name, F in given}
    if tops and prob.xmax > 0 and min(tops.values()) > 0:
        log2_product = sum(math.log2(top) for top in tops.values()) * 2 / len(tops)
        if abs(log2_product - math.log2(prob.xmax)) > _START_SPREAD:
            names = " and ".join(tops)
            largest = ", ".join(f"{name} {top:.3g}" for name, top in tops.items())
            return (f"the given {names} (largest entries: {largest}) are far from the scale "
                    f"of X (largest entry {prob.xmax:.3g}), and their products left "
                    f"{dtype}'s range; rescale them to X's scale")
    if prob.beta not in (0.0, 1.0, 2.0):
        return (f"beta_loss={prob.beta!r} raises X and WH to powers beyond {dtype}'s range; "
                "use a β nearer 0, 1 or 2")
    if dtype == "float32":
        return ("float32 arithmetic overflowed (X's values or the regularization span more "
                "than float32 holds); use float64")
    return "float64 arithmetic overflowed (X's values or the regularization span too much)"
