"""bpp: each half-step is the exact non-negative least-squares solution."""

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp

import fastnmf
import fastnmf.reference
from fastnmf._datasets import low_rank

from test_kernels_vs_reference import assert_same_run


def nnls_rows(X, H, l2=0.0):
    """argmin_{W >= 0} ½‖X − WH‖² + ½ l2 ‖W‖², row by row with scipy's NNLS."""
    k = H.shape[0]
    A = np.vstack([H.T, np.sqrt(l2) * np.eye(k)])
    return np.array([scipy.optimize.nnls(A, np.concatenate([x, np.zeros(k)]))[0]
                     for x in X])


@pytest.mark.parametrize("k", [3, 12, 70])  # 70 > 64: passive sets of two words
@pytest.mark.parametrize("layout", ["C", "csr"])
def test_half_step_is_the_nnls_solution(k, layout):
    rng = np.random.default_rng(k)
    X = low_rank(90, 150, 5, noise=0.5, seed=k)
    H = rng.random((k, 150))
    Xin = X if layout == "C" else sp.csr_matrix(X)
    res = fastnmf.nmf(Xin, k, solver="bpp", H=H, update_H=False, max_iter=1, tol=0)
    np.testing.assert_allclose(res.W, nnls_rows(X, H), rtol=1e-7, atol=1e-9)


def test_half_step_with_l2_is_the_ridge_nnls_solution():
    rng = np.random.default_rng(1)
    X = low_rank(40, 60, 4, noise=0.5, seed=1)
    H = rng.random((6, 60))
    alpha = 0.01
    res = fastnmf.nmf(X, 6, solver="bpp", H=H, update_H=False, max_iter=1, tol=0,
                      alpha_W=alpha)
    np.testing.assert_allclose(res.W, nnls_rows(X, H, l2=alpha * 60), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("k", [6, 70])
def test_many_components_match_reference(k):
    X = low_rank(100, 80, 8, noise=0.3, seed=2)
    kw = dict(solver="bpp", init="random", random_state=3, tol=0, max_iter=8)
    assert_same_run(fastnmf.nmf(X, k, **kw), fastnmf.reference.nmf(X, k, **kw), "bpp")


def test_reaches_cd_error_in_fewer_iterations():
    """Measured: cd's error after 200 iterations at bpp's iteration 54."""
    X = low_rank(300, 200, 10, noise=0.1, seed=4)
    cd = fastnmf.nmf(X, 10, random_state=0, tol=0, max_iter=200)
    bpp = fastnmf.nmf(X, 10, solver="bpp", random_state=0, tol=0, max_iter=200)
    reached = np.flatnonzero(bpp.history <= cd.reconstruction_err)
    assert reached.size and reached[0] <= 70
    assert bpp.reconstruction_err <= cd.reconstruction_err


def test_no_component_dies_from_a_poor_start():
    """Exact solves from a random start can zero a whole component (it would stay dead);
    such a solution is replaced by a HALS sweep, so exact data is still recovered."""
    rng = np.random.default_rng(5)
    X = rng.random((30, 3)) @ rng.random((3, 25))
    for seed in range(10):
        res = fastnmf.nmf(X, 3, solver="bpp", init="random", random_state=seed, tol=0,
                          max_iter=300)
        assert res.W.any(axis=0).all() and res.H.any(axis=1).all()
        assert res.reconstruction_err < 1e-3 * np.linalg.norm(X)  # measured <= 1.1e-4


@pytest.mark.parametrize("single", [False, True], ids=["float64", "float32"])
def test_bpp_region_is_carved_within_its_declared_length(single):
    """bpp carves its own workspace region; the layout ends within bpp_region_len for every
    k (across the 64-bit word boundaries of its passive sets), every column count p <= P
    and every alignment of the region's start."""
    from fastnmf._kernels._bpp import region_fits

    for k in (1, 2, 3, 5, 8, 13, 31, 63, 64, 65, 127, 128, 129, 200):
        for P in (1, 2, 7, 50, 333, 4096):
            for p in sorted({1, max(P // 2, 1), P}):
                assert region_fits(k, p, P, single), (k, p, P)
