"""The initializers: random, nndsvd, nndsvda, nndsvdar (docs/algorithms.md, "Starting points").

Starting factors are taken straight from ``fastnmf._init.initialize`` on a problem built by
``fastnmf._validation.check_nmf_args`` (the path ``fastnmf.nmf`` takes), and compared with a
plain NumPy NNDSVD written here from Boutsidis & Gallopoulos (2008) with scikit-learn's
conventions (entries below 1e-6 set to 0; nndsvda fills zeros with mean(X), nndsvdar with
|mean(X) · N(0, 1)| / 100). A few tests tie the public ``init=`` to the same starts.
"""

import inspect
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

import fastnmf
from fastnmf._init import LazyRNG, initialize
from fastnmf._validation import check_nmf_args
from conftest import dense_matrix, sklearn_random_start

NNDSVDS = ("nndsvd", "nndsvda", "nndsvdar")
INITS = ("random",) + NNDSVDS
from conftest import SOLVERS  # noqa: E402
_DEFAULTS = {name: p.default for name, p in inspect.signature(fastnmf.nmf).parameters.items()
             if p.kind is p.KEYWORD_ONLY}


def start(X, k, init, random_state=0):
    """The (W0, H0) fastnmf.nmf would start from."""
    prob = check_nmf_args(X, k, **{**_DEFAULTS, "init": init, "random_state": random_state})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        W, H = initialize(prob, LazyRNG(prob.random_state))
    return W, H


def make_X(n=30, m=20, seed=0, dtype=np.float64, rank=None, noise=0.01):
    return dense_matrix(n, m, rank=rank, seed=seed, dtype=dtype, noise=noise)


def reference_nndsvd(X, k, eps=1e-6):
    """NNDSVD from an exact SVD, in float64 (no fill: zeros stay zeros)."""
    X = X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    U, S, Vt = np.linalg.svd(X, full_matrices=False)
    W = np.zeros((X.shape[0], k))
    H = np.zeros((k, X.shape[1]))
    W[:, 0] = np.sqrt(S[0]) * np.abs(U[:, 0])
    H[0] = np.sqrt(S[0]) * np.abs(Vt[0])
    for j in range(1, k):
        x, y = U[:, j], Vt[j]
        xp, yp, xn, yn = np.maximum(x, 0), np.maximum(y, 0), np.maximum(-x, 0), np.maximum(-y, 0)
        mp = np.linalg.norm(xp) * np.linalg.norm(yp)
        mn = np.linalg.norm(xn) * np.linalg.norm(yn)
        u, v, sigma = (xp, yp, mp) if mp > mn else (xn, yn, mn)
        if sigma > 0:
            lbd = np.sqrt(S[j] * sigma)
            W[:, j] = lbd * u / np.linalg.norm(u)
            H[j] = lbd * v / np.linalg.norm(v)
    W[W < eps] = 0
    H[H < eps] = 0
    return W, H


def rel_diff(A, B):
    return np.linalg.norm(A - B) / np.linalg.norm(B)


# ---------------------------------------------------------------------------------------
# Shapes, dtypes, signs


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,k", [((30, 20), 5), ((20, 30), 5), ((7, 7), 7), ((9, 4), 1),
                                     ((1, 6), 1), ((6, 1), 1)])
def test_shapes_dtype_sign(init, dtype, shape, k):
    X = make_X(*shape, dtype=dtype)
    W, H = start(X, k, init)
    assert W.shape == (shape[0], k) and H.shape == (k, shape[1])
    assert W.dtype == dtype and H.dtype == dtype
    assert np.all(np.isfinite(W)) and np.all(np.isfinite(H))
    assert np.all(W >= 0) and np.all(H >= 0)


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_shapes_dtype_sign(init, fmt):
    X = sp.random(40, 30, density=0.3, format=fmt, random_state=1, dtype=np.float64)
    W, H = start(X, 4, init)
    assert W.shape == (40, 4) and H.shape == (4, 30)
    assert isinstance(W, np.ndarray) and isinstance(H, np.ndarray)
    assert np.all(np.isfinite(W)) and np.all(W >= 0)
    assert np.all(np.isfinite(H)) and np.all(H >= 0)


# ---------------------------------------------------------------------------------------
# NNDSVD and its variants


@pytest.mark.parametrize("shape,k", [((30, 20), 5), ((20, 30), 4), ((12, 12), 12), ((8, 5), 5),
                                     ((500, 25), 6), ((25, 500), 6)])
def test_nndsvd_matches_reference(shape, k):
    """scikit-learn's randomized SVD (ours reproduces it) is exact when k + 10 >= min(n, m);
    else it is scikit-learn's start, close to the exact one."""
    X = make_X(*shape)
    W, H = start(X, k, "nndsvd", random_state=0)
    Ws, Hs = _sklearn_initialize()(X, k, init="nndsvd", random_state=0)
    assert_allclose(W, Ws, rtol=1e-8, atol=1e-12)
    assert_allclose(H, Hs, rtol=1e-8, atol=1e-12)
    if k + 10 >= min(shape):
        Wr, Hr = reference_nndsvd(X, k)
        assert_allclose(W, Wr, rtol=1e-8, atol=1e-12)
        assert_allclose(H, Hr, rtol=1e-8, atol=1e-12)


def test_nndsvd_has_exact_zeros():
    X = make_X(30, 20)
    W, H = start(X, 5, "nndsvd")
    assert np.count_nonzero(W == 0) > 0
    assert np.count_nonzero(H == 0) > 0
    # the first component is |leading singular pair|: no zero there for a positive X
    assert np.all(W[:, 0] > 0) and np.all(H[0] > 0)


def test_nndsvd_rank_one_is_best_rank_one():
    """For X > 0 the leading singular vectors are positive: nndsvd with k=1 is the SVD's."""
    X = make_X(25, 15)
    W, H = start(X, 1, "nndsvd")
    S = np.linalg.svd(X, compute_uv=False)
    assert_allclose(np.linalg.norm(X - W @ H), np.sqrt(np.sum(S[1:] ** 2)), rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nndsvda_fills_zeros_with_mean(dtype):
    X = make_X(30, 20, dtype=dtype)
    W, H = start(X, 5, "nndsvd")
    Wa, Ha = start(X, 5, "nndsvda")
    assert np.count_nonzero(Wa == 0) == 0 and np.count_nonzero(Ha == 0) == 0
    mean = X.mean(dtype=np.float64)
    assert_allclose(Wa[W == 0], mean, rtol=1e-6)
    assert_allclose(Ha[H == 0], mean, rtol=1e-6)
    assert_array_equal(Wa[W != 0], W[W != 0])
    assert_array_equal(Ha[H != 0], H[H != 0])


def test_nndsvdar_fills_zeros_with_small_random_values():
    X = make_X(30, 20)
    W, H = start(X, 5, "nndsvd", random_state=3)
    Wr, Hr = start(X, 5, "nndsvdar", random_state=3)
    mean = X.mean()
    for F, Fr in ((W, Wr), (H, Hr)):
        fill = Fr[F == 0]
        assert fill.size > 0
        assert np.all(fill >= 0)
        # |mean · N(0, 1)| / 100: small next to the mean, not all equal
        assert fill.max() < 0.1 * mean
        assert np.unique(fill).size > fill.size // 2
        assert_array_equal(Fr[F != 0], F[F != 0])


def test_nndsvdar_reproducible_and_seeded():
    X = make_X(30, 20)
    a = start(X, 5, "nndsvdar", random_state=3)
    b = start(X, 5, "nndsvdar", random_state=3)
    c = start(X, 5, "nndsvdar", random_state=4)
    assert_array_equal(a[0], b[0])
    assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("init", ["nndsvd", "nndsvdar"])  # nndsvda's mean fill adds mass
def test_nndsvd_start_error_below_norm_of_X(init):
    X = make_X(30, 20, rank=4)
    W, H = start(X, 4, init)
    assert np.linalg.norm(X - W @ H) < np.linalg.norm(X)


@pytest.mark.parametrize("init", NNDSVDS)
@pytest.mark.parametrize("shape", [(10, 6), (6, 10), (5, 5)])
def test_k_equal_min_dim(init, shape):
    X = make_X(*shape)
    k = min(shape)
    W, H = start(X, k, init)
    assert W.shape == (shape[0], k) and H.shape == (k, shape[1])
    assert np.all(np.isfinite(W)) and np.all(np.isfinite(H))
    assert np.all(W >= 0) and np.all(H >= 0)
    if init == "nndsvd":
        Wr, Hr = reference_nndsvd(X, k)
        assert_allclose(W @ H, Wr @ Hr, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("init", NNDSVDS)
def test_rank_deficient_X(init):
    """k above rank(X): the extra singular values are ~0; no NaN, no warning."""
    X = make_X(20, 15, rank=2, noise=0.0)
    W, H = start(X, 6, init)
    assert np.all(np.isfinite(W)) and np.all(np.isfinite(H))
    assert np.all(W >= 0) and np.all(H >= 0)
    if init != "nndsvda":
        assert np.linalg.norm(X - W @ H) < np.linalg.norm(X)


# ---------------------------------------------------------------------------------------
# All-zero X and zero rows/columns


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("kind", ["dense", "csr", "csr-large", "dense-large"])
def test_all_zero_X_gives_finite_zero_start(init, kind):
    shape = {"dense": (6, 5), "csr": (6, 5), "csr-large": (300, 200),
             "dense-large": (300, 200)}[kind]
    X = np.zeros(shape)
    if kind.startswith("csr"):
        X = sp.csr_matrix(X)
    W, H = start(X, 3, init)
    assert np.all(np.isfinite(W)) and np.all(np.isfinite(H))
    assert np.all(W >= 0) and np.all(H >= 0)
    assert_array_equal(W @ H, 0)


@pytest.mark.parametrize("init", INITS)
def test_zero_rows_and_columns(init):
    X = make_X(12, 10)
    X[[0, 5], :] = 0
    X[:, [3, 9]] = 0
    W, H = start(X, 3, init)
    assert np.all(np.isfinite(W)) and np.all(np.isfinite(H))
    assert np.all(W >= 0) and np.all(H >= 0)
    if init == "nndsvd":  # singular vectors vanish on zero rows/columns
        assert_array_equal(W[[0, 5]], 0)
        assert_array_equal(H[:, [3, 9]], 0)


def test_single_nonzero_entry():
    X = np.zeros((7, 5))
    X[3, 2] = 4.0
    for init in INITS:
        W, H = start(X, 2, init)
        assert np.all(np.isfinite(W)) and np.all(np.isfinite(H))
    W, H = start(X, 1, "nndsvd")
    assert_allclose(W @ H, X, atol=1e-12)


# ---------------------------------------------------------------------------------------
# Large and sparse X: the randomized SVD path


@pytest.fixture
def count_randomized_svd(monkeypatch):
    """Counts the calls of fastnmf._init.randomized_svd, so a test knows its path was taken."""
    import fastnmf._init as init_module

    calls = []
    original = init_module.randomized_svd

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(init_module, "randomized_svd", counting)
    return calls


# Dense X with a long short side (here 300 for k = 5) takes the randomized SVD.
LARGE = (400, 300)


@pytest.mark.parametrize("init", ["nndsvd", "nndsvda"])
# float64: three passes over X (randomized_svd) leave 1.8e-6 here (the exact SVD's
# start is not what the solvers need to match, only to come close to).
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-5), (np.float32, 1e-3)])
def test_large_dense_nndsvd_close_to_exact(init, dtype, rtol, count_randomized_svd):
    X = make_X(*LARGE, rank=5, noise=0.01, dtype=dtype, seed=5)
    W, H = start(X, 5, init, random_state=0)
    assert count_randomized_svd, "the randomized SVD path was not taken"
    assert W.dtype == dtype
    Wr, Hr = reference_nndsvd(X.astype(np.float64), 5)
    if init == "nndsvda":
        mean = X.mean(dtype=np.float64)
        Wr[Wr == 0] = mean
        Hr[Hr == 0] = mean
    assert rel_diff(W.astype(np.float64) @ H, Wr @ Hr) < rtol
    err = np.linalg.norm(X - W.astype(np.float64) @ H)
    assert_allclose(err, np.linalg.norm(X - Wr @ Hr), rtol=rtol)


def _sparse_low_rank(n, m, k, seed, dtype=np.float64):
    """A sparse X = W H + small noise on its non-zeros, W and H sparse non-negative."""
    rng = np.random.default_rng(seed)
    W = rng.random((n, k)) * (rng.random((n, k)) < 0.3)
    H = rng.random((k, m)) * (rng.random((k, m)) < 0.3)
    X = W @ H
    X[X > 0] += 1e-3 * rng.random(np.count_nonzero(X > 0))
    return sp.csr_matrix(X.astype(dtype))


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("init", ["nndsvd", "nndsvda"])
def test_sparse_nndsvd_close_to_exact(fmt, init, count_randomized_svd):
    X = _sparse_low_rank(200, 150, 5, seed=3).asformat(fmt)
    W, H = start(X, 5, init, random_state=0)
    assert count_randomized_svd, "the randomized SVD path was not taken"
    Wd, Hd = reference_nndsvd(X, 5)
    if init == "nndsvda":
        Wd[Wd == 0] = X.mean()
        Hd[Hd == 0] = X.mean()
    assert rel_diff(W @ H, Wd @ Hd) < 1e-6
    Xd = X.toarray()
    assert_allclose(np.linalg.norm(Xd - W @ H), np.linalg.norm(Xd - Wd @ Hd), rtol=1e-6)


def test_large_dense_nndsvd_reproducible():
    X = make_X(*LARGE, rank=5, seed=5)
    a = start(X, 5, "nndsvd", random_state=1)
    b = start(X, 5, "nndsvd", random_state=1)
    assert_array_equal(a[0], b[0])
    assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("solver", SOLVERS)
def test_large_dense_nmf_close_to_exact_start(solver):
    """Through the public API: the randomized start leads where the exact one leads."""
    X = make_X(*LARGE, rank=5, noise=0.01, seed=5)
    Wr, Hr = reference_nndsvd(X, 5)
    mean = X.mean()
    Wr[Wr == 0] = mean
    Hr[Hr == 0] = mean
    a = fastnmf.nmf(X, 5, solver=solver, init="nndsvda", random_state=0, tol=0, max_iter=20)
    b = fastnmf.nmf(X, 5, solver=solver, init="custom", W=Wr, H=Hr, tol=0, max_iter=20)
    assert_allclose(a.history, b.history, rtol=1e-5)


# ---------------------------------------------------------------------------------------
# random


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1, 123456, 2**32 - 1])
def test_random_is_sklearns_draw(dtype, seed):
    X = make_X(17, 11, dtype=dtype)
    W, H = start(X, 4, "random", random_state=seed)
    Ws, Hs = sklearn_random_start(X, 4, seed)
    assert W.dtype == dtype and H.dtype == dtype
    assert_array_equal(W, Ws)
    assert_array_equal(H, Hs)


def test_random_reproducible_and_seeded():
    X = make_X()
    a = start(X, 4, "random", random_state=8)
    b = start(X, 4, "random", random_state=8)
    c = start(X, 4, "random", random_state=9)
    assert_array_equal(a[0], b[0])
    assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_random_with_generator():
    X = make_X()
    a = start(X, 4, "random", random_state=np.random.default_rng(2))
    b = start(X, 4, "random", random_state=np.random.default_rng(2))
    assert_array_equal(a[0], b[0])
    assert np.all(a[0] >= 0) and np.all(a[1] >= 0)
    gen = np.random.default_rng(2)
    c = start(X, 4, "random", random_state=gen)
    d = start(X, 4, "random", random_state=gen)
    assert not np.array_equal(c[0], d[0])


def test_random_scale():
    """Entries are sqrt(mean(X) / k) · |N(0, 1)|: their mean is sqrt(mean(X) / k) · sqrt(2/π)."""
    X = make_X(400, 300)
    k = 50  # 35 000 draws: their mean is within 2 % with overwhelming probability
    W, H = start(X, k, "random", random_state=0)
    expected = np.sqrt(X.mean() / k) * np.sqrt(2 / np.pi)
    assert_allclose(np.concatenate([W.ravel(), H.ravel()]).mean(), expected, rtol=0.02)


@pytest.mark.parametrize("k", [6, 10])
def test_random_more_components_than_min_dim(k):
    X = make_X(5, 4)
    W, H = start(X, k, "random")
    assert W.shape == (5, k) and H.shape == (k, 4)
    Ws, Hs = sklearn_random_start(X, k, 0)
    assert_array_equal(W, Ws)
    assert_array_equal(H, Hs)


# ---------------------------------------------------------------------------------------
# The public init= uses these starts


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("solver", SOLVERS)
def test_public_init_uses_start(init, solver):
    X = make_X(20, 15)
    W0, H0 = start(X, 3, init, random_state=5)
    a = fastnmf.nmf(X, 3, solver=solver, init=init, random_state=5, tol=0, max_iter=5)
    b = fastnmf.nmf(X, 3, solver=solver, init="custom", W=W0, H=H0, tol=0, max_iter=5)
    assert_array_equal(a.W, b.W)
    assert_array_equal(a.H, b.H)
    assert_array_equal(a.history, b.history)


@pytest.mark.parametrize("solver", SOLVERS)
def test_public_nndsvd_matches_reference_start(solver):
    X = make_X(20, 15)
    Wr, Hr = _sklearn_initialize()(X, 3, init="nndsvd", random_state=0)
    a = fastnmf.nmf(X, 3, solver=solver, init="nndsvd", tol=0, max_iter=5, random_state=0)
    b = fastnmf.nmf(X, 3, solver=solver, init="custom", W=Wr, H=Hr, tol=0, max_iter=5)
    assert_allclose(a.history[0], np.linalg.norm(X - Wr @ Hr), rtol=1e-10)
    assert_allclose(a.W @ a.H, b.W @ b.H, rtol=1e-7, atol=1e-10)


def test_custom_start_is_a_copy():
    X = make_X()
    W0 = make_X(30, 3, seed=1)
    H0 = make_X(3, 20, seed=2)
    prob = check_nmf_args(X, 3, **{**_DEFAULTS, "init": "custom", "W": W0, "H": H0})
    W, H = initialize(prob, LazyRNG(prob.random_state))
    assert_array_equal(W, W0)
    assert_array_equal(H, H0)
    assert not np.shares_memory(W, W0) and not np.shares_memory(H, H0)


# ---------------------------------------------------------------------------------------
# Against scikit-learn's own initializer (optional, private helper)


def _sklearn_initialize():
    mod = pytest.importorskip("sklearn.decomposition._nmf")
    if not hasattr(mod, "_initialize_nmf"):
        pytest.skip("this scikit-learn has no _initialize_nmf")
    return mod._initialize_nmf


@pytest.mark.parametrize("n", [20, 70001])  # 70001 rows: W is drawn in three pieces
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 7])
def test_random_equals_sklearn_initialize(dtype, seed, n):
    from fastnmf import _init

    init_nmf = _sklearn_initialize()
    X = make_X(n, 13, dtype=dtype)
    assert n == 20 or n * 4 * 8 > 2 * _init._DRAW_BYTES
    W, H = start(X, 4, "random", random_state=seed)
    Ws, Hs = init_nmf(X, 4, init="random", random_state=seed)
    assert_array_equal(W, Ws)
    assert_array_equal(H, Hs)
    assert W.T.flags.c_contiguous  # Wᵀ is what the kernels take: no copy of W


@pytest.mark.parametrize("init", ["nndsvd", "nndsvda"])
def test_nndsvd_close_to_sklearn_initialize(init):
    init_nmf = _sklearn_initialize()
    # a clear spectral gap, so that scikit-learn's randomized SVD is accurate too
    X = make_X(60, 40, rank=5, noise=0.01, seed=2)
    W, H = start(X, 5, init)
    Ws, Hs = init_nmf(X, 5, init=init, random_state=0)
    assert rel_diff(W @ H, Ws @ Hs) < 1e-6


@pytest.mark.parametrize("shape", [(20, 12, 3), (12, 20, 3), (50, 30, 5), (30, 50, 5),
                                   (13, 13, 12), (7, 40, 5), (40, 7, 5), (5, 5, 5),
                                   (300, 200, 25), (1000, 60, 20)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("order", ["C", "F"])
def test_compiled_randomized_svd_is_the_steps_bit_for_bit(shape, dtype, order):
    """A dense X's randomized SVD runs as one compiled call (rsvd_core); it gives the
    step-by-step path's triplets exactly, on both sides of ell = k + 10 > min(n, m) (the
    bases shrink) and for wide and tall X."""
    from fastnmf._init import LazyRNG, omega, randomized_svd, randomized_svd_steps
    from fastnmf._threads import single_threaded_blas

    n, m, k = shape
    X = np.asarray(np.random.default_rng(n * m + k).random((n, m)), dtype=dtype, order=order)
    with single_threaded_blas:
        compiled = randomized_svd(X, k, LazyRNG(3))
        steps = randomized_svd_steps(X, k, omega(X, k, LazyRNG(3)))
    for a, b in zip(compiled, steps):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, np.asarray(b, dtype=dtype))


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("columns", [True, False], ids=["with-transpose", "rows-only"])
@pytest.mark.parametrize("pieces", [False, True], ids=["one-call", "by-pieces"])
def test_sparse_range_finder_products_are_scipys(fmt, dtype, n_threads, columns, pieces,
                                                 monkeypatch):
    """The randomized SVD's products with a sparse X run compiled on X's CSR and, where
    the solve makes it anyway, Xᵀ's (CSRPair): they are scipy.sparse's X @ F and X.T @ F
    bit for bit, for a CSR and a CSC X, for every width of F the kernels take another
    path for (under 8 columns; windows of 8, overlapping where 8 does not divide it;
    groups of 32), on one and two threads, with empty rows and columns, in one call or
    by pieces of rows (_init._PIECE_WORK: Ctrl-C is taken between them; here some 10 to
    300 pieces; rows-only, F X is scipy's own routine run piece after piece). (150 000 non-zeros: from 8 columns of F, more than the kernels'
    PARALLEL_MIN_WORK multiply-adds, so two threads share the rows.)"""
    from fastnmf import _init
    from fastnmf._init import CSRPair, _times

    assert 150_000 * 70 < _init._PIECE_WORK  # one call unless made smaller
    if pieces:
        monkeypatch.setattr(_init, "_PIECE_WORK", 1 << 16)

    rng = np.random.default_rng(5)
    X = sp.random(2003, 1501, density=0.05, format=fmt, dtype=dtype, random_state=2)
    X = X.tolil()
    X[17, :] = 0
    X[:, 31] = 0
    X = X.asformat(fmt)
    X.eliminate_zeros()
    pair = CSRPair(X, columns)
    assert (len(pair.operands[4]) > 0) == columns  # Xᵀ's row pointers
    for ell in (1, 3, 7, 8, 12, 16, 20, 33, 40, 70):
        F = rng.standard_normal((ell, 1501)).astype(dtype)
        G = rng.standard_normal((ell, 2003)).astype(dtype)
        got, want = _times(pair, F, False, n_threads), (X @ F.T).T
        assert got.dtype == dtype and got.shape == (ell, 2003)
        np.testing.assert_array_equal(got, want)
        got, want = _times(pair, G, True, n_threads), (X.T @ G.T).T
        assert got.shape == (ell, 1501)
        np.testing.assert_array_equal(got, want)


def test_sparse_left_product_refuses_what_it_cannot_form():
    """left_product on a sparse X's operands needs X's shape, and Xᵀ's CSR for F X."""
    from fastnmf._init import operands
    from fastnmf._kernels._common import left_product

    X = sp.random(30, 20, density=0.3, format="csr", random_state=0)
    with pytest.raises(ValueError, match="need X's shape"):
        left_product(operands(X), np.ones((3, 20)), False)
    with pytest.raises(ValueError, match="needs Xᵀ's CSR"):
        left_product(operands(X, columns=False), np.ones((3, 30)), True, 1, X.shape)
    with pytest.raises(ValueError, match="does not match"):
        left_product(operands(X), np.ones((3, 21)), False, 1, X.shape)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_mean_is_scipys_without_its_copy(fmt, dtype):
    from fastnmf._init import _mean

    for seed in range(5):
        X = sp.random(301, 177, density=0.1, format=fmt, dtype=dtype, random_state=seed)
        got, want = _mean(X), X.mean()
        assert got.dtype == want.dtype and got == want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_mean_by_pieces_is_numpys_pairwise_sum(dtype, monkeypatch):
    """Summed a piece at a time along NumPy's own pairwise cuts: the same bits as one
    np.sum of the scaled data (scipy's X.mean()), whatever the piece size and length."""
    from fastnmf import _init

    rng = np.random.default_rng(0)
    for piece in (128, 1000, 4096):
        monkeypatch.setattr(_init, "_SUM_PIECE", piece)
        for nnz in (7, 129, 1001, 4097, 65543, 300001):
            data = (rng.random(nnz) * rng.choice([1e-3, 1, 1e3], nnz)).astype(dtype)
            X = sp.csr_matrix((data, np.arange(nnz) % 5, np.arange(nnz + 1)),
                              shape=(nnz, 5))
            got, want = _init._mean(X), X.mean()
            assert got.dtype == want.dtype and got == want, (piece, nnz)
