"""The compiled solvers (fastnmf.nmf) against the NumPy reference (fastnmf.reference.nmf).

Both paths share validation and initialization, so from the same ``random_state`` they
start from bit-identical factors and run the same steps in the same order; they differ only
in the order of floating-point summation (BLAS and hand-written loops vs NumPy). With
``tol=0`` and a fixed ``max_iter`` the results must therefore agree to rounding, amplified
by the conditioning of the half-step problems.

Bounds (float64), each a relative max-abs difference ``max|a − b| / max|b|``:

* cd and mu: 1e-8 on W and H and on the errors (relative to the initial error). Measured
  on these problems over 15 data seeds × layouts × inits × regularization: <= 5e-13 for cd,
  exactly 0 for mu on W and H (the same arithmetic), <= 2e-14 on the errors; on 720 further
  runs (k = 6 on a noisy rank-4 X, all solvers, regularized, shuffled): <= 1e-11. The Grams are well-conditioned here (k = 4 <= rank of X,
  noisy X), so rounding grows by a few orders of magnitude at most over 60 iterations.
* als: 1e-6 on W and H, 1e-8 on the errors. Measured on the same runs: <= 3e-13 on W and H,
  <= 6e-13 on the errors (<= 1e-11 on the 720 further runs). The extra slack is for
  the accept/reject test g(P) < g(F): when the unconstrained solution is positive, P and
  the HALS iterate F converge to the same point and the comparison becomes a tie decided
  by rounding; the two paths may then take different branches, but both candidates lie
  within the (small) distance between the proposal and the current iterate, and their
  objectives differ only to second order in that distance, hence the tighter bound on the
  errors than on the factors. On rank-deficient half-steps (k > rank X, exact data) the
  Gram is singular to working precision and the paths genuinely diverge; that case is
  checked separately with a bound on the final error only
  (``test_als_rank_deficient_final_error_close``).
* float32: compared with float64 on the final error (relative 1e-3) and with the float32
  reference on the error (relative 1e-3).
"""

import numpy as np
import pytest
import scipy.sparse as sp

import fastnmf
import fastnmf.reference
from fastnmf._datasets import low_rank

K = 4
MAX_ITER = 60
RTOL_FACTORS = {"cd": 1e-8, "mu": 1e-8, "als": 1e-6, "bpp": 1e-8}
RTOL_ERRORS = {"cd": 1e-8, "mu": 1e-8, "als": 1e-8, "bpp": 1e-8}
RTOL_FLOAT32 = 1e-3


def rel_diff(a, b):
    """max |a − b| / max |b| in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b))
    return np.max(np.abs(a - b)) / scale if scale > 0 else np.max(np.abs(a))


def assert_same_run(c, r, solver, *, rtol_factors=None, rtol_errors=None):
    """Compiled result ``c`` agrees with reference result ``r``."""
    rtol_factors = RTOL_FACTORS[solver] if rtol_factors is None else rtol_factors
    rtol_errors = RTOL_ERRORS[solver] if rtol_errors is None else rtol_errors
    assert c.solver == r.solver == solver
    assert c.W.dtype == r.W.dtype and c.H.dtype == r.H.dtype
    assert c.W.shape == r.W.shape and c.H.shape == r.H.shape
    assert c.n_iter == r.n_iter
    assert c.converged == r.converged
    assert c.history.dtype == r.history.dtype == np.float64
    assert c.history.shape == r.history.shape
    scale = r.history[0]
    assert np.max(np.abs(c.history - r.history)) <= rtol_errors * scale
    assert abs(c.reconstruction_err - r.reconstruction_err) <= rtol_errors * scale
    assert rel_diff(c.W, r.W) <= rtol_factors, rel_diff(c.W, r.W)
    assert rel_diff(c.H, r.H) <= rtol_factors, rel_diff(c.H, r.H)


def both(X, k, **kwargs):
    """(compiled, reference) results for the same arguments."""
    return fastnmf.nmf(X, k, **kwargs), fastnmf.reference.nmf(X, k, **kwargs)


def custom_factors(X, k, seed=3):
    """Positive starting factors of the right shapes and dtype, scaled like 'random'."""
    rng = np.random.default_rng(seed)
    n, m = X.shape
    scale = np.sqrt(X.mean() / k)
    W = scale * rng.uniform(0.1, 1.0, size=(n, k))
    H = scale * rng.uniform(0.1, 1.0, size=(k, m))
    return W.astype(X.dtype), H.astype(X.dtype)


def init_kwargs(X, init):
    if init == "custom":
        W, H = custom_factors(X, K)
        return {"init": "custom", "W": W, "H": H}
    return {"init": init, "random_state": 0}


@pytest.mark.parametrize("init", ["random", "nndsvda", "custom"])
def test_float64_matches_reference(solver, layout, make_X, init):
    X = make_X(layout)
    assert X.dtype == np.float64
    c, r = both(X, K, solver=solver, tol=0, max_iter=MAX_ITER, **init_kwargs(X, init))
    assert c.n_iter == MAX_ITER
    assert len(c.history) == MAX_ITER // (10 if solver == "mu" else 1) + 1
    assert_same_run(c, r, solver)
    # the run did something: the error went down substantially from the start
    assert c.reconstruction_err < 0.9 * c.history[0]


@pytest.mark.parametrize("init", ["random", "nndsvda", "custom"])
def test_float32_close_to_float64(solver, layout, make_X, init):
    X64 = make_X(layout)
    X32 = X64.astype(np.float32)
    kw = dict(solver=solver, tol=0, max_iter=MAX_ITER)
    if init == "custom":
        W, H = custom_factors(X64, K)
        kw.update(init="custom", W=W, H=H)
        kw32 = dict(kw, W=W.astype(np.float32), H=H.astype(np.float32))
    else:
        kw.update(init=init, random_state=0)
        kw32 = kw
    c32 = fastnmf.nmf(X32, K, **kw32)
    r32 = fastnmf.reference.nmf(X32, K, **kw32)
    c64 = fastnmf.nmf(X64, K, **kw)
    assert c32.W.dtype == c32.H.dtype == r32.W.dtype == np.float32
    assert c32.history.dtype == np.float64
    assert c32.n_iter == r32.n_iter == c64.n_iter == MAX_ITER
    assert c32.history.shape == c64.history.shape == r32.history.shape
    err64 = c64.reconstruction_err
    assert abs(c32.reconstruction_err - err64) <= RTOL_FLOAT32 * err64
    assert abs(c32.reconstruction_err - r32.reconstruction_err) <= RTOL_FLOAT32 * err64
    # the whole trajectory, relative to the starting error
    assert np.max(np.abs(c32.history - c64.history)) <= RTOL_FLOAT32 * c64.history[0]
    assert np.max(np.abs(c32.history - r32.history)) <= RTOL_FLOAT32 * c64.history[0]


@pytest.mark.parametrize("l1_ratio", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("alpha_H", ["same", 0.01], ids=["alpha_H=same", "alpha_H=0.01"])
@pytest.mark.parametrize("fmt", ["C", "csr"])
def test_regularized_matches_reference(solver, make_X, fmt, l1_ratio, alpha_H):
    X = make_X(fmt, seed=1)
    reg = dict(alpha_W=0.05, alpha_H=alpha_H, l1_ratio=l1_ratio)
    kw = dict(solver=solver, init="random", random_state=1, tol=0, max_iter=MAX_ITER)
    c, r = both(X, K, **kw, **reg)
    assert_same_run(c, r, solver)
    # the regularization was applied (and not so strong that everything is zero)
    plain = fastnmf.nmf(X, K, **kw)
    assert c.W.any() and c.H.any()
    assert rel_diff(c.W @ c.H, plain.W @ plain.H) > 1e-3
    # ... and minimized: the regularized objective is lower at the regularized solution
    n, m = X.shape
    a_H = reg["alpha_W"] if alpha_H == "same" else alpha_H

    def objective(res):
        W, H = res.W.astype(np.float64), res.H.astype(np.float64)
        return (0.5 * res.reconstruction_err**2
                + m * reg["alpha_W"] * (l1_ratio * W.sum() + 0.5 * (1 - l1_ratio) * (W**2).sum())
                + n * a_H * (l1_ratio * H.sum() + 0.5 * (1 - l1_ratio) * (H**2).sum()))

    assert objective(c) < objective(plain)


@pytest.mark.parametrize("state", ["int", "generator"])
@pytest.mark.parametrize("fmt", ["C", "F", "csr"])
def test_shuffle_matches_reference(solver, make_X, fmt, state):
    """Compiled and reference draw the same SplitMix64 seed and the same sweep orders."""
    X = make_X(fmt, seed=2)

    def random_state():
        return 7 if state == "int" else np.random.default_rng(7)

    kw = dict(solver=solver, init="random", tol=0, max_iter=MAX_ITER, shuffle=True)
    c = fastnmf.nmf(X, K, random_state=random_state(), **kw)
    r = fastnmf.reference.nmf(X, K, random_state=random_state(), **kw)
    assert_same_run(c, r, solver)
    again = fastnmf.nmf(X, K, random_state=random_state(), **kw)
    assert np.array_equal(again.W, c.W) and np.array_equal(again.H, c.H)
    in_order = fastnmf.nmf(X, K, random_state=random_state(), **dict(kw, shuffle=False))
    if solver in ("mu", "bpp"):  # no sweep order: shuffle changes nothing
        assert np.array_equal(in_order.W, c.W) and np.array_equal(in_order.H, c.H)
    else:  # the order did change (so the comparison above was not vacuous)
        assert not np.array_equal(in_order.W, c.W)


@pytest.mark.parametrize("given_W", [False, True], ids=["W=None", "W=given"])
def test_update_H_false_matches_reference(solver, layout, make_X, given_W):
    X = make_X(layout, seed=3)
    W0, H = custom_factors(X, K, seed=4)
    H_before = H.copy()
    kw = dict(solver=solver, update_H=False, H=H, tol=0, max_iter=MAX_ITER)
    if given_W:
        kw["W"] = W0
    c, r = both(X, K, **kw)
    assert_same_run(c, r, solver)
    assert np.array_equal(c.H, H_before) and np.array_equal(r.H, H_before)
    assert np.array_equal(H, H_before)  # the caller's H is untouched
    assert c.reconstruction_err < c.history[0]


@pytest.mark.parametrize("fmt", ["C", "csr"])
def test_tol_stops_at_the_same_iteration(solver, make_X, fmt):
    X = make_X(fmt, seed=5)
    c, r = both(X, K, solver=solver, init="nndsvda", random_state=0, tol=1e-3,
                max_iter=1000)
    assert c.converged and r.converged
    assert c.n_iter < 1000
    assert_same_run(c, r, solver)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("init", ["random", "nndsvda"])
def test_als_rank_deficient_final_error_close(init, seed):
    """k = 6 on an exactly rank-4 X: the Grams become singular to working precision.

    The proposal then depends on rounding (the Cholesky factorization may succeed or need
    the ridge, in one path and not the other; a build with FMA contraction rounds
    differently again), so W and H may legitimately differ. What must hold: both runs are
    monotone and both fit X to within 1e-2 · ‖X‖ (the two errors, about 3e-3 · ‖X‖, were
    measured up to 1.02e-3 · ‖X‖ apart).
    """
    X = low_rank(30, 25, 4, noise=0.0, seed=seed)
    c, r = both(X, 6, solver="als", init=init, random_state=seed, tol=0, max_iter=100)
    norm = np.linalg.norm(X)
    for res in (c, r):
        assert np.all(np.diff(res.history) <= 1e-12 * res.history[0])
        assert res.reconstruction_err <= 1e-2 * norm


BETAS = ["kullback-leibler", "itakura-saito", 0.5, 1.5, 3.0]


def _beta_data(fmt, beta, dtype=np.float64):
    rng = np.random.default_rng(3)
    X = rng.random((40, 5)) @ rng.random((5, 30))
    if beta == "itakura-saito":
        X += 0.05  # β <= 0 needs X without zeros
    else:
        X[X < np.quantile(X, 0.25)] = 0  # zeros: read only at the non-zeros when sparse
    X = X.astype(dtype)
    return {"C": X, "F": np.asfortranarray(X), "csr": sp.csr_matrix(X),
            "csc": sp.csc_matrix(X)}[fmt]


@pytest.mark.parametrize("beta, fmt", [
    (beta, fmt) for beta in BETAS for fmt in ("C", "F", "csr", "csc")
    # a sparse X has zeros, which β <= 0 rejects (see test_errors)
    if not (beta == "itakura-saito" and fmt in ("csr", "csc"))])
@pytest.mark.parametrize("update_H", [True, False])
def test_beta_divergence_matches_reference(beta, fmt, update_H):
    """mu for β ≠ 2: kernel = reference (same formulas and guards), bound 1e-8 as mu's."""
    X = _beta_data(fmt, beta)
    kw = dict(solver="mu", beta_loss=beta, init="random", random_state=2, tol=0,
              max_iter=40, alpha_W=0.001, l1_ratio=0.5)
    if not update_H:
        kw.update(H=np.random.default_rng(4).random((K, X.shape[1])) + 0.1, update_H=False)
    c, r = both(X, K, **kw)
    assert_same_run(c, r, "mu")
    assert np.all(np.diff(c.history) <= 1e-9 * c.history[0])  # monotone (MM updates)


@pytest.mark.parametrize("beta", ["kullback-leibler", 0.5])
def test_beta_divergence_float32_close_to_float64(beta):
    X64 = _beta_data("C", beta)
    kw = dict(solver="mu", beta_loss=beta, init="random", random_state=2, tol=0, max_iter=40)
    c64 = fastnmf.nmf(X64, K, **kw)
    c32 = fastnmf.nmf(X64.astype(np.float32), K, **kw)
    assert c32.W.dtype == np.float32
    assert abs(c32.reconstruction_err - c64.reconstruction_err) <= (
        RTOL_FLOAT32 * c64.reconstruction_err)
