"""cd with ``accelerate=True`` (accelerated HALS: repeated sweeps per product)."""

import numpy as np
import pytest

import fastnmf
import fastnmf.reference
from fastnmf._datasets import low_rank

from conftest import in_layout
from test_kernels_vs_reference import assert_same_run

KW = dict(solver="cd", accelerate=True, tol=0, max_iter=40)


@pytest.mark.parametrize("init", ["nndsvda", "random"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_matches_reference(layout, init, shuffle):
    X = in_layout(low_rank(60, 45, 5, noise=0.2, density=0.5 if layout in ("csr", "csc")
                           else None, seed=3), layout)
    kw = dict(KW, init=init, random_state=1, shuffle=shuffle)
    assert_same_run(fastnmf.nmf(X, 6, **kw), fastnmf.reference.nmf(X, 6, **kw), "cd")


def test_regularized_matches_reference():
    X = low_rank(70, 50, 4, noise=0.2, seed=4)
    kw = dict(KW, random_state=0, alpha_W=0.01, alpha_H=0.02, l1_ratio=0.3)
    assert_same_run(fastnmf.nmf(X, 5, **kw), fastnmf.reference.nmf(X, 5, **kw), "cd")


def test_lower_error_than_plain_cd_at_equal_iterations(dtype):
    """Each half-step starts with cd's sweep and only adds descent: from the same start,
    the accelerated iterates end lower (here much lower: the sweeps are cheap beside the
    product with X, so many are allowed)."""
    X = low_rank(400, 300, 10, noise=0.1, seed=5).astype(dtype)
    plain = fastnmf.nmf(X, 10, random_state=0, tol=0, max_iter=30)
    fast = fastnmf.nmf(X, 10, random_state=0, tol=0, max_iter=30, accelerate=True)
    assert fast.reconstruction_err < 0.9 * plain.reconstruction_err
    # and it gets where plain cd gets in 30 iterations in far fewer
    reached = np.flatnonzero(fast.history <= plain.reconstruction_err)
    assert reached.size and reached[0] <= 15


def test_monotone(layout):
    X = in_layout(low_rank(120, 90, 6, noise=0.3, seed=6), layout)
    res = fastnmf.nmf(X, 8, init="random", random_state=2, **KW)
    assert np.all(np.diff(res.history) <= 1e-10 * res.history[0])


def test_first_iteration_equals_one_plain_sweep_first():
    """The first sweep of a half-step is cd's: with an inner cap of one sweep (a tiny X
    relative to k makes the product as cheap as a sweep) the run is plain cd."""
    X = low_rank(6, 5, 5, noise=0.2, seed=7)  # ρ = n·m / (p·k) ≤ 1.2, cap 1 sweep
    a = fastnmf.nmf(X, 5, init="random", random_state=0, tol=0, max_iter=20)
    b = fastnmf.nmf(X, 5, init="random", random_state=0, tol=0, max_iter=20, accelerate=True)
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.H, b.H)


def test_tol_stops_earlier_than_plain_cd():
    """The same stopping rule (violation relative to the first iteration's) holds after far
    fewer iterations, at a comparable error (measured: 74 against 618 iterations, +1 %)."""
    X = low_rank(300, 200, 8, noise=0.05, seed=8)
    plain = fastnmf.nmf(X, 8, random_state=0, tol=1e-4, max_iter=2000)
    fast = fastnmf.nmf(X, 8, random_state=0, tol=1e-4, max_iter=2000, accelerate=True)
    assert fast.converged
    assert fast.n_iter < plain.n_iter / 4
    assert fast.reconstruction_err <= 1.05 * plain.reconstruction_err


def test_batch_items_equal_single_calls():
    rng = np.random.default_rng(9)
    Xs = [rng.random((40, 30)) for _ in range(4)]
    kw = dict(random_state=0, tol=0, max_iter=25, accelerate=True)
    for got, X in zip(fastnmf.nmf_batch(Xs, 4, n_jobs=2, **kw), Xs):
        want = fastnmf.nmf(X, 4, **kw)
        np.testing.assert_array_equal(got.W, want.W)
        np.testing.assert_array_equal(got.history, want.history)


@pytest.mark.parametrize("solver", ["als", "mu"])
def test_other_solvers_refuse(solver):
    with pytest.raises(ValueError, match=r"accelerate applies to solver='cd' only"):
        fastnmf.nmf(np.ones((5, 4)), 2, solver=solver, accelerate=True)
