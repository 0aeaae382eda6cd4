"""X out of core (fastnmf._chunked, _kernels/_stream.pxi): a memmap, an .npy opened with
mmap_mode, an h5py dataset, a zarr array, a Dask array or any object with shape, dtype and
row slicing is read a chunk at a time, and the factorization is the in-memory one up to
the order of additions."""

import os

import numpy as np
import pytest

import dask.array as da
import h5py
import zarr

import fastnmf
from fastnmf import _chunked
from fastnmf._registry import SOLVERS

from conftest import narrow, setting


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Chunks of 64 KiB: every matrix here is read in several chunks (and a last, shorter one)."""
    monkeypatch.setattr(_chunked, "CHUNK_BYTES", 1 << 16)


class Rows:
    """An array-like that is not an array: shape, dtype and row slicing; it records the
    rows of each read."""

    def __init__(self, X):
        self._X = X
        self.shape, self.dtype = X.shape, X.dtype
        self.reads = []

    def __getitem__(self, key):
        rows = range(*key.indices(self.shape[0]))
        self.reads.append(len(rows))
        return self._X[key]


def _data(n=900, m=230, k=6, dtype=np.float64, order="C", seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, k)) @ rng.random((k, m)) + 0.1 * rng.random((n, m))
    return np.asarray(X, dtype=dtype, order=order)


def _npy(tmp_path, X, name="x.npy"):
    path = tmp_path / name
    np.save(path, X)
    return np.load(path, mmap_mode="r")


def _close(a, b, rtol):
    scale = max(float(np.abs(a).max()), 1e-300)
    assert float(np.abs(a - b).max()) <= rtol * scale


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("init", ["random", "nndsvda"])
def test_npy_mmap_equals_in_memory(tmp_path, solver, order, init):
    X = _data(order=order)
    Xm = _npy(tmp_path, X)
    assert isinstance(Xm, np.memmap)
    kw = dict(solver=solver, init=init, random_state=0, max_iter=25, tol=0)
    a = fastnmf.nmf(X, 6, **kw)
    b = fastnmf.nmf(Xm, 6, **kw)
    _close(a.W, b.W, 1e-10)
    _close(a.H, b.H, 1e-10)
    assert a.n_iter == b.n_iter
    np.testing.assert_allclose(a.history, b.history, rtol=1e-10)
    assert b.reconstruction_err == pytest.approx(a.reconstruction_err, rel=1e-10)


@pytest.mark.parametrize("solver", ["cd", "als"])
def test_float32_and_stopping(tmp_path, solver):
    """A float32 X from disk: float32 factors, the same stop, and cd's iterates the
    in-memory ones up to rounding. als's keep-or-propose choice (docs/algorithms.md) meets
    near ties in these iterations (the two half-step objectives 1e-7 to 1e-6 apart,
    relative, in float64, on this data whatever its seed), which float32 rounding decides:
    with the products added in another order (the two-pass loop's narrow kernels under
    OpenBLAS's SkylakeX kernels, the engine's under its Sandybridge ones) its run took the
    other branch at iteration 12 and ended 0.9 % of the error apart, with other factors (of
    200 random float32 als runs of 60 iterations, 14 to 28 ended more than 1e-3 from
    float64's, BLAS or the narrow kernels forming the products alike). So for als the
    runs are held to what holds on either branch: the stop and the error within 2 %
    (its float64 run from disk is the in-memory one to 1e-10: test_npy_mmap_equals_in_memory)."""
    X = _data(dtype=np.float32)
    kw = dict(solver=solver, random_state=1, max_iter=200, tol=1e-3)
    a = fastnmf.nmf(X, 6, **kw)
    b = fastnmf.nmf(_npy(tmp_path, X), 6, **kw)
    assert b.W.dtype == np.float32 and b.H.dtype == np.float32
    assert a.converged and b.converged and abs(a.n_iter - b.n_iter) <= 2
    if solver == "als":
        assert b.reconstruction_err == pytest.approx(a.reconstruction_err, rel=2e-2)
    else:
        _close(a.W, b.W, 1e-3)
        assert b.reconstruction_err == pytest.approx(a.reconstruction_err, rel=1e-4)


@pytest.mark.parametrize("narrowed, rows", [(False, False), (False, True), (True, True)],
                         ids=["blas", "rows-first", "narrow"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_way_of_forming_the_products_reads_chunks(tmp_path, narrowed, rows, dtype):
    """However the products are formed (_common.rows_first, _common.narrow_kernels: set
    from the BLAS's kernels), the chunks of one X, the last one shorter, are added into one
    layout: the in-memory result up to rounding, through the engine and the two-pass loop."""
    from fastnmf._kernels import _common, _solve

    X = _data(dtype=dtype)
    for loop in (0, np.inf):
        with (setting(_common.rows_first, rows), narrow(narrowed),
              setting(_solve.engine_min_bytes, loop)):
            a = fastnmf.nmf(X, 6, random_state=1, max_iter=20, tol=0)
            b = fastnmf.nmf(_npy(tmp_path, X), 6, random_state=1, max_iter=20, tol=0)
        _close(a.W, b.W, 1e-10 if dtype == np.float64 else 1e-3)
        assert b.reconstruction_err == pytest.approx(a.reconstruction_err, rel=1e-4)


def test_accelerate_shuffle_penalties_fixed_H(tmp_path):
    X = _data()
    Xm = _npy(tmp_path, X)
    kw = dict(random_state=3, max_iter=15, tol=0, accelerate=True, shuffle=True,
              alpha_W=1e-3, l1_ratio=0.5)
    a, b = fastnmf.nmf(X, 6, **kw), fastnmf.nmf(Xm, 6, **kw)
    _close(a.W, b.W, 1e-10)
    _close(a.H, b.H, 1e-10)
    H = a.H
    for solver in SOLVERS:
        a = fastnmf.nmf(X, 6, solver=solver, H=H, update_H=False, max_iter=10, tol=0)
        b = fastnmf.nmf(Xm, 6, solver=solver, H=H, update_H=False, max_iter=10, tol=0)
        _close(a.W, b.W, 1e-10)
        assert b.H is not None and np.array_equal(b.H, H)


def test_array_like_is_read_in_bounded_chunks():
    X = _data(n=2000, m=100)
    rows = Rows(X)
    res = fastnmf.nmf(rows, 6, random_state=0, max_iter=10, tol=0)
    ref = fastnmf.nmf(X, 6, random_state=0, max_iter=10, tol=0)
    _close(ref.W, res.W, 1e-10)
    per_chunk = _chunked.CHUNK_BYTES // (100 * 8)
    assert rows.reads and max(rows.reads) <= per_chunk < 2000  # never read whole


def test_scaled_x_out_of_core(tmp_path):
    X = _data() * 2.0**300  # beyond float64's comfortable range: scaled as it is read
    a = fastnmf.nmf(X, 6, random_state=0, max_iter=10, tol=0)
    b = fastnmf.nmf(_npy(tmp_path, X), 6, random_state=0, max_iter=10, tol=0)
    _close(a.W, b.W, 1e-10)
    assert b.reconstruction_err == pytest.approx(a.reconstruction_err, rel=1e-10)


def test_other_dtypes_and_byte_order(tmp_path):
    X = np.round(_data() * 100)
    a = fastnmf.nmf(X, 6, random_state=0, max_iter=10, tol=0)
    for dtype in (">f8", np.int32):
        b = fastnmf.nmf(_npy(tmp_path, X.astype(dtype), f"x{np.dtype(dtype).str[1:]}.npy"), 6,
                        random_state=0, max_iter=10, tol=0)
        assert b.W.dtype == np.float64
        _close(a.W, b.W, 1e-10)


def test_big_endian_float32_stays_float32(tmp_path):
    # float32 in either byte order is computed in float32 (it was float64 for ">f4")
    X = np.round(_data() * 100).astype(np.float32)
    kw = dict(random_state=0, max_iter=10, tol=0)
    a = fastnmf.nmf(X, 6, **kw)
    in_memory = fastnmf.nmf(X.astype(">f4"), 6, **kw)
    assert in_memory.W.dtype == np.float32
    np.testing.assert_array_equal(a.W, in_memory.W)
    from_file = fastnmf.nmf(_npy(tmp_path, X.astype(">f4"), "xbe.npy"), 6, **kw)
    assert from_file.W.dtype == np.float32
    _close(fastnmf.nmf(_npy(tmp_path, X, "xle.npy"), 6, **kw).W, from_file.W, 1e-6)


def test_a_longdouble_file_beyond_float64_says_so(tmp_path):
    X = _data().astype(np.longdouble)
    X[70, 3] = np.longdouble("1e400")
    with pytest.raises(ValueError, match=r"rows .* hold entries beyond float64's range"):
        fastnmf.nmf(_npy(tmp_path, X, "ld.npy"), 6)


def test_h5py_zarr_dask(tmp_path):
    X = _data()
    ref = fastnmf.nmf(X, 6, random_state=0, max_iter=10, tol=0)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("X", data=X, chunks=(64, 230))
    z = zarr.open_array(str(tmp_path / "x.zarr"), mode="w", shape=X.shape, chunks=(100, 230),
                        dtype=X.dtype)
    z[:] = X
    with h5py.File(tmp_path / "x.h5", "r") as f:
        got = [fastnmf.nmf(f["X"], 6, random_state=0, max_iter=10, tol=0)]
    got.append(fastnmf.nmf(zarr.open_array(str(tmp_path / "x.zarr"), mode="r"), 6,
                           random_state=0, max_iter=10, tol=0))
    got.append(fastnmf.nmf(da.from_array(X, chunks=(128, 230)), 6, random_state=0,
                           max_iter=10, tol=0))
    for res in got:
        _close(ref.W, res.W, 1e-10)
        _close(ref.H, res.H, 1e-10)


def test_bad_chunks_are_named(tmp_path):
    X = _data()  # 900 x 230 float64: chunks of 35 rows
    X[710, 5] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity \(in rows 700\.\.734 of the file "
                                         r".*x\.npy\)"):
        fastnmf.nmf(_npy(tmp_path, X), 6)
    X[710, 5] = -1
    with pytest.raises(ValueError, match=r"non-negative; its minimum in rows 700\.\.734 .* is -1"):
        fastnmf.nmf(_npy(tmp_path, X, "neg.npy"), 6)
    Y = np.asfortranarray(_data())  # read by columns: chunks of 9 columns of 900
    Y[3, 200] = np.inf
    with pytest.raises(ValueError, match=r"NaN or infinity \(in columns 198\.\.206 of"):
        fastnmf.nmf(_npy(tmp_path, Y, "f.npy"), 6)


def test_truncated_file_is_an_error_not_a_crash(tmp_path):
    X = _data()
    Xm = _npy(tmp_path, X)
    os.truncate(tmp_path / "x.npy", 128 + X.nbytes // 2)  # touching the map there: SIGBUS
    with pytest.raises(ValueError, match=r"x\.npy holds \d+ bytes, fewer than"):
        fastnmf.nmf(Xm, 6)


def test_read_failure_during_the_solve_is_raised(tmp_path):
    X = _data()

    class Failing(Rows):
        def __getitem__(self, key):
            if len(self.reads) > 40:  # after validation and the start
                raise OSError("the disk went away")
            return super().__getitem__(key)

    with pytest.raises(ValueError, match="rows .* could not be read: the disk went away"):
        fastnmf.nmf(Failing(X), 6, init="random", random_state=0, max_iter=50, tol=0)


def test_refusals(tmp_path):
    Xm = _npy(tmp_path, _data())
    with pytest.raises(ValueError, match="beta_loss other than 'frobenius' needs X in memory"):
        fastnmf.nmf(Xm, 6, solver="mu", beta_loss="kullback-leibler")
    with pytest.raises(ValueError, match="must be a 2-D array"):
        fastnmf.nmf(Rows(np.ones((2, 3, 4))), 2)
    # a batch and the reference read such an X into memory
    res = fastnmf.nmf_batch([Xm, Xm], 6, random_state=0, max_iter=5, tol=0)
    ref = fastnmf.nmf(np.asarray(Xm), 6, random_state=0, max_iter=5, tol=0)
    assert np.array_equal(res[0].W, ref.W)


def test_memmap_is_not_read_through_its_mapping(tmp_path):
    """The file's pages are read with explicit reads, not through the memmap: a process's
    mapped pages of the file stay few however many passes run."""
    X = _data(n=4000, m=500)
    Xm = _npy(tmp_path, X)

    def mapped_kib():
        total, inside = 0, False
        with open("/proc/self/smaps") as f:
            for line in f:
                if line[0].isdigit() or line[0] in "abcdef":
                    inside = line.rstrip().endswith("x.npy")
                elif inside and line.startswith("Rss:"):
                    total += int(line.split()[1])
        return total

    if not os.path.exists("/proc/self/smaps"):
        pytest.skip("needs Linux's /proc/self/smaps")
    before = mapped_kib()
    fastnmf.nmf(Xm, 6, random_state=0, max_iter=5, tol=0)
    assert mapped_kib() - before < X.nbytes // 1024 // 10


@pytest.mark.parametrize("solver", ["cd", "bpp"])
def test_result_does_not_depend_on_threads(tmp_path, solver):
    Xm = _npy(tmp_path, _data(n=3000, m=300))
    kw = dict(solver=solver, random_state=0, max_iter=10, tol=0)
    a = fastnmf.nmf(Xm, 6, n_threads=1, **kw)
    b = fastnmf.nmf(Xm, 6, n_threads=2, **kw)
    c = fastnmf.nmf(Xm, 6, n_threads=3, **kw)
    assert np.array_equal(a.W, b.W) and np.array_equal(a.W, c.W)
    assert np.array_equal(a.H, b.H) and np.array_equal(a.H, c.H)


def test_the_read_ahead_thread_runs_jobs_and_ends():
    """_chunked._Reader: one thread per call, driven by bare locks (a Ctrl-C in the main
    thread can leave no lock of it held): jobs in turn, their errors handed back, the
    thread ended by stop() after a running job, or when the reader is collected."""
    import gc
    import threading
    import time
    from fastnmf._chunked import _Reader

    def threads():
        return len(os.listdir("/proc/self/task"))

    def ended(count):  # the thread's last instructions run just after it says it ended
        deadline = time.monotonic() + 5
        while threads() > count and time.monotonic() < deadline:
            time.sleep(0.01)
        return threads() == count

    before = threads()
    reader = _Reader()
    assert threads() == before + 1
    for i in range(5):
        reader.submit(lambda i=i: i * i)
        assert reader.wait() == (None, i * i)
    reader.submit(lambda: 1 / 0)
    error, value = reader.wait()
    assert isinstance(error, ZeroDivisionError) and value is None
    running, finished = threading.Event(), []
    reader.submit(lambda: running.set() or time.sleep(0.2) or finished.append(1))
    assert running.wait(5)
    reader.stop()  # waits for the running job, then for the thread's end
    assert finished == [1] and ended(before)
    reader = _Reader()
    del reader
    gc.collect()
    assert ended(before)
