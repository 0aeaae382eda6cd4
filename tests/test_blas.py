"""The BLAS/LAPACK wrappers of _kernels/_blas.pxd, through their test hooks, vs NumPy.

The wrappers take row-major (C-contiguous) operands; a Fortran-ordered matrix is passed as
its transpose (a C-contiguous view, no copy) with the transpose flag set.
"""

import numpy as np
import pytest

from fastnmf._kernels import _blas

# Relative accuracy expected of a short dot product / solve in each precision.
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-13}
SIGNATURE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def assert_close(got, want, rtol):
    """max |got − want| <= rtol · max(|want|, 1), entrywise in float64."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1.0)
    assert np.max(np.abs(got - want), initial=0.0) <= rtol * scale


def stored(M, trans, order):
    """What the hook is given for op(·) = M: M itself (C order), or, with the transpose flag,
    Mᵀ stored C-contiguously — a copy (order 'C') or the free view of an F-ordered M (order
    'F')."""
    if not trans:
        return np.ascontiguousarray(M)
    if order == "F":
        S = np.asfortranarray(M).T
        assert S.flags.c_contiguous and not S.flags.owndata
        return S
    return np.ascontiguousarray(M.T)


def gemm(dtype, *args):
    """gemm_hook specialised to ``dtype`` (see test_gemm_dispatches_on_array_dtype)."""
    return _blas.gemm_hook[SIGNATURE[dtype]](*args)


@pytest.mark.parametrize("shape", [(5, 4, 3), (1, 7, 2), (6, 1, 9), (3, 3, 1), (17, 11, 23)],
                         ids=lambda s: "MxNxK=%dx%dx%d" % s)
@pytest.mark.parametrize("trans_a", [False, True], ids=["A", "At"])
@pytest.mark.parametrize("trans_b", [False, True], ids=["B", "Bt"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_gemm(dtype, shape, trans_a, trans_b, order, rng):
    M, N, K = shape
    A = rng.random((M, K)).astype(dtype)  # op(A)
    B = rng.random((K, N)).astype(dtype)  # op(B)
    C0 = rng.random((M, N)).astype(dtype)
    A_in, B_in = stored(A, trans_a, order), stored(B, trans_b, order)
    A_copy, B_copy = A_in.copy(), B_in.copy()
    want64 = A.astype(np.float64) @ B.astype(np.float64)
    for alpha, beta in [(1.0, 0.0), (-0.5, 1.5), (2.0, 1.0)]:
        # beta = 0: C is output only, whatever it held (here NaN) must not leak through
        C = np.full((M, N), np.nan, dtype=dtype) if beta == 0 else C0.copy()
        gemm(dtype, trans_a, trans_b, alpha, A_in, B_in, beta, C)
        want = alpha * want64 + (beta * C0.astype(np.float64) if beta else 0)
        assert C.dtype == dtype
        assert_close(C, want, RTOL[dtype] * K)
    np.testing.assert_array_equal(A_in, A_copy)
    np.testing.assert_array_equal(B_in, B_copy)


def test_gemm_dispatches_on_array_dtype(dtype, rng):
    """The hook called plainly, with Python float scalars, as in
    ``gemm_hook(trans_a, trans_b, alpha, A, B, beta, C)``, works for both dtypes."""
    A = rng.random((4, 3)).astype(dtype)
    B = rng.random((3, 5)).astype(dtype)
    C = np.zeros((4, 5), dtype=dtype)
    _blas.gemm_hook(False, False, 1.0, A, B, 0.0, C)
    assert_close(C, A.astype(np.float64) @ B.astype(np.float64), RTOL[dtype] * 3)


def test_gemm_rejects_non_c_contiguous(rng):
    A = np.asfortranarray(rng.random((4, 3)))
    B = rng.random((3, 5))
    C = np.zeros((4, 5))
    with pytest.raises(ValueError, match="contiguous"):
        gemm(np.dtype(np.float64), False, False, 1.0, A, B, 0.0, C)


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (4, 7), (6, 3), (5, 1000)],
                         ids=lambda s: "%dx%d" % s)
@pytest.mark.parametrize("order", ["C", "F"])
def test_gram(dtype, shape, order, rng):
    k, p = shape
    F = rng.random((k, p)).astype(dtype)
    if order == "F":  # a C-contiguous view of a Fortran-ordered buffer
        F = np.asfortranarray(F.T).T
        assert F.flags.c_contiguous
    F_copy = F.copy()
    C = np.full((k, k), np.nan, dtype=dtype)  # output only: NaN must be overwritten
    _blas.gram_hook(F, C)
    F64 = F.astype(np.float64)
    assert_close(C, F64 @ F64.T, RTOL[dtype] * p)
    np.testing.assert_array_equal(C, C.T)  # both triangles, exactly symmetric
    np.testing.assert_array_equal(F, F_copy)


def spd(rng, k, dtype):
    M = rng.random((k, k))
    return (M @ M.T + k * np.eye(k)).astype(dtype)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (3, 1), (4, 7), (8, 30)],
                         ids=lambda s: "k=%d,p=%d" % s)
def test_chol_solve(dtype, shape, rng):
    k, p = shape
    A = spd(rng, k, dtype)
    B = rng.random((k, p)).astype(dtype)
    C, X = A.copy(), B.copy()
    info = _blas.chol_solve_hook(C, X)
    assert info == 0
    A64 = A.astype(np.float64)
    want = np.linalg.solve(A64, B.astype(np.float64))
    assert_close(X, want, RTOL[dtype] * 10 * k)
    # and it solves the system: A X = B
    assert_close(A64 @ X.astype(np.float64), B, RTOL[dtype] * 10 * k)
    # C was overwritten by its Cholesky factor: in row-major terms, the lower triangle L
    # (LAPACK's column-major upper factor U = Lᵀ) with L Lᵀ = A
    L = np.tril(C).astype(np.float64)
    assert_close(L @ L.T, A64, RTOL[dtype] * 10 * k)
    assert np.all(np.diag(L) > 0)


@pytest.mark.parametrize(
    "C",
    [
        [[1.0, 2.0], [2.0, 1.0]],                      # indefinite
        [[0.0, 0.0], [0.0, 0.0]],                      # zero
        [[-1.0]],                                      # negative 1 × 1
        [[4.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 3.0]],  # singular (rank 2)
    ],
    ids=["indefinite", "zero", "negative-1x1", "singular"],
)
def test_chol_solve_not_positive_definite(dtype, C, rng):
    C = np.array(C, dtype=dtype)
    k = C.shape[0]
    B = rng.random((k, 4)).astype(dtype)
    B_before = B.copy()
    info = _blas.chol_solve_hook(C, B)
    assert 0 < info <= k  # potrf: the order of the leading minor that is not positive
    np.testing.assert_array_equal(B, B_before)  # no solve attempted


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 1001])
def test_dot(dtype, n, rng):
    x = rng.random(n).astype(dtype)
    y = rng.random(n).astype(dtype)
    got = _blas.dot_hook(x, y)
    assert isinstance(got, float)
    # float32 products are exact in double, so the double accumulation matches a float64 dot
    want = float(np.dot(x.astype(np.float64), y.astype(np.float64)))
    assert got == pytest.approx(want, rel=1e-13) if n else got == 0.0


def test_dot_accumulates_float32_in_double():
    # in float32, 1e8 + 1 == 1e8; the sum in double is exact
    x = np.array([1e8, 1.0, -1e8, 1.0, 1.0], dtype=np.float32)
    y = np.ones(5, dtype=np.float32)
    assert float(np.float32(1e8) + np.float32(1.0)) == 1e8
    assert _blas.dot_hook(x, y) == 3.0
