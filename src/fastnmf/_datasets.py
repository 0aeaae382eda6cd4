"""Generated data sets for the demo, the tests, the benchmarks and the command line."""

import numpy as np

__all__ = ["low_rank"]


def low_rank(n, m, k, *, noise=0.05, density=None, dtype=np.float64, seed=0):
    """A non-negative n × m matrix of rank k plus non-negative noise (dense, or CSR at
    ``density``)."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, k)) @ rng.random((k, m))
    X += noise * X.mean() * rng.random((n, m))
    if density is not None:
        import scipy.sparse as sp

        mask = rng.random((n, m)) < density
        return sp.csr_matrix(np.where(mask, X, 0).astype(dtype))
    return X.astype(dtype)
