"""The products with X: twin of ``_kernels/_products.pxi``, component-major as there."""

import numpy as np

__all__ = ["product_W", "product_H"]


def product_W(X, H):
    """H Xᵀ (k × n): X Hᵀ stored component-major."""
    return np.asarray(X @ H.T).T


def product_H(X, W):
    """Wᵀ X (k × m)."""
    return np.asarray(X.T @ W).T
