"""Inputs and helpers shared by the asv suite and ``bench/compare.py``.

Every input comes from fastnmf's own generators with fixed seeds. The helpers here are the
pieces both need: the fastnmf variants the installed build has, scikit-learn's
``non_negative_factorization`` called the same way everywhere, one error formula for every
implementation, the numpy floor of an iteration, iterations to a target error (from
``history``) and the peak memory of a call.
"""

import inspect
import tracemalloc
import warnings

import numpy as np
import scipy.sparse as sp

import fastnmf
from fastnmf._datasets import low_rank

# (n, m, k) of the dense cases of issue 9.
SIZES = {
    "tiny": (50, 30, 5),
    "small": (100, 80, 8),
    "medium": (2000, 1000, 20),
    "floor": (4000, 2000, 40),
    "large": (8000, 4000, 50),
    "memory": (8000, 4000, 40),
    "onepass": (8000, 4000, 20),
    "outofcore": (300000, 5000, 20),  # 6 GB of float32 (bench/compare.py --cases outofcore)
    "dask": (20000, 5000, 20),  # float64 in 8 blocks of rows on LocalCluster(2 x 1 thread)
}
# (n, m, k, density) of the sparse case: CSR 20000 x 5000 at 1 %.
SPARSE = (20000, 5000, 30, 0.01)


def _registry_variants():
    """Every variant the installed build's solver registry names, in its order: each solver,
    and "<name>+acc" after a solver that takes accelerate=True. Builds from before the
    registry have the five below."""
    try:
        from fastnmf._registry import SOLVERS
    except ImportError:
        return ("cd", "cd+acc", "als", "bpp", "mu"), {"mu": 10}
    labels = []
    for name, entry in SOLVERS.items():
        labels += [name, f"{name}+acc"] if entry.accelerate else [name]
    return tuple(labels), {name: entry.check_every for name, entry in SOLVERS.items()}


# Every variant, in table order (asv parameters are fixed when the benchmarks load; a
# variant the build under test lacks is skipped). "cd+acc" is cd with accelerate=True.
ALL_VARIANTS, _CHECK_EVERY = _registry_variants()


def matrix(size, dtype=np.float64):
    """The dense low-rank-plus-noise matrix of case ``size`` and its rank."""
    n, m, k = SIZES[size]
    return low_rank(n, m, k, seed=0, dtype=dtype), k


def sparse_matrix(dtype=np.float64):
    """The sparse case: CSR 20000 x 5000 at 1 % density, and its rank."""
    n, m, k, density = SPARSE
    return low_rank(n, m, k, density=density, seed=0, dtype=dtype), k


def stack(count=200, n=100, m=80, seed=0):
    """``count`` matrices of n x m of rank 4 plus noise, as one (count, n, m) array."""
    rng = np.random.default_rng(seed)
    return rng.random((count, n, 4)) @ rng.random((count, 4, m)) + 0.1 * rng.random((count, n, m))


def variants():
    """The fastnmf variants of the installed build, as label -> keyword arguments of
    ``fastnmf.nmf``: each solver of ``fastnmf._validation.SOLVERS`` (so 'bpp' where it
    exists), and '<solver>+acc' (``accelerate=True``) where ``nmf`` takes that option."""
    from fastnmf._validation import SOLVERS

    available = {label: {"solver": label} for label in SOLVERS}
    if "accelerate" in inspect.signature(fastnmf.nmf).parameters:
        for label in ALL_VARIANTS:
            name, _, acc = label.partition("+")
            if acc == "acc" and name in available:
                available[label] = {"solver": name, "accelerate": True}
    order = {label: i for i, label in enumerate(ALL_VARIANTS)}
    return dict(sorted(available.items(), key=lambda item: order.get(item[0], len(order))))


def variant(label):
    """``variants()[label]``; NotImplementedError (asv: skipped) where the build lacks it."""
    kw = variants().get(label)
    if kw is None:
        raise NotImplementedError(f"this fastnmf has no variant {label!r}")
    return kw


def check_every(solver):
    """Iterations between two entries of ``history`` (the registry's; 10 for mu, else 1)."""
    return _CHECK_EVERY.get(solver, 1)


def iterations_to(history, target, every=1):
    """The fewest iterations after which ``history`` (the error at the start, then after
    every ``every`` iterations) is at most ``target``; None when it never is."""
    hit = np.flatnonzero(np.asarray(history)[1:] <= target)
    return int(hit[0] + 1) * every if hit.size else None


def sklearn_factorize(nnf, X, k, **kw):
    """scikit-learn's ``non_negative_factorization(X, n_components=k, **kw)`` with its
    warnings silenced (tol=0 always warns) and a custom W/H copied (scikit-learn updates
    them in place). Returns (W, H, n_iter)."""
    for name in ("W", "H"):
        if kw.get(name) is not None:
            kw[name] = kw[name].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nnf(X, n_components=k, **kw)


def rel_error(X, W, H, block=1024):
    """||X - WH||_F / ||X||_F in float64, by the same formula for every implementation
    (dense: a block of rows at a time; sparse: through the Grams, X never densified)."""
    W, H = np.asarray(W, np.float64), np.asarray(H, np.float64)
    if sp.issparse(X):
        X = X.astype(np.float64)
        xx = float(X.data @ X.data)
        sq = xx - 2 * np.sum(H * (X.T @ W).T) + np.sum((W.T @ W) * (H @ H.T))
        return float(np.sqrt(max(sq, 0.0) / xx))
    sq = xx = 0.0
    for i in range(0, X.shape[0], block):
        Xb = np.asarray(X[i:i + block], np.float64)
        sq += np.linalg.norm(Xb - W[i:i + block] @ H) ** 2
        xx += np.linalg.norm(Xb) ** 2
    return float(np.sqrt(sq / xx))


def random_start(X, k, seed=0):
    """A custom start (W, H) in X's dtype: |N(0, 1)| scaled by sqrt(mean(X) / k), as
    scikit-learn's random init scales it."""
    rng = np.random.default_rng(seed)
    avg = np.sqrt(X.mean() / k)
    W = avg * np.abs(rng.standard_normal((X.shape[0], k)))
    H = avg * np.abs(rng.standard_normal((k, X.shape[1])))
    return W.astype(X.dtype), H.astype(X.dtype)


def loopback_bytes_sent():
    """Bytes sent so far over the loopback interface: everything a local Dask cluster's
    processes (client, scheduler, workers) send each other by TCP, whether tasks'
    transfers or calls to the workers' actors (which transfer counters miss). psutil is
    a dependency of distributed."""
    import psutil

    counters = psutil.net_io_counters(pernic=True)
    return counters["lo" if "lo" in counters else "lo0"].bytes_sent


def floor_products(X, k, repeats=1, seed=0):
    """A callable computing the two products of one iteration, X Hᵀ and Wᵀ X, ``repeats``
    times with numpy (scipy.sparse for a sparse X) on X's shapes and dtype."""
    rng = np.random.default_rng(seed)
    W = rng.random((X.shape[0], k)).astype(X.dtype)
    H = rng.random((k, X.shape[1])).astype(X.dtype)

    def products():
        for _ in range(repeats):
            X @ H.T
            W.T @ X

    return products


def peak_memory(fn):
    """Peak bytes allocated while ``fn()`` runs, as tracemalloc sees them: Python objects
    and numpy's array buffers (numpy reports them to tracemalloc), not memory that C code
    allocates directly (BLAS buffers)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
