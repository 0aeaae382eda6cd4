"""Each NumPy reference solver on its own (fastnmf.reference.nmf).

cd (exact block minimization), als (a proposal kept only if it lowers the half-step
objective, then an exact HALS sweep) and mu (Lee & Seung's auxiliary-function updates) are
all monotone non-increasing in the objective by construction, so ``history`` may only rise
by rounding: we allow 1e-12 · history[0].
"""

import numpy as np
import pytest
import scipy.sparse as sp

import fastnmf.reference
from fastnmf._datasets import low_rank

from conftest import CADENCE as CHECK_EVERY  # noqa: E402
SLACK = 1e-12


def direct_error(X, W, H):
    """‖X − WH‖_F formed explicitly, in float64."""
    D = (X.toarray() if sp.issparse(X) else np.asarray(X)).astype(np.float64)
    return float(np.linalg.norm(D - W.astype(np.float64) @ H.astype(np.float64)))


def objective(X, W, H, alpha_W, alpha_H, l1_ratio):
    """½‖X − WH‖² + scikit-learn's regularization (docs/algorithms.md), in float64."""
    n, m = X.shape
    W = W.astype(np.float64)
    H = H.astype(np.float64)
    return (0.5 * direct_error(X, W, H) ** 2
            + alpha_W * l1_ratio * m * W.sum() + 0.5 * alpha_W * (1 - l1_ratio) * m * (W * W).sum()
            + alpha_H * l1_ratio * n * H.sum() + 0.5 * alpha_H * (1 - l1_ratio) * n * (H * H).sum())


def exact_problem(seed):
    """X = W0 @ H0 (8 × 6, rank 3) with strictly positive, well-conditioned W0 and H0."""
    rng = np.random.default_rng(seed)
    W0 = rng.uniform(0.1, 1.0, size=(8, 3))
    W0[:3] += 2 * np.eye(3)
    H0 = rng.uniform(0.1, 1.0, size=(3, 6))
    H0[:, :3] += 2 * np.eye(3)
    return W0 @ H0


@pytest.mark.parametrize("init", ["random", "nndsvda"])
@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_history_non_increasing(solver, init, fmt):
    X = low_rank(40, 30, 6, noise=0.1, density=0.4 if fmt == "csr" else None, seed=0)
    res = fastnmf.reference.nmf(X, 5, solver=solver, init=init, random_state=0, tol=0,
                                 max_iter=100)
    h = res.history
    assert len(h) == 100 // CHECK_EVERY[solver] + 1
    assert np.all(np.isfinite(h))
    assert np.all(np.diff(h) <= SLACK * h[0]), np.diff(h).max()
    assert h[-1] < 0.9 * h[0]  # it did make progress
    # the final error is ‖X − WH‖ of the factors returned, and the last history entry
    assert res.reconstruction_err == pytest.approx(direct_error(X, res.W, res.H), rel=1e-9)
    assert h[-1] == pytest.approx(res.reconstruction_err, rel=1e-9)


def test_history_is_the_error_of_each_iterate(solver):
    """history[i] = ‖X − W_i H_i‖ where (W_i, H_i) is the state at the i-th check.

    With tol=0 a run with max_iter=j stops at the j-th iterate of a longer run.
    """
    X = low_rank(30, 20, 5, noise=0.1, seed=1)
    rng = np.random.default_rng(1)
    W0 = rng.uniform(0.1, 1.0, size=(30, 4))
    H0 = rng.uniform(0.1, 1.0, size=(4, 20))
    every = CHECK_EVERY[solver]
    long = fastnmf.reference.nmf(X, 4, solver=solver, init="custom", W=W0, H=H0, tol=0,
                                 max_iter=5 * every)
    assert long.history[0] == pytest.approx(direct_error(X, W0, H0), rel=1e-10)
    for i in range(1, 6):
        short = fastnmf.reference.nmf(X, 4, solver=solver, init="custom", W=W0, H=H0,
                                      tol=0, max_iter=i * every)
        np.testing.assert_array_equal(short.history, long.history[: i + 1])
        assert long.history[i] == pytest.approx(direct_error(X, short.W, short.H),
                                                rel=1e-10)


@pytest.mark.parametrize("l1_ratio", [0.0, 0.5, 1.0])
def test_regularized_objective_non_increasing(solver, l1_ratio):
    """With regularization the monotone quantity is the regularized objective, not
    ‖X − WH‖; follow it iterate by iterate."""
    X = low_rank(30, 20, 5, noise=0.1, seed=2)
    reg = dict(alpha_W=0.05, alpha_H=0.02, l1_ratio=l1_ratio)
    kw = dict(solver=solver, init="random", random_state=2, tol=0, **reg)
    res0 = fastnmf.reference.nmf(X, 4, max_iter=1, **kw)
    values = [objective(X, res0.W, res0.H, **reg)]
    for it in range(2, 16):
        res = fastnmf.reference.nmf(X, 4, max_iter=it, **kw)
        values.append(objective(X, res.W, res.H, **reg))
    values = np.array(values)
    assert np.all(np.diff(values) <= SLACK * values[0]), np.diff(values).max()
    assert values[-1] < values[0]


def test_exact_low_rank_problem_is_solved(solver):
    """X = W0 @ H0 with positive factors, k = rank 3: every start should reach a tiny
    error (cd and als are exact-minimization methods; mu is slow, so a looser bound)."""
    bound = 1e-2 if solver == "mu" else 1e-4
    failures = []
    for seed in range(10):
        X = exact_problem(seed)
        for init in ("nndsvda", "random"):
            res = fastnmf.reference.nmf(X, 3, solver=solver, init=init, random_state=seed,
                                        tol=0, max_iter=300)
            rel = res.reconstruction_err / np.linalg.norm(X)
            dead = int(np.sum(~res.W.any(axis=0)) + np.sum(~res.H.any(axis=1)))
            if not rel <= bound or dead:
                failures.append(f"seed={seed} init={init}: relative error {rel:.3g}, "
                                f"{dead} all-zero columns of W / rows of H")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_positive_tol_stops_early(solver, fmt):
    X = low_rank(40, 30, 6, noise=0.1, density=0.4 if fmt == "csr" else None, seed=3)
    tol, max_iter = 1e-3, 1000
    res = fastnmf.reference.nmf(X, 4, solver=solver, init="nndsvda", random_state=0,
                                tol=tol, max_iter=max_iter)
    every = CHECK_EVERY[solver]
    assert res.converged is True
    assert 1 <= res.n_iter < max_iter
    assert res.n_iter % every == 0  # stopping happens only at a check
    assert len(res.history) == res.n_iter // every + 1
    if solver == "mu":  # scikit-learn's rule, at the first check where it holds
        drops = -np.diff(res.history) / res.history[0]
        assert drops[-1] < tol
        assert np.all(drops[:-1] >= tol)
    # tol=0 runs on past that point
    full = fastnmf.reference.nmf(X, 4, solver=solver, init="nndsvda", random_state=0,
                                 tol=0, max_iter=res.n_iter + 2 * every)
    assert full.n_iter == res.n_iter + 2 * every
    np.testing.assert_array_equal(full.history[: len(res.history)], res.history)


@pytest.mark.parametrize("max_iter", [1, 5, 37])
def test_zero_tol_runs_exactly_max_iter(solver, max_iter):
    X = low_rank(20, 15, 4, noise=0.1, seed=4)
    res = fastnmf.reference.nmf(X, 3, solver=solver, init="random", random_state=0, tol=0,
                                max_iter=max_iter)
    assert res.n_iter == max_iter
    assert len(res.history) == max_iter // CHECK_EVERY[solver] + 1
    assert res.reconstruction_err == pytest.approx(direct_error(X, res.W, res.H), rel=1e-9)
    if max_iter >= 5:
        assert res.reconstruction_err < res.history[0]
