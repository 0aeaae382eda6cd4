"""fastnmf.sklearn.NMF: scikit-learn's estimator checks, agreement with fastnmf.nmf and with
sklearn.decomposition.NMF, scikit-learn's parameter errors and warnings."""

import inspect
import pickle
import re

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("sklearn")

from sklearn.decomposition import NMF as SkNMF  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnmf  # noqa: E402
import fastnmf.sklearn as fsk  # noqa: E402
from fastnmf.sklearn import NMF, _nndsvd_start  # noqa: E402


from conftest import SOLVERS, setting  # noqa: E402


def _data(n=30, m=12, dtype=np.float64, seed=0):
    rng = np.random.RandomState(seed)
    return np.abs(rng.randn(n, m)).astype(dtype)


# scikit-learn's own common tests run NMF with max_iter=500 and do not turn its
# ConvergenceWarning into an error; sklearn.decomposition.NMF(max_iter=500) emits the same
# warnings in the same checks (check_transformer_general & co. on their tiny blobs), so
# they are ignored here and nowhere else. 'mu' is not in the list: scikit-learn's own
# NMF(solver='mu') fails check_transformer_general in the same way (fit_transform and
# transform differ by 0.077 > atol 0.01 on that data; ours matches it to 1e-13, see
# test_mu_transform_matches_sklearn). No expected failures.
def _estimator_checks(estimators):
    """scikit-learn's checks for ``estimators``, less check_array_api_input: fastnmf does not
    claim array-API support, and that check only skips itself (SCIPY_ARRAY_API unset)."""
    mark = parametrize_with_checks(estimators)
    ids = mark.kwargs["ids"]
    kept = [p for p in mark.args[1] if _check_name(p[1]) != "check_array_api_input"]
    return pytest.mark.parametrize(mark.args[0], kept, ids=ids)


def _check_name(check):
    return getattr(getattr(check, "func", check), "__name__", "")


@_estimator_checks([
    NMF(max_iter=500),
    NMF(solver="als", max_iter=500),
    NMF(solver="bpp", max_iter=500),
    NMF(init="random", random_state=0, shuffle=True, alpha_W=0.01, l1_ratio=0.5,
        max_iter=500),
])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_signature_and_constraints_mirror_sklearn():
    ours = inspect.signature(NMF).parameters
    theirs = inspect.signature(SkNMF).parameters
    # scikit-learn's parameters in its order, then fastnmf's own n_threads
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()
    ] + [("n_threads", inspect.Parameter.KEYWORD_ONLY, None)]
    assert (inspect.signature(NMF.inverse_transform)
            == inspect.signature(SkNMF.inverse_transform))
    assert inspect.signature(NMF.fit) == inspect.signature(SkNMF.fit)
    assert inspect.signature(NMF.fit_transform) == inspect.signature(SkNMF.fit_transform)
    assert set(NMF._parameter_constraints) == set(SkNMF._parameter_constraints) | {"n_threads"}
    assert NMF().get_params() == {**SkNMF().get_params(), "n_threads": None}


@pytest.mark.parametrize("solver", SOLVERS)
def test_shapes_and_fit_transform_vs_transform(solver):
    # scikit-learn's test_nmf_transform: fit_transform and fit().transform agree.
    A = np.abs(np.random.mtrand.RandomState(42).randn(6, 5))
    m = NMF(solver=solver, n_components=3, init="random", random_state=0, tol=1e-6,
            max_iter=5000)
    ft = m.fit_transform(A)
    t = m.transform(A)
    assert ft.shape == t.shape == (6, 3)
    assert m.components_.shape == (3, 5)
    assert m.n_components_ == 3 and m.n_features_in_ == 5
    np.testing.assert_allclose(ft, t, atol=1e-1)
    assert m.inverse_transform(t).shape == (6, 5)
    np.testing.assert_array_equal(m.inverse_transform(t), t @ m.components_)
    model2 = NMF(solver=solver, n_components=3, init="random", random_state=0, tol=1e-6,
                 max_iter=5000).fit(A)
    np.testing.assert_allclose(model2.transform(A), ft, rtol=1e-1, atol=1e-2)


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", SOLVERS)
def test_same_as_fastnmf_nmf(solver, dtype, fmt):
    X = _data(dtype=dtype)
    X[X < 0.5] = 0
    Xin = X if fmt == "dense" else getattr(sp, f"{fmt}_matrix")(X)
    kw = dict(solver=solver, init="nndsvdar", max_iter=300, tol=1e-3, alpha_W=0.01,
              alpha_H=0.02, l1_ratio=0.3, random_state=3, shuffle=True)
    # from the estimator's start, scikit-learn's (fastnmf.nmf's agrees to rounding)
    W0, H0 = _nndsvd_start(Xin, 4, "nndsvdar", 3)
    res = fastnmf.nmf(Xin, 4, **{**kw, "init": "custom"}, W=W0, H=H0)
    model = NMF(4, **kw)
    W = model.fit_transform(Xin)
    np.testing.assert_array_equal(W, res.W)
    np.testing.assert_array_equal(model.components_, res.H)
    assert W.dtype == model.components_.dtype == dtype
    assert model.reconstruction_err_ == res.reconstruction_err
    assert model.n_iter_ == res.n_iter < 300
    assert W.flags.writeable and model.components_.flags.writeable
    # transform is fastnmf's fixed-H mode
    t = model.transform(Xin)
    fixed = fastnmf.nmf(Xin, 4, H=model.components_, update_H=False, **kw)
    np.testing.assert_array_equal(t, fixed.W)
    assert t.dtype == dtype


@pytest.mark.parametrize("init", ["nndsvd", "nndsvda", "nndsvdar"])
@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_start_is_sklearns_at_one_blas_thread(init, fmt):
    """The estimator's nndsvd* start is scikit-learn's own, bit for bit, as scikit-learn
    computes it at one BLAS thread (in a joblib worker, under threadpool_limits(1)),
    whatever BLAS count the caller has and from any Python thread. On a 2000 x 1500 X
    scikit-learn's start differs in its last bits between one BLAS thread and two."""
    from threading import Thread

    from sklearn.decomposition._nmf import _initialize_nmf
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(4)
    X = rng.random((2000, 1500))
    X[X < 0.7] = 0
    Xin = X if fmt == "dense" else sp.csr_matrix(X)
    with threadpool_limits(1, user_api="blas"):
        W1, H1 = _initialize_nmf(Xin, 20, init=init, random_state=5)
    got = []
    for limit in (None, 2):
        with threadpool_limits(limit, user_api="blas"):
            got.append(_nndsvd_start(Xin, 20, init, 5))
    thread = Thread(target=lambda: got.append(_nndsvd_start(Xin, 20, init, 5)))
    thread.start()
    thread.join()
    assert len(got) == 3
    for W, H in got:
        np.testing.assert_array_equal(W, W1)
        np.testing.assert_array_equal(H, H1)


def test_sparse_matches_dense():
    X = _data()
    X[X < 0.8] = 0
    dense = NMF(3, max_iter=1000).fit(X)
    for S in (sp.csr_matrix(X), sp.csc_matrix(X), sp.csr_array(X)):
        model = NMF(3, max_iter=1000).fit(S)
        np.testing.assert_allclose(model.components_, dense.components_, rtol=1e-6,
                                   atol=1e-9)
        np.testing.assert_allclose(model.transform(S), dense.transform(X), rtol=1e-6,
                                   atol=1e-9)


def test_dtypes():
    X = _data()
    assert NMF(2, max_iter=1000).fit(X.astype(np.float32)).components_.dtype == np.float32
    m = NMF(2, max_iter=1000).fit((X * 10).astype(np.int64))
    assert m.components_.dtype == np.float64
    assert m.transform((X * 10).astype(np.int64)).dtype == np.float64
    # documented difference: scikit-learn raises TypeError, we compute in X's dtype
    assert m.transform(X.astype(np.float32)).dtype == np.float32


def test_convergence_warning_as_sklearn():
    X = _data()
    msg = "Maximum number of iterations 3 reached. Increase it to improve convergence."
    for cls in (NMF, SkNMF):
        with pytest.warns(ConvergenceWarning, match=re.escape(msg)):
            cls(3, max_iter=3, tol=1e-4).fit(X)
    model = NMF(3, max_iter=3, tol=0)
    model.fit(X)  # no warning with tol=0 (warnings are errors here)
    assert model.n_iter_ == 3
    model.transform(X)
    # transform warns too, as scikit-learn's does, when it stops at max_iter
    with pytest.warns(ConvergenceWarning):
        NMF(3, max_iter=3, tol=1e-12).fit(np.eye(8) + X[:8, :8]).transform(X[:8, :8])


def test_n_iter_limit_reached_without_tol_check_semantics():
    # The warning condition is scikit-learn's: n_iter == max_iter and tol > 0.
    X = _data()
    full = NMF(3, tol=1e-4, max_iter=2000).fit(X)
    assert full.n_iter_ < 2000
    with pytest.warns(ConvergenceWarning):
        NMF(3, tol=1e-4, max_iter=full.n_iter_).fit(X)


def test_feature_names_out():
    X = _data(m=6)
    model = NMF(3, max_iter=1000).fit(X)
    np.testing.assert_array_equal(model.get_feature_names_out(), ["nmf0", "nmf1", "nmf2"])
    sk = SkNMF(3, max_iter=1000).fit(X)
    np.testing.assert_array_equal(model.get_feature_names_out(), sk.get_feature_names_out())
    assert not hasattr(model, "feature_names_in_")


def test_set_output_pandas():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_data(m=4), columns=["a", "b", "c", "d"])
    model = NMF(2, max_iter=1000).set_output(transform="pandas")
    out = model.fit_transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["nmf0", "nmf1"]
    np.testing.assert_array_equal(model.feature_names_in_, ["a", "b", "c", "d"])
    assert list(model.transform(X).columns) == ["nmf0", "nmf1"]


def test_pickle_round_trip():
    X = _data()
    model = NMF(4, init="random", random_state=0, max_iter=1000).fit(X)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.components_, model.components_)
    np.testing.assert_array_equal(clone.transform(X), model.transform(X))
    assert clone.reconstruction_err_ == model.reconstruction_err_


@pytest.mark.parametrize("init", ["nndsvda", "random"])
@pytest.mark.parametrize("solver", ["cd", "mu"])
def test_against_sklearn(solver, init):
    X = _data(n=40, m=15, seed=1)
    kw = dict(n_components=5, solver=solver, init=init, random_state=7, tol=0,
              max_iter=150)
    ours = NMF(**kw).fit(X)
    theirs = SkNMF(**kw).fit(X)
    assert ours.n_iter_ == theirs.n_iter_ == 150
    np.testing.assert_allclose(ours.reconstruction_err_, theirs.reconstruction_err_,
                               rtol=1e-2)
    # with tol > 0 (converging): the final errors still agree within 1 %
    kw.update(tol=1e-4, max_iter=5000)
    ours, theirs = NMF(**kw).fit(X), SkNMF(**kw).fit(X)
    np.testing.assert_allclose(ours.reconstruction_err_, theirs.reconstruction_err_,
                               rtol=1e-2)


def test_transform_regularization_as_sklearn():
    X = _data()
    kw = dict(n_components=4, alpha_W=0.05, alpha_H=0.01, l1_ratio=0.4, max_iter=2000,
              tol=1e-8)
    ours = NMF(**kw).fit(X)
    theirs = SkNMF(**kw).fit(X)
    theirs.components_ = ours.components_.copy()
    np.testing.assert_allclose(ours.transform(X), theirs.transform(X), rtol=1e-4,
                               atol=1e-7)


def test_mu_transform_matches_sklearn():
    X = _data(n=12, m=5, seed=2)
    sk = SkNMF(3, solver="mu", max_iter=500, random_state=0, tol=1e-3).fit(X)
    ours = NMF(3, solver="mu", max_iter=500, random_state=0, tol=1e-3).fit(X)
    ours.components_ = sk.components_.copy()
    np.testing.assert_allclose(ours.transform(X), sk.transform(X), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("params", [
    dict(n_components=-1),
    dict(init="bogus"),
    dict(tol=-1.0),
    dict(max_iter=0),
    dict(alpha_H="bogus"),
    dict(l1_ratio=2.0),
])
def test_parameter_errors_as_sklearn(params):
    X = _data()
    with pytest.raises(InvalidParameterError) as theirs:
        SkNMF(**params).fit(X)
    with pytest.raises(InvalidParameterError, match=re.escape(str(theirs.value))):
        NMF(**params).fit(X)


@pytest.mark.parametrize("n_threads", [0, True, False, 2.0, "2", 10**6, -10**6])
def test_n_threads_errors_as_sklearn_parameters(n_threads):
    # every bad count is scikit-learn's parameter error, checked before any work, with
    # the range fastnmf.nmf takes (not a TypeError or ValueError from inside the fit)
    most = fastnmf._validation.most_threads()
    with pytest.raises(InvalidParameterError,
                       match=re.escape(f"The 'n_threads' parameter of NMF must be an int in "
                                       f"the range [1, {most}], an int in the range "
                                       f"[-{most}, -1] or None. Got {n_threads!r} instead.")):
        NMF(2, n_threads=n_threads).fit(_data())
    for good in (1, most, -1, -most, None):
        NMF(2, n_threads=good, max_iter=3, tol=0).fit(_data())


@pytest.mark.parametrize("index_dtype", [np.uint32, np.uint64, np.int16])
def test_sparse_with_other_index_types(index_dtype):
    """A CSR whose index arrays are of another integer type is taken (it failed inside the
    estimator's canonical check): the model of the same matrix with int32 indices."""
    X = sp.csr_matrix(_data())
    Y = X.copy()
    Y.indices, Y.indptr = Y.indices.astype(index_dtype), Y.indptr.astype(index_dtype)
    kw = dict(init="nndsvda", random_state=0, max_iter=20, tol=0)
    a, b = NMF(3, **kw).fit(X), NMF(3, **kw).fit(Y)
    assert _same_model(a, b)
    np.testing.assert_array_equal(a.transform(X), b.transform(Y))


def test_solver_error_lists_als():
    with pytest.raises(InvalidParameterError,
                       match=r"The 'solver' parameter of NMF must be a str among "
                             r"\{.*'als'.*\}\. Got 'bogus' instead\."):
        NMF(solver="bogus").fit(_data())


@pytest.mark.parametrize("solver", ["cd", "als"])
def test_non_frobenius_beta_loss_rejected_by_cd_as_sklearn(solver):
    X = _data()
    with pytest.raises(ValueError) as theirs:
        SkNMF(solver="cd", beta_loss="kullback-leibler").fit(X)
    msg = str(theirs.value).replace("'cd'", repr(solver))
    with pytest.raises(ValueError, match=re.escape(msg)):
        NMF(solver=solver, beta_loss="kullback-leibler").fit(X)


def test_beta_loss_passed_through_to_nmf(monkeypatch):
    seen = {}
    real = fsk.nmf

    def spy(X, k, **kw):
        seen.update(kw)
        return real(X, k, **{**kw, "beta_loss": "frobenius"})

    monkeypatch.setattr(fsk, "nmf", spy)
    X = _data()
    model = NMF(3, solver="mu", beta_loss="kullback-leibler", max_iter=1000).fit(X)
    assert seen["beta_loss"] == "kullback-leibler"
    model.transform(X)
    assert seen["beta_loss"] == "kullback-leibler" and seen["update_H"] is False
    with pytest.raises(ValueError, match="beta_loss <= 0 and X contains zeros"):
        NMF(solver="mu", beta_loss="itakura-saito").fit(np.eye(4))


@pytest.mark.parametrize("beta_loss", ["kullback-leibler", "itakura-saito", 0.5, 1.5, 3.0])
@pytest.mark.parametrize("reg", [{}, dict(alpha_W=0.01, alpha_H=0.02, l1_ratio=0.3)])
def test_beta_losses_against_sklearn(beta_loss, reg):
    # solver 'mu' with another beta_loss: fit, n_iter_, reconstruction_err_ (its
    # sqrt(2 * divergence)) and transform as scikit-learn's, to rounding.
    X = _data(n=40, m=15, seed=1) + 0.01
    kw = dict(n_components=5, solver="mu", beta_loss=beta_loss, init="random",
              random_state=0, tol=1e-4, max_iter=2000, **reg)
    ours, theirs = NMF(**kw), SkNMF(**kw)
    np.testing.assert_allclose(ours.fit_transform(X), theirs.fit_transform(X),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.components_, theirs.components_, rtol=1e-9,
                               atol=1e-12)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.reconstruction_err_, theirs.reconstruction_err_,
                               rtol=1e-12)
    if beta_loss == "kullback-leibler" and reg:
        # scikit-learn 1.x's transform with beta_loss=1 and an L1 share adds l1_reg_W
        # in place to its cached sum of H, so its L1 penalty grows with every
        # iteration (`denominator += l1_reg_W` on a view of H_sum); ours is the plain
        # fixed-H update, as in fit.
        return
    np.testing.assert_allclose(ours.transform(X), theirs.transform(X), rtol=1e-9,
                               atol=1e-12)


def test_custom_init_and_auto_n_components():
    X = _data(m=8)
    res = fastnmf.nmf(X, 3, max_iter=5, tol=0)
    model = NMF(init="custom", max_iter=1000)  # n_components="auto": from H
    W = model.fit_transform(X, W=res.W.copy(), H=res.H.copy())
    assert model.n_components_ == 3 and W.shape == (30, 3)
    # scikit-learn's private name for the resolved n_components, which its own test
    # module reads (test_nmf_n_components_auto)
    assert model._n_components == 3
    expected = fastnmf.nmf(X, 3, init="custom", W=res.W, H=res.H, max_iter=1000)
    np.testing.assert_array_equal(W, expected.W)
    assert NMF(max_iter=20, tol=0).fit(X).n_components_ == 8
    assert NMF(None, max_iter=20, tol=0).fit(X).n_components_ == 8
    # fit forwards W and H to fit_transform, as scikit-learn's
    fitted = NMF(init="custom", max_iter=1000).fit(X, W=res.W.copy(), H=res.H.copy())
    np.testing.assert_array_equal(fitted.components_, expected.H)


def test_custom_init_errors_as_sklearn():
    X = _data(m=8)
    W, H = np.ones((30, 3)), np.ones((3, 8))
    cases = [(W, np.ones((3, 7))), (np.ones((29, 3)), H), (W, -H), (W, 0 * H),
             (W, H.astype(np.float32))]
    for Wc, Hc in cases:
        with pytest.raises((ValueError, TypeError)) as theirs:
            SkNMF(3, init="custom").fit(X, W=Wc, H=Hc)
        with pytest.raises(theirs.type, match=re.escape(str(theirs.value))):
            NMF(3, init="custom").fit(X, W=Wc, H=Hc)
    with pytest.warns(RuntimeWarning, match="provided W or H are ignored"):
        NMF(3, max_iter=1000).fit(X, W=W, H=H)
    # scikit-learn does not check X with init='custom' (and returns negative factors);
    # we reject it in its words
    with pytest.raises(ValueError, match=re.escape(
            "Negative values in data passed to NMF (input X)")):
        NMF(3, init="custom").fit(-X, W=W, H=H)


def test_input_errors_as_sklearn():
    X = _data()
    with pytest.raises(ValueError, match="Negative values in data passed to NMF"):
        NMF(2).fit(-X)
    with pytest.raises(ValueError, match="can only be used when n_components <= min"):
        NMF(13, init="nndsvd").fit(X[:, :12])
    with pytest.raises(ValueError, match="Input X contains NaN"):
        NMF(2).fit(np.full((3, 3), np.nan))
    with pytest.raises(NotFittedError):
        NMF(2).transform(X)
    model = NMF(2, max_iter=1000).fit(X)
    with pytest.raises(ValueError, match="Negative values in data passed to X in NMF"):
        model.transform(-X)
    with pytest.raises(ValueError, match="X has 5 features, but NMF is expecting 12"):
        model.transform(X[:, :5])
    with pytest.warns(UserWarning, match="cannot update zeros"):
        NMF(2, solver="mu", init="nndsvd", max_iter=1000).fit(X)


def _sparse_case(fmt="csr", dtype=np.float64):
    rng = np.random.default_rng(7)
    X = rng.random((40, 30)) * (rng.random((40, 30)) < 0.3)
    return sp.csr_matrix(X.astype(dtype)) if fmt == "csr" else sp.csc_matrix(X.astype(dtype))


def _same_model(a, b):
    return (np.array_equal(a.components_, b.components_) and a.n_iter_ == b.n_iter_
            and a.reconstruction_err_ == b.reconstruction_err_)


def _bad_indptr_end(X):
    X.indptr[-1] = 10**6  # scipy's X.min() reads and writes through such an indptr
    return X


def _bad_indptr_order(X):
    X.indptr[2], X.indptr[3] = X.indptr[3] + 1, X.indptr[2]
    return X


def _bad_index(X):
    X.indices[0] = 1000
    return X


@pytest.mark.parametrize("method", ["fit", "transform"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("damage, words", [
    (_bad_indptr_end, "indptr must end at the number of stored entries"),
    (_bad_indptr_order, "indptr must be non-decreasing"),
    (_bad_index, "indices must be in"),
])
def test_malformed_sparse_is_a_value_error_and_x_untouched(damage, words, fmt, method):
    """fastnmf's check of a sparse X's index arrays comes before scikit-learn's
    validation and any scipy reduction (X.min() rewrote such an X in place, or crashed)."""
    X = _sparse_case(fmt)
    model = NMF(3, max_iter=20, tol=0).fit(X)
    bad = damage(X.copy())
    arrays = [a.copy() for a in (bad.data, bad.indices, bad.indptr)]
    with pytest.raises(ValueError, match=f"X is a malformed {fmt.upper()} matrix: its.*{words}"):
        if method == "fit":
            NMF(3, init="random", max_iter=20, tol=0).fit(bad)
        else:
            model.transform(bad)
    for a, b in zip(arrays, (bad.data, bad.indices, bad.indptr)):
        np.testing.assert_array_equal(a, b)


def test_huge_sparse_shape_refused_before_conversion():
    """A COO matrix of 2**31 rows with one stored entry: refused by its shape before
    scikit-learn's validation converts it to CSR (a 16 GiB indptr)."""
    X = sp.coo_matrix(([1.0], ([0], [0])), shape=(2**31, 3))
    with pytest.raises(ValueError, match=r"X has too many rows.*2\*\*31"):
        NMF(2).fit(X)


@pytest.mark.parametrize("stale_flag", [False, True], ids=["flag-right", "flag-stale"])
@pytest.mark.parametrize("init", ["nndsvda", "nndsvdar", "random"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_stored_zeros_and_duplicates_change_nothing(init, dtype, stale_flag):
    """Explicit zeros and duplicate entries (their sum the entry) give the results of the
    canonical matrix, bit for bit, the start included (scikit-learn's X.mean() sums the
    stored entries: zeros among them change its rounding), also under a stale
    ``has_canonical_format`` of True; the caller's X is left as it was."""
    X = _sparse_case("csr", dtype)
    coo = X.tocoo()
    rng = np.random.default_rng(3)
    half = coo.data * rng.random(coo.nnz).astype(dtype)
    zeros = rng.integers(0, 40, 200), rng.integers(0, 30, 200)
    noisy = sp.csr_matrix((np.concatenate([half, coo.data - half, np.zeros(200, dtype)]),
                           (np.concatenate([coo.row, coo.row, zeros[0]]),
                            np.concatenate([coo.col, coo.col, zeros[1]]))), shape=X.shape)
    noisy.has_canonical_format = False  # duplicates kept as given
    canonical = noisy.copy()
    canonical.sum_duplicates()
    canonical.eliminate_zeros()
    assert noisy.nnz > canonical.nnz
    noisy.has_canonical_format = stale_flag
    before = [a.copy() for a in (noisy.data, noisy.indices, noisy.indptr)]
    kw = dict(init=init, random_state=0, max_iter=30, tol=0)
    a, b = NMF(4, **kw).fit(noisy), NMF(4, **kw).fit(canonical)
    assert _same_model(a, b)
    np.testing.assert_array_equal(a.transform(noisy), b.transform(canonical))
    for x, y in zip(before, (noisy.data, noisy.indices, noisy.indptr)):
        np.testing.assert_array_equal(x, y)


def test_unaligned_x_as_an_aligned_copy():
    """An X at an odd address (Dask hands such buffers to its workers) is copied: the
    model of an aligned copy, bit for bit (scikit-learn's start rounds otherwise)."""
    X = np.asfortranarray(_data())
    raw = bytearray(X.nbytes + 1)
    odd = np.frombuffer(raw, dtype=np.float64, count=X.size, offset=1).reshape(X.shape,
                                                                               order="F")
    odd[...] = X
    assert not odd.flags.aligned
    kw = dict(init="nndsvda", random_state=0, max_iter=30, tol=0)
    assert _same_model(NMF(3, **kw).fit(odd), NMF(3, **kw).fit(X))


@pytest.mark.parametrize("scale", [-1030, -300, 600], ids=["subnormal", "tiny", "huge"])
def test_extreme_scale_is_the_scaled_problem_scaled_back(scale):
    """An X of extreme scale is solved for X · 2**-e, its start included (scikit-learn's
    own start overflows, or zeros every entry under its absolute threshold): the model
    of X is that of X · 2**-e scaled back by 2**(e/2), bit for bit."""
    X = _data()
    e = 4 * round((scale + np.log2(X.max())) / 4)
    big = np.ldexp(X, scale)
    kw = dict(init="nndsvda", random_state=0, max_iter=30, tol=0)
    a, b = NMF(3, **kw).fit(big), NMF(3, **kw).fit(np.ldexp(big, -e))
    np.testing.assert_array_equal(a.components_, np.ldexp(b.components_, e // 2))
    assert a.n_iter_ == b.n_iter_


def test_als_transform_stops_early():
    """als measures its stopping violation at the incoming factor (as cd does): a first
    half-step that already solves W exactly must not make later checks unreachable."""
    A = np.abs(np.random.mtrand.RandomState(42).randn(6, 5))
    model = NMF(3, solver="als", init="random", random_state=0, tol=1e-6,
                max_iter=5000).fit(A)
    assert model.n_iter_ < 100
    model.transform(A)  # a ConvergenceWarning is an error here


# -- scikit-learn's cd iterates on both sides of every size threshold -----------------
#
# Each case sits just below or just above a size at which the kernels switch code path:
# the tiny Gram (p <= 128 columns and k²p <= 2048 multiply-adds, or k <= 11 where the
# BLAS's syrk sums as it does: small_gram; else syrk),
# the other-order copy of a dense X (n·m·k <= 32768), threaded products and sweeps (n·m·k
# or k²p >= 1048576 multiply-adds), the large Gram summed from 4 pieces (k²p >= 1048576
# and p >= 256) and the sweep's tiles (32 float64 / 64 float32 columns) and blocks.
THRESHOLD_CASES = {
    "tiny-gram-both": (60, 81, 5),        # k²p = 1500 and 2025: both Grams small_gram
    "tiny-gram-over": (60, 82, 5),        # H's Gram k²p = 2050: syrk (or small_gram)
    "tiny-gram-cols": (128, 129, 2),      # p = 128 small_gram, p = 129 syrk
    "tiny-gram-k": (100, 90, 11),         # k = 11: small_gram (or syrk)
    "tiny-gram-k-over": (100, 90, 12),    # k = 12: syrk
    "other-order-at": (64, 128, 4),       # n·m·k = 32768: copy kept
    "other-order-over": (64, 129, 4),     # 33024: no copy
    "threads-under": (512, 511, 4),       # n·m·k = 1046528: one thread
    "threads-at": (512, 512, 4),          # 1048576: threaded products
    "gram-pieces-under": (1023, 40, 32),  # W's Gram k²p = 1047552: one syrk
    "gram-pieces-at": (1024, 40, 32),     # 1048576: 4 pieces, threaded sweep
    "tiles": (97, 65, 3),                 # a tile and a remainder either dtype
}


def _threshold_problem(n, m, k, dtype, layout, seed=0):
    rng = np.random.RandomState(seed)
    X = np.abs(rng.randn(n, m))
    if layout == "csr":
        X[X < 0.5] = 0
    X = X.astype(dtype)
    avg = np.sqrt(X.mean() / k)
    H0 = np.abs(avg * rng.randn(k, m)).astype(dtype)
    W0 = np.abs(avg * rng.randn(n, k)).astype(dtype)
    Xin = {"C": X, "F": np.asfortranarray(X), "csr": sp.csr_matrix(X)}[layout]
    return Xin, W0, H0


@pytest.mark.parametrize("layout", ["C", "F", "csr"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(THRESHOLD_CASES))
def test_cd_iterates_as_sklearn_across_thresholds(case, dtype, layout):
    """W and H after 10 cd iterations from one custom start, tol=0, against scikit-learn's
    non_negative_factorization. Both sides sum the same products in the same order per
    entry, except that the products with X are separate BLAS calls of other shapes (whose
    kernels may order a sum differently) and a large Gram is summed from 4 pieces: so the
    factors agree to rounding, relative to the largest entry, 1e-12 in float64 and 1e-5 in
    float32 (seen: up to 3e-15 and 2e-6); a Gram of another rounding would still pass
    this in most cases, the bit-equal Grams are checked in test_factor_gram_as_numpy."""
    from sklearn.decomposition import non_negative_factorization

    n, m, k = THRESHOLD_CASES[case]
    X, W0, H0 = _threshold_problem(n, m, k, dtype, layout)
    Ws, Hs, n_iter = non_negative_factorization(
        X, W0.copy(), H0.copy(), k, init="custom", solver="cd", tol=0, max_iter=10)
    res = fastnmf.nmf(X, k, init="custom", W=W0, H=H0, solver="cd", tol=0, max_iter=10)
    assert n_iter == res.n_iter == 10
    assert res.W.dtype == Ws.dtype == dtype
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert np.max(np.abs(res.W - Ws)) <= rtol * np.max(Ws)
    assert np.max(np.abs(res.H - Hs)) <= rtol * np.max(Hs)


def _openblas_fma_scipy():
    """Whether the BLAS that scipy calls (the kernels') is OpenBLAS with FMA kernels, by
    the rule fastnmf's import applies."""
    from fastnmf._threads import haswell_kernels, skylakex_kernels

    return haswell_kernels() or skylakex_kernels()


def _openblas_fma_numpy():
    """Whether NumPy's BLAS is OpenBLAS on a kernel with fused multiply-adds (Haswell and
    later, Zen): then a Gram's entries are chains of FMAs within a block of 128 columns."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    numpy_blas = [lib for lib in threadpoolctl.threadpool_info()
                  if "numpy" in lib.get("filepath", "")]
    return bool(numpy_blas) and numpy_blas[0].get("internal_api") == "openblas" and (
        (numpy_blas[0].get("architecture") or "").lower()
        in {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"})


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("k, p", [(1, 100), (2, 128), (2, 129), (3, 227), (3, 228),
                                  (5, 30), (5, 81), (5, 82), (8, 32), (8, 33), (8, 100),
                                  (11, 16), (11, 128), (12, 14), (12, 15), (20, 200),
                                  (32, 1024)])
def test_factor_gram_as_numpy(k, p, dtype):
    """The Gram the solvers form (small_gram up to k²p = 2048 and 128 columns -- any k²p
    for k <= 11 where syrk has OpenBLAS' FMA kernels --, syrk above, 4 pieces from
    k²p = 1048576) against NumPy's Fᵀ F (scikit-learn's HHᵀ, a syrk): bit-equal where
    NumPy's OpenBLAS uses FMA kernels and one call sums the entry (k >= 2, k <= 11 for
    small_gram: OpenBLAS' edge kernels for larger k order some entries otherwise; not the
    4 pieces), else within p·ε relative (ε of the dtype)."""
    from fastnmf._kernels._common import factor_gram_hook

    rng = np.random.default_rng(k * 1000 + p)
    F = np.abs(rng.standard_normal((k, p))).astype(dtype)
    Ft = np.ascontiguousarray(F.T)
    expected = np.dot(Ft.T, Ft)
    got = factor_gram_hook(F)
    np.testing.assert_array_equal(got, got.T)
    if 2 <= k and (k <= 11 or k * k * p > 2048) and k * k * p < 1048576 and (
            _openblas_fma_numpy()):
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=p * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_small_gram_sums_as_syrk(dtype):
    """Where the BLAS's syrk has OpenBLAS' FMA kernels (``small_grams`` set at import),
    small_gram replaces it for k <= 11 and p <= 128 whatever k²p: every such entry the
    same bits as syrk's, on F of mixed scales. Elsewhere syrk keeps those shapes."""
    from fastnmf._kernels import _common

    assert _common.SMALL_GRAM_K == 11 and _common.SMALL_GRAM_WIDTH == 128
    for k in range(1, 13):
        for p in (1, 2, 3, 7, 16, 33, 64, 81, 100, 127, 128, 129):
            rng = np.random.default_rng(k * 1000 + p)
            F = (np.abs(rng.standard_normal((k, p)))
                 * rng.lognormal(0, 3, (k, 1))).astype(dtype)
            with setting(_common.small_grams, False):  # syrk above k²p = 2048
                before = _common.factor_gram_hook(F)
            if _common.small_grams():
                np.testing.assert_array_equal(_common.factor_gram_hook(F), before)
            with setting(_common.small_grams, True):
                after = _common.factor_gram_hook(F)
            if _openblas_fma_scipy():
                np.testing.assert_array_equal(after, before)
