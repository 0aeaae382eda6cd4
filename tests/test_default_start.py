"""The default start (init=None -> 'nndsvda') on real data, k = 20, against scikit-learn.

The data (``fastnmf._datasets.real_matrix``): scikit-learn's digits, a sample image in
grey, and TF-IDF and count matrices of the standard library's docstrings. scikit-learn's
start comes from its private ``_initialize_nmf`` (the one its NMF calls).

- The estimator hands scikit-learn's start to the solver, to the bit (as scikit-learn
  computes it at one BLAS thread), and its default fit equals scikit-learn's to 1e-6.
- ``fastnmf.nmf`` reproduces the same randomized SVD (same draws, same power iterations)
  with its own products: its start, and its error after 200 cd iterations, are no higher
  than scikit-learn's beyond rounding, and the same for the matrix dense or as CSR.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

import fastnmf
from fastnmf._datasets import REAL_MATRICES, real_matrix

pytest.importorskip("sklearn")
from sklearn.decomposition import NMF as SklearnNMF  # noqa: E402
from sklearn.decomposition._nmf import _initialize_nmf  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import fastnmf.sklearn  # noqa: E402

K = 20
# The starts agree to about 1e-13 (the products' rounding); 200 iterations amplify that a
# little. "No higher" allows this much above scikit-learn's error, no more.
ROUNDING = 1e-9


@pytest.fixture(scope="module", params=REAL_MATRICES)
def data(request):
    return request.param, real_matrix(request.param)


def _other_storage(X):
    return X.toarray() if sp.issparse(X) else sp.csr_matrix(X)


def _err(X, W, H):
    Xd = X.toarray() if sp.issparse(X) else X
    return np.linalg.norm(Xd - W @ H)


# ---------------------------------------------------------------------------------------
# The estimator: scikit-learn's start, to the bit


@pytest.mark.parametrize("init", [None, "nndsvdar"])
def test_estimator_start_is_sklearns(data, init, monkeypatch):
    name, X = data
    handed = {}
    original = fastnmf.sklearn.nmf

    def recording(X, k, **kw):
        handed.update(kw)
        return original(X, k, **{**kw, "max_iter": 1})

    monkeypatch.setattr(fastnmf.sklearn, "nmf", recording)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fastnmf.sklearn.NMF(K, init=init, random_state=0).fit(X)
    with threadpool_limits(1, user_api="blas"):  # as the estimator computes it
        Ws, Hs = _initialize_nmf(X, K, init=init, random_state=0)
    assert handed["init"] == "custom"
    assert_array_equal(handed["W"], Ws)
    assert_array_equal(handed["H"], Hs)


def test_estimator_default_fit_equals_sklearn(data):
    """Default arguments (random_state=None: both draw from NumPy's global RandomState)."""
    name, X = data
    with warnings.catch_warnings():  # digits reaches max_iter in both
        warnings.simplefilter("ignore", ConvergenceWarning)
        np.random.seed(0)
        ours = fastnmf.sklearn.NMF(K)
        W = ours.fit_transform(X)
        np.random.seed(0)
        theirs = SklearnNMF(K)
        Ws = theirs.fit_transform(X)
    assert ours.n_iter_ == theirs.n_iter_
    assert_allclose(ours.reconstruction_err_, theirs.reconstruction_err_, rtol=1e-6)
    assert np.linalg.norm(W - Ws) <= 1e-6 * np.linalg.norm(Ws)
    assert (np.linalg.norm(ours.components_ - theirs.components_)
            <= 1e-6 * np.linalg.norm(theirs.components_))


# ---------------------------------------------------------------------------------------
# fastnmf.nmf's default start: never worse than scikit-learn's, the same for any storage


@pytest.mark.parametrize("seed", [0])
def test_nmf_default_start_no_worse_than_sklearn(data, seed):
    name, X = data
    ours = fastnmf.nmf(X, K, tol=0, max_iter=200, random_state=seed)
    Ws, Hs = _initialize_nmf(X, K, init="nndsvda", random_state=seed)
    # scikit-learn's cd iterates from its start (the estimator tests: fastnmf's are equal)
    theirs = fastnmf.nmf(X, K, init="custom", W=Ws, H=Hs, tol=0, max_iter=200)
    assert ours.history[0] <= _err(X, Ws, Hs) * (1 + ROUNDING)
    assert ours.reconstruction_err <= theirs.reconstruction_err * (1 + ROUNDING)


def test_nmf_default_start_same_for_dense_and_sparse(data):
    name, X = data
    a = fastnmf.nmf(X, K, max_iter=1, random_state=0)
    b = fastnmf.nmf(_other_storage(X), K, max_iter=1, random_state=0)
    assert_allclose(a.history[0], b.history[0], rtol=1e-12)
    from fastnmf._init import LazyRNG, initialize
    from fastnmf._validation import check_nmf_args
    import inspect

    defaults = {n: p.default for n, p in inspect.signature(fastnmf.nmf).parameters.items()
                if p.kind is p.KEYWORD_ONLY}
    starts = [initialize(check_nmf_args(Y, K, **{**defaults, "random_state": 0}), LazyRNG(0))
              for Y in (X, _other_storage(X))]
    for F, G in zip(*starts):
        assert np.linalg.norm(F - G) <= 1e-12 * np.linalg.norm(G)
