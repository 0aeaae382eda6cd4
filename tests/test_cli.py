"""The ``fastnmf`` command line: factorize (every format, outputs, every error), demo,
bench, progress, and the real entry points (``python -m fastnmf``, the console script)."""

import io
import os
import shutil
import signal
import subprocess
import textwrap
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

import fastnmf
import fastnmf._api
from fastnmf import _cli, _cli_io, _demo, _progress
from fastnmf._cli import main
from fastnmf._datasets import low_rank

N, M, K = 20, 15, 3


@pytest.fixture
def X():
    return low_rank(N, M, K, seed=0)


def _files(folder):
    """Every file under ``folder`` (relative names), to check nothing was left behind."""
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, fs in os.walk(folder) for f in fs)


def _one_error_line(capsys):
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastnmf: error: "), err
    assert err.endswith("\n") and err.count("\n") == 1
    assert "Traceback" not in err
    return lines[0], out


def _check_output(path, X, k=K, solver="cd", max_rel=0.2):
    with np.load(path, allow_pickle=False) as res:
        W, H = res["W"], res["H"]
        n, m = X.shape
        assert W.shape == (n, k) and H.shape == (k, m)
        assert W.min() >= 0 and H.min() >= 0
        Xd = X.toarray() if sp.issparse(X) else np.asarray(X)
        err = float(res["reconstruction_err"])
        np.testing.assert_allclose(err, np.linalg.norm(Xd - W @ H), rtol=1e-6)
        assert err < max_rel * np.linalg.norm(Xd)  # a real factorization of the data
        assert res["n_iter"].ndim == 0 and int(res["n_iter"]) >= 1
        assert res["converged"].dtype == bool
        assert str(res["solver"]) == solver
        assert res["history"].ndim == 1
        return {name: res[name] for name in res.files}


# --- every input format ----------------------------------------------------------------------

def _write_npy(folder, X):
    path = folder / "data.npy"
    np.save(path, X)
    return path


def _write_npz_X(folder, X):
    path = folder / "data.npz"
    np.savez(path, labels=np.arange(N), X=X, other=np.ones((2, 2)))
    return path


def _write_npz_single(folder, X):
    path = folder / "data.npz"
    np.savez_compressed(path, counts=X)
    return path


def _write_csv(folder, X):
    path = folder / "data.csv"
    np.savetxt(path, X, delimiter=",", fmt="%.17g")
    return path


def _write_csv_header(folder, X):
    path = folder / "data.csv"
    header = ",".join(f"gene{j}" for j in range(X.shape[1]))
    np.savetxt(path, X, delimiter=",", fmt="%.17g", header=header, comments="")
    return path


def _write_tsv(folder, X):
    path = folder / "data.tsv"
    header = "\t".join(f"s{j}" for j in range(X.shape[1]))
    np.savetxt(path, X, delimiter="\t", fmt="%.17g", header=header, comments="")
    return path


def _write_mtx_sparse(folder, X):
    path = folder / "data.mtx"
    scipy.io.mmwrite(path, sp.coo_matrix(np.where(X > np.median(X), X, 0.0)))
    return path


def _write_mtx_dense(folder, X):
    path = folder / "data.mtx"
    scipy.io.mmwrite(path, X)
    return path


WRITERS = {
    "npy": _write_npy,
    "npz-X": _write_npz_X,
    "npz-single": _write_npz_single,
    "csv": _write_csv,
    "csv-header": _write_csv_header,
    "tsv-header": _write_tsv,
    "mtx-sparse": _write_mtx_sparse,
    "mtx-dense": _write_mtx_dense,
}


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_factorize_every_format(fmt, X, tmp_path, capsys):
    path = WRITERS[fmt](tmp_path, X)
    assert main(["factorize", str(path), "-k", str(K)]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # no progress: stderr is not a terminal
    expected = tmp_path / "data.nmf.npz"
    assert _files(tmp_path) == sorted([path.name, expected.name])

    data = _cli_io.read_matrix(path)
    if fmt == "mtx-sparse":
        assert sp.issparse(data)  # as read (COO): check_X converts it once its shape is checked
    else:
        assert isinstance(data, np.ndarray)
        np.testing.assert_allclose(data, X, rtol=1e-15)
    # The thresholded sparse matrix is no longer of rank 3: a looser bound for it.
    saved = _check_output(expected, data, max_rel=0.5 if fmt == "mtx-sparse" else 0.2)

    # The same factorization as fastnmf.nmf with the CLI's defaults.
    ref = fastnmf.nmf(data, K, random_state=0)
    np.testing.assert_array_equal(saved["W"], ref.W)
    np.testing.assert_array_equal(saved["H"], ref.H)
    assert int(saved["n_iter"]) == ref.n_iter

    lines = out.splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert str(path) in line and str(expected) in line
    assert f"{N}x{M}" in line and f"k={K}" in line and "solver cd" in line
    assert f"{ref.n_iter} iterations" in line
    assert f"error {ref.reconstruction_err:.6g}" in line
    assert ("sparse" in line) == (fmt == "mtx-sparse")


def test_csv_header_is_skipped_and_numbers_kept(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,c\n1,2,3\n\n# a comment\n 4 , 5.5e0 ,6\n")
    np.testing.assert_array_equal(_cli_io.read_matrix(path), [[1, 2, 3], [4, 5.5, 6]])
    path.write_text("1,2,3\n4,5,6\n")  # no header: the first line is data
    np.testing.assert_array_equal(_cli_io.read_matrix(path), [[1, 2, 3], [4, 5, 6]])
    path.write_text("\ufeffx,y\r\n1,2\r\n")  # Excel: BOM and CRLF
    np.testing.assert_array_equal(_cli_io.read_matrix(path), [[1, 2]])
    path.write_text("1\n2\n3\n")  # one column
    assert _cli_io.read_matrix(path).shape == (3, 1)


def test_csv_lines_end_at_newlines_only(tmp_path):
    """Lines end at \\n, \\r\\n or \\r, as numpy.loadtxt reads them; another character
    that Python's str.splitlines breaks at (a vertical tab, a form feed, U+2028) inside a
    line is a field that is not a number, never a row more."""
    path = tmp_path / "t.csv"
    path.write_bytes(b"1,2\r3,4\r")  # old Mac line ends
    np.testing.assert_array_equal(_cli_io.read_matrix(path), [[1, 2], [3, 4]])
    # float() takes digit-group underscores and other scripts' digits; loadtxt does not
    for field in ("1_0", "\u0661", "\uff13"):
        path.write_text(f"x,y\n# c\n\n1,2\n3,{field}\n", encoding="utf-8")
        with pytest.raises(_cli_io.CLIError, match=r"line 5, column 2: .* is not a number"):
            _cli_io.read_matrix(path)
    for sep in ("\v", "\f", "\x1c", "\x85", "\u2028"):
        path.write_text(f"1,2{sep}3,4\n5,6,7\n", encoding="utf-8")
        with pytest.raises(_cli_io.CLIError, match=r"line 1, column 2: .* is not a number"):
            _cli_io.read_matrix(path)


def test_csv_header_only_when_no_field_is_a_number(tmp_path):
    """A first row with a number among its fields is data: its bad field is an error, not
    a header dropped in silence."""
    path = tmp_path / "t.csv"
    path.write_text("id,2,3\n1,2,3\n")
    with pytest.raises(_cli_io.CLIError, match=r"line 1, column 1: 'id' is not a number"):
        _cli_io.read_matrix(path)
    path.write_text("NA,n/a,x\n1,2,3\n")  # no number at all: a header
    np.testing.assert_array_equal(_cli_io.read_matrix(path), [[1, 2, 3]])


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "bsr", "dia", "dense"])
def test_save_npz_files_read(fmt, X, tmp_path, capsys):
    """A scipy.sparse.save_npz file is read as that sparse matrix (any format), and its
    fit equals the array's."""
    Xs = sp.random(N, M, density=0.5, format="csr", random_state=3, dtype=np.float64)
    path = tmp_path / "data.npz"
    if fmt == "dense":
        np.savez(path, X=Xs.toarray())
    else:
        sp.save_npz(path, Xs.asformat(fmt))
    got = _cli_io.read_matrix(path)
    assert sp.issparse(got) == (fmt != "dense")
    np.testing.assert_array_equal(got.toarray() if sp.issparse(got) else got, Xs.toarray())
    assert main(["factorize", str(path), "-k", "2", "--init", "random"]) == 0
    ref = fastnmf.nmf(got, 2, init="random", random_state=0)  # as stored: dense or sparse
    with np.load(tmp_path / "data.nmf.npz") as res:
        np.testing.assert_array_equal(res["W"], ref.W)
        np.testing.assert_array_equal(res["H"], ref.H)


@pytest.mark.parametrize("loss, beta", [("kullback-leibler", "kullback-leibler"),
                                        ("itakura-saito", "itakura-saito"), ("0.5", 0.5)])
def test_beta_loss(loss, beta, X, tmp_path, capsys):
    path = _write_npy(tmp_path, X + 0.1)  # no zeros: β <= 0 allows none
    assert main(["factorize", str(path), "-k", "2", "--solver", "mu", "--beta-loss",
                 loss]) == 0
    ref = fastnmf.nmf(X + 0.1, 2, solver="mu", beta_loss=beta, random_state=0)
    with np.load(tmp_path / "data.nmf.npz") as res:
        np.testing.assert_array_equal(res["W"], ref.W)
        np.testing.assert_array_equal(res["H"], ref.H)
        assert float(res["reconstruction_err"]) == ref.reconstruction_err


def test_npy_is_read_out_of_core(tmp_path, monkeypatch):
    """An .npy input is mapped, and fastnmf.nmf reads it a chunk at a time (_chunked): the
    CLI's result is that call's, and the in-memory one's up to rounding."""
    from fastnmf import _chunked

    monkeypatch.setattr(_chunked, "CHUNK_BYTES", 1 << 14)  # several chunks
    X = low_rank(300, 120, 4, seed=2)
    path = _write_npy(tmp_path, X)
    mapped = _cli_io.read_matrix(path)
    assert isinstance(mapped, np.memmap)
    assert main(["factorize", str(path), "-k", "4", "--max-iter", "30", "--tol", "0"]) == 0
    streamed = fastnmf.nmf(mapped, 4, random_state=0, max_iter=30, tol=0)
    ref = fastnmf.nmf(X, 4, random_state=0, max_iter=30, tol=0)
    with np.load(tmp_path / "data.nmf.npz") as res:
        np.testing.assert_array_equal(res["W"], streamed.W)
        np.testing.assert_allclose(res["W"], ref.W, rtol=0, atol=1e-10 * np.abs(ref.W).max())
        np.testing.assert_allclose(res["H"], ref.H, rtol=0, atol=1e-10 * np.abs(ref.H).max())


def test_k_above_min_side_runs_and_says_so(X, tmp_path, capsys):
    path = _write_npy(tmp_path, X)
    k = min(X.shape) + 3
    assert main(["factorize", str(path), "-k", str(k), "--max-iter", "5"]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastnmf: note: ")
    assert f"-k {k}" in lines[0] and f"min(n, m) = {min(X.shape)}" in lines[0]
    with np.load(tmp_path / "data.nmf.npz") as res:
        assert res["W"].shape == (X.shape[0], k)


@pytest.mark.parametrize("error, status, text", [
    (FloatingPointError("the 'cd' solver diverged"), 1, "the 'cd' solver diverged"),
    (np.linalg.LinAlgError("SVD did not converge"), 1, "SVD did not converge"),
    (MemoryError(), 1, "out of memory"),
    (ValueError("n_components must be <= 3; got\n7."), 2,
     "-k/--n-components must be <= 3; got 7."),  # the argument as the command line names it
], ids=["FloatingPointError", "LinAlgError", "MemoryError", "ValueError"])
def test_an_error_of_the_api_is_one_line(error, status, text, X, tmp_path, capsys,
                                         monkeypatch):
    """A failure during the work (divergence, memory, an SVD): status 1; an argument the
    API refuses: status 2. One line either way, no output file."""
    path = _write_npy(tmp_path, X)

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(fastnmf._api, "nmf", fail)
    assert main(["factorize", str(path), "-k", "2"]) == status
    line, out = _one_error_line(capsys)
    assert line.startswith("fastnmf: error: ") and line.endswith(text) and out == ""
    assert _files(tmp_path) == ["data.npy"]


def test_batch_progress_in_a_log_is_a_handful_of_lines(tmp_path, monkeypatch):
    """nmf_batch(progress=True) with stderr not a terminal: a line per quarter of the items
    and none redrawn; on a terminal, one line redrawn in place."""
    import io

    Xs = [low_rank(30, 20, 3, seed=s) for s in range(40)]

    class Log(io.StringIO):
        def isatty(self):
            return False

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(_progress, "_BAR_INTERVAL", 0.001)  # redraw as often as it can
    for stream in (Log(), Tty()):
        monkeypatch.setattr(sys, "stderr", stream)
        fastnmf.nmf_batch(Xs, 3, n_jobs=1, max_iter=300, tol=0, progress=True)
        text = stream.getvalue()
        assert text.endswith("\n") and "40/40" in text.splitlines()[-1]
        if isinstance(stream, Log):
            assert "\r" not in text and 1 <= len(text.splitlines()) <= 5
        else:
            assert text.count("\n") == 1 and text.startswith("\r")


def test_integer_npy_and_mtx_are_converted(tmp_path, capsys):
    Xi = (np.arange(N * M).reshape(N, M) % 7).astype(np.int32)
    path = tmp_path / "counts.npy"
    np.save(path, Xi)
    assert main(["factorize", str(path), "-k", "2"]) == 0
    _check_output(tmp_path / "counts.nmf.npz", Xi.astype(np.float64), k=2, max_rel=0.6)
    ref = fastnmf.nmf(Xi.astype(np.float64), 2, random_state=0)
    with np.load(tmp_path / "counts.nmf.npz") as saved:
        np.testing.assert_array_equal(saved["W"], ref.W)


def test_default_output_is_beside_the_input(X, tmp_path, monkeypatch, capsys):
    sub = tmp_path / "in"
    sub.mkdir()
    _write_csv(sub, X)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["factorize", os.path.join("..", "in", "data.csv"), "-k", "3"]) == 0
    assert _files(tmp_path) == ["in/data.csv", "in/data.nmf.npz"]
    assert _cli_io.default_output("a/b/data.csv").as_posix() == "a/b/data.nmf.npz"
    assert _cli_io.default_output("x.tar.npz").as_posix() == "x.tar.nmf.npz"


def test_output_option_and_overwrite(X, tmp_path, capsys):
    path = _write_npy(tmp_path, X)
    out = tmp_path / "results" / "fit.npz"
    out.parent.mkdir()
    out.write_bytes(b"old contents")
    assert main(["factorize", str(path), "-k", "3", "-o", str(out)]) == 0
    stdout, _ = capsys.readouterr()
    assert stdout.rstrip().endswith(str(out))
    _check_output(out, X)
    assert _files(tmp_path) == ["data.npy", "results/fit.npz"]
    # --output, long form, upper-case extension
    out2 = tmp_path / "fit.NPZ"
    assert main(["factorize", str(path), "--n-components", "3", "--output", str(out2)]) == 0
    _check_output(out2, X)


@pytest.mark.parametrize("name", ["fit.txt", "fit.result", "fit", "fit.npy", "fit.csv.gz"])
def test_output_format_from_its_extension_or_refused(name, X, tmp_path, capsys):
    """An extension other than .npz, .csv or .tsv is refused before any work, with the
    list of those, and nothing is created."""
    path = _write_npy(tmp_path, X)
    assert main(["factorize", str(path), "-k", "3", "-o", str(tmp_path / name)]) == 2
    line, _ = _one_error_line(capsys)
    assert name in line and ".npz" in line and ".csv" in line and ".tsv" in line
    assert _files(tmp_path) == ["data.npy"]


@pytest.mark.parametrize("ext, sep", [(".csv", ","), (".tsv", "\t"), (".CSV", ",")])
def test_output_as_text_holds_w_and_h_exactly(ext, sep, X, tmp_path, capsys):
    """-o fit.csv writes fit.W.csv and fit.H.csv (not fit.csv), every value exact: they
    read back as the W and H of the .npz output, bit for bit."""
    path = _write_npy(tmp_path, X)
    assert main(["factorize", str(path), "-k", "3", "-o", str(tmp_path / "ref.npz")]) == 0
    capsys.readouterr()
    assert main(["factorize", str(path), "-k", "3", "-o", str(tmp_path / f"fit{ext}")]) == 0
    out, err = capsys.readouterr()
    W_path, H_path = tmp_path / f"fit.W{ext}", tmp_path / f"fit.H{ext}"
    assert err == "" and out.rstrip().endswith(f"-> {W_path}, {H_path}")
    assert _files(tmp_path) == sorted(["data.npy", "ref.npz", W_path.name, H_path.name])
    first = W_path.read_text().splitlines()[0]
    assert len(first.split(sep)) == 3  # no header
    with np.load(tmp_path / "ref.npz") as ref:
        for got, name in ((_cli_io.read_matrix(W_path), "W"), (_cli_io.read_matrix(H_path), "H")):
            assert got.dtype == np.float64 and got.shape == ref[name].shape
            np.testing.assert_array_equal(got, ref[name])


def test_output_as_text_never_replaces_a_fifo(X, tmp_path, capsys):
    """Either file of a text output that is not a regular file: refused, nothing written."""
    path = _write_npy(tmp_path, X)
    fifo = tmp_path / "fit.H.csv"
    os.mkfifo(fifo)
    assert main(["factorize", str(path), "-k", "3", "-o", str(tmp_path / "fit.csv")]) == 2
    line, _ = _one_error_line(capsys)
    assert str(fifo) in line and "not a regular file" in line
    import stat
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert _files(tmp_path) == ["data.npy", "fit.H.csv"]
    # The input as one of the outputs: refused.
    W = tmp_path / "fit.W.csv"
    W.write_text("1,2\n3,4\n")
    assert main(["factorize", str(W), "-k", "1", "-o", str(tmp_path / "fit.csv")]) == 2
    line, _ = _one_error_line(capsys)
    assert "is the input file" in line and W.read_text() == "1,2\n3,4\n"


def _special_targets(tmp_path):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    yield "fifo", fifo
    folder = tmp_path / "folder.npz"
    folder.mkdir()
    yield "directory", folder
    sock_path = tmp_path / "sock.npz"
    import socket
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(sock_path))
        yield "socket", sock_path
    finally:
        sock.close()
    link = tmp_path / "link.npz"
    link.symlink_to(fifo)
    yield "symlink to a fifo", link


def test_output_never_replaces_a_device_fifo_socket_or_directory(X, tmp_path, capsys):
    """-o names something that exists and is not a regular file: exit 2 with one line,
    and it is left as it was (the rename would have replaced it)."""
    path = _write_npy(tmp_path, X)
    for kind, target in _special_targets(tmp_path):
        mode = os.lstat(target).st_mode
        assert main(["factorize", str(path), "-k", "3", "-o", str(target)]) == 2, kind
        line, _ = _one_error_line(capsys)
        assert str(target) in line, kind
        assert os.lstat(target).st_mode == mode, kind
    leftovers = [f for f in _files(tmp_path) if f.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.skipif(not os.path.exists("/dev/full") or not os.path.exists("/dev/null"),
                    reason="no /dev/full or /dev/null on this system")
@pytest.mark.parametrize("device", ["/dev/full", "/dev/null"])
def test_output_refuses_a_device(device, X, tmp_path, capsys):
    import stat

    path = _write_npy(tmp_path, X)
    before = os.stat(device)
    assert main(["factorize", str(path), "-k", "3", "-o", device]) == 2
    line, _ = _one_error_line(capsys)
    assert device in line and "not a regular file" in line
    after = os.stat(device)
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def test_output_that_becomes_a_fifo_during_the_work_is_not_replaced(X, tmp_path, capsys,
                                                                   monkeypatch):
    """The target is checked again just before the rename."""
    path = _write_npy(tmp_path, X)
    target = tmp_path / "out.npz"
    real = fastnmf._api.nmf

    def nmf(*args, **kwargs):
        os.mkfifo(target)
        return real(*args, **kwargs)

    monkeypatch.setattr(fastnmf._api, "nmf", nmf)
    assert main(["factorize", str(path), "-k", "3", "-o", str(target)]) == 2
    line, _ = _one_error_line(capsys)
    assert "not a regular file" in line
    import stat
    assert stat.S_ISFIFO(os.lstat(target).st_mode)
    assert sorted(_files(tmp_path)) == ["data.npy", "out.npz"]


@pytest.mark.parametrize("arg", [".", "/", "", "folder", "folder.csv", "missing.npy"])
def test_input_directory_empty_or_missing_exits_2_with_one_line(arg, tmp_path, capsys,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.csv").mkdir()
    assert main(["factorize", arg, "-k", "2"]) == 2
    line, _ = _one_error_line(capsys)
    if arg in ("", "missing.npy"):
        assert ("empty" if arg == "" else "no such file") in line
    else:
        assert "is a directory" in line
    assert sorted(os.listdir(tmp_path)) == ["folder", "folder.csv"]


def test_input_under_a_file_exits_2_with_one_line(X, tmp_path, capsys):
    """A path that cannot be opened (here: under a file, so even root cannot)."""
    path = _write_npy(tmp_path, X) / "inside.npy"
    assert main(["factorize", str(path), "-k", "2"]) == 2
    line, _ = _one_error_line(capsys)
    assert str(path) in line and "cannot read" in line and "Not a directory" in line


@pytest.mark.parametrize("name", ["data.npy", "data.csv", "data.npz"])
def test_input_refused_at_open_exits_2_with_one_line(name, X, tmp_path, capsys, monkeypatch):
    """Permission denied when the file is opened (simulated: file modes do not stop root;
    the real case is the test below)."""
    import builtins
    import io as io_module

    path = tmp_path / name
    path.write_bytes(b"1,2\n3,4\n")

    def guard(real):
        def opener(file, *args, **kwargs):
            if str(file) == str(path):
                raise PermissionError(13, "Permission denied", str(file))
            return real(file, *args, **kwargs)
        return opener

    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    monkeypatch.setattr(io_module, "open", guard(io_module.open))  # pathlib's read_bytes
    assert main(["factorize", str(path), "-k", "1"]) == 2
    line, _ = _one_error_line(capsys)
    assert line == f"fastnmf: error: {path}: cannot read: Permission denied"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_unreadable_input_exits_2_with_one_line(X, tmp_path, capsys):
    path = _write_npy(tmp_path, X)
    path.chmod(0)
    try:
        assert main(["factorize", str(path), "-k", "2"]) == 2
    finally:
        path.chmod(0o644)
    line, _ = _one_error_line(capsys)
    assert str(path) in line and "ermission" in line


def test_output_file_mode_follows_umask(X, tmp_path, capsys):
    path = _write_npy(tmp_path, X)
    old = os.umask(0o022)
    try:
        assert main(["factorize", str(path), "-k", "3"]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "data.nmf.npz").stat().st_mode & 0o777 == 0o644


def test_accelerate_and_threads_are_passed_on(X, tmp_path):
    path = _write_npy(tmp_path, X)
    args = ["factorize", str(path), "-k", "4", "--max-iter", "20", "--tol", "0",
            "--accelerate", "--threads", "1"]
    assert main(args) == 0
    saved = np.load(tmp_path / "data.nmf.npz")
    ref = fastnmf.nmf(X, 4, max_iter=20, tol=0, random_state=0, accelerate=True)
    np.testing.assert_array_equal(saved["W"], ref.W)
    plain = fastnmf.nmf(X, 4, max_iter=20, tol=0, random_state=0)
    assert not np.array_equal(saved["W"], plain.W)


def test_accelerate_with_another_solver_is_refused(X, tmp_path, capsys):
    path = _write_npy(tmp_path, X)
    assert main(["factorize", str(path), "-k", "4", "--solver", "mu", "--accelerate"]) == 2
    assert "accelerate applies to solver='cd' only" in capsys.readouterr().err


@pytest.mark.parametrize("solver", ["cd", "mu", "als", "bpp"])
def test_options_are_passed_on(solver, X, tmp_path, capsys):
    path = _write_npy(tmp_path, X)
    args = ["factorize", str(path), "-k", "4", "--solver", solver, "--max-iter", "30",
            "--tol", "0", "--init", "random", "--random-state", "7"]
    assert main(args) == 0
    saved = _check_output(tmp_path / "data.nmf.npz", X, k=4, solver=solver)
    assert int(saved["n_iter"]) == 30 and not saved["converged"]
    ref = fastnmf.nmf(X, 4, solver=solver, max_iter=30, tol=0, init="random",
                      random_state=7)
    np.testing.assert_array_equal(saved["W"], ref.W)
    out, _ = capsys.readouterr()
    assert f"solver {solver}" in out and "30 iterations (max_iter reached)" in out


def test_k_larger_than_the_matrix_uses_random_init(X, tmp_path, capsys):
    path = _write_npy(tmp_path, X[:5, :4])
    assert main(["factorize", str(path), "-k", "6"]) == 0
    _check_output(tmp_path / "data.nmf.npz", X[:5, :4], k=6)


# --- every error -----------------------------------------------------------------------------

def _npy(folder, X, name="data.npy"):
    np.save(folder / name, X)
    return folder / name


def _factorize_lying(folder, kind, size):
    """The argv that factorizes a file of a few bytes whose header claims a matrix of
    ``size`` (a Matrix Market "coordinate" or "array" size line with one entry after it,
    or an .npy shape with no data)."""
    if kind == "npy":
        path = folder / "big.npy"
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f8", "fortran_order": False, "shape": size})
    else:
        entry = "1 1 1.0" if kind == "coordinate" else "1.0"
        path = _text(folder, "big.mtx",
                     f"%%MatrixMarket matrix {kind} real general\n{size}\n{entry}\n")
    return ["factorize", str(path), "-k", "2"]


def _text(folder, name, text):
    (folder / name).write_text(text)
    return folder / name


# (id, make(tmp_path, X) -> argv, substrings the one error line must contain)
ERRORS = [
    ("missing-file", lambda d, X: ["factorize", str(d / "nope.csv"), "-k", "2"],
     ["nope.csv", "no such file"]),
    ("unknown-extension", lambda d, X: ["factorize", str(_text(d, "m.txt", "1,2\n")), "-k", "1"],
     ["m.txt", "'.txt'", ".csv", ".mtx", ".npy"]),
    ("no-extension", lambda d, X: ["factorize", str(_text(d, "matrix", "1,2\n")), "-k", "1"],
     ["matrix", "no extension"]),
    ("directory", lambda d, X: (os.mkdir(d / "dir.csv"), ["factorize", str(d / "dir.csv"),
                                                          "-k", "1"])[1],
     ["dir.csv", "directory"]),
    ("csv-not-numeric", lambda d, X: ["factorize", str(_text(d, "d.csv", "a,b\n1,2\n3,x\n")),
                                      "-k", "1"],
     ["d.csv", "line 3, column 2", "'x'", "not a number"]),
    ("csv-first-row-bad-field", lambda d, X: ["factorize", str(_text(d, "d.csv",
                                                                    "1,2,3x\n4,5,6\n")),
                                              "-k", "1"],
     ["d.csv", "line 1, column 3", "'3x'", "not a number"]),
    ("csv-first-row-NA", lambda d, X: ["factorize", str(_text(d, "d.csv", "1,NA,3\n4,5,6\n")),
                                       "-k", "1"],
     ["d.csv", "line 1, column 2", "'NA'", "not a number"]),
    ("csv-empty-field", lambda d, X: ["factorize", str(_text(d, "d.csv", "1,2,3\n4,,6\n")),
                                      "-k", "1"],
     ["d.csv", "line 2, column 2", "empty field"]),
    ("beta-loss-needs-mu", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2",
                                         "--beta-loss", "kullback-leibler"],
     ["--beta-loss", "solver='mu'"]),
    ("beta-loss-unknown", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2",
                                        "--beta-loss", "hellinger"],
     ["--beta-loss", "'hellinger'", "kullback-leibler"]),
    ("csv-ragged", lambda d, X: ["factorize", str(_text(d, "d.csv", "1,2,3\n4,5\n")), "-k", "1"],
     ["d.csv", "line 2 has 2 values", "line 1 has 3"]),
    ("csv-empty", lambda d, X: ["factorize", str(_text(d, "d.csv", "")), "-k", "1"],
     ["d.csv", "no numbers"]),
    ("csv-header-only", lambda d, X: ["factorize", str(_text(d, "d.csv", "a,b\n")), "-k", "1"],
     ["d.csv", "no numbers"]),
    ("csv-not-text", lambda d, X: (
        (d / "d.csv").write_bytes(b"\xff\xfe\x00\x81binary"), ["factorize", str(d / "d.csv"),
                                                               "-k", "1"])[1],
     ["d.csv", "not a text file"]),
    ("tsv-with-commas", lambda d, X: ["factorize", str(_text(d, "d.tsv", "1\t2\n3,4\t5\n")),
                                      "-k", "1"],
     ["d.tsv", "line 2, column 1", "not a number"]),
    ("negative", lambda d, X: ["factorize", str(_npy(d, X - 1.0)), "-k", "2"],
     ["data.npy", "non-negative", "minimum"]),
    ("nan", lambda d, X: ["factorize", str(_text(d, "d.csv", "1,2\nnan,4\n")), "-k", "1"],
     ["d.csv", "NaN"]),
    ("inf", lambda d, X: ["factorize", str(_text(d, "d.csv", "1,inf\n3,4\n")), "-k", "1"],
     ["d.csv", "infinity"]),
    ("one-dimensional", lambda d, X: ["factorize", str(_npy(d, np.ones(5))), "-k", "1"],
     ["data.npy", "2-D", "(5,)"]),
    ("three-dimensional", lambda d, X: ["factorize", str(_npy(d, np.ones((2, 3, 4)))), "-k", "1"],
     ["data.npy", "2-D"]),
    ("empty-array", lambda d, X: ["factorize", str(_npy(d, np.ones((0, 3)))), "-k", "1"],
     ["data.npy", "empty"]),
    ("complex", lambda d, X: ["factorize", str(_npy(d, X + 1j)), "-k", "1"],
     ["data.npy", "real numbers", "complex"]),
    ("object-npy", lambda d, X: ["factorize", str(_npy(d, np.array([[1, None]], dtype=object))),
                                 "-k", "1"],
     ["data.npy", "cannot read"]),
    ("garbage-npy", lambda d, X: ["factorize", str(_text(d, "g.npy", "hello\n")), "-k", "1"],
     ["g.npy", "not a NumPy .npy file"]),
    ("garbage-npz", lambda d, X: ["factorize", str(_text(d, "g.npz", "hello\n")), "-k", "1"],
     ["g.npz", "not a NumPy .npz file"]),
    ("npz-several-no-X", lambda d, X: (
        np.savez(d / "s.npz", a=X, b=X), ["factorize", str(d / "s.npz"), "-k", "1"])[1],
     ["s.npz", "2 arrays", "a, b", "none named 'X'"]),
    ("npz-empty", lambda d, X: (np.savez(d / "e.npz"), ["factorize", str(d / "e.npz"),
                                                        "-k", "1"])[1],
     ["e.npz", "no array"]),
    ("mtx-garbage", lambda d, X: ["factorize", str(_text(d, "g.mtx", "hello\n")), "-k", "1"],
     ["g.mtx", "cannot read"]),
    ("mtx-negative", lambda d, X: (
        scipy.io.mmwrite(d / "n.mtx", sp.coo_matrix(-np.eye(3))),
        ["factorize", str(d / "n.mtx"), "-k", "1"])[1],
     ["n.mtx", "non-negative"]),
    # A few bytes whose size line claims a matrix no memory holds: refused before anything
    # is allocated for it (each of these took the memory of the claimed shape).
    ("mtx-rows-beyond-int", lambda d, X: _factorize_lying(d, "coordinate", "3000000000 3 1"),
     ["big.mtx", "2**31", "(3000000000, 3)"]),
    ("mtx-dense-rows-beyond-int", lambda d, X: _factorize_lying(d, "array", "3000000000 3"),
     ["big.mtx", "2**31", "(3000000000, 3)"]),
    ("mtx-claims-more-entries", lambda d, X: _factorize_lying(d, "coordinate",
                                                              "2000000000 3 2000000000"),
     ["big.mtx", "claims 2000000000 entries", "truncated"]),
    ("mtx-dense-claims-more-entries", lambda d, X: _factorize_lying(d, "array", "2000000000 3"),
     ["big.mtx", "claims 6000000000 entries", "truncated"]),
    ("npy-rows-beyond-int", lambda d, X: _factorize_lying(d, "npy", (3000000000, 2)),
     ["big.npy", "2**31", "(3000000000, 2)"]),
    ("npy-size-beyond-int64", lambda d, X: _factorize_lying(d, "npy", (2**62, 8)),
     ["big.npy", "2**31"]),
    # arguments the API refuses: named as the command line spells them, before X is read
    # or a note is printed about it
    ("k-beyond-int", lambda d, X: ["factorize", str(_npy(d, X)), "-k", str(2**40)],
     ["-k/--n-components", "[1, 2147483647]"]),
    ("max-iter-beyond-int", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2",
                                          "--max-iter", str(2**31)],
     ["--max-iter", "[1, 2147483646]"]),
    ("threads-too-many", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2",
                                       "--threads", str(2**40)],
     ["--threads", str(2**40), "an int in [1, "]),
    ("threads-zero", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2", "--threads", "0"],
     ["--threads", "an int in [1, ", "'0'"]),
    ("accelerate-needs-cd", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2",
                                          "--solver", "mu", "--accelerate"],
     ["--accelerate", "solver='cd'"]),
    ("k-zero", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "0"],
     ["-k/--n-components", ">= 1", "'0'"]),
    ("k-negative", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "-3"],
     ["-k/--n-components"]),
    ("k-not-int", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2.5"],
     ["-k/--n-components", "'2.5'"]),
    ("k-missing", lambda d, X: ["factorize", str(_npy(d, X))],
     ["required", "-k/--n-components"]),
    ("k-too-large-for-nndsvd", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "99",
                                             "--init", "nndsvda"],
     ["data.npy", "-k/--n-components", "min(n, m) = 15"]),
    ("input-missing", lambda d, X: ["factorize", "-k", "2"],
     ["required", "INPUT"]),
    ("bad-solver", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2", "--solver", "sgd"],
     ["--solver", "'sgd'", "'cd'", "'als'", "'mu'"]),
    ("bad-init", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2", "--init", "svd"],
     ["--init", "'svd'", "'nndsvda'"]),
    ("max-iter-zero", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2", "--max-iter", "0"],
     ["--max-iter", ">= 1"]),
    ("tol-negative", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2", "--tol", "-1"],
     ["--tol", ">= 0", "'-1'"]),
    ("tol-nan", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2", "--tol", "nan"],
     ["--tol", "'nan'"]),
    ("random-state-bad", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2",
                                       "--random-state", "-1"],
     ["--random-state", "'-1'"]),
    ("output-empty", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2", "-o", ""],
     ["-o/--output", "the path is empty"]),
    ("npy-empty", lambda d, X: (np.save(d / "e.npy", np.zeros((0, 3))),
                                ["factorize", str(d / "e.npy"), "-k", "1"])[1],
     ["e.npy", "the data is empty", "(0, 3)"]),
    ("output-folder-missing", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2",
                                            "-o", str(d / "no" / "out.npz")],
     ["-o/--output", "out.npz", "does not exist"]),
    ("output-is-directory", lambda d, X: (os.mkdir(d / "od"), [
        "factorize", str(_npy(d, X)), "-k", "2", "-o", str(d / "od")])[1],
     ["-o/--output", "od", "is a directory"]),
    ("output-is-input", lambda d, X: (np.savez(d / "in.npz", X=X), [
        "factorize", str(d / "in.npz"), "-k", "2", "-o", str(d / "." / "in.npz")])[1],
     ["-o/--output", "in.npz", "is the input file"]),
    ("unknown-option", lambda d, X: ["factorize", str(_npy(d, X)), "-k", "2", "--fast"],
     ["unrecognized arguments", "--fast"]),
    ("no-command", lambda d, X: [],
     ["required", "factorize"]),
    ("unknown-command", lambda d, X: ["fit"],
     ["invalid choice", "'fit'"]),
    ("demo-extra-argument", lambda d, X: ["demo", "now"],
     ["unrecognized arguments", "now"]),
    ("bench-unknown-option", lambda d, X: ["bench", "--all"],
     ["unrecognized arguments", "--all"]),
]


@pytest.mark.parametrize("make, needles", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_exit_2_with_one_line(make, needles, X, tmp_path, capsys):
    argv = make(tmp_path, X)
    before = _files(tmp_path)
    assert main(argv) == 2
    line, out = _one_error_line(capsys)
    for needle in needles:
        assert needle in line, line
    assert out == ""
    assert _files(tmp_path) == before  # no output, no temporary file


def test_error_while_solving_leaves_no_file(X, tmp_path, capsys, monkeypatch):
    path = _npy(tmp_path, X)

    def broken(*args, **kwargs):
        raise ValueError("beta_loss must be a float; got 'x'.")

    monkeypatch.setattr(fastnmf._api, "nmf", broken)
    assert main(["factorize", str(path), "-k", "2", "-o", str(tmp_path / "o.npz")]) == 2
    line, _ = _one_error_line(capsys)
    assert line == f"fastnmf: error: {path}: --beta-loss must be a float; got 'x'."
    assert _files(tmp_path) == ["data.npy"]


def test_write_error_leaves_no_file(X, tmp_path, capsys, monkeypatch):
    path = _npy(tmp_path, X)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    assert main(["factorize", str(path), "-k", "2"]) == 2
    line, _ = _one_error_line(capsys)
    assert "data.nmf.npz" in line and "No space left on device" in line
    assert _files(tmp_path) == ["data.npy"]


def test_unwritable_output_folder(X, tmp_path, capsys, monkeypatch):
    # (Folder permissions do not stop root, so the refusal is simulated at os.open.)
    path = _npy(tmp_path, X)
    real_open = os.open

    def refuse_temp_files(file, *args, **kwargs):
        if str(file).endswith(".tmp"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_temp_files)
    assert main(["factorize", str(path), "-k", "2", "-o", str(tmp_path / "o.npz")]) == 2
    line, _ = _one_error_line(capsys)
    assert line == f"fastnmf: error: -o/--output {tmp_path / 'o.npz'}: cannot write: " \
                   "Permission denied"
    assert _files(tmp_path) == ["data.npy"]


def test_keyboard_interrupt_exits_130(X, tmp_path, capsys, monkeypatch):
    path = _npy(tmp_path, X)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fastnmf._api, "nmf", interrupted)
    assert main(["factorize", str(path), "-k", "2"]) == 130
    line, out = _one_error_line(capsys)
    assert line == "fastnmf: error: interrupted"
    assert _files(tmp_path) == ["data.npy"]


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    out, err = capsys.readouterr()
    assert "factorize" in out and "demo" in out and "bench" in out and err == ""
    assert main(["factorize", "--help"]) == 0
    out, _ = capsys.readouterr()
    for option in ("-k", "--output", "--solver", "--max-iter", "--tol", "--init"):
        assert option in out
    assert "--quick" not in out  # hidden
    assert main(["bench", "--help"]) == 0
    assert "--quick" not in capsys.readouterr().out


# --- progress --------------------------------------------------------------------------------

class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _slow_factorization(monkeypatch, seconds=0.5):
    """The CLI's factorization made to last at least ``seconds`` longer."""
    real_nmf = fastnmf._api.nmf

    def slow_nmf(*args, **kwargs):
        time.sleep(seconds)
        return real_nmf(*args, **kwargs)

    monkeypatch.setattr(fastnmf._api, "nmf", slow_nmf)


def test_progress_on_a_terminal_for_long_runs(X, tmp_path, capsys, monkeypatch):
    path = _npy(tmp_path, X)
    _slow_factorization(monkeypatch)
    monkeypatch.setattr(_progress, "_DELAY", 0.05)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["factorize", str(path), "-k", "2"]) == 0
    shown = terminal.getvalue()
    assert shown.startswith("\rfastnmf: factorizing data.npy (20x15, k=2, cd) ")
    assert shown.count("\r") >= 3  # first frame, at least one refresh, the erasure
    assert "\n" not in shown  # one self-overwriting line
    last = shown.rsplit("\r", 2)
    assert last[-1] == "" and set(last[-2]) == {" "}  # erased at the end
    out, _ = capsys.readouterr()
    assert "data.nmf.npz" in out and len(out.splitlines()) == 1


def test_no_progress_on_a_terminal_for_short_runs(X, tmp_path, capsys, monkeypatch):
    path = _npy(tmp_path, X)
    monkeypatch.setattr(_progress, "_DELAY", 600.0)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["factorize", str(path), "-k", "2"]) == 0
    assert terminal.getvalue() == ""


def test_progress_in_a_log_is_a_handful_of_lines(X, tmp_path, monkeypatch):
    """stderr a file: nothing redrawn; a line after _LOG_DELAY, one each time the elapsed
    time doubles, one at the end; a short run writes nothing."""
    path = _npy(tmp_path, X)
    real_nmf = fastnmf._api.nmf
    _slow_factorization(monkeypatch)
    monkeypatch.setattr(_progress, "_LOG_DELAY", 0.04)  # lines at 0.04, 0.08, 0.16, 0.32 s
    log = tmp_path / "stderr.log"
    with open(log, "w") as f:
        monkeypatch.setattr(sys, "stderr", f)
        assert main(["factorize", str(path), "-k", "2", "-o", str(tmp_path / "o.npz")]) == 0
    lines = log.read_text().splitlines()
    assert "\r" not in log.read_text()
    assert 2 <= len(lines) <= 6, lines
    assert all(line.startswith("fastnmf: factorizing data.npy (20x15, k=2, cd): ")
               for line in lines)
    assert " ended after " in lines[-1] and " ended after " not in lines[0]
    monkeypatch.setattr(fastnmf._api, "nmf", real_nmf)
    monkeypatch.setattr(_progress, "_LOG_DELAY", 600.0)
    with open(log, "w") as f:
        monkeypatch.setattr(sys, "stderr", f)
        assert main(["factorize", str(path), "-k", "2", "-o", str(tmp_path / "o.npz")]) == 0
    assert log.read_text() == ""


def test_the_work_runs_in_the_main_thread(X, tmp_path, monkeypatch):
    # fastnmf.nmf stops itself on Ctrl-C only in the main thread (Python's signals go there).
    import threading

    path = _npy(tmp_path, X)
    real_nmf, threads = fastnmf._api.nmf, []

    def record(*args, **kwargs):
        threads.append(threading.current_thread())
        return real_nmf(*args, **kwargs)

    monkeypatch.setattr(fastnmf._api, "nmf", record)
    assert main(["factorize", str(path), "-k", "2"]) == 0
    assert threads == [threading.main_thread()]


def test_progress_is_erased_before_an_error(X, tmp_path, capsys, monkeypatch):
    path = _npy(tmp_path, X)

    def slow_failure(*args, **kwargs):
        time.sleep(0.3)
        raise ValueError("n_components is wrong; got 3.")

    monkeypatch.setattr(fastnmf._api, "nmf", slow_failure)
    monkeypatch.setattr(_progress, "_DELAY", 0.05)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["factorize", str(path), "-k", "2"]) == 2
    progress, _, error = terminal.getvalue().rpartition("\r")
    assert progress.startswith("\rfastnmf: factorizing")
    assert error == f"fastnmf: error: {path}: -k/--n-components is wrong; got 3.\n"


# --- demo and bench --------------------------------------------------------------------------

def test_demo_recovers_the_parts(capsys):
    assert main(["demo"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "17 of 17 true parts" in out
    assert "fastnmf.nmf(X, 17, solver='cd'" in out
    assert "torso" in out and "left arm" in out and "right leg" in out
    assert "@" in out  # the ASCII images
    fast = next(line for line in out.splitlines() if line.startswith("  fastnmf "))
    err_value = float(fast.split()[1])
    assert err_value < 1e-3
    try:
        import sklearn  # noqa: F401
    except ImportError:
        assert "scikit-learn is not installed" in out
    else:
        assert any(line.strip().startswith("scikit-learn ") for line in out.splitlines())


def test_demo_without_sklearn(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.decomposition", None)
    assert main(["demo"]) == 0
    out, err = capsys.readouterr()
    assert "scikit-learn is not installed" in out and "17 of 17" in out and err == ""


def test_demo_matching_is_one_to_one():
    from fastnmf._datasets import swimmer_parts

    P = swimmer_parts()
    rng = np.random.default_rng(0)
    order = rng.permutation(17)
    H = 2.0 * P[order] + 0.01 * rng.random((17, 1024))
    component, sim = _demo.match_parts(H, P)
    np.testing.assert_array_equal(order[component], np.arange(17))
    assert sim.min() > 0.95


def test_demo_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["demo", "--plot", str(tmp_path / "p.png")]) == 2
    line, out = _one_error_line(capsys)
    assert "--plot" in line and "matplotlib" in line
    assert out == "" and _files(tmp_path) == []


def test_demo_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out_png = tmp_path / "swimmer.png"
    assert main(["demo", "--plot", str(out_png)]) == 0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _files(tmp_path) == ["swimmer.png"]
    assert str(out_png) in capsys.readouterr().out


def test_bench_quick(capsys):
    assert main(["bench", "--quick"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("size"))
    assert "fastnmf" in lines[header] and "reference" in lines[header]
    rows = [line.split() for line in lines[header + 2:] if line and line[0].isdigit()]
    assert len(rows) == 8  # two sizes x four solvers
    assert {row[3] for row in rows} == {"cd", "mu", "als", "bpp"}
    for row in rows:
        errors = [float(v) for v in row[-3:] if v != "-"]
        assert len(errors) >= 2  # fastnmf and reference at least
        # Same start, same iterations: fastnmf and the reference reach the same error.
        np.testing.assert_allclose(errors[0], errors[1], rtol=1e-6)
        assert 0 < errors[0] < 0.1
    assert "x)" in out  # speed ratios



def test_interleaved_times_runs_of_short_calls():
    """A call much shorter than a sample is timed in runs (the time per call of a run), a
    call longer than a sample once per round; each result is the warm-up call's."""
    from fastnmf._bench import interleaved

    counts = {"short": 0, "long": 0}

    def short():
        counts["short"] += 1
        return "short"

    def long():
        counts["long"] += 1
        time.sleep(0.005)
        return "long"

    medians, results = interleaved({"short": short, "long": long}, budget=0.05,
                                   max_repeats=3, sample=0.004)
    assert results == {"short": "short", "long": "long"}
    rounds = counts["long"] - 1  # after its one warm-up call
    assert 1 <= rounds <= 3
    assert counts["short"] > 10 * (rounds + 1)
    assert medians["long"] >= 0.005 and 0 < medians["short"] < 0.001

# --- the real entry points -------------------------------------------------------------------

def _run(cmd, cwd):
    # Any warning would show on stderr, which the tests require to be empty (or one line).
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_python_m_fastnmf_factorize(X, tmp_path):
    path = _write_csv_header(tmp_path, X)
    proc = _run([sys.executable, "-m", "fastnmf", "factorize", "data.csv", "-k", "3",
                 "--tol", "0", "--max-iter", "40"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "40 iterations" in proc.stdout and "data.nmf.npz" in proc.stdout
    _check_output(tmp_path / "data.nmf.npz", _cli_io.read_matrix(path))


@pytest.mark.parametrize("fmt", ["npy", "npz", "csv", "tsv", "mtx"])
def test_console_script_factorizes_every_format(X, tmp_path, fmt):
    """As a user types it: the installed `fastnmf` command on each input format."""
    exe = shutil.which("fastnmf")
    assert exe is not None, "the console script must be installed with the package"
    path = tmp_path / f"data.{fmt}"
    if fmt == "npy":
        np.save(path, X)
    elif fmt == "npz":
        np.savez(path, X=X)
    elif fmt == "mtx":
        scipy.io.mmwrite(path, sp.csr_matrix(X))
    else:
        sep = "," if fmt == "csv" else "\t"
        path.write_text("\n".join(sep.join(f"{v:.17g}" for v in row) for row in X) + "\n")
    proc = _run([exe, "factorize", path.name, "-k", "2", "--max-iter", "30", "--tol", "0"],
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    res = np.load(tmp_path / "data.nmf.npz")
    assert res["W"].shape == (X.shape[0], 2) and res["H"].shape == (2, X.shape[1])
    assert int(res["n_iter"]) == 30
    assert float(res["reconstruction_err"]) == pytest.approx(
        np.linalg.norm(X - res["W"] @ res["H"]), rel=1e-6)


def test_console_script_bench_quick(tmp_path):
    proc = _run([shutil.which("fastnmf"), "bench", "--quick"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "matrices/s" in proc.stdout and "50x30" in proc.stdout


def test_python_m_fastnmf_demo(tmp_path):
    proc = _run([sys.executable, "-m", "fastnmf", "demo"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "17 of 17 true parts" in proc.stdout
    assert _files(tmp_path) == []


def test_console_script_error(tmp_path):
    (tmp_path / "bad.csv").write_text("1,2\n-3,4\n")
    proc = _run(["fastnmf", "factorize", "bad.csv", "-k", "1"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "fastnmf: error: bad.csv: the data must be non-negative; its minimum is -3."]
    assert _files(tmp_path) == ["bad.csv"]


@pytest.mark.parametrize("signum, status, message", [
    (signal.SIGINT, 130, "interrupted"),
    (signal.SIGTERM, 143, "terminated by SIGTERM"),  # timeout, batch schedulers, systemd
    (signal.SIGHUP, 129, "terminated by SIGHUP"),  # a closed terminal
], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_during_a_long_run(tmp_path, signum, status, message):
    # A factorization that would run for minutes; Ctrl-C (SIGINT), SIGTERM or SIGHUP once
    # it has started must end the program at once with 128 + the signal's number, one
    # line, no output file and no temporary file left beside it.
    np.save(tmp_path / "big.npy", low_rank(600, 400, 20, seed=0))
    # (the child's dispositions set: it inherits an ignored SIGHUP or SIGTERM, under nohup)
    code = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
            "signal.signal(signal.SIGTERM, signal.SIG_DFL); signal.signal(signal.SIGHUP, signal.SIG_DFL);"
            "sys.argv = ['fastnmf', 'factorize', 'big.npy', '-k', '20', '--max-iter', "
            "'1000000', '--tol', '0']; runpy.run_module('fastnmf', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        # The temporary output file appears right before the factorization starts.
        while not any(name.endswith(".tmp") for name in os.listdir(tmp_path)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the factorization did not start"
            time.sleep(0.05)
        time.sleep(0.2)
        proc.send_signal(signum)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=60)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == status
    assert out == ""
    assert err == f"fastnmf: error: {message}\n"
    assert _files(tmp_path) == ["big.npy"]
    # The work runs in the main thread and fastnmf.nmf stops itself on the signal: the program
    # ends by returning (no os._exit). A behavioural bound, as in test_interrupt.py: far
    # above the kernels' reaction, far below the run's length.
    assert waited < 5.0, f"ended {waited:.1f} s after SIGINT"


def test_a_second_signal_lets_the_clean_up_finish_and_a_third_ends_the_process():
    # a double Ctrl-C must not leave the temporary files the first one is removing
    code = textwrap.dedent("""
        import os, signal, time
        from fastnmf import _cli
        with _cli._terminating():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            except _cli._Terminated:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
                print("second ignored", flush=True)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
                print("not ended", flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout == "second ignored\n", proc.stderr
    assert proc.returncode == -signal.SIGINT


def test_signals_wait_while_the_outputs_are_renamed():
    # a .csv's W and H are renamed together or not at all: a signal that comes meanwhile
    # is handled once both are in place
    from fastnmf import _cli

    renamed = []
    with _cli._terminating():
        with pytest.raises(_cli._Terminated):
            with _cli_io._signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                renamed.append("both")
    assert renamed == ["both"]


def test_an_ignored_sighup_stays_ignored():
    # under nohup SIGHUP is ignored: the command keeps it so, and restores what it changed
    from fastnmf import _cli

    before = signal.getsignal(signal.SIGTERM), signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with _cli._terminating():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            if before[0] == signal.SIG_DFL:
                assert isinstance(signal.getsignal(signal.SIGTERM), _cli._Stopping)
            else:
                assert signal.getsignal(signal.SIGTERM) == before[0]
        assert signal.getsignal(signal.SIGTERM) == before[0]
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before[1])


def test_progress_shows_iteration_and_error(X, monkeypatch):
    """The kernel calls back with (iteration, error) of each check; the display shows the last."""
    from fastnmf import _api

    seen = []
    res = _api.nmf(X, 2, solver="cd", tol=0, max_iter=7, random_state=0,
                   callback=lambda it, err: seen.append((it, err)))
    assert seen[-1] == (7, res.history[-1])
    seen = []
    real = _progress.run_with_progress

    def capture(fn, label, stream=None, status=None):
        out = real(fn, label, stream, status)
        seen.append(status())
        return out

    monkeypatch.setattr(_cli, "run_with_progress", capture)
    path = Path(tempfile.mkdtemp()) / "d.npy"
    np.save(path, X)
    assert main(["factorize", str(path), "-k", "2", "--max-iter", "5", "--tol", "0"]) == 0
    assert seen and seen[0].startswith(", iteration 5, error ")
