"""One call on several threads (``n_threads``): the same bits whatever the count, and BLAS
held to one thread while the kernels run, restored afterwards."""

import json
import os
import subprocess
import sys
import threading
import textwrap

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

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


def test_a_blas_count_set_by_someone_else_during_a_call_stands():
    """Another thread sets the BLAS count for good while a call holds it at one: the
    call's end leaves that setting as it is rather than putting back the one it found."""
    with threadpool_limits(limits=2, user_api="blas"):  # a count to put back, on any machine
        before = _blas_threads()
        libs = single_threaded_blas._libraries()
        try:
            with single_threaded_blas:
                assert set(_blas_threads()) == {1}
                for lib in libs:
                    if not lib.per_thread:
                        lib.set(3)
            assert all(lib.get() == 3 for lib in libs if not lib.per_thread)
        finally:
            for lib, count in zip(libs, before):
                lib.set(count)
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


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_gets_back_the_blas_threads_a_call_in_another_thread_held():
    """A process forked while another thread's call holds BLAS at one thread has none of
    the holder's threads, so nothing there would ever restore the count: the child
    restores it as it starts (the parent keeps its hold until its call ends)."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    with threadpool_limits(limits=2, user_api="blas"):  # a count to restore, on any machine
        before = _blas_threads()
        holding, leave = threading.Event(), threading.Event()

        def call():
            with single_threaded_blas:
                holding.set()
                leave.wait(60)

        caller = threading.Thread(target=call)
        caller.start()
        try:
            assert holding.wait(20)
            with multiprocessing.get_context("fork").Pool(1) as pool:
                in_child = pool.apply_async(_blas_threads).get(timeout=60)
            assert set(_blas_threads()) == {1}
        finally:
            leave.set()
            caller.join(20)
        assert in_child == before
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


def _threads_in_child(X):
    from fastnmf._threads import forked
    from fastnmf._validation import resolve_threads

    return forked(), resolve_threads(2, "n_threads"), fastnmf.nmf(
        X, K, random_state=0, tol=0, max_iter=3, n_threads=2).W


def test_forkserver_children_keep_their_threads(big):
    """A forkserver that does not preload fastnmf forks children that import it afresh:
    they are not forked from a process that imported it, and run on the threads they ask
    for (a forked child's count is 1 whatever it asks); the same bits as here."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no forkserver on this platform")
    here = fastnmf.nmf(big, K, random_state=0, tol=0, max_iter=3, n_threads=1)
    with multiprocessing.get_context("forkserver").Pool(1) as pool:
        was_forked, threads, W = pool.apply_async(_threads_in_child, (big,)).get(timeout=120)
    assert not was_forked
    assert threads == 2
    np.testing.assert_array_equal(W, here.W)


def test_a_child_of_a_process_that_only_imported_fastnmf_runs_on_one_thread():
    """GNU OpenMP's pool is shared with any library that loads the same libgomp, so a
    child forked from a process that imported fastnmf -- even one that never ran a kernel
    on several threads itself -- runs on one thread whatever it asks."""
    code = textwrap.dedent("""
        import os
        import fastnmf
        from fastnmf._threads import forked
        from fastnmf._validation import resolve_threads
        pid = os.fork()
        if pid == 0:
            print(forked(), resolve_threads(2, "n_threads"), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["True", "1"], out.stderr


# -- n_threads=None: what OpenMP may use here, as scikit-learn's OpenMP code decides ------

from fastnmf import _threads  # noqa: E402

# A call run in a fresh interpreter: prints its default thread count and the OS threads
# the call added to the process (OpenMP keeps its team's other threads alive after it).
_REPORT = """
import os, sys, json
import numpy as np
import fastnmf
from fastnmf._threads import default_threads
from fastnmf._datasets import low_rank
X = low_rank(600, 400, 8, noise=0.1, seed=0)
before = len(os.listdir("/proc/self/task"))
fastnmf.nmf(X, 20, max_iter=3, tol=0, random_state=0)
added = len(os.listdir("/proc/self/task")) - before
print(json.dumps({"default": default_threads(), "added": added}))
"""

needs_two_cpus = pytest.mark.skipif(
    _threads.available_cpus() < 2 or not os.path.isdir("/proc/self/task"),
    reason="needs 2 CPUs and /proc to see the threads a call uses")


def _fresh(env_update, script=_REPORT):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                        "OMP_DISPLAY_ENV")}
    env.update(env_update)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    return out


def _report(env_update):
    return json.loads(_fresh(env_update).stdout.strip().splitlines()[-1])


@needs_two_cpus
def test_default_uses_the_available_cpus_and_omp_num_threads():
    """Without OMP_NUM_THREADS: every available CPU (the call's OpenMP team has that many
    threads); OMP_NUM_THREADS=1 (what loky and Dask's nanny set in their workers): one
    thread, no OpenMP team at all."""
    free = _report({})
    assert free["default"] == _threads.available_cpus()
    assert free["added"] == free["default"] - 1
    one = _report({"OMP_NUM_THREADS": "1"})
    assert one == {"default": 1, "added": 0}


def test_omp_num_threads_is_taken_as_it_is():
    """The user's OMP_NUM_THREADS may ask for more threads than CPUs (as in scikit-learn)."""
    want = _threads.available_cpus() + 1
    assert _report({"OMP_NUM_THREADS": str(want)})["default"] == want


def test_threadpoolctl_openmp_limit():
    before = _threads.default_threads()
    with threadpool_limits(1, user_api="openmp"):
        assert _threads.default_threads() == 1
        assert fastnmf._validation.resolve_threads(-1, "n_threads") == 1
    assert _threads.default_threads() == before


@needs_two_cpus
def test_affinity_mask():
    mask = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(mask)})
        assert _threads.default_threads() == 1
    finally:
        os.sched_setaffinity(0, mask)
    assert _threads.default_threads() == min(len(mask), _threads.cpu_quota() or len(mask))


def _tree(tmp_path, proc_line, files):
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "cgroup"
    proc.write_text(proc_line + "\n")
    for name, text in files.items():
        path = tmp_path / "fs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path / "fs"), str(proc)


def test_cgroup_v2_quota(tmp_path):
    """The tightest cpu.max along the process's cgroup path, rounded up."""
    root, proc = _tree(tmp_path, "0::/jobs/mine", {
        "jobs/cpu.max": "150000 100000\n", "jobs/mine/cpu.max": "max 100000\n"})
    assert _threads.cpu_quota(root, proc) == 2
    root, proc = _tree(tmp_path / "b", "0::/", {"cpu.max": "50000 100000\n"})
    assert _threads.cpu_quota(root, proc) == 1  # inside a container: its own cgroup at /
    root, proc = _tree(tmp_path / "c", "0::/x", {"x/cpu.max": "max 100000\n"})
    assert _threads.cpu_quota(root, proc) is None


def test_cgroup_v1_quota(tmp_path):
    root, proc = _tree(tmp_path, "4:cpu,cpuacct:/docker/abc", {
        "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000\n",
        "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert _threads.cpu_quota(root, proc) == 3
    root, proc = _tree(tmp_path / "b", "4:cpu,cpuacct:/docker/abc", {
        "cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert _threads.cpu_quota(root, proc) == 1  # the container's cgroup mounted at the root


def test_quota_caps_the_default(monkeypatch):
    monkeypatch.setattr(_threads, "cpu_quota", lambda: 1)
    monkeypatch.setattr(_threads, "_omp_num_threads_at_load", None)
    assert _threads.available_cpus() == 1
    assert _threads.default_threads() == 1


def test_omp_num_threads_set_after_load_changes_nothing(monkeypatch):
    """OpenMP read OMP_NUM_THREADS when it loaded; Dask's nanny sets it in its parent's
    os.environ afterwards (for the workers it spawns), which must not lift the cap."""
    before = _threads.default_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "64")
    assert _threads.default_threads() == before


def _worker_report():
    """default_threads() in this worker, and the OS threads a threaded-size call adds."""
    X = low_rank(600, 400, 8, noise=0.1, seed=0)
    before = len(os.listdir("/proc/self/task"))
    fastnmf.nmf(X, 20, max_iter=3, tol=0, random_state=0)
    return (_threads.default_threads(), len(os.listdir("/proc/self/task")) - before,
            os.environ.get("OMP_NUM_THREADS"))


@needs_two_cpus
def test_loky_workers_use_their_share():
    """joblib's loky workers run with OMP_NUM_THREADS = CPUs // n_jobs: one each here."""
    joblib = pytest.importorskip("joblib")
    n_jobs = _threads.available_cpus()
    got = joblib.Parallel(n_jobs=n_jobs, backend="loky")(
        joblib.delayed(_worker_report)() for _ in range(n_jobs))
    for default, added, omp in got:
        assert omp == "1"
        assert (default, added) == (1, 0)


@needs_two_cpus
def test_dask_worker_uses_its_threads():
    """A LocalCluster(threads_per_worker=1) worker process: its nanny sets OMP_NUM_THREADS=1."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        default, added, omp = client.submit(_worker_report, pure=False).result(timeout=120)
    assert omp == "1"
    assert (default, added) == (1, 0)


# -- OpenMP's idle threads sleep rather than spin ------------------------------------------

_WAIT = "import os, fastnmf; print(repr(os.environ.get('OMP_WAIT_POLICY')))"


def _spin_count(env):
    """GNU OpenMP's spin count as it printed it when it loaded (OMP_DISPLAY_ENV=VERBOSE),
    and OMP_WAIT_POLICY as the Python process saw it afterwards."""
    import re

    out = _fresh({"OMP_DISPLAY_ENV": "VERBOSE", **env}, _WAIT)
    found = re.findall(r"GOMP_SPINCOUNT\s*=\s*'(\d+)'", out.stderr)
    if not found:
        pytest.skip("the kernels' OpenMP runtime is not GNU OpenMP")
    return int(found[0]), out.stdout.strip()


def test_openmp_loads_passive_and_the_environment_is_left_alone():
    """Idle threads sleep at once (spin count 0), and OMP_WAIT_POLICY is not left in
    os.environ (nor in child processes' environment)."""
    assert _spin_count({}) == (0, "None")


@pytest.mark.parametrize("env, spins", [({"OMP_WAIT_POLICY": "ACTIVE"}, 30_000_000_000),
                                        ({"GOMP_SPINCOUNT": "10000"}, 10000)])
def test_the_users_wait_policy_wins(env, spins):
    assert _spin_count(env) == (spins, repr(env.get("OMP_WAIT_POLICY")))


# -- fastnmf.sklearn.NMF(n_threads=...) ------------------------------------------------------


def test_sklearn_estimator_takes_n_threads(big):
    sklearn = pytest.importorskip("sklearn")
    from fastnmf.sklearn import NMF

    model = NMF(K, max_iter=5, tol=0, random_state=0, n_threads=2)
    assert model.get_params()["n_threads"] == 2
    assert sklearn.base.clone(model).n_threads == 2
    assert model.set_params(n_threads=1).n_threads == 1
    one = model.fit_transform(big)
    two = model.set_params(n_threads=2).fit_transform(big)
    np.testing.assert_array_equal(one, two)
    # The estimator starts from scikit-learn's randomized SVD (BLAS on its own threads),
    # fastnmf.nmf from its own replica of it: equal up to the rounding of the start.
    np.testing.assert_allclose(
        one, fastnmf.nmf(big, K, max_iter=5, tol=0, random_state=0, n_threads=2).W,
        rtol=1e-7, atol=1e-12)


def test_sklearn_estimator_passes_n_threads_on(monkeypatch):
    pytest.importorskip("sklearn")
    import fastnmf.sklearn as fsk

    seen = []
    real = fsk.nmf

    def spy(*args, **kwargs):
        seen.append(kwargs["n_threads"])
        return real(*args, **kwargs)

    monkeypatch.setattr(fsk, "nmf", spy)
    X = np.abs(np.random.default_rng(0).random((20, 10)))
    model = fsk.NMF(3, max_iter=5, tol=0, n_threads=3).fit(X)
    model.transform(X)
    fsk.NMF(3, max_iter=5, tol=0).fit(X)
    assert seen == [3, 3, None]


@pytest.mark.parametrize("value", [0, 1.5, "2"])
def test_sklearn_estimator_rejects_bad_n_threads(value):
    pytest.importorskip("sklearn")
    from sklearn.utils._param_validation import InvalidParameterError

    from fastnmf.sklearn import NMF

    with pytest.raises(InvalidParameterError, match="'n_threads' parameter of NMF"):
        NMF(2, n_threads=value).fit(np.ones((4, 3)))
