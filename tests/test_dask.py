"""One matrix on a Dask cluster (fastnmf._dask): X a dask array while a distributed client
is active. X's blocks and W's rows stay on the workers: cd and mu run the pass there; als,
bpp and accelerate run it on a guess that the client settles. Every result equals the
in-memory one up to rounding."""

import gc
import time

import numpy as np
import pytest
import scipy.sparse as sp

import dask.array as da
import distributed

import fastnmf
from fastnmf import _dask, _threads
from fastnmf._registry import SOLVERS

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]  # "Sending large graph"


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def _data(n=1200, m=150, k=5, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, k)) @ rng.random((k, m)) + 0.1 * rng.random((n, m))
    return X.astype(dtype)


def _close(a, b, rtol):
    assert float(np.abs(a - b).max()) <= rtol * float(np.abs(a).max())


def _no_tasks_left(client, within=10.0):
    """Nothing processing on the cluster and no share of a call left on a worker (a
    cancellation reaches the workers within ``within`` seconds)."""
    def left():
        gc.collect()  # the handles of the call's shares (in reference cycles: _Share.close)
        actors = client.run(lambda dask_worker: gc.collect() * 0 + len(dask_worker.state.actors))
        return client.processing(), actors

    deadline = time.monotonic() + within
    while (any((now := left())[0].values()) or any(now[1].values())) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(now[0].values()) and not any(now[1].values()), now


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("init", ["random", "nndsvda"])
def test_equals_in_memory(client, solver, init):
    X = _data()
    Xd = da.from_array(X, chunks=(150, 150))  # 8 blocks of rows
    kw = dict(solver=solver, init=init, random_state=0, max_iter=20, tol=0)
    a, b = fastnmf.nmf(X, 5, **kw), fastnmf.nmf(Xd, 5, **kw)
    _close(a.W, b.W, 1e-10)
    _close(a.H, b.H, 1e-10)
    assert a.n_iter == b.n_iter
    np.testing.assert_allclose(b.history, a.history, rtol=1e-10)
    assert b.reconstruction_err == pytest.approx(a.reconstruction_err, rel=1e-10)
    _no_tasks_left(client)  # the call's shares are gone


def test_blocks_are_spread_over_the_workers(client, monkeypatch):
    """An X whose blocks all sit on one worker: the call moves half of them to the other
    (each worker's share runs its blocks one after another), once, before the start; the
    result is the in-memory one."""
    X = _data()
    first = sorted(client.scheduler_info()["workers"])[0]
    Xd = client.persist(da.from_array(X, chunks=(150, 150)), workers=[first])
    distributed.wait(Xd)
    held = client.who_has(distributed.futures_of(Xd))
    assert {w for ws in held.values() for w in ws} == {first}
    placed = []
    placement = _dask._placement
    monkeypatch.setattr(_dask, "_placement",
                        lambda blocks, where: placed.append(r := placement(blocks, where)) or r)
    kw = dict(init="random", random_state=0, max_iter=10, tol=0)
    got, ref = fastnmf.nmf(Xd, 5, **kw), fastnmf.nmf(X, 5, **kw)
    _close(ref.W, got.W, 1e-10)
    _close(ref.H, got.H, 1e-10)
    assert [len(group) for _, group in placed[-1]] == [4, 4]
    _no_tasks_left(client)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_share_runs_on_its_workers_threads(monkeypatch, threads):
    """A worker's share runs the pass on the threads the worker was given (a worker in
    the client's process, whose OMP_NUM_THREADS no nanny set, included)."""
    seen = []
    real = _dask.block_pass
    monkeypatch.setattr(_dask, "block_pass", lambda *a, **kw: seen.append(a[8]) or real(*a, **kw))
    X = _data()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=threads, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        kw = dict(init="random", random_state=0, max_iter=10, tol=0)
        got = fastnmf.nmf(da.from_array(X, chunks=(150, 150)), 5, **kw)
    ref = fastnmf.nmf(X, 5, **kw)
    _close(ref.W, got.W, 1e-10)
    _close(ref.H, got.H, 1e-10)
    assert set(seen) == {min(threads, _threads.available_cpus())}


@pytest.mark.parametrize("victim", [0, 1])  # the share that returns the total; a child
def test_a_lost_worker_stops_the_call_and_frees_the_others(monkeypatch, victim):
    """A worker killed in the middle of a call: the call raises within seconds (an
    actor's call would otherwise wait for a worker that never comes back), the other
    worker's share stops waiting for its child, and the next call runs."""
    import os
    import signal
    import threading

    X = _data(n=8000, m=1000)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        Xd = da.from_array(X, chunks=(1000, 1000))
        started, out = threading.Event(), {}
        send = _dask._send_rows
        monkeypatch.setattr(_dask, "_send_rows", lambda *a: started.set() or send(*a))

        def call():
            try:
                fastnmf.nmf(Xd, 5, random_state=0, max_iter=10**6, tol=0, init="random")
            except BaseException as exc:
                out["error"] = exc

        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        assert started.wait(60)
        time.sleep(1.0)  # well into the iterations
        worker = sorted(client.scheduler_info()["workers"])[victim]
        os.kill(client.run(os.getpid, workers=[worker])[worker], signal.SIGKILL)
        killed = time.monotonic()
        thread.join(30)
        assert not thread.is_alive() and time.monotonic() - killed < 10
        assert isinstance(out.get("error"), (OSError, RuntimeError)), out
        client.wait_for_workers(2, timeout=60)
        got = fastnmf.nmf(Xd, 5, random_state=0, max_iter=5, tol=0, init="random")
        _close(fastnmf.nmf(X, 5, random_state=0, max_iter=5, tol=0, init="random").W,
               got.W, 1e-10)


@pytest.mark.parametrize("direct", [True, False])
def test_calls_go_to_the_workers_directly_or_through_the_scheduler(client, monkeypatch,
                                                                    direct):
    """The shares' calls go straight to workers on this machine (LocalCluster), else
    through the scheduler, as the client's messages do: the same result either way."""
    assert _dask._reaches(client, list(client.scheduler_info()["workers"]))
    monkeypatch.setattr(_dask, "_reaches", lambda client, workers: direct)
    X = _data()
    Xd = da.from_array(X, chunks=(150, 150))
    for solver in ("cd", "als"):
        kw = dict(solver=solver, init="random", random_state=0, max_iter=10, tol=0)
        got, ref = fastnmf.nmf(Xd, 5, **kw), fastnmf.nmf(X, 5, **kw)
        _close(ref.W, got.W, 1e-10)
        _close(ref.H, got.H, 1e-10)
    _no_tasks_left(client)


@pytest.mark.parametrize("solver, accelerate", [("cd", False), ("bpp", False), ("cd", True)])
def test_shares_on_three_workers_add_by_a_tree(monkeypatch, solver, accelerate):
    """Three workers: the shares' parts are added by a tree with a lone branch (share 0
    takes share 1's, then share 2's); the result is the in-memory one, and every share is
    gone after the call."""
    X = _data(n=1350)  # 9 blocks: three a worker
    with distributed.LocalCluster(n_workers=3, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        Xd = da.from_array(X, chunks=(150, 150))
        counts = []
        total = _dask._tree_total
        monkeypatch.setattr(_dask, "_tree_total", lambda shares, *a: counts.append(len(shares))
                            or total(shares, *a))
        kw = dict(solver=solver, accelerate=accelerate, init="random", random_state=0,
                  max_iter=12, tol=0)
        got, ref = fastnmf.nmf(Xd, 5, **kw), fastnmf.nmf(X, 5, **kw)
        _close(ref.W, got.W, 1e-10)
        _close(ref.H, got.H, 1e-10)
        np.testing.assert_allclose(got.history, ref.history, rtol=1e-10)
        assert counts and set(counts) == {3}
        _no_tasks_left(client)


@pytest.mark.parametrize("solver, accelerate", [(s, False) for s in SOLVERS] + [("cd", True)])
def test_x_never_comes_to_the_client(client, monkeypatch, solver, accelerate):
    X = _data()
    Xd = da.from_array(X, chunks=(150, 150))

    def refuse(self, c, out):
        raise AssertionError("a block of X was read through the client")

    monkeypatch.setattr(_dask.DaskRows, "_load", refuse)
    kw = dict(solver=solver, accelerate=accelerate, max_iter=10, tol=0, random_state=0)
    for init in ("nndsvda", "random"):
        got = fastnmf.nmf(Xd, 5, init=init, **kw)
        ref = fastnmf.nmf(X, 5, init=init, **kw)
        _close(ref.W, got.W, 1e-10)
        _close(ref.H, got.H, 1e-10)


@pytest.mark.parametrize("solver, accelerate", [(s, False) for s in SOLVERS] + [("cd", True)])
def test_w_rows_stay_on_the_workers(client, monkeypatch, solver, accelerate):
    """From a random start, W goes to the workers once (to each worker's share) and comes
    back once: no iteration makes a product with X through the client (``times``) or
    sends W's rows again."""
    X = _data()
    Xd = da.from_array(X, chunks=(150, 150))
    sent = []
    send = _dask._send_rows
    monkeypatch.setattr(_dask, "_send_rows", lambda *a: sent.append(1) or send(*a))

    def refuse(*args):
        raise AssertionError("a product with X made through the client")

    monkeypatch.setattr(_dask, "times", refuse)
    kw = dict(solver=solver, accelerate=accelerate, init="random", random_state=0,
              max_iter=15, tol=0)
    got = fastnmf.nmf(Xd, 5, **kw)
    assert sent == [1]
    ref = fastnmf.nmf(X, 5, **kw)
    _close(ref.W, got.W, 1e-10)
    _close(ref.H, got.H, 1e-10)


@pytest.mark.parametrize("solver, accelerate", [("als", False), ("bpp", False), ("cd", True)])
def test_guesses_settled_and_redone_on_the_workers(client, monkeypatch, solver, accelerate):
    """als, bpp and accelerate run each pass on a guess of their decision over the whole
    factor; a wrong guess is redone by blocks (accelerate's count past the guess by a redo
    on the cap first). Some guesses miss here, and the iterates are still the in-memory
    ones, at every check."""
    X = _data()
    Xd = da.from_array(X, chunks=(150, 150))
    settled = []
    settle = _dask.settle_of

    def record(solver, evidence, tried, *args, **kw):
        got = settle(solver, evidence, tried, *args, **kw)
        settled.append((tried, got[0], got[1]))
        return got

    monkeypatch.setattr(_dask, "settle_of", record)
    kw = dict(solver=solver, accelerate=accelerate, random_state=0, max_iter=30, tol=0,
              shuffle=True, alpha_W=0.1, l1_ratio=1.0)  # a penalty that makes guesses miss
    for init in ("random", "nndsvda"):
        got = fastnmf.nmf(Xd, 5, init=init, **kw)
        ref = fastnmf.nmf(X, 5, init=init, **kw)
        _close(ref.W, got.W, 1e-10)
        _close(ref.H, got.H, 1e-10)
        np.testing.assert_allclose(got.history, ref.history, rtol=1e-10)
    redone = [(tried, outcome) for tried, outcome, redo in settled if redo]
    assert 0 < len(redone) < len(settled)
    assert all(outcome != tried for tried, outcome in redone)
    if accelerate:  # both ways: past the guess (to the cap) and short of it
        assert any(o > t for t, o in redone) and any(o < t for t, o in redone)


def test_options_stopping_float32_and_callback(client):
    X = _data(dtype=np.float32)
    Xd = da.from_array(X, chunks=(300, 150))
    seen = []
    kw = dict(random_state=2, max_iter=300, tol=1e-3, shuffle=True, alpha_W=1e-3,
              l1_ratio=0.3)
    a = fastnmf.nmf(X, 5, **kw)
    b = fastnmf.nmf(Xd, 5, callback=lambda it, err: seen.append((it, err)), **kw)
    assert b.W.dtype == np.float32
    _close(a.W, b.W, 1e-3)
    assert abs(a.n_iter - b.n_iter) <= 2 and b.converged
    assert [it for it, _ in seen] == list(range(b.n_iter + 1))
    assert b.reconstruction_err == pytest.approx(a.reconstruction_err, rel=1e-4)
    H = a.H
    for solver in ("cd", "mu"):  # a fixed H: only W's rows, on the workers
        a = fastnmf.nmf(X.astype(np.float64), 5, solver=solver, H=H.astype(np.float64),
                        update_H=False, max_iter=10, tol=0)
        b = fastnmf.nmf(Xd.astype(np.float64), 5, solver=solver, H=H.astype(np.float64),
                        update_H=False, max_iter=10, tol=0)
        _close(a.W, b.W, 1e-10)


def test_irregular_and_sparse_chunks(client):
    X = _data(n=1000)
    ref = fastnmf.nmf(X, 5, random_state=0, max_iter=15, tol=0)
    Xd = da.from_array(X, chunks=((100, 300, 50, 550), (70, 80)))
    _close(ref.W, fastnmf.nmf(Xd, 5, random_state=0, max_iter=15, tol=0).W, 1e-10)
    S = sp.random(1000, 150, density=0.2, format="csr", random_state=1)
    ref = fastnmf.nmf(S, 5, random_state=0, max_iter=15, tol=0)
    Sd = da.from_array(S.toarray(), chunks=(250, 150)).map_blocks(sp.csr_matrix)
    got = fastnmf.nmf(Sd, 5, random_state=0, max_iter=15, tol=0)
    _close(ref.W, got.W, 1e-10)
    _close(ref.H, got.H, 1e-10)


def test_sparse_chunks_with_duplicates_and_stored_zeros(client):
    """A sparse chunk stands for the sum of its duplicates and its stored zeros for
    nothing, as a sparse X in memory does, and the caller's chunks are left as they
    were."""
    S = sp.random(600, 80, density=0.2, format="csr", random_state=2)
    coo = S.tocoo()
    rng = np.random.default_rng(5)
    part = coo.data * rng.random(coo.nnz)
    zeros = rng.integers(0, 600, 50), rng.integers(0, 80, 50)
    noisy = sp.csr_matrix((np.concatenate([part, coo.data - part, np.zeros(50)]),
                           (np.concatenate([coo.row, coo.row, zeros[0]]),
                            np.concatenate([coo.col, coo.col, zeros[1]]))), shape=S.shape)
    noisy.has_canonical_format = False  # duplicates kept as given
    blocks = [noisy[i:i + 150] for i in range(0, 600, 150)]
    kept = [(b.data.copy(), b.indices.copy()) for b in blocks]
    Sd = da.concatenate([da.from_array(b, chunks=b.shape, asarray=False) for b in blocks])
    ref = fastnmf.nmf(S, 5, random_state=0, max_iter=15, tol=0)
    got = fastnmf.nmf(Sd, 5, random_state=0, max_iter=15, tol=0)
    _close(ref.W, got.W, 1e-10)
    _close(ref.H, got.H, 1e-10)
    assert got.reconstruction_err == pytest.approx(ref.reconstruction_err, rel=1e-10)
    for b, (data, indices) in zip(blocks, kept):
        np.testing.assert_array_equal(b.data, data)
        np.testing.assert_array_equal(b.indices, indices)


def test_malformed_sparse_chunk_is_named(client):
    S = sp.random(300, 40, density=0.2, format="csr", random_state=3)
    bad = S[150:].copy()
    bad.indices[5] = 40  # a column beyond the shape
    Sd = da.concatenate([da.from_array(S[:150], chunks=(150, 40), asarray=False),
                         da.from_array(bad, chunks=(150, 40), asarray=False)])
    with pytest.raises(ValueError, match=r"X \(rows 150\.\.299 of the Dask array\) is a "
                                         r"malformed CSR matrix: its column indices must be "
                                         r"in \[0, 40\)"):
        fastnmf.nmf(Sd, 5, random_state=0, max_iter=5)
    _no_tasks_left(client)


def test_bad_chunks_are_named_and_nothing_runs_on(client):
    X = _data()
    X[700, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity \(in rows 600\.\.749 of the Dask"):
        fastnmf.nmf(da.from_array(X, chunks=(150, 150)), 5)
    X[700, 3] = -2.0
    with pytest.raises(ValueError, match=r"non-negative; its minimum in rows 600\.\.749 .* -2"):
        fastnmf.nmf(da.from_array(X, chunks=(150, 150)), 5)
    with pytest.raises(ValueError, match="beta_loss other than 'frobenius' needs X in memory"):
        fastnmf.nmf(da.from_array(_data(), chunks=(150, 150)), 5, solver="mu",
                    beta_loss="kullback-leibler")
    _no_tasks_left(client)


def test_a_failing_callback_stops_the_call_and_cancels(client):
    Xd = da.from_array(_data(), chunks=(150, 150))

    def stop(it, err):
        if it == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fastnmf.nmf(Xd, 5, random_state=0, max_iter=1000, tol=0, callback=stop)
    _no_tasks_left(client)


def test_without_a_distributed_client_x_is_read_out_of_core(monkeypatch):
    # Dask's own schedulers (threads, processes): the blocks are computed one at a time as
    # the chunks of an X out of core (_chunked).
    monkeypatch.setattr(_dask, "_client", lambda: None)
    X = _data()
    Xd = da.from_array(X, chunks=(150, 150))
    assert not _dask.is_distributed(Xd)
    got = fastnmf.nmf(Xd, 5, random_state=0, max_iter=10, tol=0)
    _close(fastnmf.nmf(X, 5, random_state=0, max_iter=10, tol=0).W, got.W, 1e-10)
    # sparse chunks too: each block read dense, one at a time
    S = sp.random(600, 150, density=0.2, format="csr", random_state=1)
    Sd = da.from_array(S.toarray(), chunks=(150, 150)).map_blocks(sp.csr_matrix)
    got = fastnmf.nmf(Sd, 5, random_state=0, max_iter=10, tol=0)
    _close(fastnmf.nmf(S.toarray(), 5, random_state=0, max_iter=10, tol=0).W, got.W, 1e-10)


@pytest.mark.parametrize("solver", ["cd", "als"])  # a separable solver; a guessing one
def test_w_can_stay_on_the_cluster(client, solver):
    """gather_W=False: W is a dask.array of X's row blocks, held by the workers, equal to
    the gathered W (up to the rounding of another placement of the blocks)."""
    X = _data(n=1130)  # a last block shorter than the others
    Xd = da.from_array(X, chunks=(150, 150))
    kw = dict(solver=solver, init="random", random_state=0, max_iter=10, tol=0)
    gathered = fastnmf.nmf(Xd, 5, **kw)
    kept = fastnmf.nmf(Xd, 5, gather_W=False, **kw)
    memory = fastnmf.nmf(X, 5, **kw)
    assert isinstance(kept.W, da.Array) and isinstance(gathered.W, np.ndarray)
    assert kept.W.shape == (1130, 5) and kept.W.dtype == np.float64
    assert kept.W.chunks[0] == (150,) * 7 + (80,)
    W = kept.W.compute()
    for ref in (gathered, memory):
        _close(ref.W, W, 1e-10)
        _close(ref.H, kept.H, 1e-10)
        np.testing.assert_allclose(kept.history, ref.history, rtol=1e-10)
    assert float((kept.W @ kept.H).sum().compute()) == pytest.approx(
        float((memory.W @ memory.H).sum()), rel=1e-10)


def test_gather_w_false_needs_x_on_a_cluster(client):
    X = _data(n=300)
    with pytest.raises(ValueError, match="gather_W"):
        fastnmf.nmf(X, 5, gather_W=False)
    with pytest.raises(ValueError, match=r"Xs\[0\]: gather_W"):
        fastnmf.nmf_batch([X, X], 5, gather_W=False)
    with pytest.raises(ValueError, match="gather_W"):
        fastnmf.reference.nmf(da.from_array(X, chunks=(100, 150)), 5, gather_W=False)
