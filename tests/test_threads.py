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
    """Different inputs for the threads: dense C, dense F, CSR, float32, and two read in
    one pass; different kwargs."""
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
        # above the row-block engine's 1 MiB (cd, mu): dense 2.8 MB, CSR 1.8 MB
        (low_rank(700, 500, 6, noise=0.1, seed=6), 5,
         dict(base, init="random", random_state=4, shuffle=True)),
        (low_rank(2000, 1500, 6, noise=0.1, density=0.05, seed=7), 5,
         dict(base, init="random", random_state=5)),
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
        # the first call of each worker starts together with the others', so that they
        # really overlap (the later calls find the workers busy anyway)
        parties = min(n_workers, len(work))
        barrier = threading.Barrier(parties)

        def call(i):
            X, k, kw = work[i]
            if i < parties:
                barrier.wait(timeout=60)
            return fastnmf.nmf(X, k, **kw)

        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            concurrent = list(pool.map(call, range(len(work))))
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


# -- BLAS held to one thread whichever Python thread calls ---------------------------------

from threadpoolctl import ThreadpoolController, threadpool_info  # noqa: E402

from fastnmf._threads import single_threaded_blas  # noqa: E402

from conftest import SOLVERS  # noqa: E402


def _blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def blas_at_two():
    """Every BLAS at two threads, set from the main thread through threadpoolctl, which
    makes the main thread the one threadpoolctl lets set OpenBLAS's count from then on
    (as the first thread that used it does in a user's program)."""
    libs = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    before = [lib.num_threads for lib in libs]
    for lib in libs:
        lib.set_num_threads(2)
    assert set(_blas_threads()) == {2}
    yield
    for lib, count in zip(libs, before):
        lib.set_num_threads(count)


def test_blas_held_from_a_second_thread(blas_at_two):
    seen = []

    def visit():
        with single_threaded_blas:
            seen.append(_blas_threads())
        seen.append(_blas_threads())

    worker = threading.Thread(target=visit)
    worker.start()
    worker.join(60)
    assert set(seen[0]) == {1}
    assert seen[1] == [2] * len(seen[1])
    assert set(_blas_threads()) == {2}


def test_eight_threads_equal_serial_and_restore_blas(blas_at_two):
    """Eight Python threads calling at once, on problems that the kernels thread and whose
    products OpenBLAS would thread: the serial results bit for bit; BLAS at its former
    count in each thread once all are done."""
    rng = np.random.default_rng(7)
    work = [(low_rank(400, 300, 10, noise=0.1, seed=s, density=0.3 if s >= 4 else None), 20,
             dict(solver=SOLVERS[s % 4], tol=0, max_iter=15,
                  random_state=int(rng.integers(100))))
            for s in range(8)]
    serial = [fastnmf.nmf(X, k, **kw) for X, k, kw in work]
    start, finish = threading.Barrier(8), threading.Barrier(8)
    after = [None] * 8

    def call(i):
        X, k, kw = work[i]
        start.wait(timeout=60)
        res = fastnmf.nmf(X, k, **kw)
        finish.wait(timeout=60)
        after[i] = _blas_threads()
        return res

    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(call, range(8)))
    for got, want in zip(concurrent, serial):
        assert_identical(got, want)
    for counts in after:
        assert set(counts) == {2}
