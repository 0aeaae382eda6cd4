"""The larger cases of issue 9: large dense, sparse, time to a target error, peak memory.

Each call here takes seconds, so the timed ones run once per sample (``number = 1``) and
few samples. A variant the installed build lacks is skipped; so is what needs scikit-learn
where it is not installed.
"""

import os

import numpy as np

import fastnmf
from fastnmf._bench import sklearn_nnf
from fastnmf._datasets import low_rank

from .common import (ALL_VARIANTS, check_every, iterations_to, loopback_bytes_sent, matrix,
                     peak_memory, random_start, rel_error, sklearn_factorize, sparse_matrix,
                     variant, variants)

FROBENIUS = tuple(v for v in ALL_VARIANTS if v != "mu")


class Large:
    """8000 x 4000, k = 50: default init (nndsvda) + 100 iterations, the init included."""

    params = (FROBENIUS,)
    param_names = ("variant",)
    number, repeat, rounds, warmup_time = 1, 1, 1, 0
    timeout = 600

    def setup(self, label):
        self.kw = dict(variant(label), tol=0, max_iter=100)
        self.X, self.k = matrix("large")

    def time_default_init_100_iterations(self, label):
        fastnmf.nmf(self.X, self.k, **self.kw)


class OnePass:
    """float32 8000 x 4000, k = 20, cd from a random start, 30 iterations: the memory-bound
    dense case the row-block engine reads X once per iteration for (issue 17)."""

    number, repeat, rounds, warmup_time = 1, 3, 1, 0
    timeout = 600

    def setup(self):
        self.X, self.k = matrix("onepass", np.float32)

    def time_cd_30_iterations(self):
        fastnmf.nmf(self.X, self.k, solver="cd", init="random", random_state=0, tol=0,
                    max_iter=30)


class OutOfCore:
    """float32 8000 x 4000, k = 20, in an .npy opened with mmap_mode="r" (read a chunk at a
    time, never whole): cd and bpp from a random start, 10 iterations, and the memory the
    process peaks at (asv's ``peakmem_``: the chunks, W and H; X's file pages are not
    mapped). ``bench/compare.py --cases outofcore`` runs the issue's 6 GB file."""

    params = (("cd", "bpp"),)
    param_names = ("solver",)
    number, repeat, rounds, warmup_time = 1, 3, 1, 0
    timeout = 600

    def setup_cache(self):
        X, _ = matrix("onepass", np.float32)
        np.save("outofcore.npy", X)  # in asv's folder for this benchmark's run
        return os.path.abspath("outofcore.npy")

    def setup(self, path, solver):
        self.X = np.load(path, mmap_mode="r")
        self.kw = dict(solver=solver, init="random", random_state=0, tol=0, max_iter=10)

    def time_10_iterations(self, path, solver):
        fastnmf.nmf(self.X, 20, **self.kw)

    def peakmem_10_iterations(self, path, solver):
        fastnmf.nmf(self.X, 20, **self.kw)


class SparseFile:
    """The sparse case (CSR 20000 x 5000 at 1 %, k = 30) in a compressed
    ``scipy.sparse.save_npz`` file read a chunk of rows at a time, as ``fastnmf factorize``
    reads one larger than its memory (fastnmf._chunked.SparseFile; opening it decompresses
    the members once): cd from a random start, 10 iterations, its time and peak memory.
    ``bench/compare.py --cases sparsefile`` runs 200000 x 20000 with 8 M non-zeros."""

    number, repeat, rounds, warmup_time = 1, 3, 1, 0
    timeout = 600

    def setup_cache(self):
        import scipy.sparse as sp

        X, _ = sparse_matrix(np.float32)
        sp.save_npz("sparsefile.npz", X)  # in asv's folder for this benchmark's run
        return os.path.abspath("sparsefile.npz"), X.shape

    def setup(self, cache):
        from fastnmf._chunked import SparseFile as File

        path, shape = cache
        self.open = lambda: File(path, "csr", shape)
        self.kw = dict(init="random", random_state=0, tol=0, max_iter=10)

    def time_10_iterations(self, cache):
        fastnmf.nmf(self.open(), 30, **self.kw)

    def peakmem_10_iterations(self, cache):
        fastnmf.nmf(self.open(), 30, **self.kw)


class Dask:
    """float64 20000 x 5000 in 8 blocks of rows, k = 20, each solver from a random start
    (cd, als, bpp and accelerated cd: those three run the pass on a guess), 20 iterations,
    on a LocalCluster of 2 workers x 1 thread (X's blocks persisted there): the time, and
    the bytes sent per iteration over the loopback interface (everything the client, the
    scheduler and the workers send each other; nothing else should run beside it).
    Skipped without distributed."""

    number, repeat, rounds, warmup_time = 1, 3, 1, 0
    timeout = 600
    params = [["cd", "als", "bpp", "accelerate"]]
    param_names = ["solver"]

    def setup(self, solver):
        try:
            import dask.array as da
            import distributed
        except ImportError:
            raise NotImplementedError("needs distributed (pip install '.[dask]')")
        self.cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                                processes=True, dashboard_address=None)
        self.client = distributed.Client(self.cluster)
        X, self.k = matrix("dask")
        self.X = da.from_array(X, chunks=(X.shape[0] // 8, X.shape[1])).persist()
        self.kw = dict(init="random", random_state=0, tol=0, max_iter=20,
                       **(dict(accelerate=True) if solver == "accelerate"
                          else dict(solver=solver)))

    def teardown(self, solver):
        self.client.close()
        self.cluster.close()

    def time_20_iterations(self, solver):
        fastnmf.nmf(self.X, self.k, **self.kw)

    def track_bytes_sent_per_iteration(self, solver):
        before = loopback_bytes_sent()
        fastnmf.nmf(self.X, self.k, **{**self.kw, "max_iter": 10})
        middle = loopback_bytes_sent()
        fastnmf.nmf(self.X, self.k, **{**self.kw, "max_iter": 20})
        return ((loopback_bytes_sent() - middle) - (middle - before)) / 10

    track_bytes_sent_per_iteration.unit = "bytes"


class SparseRanks:
    """A sparse X of a text corpus's shape (CSR 4000 x 3000 at 2 %) at the ranks topic
    models use, cd on one thread, 100 iterations from a fixed custom start: each k takes
    another path of the sparse row kernels (_kernels/_products.pxi: k < 8 as a constant,
    windows of 8 with the last one overlapping, a lone window past a group of 32, rows
    prefetched from 128 bytes)."""

    params = ((3, 5, 8, 12, 20, 40), ("float64", "float32"))
    param_names = ("k", "dtype")
    number, repeat, rounds, warmup_time = 1, 5, 1, 0
    timeout = 600

    def setup(self, k, dtype):
        self.X = low_rank(4000, 3000, 10, density=0.02, seed=0, dtype=dtype)
        W, H = random_start(self.X, k)
        self.kw = dict(solver="cd", init="custom", W=W, H=H, tol=0, max_iter=100,
                       n_threads=1)

    def time_nmf(self, k, dtype):
        fastnmf.nmf(self.X, k, **self.kw)


class Sparse:
    """CSR 20000 x 5000 at 1 %, k = 30, 50 iterations from a fixed custom start."""

    params = (ALL_VARIANTS, ("float64", "float32"))
    param_names = ("variant", "dtype")
    number, repeat, rounds, warmup_time = 1, 3, 1, 0
    timeout = 600

    def setup_cache(self):
        return sparse_matrix()  # built once: it takes a few seconds

    def setup(self, cache, label, dtype):
        X, self.k = cache
        self.X = X.astype(dtype)
        W, H = random_start(self.X, self.k)
        self.kw = dict(variant(label), init="custom", W=W, H=H, tol=0, max_iter=50)

    def time_nmf(self, cache, label, dtype):
        fastnmf.nmf(self.X, self.k, **self.kw)

    def track_relative_error(self, cache, label, dtype):
        res = fastnmf.nmf(self.X, self.k, **self.kw)
        return rel_error(self.X, res.W, res.H)

    track_relative_error.unit = "||X - WH|| / ||X||"


class TimeToTarget:
    """Iterations (and time) to reach scikit-learn cd's error after nndsvda + 300 iterations
    on the medium matrix (2000 x 1000, k = 20, low rank plus noise), init nndsvda.

    ``track_iterations`` is None (asv: failed) where a variant does not reach the target in
    CAP iterations; ``time_to_target`` then times CAP iterations."""

    PEER_ITERS, CAP = 300, 600
    params = (FROBENIUS,)
    param_names = ("variant",)
    number, repeat, rounds, warmup_time = 1, 3, 1, 0
    timeout = 600

    def setup_cache(self):
        nnf = sklearn_nnf()
        if nnf is None:
            return None
        X, k = matrix("medium")
        W, H, _ = sklearn_factorize(nnf, X, k, solver="cd", init="nndsvda", tol=0,
                                    max_iter=self.PEER_ITERS, random_state=0)
        target = rel_error(X, W, H) * np.linalg.norm(X)
        needed = {}
        for label, kw in variants().items():
            if kw["solver"] != "mu":
                res = fastnmf.nmf(X, k, **kw, init="nndsvda", tol=0, max_iter=self.CAP)
                needed[label] = iterations_to(res.history, target, check_every(kw["solver"]))
        return needed

    setup_cache.timeout = 600

    def setup(self, needed, label):
        if needed is None:
            raise NotImplementedError("scikit-learn is not installed")
        self.kw = dict(variant(label), init="nndsvda", tol=0,
                       max_iter=needed.get(label) or self.CAP)
        self.X, self.k = matrix("medium")

    def track_iterations(self, needed, label):
        return needed.get(label)

    track_iterations.unit = "iterations"

    def time_to_target(self, needed, label):
        fastnmf.nmf(self.X, self.k, **self.kw)


class Memory:
    """float32 8000 x 4000, k = 40, default init + 10 iterations: the peak memory one call
    adds, as a fraction of X's size (tracemalloc: Python objects and numpy's buffers), and the
    process's peak resident memory (asv's ``peakmem_``, X included)."""

    params = (ALL_VARIANTS,)
    param_names = ("variant",)
    timeout = 300

    def setup(self, label):
        self.kw = dict(variant(label), tol=0, max_iter=10)
        self.X, self.k = matrix("memory", np.float32)

    def track_peak_fraction_of_X(self, label):
        return peak_memory(lambda: fastnmf.nmf(self.X, self.k, **self.kw)) / self.X.nbytes

    track_peak_fraction_of_X.unit = "fraction of X's bytes"

    def peakmem_nmf(self, label):
        fastnmf.nmf(self.X, self.k, **self.kw)
