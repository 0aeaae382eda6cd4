"""Shared parameters and seeded data for the numerical tests.

Everything here is a fixture (no autouse, no side effects), so test files that do not ask
for these names are untouched by them, or a plain name that test files import (SOLVERS,
``setting``, ``narrow``, ``kernel_levels``, ``run_at_level``).
"""

import contextlib
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

if importlib.util.find_spec("fastnmf") is None:  # before any test module fails on its import
    raise pytest.UsageError(
        "fastnmf is not installed in this environment: run `python -m pip install .` "
        "first (README.md, 'Install and run'); the tests run against the installed package"
    )

from fastnmf import _registry  # noqa: E402
from fastnmf._datasets import low_rank  # noqa: E402

# Every solver, and the iterations between two entries of ``history``, from the registry
# (test_api checks the registry against the documented cadence).
SOLVERS = tuple(_registry.SOLVERS)
CADENCE = {name: s.check_every for name, s in _registry.SOLVERS.items()}
DTYPES = (np.float32, np.float64)
# How X is handed to fastnmf: dense C order, dense Fortran order, CSR, CSC.
LAYOUTS = ("C", "F", "csr", "csc")


@contextlib.contextmanager
def setting(hook, value):
    """One of the kernels' settings (``engine_min_bytes``, ``rows_first``,
    ``narrow_kernels``: each returns its old value) at ``value`` inside, restored after."""
    old = hook(value)
    try:
        yield
    finally:
        hook(old)


@contextlib.contextmanager
def narrow(value):
    """The narrow kernels (``_common.narrow_kernels``) on or off inside; on, wherever they
    can run (``narrow_small``: a small X too; ``narrow_max_k``: k up to 128), whichever
    the BLAS's kernels and the CPU at import."""
    from fastnmf._kernels import _common

    with setting(_common.narrow_kernels, value), setting(_common.narrow_small, True):
        with setting(_common.narrow_max_k, 128):
            yield


def kernel_levels():
    """The instruction-set levels this build holds and this CPU runs (baseline always)."""
    import fastnmf._kernels as kernels

    return ["baseline"] + [level for level in kernels._LEVELS
                           if kernels._runs(level) and kernels._built(level)]


def run_at_level(code, level):
    """What ``python -c code`` prints with FASTNMF_CPU=level, split on white space."""
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "FASTNMF_CPU": level},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def _dtype_id(dtype):
    return np.dtype(dtype).name


@pytest.fixture(params=SOLVERS)
def solver(request):
    """Each compiled/reference solver name."""
    return request.param


@pytest.fixture(params=DTYPES, ids=_dtype_id)
def dtype(request):
    """float32 and float64 (ids 'float32', 'float64')."""
    return np.dtype(request.param)


@pytest.fixture(params=LAYOUTS)
def layout(request):
    """'C', 'F', 'csr', 'csc'."""
    return request.param


def in_layout(X, layout):
    """X (dense ndarray or sparse matrix) in ``layout``: 'C', 'F', 'csr' or 'csc'."""
    if layout in ("csr", "csc"):
        return sp.csr_matrix(X).asformat(layout)
    X = X.toarray() if sp.issparse(X) else X
    return np.asfortranarray(X) if layout == "F" else np.ascontiguousarray(X)


@pytest.fixture
def make_X():
    """``make_X(layout="C", dtype=float64, seed=0)``: a 40 × 30 matrix of rank 6 plus 10 %
    non-negative noise, from ``fastnmf._datasets.low_rank``; in a sparse layout about 40 %
    of its entries are kept."""
    def make(layout="C", dtype=np.float64, seed=0):
        density = 0.4 if layout in ("csr", "csc") else None
        X = low_rank(40, 30, 6, noise=0.1, density=density, seed=seed)
        return in_layout(X, layout).astype(dtype)

    return make


@pytest.fixture
def rng():
    """A fresh seeded NumPy Generator."""
    return np.random.default_rng(12345)


def sklearn_random_start(X, k, seed):
    """scikit-learn's ``init='random'`` start, built with NumPy: H is drawn first, then W."""
    X = np.asarray(X)
    avg = np.sqrt(X.mean() / k)
    rs = np.random.RandomState(seed)
    H = np.abs(avg * rs.standard_normal(size=(k, X.shape[1])).astype(X.dtype, copy=False))
    W = np.abs(avg * rs.standard_normal(size=(X.shape[0], k)).astype(X.dtype, copy=False))
    return W, H


def dense_matrix(n=30, m=20, rank=None, seed=0, dtype=np.float64, noise=0.1):
    """A non-negative (n, m) matrix: low rank plus noise when ``rank`` is given."""
    rng = np.random.default_rng(seed)
    if rank is None:
        X = rng.random((n, m))
    else:
        X = rng.random((n, rank)) @ rng.random((rank, m)) + noise * rng.random((n, m))
    return X.astype(dtype)
