"""Side-by-side timing shared by ``fastnmf bench`` and ``bench/compare.py``: implementations
run interleaved in one process (a slow spell hits all alike) and medians are reported; and
the ``fastnmf bench`` command itself (``run``)."""

import sys
import time
import warnings

import numpy as np

from . import _registry

__all__ = ["interleaved", "sklearn_nnf", "batch_rows", "run"]


def interleaved(impls, budget=2.0, max_repeats=31, sample=0.02):
    """Time each callable of ``impls`` (name → fn): one warm-up call each (its result is
    returned), then rounds of one sample each until ``budget`` seconds or ``max_repeats``.
    A sample is a run of calls of one implementation lasting about ``sample`` seconds (as
    many as its warm-up call says fit, at least one), timed as a whole: the time per call
    of a call that takes microseconds, as timeit and asv measure it (asv's sample_time is
    10 ms), rather than the cold start of the first call after the other implementations
    have run (on a 2-vCPU VM, a 50 x 30 call took about 300 µs more after 10 ms of other
    work or sleep). A call that takes longer than ``sample`` is one sample by itself.
    Returns (medians of the time per call in seconds, warm-up results), both keyed by name."""
    results, calls, per_round = {}, {}, 0.0
    for name, fn in impls.items():
        t0 = time.perf_counter()
        results[name] = fn()
        took = time.perf_counter() - t0
        calls[name] = max(1, int(sample / max(took, 1e-9)))
        per_round += calls[name] * took
    repeats = max(1, min(max_repeats, int(budget / max(per_round, 1e-9))))
    times = {name: [] for name in impls}
    for _ in range(repeats):
        for name, fn in impls.items():
            count = calls[name]
            t0 = time.perf_counter()
            for _ in range(count):
                fn()
            times[name].append((time.perf_counter() - t0) / count)
    return {name: float(np.median(t)) for name, t in times.items()}, results


def sklearn_nnf():
    """scikit-learn's ``non_negative_factorization``, or None where it is not installed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from sklearn.decomposition import non_negative_factorization
    except ImportError:
        return None
    return non_negative_factorization


def batch_rows(count=200, n=100, m=80, k=8, iters=200, budget=6.0, max_repeats=5):
    """Matrices per second of ``nmf_batch`` on a (count, n, m) stack (n_jobs 1 and 2), of a
    loop of ``fastnmf.nmf``, and of a loop of scikit-learn's ``non_negative_factorization``
    (same matrices, rank, init 'nndsvda', tol=0, fixed iterations). Returns rows
    (name, matrices per second, ratio to n_jobs=1, mean relative error)."""
    import fastnmf

    rng = np.random.default_rng(0)
    Xs = rng.random((count, n, 4)) @ rng.random((count, 4, m)) + 0.1 * rng.random((count, n, m))
    kw = dict(init="nndsvda", tol=0.0, max_iter=iters)
    impls = {
        "nmf_batch n_jobs=1": lambda: fastnmf.nmf_batch(Xs, k, n_jobs=1, **kw),
        "nmf_batch n_jobs=2": lambda: fastnmf.nmf_batch(Xs, k, n_jobs=2, **kw),
        "loop of fastnmf.nmf": lambda: [fastnmf.nmf(X, k, **kw) for X in Xs],
    }
    nnf = sklearn_nnf()
    if nnf is not None:
        def sklearn_loop():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return [nnf(X, n_components=k, solver="cd", **kw)[:2] for X in Xs]
        impls["loop of scikit-learn"] = sklearn_loop
    medians, results = interleaved(impls, budget=budget, max_repeats=max_repeats)
    norms = np.linalg.norm(Xs, axis=(1, 2))

    def rel_error(out):
        errs = [r.reconstruction_err if hasattr(r, "reconstruction_err")
                else np.linalg.norm(X - r[0] @ r[1]) for r, X in zip(out, Xs)]
        return float(np.mean(np.array(errs) / norms))

    base = medians["nmf_batch n_jobs=1"]
    return [(name, count / t, base / t, rel_error(results[name])) for name, t in medians.items()]


# --- fastnmf bench ---------------------------------------------------------------------------

# Every solver of the registry, in the order the table shows them.
_BENCH_SOLVERS = tuple(_registry.SOLVERS)
# (n, m, k, iterations, at most this many timed runs, solvers timed in the reference too):
# a tiny problem where call overhead counts, a medium and a large one where the kernels do.
# Each configuration gets about _BENCH_BUDGET seconds of timed runs (at least one), so that
# the whole table takes well under a minute; the NumPy reference 'als' and 'bpp' (Python
# loops of least-squares solves) are left out of the larger sizes.
_BENCH_SIZES = (
    (50, 30, 5, 100, 31, _BENCH_SOLVERS),
    (500, 300, 10, 100, 7, ("cd", "mu", "als")),
    (2000, 1000, 20, 30, 3, ("cd", "mu")),
)
_BENCH_QUICK = (  # bench --quick, for the tests
    (50, 30, 5, 20, 3, _BENCH_SOLVERS),
    (200, 100, 8, 20, 3, _BENCH_SOLVERS),
)
_BENCH_BUDGET = 2.0


def run(args):
    """``fastnmf bench``."""
    import scipy

    from . import _api, reference
    from ._demo import fmt_time
    from ._datasets import low_rank

    non_negative_factorization = sklearn_nnf()
    sklearn = sys.modules.get("sklearn") if non_negative_factorization else None

    sizes = _BENCH_QUICK if args.quick else _BENCH_SIZES
    versions = f"numpy {np.__version__}, scipy {scipy.__version__}"
    versions += f", scikit-learn {sklearn.__version__}" if sklearn else \
        ", scikit-learn not installed"
    print(f"fastnmf bench: median time per call (interleaved runs), init='nndsvda', tol=0, "
          f"fixed iterations; {versions}")
    print("ratio = that implementation's time / fastnmf's time; relative error = "
          "||X - WH||_F / ||X||_F")
    print()
    print(_row(_BENCH_HEADER))
    print(_row(["-" * w for w, _ in _BENCH_COLUMNS]))
    for n, m, k, iters, max_repeats, reference_solvers in sizes:
        X = low_rank(n, m, k, seed=0)
        norm = np.linalg.norm(X)
        for solver in _BENCH_SOLVERS:
            kw = dict(solver=solver, init="nndsvda", tol=0.0, max_iter=iters, random_state=0)
            impls = {"fastnmf": lambda kw=kw: _api.nmf(X, k, **kw)}
            if solver in reference_solvers:
                impls["reference"] = lambda kw=kw: reference.nmf(X, k, **kw)
            if non_negative_factorization is not None and solver in ("cd", "mu"):
                impls["scikit-learn"] = lambda kw=kw: _sklearn_nnf(
                    non_negative_factorization, X, k, kw)
            med, results = interleaved(impls, budget=_BENCH_BUDGET, max_repeats=max_repeats)
            errors = {name: _rel_error(r, X, norm) for name, r in results.items()}
            base = med["fastnmf"]
            cells = [f"{n}x{m}", str(k), str(iters), solver, fmt_time(base)]
            for name in ("reference", "scikit-learn"):
                cells.append(f"{fmt_time(med[name])} ({med[name] / base:.1f}x)"
                             if name in med else "-")
            for name in ("fastnmf", "reference", "scikit-learn"):
                cells.append(f"{errors[name]:.4g}" if name in errors else "-")
            print(_row(cells), flush=True)
    notes = []
    if any(len(s[5]) < len(_BENCH_SOLVERS) for s in sizes):
        notes.append("the reference 'als' and 'bpp' are too slow for the larger sizes")
    if non_negative_factorization is not None:
        notes.append("scikit-learn has no 'als' or 'bpp' solver")
    if notes:
        print(f"\n({'; '.join(notes)})")
    count, n, m, k, iters = (20, 50, 40, 5, 20) if args.quick else (200, 100, 80, 8, 200)
    print(f"\nmany matrices: {count} matrices of {n}x{m}, k={k}, {iters} iterations, "
          f"init='nndsvda', tol=0")
    for name, rate, ratio, err in batch_rows(count, n, m, k, iters,
                                             budget=1.0 if args.quick else 6.0):
        print(f"  {name:<22} {rate:9.1f} matrices/s  {ratio:5.2f}x n_jobs=1  "
              f"relative error {err:.4g}")
    return 0


# (width, align) of each column of the bench table; rows are printed as they are measured.
_BENCH_HEADER = ("size", "k", "iters", "solver", "fastnmf", "reference", "scikit-learn",
                 "err fastnmf", "err ref", "err sklearn")
_BENCH_COLUMNS = ((9, "<"), (3, ">"), (5, ">"), (6, "<"), (9, ">"), (17, ">"), (17, ">"),
                  (11, ">"), (10, ">"), (11, ">"))


def _row(cells):
    return "  ".join(f"{c:{a}{w}}" for c, (w, a) in zip(cells, _BENCH_COLUMNS)).rstrip()


def _sklearn_nnf(non_negative_factorization, X, k, kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W, H, _ = non_negative_factorization(
            X, n_components=k, init=kw["init"], solver=kw["solver"], tol=kw["tol"],
            max_iter=kw["max_iter"], random_state=kw["random_state"])
    return W, H


def _rel_error(result, X, norm):
    if isinstance(result, tuple):
        W, H = result
        return float(np.linalg.norm(X - W @ H) / norm)
    return result.reconstruction_err / norm
