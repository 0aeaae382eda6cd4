"""The iteration loop, products, loss and sweep order shared by the reference solvers.

Twin of ``_kernels/_common.pyx`` and ``_kernels/_solve.pyx``: the same steps in the same
order, in NumPy. Factors are handled component-major like the kernels do: F = Wᵀ (k × n,
a view of W) and H (k × m), so one half-step function serves both factors.
"""

import math

import numpy as np
import scipy.sparse as sp

from .._registry import SOLVERS as _ENTRIES

__all__ = ["alternate", "hals_sweep", "x_entries", "SplitMix64"]

_MASK = (1 << 64) - 1


class SplitMix64:
    """The kernels' sweep-order generator (Steele, Lea & Flood 2014), in Python ints."""

    def __init__(self, seed):
        self.state = seed & _MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def order(self, k, shuffle):
        """0..k-1, or its Fisher–Yates shuffle."""
        perm = list(range(k))
        if shuffle:
            for i in range(k - 1, 0, -1):
                j = self.next() % (i + 1)
                perm[i], perm[j] = perm[j], perm[i]
        return perm


def x_entries(X):
    """The entries of X a product reads: n·m dense, nnz sparse."""
    return X.nnz if sp.issparse(X) else X.size


def hals_sweep(F, A, B, l1, l2, order):
    """One coordinate-descent sweep over the rows of F (k × p); returns Σ |projected grad|.

    F[t] ← max(0, F[t] − (A[t] F + l2 F[t] − B[t] + l1) / (A[t, t] + l2))
    """
    violation = 0.0
    for t in order:
        grad = A[t] @ F + l2 * F[t] - B[t] + l1
        projected = np.where(F[t] > 0, grad, np.minimum(grad, 0))
        violation += float(np.abs(projected).sum(dtype=np.float64))
        hess = A[t, t] + l2
        if hess > 0:  # a dead component (A[t, t] = 0) is left alone
            F[t] = np.maximum(F[t] - grad / hess, 0)
    return violation


def product_W(X, H):
    """H Xᵀ (k × n): X Hᵀ stored component-major."""
    return np.asarray(X @ H.T).T


def product_H(X, W):
    """Wᵀ X (k × m)."""
    return np.asarray(X.T @ W).T


def loss_sq(sqnorm, F, B, G, A):
    """‖X − WH‖² = ‖X‖² − 2⟨F, B⟩ + ⟨WᵀW, HHᵀ⟩, B being F's product with X."""
    return (sqnorm - 2 * np.sum(F * B, dtype=np.float64)
            + np.sum(G * A, dtype=np.float64))


def accurate_loss_sq(X, W, H, err_sq, sqnorm):
    """err_sq, or the squared error formed directly where the formula cancels (dense X with
    a relative error below 1e-6 in float64, 1e-3 in float32)."""
    if not _formed(X, err_sq, sqnorm, 1e-12 if X.dtype == np.float64 else 1e-6):
        return err_sq
    return direct_error(X, W, H) ** 2


def _formed(X, err_sq, sqnorm, near):
    """Whether the error is formed directly rather than taken from the loss: a dense X
    fitted closer than ``near`` (‖X − WH‖² / ‖X‖²)."""
    return not sp.issparse(X) and err_sq < near * sqnorm


# The final error of a dense float64 X comes from the last loss unless the relative error
# is below 1e-3 (squared: FINAL_DIRECT).
FINAL_DIRECT = 1e-6


def final_error(X, W, H, err_sq, sqnorm):
    """‖X − WH‖_F: from the last loss for sparse X and for a float64 X fitted no closer
    than FINAL_DIRECT, else formed directly."""
    float32 = X.dtype == np.float32 and not sp.issparse(X)
    if float32 or _formed(X, err_sq, sqnorm, FINAL_DIRECT):
        return direct_error(X, W, H)
    return math.sqrt(max(err_sq, 0.0))


def direct_error(X, W, H):
    """‖X − WH‖_F of a dense X, formed."""
    D = (X - W @ H).astype(np.float64)
    return math.sqrt(np.sum(D * D))


def alternate(prob, W, H, seed, half_step):
    """Alternate ``half_step`` on Wᵀ and H; the stopping rules of fastnmf.nmf's docstring."""
    X, sqnorm, tol = prob.X, prob.sqnorm, prob.tol
    check_every = _ENTRIES[prob.solver].check_every
    rng = SplitMix64(seed)
    Wt = W.T  # a view: updating Wt updates W
    A = H @ H.T
    B = product_W(X, H)
    G = Wt @ Wt.T
    err_sq = loss_sq(sqnorm, Wt, B, G, A)
    history = [math.sqrt(max(accurate_loss_sq(X, W, H, err_sq, sqnorm), 0.0))]
    prev = err0 = history[0]
    violation0, converged, n_iter = 0.0, False, 0
    for it in range(1, prob.max_iter + 1):
        if it > 1 and prob.update_H:
            B = product_W(X, H)
        violation = half_step(Wt, A, B, prob.l1_W, prob.l2_W, rng, prob)
        G = Wt @ Wt.T
        if prob.update_H:
            B = product_H(X, W)
            violation += half_step(H, G, B, prob.l1_H, prob.l2_H, rng, prob)
            A = H @ H.T
            err_sq = loss_sq(sqnorm, H, B, G, A)
        else:
            err_sq = loss_sq(sqnorm, Wt, B, G, A)
        n_iter = it
        if not np.isfinite(err_sq):
            raise FloatingPointError(f"the reference {prob.solver!r} solver diverged")
        if it % check_every:
            continue
        err = math.sqrt(max(accurate_loss_sq(X, W, H, err_sq, sqnorm), 0.0))
        history.append(err)
        if _ENTRIES[prob.solver].stops_on == "decrease":
            converged = err0 == 0 or (prev - err) / err0 < tol
            prev = err
        else:
            if it == 1:
                violation0 = violation
            converged = violation0 == 0 or violation / violation0 <= tol
        if converged and tol > 0:
            break
    err = final_error(X, W, H, err_sq, sqnorm)
    return W, H, n_iter, converged, np.array(history, dtype=np.float64), err
