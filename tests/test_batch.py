"""nmf_batch: item i equals fastnmf.nmf(Xs[i], ...) whatever n_jobs or the executor;
random_state semantics; errors naming their index; the BLAS thread limit restored."""

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_info

import fastnmf

from conftest import SOLVERS  # noqa: E402
KW = dict(tol=0, max_iter=30)


def _stack(count=7, n=30, m=20, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.random((count, n, 4)) @ rng.random((count, 4, m))
            + 0.1 * rng.random((count, n, m))).astype(dtype)


def _ragged(seed=1):
    rng = np.random.default_rng(seed)
    return [
        rng.random((25, 18)),
        sp.csr_matrix(rng.random((40, 30)) * (rng.random((40, 30)) < 0.3)),
        rng.random((12, 50)).astype(np.float32),
        np.asfortranarray(rng.random((33, 21))),
        sp.csc_matrix(rng.random((20, 20)) * (rng.random((20, 20)) < 0.5)),
        rng.integers(0, 5, (15, 16)),
    ]


def _assert_same(a, b):
    assert a.solver == b.solver and a.n_iter == b.n_iter and a.converged == b.converged
    assert a.W.dtype == b.W.dtype
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.H, b.H)
    np.testing.assert_array_equal(a.history, b.history)
    assert a.reconstruction_err == b.reconstruction_err


def _blas_threads():
    return [(i["filepath"], i["num_threads"]) for i in threadpool_info()
            if i["user_api"] == "blas"]


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("n_jobs", [None, 1, 2, -1])
@pytest.mark.parametrize("init", [None, "random", "nndsvd", "nndsvdar"])
def test_stack_equals_loop(solver, n_jobs, init):
    Xs = _stack()
    got = fastnmf.nmf_batch(Xs, 3, n_jobs=n_jobs, solver=solver, init=init, random_state=5,
                            **KW)
    assert len(got) == len(Xs)
    for X, r in zip(Xs, got):
        _assert_same(r, fastnmf.nmf(X, 3, solver=solver, init=init, random_state=5, **KW))


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("n_jobs", [1, 2, -1])
def test_ragged_dense_and_sparse(solver, n_jobs):
    Xs = _ragged()
    got = fastnmf.nmf_batch(Xs, 4, n_jobs=n_jobs, solver=solver, random_state=2,
                            alpha_W=0.01, l1_ratio=0.5, shuffle=True, **KW)
    for X, r in zip(Xs, got):
        want = fastnmf.nmf(X, 4, solver=solver, random_state=2, alpha_W=0.01, l1_ratio=0.5,
                           shuffle=True, **KW)
        _assert_same(r, want)


def test_list_of_equal_shapes_and_tol_stops_early():
    Xs = list(_stack(count=5))
    got = fastnmf.nmf_batch(Xs, 3, n_jobs=2, tol=1e-2, max_iter=500)
    for X, r in zip(Xs, got):
        want = fastnmf.nmf(X, 3, tol=1e-2, max_iter=500)
        _assert_same(r, want)
        assert r.converged and r.n_iter < 500


def test_update_H_false_batch():
    Xs = _stack(count=4)
    H = np.random.default_rng(3).random((3, Xs.shape[2]))
    got = fastnmf.nmf_batch(Xs, 3, n_jobs=2, H=H, update_H=False, **KW)
    for X, r in zip(Xs, got):
        _assert_same(r, fastnmf.nmf(X, 3, H=H, update_H=False, **KW))
        np.testing.assert_array_equal(r.H, H)


def test_results_do_not_depend_on_n_jobs_or_order():
    Xs = _stack(count=9, seed=4)
    base = fastnmf.nmf_batch(Xs, 3, n_jobs=1, init="random", random_state=11, **KW)
    for n_jobs in (2, -1):
        for a, b in zip(base, fastnmf.nmf_batch(Xs, 3, n_jobs=n_jobs, init="random",
                                                 random_state=11, **KW)):
            _assert_same(a, b)
    rev = fastnmf.nmf_batch(Xs[::-1], 3, n_jobs=2, init="random", random_state=11, **KW)
    for a, b in zip(base, rev[::-1]):
        _assert_same(a, b)


def test_random_state_generator_is_spawned_per_item():
    Xs = _stack(count=4)
    got = fastnmf.nmf_batch(Xs, 3, n_jobs=2, init="random",
                            random_state=np.random.default_rng(42), **KW)
    children = np.random.default_rng(42).spawn(len(Xs))
    for X, child, r in zip(Xs, children, got):
        _assert_same(r, fastnmf.nmf(X, 3, init="random", random_state=child, **KW))
    assert not np.array_equal(got[0].W, got[1].W)  # restarts differ


def test_random_state_randomstate_draws_one_seed_per_item():
    Xs = _stack(count=4)
    got = fastnmf.nmf_batch(Xs, 3, init="random", random_state=np.random.RandomState(7), **KW)
    seeds = np.random.RandomState(7).randint(0, 2**32, size=len(Xs), dtype=np.uint64)
    for X, seed, r in zip(Xs, seeds, got):
        _assert_same(r, fastnmf.nmf(X, 3, init="random", random_state=int(seed), **KW))


def test_random_state_sequence_and_int():
    Xs = _stack(count=3)
    seeds = [3, np.random.default_rng(1), 9]
    got = fastnmf.nmf_batch(Xs, 3, init="random", random_state=seeds, **KW)
    again = [3, np.random.default_rng(1), 9]
    for X, s, r in zip(Xs, again, got):
        _assert_same(r, fastnmf.nmf(X, 3, init="random", random_state=s, **KW))
    same = fastnmf.nmf_batch([Xs[0], Xs[0]], 3, init="random", random_state=8, **KW)
    _assert_same(same[0], same[1])
    with pytest.raises(ValueError, match="random_state"):
        fastnmf.nmf_batch(Xs, 3, random_state=[1, 2])


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_executors(kind):
    Xs = _ragged()
    if kind == "thread":
        executor = ThreadPoolExecutor(3)
    else:
        executor = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    with executor:
        got = fastnmf.nmf_batch(Xs, 3, executor=executor, random_state=1, **KW)
    for X, r in zip(Xs, got):
        _assert_same(r, fastnmf.nmf(X, 3, random_state=1, **KW))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_dask_local_cluster():
    distributed = pytest.importorskip("distributed")
    Xs = list(_stack(count=12, seed=9)) + _ragged()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            got = fastnmf.nmf_batch(Xs, 3, executor=client.get_executor(), random_state=4,
                                    **KW)
    assert len(got) == len(Xs)
    for X, r in zip(Xs, got):
        _assert_same(r, fastnmf.nmf(X, 3, random_state=4, **KW))


class _RecordingExecutor(ThreadPoolExecutor):
    submitted = 0

    def submit(self, *args, **kwargs):
        type(self).submitted += 1
        return super().submit(*args, **kwargs)


@pytest.mark.parametrize("bad, match", [
    (-np.ones((5, 4)), r"Xs\[3\]: X must be non-negative"),
    (np.full((5, 4), np.nan), r"Xs\[3\]: X contains NaN"),
    (np.ones(5), r"Xs\[3\]: X must be a 2-D"),
    ("not a matrix", r"Xs\[3\]: X must be an array-like"),
    (np.ones((2, 2)), r"Xs\[3\]: n_components"),
])
def test_bad_item_names_index_before_any_work(bad, match):
    Xs = list(_stack(count=5, n=6, m=5))
    Xs[3] = bad
    with pytest.raises(ValueError, match=match):
        fastnmf.nmf_batch(Xs, 3, init="nndsvda", **KW)
    _RecordingExecutor.submitted = 0
    with _RecordingExecutor(2) as ex, pytest.raises(ValueError, match=match):
        fastnmf.nmf_batch(Xs, 3, init="nndsvda", executor=ex, **KW)
    assert _RecordingExecutor.submitted == 0


def test_bad_arguments():
    Xs = _stack(count=2)
    with pytest.raises(ValueError, match="solver must be one of"):
        fastnmf.nmf_batch(Xs, 3, solver="sgd")
    with pytest.raises(ValueError, match="n_jobs"):
        fastnmf.nmf_batch(Xs, 3, n_jobs=0)
    with pytest.raises(ValueError, match="errors"):
        fastnmf.nmf_batch(Xs, 3, errors="ignore")
    with pytest.raises(TypeError, match="unexpected keyword"):
        fastnmf.nmf_batch(Xs, 3, n_component=3)
    with pytest.raises(ValueError, match="Xs must be"):
        fastnmf.nmf_batch(np.ones((3, 3)), 2)
    assert fastnmf.nmf_batch([], 3) == []
    with pytest.raises(TypeError, match="Xs must be"):
        fastnmf.nmf_batch(3.0, 2)
    from_generator = fastnmf.nmf_batch((X for X in Xs), 3, **KW)  # any iterable of matrices
    for X, r in zip(Xs, from_generator):
        _assert_same(r, fastnmf.nmf(X, 3, **KW))


def test_extreme_scale_items_are_solved():
    # float32 data near its largest value and float64 data near its smallest normal one are
    # solved as X · 2⁻ᵉ and scaled back: finite, and the same as nmf
    Xs = [np.full((6, 5), 3e38, dtype=np.float32), _stack(count=1)[0] * 1e-300]
    for X, r in zip(Xs, fastnmf.nmf_batch(Xs, 2, n_jobs=2, **KW)):
        _assert_same(r, fastnmf.nmf(X, 2, **KW))
        assert np.isfinite(r.W).all() and r.reconstruction_err < 0.5 * np.linalg.norm(
            X.astype(np.float64) / X.max()) * X.max()


def test_failure_during_work_names_index_and_keeps_other_results(monkeypatch):
    """A kernel failure of one item (made here: the kernels have no input left that fails)
    is reported for that item only."""
    from fastnmf import _batch, _result

    Xs = list(_stack(count=5, n=6, m=5))
    failing = Xs[3]
    real = _batch.solve_many

    def solve_many(solver, operands, *args, **kwargs):
        out = real(solver, operands, *args, **kwargs)
        status = out[-1]
        for q, op in enumerate(operands):
            if op is failing:
                status[q] = _result.STATUS_NONFINITE
        return out

    monkeypatch.setattr(_batch, "solve_many", solve_many)
    before = _blas_threads()
    returned = fastnmf.nmf_batch(Xs, 2, n_jobs=2, errors="return", **KW)
    assert isinstance(returned[3], FloatingPointError)
    for i in (0, 1, 2, 4):
        _assert_same(returned[i], fastnmf.nmf(Xs[i], 2, **KW))
    with pytest.raises(fastnmf.BatchError, match=r"Xs\[3\]") as info:
        fastnmf.nmf_batch(Xs, 2, n_jobs=2, **KW)
    assert info.value.index == 3
    for i in (0, 1, 2, 4):
        _assert_same(info.value.results[i], returned[i])
    assert _blas_threads() == before


def test_blas_limit_restored():
    before = _blas_threads()
    fastnmf.nmf_batch(_stack(count=3), 3, n_jobs=2, **KW)
    assert _blas_threads() == before


def test_progress_on_request_only(capsys):
    Xs = _stack(count=6)
    fastnmf.nmf_batch(Xs, 3, **KW)
    assert capsys.readouterr().err == ""
    fastnmf.nmf_batch(Xs, 3, n_jobs=2, progress=True, **KW)
    err = capsys.readouterr().err
    assert "6/6" in err and "/s" in err


def test_results_pickle_and_stay_read_only():
    r = fastnmf.nmf_batch(_stack(count=1), 3, **KW)[0]
    r2 = pickle.loads(pickle.dumps(r))
    _assert_same(r, r2)
    assert not r2.W.flags.writeable and not r2.H.flags.writeable


@pytest.mark.parametrize("beta", ["kullback-leibler", 0.5])
def test_beta_divergence_batch(beta):
    Xs = _ragged()[:2] + [_stack(count=1)[0]]
    got = fastnmf.nmf_batch(Xs, 3, n_jobs=2, solver="mu", beta_loss=beta, random_state=0,
                            **KW)
    for X, r in zip(Xs, got):
        _assert_same(r, fastnmf.nmf(X, 3, solver="mu", beta_loss=beta, random_state=0, **KW))
