"""X out of core: a matrix fastnmf reads a chunk of rows at a time, never whole.

``fastnmf.nmf`` takes, besides arrays and sparse matrices, an ``np.memmap`` (what
``np.load(path, mmap_mode="r")`` returns), an h5py dataset, a zarr array, a Dask array,
or any object with ``shape``, ``dtype`` and row slicing that is not an array (no
``__array__``). Such an X is wrapped in a :class:`Chunked`: its chunks, of about
``CHUNK_BYTES`` each, are read in order (the next one in a background thread while the
kernels work on the current one), checked once (finite, non-negative: the error names the
rows), and handed to the kernels (``_kernels/_stream.pxi``), which run the usual loop
with each pass over X made chunk by chunk: the row-block engine's one pass per iteration
for cd and mu, the two products for the others (docs/algorithms.md, "X out of core").

A memmap of a file that is shared (mode 'r', 'r+' or 'w+') and laid out in C or Fortran
order is read with explicit reads from the file (``os.preadv``), so its pages are not
mapped into the process; other objects are read by slicing (``X[r0:r1]``).
"""

import _thread
import copy
import mmap
import os
import threading

import numpy as np
import scipy.sparse as sp

__all__ = ["Chunked", "is_out_of_core", "open_chunked"]

# Bytes of a chunk (of the computation dtype): large enough that a chunk's products run as
# fast as in memory and the per-chunk costs (a read call, taking the GIL, copying the
# factors' columns) vanish; small enough that two of them (one read ahead) are a small
# part of any memory.
CHUNK_BYTES = 1 << 25

# The packages whose arrays are read out of core although they define __array__.
_OUT_OF_CORE_PACKAGES = ("h5py", "zarr", "dask")


def is_out_of_core(X):
    """Whether fastnmf reads X a chunk at a time (see the module's docstring)."""
    if isinstance(X, Chunked):
        return True
    if isinstance(X, np.memmap):
        return X.ndim == 2
    if isinstance(X, (np.ndarray, list, tuple, str, bytes)) or X is None or sp.issparse(X):
        return False
    package = type(X).__module__.partition(".")[0]
    if package in _OUT_OF_CORE_PACKAGES:
        return True
    return (not hasattr(X, "__array__") and hasattr(X, "shape") and hasattr(X, "dtype")
            and hasattr(X, "__getitem__"))


class _Reader:
    """One thread that runs one job at a time for the main thread (a Chunked's reads
    ahead, for a whole call), driven by bare locks. No Thread object, Condition, queue or
    flag: a Ctrl-C lands in the main thread wherever it is, and one that lands inside
    those (between a lock's acquire and its release, between two statements that must go
    together) leaves a lock held or a flag wrong and a thread blocked for good, or, in the
    weakref callback that collects a finished Thread, is ignored. The main thread here only
    releases ``go`` and acquires ``done`` or ``ended``, which a signal either interrupts
    before it holds or not at all."""

    def __init__(self):
        self._go, self._done, self._ended = (_thread.allocate_lock() for _ in range(3))
        for lock in (self._go, self._done, self._ended):
            lock.acquire()
        self._slot = [None, None]  # the job; then (error, value)
        _thread.start_new_thread(_Reader._loop, (self._go, self._done, self._ended,
                                                 self._slot))

    @staticmethod
    def _loop(go, done, ended, slot):  # (no reference to the _Reader: __del__ can end it)
        while True:
            go.acquire()
            job, slot[0] = slot[0], None
            if job is None:
                ended.release()
                return
            try:
                slot[1] = (None, job())
            except BaseException as exc:  # handed to the main thread by wait()
                slot[1] = (exc, None)
            done.release()

    def submit(self, job):
        self._slot[0] = job
        self._go.release()

    def wait(self):
        """(error, value) of the job submitted last, once it has run."""
        self._done.acquire()
        return self._slot[1]

    def stop(self):
        """End the thread, after the job it is running (a job not yet taken is dropped),
        and wait for that."""
        self.__del__()
        self._ended.acquire()

    def __del__(self):
        go, self._go = getattr(self, "_go", None), None
        if go is not None:
            self._slot[0] = None
            try:
                go.release()
            except RuntimeError:  # released already: the thread takes the None job next
                pass


class Chunked:
    """X (n × m) as a sequence of chunks of its stored rows: X's rows, or with ``fortran``
    (a Fortran-ordered file) X's columns, that is Xᵀ's rows. The interface the kernels'
    ChunkStream reads: ``shape``, ``dtype`` (the computation dtype), ``fortran``, ``rows``
    (stored rows per chunk), ``count`` and ``read(c)``. After ``scan``: ``sqnorm``,
    ``xmax`` and ``mean()``."""

    def __init__(self, source, shape, dtype, fortran, name, rows):
        self.source = source  # _FileRows or _SliceRows
        self.shape = shape
        self.dtype = dtype
        self.fortran = fortran
        self.name = name
        stored = shape[1] if fortran else shape[0]
        self.rows = int(min(max(rows, 1), stored))
        self.count = -(-stored // self.rows)
        self.exponent = 0
        self.sqnorm = self.xmax = self.total = None
        self._last = None  # (c, block) handed out last
        self._ahead = None  # c, the chunk being read ahead by _reader
        self._spare = None  # the buffer not handed out
        self._reader = None  # _Reader, from the first read ahead to close()

    def mean(self):
        return self.total / (self.shape[0] * self.shape[1])

    def scaled(self, e):
        """This X times 2⁻ᵉ (exact), to be scanned: the same source and chunks, no buffers."""
        other = copy.copy(self)
        other.exponent = self.exponent - e
        other.sqnorm = other.xmax = other.total = None
        other._last = other._ahead = other._spare = other._reader = None
        return other

    def where(self, c):
        """Words for chunk c's place in X, for error messages."""
        lo = c * self.rows
        hi = min(lo + self.rows, self.shape[1] if self.fortran else self.shape[0])
        return f"{'columns' if self.fortran else 'rows'} {lo}..{hi - 1} of {self.name}"

    def read(self, c):
        """Chunk c (w × q, C order, ``dtype``), valid until the next call; the chunk after
        it is read meanwhile in a background thread."""
        if self._last is not None and self._last[0] == c:
            return self._last[1]
        ahead, self._ahead = self._ahead, None
        block = None
        if ahead is not None:
            error, got = self._reader.wait()
            if ahead == c:
                if error is not None:
                    raise error
                block = got
            elif got is not None:
                self._spare = got
        if block is None:
            block = self._load(c, self._take_buffer(c))
        if self._last is not None:
            self._spare = self._last[1]
        self._last = (c, block)
        if self.count > 1:
            self._read_ahead((c + 1) % self.count)
        return block

    def close(self):
        """Wait for a read ahead, end the reading thread; drop the buffers."""
        if self._reader is not None:
            self._reader.stop()
        self._ahead = self._last = self._spare = self._reader = None

    def _take_buffer(self, c):
        lo = c * self.rows
        stored, q = (self.shape[1], self.shape[0]) if self.fortran else self.shape
        w = min(self.rows, stored - lo)
        buf, self._spare = self._spare, None
        if buf is None or buf.base is None or buf.base.shape[0] < self.rows * q:
            full = np.empty(self.rows * q, dtype=self.dtype)
        else:
            full = buf.base
        return full[:w * q].reshape(w, q)

    def _load(self, c, out):
        lo = c * self.rows
        try:
            self.source.read(lo, lo + out.shape[0], out)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{self.where(c)} could not be read: {exc}") from exc
        if self.exponent:
            np.ldexp(out, self.exponent, out=out)
        return out

    def _read_ahead(self, c):
        out = self._take_buffer(c)
        if self._reader is None:
            self._reader = _Reader()
        self._reader.submit(lambda: self._load(c, out))  # its error: when c is asked for
        self._ahead = c

    def scan(self, arg, n_threads):
        """One pass: every entry finite and non-negative (else a ValueError naming the
        chunk's rows), ‖X‖² in float64, the maximum, the sum."""
        from ._kernels._common import scan

        sqnorm = xmax = total = 0.0
        try:
            for c in range(self.count):
                block = self.read(c)
                vmin, vmax, finite, s = scan(block.reshape(-1), n_threads)
                if not finite:
                    raise ValueError(f"{arg} contains NaN or infinity (in {self.where(c)}).")
                if vmin < 0:
                    raise ValueError(f"{arg} must be non-negative; its minimum in "
                                     f"{self.where(c)} is {vmin:g}.")
                sqnorm += s
                xmax = max(xmax, vmax)
                with np.errstate(over="ignore"):
                    total += float(block.sum(dtype=np.float64))
        finally:
            self.close()
        self.sqnorm, self.xmax, self.total = sqnorm, xmax, total
        return self


class _FileRows:
    """Rows of a file laid out as a C-ordered (stored) matrix from byte ``start``: read
    with os.preadv into the chunk's buffer (or a buffer of the file's dtype, then cast)."""

    def __init__(self, path, start, q, file_dtype):
        self.path, self.start, self.q, self.file_dtype = path, start, q, file_dtype
        self._fd = None
        self._lock = threading.Lock()

    def _file(self):
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY)
            return self._fd

    def read(self, lo, hi, out):
        size = self.file_dtype.itemsize
        raw = out if out.dtype == self.file_dtype else np.empty(out.shape, self.file_dtype)
        view = memoryview(raw.reshape(-1).view(np.uint8))
        offset = self.start + lo * self.q * size
        done = 0
        while done < view.nbytes:
            got = os.preadv(self._file(), [view[done:]], offset + done)
            if got == 0:
                raise ValueError(f"the file {self.path} ends at byte {offset + done}, before "
                                 "the end of the matrix its header describes (truncated?)")
            done += got
        if raw is not out:
            np.copyto(out, raw, casting="unsafe")

    def __del__(self):
        if self._fd is not None:
            os.close(self._fd)


class _SliceRows:
    """Rows of an array-like read by slicing: X[lo:hi] (X.T[lo:hi] for stored columns)."""

    def __init__(self, X):
        self.X = X

    def read(self, lo, hi, out):
        block = np.asarray(self.X[lo:hi])
        if block.shape != out.shape:
            raise ValueError(f"rows {lo}..{hi - 1} were read with shape {block.shape}, not "
                             f"{out.shape}")
        np.copyto(out, block, casting="unsafe")


def _memmap_file(X):
    """(path, byte offset of X's first entry, fortran) for a memmap whose entries can be
    read from its file (a shared mapping, X contiguous in C or Fortran order); else None."""
    if getattr(X, "mode", None) not in ("r", "r+", "w+") or X.filename is None:
        return None
    if not (X.flags.c_contiguous or X.flags.f_contiguous):
        return None
    root = X
    while isinstance(root, np.ndarray):
        root = root.base
    if not isinstance(root, mmap.mmap):
        return None
    try:
        mapped = np.frombuffer(root, dtype=np.uint8).ctypes.data
    except (TypeError, ValueError):  # a closed mapping
        return None
    # np.memmap maps the file from ``offset`` rounded down to the allocation granularity.
    first = X.offset - X.offset % mmap.ALLOCATIONGRANULARITY
    start = X.ctypes.data - mapped + first
    fortran = not X.flags.c_contiguous
    return X.filename, start, fortran


def open_chunked(X, arg, n_threads, computation_dtype, check_shape):
    """X (is_out_of_core) as a scanned Chunked in ``computation_dtype(X.dtype, arg)``
    (validation's rule for arrays), its shape checked by ``check_shape(shape, arg)``."""
    if isinstance(X, Chunked):
        return X
    shape = tuple(int(s) for s in X.shape)
    if len(shape) != 2:
        raise ValueError(f"{arg} must be a 2-D array; got shape {shape}.")
    check_shape(shape, arg)
    file_dtype = np.dtype(X.dtype)
    dtype = computation_dtype(file_dtype, arg)
    name = _name(X)
    layout = _memmap_file(X) if isinstance(X, np.memmap) else None
    if layout is not None:
        path, start, fortran = layout
        stored, q = (shape[1], shape[0]) if fortran else shape
        size = os.path.getsize(path)
        if size < start + stored * q * file_dtype.itemsize:
            raise ValueError(f"{arg}: the file {path} holds {size} bytes, fewer than the "
                             f"{start + stored * q * file_dtype.itemsize} its shape {shape} "
                             "needs (truncated?).")
        source = _FileRows(path, start, q, file_dtype)
    else:
        fortran = False
        source = _SliceRows(X)
    q = shape[0] if fortran else shape[1]
    rows = CHUNK_BYTES // (q * dtype.itemsize)
    return Chunked(source, shape, dtype, fortran, name, rows).scan(arg, n_threads)


def _name(X):
    path = getattr(X, "filename", None)
    if path:
        return f"the file {path}"
    label = getattr(X, "name", None)
    if isinstance(label, str) and label:
        return f"{type(X).__name__} {label}"
    return f"the {type(X).__name__}"
