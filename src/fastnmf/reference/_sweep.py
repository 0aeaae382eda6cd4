"""The HALS sweep: twin of ``_kernels/_sweep.pxi``."""

import numpy as np

__all__ = ["hals_sweep"]


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
