"""Ctrl-C and the loop's call-out between convergence checks (_common.pxd, Hook).

A long ``fastnmf.nmf`` or ``nmf_batch`` stops soon after SIGINT with KeyboardInterrupt; a
call from a second Python thread is left alone while the process lives on (Python gives the
KeyboardInterrupt to the main thread), and stops once the interrupt ends the process;
progress callbacks and ``verbose`` lines go through Python; none of it changes a result.

The SIGINT tests run a subprocess whose call would last minutes (measured in the child from a
short call of the same problem, and asserted), and check that it ends with KeyboardInterrupt
within ``BOUND`` seconds of the signal. The bound is behavioural (the call stops instead of
running on: far above the few tens of milliseconds the kernels take to notice, far below the
call's length), not a benchmark: it allows for a slow, shared machine and the child's exit.
"""

import contextlib
import io
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import fastnmf
from fastnmf._datasets import low_rank
from conftest import SOLVERS  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32",
                                reason="POSIX signals")

BOUND = 5.0  # seconds from SIGINT to the child's exit
LONG = 10**6  # max_iter of the call that is interrupted (tol = 0: it runs them all)

# The child: times a short call, prints how long the long one would take, starts it.
# SIGINT is given Python's handler explicitly: a child started from a shell's background
# job inherits SIGINT ignored, and Python then installs no handler.
CHILD = """
import signal, sys, threading, time
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
import fastnmf
from fastnmf._datasets import low_rank
{setup}
t0 = time.perf_counter()
call(20)
print(f"full {{(time.perf_counter() - t0) / 20 * {long}:.1f}}", flush=True)
call({long})
print("finished", flush=True)
"""


def _interrupt(setup):
    """Run the child for ``setup``; SIGINT it once its long call is under way. Returns
    (the long call's estimated length, seconds from the signal to the exit, the process,
    its stdout, its stderr)."""
    setup = "\n".join(line.strip() for line in setup.splitlines())  # no statement spans lines
    code = CHILD.format(setup=setup, long=LONG)
    proc = subprocess.Popen([sys.executable, "-c", code], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline()
    assert line.startswith("full "), (line, proc.communicate())
    waited, out, err = _sigint(proc)
    return float(line.split()[1]), waited, proc, out, err


def _sigint(proc, timeout=120):
    """SIGINT ``proc`` half a second from now (well into its long call: a start takes
    milliseconds); returns (seconds from the signal to its exit, its stdout, its stderr).
    It is killed on any way out."""
    try:
        time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=timeout)
        return time.monotonic() - sent, out, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _assert_interrupted(full, waited, proc, out, err):
    assert full > 20 * BOUND, f"the call is not long enough to tell ({full:.1f} s)"
    assert err.rstrip().splitlines()[-1] == "KeyboardInterrupt", err
    assert proc.returncode == -signal.SIGINT  # Python's exit for an uncaught Ctrl-C
    assert "finished" not in out
    assert waited < BOUND, f"stopped {waited:.1f} s after SIGINT"


@pytest.mark.parametrize("setup", [
    # cd on a dense X: the products and sweeps on all cores (the loop's work-paced checks).
    """X = low_rank(400, 300, 20, seed=0)
    call = lambda it: fastnmf.nmf(X, 20, max_iter=it, tol=0, random_state=0)""",
    # bpp on a sparse float32 X.
    """X = low_rank(400, 300, 20, density=0.3, dtype=np.float32, seed=0)
    call = lambda it: fastnmf.nmf(X, 20, solver="bpp", max_iter=it, tol=0, random_state=0)""",
    # mu for another β: its own loop.
    """X = low_rank(200, 150, 10, seed=0)
    call = lambda it: fastnmf.nmf(X, 10, solver="mu", beta_loss="kullback-leibler",
                                  max_iter=it, tol=0, random_state=0)""",
], ids=["cd-dense", "bpp-sparse-float32", "mu-kl"])
def test_nmf_stops_on_sigint(setup):
    _assert_interrupted(*_interrupt(setup))


# The nndsvd* start's randomized SVD, made as long as wanted by its count of power
# iterations (``_init.power_iterations``, looked up at each call): ``call(q)`` starts from
# q of them and runs one iteration.
_LONG_START = """from fastnmf import _init
long_start = lambda q: setattr(_init, "power_iterations", lambda k, s: q)
"""


@pytest.mark.parametrize("setup", [
    # a dense X: the whole SVD in one nogil call (rsvd_core), told each product's work
    """X = low_rank(400, 300, 20, seed=0)
    call = lambda q: (long_start(q), fastnmf.nmf(X, 10, init="nndsvda", max_iter=1))""",
    # a sparse X: the steps from Python, each product one compiled call
    """X = low_rank(400, 300, 20, density=0.3, seed=0)
    call = lambda q: (long_start(q), fastnmf.nmf(X, 10, init="nndsvda", max_iter=1))""",
    # a batch: each item's start on the loop's threads, stopped by the batch's flag
    """Xs = [low_rank(300, 200, 10, seed=s) for s in range(6)]
    call = lambda q: (long_start(q), fastnmf.nmf_batch(Xs, 10, n_jobs=2, init="nndsvda",
                                                        max_iter=1))""",
], ids=["dense", "sparse", "nmf_batch"])
def test_the_start_stops_on_sigint(setup):
    _assert_interrupted(*_interrupt(_LONG_START + setup))


def test_out_of_core_nmf_stops_on_sigint(tmp_path):
    # X read a chunk at a time from its file (_chunked): the reads look for Ctrl-C too.
    path = tmp_path / "x.npy"
    np.save(path, low_rank(400, 300, 20, seed=0))
    _assert_interrupted(*_interrupt(
        f"""from fastnmf import _chunked
        _chunked.CHUNK_BYTES = 1 << 16
        X = np.load({str(path)!r}, mmap_mode="r")
        call = lambda it: fastnmf.nmf(X, 20, max_iter=it, tol=0, random_state=0)"""))


def test_batch_stops_every_item_on_sigint():
    _assert_interrupted(*_interrupt(
        """Xs = [low_rank(300, 200, 10, seed=s) for s in range(6)]
        call = lambda it: fastnmf.nmf_batch(Xs, 10, n_jobs=2, max_iter=it, tol=0,
                                            random_state=0)"""))


def test_batch_on_a_thread_pool_stops_on_sigint():
    # The chunks already running on the pool's threads stop too (their run's stop flag),
    # not only those not started (cancelled): the process exits at once.
    _assert_interrupted(*_interrupt(
        """from concurrent.futures import ThreadPoolExecutor
        ex = ThreadPoolExecutor(2)
        Xs = [low_rank(300, 200, 10, seed=s) for s in range(6)]
        call = lambda it: fastnmf.nmf_batch(Xs, 10, executor=ex, max_iter=it, tol=0,
                                            random_state=0)"""))


@pytest.mark.parametrize("call", [
    "fastnmf.nmf(X, 10, **LONG)",
    "fastnmf.nmf_batch([X] * 4, 10, **LONG)",
    "fastnmf.nmf_batch([X] * 4, 10, n_jobs=2, **LONG)",
], ids=["nmf", "nmf_batch", "nmf_batch-n_jobs=2"])
def test_a_call_in_another_thread_ends_with_the_interrupted_process(call):
    # Ctrl-C ends the main thread (here it polls the worker); Python then waits for every
    # other thread before it exits: the worker's call stops with KeyboardInterrupt as the
    # main thread's would have (a batch's loop by its stop flag: _batch._ExitWatch).
    code = textwrap.dedent(f"""
        import signal, threading, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import fastnmf
        from fastnmf._datasets import low_rank
        X = low_rank(300, 200, 10, seed=0)
        LONG = dict(max_iter=10**7, tol=0, random_state=0)
        worker = threading.Thread(target=lambda: {call})
        worker.start()
        print("started", flush=True)
        while worker.is_alive():
            time.sleep(0.05)
        print("finished", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == "started\n", proc.communicate()
    waited, out, err = _sigint(proc)
    assert waited < BOUND, f"exited {waited:.1f} s after SIGINT"
    assert "finished" not in out
    # the main thread's and the worker's
    assert err.splitlines().count("KeyboardInterrupt") == 2, err
    assert "Exception in thread" in err, err
    assert proc.returncode == -signal.SIGINT


def test_sigint_with_the_call_in_a_second_thread():
    # Python delivers signals to the main thread only: the main thread, waiting for the
    # worker, gets the KeyboardInterrupt at once; the worker's call runs on to its end and
    # gives the same result as the same call made afterwards in the main thread.
    code = textwrap.dedent("""
        import signal, threading, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import numpy as np
        import fastnmf
        from fastnmf._datasets import low_rank
        X = low_rank(300, 200, 10, seed=0)
        call = lambda it: fastnmf.nmf(X, 10, max_iter=it, tol=0, random_state=0)
        call(5)  # warm up
        t0 = time.perf_counter()
        call(100)
        iters = max(100, int(2.0 / ((time.perf_counter() - t0) / 100)))  # about 2 s
        out, done = {}, threading.Event()  # (Python 3.11 forgets a thread whose join()
        # was interrupted: wait for an Event instead.)
        worker = threading.Thread(target=lambda: (out.setdefault("res", call(iters)),
                                                  done.set()))
        worker.start()
        print("started", flush=True)
        try:
            done.wait()
            print("waited", flush=True)
        except KeyboardInterrupt:
            print("main thread: KeyboardInterrupt", flush=True)
        done.wait()
        a, b = out["res"], call(iters)
        same = (np.array_equal(a.W, b.W) and np.array_equal(a.H, b.H)
                and np.array_equal(a.history, b.history) and a.n_iter == b.n_iter == iters)
        print("worker's result", "identical" if same else "different", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == "started\n", proc.communicate()
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        line = proc.stdout.readline()
        waited = time.monotonic() - sent
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert line == "main thread: KeyboardInterrupt\n", (line, err)
    assert waited < BOUND
    assert rest == "worker's result identical\n", err
    assert proc.returncode == 0, err


# --- the call-out: progress, verbose, no change to any result ----------------------------------

CASES = [dict(solver=s) for s in SOLVERS] + [
    dict(solver="mu", beta_loss="kullback-leibler"), dict(solver="cd", accelerate=True)]


def _ids(case):
    return "-".join(str(v) for v in case.values())


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_progress_sees_every_check(case):
    X = low_rank(40, 30, 4, seed=1)
    seen = []
    res = fastnmf.nmf(X, 4, max_iter=30, tol=0, random_state=0,
                      callback=lambda it, err: seen.append((it, err)), **case)
    every = 10 if case["solver"] == "mu" else 1
    assert [it for it, _ in seen] == list(range(0, 31, every))
    assert [err for _, err in seen] == list(res.history)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_the_reference_calls_back_as_the_kernel_does(case):
    from fastnmf import reference

    X = low_rank(40, 30, 4, seed=1)
    seen = {}
    for name, fn in (("kernel", fastnmf.nmf), ("reference", reference.nmf)):
        seen[name] = []
        res = fn(X, 4, max_iter=20, tol=0, random_state=0, **case,
                 callback=lambda it, err: seen[name].append((it, err)))
        assert [err for _, err in seen[name]] == list(res.history)
    assert [it for it, _ in seen["kernel"]] == [it for it, _ in seen["reference"]]
    np.testing.assert_allclose([e for _, e in seen["kernel"]],
                               [e for _, e in seen["reference"]], rtol=1e-8)


@pytest.mark.parametrize("scale", [2.0 ** 600, 2.0 ** -600])
def test_callback_and_verbose_report_errors_in_x_scale(scale):
    """An X of extreme scale is solved scaled by a power of two; what the callback and
    verbose see is the error of X itself, as history records it."""
    X = low_rank(40, 30, 4, seed=1) * scale
    seen, out = [], io.StringIO()
    with contextlib.redirect_stdout(out):
        res = fastnmf.nmf(X, 4, max_iter=5, tol=0, random_state=0, verbose=True,
                          callback=lambda it, err: seen.append(err))
    assert seen == list(res.history)
    printed = [float(line.rsplit(" ", 1)[1]) for line in out.getvalue().splitlines()]
    np.testing.assert_allclose(printed, res.history, rtol=1e-9)


def test_callback_must_be_callable_and_batch_refuses_it():
    X = low_rank(20, 10, 2, seed=1)
    with pytest.raises(TypeError, match="callback must be None or a callable; got int"):
        fastnmf.nmf(X, 2, callback=3)
    with pytest.raises(TypeError, match="callback is not taken by nmf_batch"):
        fastnmf.nmf_batch([X, X], 2, callback=lambda it, err: None)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_an_exception_from_progress_stops_the_call(case):
    X = low_rank(40, 30, 4, seed=1)
    seen = []

    def progress(it, err):
        seen.append(it)
        if len(seen) == 3:
            raise _Stop(it)

    with pytest.raises(_Stop):
        fastnmf.nmf(X, 4, max_iter=100, tol=0, random_state=0, callback=progress, **case)
    assert len(seen) == 3  # no check after the one that raised


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_verbose_goes_through_sys_stdout(case):
    X = low_rank(40, 30, 4, seed=1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        res = fastnmf.nmf(X, 4, max_iter=20, tol=0, random_state=0, verbose=True, **case)
    lines = out.getvalue().splitlines()
    every = 10 if case["solver"] == "mu" else 1
    assert len(lines) == len(res.history) == 20 // every + 1
    for line, it, err in zip(lines, range(0, 21, every), res.history):
        match = re.fullmatch(r"fastnmf: iteration (\d+), error (\S+)", line)
        assert match, line
        assert int(match[1]) == it and float(match[2]) == pytest.approx(err, rel=1e-9)


def _in_thread(fn):
    out = {}
    worker = threading.Thread(target=lambda: out.setdefault("value", fn()))
    worker.start()
    worker.join()
    return out["value"]


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_the_call_out_changes_no_result(case):
    # From a second thread the loop has no hook at all (nothing to check there); from the
    # main thread it has one (signal checks), and with verbose or a callback it calls out at
    # every check. The problem is large enough for the work-paced checks to take the GIL.
    X = low_rank(300, 200, 10, seed=2)
    kw = dict(max_iter=60, tol=0, random_state=0, **case)
    plain = _in_thread(lambda: fastnmf.nmf(X, 10, **kw))
    with contextlib.redirect_stdout(io.StringIO()):
        others = [fastnmf.nmf(X, 10, **kw), fastnmf.nmf(X, 10, verbose=True, **kw),
                  fastnmf.nmf(X, 10, callback=lambda it, err: None, **kw)]
    for res in others:
        np.testing.assert_array_equal(res.W, plain.W)
        np.testing.assert_array_equal(res.H, plain.H)
        np.testing.assert_array_equal(res.history, plain.history)
        assert res.reconstruction_err == plain.reconstruction_err
