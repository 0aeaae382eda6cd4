"""The loss from Grams and products and the error formed directly: twin of
``_kernels/_loss.pxi`` (the trace is the Python list of ``alternate``)."""

import math

import numpy as np
import scipy.sparse as sp

__all__ = ["loss_sq", "accurate_loss_sq", "final_error", "direct_error", "FINAL_DIRECT"]


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
