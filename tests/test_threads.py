"""fastnmf.nmf called from several threads at once gives exactly the serial results.

The kernels release the GIL and share no state between calls (each call allocates its own
workspace), so concurrent calls on different inputs must be bit-for-bit equal to the same
calls made one after another.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastnmf
from fastnmf._datasets import low_rank

REPEATS = 3


def problems(solver):
    """Different inputs for the threads: dense C, dense F, CSR, float32; different kwargs."""
    base = dict(solver=solver, tol=0, max_iter=30)
    return [
        (low_rank(200, 150, 8, noise=0.1, seed=1), 5,
         dict(base, init="nndsvda", random_state=0)),
        (np.asfortranarray(low_rank(160, 220, 6, noise=0.1, seed=2)), 4,
         dict(base, init="random", random_state=1, shuffle=True)),
        (low_rank(250, 120, 6, noise=0.1, density=0.2, seed=3), 5,
         dict(base, init="random", random_state=2, alpha_W=0.01, l1_ratio=0.5)),
        (low_rank(180, 140, 7, noise=0.1, dtype=np.float32, seed=4), 6,
         dict(base, init="nndsvda", random_state=3, shuffle=True)),
    ]


def assert_identical(a, b):
    assert a.solver == b.solver
    assert a.n_iter == b.n_iter
    assert a.converged == b.converged
    assert a.reconstruction_err == b.reconstruction_err
    assert a.W.dtype == b.W.dtype
    assert np.array_equal(a.W, b.W)
    assert np.array_equal(a.H, b.H)
    assert np.array_equal(a.history, b.history)


@pytest.mark.parametrize("n_workers", [2, 4])
def test_concurrent_calls_equal_serial(solver, n_workers):
    work = problems(solver)
    serial = [fastnmf.nmf(X, k, **kw) for X, k, kw in work]
    for _ in range(REPEATS):
        # all calls of a round start together, so that they really overlap
        barrier = threading.Barrier(min(n_workers, len(work)))

        def call(item):
            X, k, kw = item
            barrier.wait(timeout=60)
            return fastnmf.nmf(X, k, **kw)

        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            concurrent = list(pool.map(call, work))
        for got, want in zip(concurrent, serial):
            assert_identical(got, want)


def test_same_input_from_two_threads(solver):
    """Two threads factorizing the very same X (shared, read-only) at once."""
    X = low_rank(200, 150, 8, noise=0.1, seed=5)
    X_before = X.copy()
    kw = dict(solver=solver, init="random", random_state=4, tol=0, max_iter=30)
    serial = fastnmf.nmf(X, 5, **kw)
    barrier = threading.Barrier(2)

    def call(_):
        barrier.wait(timeout=60)
        return fastnmf.nmf(X, 5, **kw)

    for _ in range(REPEATS):
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(call, range(2)))
        for res in results:
            assert_identical(res, serial)
    np.testing.assert_array_equal(X, X_before)
