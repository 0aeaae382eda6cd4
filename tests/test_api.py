"""The contract of ``fastnmf.nmf`` as docs/api.md states it.

Defaults, the ``init=None`` rule, dtypes, the frozen ``NMFResult`` and ownership of its
arrays, ``history``, ``reconstruction_err``, ``tol``, ``random_state``, inputs never
modified, ``update_H=False``, regularization, ``verbose``. Comparisons with scikit-learn
import it inside the tests that need it; nothing else here depends on it.
"""

import dataclasses
import inspect
import math

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

import fastnmf
from conftest import dense_matrix as make_X, sklearn_random_start

from conftest import CADENCE, SOLVERS  # noqa: E402


def test_registry_cadence_is_the_documented_one():
    """docs/api.md: history has an entry every iteration for cd, als and bpp, every 10 for
    mu; the registry that the kernels, the reference and these tests read says the same."""
    assert CADENCE == {"cd": 1, "als": 1, "mu": 10, "bpp": 1}


def test_every_registry_solver_is_a_kernel_and_a_reference_twin():
    """A solver is its registry entry, the KERNEL of _kernels/_<name>.pyx that the loop
    dispatches to, and reference/_<name>.py: each entry has both, and each runs."""
    import importlib

    from fastnmf import _registry, reference

    X = np.random.default_rng(0).random((12, 9))
    for name, entry in _registry.SOLVERS.items():
        kernel = importlib.import_module(f"fastnmf._kernels._{name}").KERNEL
        assert type(kernel).__name__ == "PyCapsule"
        assert f'"fastnmf._kernels.Kernel"' in repr(kernel)
        assert callable(reference.SOLVERS[name])
        res = fastnmf.nmf(X, 3, solver=name, init="random", random_state=0, max_iter=20)
        ref = reference.nmf(X, 3, solver=name, init="random", random_state=0, max_iter=20)
        assert res.solver == name and res.n_iter == ref.n_iter == 20
        np.testing.assert_allclose(res.W, ref.W, rtol=1e-8, atol=1e-10)
        if entry.losses != ("frobenius",):  # its loss loop serves the other losses
            kl = fastnmf.nmf(X, 3, solver=name, beta_loss="kullback-leibler", max_iter=5,
                             init="random", random_state=0)
            assert np.isfinite(kl.reconstruction_err)


def assert_same_result(a, b):
    assert_array_equal(a.W, b.W)
    assert_array_equal(a.H, b.H)
    assert a.n_iter == b.n_iter
    assert a.converged == b.converged
    assert a.reconstruction_err == b.reconstruction_err
    assert_array_equal(a.history, b.history)
    assert a.solver == b.solver


def frob(X, W, H):
    """‖X − WH‖_F in float64, by NumPy."""
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    D = X.astype(np.float64) - W.astype(np.float64) @ H.astype(np.float64)
    return float(np.linalg.norm(D))


# ---------------------------------------------------------------------------------------
# Signature and defaults


def test_public_names():
    assert callable(fastnmf.nmf)
    assert isinstance(fastnmf.NMFResult, type)
    assert isinstance(fastnmf.__version__, str)
    res = fastnmf.nmf(make_X(), 2, max_iter=3)
    assert isinstance(res, fastnmf.NMFResult)


@pytest.mark.parametrize("entry", ["fastnmf", "reference"])
def test_signature_defaults(entry):
    import fastnmf.reference

    func = fastnmf.nmf if entry == "fastnmf" else fastnmf.reference.nmf
    params = inspect.signature(func).parameters
    assert list(params)[:2] == ["X", "n_components"]
    expected = {
        "solver": "cd", "init": None, "W": None, "H": None, "update_H": True,
        "max_iter": 200, "tol": 1e-4, "beta_loss": "frobenius", "alpha_W": 0.0,
        "alpha_H": "same", "l1_ratio": 0.0, "random_state": None, "shuffle": False,
        "verbose": False,
    }
    for name, default in expected.items():
        assert name in params, name
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert params[name].default == default, name


def test_defaults_behave_as_documented():
    """nmf(X, k) is nmf(X, k, solver='cd', max_iter=200, tol=1e-4, init='nndsvda')."""
    X = make_X(40, 25, rank=4)
    default = fastnmf.nmf(X, 4)
    explicit = fastnmf.nmf(X, 4, solver="cd", init="nndsvda", max_iter=200, tol=1e-4,
                           alpha_W=0.0, alpha_H=0.0, l1_ratio=0.0, update_H=True)
    assert_same_result(default, explicit)
    assert default.solver == "cd"
    assert 1 <= default.n_iter <= 200


def test_default_max_iter_is_200():
    X = make_X(20, 15)
    res = fastnmf.nmf(X, 3, tol=0)
    assert res.n_iter == 200
    assert len(res.history) == 201


def test_positional_arguments_after_n_components_rejected():
    with pytest.raises(TypeError):
        fastnmf.nmf(make_X(), 2, "cd")


# ---------------------------------------------------------------------------------------
# init=None


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("shape,k", [((30, 20), 3), ((30, 20), 20), ((8, 12), 8)])
def test_init_none_is_nndsvda_up_to_min_dim(solver, shape, k):
    X = make_X(*shape)
    a = fastnmf.nmf(X, k, solver=solver, random_state=0, max_iter=20)
    b = fastnmf.nmf(X, k, solver=solver, init="nndsvda", random_state=0, max_iter=20)
    assert_same_result(a, b)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("shape,k", [((30, 20), 21), ((5, 9), 6), ((1, 4), 3)])
def test_init_none_is_random_above_min_dim(solver, shape, k):
    X = make_X(*shape)
    a = fastnmf.nmf(X, k, solver=solver, random_state=7, max_iter=20)
    b = fastnmf.nmf(X, k, solver=solver, init="random", random_state=7, max_iter=20)
    assert_same_result(a, b)
    assert a.W.shape == (shape[0], k) and a.H.shape == (k, shape[1])


# ---------------------------------------------------------------------------------------
# dtypes


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtype_preserved(solver, dtype):
    X = make_X(dtype=dtype)
    res = fastnmf.nmf(X, 3, solver=solver, max_iter=20)
    assert res.W.dtype == dtype
    assert res.H.dtype == dtype
    assert res.history.dtype == np.float64
    assert isinstance(res.reconstruction_err, float)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtype_preserved_sparse(dtype):
    X = sp.csr_matrix(make_X(dtype=dtype))
    res = fastnmf.nmf(X, 3, max_iter=20)
    assert res.W.dtype == dtype and res.H.dtype == dtype


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint64, bool])
def test_int_and_bool_become_float64(solver, dtype):
    rng = np.random.default_rng(3)
    X = rng.integers(0, 5, size=(12, 9)).astype(dtype)
    res = fastnmf.nmf(X, 3, solver=solver, random_state=0, max_iter=20)
    assert res.W.dtype == np.float64 and res.H.dtype == np.float64
    ref = fastnmf.nmf(X.astype(np.float64), 3, solver=solver, random_state=0, max_iter=20)
    assert_same_result(res, ref)


def test_list_input_becomes_float64():
    X = [[1, 2, 0], [0, 1, 3], [4, 0, 1], [2, 2, 2]]
    res = fastnmf.nmf(X, 2, max_iter=10)
    assert res.W.dtype == np.float64
    assert res.W.shape == (4, 2) and res.H.shape == (2, 3)


# ---------------------------------------------------------------------------------------
# NMFResult


def test_result_attributes_and_types():
    X = make_X()
    res = fastnmf.nmf(X, 4, solver="als", max_iter=15)
    assert res.W.shape == (30, 4) and res.H.shape == (4, 20)
    assert type(res.n_iter) is int
    assert type(res.converged) is bool
    assert type(res.reconstruction_err) is float
    assert isinstance(res.history, np.ndarray) and res.history.ndim == 1
    assert res.solver == "als"
    assert "NMFResult" in repr(res)


@pytest.mark.parametrize(
    "name", ["W", "H", "n_iter", "converged", "reconstruction_err", "history", "solver"])
def test_result_is_frozen(name):
    res = fastnmf.nmf(make_X(), 2, max_iter=5)
    before = getattr(res, name)
    with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError is one
        setattr(res, name, None)
    with pytest.raises(AttributeError):
        delattr(res, name)
    assert getattr(res, name) is before


def test_result_rejects_new_attributes():
    res = fastnmf.nmf(make_X(), 2, max_iter=5)
    with pytest.raises((AttributeError, TypeError)):
        res.extra = 1
    assert dataclasses.is_dataclass(res)


@pytest.mark.parametrize("solver", SOLVERS)
def test_result_arrays_do_not_share_memory_with_inputs(solver):
    X = make_X()
    W0 = np.ascontiguousarray(make_X(30, 3, seed=1))
    H0 = np.ascontiguousarray(make_X(3, 20, seed=2))
    res = fastnmf.nmf(X, 3, solver=solver, init="custom", W=W0, H=H0, max_iter=5)
    for arr in (res.W, res.H, res.history):
        for given in (X, W0, H0):
            assert not np.shares_memory(arr, given)
    fixed = fastnmf.nmf(X, 3, solver=solver, update_H=False, H=H0, W=W0, max_iter=5)
    for arr in (fixed.W, fixed.H):
        for given in (X, W0, H0):
            assert not np.shares_memory(arr, given)


def test_result_arrays_unaffected_by_later_changes_to_inputs():
    X = make_X()
    H0 = make_X(3, 20, seed=2)
    W0 = make_X(30, 3, seed=1)
    res = fastnmf.nmf(X, 3, update_H=False, H=H0, max_iter=5)
    H_before, W_before = res.H.copy(), res.W.copy()
    H0[...] = 7.0
    X[...] = 0.0
    assert_array_equal(res.H, H_before)
    assert_array_equal(res.W, W_before)
    res2 = fastnmf.nmf(make_X(), 3, init="custom", W=W0, H=H0, max_iter=5)
    W2 = res2.W.copy()
    W0[...] = 0.0
    assert_array_equal(res2.W, W2)


def test_result_arrays_cannot_be_written_through_to_other_results():
    """Whether or not the arrays are writeable, writing one never reaches an input."""
    X = make_X()
    H0 = make_X(3, 20, seed=2)
    H_copy = H0.copy()
    res = fastnmf.nmf(X, 3, update_H=False, H=H0, max_iter=5)
    if res.H.flags.writeable:
        res.H[...] = -1.0
    assert_array_equal(H0, H_copy)


# ---------------------------------------------------------------------------------------
# history and reconstruction_err


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("max_iter", [1, 10, 30, 37])
def test_history_length_and_cadence_tol0(solver, max_iter):
    X = make_X(rank=3)
    res = fastnmf.nmf(X, 3, solver=solver, tol=0, max_iter=max_iter)
    assert res.n_iter == max_iter
    assert res.history.dtype == np.float64 and res.history.ndim == 1
    assert len(res.history) == 1 + max_iter // CADENCE[solver]


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("how", ["random", "custom"])
def test_history_starts_with_initial_error(solver, how):
    X = make_X(rank=4)
    W0, H0 = sklearn_random_start(X, 4, 3)
    if how == "random":
        res = fastnmf.nmf(X, 4, solver=solver, init="random", random_state=3, max_iter=10)
    else:
        res = fastnmf.nmf(X, 4, solver=solver, init="custom", W=W0, H=H0, max_iter=10)
    assert_allclose(res.history[0], frob(X, W0, H0), rtol=1e-9)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-8), (np.float32, 2e-3)])
def test_history_last_entry_is_final_error(solver, dtype, rtol):
    X = make_X(rank=3, dtype=dtype)
    res = fastnmf.nmf(X, 5, solver=solver, tol=0, max_iter=40)  # a multiple of every cadence
    assert_allclose(res.history[-1], res.reconstruction_err, rtol=rtol)


@pytest.mark.parametrize("solver", SOLVERS)
def test_history_entries_are_errors_of_intermediate_iterates(solver):
    """history[j] is the error after j·cadence iterations: compare with shorter runs."""
    X = make_X(rank=3)
    long = fastnmf.nmf(X, 3, solver=solver, tol=0, max_iter=30, random_state=0)
    for j in range(1, len(long.history)):
        short = fastnmf.nmf(X, 3, solver=solver, tol=0, random_state=0,
                            max_iter=j * CADENCE[solver])
        assert_allclose(long.history[j], short.reconstruction_err, rtol=1e-8)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True])
def test_reconstruction_err_is_frobenius_norm(solver, dtype, sparse):
    X = make_X(35, 25, rank=4, dtype=dtype)
    X[X < 0.5] = 0
    if sparse:
        X = sp.csr_matrix(X)
    res = fastnmf.nmf(X, 4, solver=solver, max_iter=50, random_state=0)
    expected = frob(X, res.W, res.H)
    rtol = 1e-10 if dtype == np.float64 and not sparse else (1e-7 if dtype == np.float64 else 1e-4)
    assert_allclose(res.reconstruction_err, expected, rtol=rtol)
    assert math.isfinite(res.reconstruction_err) and res.reconstruction_err >= 0


@pytest.mark.parametrize("solver", SOLVERS)
def test_final_error_of_a_close_fit_is_formed(solver):
    """A float64 reconstruction_err comes from the expanded loss, accurate to about
    1e-16 · ‖X‖² / err² (relative), except below 1e-3 relative error, where it is formed
    from X − WH: here (about 2e-6) the loss would be off by 2e-6 to 6e-5 (measured)."""
    rng = np.random.default_rng(4)
    W0, H0 = rng.random((60, 4)), rng.random((4, 40))
    X = W0 @ H0 + 1e-5 * rng.random((60, 40))
    res = fastnmf.nmf(X, 4, solver=solver, init="custom", W=W0, H=H0, max_iter=50, tol=0)
    rel = res.reconstruction_err / np.linalg.norm(X)
    assert 1e-7 < rel < 1e-3
    assert_allclose(res.reconstruction_err, frob(X, res.W, res.H), rtol=1e-9)


# ---------------------------------------------------------------------------------------
# tol, converged, max_iter


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("max_iter", [1, 3, 25, 50])
def test_tol_zero_runs_exactly_max_iter(solver, max_iter):
    X = make_X(rank=2, noise=0.0)  # exactly rank 2: the fit gets very good, still no stop
    res = fastnmf.nmf(X, 2, solver=solver, tol=0, max_iter=max_iter)
    assert res.n_iter == max_iter


@pytest.mark.parametrize("solver", SOLVERS)
def test_tol_positive_stops_early_and_converges(solver):
    X = make_X(30, 20, rank=6)
    res = fastnmf.nmf(X, 6, solver=solver, tol=1e-2, max_iter=1000, random_state=0)
    assert res.converged is True
    assert res.n_iter < 1000
    assert len(res.history) == 1 + res.n_iter // CADENCE[solver]
    # mu only stops at a check
    assert res.n_iter % CADENCE[solver] == 0


@pytest.mark.parametrize("solver", SOLVERS)
def test_smaller_tol_runs_longer(solver):
    X = make_X(30, 20, rank=6)
    loose = fastnmf.nmf(X, 6, solver=solver, tol=1e-1, max_iter=1000, random_state=0)
    tight = fastnmf.nmf(X, 6, solver=solver, tol=1e-3, max_iter=1000, random_state=0)
    assert loose.n_iter <= tight.n_iter
    assert tight.reconstruction_err <= loose.reconstruction_err * (1 + 1e-9)


@pytest.mark.parametrize("solver", SOLVERS)
def test_max_iter_reached_does_not_warn(solver):
    """docs/api.md: nmf itself does not warn when max_iter is reached; converged says so."""
    import warnings

    X = make_X(rank=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fastnmf.nmf(X, 5, solver=solver, tol=1e-12, max_iter=10)
    assert res.n_iter == 10
    assert res.converged is False


# ---------------------------------------------------------------------------------------
# random_state


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("init", ["random", "nndsvdar", None])
def test_int_random_state_reproducible(solver, init):
    X = make_X()
    a = fastnmf.nmf(X, 3, solver=solver, init=init, random_state=11, max_iter=20)
    b = fastnmf.nmf(X, 3, solver=solver, init=init, random_state=11, max_iter=20)
    assert_same_result(a, b)


def test_int_random_state_different_seeds_differ():
    X = make_X()
    a = fastnmf.nmf(X, 3, init="random", random_state=1, max_iter=5)
    b = fastnmf.nmf(X, 3, init="random", random_state=2, max_iter=5)
    assert not np.array_equal(a.W, b.W)


@pytest.mark.parametrize("solver", SOLVERS)
def test_shuffle_reproducible_with_int_seed(solver):
    X = make_X(rank=5)
    a = fastnmf.nmf(X, 5, solver=solver, shuffle=True, random_state=4, max_iter=20)
    b = fastnmf.nmf(X, 5, solver=solver, shuffle=True, random_state=4, max_iter=20)
    assert_same_result(a, b)
    assert np.all(np.isfinite(a.W)) and np.all(a.W >= 0)


def test_generator_random_state_accepted():
    X = make_X()
    a = fastnmf.nmf(X, 3, init="random", random_state=np.random.default_rng(5), max_iter=10)
    b = fastnmf.nmf(X, 3, init="random", random_state=np.random.default_rng(5), max_iter=10)
    assert_same_result(a, b)
    assert np.all(np.isfinite(a.W)) and np.all(a.W >= 0)


def test_generator_random_state_is_used_as_given():
    """The same Generator object advances: a second call draws a different start."""
    X = make_X()
    gen = np.random.default_rng(5)
    a = fastnmf.nmf(X, 3, init="random", random_state=gen, max_iter=10)
    b = fastnmf.nmf(X, 3, init="random", random_state=gen, max_iter=10)
    assert not np.array_equal(a.W, b.W)


def test_random_state_none_draws_fresh_entropy():
    X = make_X()
    a = fastnmf.nmf(X, 3, init="random", random_state=None, max_iter=3)
    b = fastnmf.nmf(X, 3, init="random", random_state=None, max_iter=3)
    assert not np.array_equal(a.W, b.W)


def test_randomstate_instance_matches_int():
    """scikit-learn users pass RandomState instances: RandomState(s) gives the int s start."""
    X = make_X()
    a = fastnmf.nmf(X, 3, init="random", random_state=np.random.RandomState(9), max_iter=10)
    b = fastnmf.nmf(X, 3, init="random", random_state=9, max_iter=10)
    assert_same_result(a, b)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [0, 42, 2**32 - 1])
def test_random_init_is_sklearns_start(solver, dtype, seed):
    """init='random' with an int seed starts exactly where scikit-learn starts."""
    X = make_X(25, 18, dtype=dtype)
    k = 4
    W0, H0 = sklearn_random_start(X, k, seed)
    W0_copy, H0_copy = W0.copy(), H0.copy()
    a = fastnmf.nmf(X, k, solver=solver, init="random", random_state=seed, tol=0, max_iter=5)
    b = fastnmf.nmf(X, k, solver=solver, init="custom", W=W0, H=H0, tol=0, max_iter=5)
    assert_same_result(a, b)
    assert_array_equal(W0, W0_copy)
    assert_array_equal(H0, H0_copy)


# ---------------------------------------------------------------------------------------
# Inputs are never modified


def _inputs_variants():
    X = make_X(rank=3)
    Xro = X.copy()
    Xro.flags.writeable = False
    return {
        "C": X,
        "F": np.asfortranarray(X),
        "readonly": Xro,
        "float32": X.astype(np.float32),
        "strided": np.repeat(X, 2, axis=0)[::2],
        "csr": sp.csr_matrix(np.where(X > 0.5, X, 0)),
        "csc": sp.csc_matrix(np.where(X > 0.5, X, 0)),
    }


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("variant", list(_inputs_variants()))
def test_X_never_modified(solver, variant):
    X = _inputs_variants()[variant]
    if sp.issparse(X):
        before = (X.data.copy(), X.indices.copy(), X.indptr.copy(), X.format, X.dtype)
    else:
        before = (X.copy(), X.flags.writeable, X.flags.c_contiguous, X.flags.f_contiguous)
    res = fastnmf.nmf(X, 3, solver=solver, max_iter=10)
    assert np.all(np.isfinite(res.W))
    if sp.issparse(X):
        assert_array_equal(X.data, before[0])
        assert_array_equal(X.indices, before[1])
        assert_array_equal(X.indptr, before[2])
        assert X.format == before[3] and X.dtype == before[4]
    else:
        assert_array_equal(X, before[0])
        assert X.flags.writeable == before[1]
        assert X.flags.c_contiguous == before[2] and X.flags.f_contiguous == before[3]


def test_readonly_X_gives_same_result_as_writeable():
    X = make_X(rank=3)
    Xro = X.copy()
    Xro.flags.writeable = False
    assert_same_result(fastnmf.nmf(X, 3, max_iter=20), fastnmf.nmf(Xro, 3, max_iter=20))


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("readonly", [False, True])
def test_custom_W_H_never_modified(solver, dtype, readonly):
    X = make_X(dtype=dtype)
    W0 = make_X(30, 3, seed=1, dtype=dtype)
    H0 = make_X(3, 20, seed=2, dtype=dtype)
    W_copy, H_copy = W0.copy(), H0.copy()
    if readonly:
        W0.flags.writeable = False
        H0.flags.writeable = False
    res = fastnmf.nmf(X, 3, solver=solver, init="custom", W=W0, H=H0, max_iter=10)
    assert_array_equal(W0, W_copy)
    assert_array_equal(H0, H_copy)
    assert W0.flags.writeable == (not readonly)
    assert not np.array_equal(res.W, W0)  # the solver did move away from the start


@pytest.mark.parametrize("solver", SOLVERS)
def test_custom_start_is_used(solver):
    """init='custom' starts from W, H: its first history entry is their error."""
    X = make_X()
    W0 = make_X(30, 3, seed=1)
    H0 = make_X(3, 20, seed=2)
    res = fastnmf.nmf(X, 3, solver=solver, init="custom", W=W0, H=H0, max_iter=10)
    assert_allclose(res.history[0], frob(X, W0, H0), rtol=1e-9)


def test_custom_float64_factors_with_float32_X():
    X = make_X(dtype=np.float32)
    W0 = make_X(30, 3, seed=1)
    H0 = make_X(3, 20, seed=2)
    res = fastnmf.nmf(X, 3, init="custom", W=W0, H=H0, max_iter=10)
    assert res.W.dtype == np.float32 and res.H.dtype == np.float32
    assert W0.dtype == np.float64


# ---------------------------------------------------------------------------------------
# update_H=False


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_update_H_false_keeps_H(solver, dtype):
    X = make_X(dtype=dtype)
    H0 = make_X(3, 20, seed=2, dtype=dtype)
    H_copy = H0.copy()
    res = fastnmf.nmf(X, 3, solver=solver, update_H=False, H=H0, max_iter=30)
    assert_array_equal(res.H, H_copy)
    assert_array_equal(H0, H_copy)
    assert res.H.dtype == dtype and res.W.dtype == dtype
    assert not np.shares_memory(res.H, H0)
    assert np.all(res.W >= 0) and np.all(np.isfinite(res.W))
    # W was actually solved: the error is below that of the starting W
    assert res.reconstruction_err < res.history[0]


@pytest.mark.parametrize("solver", SOLVERS)
def test_update_H_false_ignores_init(solver):
    X = make_X()
    H0 = make_X(3, 20, seed=2)
    a = fastnmf.nmf(X, 3, solver=solver, update_H=False, H=H0, max_iter=10)
    for init in ("random", "nndsvd", "nndsvda", "nndsvdar"):
        b = fastnmf.nmf(X, 3, solver=solver, update_H=False, H=H0, init=init,
                        random_state=0, max_iter=10)
        assert_same_result(a, b)


@pytest.mark.parametrize("solver", SOLVERS)
def test_update_H_false_W_starts_as_sklearn(solver):
    """W starts at zeros (cd, als) or at the constant sqrt(mean(X) / k) (mu)."""
    X = make_X()
    k = 3
    H0 = make_X(k, 20, seed=2)
    if solver == "mu":
        W0 = np.full((30, k), np.sqrt(X.mean() / k))
    else:
        W0 = np.zeros((30, k))
    a = fastnmf.nmf(X, k, solver=solver, update_H=False, H=H0, tol=0, max_iter=15)
    b = fastnmf.nmf(X, k, solver=solver, update_H=False, H=H0, W=W0, tol=0, max_iter=15)
    assert_same_result(a, b)
    assert_allclose(a.history[0], frob(X, W0, H0), rtol=1e-9)


@pytest.mark.parametrize("solver", SOLVERS)
def test_update_H_false_with_given_W(solver):
    X = make_X()
    H0 = make_X(3, 20, seed=2)
    W0 = make_X(30, 3, seed=3)
    W_copy = W0.copy()
    res = fastnmf.nmf(X, 3, solver=solver, update_H=False, H=H0, W=W0, max_iter=10)
    assert_array_equal(W0, W_copy)
    assert_allclose(res.history[0], frob(X, W0, H0), rtol=1e-9)
    assert_array_equal(res.H, H0)


@pytest.mark.parametrize("solver", ["cd", "als"])
def test_update_H_false_solves_W_exactly(solver):
    """With H fixed, W solves the NNLS problem: X = W_true H is recovered."""
    rng = np.random.default_rng(8)
    H0 = rng.random((3, 20))
    W_true = rng.random((30, 3))
    X = W_true @ H0
    res = fastnmf.nmf(X, 3, solver=solver, update_H=False, H=H0, tol=0, max_iter=500)
    assert_allclose(res.W, W_true, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------
# Regularization


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("l1_ratio", [0.0, 0.5, 1.0])
def test_alpha_W_lowers_W_norm(solver, l1_ratio):
    X = make_X(40, 30, rank=5)
    plain = fastnmf.nmf(X, 5, solver=solver, random_state=0, tol=0, max_iter=100)
    reg = fastnmf.nmf(X, 5, solver=solver, random_state=0, tol=0, max_iter=100,
                      alpha_W=0.05, alpha_H=0.0, l1_ratio=l1_ratio)
    assert reg.W.sum() < plain.W.sum()
    assert np.all(np.isfinite(reg.W)) and np.all(reg.W >= 0)


@pytest.mark.parametrize("solver", SOLVERS)
def test_alpha_H_same_takes_alpha_W(solver):
    X = make_X(rank=4)
    a = fastnmf.nmf(X, 4, solver=solver, alpha_W=0.02, l1_ratio=0.3, random_state=0,
                    max_iter=30)
    b = fastnmf.nmf(X, 4, solver=solver, alpha_W=0.02, alpha_H=0.02, l1_ratio=0.3,
                    random_state=0, max_iter=30)
    assert_same_result(a, b)


@pytest.mark.parametrize("solver", SOLVERS)
def test_strong_l1_gives_zeros(solver):
    X = make_X(rank=4)
    plain = fastnmf.nmf(X, 4, solver=solver, random_state=0, tol=0, max_iter=100)
    reg = fastnmf.nmf(X, 4, solver=solver, alpha_W=0.1, l1_ratio=1.0, random_state=0,
                      tol=0, max_iter=100)
    assert reg.W.sum() + reg.H.sum() < plain.W.sum() + plain.H.sum()
    if solver != "mu":  # mu only shrinks towards zero
        assert np.count_nonzero(reg.W == 0) > np.count_nonzero(plain.W == 0)


# ---------------------------------------------------------------------------------------
# verbose


@pytest.mark.parametrize("solver", SOLVERS)
def test_verbose_prints(solver, capfd):
    X = make_X()
    fastnmf.nmf(X, 3, solver=solver, max_iter=20, tol=0, verbose=True)
    out, err = capfd.readouterr()
    assert (out + err).strip() != ""


@pytest.mark.parametrize("solver", SOLVERS)
def test_not_verbose_prints_nothing(solver, capfd):
    X = make_X()
    fastnmf.nmf(X, 3, solver=solver, max_iter=20, tol=0, verbose=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# ---------------------------------------------------------------------------------------
# All solvers: sane results


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("init", [None, "random", "nndsvd", "nndsvda", "nndsvdar"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_finite_nonnegative(solver, init, dtype):
    X = make_X(40, 25, rank=5, dtype=dtype)
    res = fastnmf.nmf(X, 5, solver=solver, init=init, random_state=0, max_iter=50)
    for arr in (res.W, res.H, res.history):
        assert np.all(np.isfinite(arr))
    assert np.all(res.W >= 0) and np.all(res.H >= 0)
    assert res.W.shape == (40, 5) and res.H.shape == (5, 25)
    assert 1 <= res.n_iter <= 50
    assert res.solver == solver
    # better than the start, and than the zero factorization
    assert res.reconstruction_err <= res.history[0] * (1 + 1e-6)
    assert res.reconstruction_err < np.linalg.norm(X.astype(np.float64))


@pytest.mark.parametrize("solver", SOLVERS)
def test_low_rank_is_recovered(solver):
    X = make_X(30, 20, rank=3, noise=0.0)
    res = fastnmf.nmf(X, 3, solver=solver, init="nndsvda", tol=0, max_iter=2000)
    assert res.reconstruction_err < 1e-2 * np.linalg.norm(X)


# ---------------------------------------------------------------------------------------
# Against scikit-learn (optional)


def _generated_matrices():
    rng = np.random.default_rng(42)
    noisy = rng.random((60, 6)) @ rng.random((6, 40)) + 0.5 * rng.random((60, 40))
    uniform = rng.random((50, 35))
    zeros = rng.random((45, 70))
    zeros[zeros < 0.6] = 0
    lowrank32 = (rng.random((40, 8)) @ rng.random((8, 30))).astype(np.float32)
    return {"noisy": (noisy, 6), "uniform": (uniform, 5), "zeros": (zeros, 4),
            "lowrank32": (lowrank32, 5)}


MATRICES = list(_generated_matrices())


def _objective(X, W, H, alpha_W, l1_ratio):
    """½‖X − WH‖² + scikit-learn's regularization (alpha_H='same'), in float64."""
    n, m = X.shape
    X, W, H = (np.asarray(a, dtype=np.float64) for a in (X, W, H))
    a, r = alpha_W, l1_ratio
    return (0.5 * np.linalg.norm(X - W @ H) ** 2
            + a * r * m * W.sum() + 0.5 * a * (1 - r) * m * (W ** 2).sum()
            + a * r * n * H.sum() + 0.5 * a * (1 - r) * n * (H ** 2).sum())


@pytest.mark.parametrize("name", MATRICES)
@pytest.mark.parametrize("init", ["nndsvda", "random"])
@pytest.mark.parametrize("solver", ["cd", "mu"])
def test_matches_sklearn_error(name, init, solver):
    sklearn_nmf = pytest.importorskip("sklearn.decomposition").non_negative_factorization
    X, k = _generated_matrices()[name]
    W, H, _ = sklearn_nmf(X, n_components=k, init=init, solver=solver, tol=0, max_iter=200,
                          random_state=0)
    res = fastnmf.nmf(X, k, init=init, solver=solver, tol=0, max_iter=200, random_state=0)
    assert res.W.dtype == W.dtype
    assert res.reconstruction_err <= 1.01 * frob(X, W, H)


@pytest.mark.parametrize("name", MATRICES)
@pytest.mark.parametrize("init", ["nndsvda", "random"])
def test_als_close_to_sklearn_cd(name, init):
    # These matrices keep a noise floor: on a nearly exact low-rank fit the final error is
    # tiny and its ratio measures how far 200 iterations got, not where they end.
    sklearn_nmf = pytest.importorskip("sklearn.decomposition").non_negative_factorization
    X, k = _generated_matrices()[name]
    W, H, _ = sklearn_nmf(X, n_components=k, init=init, solver="cd", tol=0, max_iter=200,
                          random_state=0)
    res = fastnmf.nmf(X, k, init=init, solver="als", tol=0, max_iter=200, random_state=0)
    assert res.reconstruction_err <= 1.10 * frob(X, W, H)


@pytest.mark.parametrize("name", MATRICES)
@pytest.mark.parametrize("init", ["nndsvda", "random"])
@pytest.mark.parametrize("solver", ["cd", "mu"])
def test_matches_sklearn_regularized(name, init, solver):
    sklearn_nmf = pytest.importorskip("sklearn.decomposition").non_negative_factorization
    X, k = _generated_matrices()[name]
    kw = dict(alpha_W=0.01, l1_ratio=0.5)
    W, H, _ = sklearn_nmf(X, n_components=k, init=init, solver=solver, tol=0, max_iter=200,
                          random_state=0, **kw)
    res = fastnmf.nmf(X, k, init=init, solver=solver, tol=0, max_iter=200, random_state=0,
                      **kw)
    # the regularized objective is what both minimize; the plain error follows it closely
    assert _objective(X, res.W, res.H, **kw) <= 1.01 * _objective(X, W, H, **kw)
    assert res.reconstruction_err <= 1.01 * frob(X, W, H)


@pytest.mark.parametrize("solver", ["cd", "mu"])
def test_update_H_false_matches_sklearn(solver):
    """update_H=False is scikit-learn's transform mode."""
    sklearn_nmf = pytest.importorskip("sklearn.decomposition").non_negative_factorization
    X, k = _generated_matrices()["uniform"]
    H0 = make_X(k, X.shape[1], seed=5)
    W, H, _ = sklearn_nmf(X, H=H0, n_components=k, update_H=False, solver=solver, tol=0,
                          max_iter=200)
    res = fastnmf.nmf(X, k, H=H0, update_H=False, solver=solver, tol=0, max_iter=200)
    assert_array_equal(res.H, H0)
    assert res.reconstruction_err <= 1.01 * frob(X, W, H0)


@pytest.mark.parametrize("dtype, computed", [("Float32", np.float32), ("Float64", np.float64),
                                             ("Int64", np.float64)])
def test_pandas_nullable_columns(dtype, computed):
    """A frame of pandas' own nullable dtypes is its numbers (float32 kept as float32), the
    same bits as the array's; a missing value is NaN, refused as such."""
    pd = pytest.importorskip("pandas")
    values = np.random.default_rng(0).integers(1, 9, (12, 7)).astype(computed)
    frame = pd.DataFrame(values).astype(dtype)
    got = fastnmf.nmf(frame, 3, random_state=0, max_iter=20, tol=0)
    want = fastnmf.nmf(values, 3, random_state=0, max_iter=20, tol=0)
    assert got.W.dtype == computed
    np.testing.assert_array_equal(got.W, want.W)
    np.testing.assert_array_equal(got.H, want.H)
    frame.iloc[3, 2] = pd.NA
    with pytest.raises(ValueError, match="X contains NaN"):
        fastnmf.nmf(frame, 3)
    frame[0] = values[:, 0]  # a NumPy column among them
    with pytest.raises(ValueError, match="X contains NaN"):
        fastnmf.nmf(frame, 3)
