"""The result record of a factorization and the kernels' status codes."""

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
STATUS_NO_MEMORY = 5

_STATUS_MESSAGES = {
    STATUS_NONFINITE: (
        FloatingPointError,
        "the {solver!r} solver produced a non-finite value at iteration {n_iter}: X's "
        "values are too large for {dtype} arithmetic; rescale X (or use float64)",
    ),
    STATUS_OVERFLOW: (
        OverflowError,
        "X is too large to factorize in {dtype}: ‖X‖² overflows; rescale X",
    ),
    STATUS_NO_MEMORY: (
        MemoryError,
        "the {solver!r} solver ran out of memory for its history of errors at iteration "
        "{n_iter}",
    ),
}


def raise_for_status(status, *, solver, n_iter, dtype):
    """Turn a kernel's non-zero status code into the matching exception."""
    if status == STATUS_OK:
        return
    exc, msg = _STATUS_MESSAGES.get(
        status, (RuntimeError, "the {solver!r} kernel returned the unknown status %d" % status)
    )
    raise exc(msg.format(solver=solver, n_iter=n_iter, dtype=np.dtype(dtype).name))
