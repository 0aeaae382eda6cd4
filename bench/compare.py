"""Side-by-side tables of fastnmf against scikit-learn, its NumPy reference solvers and the
BLAS floor (the cases of issue 9), and the measures of issues 15 and 17 (bench/README.md
lists the cases). Implementations run interleaved in one process (a slow spell hits all
alike) and medians are reported.

    python bench/compare.py                          # every case (about 17 minutes)
    python bench/compare.py --cases tiny medium      # some cases
    python bench/compare.py --quick                  # every case, smaller (well under a minute)
    python bench/compare.py --cases medium --plot convergence.png   # also draw a plot

It measures the installed fastnmf (``pip install .`` first). Unset OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE for this command alone where they are set (they slow numpy):
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py``.

Columns: time (median of interleaved runs), iters (iterations run), rel. error
(||X - WH||_F / ||X||_F, one float64 formula for all), time/it (time / iters, so including
the init where a case starts with one), vs peer (scikit-learn's time / this time: its mu for
mu, its cd otherwise; "!" where this error is worse than the peer's by more than issue 9
allows, 10 % for als and 1 % otherwise) and vs floor (time/it over the time of the two
products X Hᵀ + Wᵀ X in numpy on the same shapes and dtype, measured interleaved too).
The fastnmf variants are found in the installed build: every solver, and cd with
accelerate=True where ``fastnmf.nmf`` takes it.
"""

import argparse
import importlib.util
import os
import platform
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import scipy

import fastnmf
from fastnmf import reference
from fastnmf._bench import batch_rows, interleaved, sklearn_nnf
from fastnmf._datasets import low_rank

from benchmarks.common import (SIZES, SPARSE, check_every, floor_products, iterations_to,
                               loopback_bytes_sent, peak_memory, random_start, rel_error,
                               sklearn_factorize, variants)

NNF = sklearn_nnf()  # scikit-learn's non_negative_factorization, or None
FLOOR = "numpy floor"
# The smaller shapes of --quick: (n, m, k) per case, and (n, m, k, density) for sparse.
QUICK = {"tiny": (50, 30, 5), "medium": (300, 200, 10), "floor": (800, 400, 20),
         "large": (1000, 500, 10), "memory": (1000, 500, 10), "onepass": (1000, 800, 10),
         "outofcore": (20000, 500, 10), "dask": (4000, 1000, 10), "sparse": (2000, 500, 10, 0.05),
         "sparsefile": (20000, 2000, 10, 0.01)}
BARS = []  # (measure, measured, bar, met) of the issues' tables, gathered for the summary
JUDGING = True  # False with --quick: the bars hold for the issue's sizes only


# --- printing ------------------------------------------------------------------------------

COLUMNS = (("implementation", 18, "<"), ("time", 9, ">"), ("iters", 5, ">"),
           ("rel. error", 10, ">"), ("time/it", 9, ">"), ("vs peer", 8, ">"),
           ("vs floor", 8, ">"))


def fmt_time(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            return f"{seconds / scale:.3g} {unit}"


def row(cells):
    return "  ".join(f"{c:{a}{w}}" for c, (_, w, a) in zip(cells, COLUMNS)).rstrip()


def section(title, detail):
    print(f"\n== {title}: {detail}")


def table_header():
    print(row([name for name, _, _ in COLUMNS]))
    print(row(["-" * w for _, w, _ in COLUMNS]))


def bar(measure, value, text, met, issue=9):
    """Record and print one line of an issue's table (issue 9's unless ``issue``):
    ``value`` measured, ``text`` the bar."""
    if not JUDGING:
        return
    BARS.append((measure, value, f"issue {issue}: {text}", met))
    print(f"  bar: {measure}: {value} (issue {issue}: {text}) {'met' if met else 'NOT met'}")


# --- implementations -------------------------------------------------------------------------

def peer_of(solver):
    return f"scikit-learn {'mu' if solver == 'mu' else 'cd'}"


class Impl:
    """One implementation of a side-by-side group: its callable, its solver and its peer."""

    def __init__(self, fn, solver=None, peer=None):
        self.fn, self.solver, self.peer = fn, solver, peer


def fastnmf_impls(X, k, labels=None, **kw):
    """fastnmf.nmf for each variant label (default: all), keyword arguments ``kw``."""
    found = variants()
    impls = {}
    for label in labels or found:
        v = found[label]
        impls[f"fastnmf {label}"] = Impl(lambda v=v: fastnmf.nmf(X, k, **v, **kw),
                                         v["solver"], peer_of(v["solver"]))
    return impls


def reference_impls(X, k, **kw):
    """fastnmf.reference.nmf for each variant the reference solvers have."""
    accepted = set(reference.nmf.__signature__.parameters)
    impls = {}
    for label, v in variants().items():
        if v["solver"] in reference.SOLVERS and set(v) <= accepted:
            impls[f"reference {label}"] = Impl(lambda v=v: reference.nmf(X, k, **v, **kw),
                                               v["solver"], peer_of(v["solver"]))
    return impls


def sklearn_impls(X, k, solvers=("cd", "mu"), **kw):
    """scikit-learn's non_negative_factorization per solver (none where not installed)."""
    if NNF is None:
        return {}
    return {f"scikit-learn {s}": Impl(lambda s=s: sklearn_factorize(NNF, X, k, solver=s, **kw), s)
            for s in solvers}


def unpack(result):
    """(W, H, n_iter) of an NMFResult or of scikit-learn's (W, H, n_iter)."""
    if isinstance(result, tuple):
        return result
    return result.W, result.H, result.n_iter


class Row:
    """One measured implementation: median time, iterations, relative error (None for the
    floor), and its solver and peer."""

    def __init__(self, time, iters, error, impl):
        self.time, self.iters, self.error = time, iters, error
        self.solver, self.peer = impl.solver, impl.peer

    def vs_peer(self, rows):
        """(the peer's time / this time, whether this error is worse than the peer's by more
        than issue 9 allows: 10 % for als, 1 % otherwise), or None without the peer."""
        peer = rows.get(self.peer)
        if peer is None:
            return None
        allowed = 1.10 if self.solver == "als" else 1.01
        return peer.time / self.time, self.error > peer.error * allowed


def side_by_side(X, k, impls, *, budget, max_repeats, floor_iters=None):
    """Time ``impls`` interleaved (with the numpy floor at rank ``k`` when ``floor_iters`` is
    given), print one row each and return {name: Row}."""
    if floor_iters is not None:
        impls = {**impls, FLOOR: Impl(floor_products(X, k, floor_iters))}
    medians, results = interleaved({name: impl.fn for name, impl in impls.items()},
                                   budget=budget, max_repeats=max_repeats)
    rows = {}
    for name, impl in impls.items():
        if name == FLOOR:
            rows[name] = Row(medians[name], floor_iters, None, impl)
        else:
            W, H, n_iter = unpack(results[name])
            rows[name] = Row(medians[name], n_iter, rel_error(X, W, H), impl)
    floor = rows[FLOOR].time / floor_iters if FLOOR in rows else None
    table_header()
    for name, r in rows.items():
        cells = [name, fmt_time(r.time), str(r.iters),
                 "-" if r.error is None else f"{r.error:.5f}", fmt_time(r.time / r.iters),
                 "-", "-" if floor is None else f"{r.time / r.iters / floor:.2f}"]
        vs = r.vs_peer(rows)
        if vs is not None:
            cells[5] = f"{vs[0]:.2f}x" + ("!" if vs[1] else "")
        print(row(cells))
    if NNF is None:
        print("  (scikit-learn is not installed: its rows and the vs-peer column are skipped)")
    return rows


def check_speed(measure, rows, name, at_least):
    """The bar 'name at least ``at_least`` times as fast as its peer', which counts only
    where its final error is no worse than the peer's (see Row.vs_peer)."""
    vs = rows[name].vs_peer(rows) if name in rows else None
    if vs is not None:
        value = f"{vs[0]:.2f}x" + (", but its error is worse" if vs[1] else "")
        bar(measure, value, f">= {at_least}x", vs[0] >= at_least and not vs[1])


# --- cases ----------------------------------------------------------------------------------

CASES = {}


def case(name):
    def register(fn):
        CASES[name] = fn
        return fn
    return register


def shape(name, quick):
    """(n, m, k) of case ``name`` ((n, m, k, density) for sparse), smaller with --quick."""
    return QUICK[name] if quick else {**SIZES, "sparse": SPARSE}[name]


def dense(n, m, k, dtype=np.float64):
    return low_rank(n, m, k, seed=0, dtype=dtype)


@case("tiny")
def tiny(quick):
    n, m, k = shape("tiny", quick)
    iters = 200
    X = dense(n, m, k)
    kw = dict(init="nndsvda", tol=0.0, max_iter=iters, random_state=0)
    section("tiny", f"{n}x{m}, k={k}, {iters} iterations, init='nndsvda', tol=0")
    impls = {**fastnmf_impls(X, k, **kw), **reference_impls(X, k, **kw),
             **sklearn_impls(X, k, **kw)}
    rows = side_by_side(X, k, impls, budget=0.5 if quick else 4.0,
                        max_repeats=5 if quick else 31, floor_iters=iters)
    rates = ", ".join(f"{name} {1 / rows[name].time:.0f}" for name in rows
                      if name.startswith(("fastnmf", "scikit-learn")))
    print(f"  calls per second: {rates}")
    check_speed("tiny: calls per second, cd vs scikit-learn cd", rows, "fastnmf cd", 5)


@case("many")
def many(quick):
    count, n, m, k, iters = (20, 50, 40, 5, 20) if quick else (200, 100, 80, 8, 200)
    section("many", f"{count} matrices of {n}x{m}, k={k}, {iters} iterations, "
                    f"init='nndsvda', tol=0 (fastnmf._bench.batch_rows)")
    rates = batch_rows(count, n, m, k, iters, budget=1.0 if quick else 6.0)
    peer = {name: rate for name, rate, _, _ in rates}.get("loop of scikit-learn")
    print(f"{'implementation':<22}  {'matrices/s':>10}  {'vs n_jobs=1':>11}  {'vs peer':>8}  "
          f"{'rel. error':>10}")
    print("  ".join("-" * w for w in (22, 10, 11, 8, 10)))
    for name, rate, vs_one, err in rates:
        vs_peer = f"{rate / peer:.2f}x" if peer else "-"
        print(f"{name:<22}  {rate:10.1f}  {vs_one:10.2f}x  {vs_peer:>8}  {err:10.5f}")
    two = {name: vs_one for name, _, vs_one, _ in rates}["nmf_batch n_jobs=2"]
    bar("many: nmf_batch matrices/s, n_jobs=2 over n_jobs=1", f"{two:.2f}x", ">= 1.8x",
        two >= 1.8, issue=15)


@case("medium")
def medium(quick):
    n, m, k = shape("medium", quick)
    iters = 50 if quick else 200
    kw = dict(init="nndsvda", tol=0.0, max_iter=iters, random_state=0)
    cd_times = {}
    for dtype in (np.float64, np.float32):
        X = dense(n, m, k, dtype)
        section("medium", f"{n}x{m}, k={k}, {np.dtype(dtype).name}, {iters} iterations, "
                          f"init='nndsvda', tol=0")
        impls = {**fastnmf_impls(X, k, **kw), **sklearn_impls(X, k, **kw)}
        rows = side_by_side(X, k, impls, budget=1.0 if quick else 40.0, max_repeats=5,
                            floor_iters=iters)
        cd_times[dtype] = rows["fastnmf cd"].time
        if dtype == np.float64:
            check_speed("medium: time, cd vs scikit-learn cd", rows, "fastnmf cd", 1.6)
            check_speed("medium: time, als vs scikit-learn cd", rows, "fastnmf als", 1.5)
    speedup = cd_times[np.float64] / cd_times[np.float32]
    print(f"  cd float32 / float64 time: {1 / speedup:.2f} (float32 {speedup:.2f}x faster)")
    bar("medium: cd float64 time / float32 time", f"{speedup:.2f}x", ">= 1.5x", speedup >= 1.5)


@case("floor")
def floor_case(quick):
    n, m, k = shape("floor", quick)
    iters = 20 if quick else 50
    X = dense(n, m, k)
    # init='random' with an int seed is scikit-learn's random start on both sides, and costs
    # nothing beside the iterations, so time/it is the iterations' own cost.
    kw = dict(init="random", random_state=0, tol=0.0, max_iter=iters)
    section("floor", f"{n}x{m}, k={k}, {iters} iterations, the same random start "
                     f"(init='random', random_state=0), tol=0")
    impls = {**fastnmf_impls(X, k, ["cd"], **kw), **sklearn_impls(X, k, ["cd"], **kw)}
    rows = side_by_side(X, k, impls, budget=1.0 if quick else 20.0, max_repeats=7,
                        floor_iters=iters)
    floor = rows[FLOOR].time
    ours = rows["fastnmf cd"].time / floor
    if "scikit-learn cd" in rows:
        print(f"  scikit-learn cd: {rows['scikit-learn cd'].time / floor:.2f} x the floor")
    bar("floor: cd time per iteration / numpy floor", f"{ours:.2f}", "<= 1.1", ours <= 1.1)


@case("large")
def large(quick):
    n, m, k = shape("large", quick)
    iters = 20 if quick else 100
    X = dense(n, m, k)
    labels = [label for label, v in variants().items() if v["solver"] != "mu"]
    section("large", f"{n}x{m}, k={k}, default init (nndsvda, each side its own) + {iters} "
                     f"iterations, tol=0; times include the init; one timed run each")
    impls = {**fastnmf_impls(X, k, labels, tol=0.0, max_iter=iters, random_state=0),
             **sklearn_impls(X, k, ["cd"], init="nndsvda", tol=0.0, max_iter=iters,
                             random_state=0)}
    rows = side_by_side(X, k, impls, budget=0.0, max_repeats=1)
    print("  (mu is left out here: see medium and sparse)")
    check_speed("large: default init + 100 it, cd vs scikit-learn cd", rows, "fastnmf cd", 1.8)


@case("sparse")
def sparse(quick):
    n, m, k, density = shape("sparse", quick)
    iters = 20 if quick else 50
    X = low_rank(n, m, k, density=density, seed=0)
    W0, H0 = random_start(X, k)
    kw = dict(init="custom", W=W0, H=H0, tol=0.0, max_iter=iters)
    section("sparse", f"CSR {n}x{m} at {density:.0%} ({X.nnz} non-zeros), k={k}, {iters} "
                      f"iterations, the same custom start, tol=0; floor: scipy.sparse products")
    impls = {**fastnmf_impls(X, k, **kw), **sklearn_impls(X, k, **kw)}
    rows = side_by_side(X, k, impls, budget=1.0 if quick else 35.0, max_repeats=3,
                        floor_iters=iters)
    check_speed("sparse: time, cd vs scikit-learn cd", rows, "fastnmf cd", 2)


@case("ranks")
def ranks(quick):
    """A sparse X of a text corpus's shape at the ranks topic models use: each k takes
    another path of the sparse row kernels (k < 8 with k a constant; windows of 8, the
    last overlapping; rows prefetched from 128 bytes), one thread each side, as inside a
    joblib worker (GridSearchCV)."""
    n, m, density, iters = (800, 600, 0.05, 20) if quick else (4000, 3000, 0.02, 100)
    X = low_rank(n, m, 10, density=density, seed=0)
    section("ranks", f"CSR {n}x{m} at {density:.0%} ({X.nnz} non-zeros), {iters} iterations, "
                     "the same custom start per k, tol=0, n_threads=1 (scikit-learn's cd "
                     "with its BLAS held to one thread)")
    from threadpoolctl import threadpool_limits

    print(f"{'k':>3}  {'fastnmf cd':>10}  {'scikit-learn cd':>15}  {'ratio':>6}")
    for k in (3, 5, 8, 12, 20, 40):
        W0, H0 = random_start(X, k)
        kw = dict(init="custom", tol=0.0, max_iter=iters)
        nnf = sklearn_nnf()
        impls = {"fastnmf": lambda: fastnmf.nmf(X, k, solver="cd", W=W0, H=H0, n_threads=1,
                                                **kw)}
        if nnf is not None:
            def peer():
                with threadpool_limits(1, user_api="blas"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # (ConvergenceWarning: tol=0)
                    return nnf(X, W=W0.copy(), H=H0.copy(), n_components=k, solver="cd",
                               **kw)
            impls["scikit-learn"] = peer
        medians, _ = interleaved(impls, budget=0.5 if quick else 6.0, max_repeats=5)
        ours, theirs = medians["fastnmf"], medians.get("scikit-learn")
        print(f"{k:>3}  {fmt_time(ours):>10}  {fmt_time(theirs) if theirs else '-':>15}  "
              f"{f'{theirs / ours:.2f}x' if theirs else '-':>6}")


def time_to_target(name, n, m, k, peer_iters, cap, init, budget, max_repeats, at_least):
    """Iterations and time each Frobenius variant of fastnmf needs to reach the error of
    scikit-learn's cd after nndsvda + ``peer_iters`` iterations (``init`` for fastnmf)."""
    X = dense(n, m, k)
    section(name, f"{n}x{m}, k={k}, low rank plus noise; target: scikit-learn cd's error "
                  f"after nndsvda + {peer_iters} iterations; fastnmf init={init!r}")
    if NNF is None:
        print("  skipped: scikit-learn is not installed")
        return
    peer = sklearn_impls(X, k, ["cd"], init="nndsvda", tol=0.0, max_iter=peer_iters,
                         random_state=0)
    W, H, _ = peer["scikit-learn cd"].fn()
    target = rel_error(X, W, H)
    norm = np.linalg.norm(X)
    print(f"  target relative error {target:.6f}; iterations each variant but mu needs (one "
          f"run of {cap} iterations, read from its history):")
    needed = {}
    for label, v in variants().items():
        if v["solver"] == "mu":
            continue
        res = fastnmf.nmf(X, k, **v, init=init, tol=0.0, max_iter=cap, random_state=0)
        it = iterations_to(res.history / norm, target, check_every(v["solver"]))
        print(f"    {label:<8} {it if it else f'not within {cap}'}")
        if it:
            needed[label] = it
    impls = {}
    for label, it in needed.items():
        impls.update(fastnmf_impls(X, k, [label], init=init, tol=0.0, max_iter=it,
                                   random_state=0))
    rows = side_by_side(X, k, {**impls, **peer}, budget=budget, max_repeats=max_repeats)
    contenders = [f"fastnmf {label}" for label in needed if label in ("cd", "cd+acc", "bpp")]
    if not contenders:
        print("  neither cd nor bpp reached the target")
        return
    best = min(contenders, key=lambda c: rows[c].time)
    check_speed(f"{name}: time to target, best of cd/bpp ({best}) vs scikit-learn cd", rows,
                best, at_least)


@case("target-medium")
def target_medium(quick):
    n, m, k = shape("medium", quick)
    time_to_target("target-medium", n, m, k, 100 if quick else 300, 200 if quick else 600,
                   "nndsvda", budget=1.0 if quick else 15.0, max_repeats=5, at_least=3.5)


@case("target-large")
def target_large(quick):
    n, m, k = shape("large", quick)
    time_to_target("target-large", n, m, k, 50 if quick else 200, 100 if quick else 300,
                   None, budget=0.0, max_repeats=1, at_least=5)


@case("onepass")
def onepass(quick):
    n, m, k = shape("onepass", quick)
    iters = 10 if quick else 30
    X = dense(n, m, k, np.float32)
    kw = dict(init="random", random_state=0, tol=0.0, max_iter=iters)
    section("onepass", f"float32 {n}x{m}, k={k}, {iters} iterations, the same random start, "
                       "tol=0: the row-block engine (one pass over X) against the two-pass "
                       "loop (fastnmf cd 2-pass: the engine turned off) and the floor")
    from fastnmf._kernels import _solve

    def two_pass():
        old = _solve.engine_min_bytes(np.inf)
        try:
            return fastnmf.nmf(X, k, solver="cd", **kw)
        finally:
            _solve.engine_min_bytes(old)

    impls = {**fastnmf_impls(X, k, ["cd", "mu"], **kw),
             "fastnmf cd 2-pass": Impl(two_pass, "cd", peer_of("cd")),
             **sklearn_impls(X, k, ["cd"], **kw)}
    rows = side_by_side(X, k, impls, budget=1.0 if quick else 20.0, max_repeats=7,
                        floor_iters=iters)
    print(f"  one pass / two passes (cd, whole calls): "
          f"{rows['fastnmf cd'].time / rows['fastnmf cd 2-pass'].time:.2f}")
    # A call's own cost besides its iterations (validation's scan of X, the start, the
    # first and the final error) is left out of the bar: time per iteration is the
    # difference of calls of 2N and N iterations over N, against one iteration's products.
    longer = {**kw, "max_iter": 2 * iters}
    floor = floor_products(X, k, repeats=iters)
    medians, _ = interleaved({
        "short": lambda: fastnmf.nmf(X, k, solver="cd", **kw),
        "long": lambda: fastnmf.nmf(X, k, solver="cd", **longer),
        "floor": floor}, budget=1.0 if quick else 20.0, max_repeats=7)
    ours = (medians["long"] - medians["short"]) / medians["floor"]
    print(f"  cd time per iteration ((T({2 * iters}) - T({iters})) / {iters}): "
          f"{(medians['long'] - medians['short']) / iters * 1e3:.1f} ms, "
          f"{ours:.2f} x the floor ({medians['floor'] / iters * 1e3:.1f} ms)")
    bar("onepass: cd time per iteration / numpy floor", f"{ours:.2f}", "<= 0.93",
        ours <= 0.93, issue=17)
    # The solvers that settle a guessed decision after the pass (docs/algorithms.md, "One
    # pass over X"): whole calls, the engine against the two-pass loop, side by side.
    for solver, accelerate in (("cd", True), ("als", False), ("bpp", False)):
        run = dict(kw, solver=solver, accelerate=accelerate)

        def both(engine, run=run):
            old = _solve.engine_min_bytes(None if engine else np.inf)
            try:
                return fastnmf.nmf(X, k, **run)
            finally:
                _solve.engine_min_bytes(old)

        medians, _ = interleaved({"one": lambda: both(True), "two": lambda: both(False)},
                                 budget=1.0 if quick else 10.0, max_repeats=7)
        name = solver + (" accelerate" if accelerate else "")
        print(f"  {name}: one pass / two passes (whole calls): "
              f"{medians['one'] / medians['two']:.2f}")


# What a child process prints for the out-of-core case: the resident memory the call adds
# (its peak, VmHWM, over the resident memory before it: mapped file pages count), the time,
# and W, H saved for the comparison with the in-memory call.
_CHILD_PRELUDE = """
import json, sys, time
import numpy as np, fastnmf
def kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
fastnmf.nmf(np.ones((4, 3), np.float32), 1)  # imports and first-call costs before the baseline
"""
_OUT_OF_CORE_CHILD = _CHILD_PRELUDE + """
path, k, iters, init, out = sys.argv[1:]
X = np.load(path, mmap_mode="r")
before = kib("VmRSS")
t = time.perf_counter()
res = fastnmf.nmf(X, int(k), init=init, random_state=0, max_iter=int(iters), tol=0)
seconds = time.perf_counter() - t
np.savez(out, W=res.W, H=res.H)
print(json.dumps({"added": (kib("VmHWM") - before) * 1024, "seconds": seconds,
                  "error": res.reconstruction_err}))
"""


@case("outofcore")
def outofcore(quick):
    import json
    import subprocess
    import tempfile

    n, m, k = shape("outofcore", quick)
    iters = 10
    with tempfile.TemporaryDirectory(dir=os.environ.get("FASTNMF_BENCH_DIR")) as folder:
        path = os.path.join(folder, "x.npy")
        rng = np.random.default_rng(0)
        F = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, m))
        basis = rng.random((k, m), dtype=np.float32)
        for r in range(0, n, 20000):  # rank k plus noise, written a slab at a time
            w = min(20000, n - r)
            F[r:r + w] = rng.random((w, k), dtype=np.float32) @ basis
            F[r:r + w] += 0.1 * rng.random((w, m), dtype=np.float32)
        F.flush()
        del F
        size = n * m * 4
        section("outofcore", f"float32 {n}x{m} ({size / 2**30:.2f} GiB) in an .npy opened with "
                             f"mmap_mode='r', k={k}, {iters} iterations, tol=0, each call in "
                             "a fresh process: the resident memory it adds (mapped file pages "
                             "count) and its time, against the same call on X in memory")
        rows = {}
        for init in ("random", "nndsvda"):
            out = os.path.join(folder, f"{init}.npz")
            child = subprocess.run(
                [sys.executable, "-c", _OUT_OF_CORE_CHILD, path, str(k), str(iters), init, out],
                check=True, capture_output=True, text=True)
            got = json.loads(child.stdout)
            X = np.load(path)
            t = time.perf_counter()
            res = fastnmf.nmf(X, k, init=init, random_state=0, max_iter=iters, tol=0)
            seconds = time.perf_counter() - t
            del X
            saved = np.load(out)
            diff = max(float(np.abs(saved[f] - getattr(res, f)).max() / np.abs(getattr(res, f)).max())
                       for f in "WH")
            rows[init] = got["added"]
            print(f"  {init:<8} from disk {got['seconds']:7.1f} s, adds "
                  f"{got['added'] / 2**20:7.1f} MiB ({got['added'] / size:.3f} of X); in memory "
                  f"{seconds:7.1f} s ({got['seconds'] / seconds:.2f} x); W, H differ by "
                  f"{diff:.1e} (relative); errors {got['error']:.6g} / "
                  f"{res.reconstruction_err:.6g}")
    bar("outofcore: resident memory a call adds (random init, 10 iterations), GiB",
        f"{rows['random'] / 2**30:.2f}", "<= 1", rows["random"] <= 2**30, issue=17)


# The sparse-file case's child: as _OUT_OF_CORE_CHILD, X a scipy.sparse.save_npz file read a
# chunk of rows at a time (what fastnmf factorize does with one larger than its memory).
_SPARSE_FILE_CHILD = _CHILD_PRELUDE + """
from fastnmf._chunked import SparseFile
path, n, m, k, iters, init, out = sys.argv[1:]
before = kib("VmRSS")
t = time.perf_counter()
X = SparseFile(path, "csr", (int(n), int(m)))  # a compressed file: decompressed here, once
res = fastnmf.nmf(X, int(k), init=init, random_state=0, max_iter=int(iters), tol=0)
seconds = time.perf_counter() - t
np.savez(out, W=res.W, H=res.H)
print(json.dumps({"added": (kib("VmHWM") - before) * 1024, "seconds": seconds}))
"""


@case("sparsefile")
def sparse_file(quick):
    import json
    import subprocess
    import tempfile

    import scipy.sparse as sp

    n, m, k, density = shape("sparsefile", quick) if quick else (200000, 20000, 20, 0.002)
    iters = 10
    rng = np.random.default_rng(0)
    nnz = int(n * m * density)
    X = sp.csr_matrix((rng.random(nnz, dtype=np.float32) + 0.01,
                       (rng.integers(0, n, nnz), rng.integers(0, m, nnz))), shape=(n, m))
    X.sum_duplicates()
    size = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    section("sparsefile", f"float32 CSR {n}x{m}, {X.nnz} non-zeros ({size / 2**20:.0f} MiB), "
                          f"k={k}, {iters} iterations, tol=0, in a compressed "
                          "scipy.sparse.save_npz file read a chunk of rows at a time, each "
                          "call in a fresh process: the resident memory it adds and its "
                          "time (decompressing the file included), against the same call "
                          "on X in memory")
    with tempfile.TemporaryDirectory(dir=os.environ.get("FASTNMF_BENCH_DIR")) as folder:
        path = os.path.join(folder, "x.npz")
        sp.save_npz(path, X)
        for init in ("random", "nndsvda"):
            out = os.path.join(folder, f"{init}.npz")
            child = subprocess.run(
                [sys.executable, "-c", _SPARSE_FILE_CHILD, path, str(n), str(m), str(k), str(iters),
                 init, out], check=True, capture_output=True, text=True)
            got = json.loads(child.stdout)
            t = time.perf_counter()
            res = fastnmf.nmf(X, k, init=init, random_state=0, max_iter=iters, tol=0)
            seconds = time.perf_counter() - t
            saved = np.load(out)
            diff = max(float(np.abs(saved[f] - getattr(res, f)).max()
                             / np.abs(getattr(res, f)).max()) for f in "WH")
            print(f"  {init:<8} from the file {got['seconds']:7.2f} s, adds "
                  f"{got['added'] / 2**20:7.1f} MiB ({got['added'] / size:.2f} of X); in "
                  f"memory {seconds:7.2f} s ({got['seconds'] / seconds:.2f} x); W, H differ "
                  f"by {diff:.1e} (relative)")


@case("dask")
def dask_case(quick):
    try:
        import dask.array as da
        import distributed
    except ImportError:
        print("\n== dask: skipped (pip install '.[dask]')")
        return
    n, m, k = shape("dask", quick)
    iters = 10 if quick else 25
    X = dense(n, m, k)
    section("dask", f"float64 {n}x{m} in 8 blocks of rows, k={k}, from a random start, "
                    "tol=0, on LocalCluster(n_workers=2, threads_per_worker=1): time per "
                    f"iteration ((T({2 * iters}) - T({iters})) / {iters}) against the same "
                    "calls in memory with n_threads=2, and bytes moved per iteration; the "
                    "bars are cd's (the default), the other solvers are shown beside it")

    allowed = 1.5 * 8 * (2 * k * m + k * k)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        Xd = da.from_array(X, chunks=(-(-n // 8), m)).persist()
        workers = len(client.scheduler_info()["workers"])
        for label, solver_kw in [("cd", {}), ("als", dict(solver="als")),
                                 ("bpp", dict(solver="bpp")),
                                 ("cd accelerate", dict(accelerate=True))]:
            kw = dict(init="random", random_state=0, tol=0.0, **solver_kw)
            medians, _ = interleaved({
                "dask short": lambda: fastnmf.nmf(Xd, k, max_iter=iters, **kw),
                "dask long": lambda: fastnmf.nmf(Xd, k, max_iter=2 * iters, **kw),
                "memory short": lambda: fastnmf.nmf(X, k, max_iter=iters, n_threads=2, **kw),
                "memory long": lambda: fastnmf.nmf(X, k, max_iter=2 * iters, n_threads=2,
                                                   **kw)},
                budget=2.0 if quick else (30.0 if label == "cd" else 10.0), max_repeats=5)
            on_dask = (medians["dask long"] - medians["dask short"]) / iters
            in_memory = (medians["memory long"] - medians["memory short"]) / iters
            a = loopback_bytes_sent()
            fastnmf.nmf(Xd, k, max_iter=iters, **kw)
            b = loopback_bytes_sent()
            res = fastnmf.nmf(Xd, k, max_iter=2 * iters, **kw)
            c = loopback_bytes_sent()
            per_worker = ((c - b) - (b - a)) / iters / workers
            ref = fastnmf.nmf(X, k, max_iter=2 * iters, **kw)
            diff = max(float(np.abs(getattr(res, f) - getattr(ref, f)).max()
                             / np.abs(getattr(ref, f)).max()) for f in "WH")
            print(f"  {label:13s} per iteration: on the cluster {on_dask * 1e3:.1f} ms, in "
                  f"memory {in_memory * 1e3:.1f} ms ({on_dask / in_memory:.2f} x); moved per "
                  f"worker {per_worker / 2**20:.2f} MiB ({per_worker / allowed * 1.5:.2f} x "
                  f"8(2km + k^2)); W, H differ by {diff:.1e} (relative)")
            if label != "cd":
                continue
            bar("dask: time per iteration / in memory with n_threads=2",
                f"{on_dask / in_memory:.2f}", "<= 1.5", on_dask / in_memory <= 1.5, issue=17)
            bar("dask: bytes moved per worker per iteration / 8(2km + k^2)",
                f"{per_worker / allowed * 1.5:.2f}", "<= 1.5", per_worker <= allowed, issue=17)


@case("memory")
def memory(quick):
    n, m, k = shape("memory", quick)
    X = dense(n, m, k, np.float32)
    kw = dict(tol=0.0, max_iter=10, random_state=0)
    section("memory", f"float32 {n}x{m}, k={k}, default init (nndsvda) + {kw['max_iter']} "
                      f"iterations: peak memory one call adds, as a fraction of X "
                      f"({X.nbytes / 2**20:.0f} MiB)")
    print("  (tracemalloc: Python objects and numpy's array buffers, which numpy reports to "
          "it; not memory C code allocates directly, such as BLAS buffers)")
    impls = {**fastnmf_impls(X, k, **kw), **sklearn_impls(X, k, init="nndsvda", **kw)}
    fractions = {}
    for name, impl in impls.items():
        peak = peak_memory(impl.fn)
        fractions[name] = peak / X.nbytes
        print(f"  {name:<18} {fractions[name]:6.3f} of X ({peak / 2**20:.1f} MiB)")
    worst = max(v for name, v in fractions.items() if name.startswith("fastnmf"))
    bar("memory: peak one call adds / X's size, worst fastnmf variant", f"{worst:.3f}",
        "<= 0.1", worst <= 0.1)


# --- convergence plot ----------------------------------------------------------------------

def convergence_plot(path, quick):
    """Relative error against seconds on the medium case: one line per fastnmf variant and
    one per scikit-learn solver. A fastnmf run of N iterations and one of 1 iteration are
    timed (medians of up to 3); iteration i >= 1 is drawn at t(1) + (i - 1) (t(N) - t(1)) /
    (N - 1) against history[i]. scikit-learn: runs at several max_iter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, m, k = shape("medium", quick)
    iters = 50 if quick else 200
    X = dense(n, m, k)
    norm = np.linalg.norm(X)
    section("plot", f"convergence on {n}x{m}, k={k}, init='nndsvda', to {path}")
    kw = dict(init="nndsvda", tol=0.0, random_state=0)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    full = fastnmf_impls(X, k, max_iter=iters, **kw)
    one = fastnmf_impls(X, k, max_iter=1, **kw)
    runs = {**{(name, iters): impl.fn for name, impl in full.items()},
            **{(name, 1): impl.fn for name, impl in one.items()}}
    times, results = interleaved(runs, budget=2.0, max_repeats=3)
    for name, impl in full.items():
        first, per_it = times[name, 1], (times[name, iters] - times[name, 1]) / (iters - 1)
        if per_it <= 0:  # a disturbed timing: spread the whole run evenly instead
            per_it = first = times[name, iters] / iters
        errors = results[name, iters].history[1:] / norm  # the start is off the scale
        done = np.arange(1, len(errors) + 1) * check_every(impl.solver)
        ax.plot(first + (done - 1) * per_it, errors, label=name)
    steps = (5, 10, 20, 50) if quick else (10, 25, 50, 100, 200, 300)
    for solver in ("cd", "mu") if NNF else ():
        runs = {it: (lambda it=it, s=solver: sklearn_factorize(NNF, X, k, solver=s, max_iter=it,
                                                                **kw))
                for it in steps}
        times, results = interleaved(runs, budget=0, max_repeats=1)
        ax.plot([times[it] for it in steps],
                [rel_error(X, *results[it][:2]) for it in steps], "o--",
                label=f"scikit-learn {solver}")
    ax.set_yscale("log")
    ax.set_xlim(left=0)
    ax.set_xlabel("seconds")
    ax.set_ylabel("||X - WH|| / ||X||")
    ax.set_title(f"fastnmf vs scikit-learn, {n}x{m}, k={k}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"  wrote {path}")


# --- issue 15: a good citizen on a shared machine -------------------------------------------

def child(code, *args):
    """A Python process running ``code`` (this fastnmf), its output piped."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def ended(proc, timeout):
    """Wait for ``proc``, at most ``timeout`` seconds; kill it if it is still running
    then. Returns (stdout, stderr)."""
    try:
        return proc.communicate(timeout=timeout)
    finally:
        stop(proc)


def stop(proc):
    """Kill ``proc`` if it is still running, and reap it."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


# The interrupted child: Python's SIGINT handler set explicitly (a child of a shell's
# background job inherits SIGINT ignored), the call of ``setup`` started, "started" said.
INTERRUPTED = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
import fastnmf
from fastnmf._datasets import low_rank
{setup}
print("started", flush=True)
call()
print("finished", flush=True)
"""


@case("interrupt")
def interrupt(quick):
    tries = 1 if quick else 3
    start = (3000, 2000) if quick else (12000, 5000)
    setups = {
        "fastnmf.nmf 2000x1000, k=40": (
            "X = low_rank(2000, 1000, 40, seed=0)\n"
            "call = lambda: fastnmf.nmf(X, 40, max_iter=10**6, tol=0)"),
        "nmf_batch 64 x (400x300), k=20, n_jobs=2": (
            "Xs = [low_rank(400, 300, 20, seed=s) for s in range(64)]\n"
            "call = lambda: fastnmf.nmf_batch(Xs, 20, max_iter=10**6, tol=0, n_jobs=2)"),
        # the signal lands in the default start (nndsvda's randomized SVD: about 2 s here)
        f"fastnmf.nmf's start, {start[0]}x{start[1]}, k=60": (
            f"X = low_rank({start[0]}, {start[1]}, 60, seed=0)\n"
            "call = lambda: fastnmf.nmf(X, 60, max_iter=10**6, tol=0)"),
    }
    section("interrupt", f"SIGINT 1 s into a call that would run for minutes, in a child "
                         f"process; seconds from the signal to its exit ({tries} tries)")
    worst = 0.0
    for name, setup in setups.items():
        waits, raised = [], True
        for _ in range(tries):
            proc = child(INTERRUPTED.format(setup=setup))
            try:
                started = proc.stdout.readline().strip() == "started"
                time.sleep(1.0)
                proc.send_signal(signal.SIGINT)
                sent = time.monotonic()
                out, err = ended(proc, 300)
                waits.append(time.monotonic() - sent)
            finally:
                stop(proc)
            lines = err.strip().splitlines()
            raised &= started and "finished" not in out and lines[-1:] == ["KeyboardInterrupt"]
        print(f"  {name}: {', '.join(f'{w:.2f}' for w in waits)} s"
              f"{'' if raised else ' -- NOT ended by KeyboardInterrupt'}")
        worst = max(worst, max(waits)) if raised else float("inf")
    print("  (the busy processes below are this case's children)")
    bar("interrupt: seconds from SIGINT to the exit by KeyboardInterrupt, worst",
        f"{worst:.2f}", "<= 0.5", worst <= 0.5, issue=15)


@case("neighbour")
def neighbour(quick):
    iters = 20 if quick else None  # None: the default (max_iter=200, tol=1e-4)
    cases = {"dense 2000x1000, k=20": (dense(2000, 1000, 20), 20),
             "CSR 4000x3000 at 2 %, k=10":
                 (low_rank(4000, 3000, 10, density=0.02, seed=0).tocsr(), 10),
             "tiny 50x30, k=5": (dense(50, 30, 5), 5)}
    section("neighbour", "a default call (every argument but X and k at its default) over the "
                         "same call with n_threads=1, with one other CPU-bound process running")
    busy = child("while True:\n    pass")
    worst = 0.0
    try:
        time.sleep(0.5)
        for name, (X, k) in cases.items():
            kw = {} if iters is None else dict(max_iter=iters)
            medians, _ = interleaved({
                "default": lambda: fastnmf.nmf(X, k, **kw),
                "n_threads=1": lambda: fastnmf.nmf(X, k, n_threads=1, **kw)},
                budget=1.0 if quick else 10.0, max_repeats=3 if quick else 9)
            ratio = medians["default"] / medians["n_threads=1"]
            worst = max(worst, ratio)
            print(f"  {name}: default {fmt_time(medians['default'])}, n_threads=1 "
                  f"{fmt_time(medians['n_threads=1'])}, ratio {ratio:.2f}")
    finally:
        stop(busy)
    print("  (the busy process below is the neighbour this case starts)")
    bar("neighbour: default call time / n_threads=1 time, one busy process, worst",
        f"{worst:.2f}", "<= 1.5", worst <= 1.5, issue=15)


# One GridSearchCV fit in a fresh process (its first call: the workers start too):
# argv[1] "fastnmf" or "sklearn", argv[2] X's rows. Prints the seconds.
GRID = """
import sys, time, warnings
import numpy as np
from sklearn.model_selection import GridSearchCV
from fastnmf._datasets import low_rank
warnings.simplefilter("ignore")
if sys.argv[1] == "fastnmf":
    from fastnmf.sklearn import NMF
else:
    from sklearn.decomposition import NMF
X = low_rank(int(sys.argv[2]), 3000, 10, density=0.02, seed=0).tocsr()


def heldout(est, X, y=None):  # minus the Frobenius error on the held-out rows
    D = X.toarray() - est.transform(X) @ est.components_
    return -float(np.sqrt(np.square(D).sum()))


grid = GridSearchCV(NMF(init="nndsvda", tol=1e-4, max_iter=200, random_state=0),
                    {"n_components": [5, 10], "alpha_W": [0.0, 1e-4]}, cv=3, n_jobs=2,
                    scoring=heldout)
t = time.perf_counter()
grid.fit(X)
print(time.perf_counter() - t)
"""


@case("gridsearch")
def gridsearch(quick):
    rows, pairs = (1000, 1) if quick else (4000, 3)
    section("gridsearch", f"GridSearchCV(NMF(init='nndsvda', tol=1e-4, max_iter=200), "
                          f"n_components 5, 10 x alpha_W 0, 1e-4, cv=3, n_jobs=2) on a CSR "
                          f"{rows}x3000 at 2 %, k=10: first fit in a fresh process, "
                          f"{pairs} pair(s) alternating")
    if NNF is None:
        print("  (scikit-learn is not installed: skipped)")
        return
    times = {"fastnmf": [], "sklearn": []}
    for _ in range(pairs):
        for side in times:
            out, err = ended(child(GRID, side, str(rows)), 600)
            times[side].append(float(out.split()[-1]))
    f, s = np.median(times["fastnmf"]), np.median(times["sklearn"])
    print(f"  fastnmf.sklearn.NMF {', '.join(f'{t:.2f}' for t in times['fastnmf'])} s; "
          f"scikit-learn's NMF {', '.join(f'{t:.2f}' for t in times['sklearn'])} s")
    print("  (the busy processes below are this case's children)")
    bar("gridsearch: GridSearchCV n_jobs=2, scikit-learn's time over fastnmf's (medians)",
        f"{s / f:.2f}x", ">= 1.5x", s / f >= 1.5, issue=15)


@case("threads")
def threads(quick):
    from concurrent.futures import ThreadPoolExecutor

    iters = 10 if quick else 50
    solvers = list(fastnmf._registry.SOLVERS)
    work = [(low_rank(1000, 800, 20, noise=0.1, seed=s, density=0.1 if s >= 4 else None), 20,
             dict(solver=solvers[s % len(solvers)], tol=0, max_iter=iters, random_state=s))
            for s in range(8)]
    section("threads", f"eight Python threads calling fastnmf.nmf at once (1000x800, k=20, "
                       f"{iters} iterations; four dense, four CSR at 10 %; each solver) over "
                       f"the same calls one after another")

    def serial():
        return [fastnmf.nmf(X, k, **kw) for X, k, kw in work]

    def concurrent():
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(lambda w: fastnmf.nmf(w[0], w[1], **w[2]), work))

    medians, results = interleaved({"serial": serial, "eight threads": concurrent},
                                   budget=2.0 if quick else 20.0, max_repeats=3 if quick else 9)
    same = all(np.array_equal(a.W, b.W) and np.array_equal(a.H, b.H)
               and np.array_equal(a.history, b.history)
               for a, b in zip(results["serial"], results["eight threads"]))
    ratio = medians["eight threads"] / medians["serial"]
    print(f"  serial {fmt_time(medians['serial'])}, eight threads "
          f"{fmt_time(medians['eight threads'])}: ratio {ratio:.2f}; results "
          f"{'bit-identical' if same else 'NOT bit-identical'} to the serial ones")
    bar("threads: eight Python threads at once / the same calls one after another",
        f"{ratio:.2f}", "<= 1.3", ratio <= 1.3, issue=15)
    bar("threads: results of the eight threads against serial calls",
        "bit-identical" if same else "differ", "bit-identical", same, issue=15)


# --- main ------------------------------------------------------------------------------------

def header():
    try:
        import sklearn
        peer = f"scikit-learn {sklearn.__version__}"
    except ImportError:
        peer = "scikit-learn not installed (its columns are skipped)"
    print(f"fastnmf {fastnmf.__version__} ({os.path.dirname(fastnmf.__file__)}), numpy "
          f"{np.__version__}, scipy {scipy.__version__}, {peer}; Python "
          f"{platform.python_version()}")
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; fastnmf variants: "
          f"{', '.join(variants())}")
    print(f"kernels: {kernels_line()}")
    try:
        from threadpoolctl import threadpool_info
        pools = "; ".join(f"{p['internal_api']} {p['version']} x{p['num_threads']} "
                          f"({os.path.basename(p['filepath'])})" for p in threadpool_info())
        print(f"thread pools: {pools}")
    except ImportError:
        pass
    print(f"load average (1 min) at the start: {os.getloadavg()[0]:.2f}")
    slow = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    if slow:
        print(f"warning: {' and '.join(slow)} set; they slow numpy: run under "
              f"`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`")


def kernels_line():
    """How this machine forms the products (what differs between machine kinds): the
    fastnmf build level taken, the BLAS's OpenBLAS kernels, and the choices made from them
    at import (docs/algorithms.md, "Threads")."""
    from fastnmf import _kernels, _threads
    from fastnmf._kernels import _common

    narrow = "off"
    if _common.narrow_kernels():
        narrow = "on" if _common.narrow_small() else "on, a small X's on BLAS"
    return (f"fastnmf {_kernels.LEVEL}; OpenBLAS {_threads.blas_kernels() or 'not found'}; "
            f"dense products in the narrow kernels {narrow}; float32 rows first "
            f"{'on' if _common.rows_first() else 'off'}")


def cpu_seconds():
    """(CPU seconds every process on the machine has used, and this process), or None where
    /proc/stat is not there (other than Linux)."""
    try:
        import resource

        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except (ImportError, OSError, ValueError):
        return None
    own = resource.getrusage(resource.RUSAGE_SELF)
    busy = sum(ticks[:3]) + sum(ticks[5:8])  # user, nice, system; irq, softirq, steal
    return time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), own.ru_utime + own.ru_stime


def others_report(before):
    """How many cores other processes kept busy since ``before`` (a cpu_seconds())."""
    after = cpu_seconds()
    if before is None or after is None:
        return ""
    wall, busy, own = (a - b for a, b in zip(after, before))
    others = max(busy - own, 0.0) / max(wall, 1e-9)
    note = " -- timings disturbed" if others > 0.2 else ""
    return f"other processes kept {others:.2f} of {os.cpu_count()} cores busy{note}"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", metavar="CASE",
                        help=f"cases to run, space- or comma-separated (default: all): "
                             f"{', '.join(CASES)}")
    parser.add_argument("--quick", action="store_true",
                        help="every case smaller (well under a minute in all)")
    parser.add_argument("--plot", metavar="PATH.png",
                        help="also draw relative error against seconds on the medium case "
                             "(needs matplotlib)")
    args = parser.parse_args(argv)
    names = [c for arg in args.cases or CASES for c in arg.split(",") if c]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; choose from {', '.join(CASES)}")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        parser.error("--plot needs matplotlib, which is not installed (pip install matplotlib)")
    args.cases = names
    return args


def main(argv=None):
    global JUDGING
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    header()
    if args.quick:
        JUDGING = False
        print("--quick: smaller sizes, where the issues' bars are not judged")
    start, overall = time.perf_counter(), cpu_seconds()
    for name in args.cases:
        before = cpu_seconds()
        CASES[name](args.quick)
        report = others_report(before)
        if report:
            print(f"  ({report})")
    if args.plot:
        convergence_plot(args.plot, args.quick)
    if BARS:
        print("\nbars measured by this run:")
        for measure, value, text, met in BARS:
            print(f"  {'met    ' if met else 'NOT met'}  {measure}: {value} ({text})")
    report = others_report(overall)
    print(f"\n(total {time.perf_counter() - start:.0f} s{'; ' + report if report else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
