"""What the kernels know of X beyond its entries: twin of ``_kernels/_xdata.pxi`` (the
workspace layout has no twin: NumPy allocates)."""

import scipy.sparse as sp

__all__ = ["x_entries"]


def x_entries(X):
    """The entries of X a product reads: n·m dense, nnz sparse."""
    return X.nnz if sp.issparse(X) else X.size
