"""One call on several threads (``n_threads``): the same bits whatever the count, and BLAS
held to one thread while the kernels run, restored afterwards."""

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import fastnmf
from fastnmf._datasets import low_rank
from fastnmf._kernels._common import THREADED_WORK, scan
from fastnmf._threads import single_threaded_blas

from conftest import in_layout

# Large enough that the products (n·m·k, nnz·k) and both factors' sweeps (k²·p, several
# blocks of columns) cross the kernels' threading threshold.
N, M, K = 1500, 1100, 32


@pytest.fixture(scope="module")
def big():
    return low_rank(N, M, K, noise=0.2, seed=11)


def test_problem_is_threaded():
    assert N * M * K >= THREADED_WORK
    assert K * K * M >= THREADED_WORK  # the H sweep, the smaller of the two
    assert 0.05 * N * M * K >= THREADED_WORK  # the sparse products at 5 %


def test_scan_of_x_does_not_depend_on_threads(dtype):
    """Validation's one pass over X (minimum, maximum, finiteness, ‖X‖²) is threaded; its
    pieces are fixed by the size, so the sum is the same for any count."""
    x = np.random.default_rng(3).random(THREADED_WORK + 12347).astype(dtype)
    one, two = scan(x, 1), scan(x, 2)
    assert one == two
    assert (one[0], one[1], one[2]) == (x.min(), x.max(), True)
    assert one[3] == pytest.approx(np.sum(x.astype(np.float64) ** 2), rel=1e-12)
    for at, bad in [(0, -np.inf), (len(x) // 2, np.nan), (len(x) - 3, np.inf)]:
        y = x.copy()
        y[at] = bad  # at the start, in the 8-lane body, in the tail
        assert scan(y, 1)[2] is False and scan(y, 2)[2] is False


@pytest.mark.parametrize("layout", ["C", "F", "csr", "csc"])
def test_results_do_not_depend_on_threads(big, solver, layout, dtype):
    X = big
    if layout in ("csr", "csc"):
        X = np.where(np.random.default_rng(1).random(X.shape) < 0.05, X, 0)
    X = in_layout(X, layout).astype(dtype)
    kw = dict(solver=solver, init="nndsvda", random_state=0, tol=0, max_iter=6,
              shuffle=solver != "mu")
    runs = [fastnmf.nmf(X, K, n_threads=t, **kw) for t in (1, 2, 3)]
    for res in runs[1:]:
        np.testing.assert_array_equal(res.W, runs[0].W)
        np.testing.assert_array_equal(res.H, runs[0].H)
        np.testing.assert_array_equal(res.history, runs[0].history)
        assert res.reconstruction_err == runs[0].reconstruction_err


@pytest.mark.parametrize("layout", ["C", "F"])
def test_threaded_pieces_agree_with_reference(big, layout):
    """The threaded kernels' pieces (product chunks, Gram pieces, sweep blocks and tiles)
    compute what the plain NumPy reference computes."""
    from fastnmf import reference

    X = in_layout(big, layout)
    kw = dict(solver="cd", init="nndsvda", random_state=0, tol=0, max_iter=5, shuffle=True)
    res, ref = fastnmf.nmf(X, K, n_threads=2, **kw), reference.nmf(X, K, **kw)
    np.testing.assert_allclose(res.W, ref.W, rtol=1e-9, atol=1e-12 * np.abs(ref.W).max())
    np.testing.assert_allclose(res.H, ref.H, rtol=1e-9, atol=1e-12 * np.abs(ref.H).max())
    np.testing.assert_allclose(res.history, ref.history, rtol=1e-11)


def test_stopping_does_not_depend_on_threads(big):
    """The violation of a threaded sweep is summed block by block in order, so tol stops at
    the same iteration."""
    runs = [fastnmf.nmf(big, K, tol=1e-3, max_iter=400, random_state=0, n_threads=t)
            for t in (1, 2)]
    assert runs[0].n_iter == runs[1].n_iter < 400
    assert runs[0].converged and runs[1].converged
    np.testing.assert_array_equal(runs[0].W, runs[1].W)


def test_batch_item_equals_threaded_call(big):
    Xs = [big, big[::-1].copy()]
    kw = dict(init="nndsvda", random_state=0, tol=0, max_iter=5)
    batch = fastnmf.nmf_batch(Xs, K, n_jobs=2, **kw)
    for X, res in zip(Xs, batch):
        single = fastnmf.nmf(X, K, n_threads=2, **kw)
        np.testing.assert_array_equal(res.W, single.W)
        np.testing.assert_array_equal(res.H, single.H)


@pytest.mark.parametrize("value", [0])
def test_bad_thread_count_value(value):
    with pytest.raises(ValueError, match=r"n_threads must be None, a positive int"):
        fastnmf.nmf(np.ones((4, 3)), 2, n_threads=value)


@pytest.mark.parametrize("value", ["2", 1.5, True])
def test_bad_thread_count_type(value):
    with pytest.raises(TypeError, match=r"n_threads must be None or an int"):
        fastnmf.nmf(np.ones((4, 3)), 2, n_threads=value)


def test_negative_counts_back_from_all_cores(big):
    a = fastnmf.nmf(big, K, n_threads=-1, random_state=0, tol=0, max_iter=3)
    b = fastnmf.nmf(big, K, n_threads=1, random_state=0, tol=0, max_iter=3)
    np.testing.assert_array_equal(a.W, b.W)


def _blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_blas_threads_limited_inside_and_restored():
    before = _blas_threads()
    with single_threaded_blas:
        assert set(_blas_threads()) == {1}
        with single_threaded_blas:  # re-entrant
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before


def test_blas_threads_stay_limited_while_another_thread_comes_and_goes():
    """The main thread holds the limit; another thread enters and leaves meanwhile: the
    limit stays until the main thread leaves too, then the setting from before returns.
    (Read from the main thread.)"""
    before = _blas_threads()
    def visit():
        with single_threaded_blas:
            pass

    with single_threaded_blas:
        worker = threading.Thread(target=visit)
        worker.start()
        worker.join(20)
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before


def test_blas_threads_restored_after_a_call_and_an_error(big):
    before = _blas_threads()
    fastnmf.nmf(big, K, max_iter=2, tol=0)
    assert _blas_threads() == before
    with pytest.raises(ValueError):
        fastnmf.nmf(big, K, max_iter=2, W=np.ones((3, 3)), H=np.ones((3, 3)), init="custom")
    assert _blas_threads() == before


def _in_child(X):
    from fastnmf._threads import forked

    single = fastnmf.nmf(X, K, random_state=0, tol=0, max_iter=3)
    batch = fastnmf.nmf_batch([X], K, n_jobs=2, random_state=0, tol=0, max_iter=3)[0]
    return forked(), single.W, batch.W


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_runs_after_threaded_parent(big):
    """GNU OpenMP hangs a child forked after the parent ran a parallel region; fastnmf runs
    a forked child on one thread (same results)."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    parent = fastnmf.nmf(big, K, random_state=0, tol=0, max_iter=3)  # threaded
    with multiprocessing.get_context("fork").Pool(1) as pool:
        was_forked, W_single, W_batch = pool.apply_async(_in_child, (big,)).get(timeout=120)
    assert was_forked
    np.testing.assert_array_equal(W_single, parent.W)
    np.testing.assert_array_equal(W_batch, parent.W)
