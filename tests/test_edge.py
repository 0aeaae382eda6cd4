"""Edge cases of ``fastnmf.nmf``: all-zero X, zero rows and columns, single rows and columns,
extreme k, memory layouts, extreme scales, integer and boolean input.

Every test turns warnings into errors itself (besides the project's pytest setting): none of
these inputs may warn, divide by zero or return NaN.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

import fastnmf

from conftest import CADENCE, SOLVERS  # noqa: E402
INITS = (None, "random", "nndsvd", "nndsvda", "nndsvdar")


def nmf(X, k, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fastnmf.nmf(X, k, **kw)


def make_X(n=30, m=20, seed=0, dtype=np.float64, rank=None):
    rng = np.random.default_rng(seed)
    X = rng.random((n, m)) if rank is None else rng.random((n, rank)) @ rng.random((rank, m))
    return X.astype(dtype)


def assert_sane(res, shape, k, dtype=None):
    n, m = shape
    assert res.W.shape == (n, k) and res.H.shape == (k, m)
    if dtype is not None:
        assert res.W.dtype == dtype and res.H.dtype == dtype
    for arr in (res.W, res.H, res.history):
        assert np.all(np.isfinite(arr))
    assert np.all(res.W >= 0) and np.all(res.H >= 0)
    assert np.isfinite(res.reconstruction_err) and res.reconstruction_err >= 0


def assert_same_result(a, b):
    assert_array_equal(a.W, b.W)
    assert_array_equal(a.H, b.H)
    assert a.n_iter == b.n_iter
    assert a.reconstruction_err == b.reconstruction_err
    assert_array_equal(a.history, b.history)


def frob(X, W, H):
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    return float(np.linalg.norm(X.astype(np.float64) - W.astype(np.float64) @ H))


# ---------------------------------------------------------------------------------------
# All-zero X


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("kind", ["float64", "float32", "csr", "csc", "int"])
def test_all_zero_X(solver, init, kind):
    X = np.zeros((7, 5), dtype=np.int64 if kind == "int" else kind if kind.startswith("f")
                 else np.float64)
    if kind in ("csr", "csc"):
        X = sp.csr_matrix(X).asformat(kind)
    res = nmf(X, 3, solver=solver, init=init, random_state=0)
    assert_sane(res, (7, 5), 3)
    assert res.reconstruction_err == 0
    assert_array_equal(res.history, 0)
    assert_array_equal(res.W @ res.H, 0)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("init", INITS)
def test_all_zero_X_tol0_runs_max_iter(solver, init):
    res = nmf(np.zeros((6, 4)), 2, solver=solver, init=init, random_state=0, tol=0,
              max_iter=20)
    assert res.n_iter == 20
    assert len(res.history) == 1 + 20 // CADENCE[solver]
    assert_array_equal(res.history, 0)


@pytest.mark.parametrize("solver", SOLVERS)
def test_all_zero_X_custom_start(solver):
    W0 = make_X(6, 2, seed=1)
    H0 = make_X(2, 4, seed=2)
    res = nmf(np.zeros((6, 4)), 2, solver=solver, init="custom", W=W0, H=H0, tol=0,
              max_iter=30)
    assert_sane(res, (6, 4), 2)
    assert res.reconstruction_err <= 1e-3 * np.linalg.norm(W0 @ H0)
    assert_allclose(res.history[0], np.linalg.norm(W0 @ H0), rtol=1e-10)


@pytest.mark.parametrize("solver", SOLVERS)
def test_all_zero_X_update_H_false(solver):
    H0 = make_X(2, 4, seed=2)
    res = nmf(np.zeros((6, 4)), 2, solver=solver, update_H=False, H=H0)
    assert_sane(res, (6, 4), 2)
    assert_array_equal(res.H, H0)
    assert res.reconstruction_err <= 1e-6


# ---------------------------------------------------------------------------------------
# Zero rows and columns, single non-zero


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("sparse", [False, True])
def test_zero_rows_and_columns(solver, init, sparse):
    X = make_X(12, 10)
    X[[0, 5, 11], :] = 0
    X[:, [3, 9]] = 0
    Xin = sp.csr_matrix(X) if sparse else X
    res = nmf(Xin, 3, solver=solver, init=init, random_state=0, max_iter=50)
    assert_sane(res, X.shape, 3)
    # a zero row of X is a zero row of W H: every solver's update sends it to zero
    WH = res.W @ res.H
    assert np.abs(WH[[0, 5, 11]]).max() <= 1e-12 * np.abs(X).max()
    assert np.abs(WH[:, [3, 9]]).max() <= 1e-12 * np.abs(X).max()
    assert_allclose(res.reconstruction_err, frob(X, res.W, res.H), rtol=1e-7)
    assert res.reconstruction_err < np.linalg.norm(X)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("init", INITS)
def test_single_nonzero_entry(solver, init):
    X = np.zeros((7, 5))
    X[3, 2] = 4.0
    res = nmf(X, 2, solver=solver, init=init, random_state=0, tol=0, max_iter=100)
    assert_sane(res, X.shape, 2)
    assert res.reconstruction_err <= 1e-3 * 4.0


# ---------------------------------------------------------------------------------------
# Single row, single column, k at and above min(n, m)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("shape", [(1, 9), (9, 1), (1, 1)])
def test_single_row_or_column(solver, init, shape):
    X = make_X(*shape) + 0.1
    res = nmf(X, 1, solver=solver, init=init, random_state=0, tol=0)
    assert_sane(res, shape, 1)
    # a single row or column is rank one: the fit is exact
    assert res.reconstruction_err <= 1e-8 * np.linalg.norm(X)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("shape", [(1, 9), (9, 1)])
def test_single_row_or_column_more_components(solver, shape):
    X = make_X(*shape)
    res = nmf(X, 3, solver=solver, random_state=0)  # init=None -> random
    assert_sane(res, shape, 3)
    assert res.reconstruction_err <= 1e-4 * np.linalg.norm(X)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("shape", [(10, 6), (6, 10), (5, 5)])
def test_k_equal_min_dim(solver, init, shape):
    X = make_X(*shape)
    k = min(shape)
    res = nmf(X, k, solver=solver, init=init, random_state=0, max_iter=300)
    assert_sane(res, shape, k)
    assert res.reconstruction_err <= res.history[0] * (1 + 1e-9)
    assert res.reconstruction_err < 0.5 * np.linalg.norm(X)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("init", [None, "random"])
@pytest.mark.parametrize("shape,k", [((10, 6), 7), ((6, 10), 12), ((3, 3), 8)])
def test_k_above_min_dim(solver, init, shape, k):
    X = make_X(*shape)
    res = nmf(X, k, solver=solver, init=init, random_state=0, max_iter=100)
    assert_sane(res, shape, k)
    assert res.reconstruction_err < 0.5 * np.linalg.norm(X)


@pytest.mark.parametrize("solver", SOLVERS)
def test_k_one(solver):
    X = make_X(15, 12)
    res = nmf(X, 1, solver=solver, tol=0, max_iter=300)
    S = np.linalg.svd(X, compute_uv=False)
    # X > 0: the best rank-one approximation is non-negative, so NMF reaches it
    assert_allclose(res.reconstruction_err, np.sqrt(np.sum(S[1:] ** 2)), rtol=1e-4)


# ---------------------------------------------------------------------------------------
# Memory layouts: the same result as the C-contiguous copy


def _layouts(X):
    big = np.zeros((2 * X.shape[0], 3 * X.shape[1]), dtype=X.dtype)
    big[::2, ::3] = X
    ro = X.copy()
    ro.flags.writeable = False
    ro_f = np.asfortranarray(X)
    ro_f.flags.writeable = False
    neg_stride = X[::-1, ::-1].copy()[::-1, ::-1]
    return {"fortran": np.asfortranarray(X), "strided": big[::2, ::3],
            "transposed-view": np.ascontiguousarray(X.T).T, "readonly": ro,
            "readonly-fortran": ro_f, "negative-strides": neg_stride,
            "list": X.tolist()}


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("init", [None, "random", "nndsvd"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", list(_layouts(np.zeros((2, 2)))))
def test_layout_gives_same_result(solver, init, dtype, layout):
    X = make_X(30, 20, rank=4, dtype=dtype) + 0.01
    Xl = _layouts(X)[layout]
    if layout == "list":
        X = X.astype(np.float64)  # a list of Python floats is float64
    a = nmf(np.ascontiguousarray(X), 4, solver=solver, init=init, random_state=0, tol=0,
            max_iter=40)
    b = nmf(Xl, 4, solver=solver, init=init, random_state=0, tol=0, max_iter=40)
    assert b.W.dtype == a.W.dtype
    # A Fortran X may be read in another order (sums rounded differently): allow rounding,
    # which 40 iterations amplify to ~1e-3 in float32 (als' keep-the-better choice flips).
    rtol = 1e-9 if a.W.dtype == np.float64 else 2e-3
    assert_allclose(b.W @ b.H, a.W @ a.H, rtol=rtol, atol=rtol * np.abs(X).max())
    # ‖X‖² is summed in memory order; the history's expanded formula cancels by
    # (‖X‖ / error)² (1e6 here), so its last-bit difference shows at ~1e-10 relative
    assert_allclose(b.history, a.history, rtol=max(rtol, 1e-8))
    assert b.n_iter == a.n_iter


@pytest.mark.parametrize("solver", SOLVERS)
def test_strided_and_readonly_bitwise_equal(solver):
    """A strided view is copied to C order: nothing differs at all."""
    X = make_X(30, 20)
    big = np.zeros((60, 60))
    big[::2, ::3] = X
    ro = X.copy()
    ro.flags.writeable = False
    a = nmf(X, 4, solver=solver, random_state=0)
    for Xv in (big[::2, ::3], ro):
        assert_same_result(a, nmf(Xv, 4, solver=solver, random_state=0))


@pytest.mark.parametrize("solver", SOLVERS)
def test_fortran_sparse_layouts_agree(solver):
    # init='random': an nndsvd start of sparse X comes from a randomized SVD, not the exact one
    X = make_X(25, 18)
    X[X < 0.5] = 0
    kw = dict(solver=solver, init="random", random_state=0, tol=0, max_iter=30)
    a = nmf(X, 3, **kw)
    for Xv in (sp.csr_matrix(X), sp.csc_matrix(X), sp.coo_matrix(X),
               np.asfortranarray(X)):
        b = nmf(Xv, 3, **kw)
        assert_allclose(b.W @ b.H, a.W @ a.H, rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------------------------------
# Extreme scales


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_extreme_scale_float64_finite(solver, init, scale):
    X = make_X(30, 20, rank=4) * scale
    res = nmf(X, 4, solver=solver, init=init, random_state=0)
    assert_sane(res, X.shape, 4, np.float64)
    assert res.reconstruction_err <= np.linalg.norm(X) * (1 + 1e-9)
    assert_allclose(res.reconstruction_err, frob(X, res.W, res.H), rtol=1e-7)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("scale", [1e-150, 1e-30, 1e30, 1e150])
def test_random_init_is_scale_equivariant(solver, scale):
    """Scaling X by s scales the random start by sqrt(s) and the solution likewise."""
    X = make_X(30, 20, rank=4)
    a = nmf(X, 4, solver=solver, init="random", random_state=0, tol=0, max_iter=50)
    b = nmf(X * scale, 4, solver=solver, init="random", random_state=0, tol=0, max_iter=50)
    assert_sane(b, X.shape, 4)
    assert_allclose(b.reconstruction_err / scale, a.reconstruction_err, rtol=1e-6)
    assert_allclose(b.history / scale, a.history, rtol=1e-6)


@pytest.mark.parametrize("solver", ["cd", "als"])
@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_default_init_at_very_large_and_small_scales(solver, scale):
    """float64 holds X * 1e±150 and ‖X‖² comfortably: the default start must not fail."""
    X = make_X(30, 20, rank=4) * scale
    assert np.isfinite(np.sum(X.astype(np.float64) ** 2))
    res = nmf(X, 4, solver=solver, random_state=0)
    assert_sane(res, X.shape, 4)
    assert res.reconstruction_err <= np.linalg.norm(X) * (1 + 1e-9)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("init", INITS)
def test_float32_tiny_values(solver, init):
    X = (make_X(20, 15, rank=3) * 1e-20).astype(np.float32)
    res = nmf(X, 3, solver=solver, init=init, random_state=0)
    assert_sane(res, X.shape, 3, np.float32)
    norm = np.linalg.norm(X.astype(np.float64))
    assert res.reconstruction_err <= norm * (1 + 1e-4)
    assert_allclose(res.reconstruction_err, frob(X, res.W, res.H), rtol=1e-3, atol=1e-6 * norm)


@pytest.mark.parametrize("solver", SOLVERS)
def test_float32_tiny_values_random_init_matches_scaled(solver):
    X = make_X(20, 15, rank=3).astype(np.float32)
    a = nmf(X, 3, solver=solver, init="random", random_state=0, tol=0, max_iter=50)
    b = nmf(X * np.float32(1e-20), 3, solver=solver, init="random", random_state=0, tol=0,
            max_iter=50)
    assert_sane(b, X.shape, 3, np.float32)
    assert_allclose(b.reconstruction_err * 1e20, a.reconstruction_err, rtol=1e-2)


@pytest.mark.parametrize("solver", SOLVERS)
def test_float32_large_values(solver):
    X = (make_X(20, 15, rank=3) * 1e15).astype(np.float32)
    res = nmf(X, 3, solver=solver, random_state=0)
    assert_sane(res, X.shape, 3, np.float32)
    assert res.reconstruction_err <= np.linalg.norm(X.astype(np.float64)) * (1 + 1e-4)


@pytest.mark.parametrize("solver", SOLVERS)
def test_mixed_magnitudes(solver):
    X = make_X(20, 15)
    X[0] *= 1e8
    X[:, 1] *= 1e-8
    res = nmf(X, 3, solver=solver, random_state=0)
    assert_sane(res, X.shape, 3)
    assert res.reconstruction_err < np.linalg.norm(X)


# ---------------------------------------------------------------------------------------
# Integer and boolean input


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8,
                                   np.uint32, np.uint64, bool])
def test_integer_and_boolean_input(solver, dtype):
    rng = np.random.default_rng(4)
    X = (rng.random((14, 11)) * 5).astype(dtype)
    res = nmf(X, 3, solver=solver, random_state=0, max_iter=50)
    assert_sane(res, X.shape, 3, np.float64)
    assert_same_result(res, nmf(X.astype(np.float64), 3, solver=solver, random_state=0,
                                max_iter=50))


def test_large_integers_are_exact_in_float64():
    X = np.array([[2**40, 1], [3, 2**41], [5, 7]], dtype=np.int64)
    res = nmf(X, 2, random_state=0, max_iter=50)
    assert_sane(res, X.shape, 2, np.float64)
    assert res.reconstruction_err < np.linalg.norm(X.astype(np.float64))


@pytest.mark.parametrize("solver", SOLVERS)
def test_sparse_integer_and_boolean_input(solver):
    X = sp.random(20, 15, density=0.3, random_state=2, format="csr") * 10
    for Xi in (X.astype(np.int32), X.astype(bool)):
        res = nmf(Xi, 3, solver=solver, random_state=0, max_iter=30)
        assert_sane(res, X.shape, 3, np.float64)
