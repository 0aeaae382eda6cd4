"""Inputs for the benchmarks, from fastnmf's own generators with fixed seeds."""

import numpy as np

from fastnmf._datasets import low_rank

SIZES = {
    "tiny": (50, 30, 5),
    "small": (100, 80, 8),
    "medium": (2000, 1000, 20),
}


def matrix(size, dtype=np.float64):
    n, m, k = SIZES[size]
    return low_rank(n, m, k, seed=0, dtype=dtype), k


def stack(count=200, n=100, m=80, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((count, n, 4)) @ rng.random((count, 4, m)) + 0.1 * rng.random((count, n, m))
