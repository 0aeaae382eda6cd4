"""Sparse X: same results as the dense X it stands for, the caller's matrix untouched, and
never densified."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import fastnmf
from fastnmf._datasets import low_rank

from conftest import setting

K = 4
MAX_ITER = 50
# Sparse and dense products sum in different orders (CSR loops vs BLAS gemm), otherwise
# the two runs are the same computation from the same start (see test_kernels_vs_reference
# for the bound per solver; the measured difference here is <= 1e-12).
RTOL = 1e-8


def rel_diff(a, b):
    scale = np.max(np.abs(b))
    return np.max(np.abs(a - b)) / scale if scale > 0 else np.max(np.abs(a))


def assert_same(s, d):
    """Result ``s`` (sparse X) agrees with ``d`` (the same X dense)."""
    assert s.W.dtype == d.W.dtype
    assert s.n_iter == d.n_iter
    assert s.converged == d.converged
    assert s.history.shape == d.history.shape
    # Errors are compared squared, relative to ‖X‖²: the kernels get ‖X − WH‖² from
    # ‖X‖² − 2⟨W, XHᵀ⟩ + ⟨WᵀW, HHᵀ⟩, accurate to rounding relative to ‖X‖², so on a
    # near-exact fit the error itself is only known to about sqrt(eps) · ‖X‖ (the final
    # error of a dense X is formed directly, that of a sparse X from this formula).
    scale = d.history[0] ** 2
    assert np.max(np.abs(s.history**2 - d.history**2)) <= RTOL * scale
    assert abs(s.reconstruction_err**2 - d.reconstruction_err**2) <= RTOL * scale
    assert rel_diff(s.W, d.W) <= RTOL
    assert rel_diff(s.H, d.H) <= RTOL


def with_index_dtype(X, index_dtype):
    """X with indices and indptr of ``index_dtype`` (set after construction: SciPy's
    constructors downcast int64 indices that fit in int32)."""
    X = X.copy()
    X.indices = X.indices.astype(index_dtype)
    X.indptr = X.indptr.astype(index_dtype)
    assert X.indices.dtype == index_dtype and X.indptr.dtype == index_dtype
    return X


def make_sparse(fmt, container, index_dtype, seed=0, density=0.3):
    D = low_rank(40, 30, 6, noise=0.1, density=density, seed=seed).toarray()
    cls = {("csr", "matrix"): sp.csr_matrix, ("csr", "array"): sp.csr_array,
           ("csc", "matrix"): sp.csc_matrix, ("csc", "array"): sp.csc_array}[fmt, container]
    return D, with_index_dtype(cls(D), index_dtype)


def run(X, solver, **kw):
    kw = {"solver": solver, "init": "random", "random_state": 0, "tol": 0,
          "max_iter": MAX_ITER, **kw}
    return fastnmf.nmf(X, K, **kw)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("container", ["matrix", "array"])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64], ids=["int32", "int64"])
def test_sparse_equals_dense(solver, fmt, container, index_dtype):
    D, X = make_sparse(fmt, container, index_dtype)
    assert X.format == fmt
    s, d = run(X, solver), run(D, solver)
    assert_same(s, d)
    assert s.reconstruction_err < 0.9 * s.history[0]


def test_sparse_equals_dense_float32(solver):
    D, X = make_sparse("csr", "matrix", np.int32)
    s = run(X.astype(np.float32), solver)
    d = run(D.astype(np.float32), solver)
    assert s.W.dtype == d.W.dtype == np.float32
    assert s.n_iter == d.n_iter
    # float32: the two summation orders differ by ~1e-7 per product
    assert abs(s.reconstruction_err - d.reconstruction_err) <= 1e-4 * d.reconstruction_err
    assert np.max(np.abs(s.history - d.history)) <= 1e-4 * d.history[0]


@pytest.mark.parametrize("init", ["custom", "update_H=False"])
def test_sparse_equals_dense_given_factors(solver, init):
    D, X = make_sparse("csr", "array", np.int32, seed=1)
    rng = np.random.default_rng(1)
    W0 = rng.uniform(0.1, 1.0, size=(40, K))
    H0 = rng.uniform(0.1, 1.0, size=(K, 30))
    kw = ({"init": "custom", "W": W0, "H": H0} if init == "custom"
          else {"update_H": False, "H": H0})
    assert_same(run(X, solver, **kw), run(D, solver, **kw))


def test_coo_and_other_formats_are_converted(solver):
    D, X = make_sparse("csr", "matrix", np.int32, seed=2)
    d = run(D, solver)
    for Y in (X.tocoo(), sp.coo_array(D), X.tolil(), X.todok(), X.tobsr()):
        assert_same(run(Y, solver), d)


def test_coo_with_duplicate_entries(solver):
    """COO may hold the same (i, j) several times: the entries add up."""
    D, X = make_sparse("csr", "matrix", np.int32, seed=3)
    C = X.tocoo()
    row = np.concatenate([C.row, C.row])
    col = np.concatenate([C.col, C.col])
    data = np.concatenate([0.25 * C.data, 0.75 * C.data])
    Y = sp.coo_matrix((data, (row, col)), shape=D.shape)
    before = (Y.row.copy(), Y.col.copy(), Y.data.copy())
    assert_same(run(Y, solver), run(D, solver))
    for got, want in zip((Y.row, Y.col, Y.data), before):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("stale_flag", [False, True], ids=["flag-right", "flag-stale"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_duplicate_entries_compressed(solver, fmt, stale_flag):
    """A CSR/CSC matrix in non-canonical form (the same (i, j) stored twice) stands for the
    sum of its duplicates, as in every SciPy operation (toarray, @, sum); also where its
    cached ``has_canonical_format`` says True (a caller can set it; a DIA matrix with a
    repeated offset converts to such a CSR), which scipy's own sum_duplicates trusts."""
    D, X = make_sparse(fmt, "matrix", np.int32, seed=4)
    # split every stored value v into two stored entries v/4 and 3v/4 at the same place
    nnz_per = np.diff(X.indptr)
    indptr = np.concatenate([[0], np.cumsum(2 * nnz_per)]).astype(np.int32)
    indices = np.repeat(X.indices, 2)
    data = np.ravel(np.column_stack([0.25 * X.data, 0.75 * X.data]))
    cls = sp.csr_matrix if fmt == "csr" else sp.csc_matrix
    Y = cls((data, indices, indptr), shape=D.shape)
    assert not Y.has_canonical_format
    Y.has_canonical_format = stale_flag
    np.testing.assert_allclose(Y.toarray(), D, rtol=1e-15)
    before = (Y.data.copy(), Y.indices.copy(), Y.indptr.copy())
    s, d = run(Y, solver), run(D, solver)
    assert_same(s, d)
    for got, want in zip((Y.data, Y.indices, Y.indptr), before):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("index_dtype", [np.uint64, np.uint32, np.int16])
def test_other_index_types_with_duplicates(solver, index_dtype):
    """Index arrays of another integer type are taken (scipy refuses uint64) through a
    matrix of fastnmf's own: the duplicates are summed there, never in the caller's
    arrays."""
    D, X = make_sparse("csr", "matrix", np.int32, seed=6)
    nnz_per = np.diff(X.indptr)
    indptr = np.concatenate([[0], np.cumsum(2 * nnz_per)])
    Y = sp.csr_matrix((np.ravel(np.column_stack([0.25 * X.data, 0.75 * X.data])),
                       np.repeat(X.indices, 2), indptr), shape=D.shape)
    Y.indices, Y.indptr = Y.indices.astype(index_dtype), Y.indptr.astype(index_dtype)
    before = (Y.data.copy(), Y.indices.copy(), Y.indptr.copy())
    assert_same(run(Y, solver), run(D, solver))
    for got, want in zip((Y.data, Y.indices, Y.indptr), before):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_unsorted_indices(solver, fmt):
    D, X = make_sparse(fmt, "matrix", np.int32, seed=5)
    # reverse the order of the entries inside every row (csr) / column (csc)
    indices = X.indices.copy()
    data = X.data.copy()
    for a, b in zip(X.indptr[:-1], X.indptr[1:]):
        indices[a:b] = indices[a:b][::-1]
        data[a:b] = data[a:b][::-1]
    cls = sp.csr_matrix if fmt == "csr" else sp.csc_matrix
    Y = cls((data, indices, X.indptr.copy()), shape=D.shape)
    Y.has_sorted_indices = False
    before = (Y.data.copy(), Y.indices.copy(), Y.indptr.copy())
    assert_same(run(Y, solver), run(D, solver))
    for got, want in zip((Y.data, Y.indices, Y.indptr), before):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64], ids=["int32", "int64"])
@pytest.mark.parametrize("value_dtype", [np.float32, np.float64, np.int64],
                         ids=["float32", "float64", "int64"])
def test_caller_matrix_unchanged(fmt, index_dtype, value_dtype):
    D = low_rank(30, 20, 4, noise=0.1, density=0.3, seed=6).toarray()
    D = np.round(10 * D).astype(value_dtype)
    X = sp.csr_matrix(D).asformat(fmt)
    if fmt == "coo":
        X.row = X.row.astype(index_dtype)
        X.col = X.col.astype(index_dtype)
        arrays = ("data", "row", "col")
    else:
        X = with_index_dtype(X, index_dtype)
        arrays = ("data", "indices", "indptr")
    before = {name: getattr(X, name).copy() for name in arrays}
    objects = {name: getattr(X, name) for name in arrays}
    for solver in ("cd", "als", "mu"):
        res = fastnmf.nmf(X, 3, solver=solver, init="nndsvda", random_state=0, max_iter=20)
        assert np.all(np.isfinite(res.W)) and np.all(np.isfinite(res.H))
    assert X.format == fmt and X.dtype == value_dtype
    for name in arrays:
        assert getattr(X, name) is objects[name]
        assert getattr(X, name).dtype == before[name].dtype
        np.testing.assert_array_equal(getattr(X, name), before[name])


@pytest.mark.parametrize("case", ["zero-rows", "zero-cols", "zero-rows-and-cols",
                                  "trailing-empty-rows", "single-entry"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_empty_rows_and_columns(solver, fmt, case):
    D = low_rank(30, 20, 5, noise=0.1, seed=7)
    D[D < np.quantile(D, 0.5)] = 0
    if case in ("zero-rows", "zero-rows-and-cols"):
        D[[0, 3, 4, 17], :] = 0
    if case in ("zero-cols", "zero-rows-and-cols"):
        D[:, [1, 2, 19]] = 0
    if case == "trailing-empty-rows":
        D[-6:, :] = 0
        D[:, -3:] = 0
    if case == "single-entry":
        D = np.zeros_like(D)
        D[5, 7] = 2.0
    X = sp.csr_matrix(D).asformat(fmt)
    k = 3
    s = fastnmf.nmf(X, k, solver=solver, init="random", random_state=0, tol=0,
                    max_iter=MAX_ITER)
    d = fastnmf.nmf(D, k, solver=solver, init="random", random_state=0, tol=0,
                    max_iter=MAX_ITER)
    for res in (s, d):
        assert np.all(np.isfinite(res.W)) and np.all(np.isfinite(res.H))
        assert np.all(np.isfinite(res.history))
        assert np.all(res.W >= 0) and np.all(res.H >= 0)
    assert_same(s, d)


def _forbid_densify(monkeypatch, *matrices):
    """Make toarray/todense/.A raise on every sparse class involved."""
    def boom(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__} of shape {self.shape} was densified")

    for M in matrices:
        for cls in type(M).__mro__:
            for name in ("toarray", "todense"):
                if name in vars(cls):
                    monkeypatch.setattr(cls, name, boom)


def test_large_sparse_is_never_densified(monkeypatch):
    """20000 × 5000 at 0.1 % density: a dense copy would take 800 MB (400 MB in float32);
    everything nmf allocates must stay far below that."""
    n, m = 20_000, 5_000
    X = sp.random(n, m, density=0.001, format="csr", dtype=np.float64,
                  random_state=np.random.default_rng(8))
    dense_bytes = n * m * 8
    _forbid_densify(monkeypatch, X, X.tocsc(), X.tocoo())
    with pytest.raises(AssertionError, match="densified"):
        X.toarray()  # the spy is in place

    tracemalloc.start()
    try:
        # tracemalloc sees NumPy's buffers: a 8 MB array shows up in the peak
        probe = np.ones(1_000_000)
        assert tracemalloc.get_traced_memory()[1] >= probe.nbytes
        del probe
        runs = [("cd", "nndsvda", 2)] + [(s, "random", 10) for s in ("cd", "als", "mu")]
        for solver, init, max_iter in runs:
            tracemalloc.reset_peak()
            res = fastnmf.nmf(X, 5, solver=solver, init=init, random_state=0, tol=0,
                              max_iter=max_iter)
            peak = tracemalloc.get_traced_memory()[1]
            assert peak < dense_bytes / 40, (solver, init, peak)
            assert res.W.shape == (n, 5) and res.H.shape == (5, m)
            assert np.isfinite(res.reconstruction_err)
    finally:
        tracemalloc.stop()


def test_a_sparse_call_adds_no_copy_of_x():
    """Read once per iteration by its CSR rows, a sparse X costs a call no copy of itself
    nor of its data (the mean of the random start, the transpose): what the call adds
    besides the W and H it returns stays under a fifth of X's size (issue 17's case:
    float32, 200000 x 20000, 8 M non-zeros, k = 20)."""
    n, m, nnz, k = 200_000, 20_000, 8_000_000, 20
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.random(nnz, dtype=np.float32),
                       (rng.integers(0, n, nnz), rng.integers(0, m, nnz))), shape=(n, m))
    X.sum_duplicates()
    size = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    tracemalloc.start()
    try:
        res = fastnmf.nmf(X, k, init="random", random_state=0, max_iter=1, tol=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.W.nbytes == n * k * 4 and np.isfinite(res.reconstruction_err)
    assert peak - res.W.nbytes - res.H.nbytes < 0.2 * size, peak / size


def with_explicit_zeros(X, seed=1):
    """X (CSR) with about as many explicit zeros stored as it has non-zeros, spread among
    them (as arithmetic on sparse matrices leaves them)."""
    D = X.toarray()
    extra = (np.random.default_rng(seed).random(D.shape) < 0.5) & (D == 0)
    Z = sp.csr_matrix(D + extra)  # the union of both patterns
    Z.data -= (extra * 1.0)[Z.nonzero()]
    assert (Z.data == 0).sum() == extra.sum() > X.nnz // 2
    assert (Z != X).nnz == 0
    return Z


@pytest.mark.parametrize("solver, accelerate", [("cd", False), ("cd", True), ("als", False),
                                                ("mu", False), ("bpp", False)])
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("init", ["nndsvda", "random"])
def test_explicit_zeros_change_nothing(solver, accelerate, fmt, init):
    """Explicit zeros in X never change a result: not the sums over its stored entries
    (‖X‖², the NNDSVD mean) nor what depends on their count (accelerate's sweep cap: max
    |ΔW| was 0.78 on this case)."""
    X = low_rank(40, 30, 6, noise=0.1, density=0.3, seed=0).tocsr()
    Z = with_explicit_zeros(X)
    kw = dict(solver=solver, init=init, random_state=0, tol=0, max_iter=30,
              accelerate=accelerate)
    a, b = fastnmf.nmf(X.asformat(fmt), K, **kw), fastnmf.nmf(Z.asformat(fmt), K, **kw)
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.H, b.H)
    np.testing.assert_array_equal(a.history, b.history)
    assert a.reconstruction_err == b.reconstruction_err
    batch = fastnmf.nmf_batch([X.asformat(fmt), Z.asformat(fmt)], K, n_jobs=2, **kw)
    for r in batch:
        np.testing.assert_array_equal(r.W, a.W)
        np.testing.assert_array_equal(r.history, a.history)
    assert (Z.data == 0).sum() > 0  # the caller's matrix keeps its zeros


def test_explicit_zeros_copy_only_when_present(monkeypatch):
    """X without explicit zeros is not copied to drop them."""
    from fastnmf._validation import check_X

    X = low_rank(40, 30, 6, noise=0.1, density=0.3, seed=0).tocsr()
    assert check_X(X)[0] is X
    Z = with_explicit_zeros(X)
    Y = check_X(Z)[0]
    assert Y is not Z and Y.nnz == X.nnz and (Y != X).nnz == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("k", [5, 8, 13, 32, 37, 70])
@pytest.mark.parametrize("engine", [True, False], ids=["one-pass", "two-pass"])
def test_sparse_equals_dense_across_gather_windows(k, engine, dtype):
    """A sparse row's product is gathered in windows of 8 entries of k, the last one
    overlapping the one before it when 8 does not divide k, and in groups of 32; the
    row-block engine also scatters W_bᵀ X_b so (its last window past a group of 32 adds
    zeros, k = 37 and 70); k < 8 is compiled for each k: each k here takes another path,
    with the engine and without. float32 (its own compiled kernels) is held to the
    float64 dense fit, within float32's rounding (2.8e-5 at most here)."""
    from fastnmf._kernels import _solve

    D = low_rank(150, 100, 6, noise=0.1, density=0.3, seed=1).toarray()
    tol = RTOL if dtype == np.float64 else 1e-3
    with setting(_solve.engine_min_bytes, 0.0 if engine else float("inf")):
        for solver in ("cd", "mu", "als"):  # (accelerate's sweep cap counts X's entries)
            kw = dict(solver=solver, init="random", random_state=0, tol=0, max_iter=10)
            s = fastnmf.nmf(sp.csr_matrix(D.astype(dtype)), k, **kw)
            d = fastnmf.nmf(D, k, **kw)
            assert s.W.dtype == dtype
            assert rel_diff(s.W, d.W) <= tol and rel_diff(s.H, d.H) <= tol
