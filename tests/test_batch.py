"""nmf_batch: item i equals fastnmf.nmf(Xs[i], ...) whatever n_jobs or the executor;
random_state semantics; errors naming their index; the BLAS thread limit restored."""

import contextlib
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading
import time
import tracemalloc
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor

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


# Run with OPENBLAS_CORETYPE=Sandybridge: OpenBLAS kernels that sum otherwise by where their
# operands start. Items of the batch and calls of fastnmf.nmf, nndsvd* starts (made by the
# batch's threads in one shared workspace, by nmf in its own), for every solver.
_ALIGNED = """
import sys
import numpy as np, fastnmf, fastnmf._threads as t
sys.path.insert(0, sys.argv[1])
from test_batch import _stack, KW
print(t.blas_kernels())
Xs = _stack()
for init in ("nndsvd", "nndsvda", None):
    for solver in sys.argv[2:]:
        kw = dict(KW, solver=solver, init=init, random_state=5)
        for _ in range(3):  # which thread takes which item changes from run to run
            got = fastnmf.nmf_batch(Xs, 3, n_jobs=2, **kw)
            for i, (X, r) in enumerate(zip(Xs, got)):
                want = fastnmf.nmf(X, 3, **kw)
                if not (np.array_equal(r.W, want.W) and np.array_equal(r.H, want.H)):
                    print("differs", init, solver, i)
"""


def test_stack_equals_loop_with_alignment_sensitive_blas():
    """Each thread's share of the batch's workspace, and fastnmf.nmf's own, start at the
    same alignment (_common.WORK_ALIGN): with OpenBLAS's Sandybridge kernels, whose sums
    depend on it, the second thread's nndsvd starts left fastnmf.nmf's by 1e-12 before."""
    env = {**os.environ, "OPENBLAS_CORETYPE": "Sandybridge"}
    out = subprocess.run([sys.executable, "-c", _ALIGNED, os.path.dirname(__file__), *SOLVERS],
                         env=env, capture_output=True, text=True, timeout=600, check=True)
    lines = out.stdout.split("\n")
    if lines[0] != "sandybridge":
        pytest.skip(f"scipy's BLAS is not OpenBLAS taking its Sandybridge kernels ({lines[0]})")
    assert [line for line in lines[1:] if line] == []


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
    # the arguments every item shares: checked once, as nmf checks them, also with no item
    for bad in ([], Xs):
        with pytest.raises(ValueError, match=r"^max_iter must be >= 1"):
            fastnmf.nmf_batch(bad, 3, max_iter=0)
        with pytest.raises(ValueError, match=r"^n_components must be"):
            fastnmf.nmf_batch(bad, 0)
        with pytest.raises(TypeError, match=r"^tol must be"):
            fastnmf.nmf_batch(bad, 3, tol="0.1")
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

    class Batch(_batch.Batch):  # the compiled batch, reporting that item's solve failed
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.operands = []

        def add(self, operand, *args):
            self.operands.append(operand)
            super().add(operand, *args)

        def results(self):
            out = super().results()
            for j, op in enumerate(self.operands):
                if op is failing:
                    out[-1][j] = _result.STATUS_NONFINITE
            return out

    monkeypatch.setattr(_batch, "Batch", Batch)
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


# --- faults of the executor -------------------------------------------------------------

class _FailingExecutor(Executor):
    """One worker thread; the task submitted ``fail_at``-th fails at once (a lost worker),
    and the first task waits until the third one is finished or cancelled, so that the
    failure is seen while the first runs and the rest wait."""

    def __init__(self, fail_at=1):
        self.pool = ThreadPoolExecutor(1)
        self.fail_at = fail_at
        self.futures = []
        self.gate = threading.Event()

    def submit(self, fn, *args, **kwargs):
        index = len(self.futures)
        if index == self.fail_at:
            future = Future()
            future.set_exception(RuntimeError("worker lost"))
        elif index == 0:
            future = self.pool.submit(lambda: (self.gate.wait(), fn(*args, **kwargs))[1])
        else:
            future = self.pool.submit(fn, *args, **kwargs)
            if index == 2:
                future.add_done_callback(lambda f: self.gate.set())
        self.futures.append(future)
        return future

    def shutdown(self, wait=True, **kwargs):
        self.gate.set()
        self.pool.shutdown(wait)


def test_executor_failure_keeps_finished_results_and_cancels_the_rest():
    Xs = list(_stack(count=5, n=8, m=6))  # one item per task
    with _FailingExecutor() as ex:
        got = fastnmf.nmf_batch(Xs, 2, executor=ex, errors="return", **KW)
        assert all(f.cancelled() for f in ex.futures[2:])  # pending work cancelled
    _assert_same(got[0], fastnmf.nmf(Xs[0], 2, **KW))  # finished while the failure came
    failure = got[1]
    assert isinstance(failure, RuntimeError) and str(failure) == "worker lost"
    assert all(r is failure for r in got[2:])
    with _FailingExecutor() as ex, pytest.raises(fastnmf.BatchError, match=r"Xs\[1\]") as info:
        fastnmf.nmf_batch(Xs, 2, executor=ex, **KW)
    assert info.value.index == 1
    _assert_same(info.value.results[0], got[0])
    assert all(isinstance(r, RuntimeError) for r in info.value.results[1:])


class _SilentCancelExecutor(Executor):
    """Futures run by hand, never told of their cancellation (as Dask's executor, whose
    future, cancelled just as its task fails, never reports either): the first task fails
    at once, the others never start."""

    def __init__(self):
        self.futures = []

    def submit(self, fn, *args, **kwargs):
        future = Future()
        if not self.futures:
            future.set_running_or_notify_cancel()
            future.set_exception(RuntimeError("worker lost"))
        self.futures.append(future)
        return future


def test_executor_failure_does_not_wait_for_cancelled_tasks():
    Xs = list(_stack(count=4, n=8, m=6))
    ex = _SilentCancelExecutor()
    result = []
    runner = threading.Thread(target=lambda: result.append(
        fastnmf.nmf_batch(Xs, 2, executor=ex, errors="return", **KW)), daemon=True)
    runner.start()
    runner.join(30)
    assert not runner.is_alive(), "nmf_batch waited for a cancelled task"
    assert all(f.cancelled() for f in ex.futures[1:])
    assert all(isinstance(r, RuntimeError) and str(r) == "worker lost" for r in result[0])


def test_executor_that_cannot_submit_returns_the_failure():
    ex = ThreadPoolExecutor(1)
    ex.shutdown()
    got = fastnmf.nmf_batch(list(_stack(count=3, n=8, m=6)), 2, executor=ex,
                            errors="return", **KW)
    assert all(isinstance(r, RuntimeError) and "shutdown" in str(r) for r in got)


class _KillsItsWorker:
    """An array-like that, read in any process but the one that made it, ends that process
    (a worker killed in the middle of a task), ``delay`` seconds after it is read."""

    def __init__(self, X, delay=0.0):
        self.X, self.parent, self.delay = X, os.getpid(), delay

    def __array__(self, dtype=None, copy=None):
        if os.getpid() != self.parent:
            time.sleep(self.delay)
            os._exit(3)
        return self.X if dtype is None else self.X.astype(dtype)


class _KillsItsWorkerOnce(_KillsItsWorker):
    """As _KillsItsWorker, the first time only (a marker file says it did)."""

    def __init__(self, X, marker, delay=0.0):
        super().__init__(X, delay)
        self.marker = marker

    def __array__(self, dtype=None, copy=None):
        if os.getpid() != self.parent and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            return super().__array__(dtype, copy)
        return self.X if dtype is None else self.X.astype(dtype)


def test_executor_must_submit():
    with pytest.raises(TypeError, match=r"executor must be a concurrent.futures.Executor.*"
                                        r"got str"):
        fastnmf.nmf_batch(list(_stack(count=2, n=8, m=6)), 2, executor="threads")


def test_process_pool_worker_killed():
    Xs = list(_stack(count=4, n=8, m=6))
    items = Xs[:3] + [_KillsItsWorker(Xs[3])]
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
        got = fastnmf.nmf_batch(items, 2, executor=ex, errors="return", **KW)
    assert type(got[3]).__name__ == "BrokenProcessPool"
    for X, r in zip(Xs[:3], got[:3]):  # each either finished or lost with the pool
        if not isinstance(r, Exception):
            _assert_same(r, fastnmf.nmf(X, 2, **KW))


@contextlib.contextmanager
def _client_of_one_worker():
    """A Dask client of a LocalCluster of one worker process, with allowed-failures=0 (a
    task whose worker dies fails at once: KilledWorker)."""
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster:
            with distributed.Client(cluster) as client:
                yield client


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_dask_killed_worker_keeps_finished_results():
    """A Dask worker killed with allowed-failures=0 (KilledWorker): the chunks finished
    before are returned, the failure stands in for the lost ones."""
    distributed = pytest.importorskip("distributed")
    Xs = list(_stack(count=4, n=8, m=6, seed=3))
    # Submitted last, it runs after the others; the delay lets the client gather their
    # results first (a result still held by the worker dies with it, as Dask's always do).
    items = Xs[:3] + [_KillsItsWorker(Xs[3], delay=1.0)]
    with _client_of_one_worker() as client:
        got = fastnmf.nmf_batch(items, 2, executor=client.get_executor(), errors="return",
                                **KW)
        with pytest.raises(fastnmf.BatchError) as info:
            fastnmf.nmf_batch(items, 2, executor=client.get_executor(), **KW)
    assert isinstance(got[3], distributed.KilledWorker)
    for X, r in zip(Xs[:3], got[:3]):  # finished before the killing task ran
        _assert_same(r, fastnmf.nmf(X, 2, **KW))
    # Again on the restarted worker, whose queue may hold several tasks when it dies: each
    # item is its result or the failure, the first failure named.
    results = info.value.results
    assert isinstance(results[3], distributed.KilledWorker)
    assert info.value.index == min(i for i, r in enumerate(results) if isinstance(r, Exception))
    for X, r in zip(Xs[:3], results[:3]):
        if not isinstance(r, Exception):
            _assert_same(r, fastnmf.nmf(X, 2, **KW))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_dask_retry_after_a_killed_worker_runs_again(tmp_path):
    """The same batch again on the same client, after a KilledWorker: its tasks run anew
    (Dask names a task by its function and arguments, and handed the retry the failed
    run's futures, the failure with them)."""
    distributed = pytest.importorskip("distributed")
    Xs = list(_stack(count=3, n=8, m=6, seed=5))
    items = Xs[:2] + [_KillsItsWorkerOnce(Xs[2], str(tmp_path / "killed"), delay=1.0)]
    with _client_of_one_worker() as client:
        first = fastnmf.nmf_batch(items, 2, executor=client.get_executor(), errors="return",
                                  **KW)
        again = fastnmf.nmf_batch(items, 2, executor=client.get_executor(), **KW)
    assert isinstance(first[2], distributed.KilledWorker)
    for X, r in zip(Xs, again):
        _assert_same(r, fastnmf.nmf(X, 2, **KW))


# --- history --------------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["cd", "mu"])
def test_history_grows_as_written(solver):
    """Nothing is reserved for max_iter: max_iter=10**8 with a tol that stops after a few
    dozen checks allocates no more than max_iter=200 does, and gives the same history."""
    Xs = list(_stack(count=3))
    kw = dict(solver=solver, tol=1e-3, random_state=0)
    small = [fastnmf.nmf(X, 3, max_iter=200, **kw) for X in Xs]
    assert all(r.converged and len(r.history) < 200 for r in small)
    tracemalloc.start()
    try:
        single = fastnmf.nmf(Xs[0], 3, max_iter=10**8, **kw)
        batch = fastnmf.nmf_batch(Xs, 3, max_iter=10**8, n_jobs=2, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # was 800 MB for nmf, 2.4 GB for the batch
    for r, s in zip([single] + batch, small[:1] + small):
        _assert_same(r, s)
    long = fastnmf.nmf(Xs[0], 3, solver=solver, tol=0, max_iter=1000)  # grows past 64
    assert len(long.history) == 1000 // (10 if solver == "mu" else 1) + 1


def test_a_failed_start_is_that_item_result(monkeypatch):
    """An item whose start fails (NNDSVD's SVD did not converge) gets the failure as its
    result; the other items are solved as alone. (nndsvdar: a start made in Python; the
    compiled batch's own nndsvd* start reports gesdd's failure by its status.)"""
    import fastnmf._api as api  # where nmf and each batch item are started

    Xs = list(_stack(count=4, n=8, m=6))
    real = api.initialize

    def initialize(prob, rng):
        if prob.X.shape == Xs[2].shape and np.array_equal(prob.X, Xs[2]):
            raise np.linalg.LinAlgError("the SVD for NNDSVD did not converge")
        return real(prob, rng)

    monkeypatch.setattr(api, "initialize", initialize)
    kw = dict(KW, init="nndsvdar", random_state=0)
    for n_jobs in (1, 2):
        got = fastnmf.nmf_batch(Xs, 2, n_jobs=n_jobs, errors="return", **kw)
        assert isinstance(got[2], np.linalg.LinAlgError)
        for i in (0, 1, 3):
            _assert_same(got[i], fastnmf.nmf(Xs[i], 2, **kw))
        with pytest.raises(fastnmf.BatchError, match=r"Xs\[2\]"):
            fastnmf.nmf_batch(Xs, 2, n_jobs=n_jobs, **kw)


@pytest.mark.parametrize("init", ["nndsvd", "nndsvda", None])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_start_in_its_parallel_loop_equals_nmf(init, dtype):
    """A dense item's nndsvd/nndsvda start is made by the compiled batch in its parallel
    loop (rsvd_core, then the split); each item equals fastnmf.nmf bit for bit: wide and
    tall, C and Fortran order, bases that shrink (k + 10 > min(n, m)), an X of extreme
    scale (solved as X · 2⁻ᵉ), shuffle (its seed drawn after Ω, from the same generator)
    and an item left to Python (sparse) among them."""
    rng = np.random.default_rng(5)
    Xs = [rng.random((30, 20)), np.asfortranarray(rng.random((20, 30))), rng.random((9, 14)),
          rng.random((40, 12)) * 1e300, sp.random(25, 15, density=0.5, format="csr",
                                                  random_state=1), rng.random((60, 50))]
    Xs = [X.astype(dtype) if not (dtype == np.float32 and np.max(X) > 1e30) else X
          for X in Xs]
    kw = dict(init=init, tol=0, max_iter=15, random_state=4)
    for extra in ({}, dict(shuffle=True)):
        for n_jobs in (1, 2):
            got = fastnmf.nmf_batch(Xs, 4, n_jobs=n_jobs, **kw, **extra)
            for X, r in zip(Xs, got):
                _assert_same(r, fastnmf.nmf(X, 4, **kw, **extra))


class _Counts:
    """A stand-in for the progress bar: keeps the compiled batch's per-thread counts of
    finished items (``made``: every one made)."""

    made = []

    def __init__(self, total):
        self.counters = None
        self.made.append(self)

    def watch(self, counters):
        self.counters = counters

    def add(self, count):
        pass

    def close(self):
        pass


def _solved_during_the_starts(monkeypatch, n_jobs, in_thread=False):
    """Whether nmf_batch(n_jobs) of 8 items had solved one by the time it started the
    last (whose start waits up to 3 s for that); its results checked against nmf's."""
    from fastnmf import _batch

    real_start, seen = _batch.start, []

    def start(prob, plan=False):
        if len(seen) == 7:
            counts = _Counts.made[-1].counters
            deadline = time.monotonic() + 3
            while counts.sum() == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
        seen.append(int(_Counts.made[-1].counters.sum()))
        return real_start(prob, plan)

    monkeypatch.setattr(_batch, "BatchProgress", _Counts)
    monkeypatch.setattr(_batch, "start", start)
    Xs = _stack(count=8)
    call = lambda: fastnmf.nmf_batch(Xs, 3, n_jobs=n_jobs, progress=True, **KW)
    if in_thread:
        with ThreadPoolExecutor(1) as pool:
            got = pool.submit(call).result()
    else:
        got = call()
    for X, r in zip(Xs, got):
        _assert_same(r, fastnmf.nmf(X, 3, **KW))
    return seen[-1] > 0


def test_items_are_solved_while_later_ones_are_started(monkeypatch):
    """From the main thread with two threads, the compiled batch runs from the first item
    on: an item is solved while the next ones are still being started (Python's part),
    and the results are those of fastnmf.nmf."""
    assert _solved_during_the_starts(monkeypatch, 2)


@pytest.mark.parametrize("n_jobs, in_thread", [(1, False), (2, True)])
def test_items_are_all_started_first_on_one_thread_or_off_the_main_thread(
        monkeypatch, n_jobs, in_thread):
    """n_jobs=1 keeps to one core at a time (no solve beside the starts); from a thread
    other than the main one the batch runs in the calling thread, after the starts."""
    assert not _solved_during_the_starts(monkeypatch, n_jobs, in_thread)


def test_interrupt_during_the_starts_stops_the_running_batch(monkeypatch):
    """A KeyboardInterrupt raised while items are still being started (the batch already
    running in the helper thread) propagates once the running items have stopped; the
    next batch runs as usual."""
    from fastnmf import _batch

    real_start, count = _batch.start, []

    def start(prob, plan=False):
        count.append(1)
        if len(count) == 5:
            raise KeyboardInterrupt
        return real_start(prob, plan)

    monkeypatch.setattr(_batch, "start", start)
    Xs = _stack(count=8)
    with pytest.raises(KeyboardInterrupt):
        fastnmf.nmf_batch(Xs, 3, n_jobs=2, **KW)
    monkeypatch.setattr(_batch, "start", real_start)
    for X, r in zip(Xs, fastnmf.nmf_batch(Xs, 3, n_jobs=2, **KW)):
        _assert_same(r, fastnmf.nmf(X, 3, **KW))


def test_compiled_batch_refuses_misuse():
    """The compiled batch takes as many items as it has slots, runs once, and its loop,
    from another thread, solves the slots as they are filled."""
    from fastnmf._kernels._batch import Batch

    done, stop = np.zeros(16, dtype=np.int64), np.zeros(1, dtype=np.intc)
    settings = dict(max_iter=5, tol=0.0, update_H=True, shuffle=False, done=done, stop=stop)
    with pytest.raises(ValueError, match="done must hold"):
        Batch("cd", 1, 2, np.float64, n_threads=3, **settings)
    with pytest.raises(ValueError, match="float32 or float64"):
        Batch("cd", 1, 2, np.int64, n_threads=2, **settings)
    X = _stack(count=1, n=6, m=5)[0]
    rng = np.random.default_rng(0)
    Wt, H = rng.random((2, 6)), rng.random((2, 5))
    batch = Batch("cd", 2, 2, np.float64, n_threads=2, **settings)
    with pytest.raises(ValueError, match="n_components"):
        batch.add(X, rng.random((3, 6)), rng.random((3, 5)), 1.0, (0, 0, 0, 0), 0)
    runner = threading.Thread(target=batch.run)
    runner.start()  # waits for its two slots
    time.sleep(0.05)
    assert runner.is_alive() and done.sum() == 0
    batch.skip()
    batch.add(X, Wt, H, float((X * X).sum()), (0, 0, 0, 0), 0)
    with pytest.raises(ValueError, match="every slot"):
        batch.skip()
    runner.join(10)
    assert not runner.is_alive() and done.sum() == 1
    with pytest.raises(RuntimeError, match="runs once"):
        batch.run()
    n_iter, converged, histories, errs, status = batch.results()
    assert list(n_iter) == [0, 5] and len(histories[1]) == 6
