"""Side-by-side timing shared by ``fastnmf bench`` and ``bench/compare.py``: implementations
run interleaved in one process (a slow spell hits all alike) and medians are reported."""

import time
import warnings

import numpy as np

__all__ = ["interleaved", "sklearn_nnf", "batch_rows"]


def interleaved(impls, budget=2.0, max_repeats=31):
    """Time each callable of ``impls`` (name → fn): one warm-up call each (its result is
    returned), then rounds of one call each until ``budget`` seconds or ``max_repeats``.
    Returns (medians in seconds, warm-up results), both keyed by name."""
    results, first = {}, 0.0
    for name, fn in impls.items():
        t0 = time.perf_counter()
        results[name] = fn()
        first += time.perf_counter() - t0
    repeats = max(1, min(max_repeats, int(budget / max(first, 1e-9))))
    times = {name: [] for name in impls}
    for _ in range(repeats):
        for name, fn in impls.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
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
