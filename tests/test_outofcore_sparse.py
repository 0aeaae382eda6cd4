"""A sparse X out of core: a CSR or CSC matrix of a scipy.sparse.save_npz file
(fastnmf._chunked.SparseFile, what ``fastnmf factorize`` reads when the matrix does not fit
in memory) is read a chunk of stored rows at a time, and the factorization is the
in-memory one up to the order of additions."""

import os

import numpy as np
import pytest
import scipy.sparse as sp

import fastnmf
from fastnmf import _chunked, _cli_io
from fastnmf._cli import main
from fastnmf._registry import SOLVERS
from test_outofcore import _close


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Chunks of 16 KiB: every matrix here is read in several chunks (and a last, shorter
    one)."""
    monkeypatch.setattr(_chunked, "CHUNK_BYTES", 1 << 14)


def _sparse(n=700, m=260, density=0.05, fmt="csr", dtype=np.float64, seed=1):
    X = sp.random(n, m, density=density, format="csr", random_state=seed, dtype=dtype)
    X.data += 0.05  # no value near zero
    return X.asformat(fmt)


def _file(tmp_path, X, compressed=True, name="x.npz"):
    path = tmp_path / name
    sp.save_npz(path, X, compressed=compressed)
    return _chunked.SparseFile(path, X.format, X.shape)


@pytest.mark.parametrize("fmt, init", [(fmt, init) for fmt in ("csr", "csc")
                                       for init in ("random", "nndsvda")])
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_file_equals_in_memory(tmp_path, solver, fmt, init):
    X = _sparse(fmt=fmt)
    F = _file(tmp_path, X)
    kw = dict(solver=solver, init=init, random_state=0, max_iter=40, tol=0)
    ref = fastnmf.nmf(X, 6, **kw)
    got = fastnmf.nmf(F, 6, **kw)
    assert got.n_iter == ref.n_iter
    _close(ref.W, got.W, 1e-10)
    _close(ref.H, got.H, 1e-10)
    assert abs(got.reconstruction_err - ref.reconstruction_err) <= 1e-10 * ref.reconstruction_err


@pytest.mark.parametrize("compressed", [True, False])
def test_stored_and_compressed_members_float32_accelerate(tmp_path, compressed):
    """An uncompressed member is read from the file at its offset, a compressed one from
    its copy decompressed once (at its first read by ranges) into a temporary folder,
    removed with the matrix; float32 stays float32."""
    X = _sparse(dtype=np.float32)
    F = _file(tmp_path, X, compressed=compressed)
    assert F.keep is None  # nothing decompressed yet: load() would need no copy
    for accelerate in (False, True):
        kw = dict(init="random", random_state=0, max_iter=30, tol=0, accelerate=accelerate)
        ref = fastnmf.nmf(X, 5, **kw)
        got = fastnmf.nmf(F, 5, **kw)
        assert got.W.dtype == np.float32
        _close(ref.W, got.W, 1e-4)
        _close(ref.H, got.H, 1e-4)
        assert (F.keep is not None) == compressed
        read = F.data._copy.path if compressed else F.data.path
        assert os.path.dirname(read) == (F.keep.name if compressed else str(tmp_path))
    folder = F.keep.name if compressed else None
    np.testing.assert_array_equal(F.load().toarray(), X.toarray())
    del F
    assert folder is None or not os.path.exists(folder)


def test_fixed_H_and_chunks_bounded(tmp_path):
    X = _sparse(n=3000, m=200, density=0.03)
    F = _file(tmp_path, X)
    H = fastnmf.nmf(X, 4, random_state=0).H
    W0 = np.full((X.shape[0], 4), 0.1)
    kw = dict(H=H, W=W0, init="custom", update_H=False, max_iter=20, tol=0)
    ref = fastnmf.nmf(X, 4, **kw)
    got = fastnmf.nmf(F, 4, **kw)
    _close(ref.W, got.W, 1e-10)
    C = _chunked.open_chunked(F, "X", 1, lambda dtype, arg: np.dtype(np.float64),
                              lambda shape, arg: None)
    assert C.count > 4 and C.nnz == X.nnz
    each = _chunked.CHUNK_BYTES // 12
    assert C.cap <= 2 * each  # no chunk holds much more than CHUNK_BYTES of X


def test_unsorted_duplicates_and_zeros_are_canonical(tmp_path):
    """Column indices in any order, repeated, or explicit zeros: the matrix scipy would
    make canonical (duplicates summed), and the same result."""
    X = _sparse(n=400, m=120)
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    order = np.random.default_rng(0).permutation(X.nnz)  # shuffled within each row
    order = order[np.argsort(rows[order], kind="stable")]
    data, indices = X.data[order].copy(), X.indices[order].copy()
    half = data / 2  # the first 50 entries split into two halves; and zeros added
    data = np.concatenate([data, half[:50], np.zeros(30)])
    data[:50] = half[:50]
    indices = np.concatenate([indices, indices[:50], indices[100:130]])
    r = np.concatenate([rows[order], rows[order][:50], rows[order][100:130]])
    by_row = np.argsort(r, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=X.shape[0]))])
    path = tmp_path / "messy.npz"
    np.savez(path, data=data[by_row], indices=indices[by_row], indptr=indptr,
             format=np.array("csr"), shape=np.array(X.shape))
    F = _chunked.SparseFile(path, "csr", X.shape)
    for accelerate in (False, True):
        kw = dict(init="random", random_state=0, max_iter=30, tol=0, accelerate=accelerate)
        ref = fastnmf.nmf(X, 5, **kw)
        got = fastnmf.nmf(F, 5, **kw)
        _close(ref.W, got.W, 1e-10)
        _close(ref.H, got.H, 1e-10)


def _write(path, data, indices, indptr, shape, fmt="csr"):
    np.savez(path, data=np.asarray(data, float), indices=np.asarray(indices, np.int32),
             indptr=np.asarray(indptr, np.int64), format=np.array(fmt),
             shape=np.array(shape))
    return path


def test_malformed_files_are_clear_errors(tmp_path):
    X = _sparse(n=500, m=100)
    good = dict(data=X.data, indices=X.indices, indptr=X.indptr, shape=X.shape)
    bad = X.indices.copy()
    bad[X.indptr[300] + 1] = 100  # a column index past the last column, in row 300
    path = _write(tmp_path / "a.npz", **{**good, "indices": bad})
    with pytest.raises(ValueError, match=r"rows \d+\.\.\d+ of the file .*a\.npz: a column "
                                         r"index outside 0\.\.99"):
        fastnmf.nmf(_chunked.SparseFile(path, "csr", X.shape), 3)
    bad[X.indptr[300] + 1] = -4
    path = _write(tmp_path / "b.npz", **{**good, "indices": bad})
    with pytest.raises(ValueError, match="a column index outside"):
        fastnmf.nmf(_chunked.SparseFile(path, "csr", X.shape), 3)
    ptr = X.indptr.copy()
    ptr[10] = ptr[12]  # not increasing
    path = _write(tmp_path / "c.npz", **{**good, "indptr": ptr})
    with pytest.raises(ValueError, match=r"c\.npz: its indptr.*malformed"):
        _chunked.SparseFile(path, "csr", X.shape)
    path = _write(tmp_path / "d.npz", **{**good, "indptr": X.indptr[:-1]})
    with pytest.raises(ValueError, match=r"indptr holds .* not the 501 integers"):
        _chunked.SparseFile(path, "csr", X.shape)
    data = X.data.copy()
    data[X.indptr[420]] = np.nan
    path = _write(tmp_path / "e.npz", **{**good, "data": data})
    with pytest.raises(ValueError, match=r"NaN or infinity \(in rows \d+\.\.\d+ of the file"):
        fastnmf.nmf(_chunked.SparseFile(path, "csr", X.shape), 3)
    path = tmp_path / "f.npz"
    sp.save_npz(path, X, compressed=False)
    F = _chunked.SparseFile(path, "csr", X.shape)
    os.truncate(path, os.path.getsize(path) - 2000)  # the end of a member cut off
    with pytest.raises(ValueError, match=r"f\.npz"):
        fastnmf.nmf(F, 3)
    path = tmp_path / "g.npz"
    sp.save_npz(path, X)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(ValueError, match=r"g\.npz"):
        _chunked.SparseFile(path, "csr", X.shape)
    with pytest.raises(ValueError, match="beta_loss other than 'frobenius' needs X in memory"):
        fastnmf.nmf(_file(tmp_path, X), 3, solver="mu", beta_loss="kullback-leibler")


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_cli_streams_a_file_larger_than_its_budget(tmp_path, monkeypatch, fmt, capsys):
    """``fastnmf factorize`` reads a save_npz CSR/CSC into memory when it fits in half the
    available memory, else a chunk at a time: the same fit either way."""
    X = _sparse(fmt=fmt)
    path = tmp_path / "data.npz"
    sp.save_npz(path, X)
    monkeypatch.setattr(_cli_io, "memory_budget", lambda: X.data.nbytes * 2)
    assert sp.issparse(_cli_io.read_matrix(path))
    assert main(["factorize", str(path), "-k", "4", "-o", str(tmp_path / "mem.npz")]) == 0
    monkeypatch.setattr(_cli_io, "memory_budget", lambda: X.data.nbytes)
    assert isinstance(_cli_io.read_matrix(path), _chunked.SparseFile)
    def whole(self):
        raise AssertionError("read whole")

    monkeypatch.setattr(_chunked.SparseFile, "load", whole)
    assert main(["factorize", str(path), "-k", "4", "-o", str(tmp_path / "disk.npz")]) == 0
    assert f"sparse (nnz {X.nnz})" in capsys.readouterr().out
    with np.load(tmp_path / "mem.npz") as a, np.load(tmp_path / "disk.npz") as b:
        _close(a["W"], b["W"], 1e-10)
        _close(a["H"], b["H"], 1e-10)
        assert int(a["n_iter"]) == int(b["n_iter"])


def _mtx(path, X, symmetry="general", field="real", lines=None):
    C = X.tocoo()
    rows, cols, vals = C.row + 1, C.col + 1, C.data
    with open(path, "w") as f:
        f.write(f"%%MatrixMarket matrix coordinate {field} {symmetry}\n% a comment\n\n")
        f.write(f"{X.shape[0]} {X.shape[1]} {len(vals) if lines is None else lines}\n")
        for r, c, v in zip(rows, cols, vals):
            f.write(f"{r} {c}\n" if field == "pattern" else f"{r} {c} {float(v)!r}\n")
    return path


@pytest.mark.parametrize("symmetry, field", [("general", "real"), ("symmetric", "real"),
                                             ("general", "pattern"),
                                             ("general", "integer")])
def test_cli_streams_a_large_matrix_market_file(tmp_path, monkeypatch, symmetry, field,
                                                capsys):
    """A coordinate .mtx larger than the budget is written as CSR in a temporary folder
    (two passes over the text, in pieces) and read from there a chunk at a time: the fit
    scipy.io.mmread's matrix gives, and nothing left behind."""
    from fastnmf import _mtx as reader

    monkeypatch.setattr(reader, "PIECE_BYTES", 1 << 12)  # many pieces, lines cut between
    monkeypatch.setattr(reader.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    X = _sparse(n=300, m=300 if symmetry == "symmetric" else 120, density=0.04)
    if field == "integer":
        X.data = np.ceil(X.data * 9)
    if symmetry == "symmetric":
        X = sp.tril(X + X.T, format="csr")  # the file holds the lower triangle
    path = _mtx(tmp_path / "data.mtx", X, symmetry, field)
    import scipy.io

    ref = fastnmf.nmf(scipy.io.mmread(path).tocsr(), 4, init="random", random_state=0)
    monkeypatch.setattr(_cli_io, "memory_budget", lambda: 0)
    got = _cli_io.read_matrix(path)
    assert isinstance(got, _chunked.SparseFile)
    assert len(os.listdir(tmp_path / "tmp")) == 1
    del got
    assert main(["factorize", str(path), "-k", "4", "--init", "random"]) == 0
    with np.load(tmp_path / "data.nmf.npz") as res:
        _close(ref.W, res["W"], 1e-10)
        _close(ref.H, res["H"], 1e-10)
    assert os.listdir(tmp_path / "tmp") == []


def test_bad_matrix_market_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_cli_io, "memory_budget", lambda: 0)
    X = _sparse(n=50, m=20)
    cases = {
        "short": (dict(lines=X.nnz + 3), r"holds \d+ entries, not the \d+ its size line"),
        "skew": (dict(symmetry="skew-symmetric"), "negative or complex entries"),
        "complex": (dict(field="complex"), "field is 'complex'"),
    }
    for name, (kw, message) in cases.items():
        path = _mtx(tmp_path / f"{name}.mtx", X, **kw)
        with pytest.raises(_cli_io.CLIError, match=message):
            _cli_io.read_matrix(path)
    path = _mtx(tmp_path / "out.mtx", X)
    text = path.read_text().replace("\n1 ", "\n51 ", 1)  # row 51 of 50
    path.write_text(text)
    with pytest.raises(_cli_io.CLIError, match=r"indices \(51, \d+\), outside the 50 x 20"):
        _cli_io.read_matrix(path)
    path.write_text(text.replace("\n51 ", "\n1.5 ", 1))
    with pytest.raises(_cli_io.CLIError, match="outside"):
        _cli_io.read_matrix(path)
    path.write_text(text.replace("\n51 ", "\nx ", 1))
    with pytest.raises(_cli_io.CLIError, match="out.mtx"):
        _cli_io.read_matrix(path)
    assert main(["factorize", str(path), "-k", "2"]) == 2
    assert "out.mtx" in capsys.readouterr().err


def test_int64_indices_and_integer_data(tmp_path):
    """Indices stored as int64 and integer data are read as int32 and float64."""
    X = _sparse(n=300, m=90)
    path = tmp_path / "wide.npz"
    np.savez(path, data=np.ceil(X.data * 5).astype(np.int64),
             indices=X.indices.astype(np.int64), indptr=X.indptr.astype(np.int64),
             format=np.array("csr"), shape=np.array(X.shape))
    F = _chunked.SparseFile(path, "csr", X.shape)
    Y = X.copy()
    Y.data = np.ceil(X.data * 5)
    kw = dict(init="random", random_state=0, max_iter=20, tol=0)
    ref, got = fastnmf.nmf(Y, 4, **kw), fastnmf.nmf(F, 4, **kw)
    assert got.W.dtype == np.float64
    _close(ref.W, got.W, 1e-10)
    bad = X.indices.astype(np.int64)
    bad[7] = 2**40  # past int32: refused before any cast
    np.savez(path, data=X.data, indices=bad, indptr=X.indptr.astype(np.int64),
             format=np.array("csr"), shape=np.array(X.shape))
    with pytest.raises(ValueError, match="a column index outside 0..89"):
        fastnmf.nmf(_chunked.SparseFile(path, "csr", X.shape), 3)
