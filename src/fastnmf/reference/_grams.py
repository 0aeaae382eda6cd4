"""A factor's Gram: twin of ``_kernels/_grams.pxi`` (whose tiny Grams round as NumPy's
F Fᵀ does)."""

__all__ = ["gram"]


def gram(F):
    """F Fᵀ (k × k) of a factor stored component-major (k × p)."""
    return F @ F.T
