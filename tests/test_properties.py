"""Property test: any small non-negative matrix, any solver, any valid init and rank.

Matrices of 1..12 × 1..12 in float32 or float64, dense or CSR, with exact zeros, zero rows
and zero columns (up to all-zero X); k from 1 to min(n, m) + 2 (a random start when k
exceeds min(n, m)); tol=0 and at most 30 iterations. Every result must be finite,
non-negative, of the right shape and dtype, with a non-increasing history (cd, als and mu
are all monotone), and no warning may be raised.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnmf

# On a failure, hypothesis's pytest plugin imports its patch writer, whose libcst import
# warns (DeprecationWarning) here; under filterwarnings=error that turns the report into an
# INTERNALERROR that hides the falsifying example. Import it once, quietly, beforehand.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:
        pass

from conftest import CADENCE, SOLVERS  # noqa: E402


@st.composite
def problems(draw):
    n = draw(st.integers(1, 12))
    m = draw(st.integers(1, 12))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    width = 32 if dtype == np.float32 else 64
    positive = st.floats(0, 1e3, width=width, allow_subnormal=False)
    X = draw(hnp.arrays(dtype, (n, m), elements=st.one_of(st.just(0.0), positive)))
    zero_rows = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    zero_cols = draw(st.lists(st.booleans(), min_size=m, max_size=m))
    X[np.array(zero_rows)] = 0
    X[:, np.array(zero_cols)] = 0
    k = draw(st.integers(1, min(n, m) + 2))
    if k <= min(n, m):
        init = draw(st.sampled_from([None, "random", "nndsvd", "nndsvda", "nndsvdar"]))
    else:
        init = draw(st.sampled_from([None, "random"]))
    return dict(
        X=X,
        sparse=draw(st.booleans()),
        k=k,
        solver=draw(st.sampled_from(SOLVERS)),
        init=init,
        max_iter=draw(st.integers(1, 30)),
        random_state=draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=60, deadline=None)
@given(problems())
def test_small_problems(p):
    X, k, solver = p["X"], p["k"], p["solver"]
    n, m = X.shape
    dtype = X.dtype
    Xin = sp.csr_matrix(X) if p["sparse"] else X
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fastnmf.nmf(Xin, k, solver=solver, init=p["init"], tol=0,
                          max_iter=p["max_iter"], random_state=p["random_state"])

    assert res.W.shape == (n, k) and res.H.shape == (k, m)
    assert res.W.dtype == dtype and res.H.dtype == dtype
    assert np.all(np.isfinite(res.W)) and np.all(np.isfinite(res.H))
    assert np.all(res.W >= 0) and np.all(res.H >= 0)
    assert res.solver == solver
    assert res.n_iter == p["max_iter"]

    h = res.history
    assert h.dtype == np.float64 and h.ndim == 1
    assert len(h) == 1 + p["max_iter"] // CADENCE[solver]
    assert np.all(np.isfinite(h)) and np.all(h >= 0)
    assert np.isfinite(res.reconstruction_err) and res.reconstruction_err >= 0

    # The errors come from ‖X‖² − 2⟨W, XHᵀ⟩ + ⟨WᵀW, HHᵀ⟩: rounding of ‖X‖² leaves about
    # sqrt(eps)·‖X‖ of noise on an error near zero. Anything above that is a real increase.
    # (norms taken on X / max X: squares of entries near the float64 limits under/overflow)
    scale = float(X.max()) or 1.0
    X64 = X.astype(np.float64) / scale
    norm = float(np.linalg.norm(X64)) * scale
    slack = 4 * float(np.sqrt(np.finfo(dtype).eps)) * norm  # a Python float: pytest.approx takes no numpy scalar
    assert np.all(np.diff(h) <= slack), h

    WH = (res.W.astype(np.float64) / np.sqrt(scale)) @ (res.H.astype(np.float64) / np.sqrt(scale))
    direct = float(np.linalg.norm(X64 - WH)) * scale
    assert res.reconstruction_err == pytest.approx(direct, rel=1e-3, abs=slack)
    if len(h) > 1 and res.n_iter % CADENCE[solver] == 0:
        assert h[-1] == pytest.approx(res.reconstruction_err, rel=1e-3, abs=slack)
