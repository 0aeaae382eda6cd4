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
mapped into the process; other objects are read by slicing (``X[r0:r1]``). A
:class:`SparseFile` (a CSR or CSC matrix of a ``scipy.sparse.save_npz`` file, which the
command line makes for a matrix larger than its memory) is read as CSR chunks.
"""

import _thread
import copy
import mmap
import os
import tempfile
import threading

import numpy as np
import scipy.sparse as sp

__all__ = ["Chunked", "RawMember", "SparseFile", "beyond_range", "is_out_of_core",
           "open_chunked"]

# Bytes of a chunk (of the computation dtype): large enough that a chunk's products run as
# fast as in memory and the per-chunk costs (a read call, taking the GIL, copying the
# factors' columns) vanish; small enough that two of them (one read ahead) are a small
# part of any memory.
CHUNK_BYTES = 1 << 25

# The packages whose arrays are read out of core although they define __array__.
_OUT_OF_CORE_PACKAGES = ("h5py", "zarr", "dask")


def is_out_of_core(X):
    """Whether fastnmf reads X a chunk at a time (see the module's docstring)."""
    if isinstance(X, (Chunked, SparseFile)):
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
    ``xmax`` and ``mean()``. ``sparse``: X is sparse; ``csr``: ``read`` gives CSR chunks
    rather than arrays (_SparseChunked, with ``nnz``, X's non-zeros, after ``scan``)."""

    sparse = csr = False

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

    @staticmethod
    def values(block):
        """The entries a chunk (from ``read``) stores."""
        return block.reshape(-1)

    def scan(self, arg, n_threads):
        """One pass: every entry finite and non-negative (else a ValueError naming the
        chunk's rows), ‖X‖² in float64, the maximum, the sum (and a sparse X's non-zeros,
        ``nnz``)."""
        from ._kernels._common import scan

        sqnorm = xmax = total = 0.0
        nnz = 0
        try:
            for c in range(self.count):
                block = self.values(self.read(c))
                if self.csr:
                    nnz += int(np.count_nonzero(block))
                vmin, vmax, finite, s = scan(block, n_threads)
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
        if self.csr:
            self.nnz = nnz
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
            _cast_into(out, raw, lo, hi)

    def __del__(self):
        if self._fd is not None:
            os.close(self._fd)


class _SliceRows:
    """Rows of an array-like read by slicing: X[lo:hi] (X.T[lo:hi] for stored columns)."""

    def __init__(self, X):
        self.X = X

    def read(self, lo, hi, out):
        block = self.X[lo:hi]
        if not isinstance(block, np.ndarray) and hasattr(block, "compute"):  # Dask's rows
            block = block.compute()
        if sp.issparse(block):  # sparse chunks (of a Dask array, say): this block dense
            block = block.toarray()
        block = np.asarray(block)
        if block.shape != out.shape:
            raise ValueError(f"rows {lo}..{hi - 1} were read with shape {block.shape}, not "
                             f"{out.shape}")
        _cast_into(out, block, lo, hi)


def _cast_into(out, block, lo, hi):
    """``block`` copied into ``out`` (the computation dtype): an entry beyond its range (a
    longdouble's 1e400 for float64) is an error saying so, not an infinity found later."""
    try:
        with np.errstate(over="raise"):
            np.copyto(out, block, casting="unsafe")
    except FloatingPointError:
        raise ValueError(f"rows {lo}..{hi - 1} hold entries {beyond_range(out.dtype)}") \
            from None


def beyond_range(dtype):
    """The words for entries that a cast to ``dtype`` overflows (a longdouble's 1e400 for
    float64), in memory (_validation) as out of core."""
    return (f"beyond {np.dtype(dtype).name}'s range (its largest value is "
            f"{np.finfo(dtype).max:.4g}); rescale X")


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
    if isinstance(X, SparseFile):
        check_shape(X.shape, arg)
        return _SparseChunked(X, computation_dtype(X.data.dtype, arg)).scan(arg, n_threads)
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


# --- a sparse X out of core: scipy.sparse.save_npz's CSR or CSC, its arrays read in pieces --

# Stored rows of a sparse chunk: at most this many (the kernels copy a chunk's columns of
# the factor, k × rows), however sparse X is.
SPARSE_MAX_ROWS = 1 << 16


class SparseFile:
    """A CSR or CSC matrix of a ``scipy.sparse.save_npz`` file, not read: ``indptr`` in
    memory (n + 1 or m + 1 int64), ``data`` and ``indices`` read a range at a time from the
    file or its decompressed copy (_npy_member); X's stored rows are its rows (CSR) or its
    columns (CSC, ``fortran``).
    ``fastnmf.nmf`` reads it a chunk of stored rows at a time (_SparseChunked); ``load()``
    reads it whole. Raises ValueError for a file whose arrays do not make a matrix of its
    ``shape``. ``parts``: (data, indices, indptr) given instead (a CSR written elsewhere,
    _mtx; data and indices RawMembers); ``keep``: the temporary folder their files are in,
    removed with it."""

    def __init__(self, path, fmt, shape, parts=None, keep=None):
        import zipfile

        self.path, self.fortran = str(path), fmt == "csc"
        self._keep = folder = [keep]  # (a list the members' spill() shares: no cycle)
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) != 2 or min(self.shape) < 0:
            raise ValueError(f"{path}: its shape {self.shape} is not a matrix's")
        if parts is not None:
            self.data, self.indices, indptr = parts
        else:
            def spill():
                if folder[0] is None:
                    folder[0] = tempfile.TemporaryDirectory(prefix="fastnmf-")
                return folder[0].name

            try:
                with zipfile.ZipFile(path) as zf:
                    self.data = _npy_member(path, zf, "data", spill)
                    self.indices = _npy_member(path, zf, "indices", spill)
                    with zf.open("indptr.npy") as f:
                        indptr = np.lib.format.read_array(f, allow_pickle=False)
            except (zipfile.BadZipFile, KeyError, EOFError, OSError, ValueError) as exc:
                self.close()
                if isinstance(exc, ValueError):
                    raise
                raise ValueError(f"{path}: cannot be read as a scipy.sparse .npz "
                                 f"({exc})") from exc
        stored = self.shape[1] if self.fortran else self.shape[0]
        if (indptr.ndim != 1 or indptr.dtype.kind not in "iu"
                or indptr.shape[0] != stored + 1):
            raise ValueError(f"{path}: indptr holds {indptr.shape} {indptr.dtype}, not the "
                             f"{stored + 1} integers of a {fmt.upper()} matrix of shape "
                             f"{self.shape}")
        self.indptr = indptr.astype(np.int64)
        nnz = self.data.size
        if (self.indptr[0] != 0 or self.indptr[-1] != nnz or self.indices.size != nnz
                or (stored and bool((self.indptr[1:] < self.indptr[:-1]).any()))):
            raise ValueError(f"{path}: its indptr, indices ({self.indices.size}) and data "
                             f"({nnz}) do not make a {fmt.upper()} matrix (malformed)")
        if self.data.dtype.kind not in "biuf" or self.indices.dtype.kind not in "iu":
            raise ValueError(f"{path}: data of dtype {self.data.dtype} and indices of "
                             f"{self.indices.dtype} do not make a real matrix")

    @property
    def keep(self):
        """The temporary folder (a compressed file's copies, _mtx's CSR), or None."""
        return self._keep[0]

    def close(self):
        """Remove the temporary folder, if any."""
        folder = getattr(self, "_keep", [None])
        keep, folder[0] = folder[0], None
        if keep is not None:
            keep.cleanup()

    __del__ = close

    @property
    def nbytes(self):
        """X's bytes in memory (data as float64 or float32, int32 indices, indptr)."""
        size = 4 if self.data.dtype == np.float32 else 8
        return self.data.size * (size + 4) + self.indptr.nbytes

    def load(self):
        """The whole matrix, in memory (scipy.sparse CSR or CSC)."""
        import zipfile

        data = np.empty(self.data.size, self.data.dtype)
        indices = np.empty(self.indices.size, self.indices.dtype)
        try:
            for member, out in ((self.data, data), (self.indices, indices)):
                member.read(0, member.size, out)
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{self.path}: cannot be read ({exc})") from exc
        kind = sp.csc_matrix if self.fortran else sp.csr_matrix
        return kind((data, indices, self.indptr), shape=self.shape)


def _npy_member(path, zf, name, spill):
    """NAME.npy of the .npz ``path`` (open as the ZipFile ``zf``), a 1-D array: a
    RawMember of the file itself from the member's first entry when the archive stores it
    uncompressed, else a _ZipMember."""
    import zipfile

    info = zf.getinfo(name + ".npy")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(f)
        start = f.tell()
    if len(shape) != 1 or dtype.hasobject:
        raise ValueError(f"{path}: {name}.npy is not a 1-D numeric array")
    size = int(shape[0])
    if info.file_size < start + size * dtype.itemsize:
        raise ValueError(f"{path}: {name}.npy ends before its {size} entries (truncated?)")
    if info.compress_type != zipfile.ZIP_STORED:
        return _ZipMember(path, info, start, dtype, size, spill)
    with open(path, "rb") as f:  # the member's data follows its local header
        f.seek(info.header_offset)
        local = f.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise ValueError(f"{path}: a malformed zip file")
    skip = int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
    return RawMember(path, dtype, size, info.header_offset + 30 + skip + start)


class _ZipMember:
    """A compressed member of an .npz, with RawMember's interface. Read whole (``load``),
    it is decompressed into ``out``; read a range at a time, it is first decompressed once
    into the folder ``spill()`` and read from there, so that no pass decompresses
    (decompressing at every pass made an iteration about 5 x the in-memory one; reading
    the copy, as a stored file, 1.2 x)."""

    def __init__(self, path, info, start, dtype, size, spill):
        self.path, self.dtype, self.size = str(path), dtype, size
        self._info, self._start, self._spill = info, start, spill
        self._copy = None  # the RawMember of the decompressed copy, once made

    def read(self, lo, hi, out):
        if self._copy is None and (lo, hi) == (0, self.size):
            self._decompress(out.view(np.uint8) if out.dtype == self.dtype
                             else np.empty(self.size, self.dtype).view(np.uint8), out)
            return
        if self._copy is None:
            target = os.path.join(self._spill(), self._info.filename)
            with open(target, "wb") as f:
                self._decompress(None, None, f)
            self._copy = RawMember(target, self.dtype, self.size)
        self._copy.read(lo, hi, out)

    def _decompress(self, raw, out, to=None):
        """The member's entries into ``raw`` (bytes, then cast into ``out``) or the file
        ``to``, a piece at a time."""
        import zipfile

        left, done = self.size * self.dtype.itemsize, 0
        with zipfile.ZipFile(self.path) as zf, zf.open(self._info) as f:
            f.seek(self._start)
            while left:
                piece = f.read(min(left, 1 << 24))
                if not piece:
                    raise ValueError(f"{self.path}: {self._info.filename} ends before its "
                                     f"{self.size} entries (truncated?)")
                if to is None:
                    raw[done:done + len(piece)] = np.frombuffer(piece, np.uint8)
                else:
                    to.write(piece)
                done += len(piece)
                left -= len(piece)
        if to is None and out.dtype != self.dtype:
            np.copyto(out, raw.view(self.dtype), casting="unsafe")


class RawMember:
    """A 1-D array of ``size`` entries of ``dtype`` stored raw in the file ``path`` from
    byte ``start``: ``read(lo, hi, out)`` casts entries lo..hi-1 into ``out`` (os.preadv)."""

    def __init__(self, path, dtype, size, start=0):
        self.path, self.dtype, self.size = str(path), np.dtype(dtype), int(size)
        self._rows = _FileRows(self.path, start, 1, self.dtype)

    def read(self, lo, hi, out):
        self._rows.read(lo, hi, out.reshape(-1, 1))


class _SparseChunked(Chunked):
    """A SparseFile as a Chunked of CSR chunks: ``read(c)`` gives (data, indptr, indices)
    of stored rows c·rows.. (indptr from 0), each row's column indices checked to lie in
    range and made increasing (duplicates summed), as scipy's canonical format; ``nnz``,
    X's non-zeros, after ``scan``. Chunks hold about CHUNK_BYTES of X."""

    sparse = csr = True

    def __init__(self, source, dtype):
        stored = source.shape[1] if source.fortran else source.shape[0]
        each = CHUNK_BYTES // (dtype.itemsize + 4)  # non-zeros of a chunk
        rows = min(SPARSE_MAX_ROWS, max(1, each * stored // max(source.data.size, 1)))
        ptr = source.indptr
        while rows > 1 and _largest(ptr, rows) > 2 * each:
            rows //= 2
        name = f"the file {source.path}"
        super().__init__(source, source.shape, dtype, source.fortran, name, rows)
        self.cap = max(_largest(ptr, self.rows), 1)  # entries of the largest chunk
        self.nnz = None
        # the chunks read in canonical order once (then not checked again; the column
        # indices' range is, at every read: the kernels index with them)
        self.canonical = np.zeros(self.count, dtype=bool)

    @staticmethod
    def values(block):
        return block[0]

    def _take_buffer(self, c):
        """(data, indices) of ``cap`` entries: the spare chunk's, or new."""
        block, self._spare = self._spare, None
        if block is None:
            return np.empty(self.cap, self.dtype), np.empty(self.cap, np.int32)
        return tuple(a if a.base is None else a.base for a in (block[0], block[2]))

    def _load(self, c, out):
        data, indices = out
        lo = c * self.rows
        q = self.shape[0] if self.fortran else self.shape[1]
        hi = min(lo + self.rows, self.shape[1] if self.fortran else self.shape[0])
        indptr = self.source.indptr[lo:hi + 1] - self.source.indptr[lo]
        nnz = int(indptr[-1])
        try:
            self.source.data.read(self.source.indptr[lo], self.source.indptr[hi], data[:nnz])
            wide = self.source.indices.dtype != np.int32  # checked before made int32
            got = np.empty(nnz, self.source.indices.dtype) if wide else indices[:nnz]
            self.source.indices.read(self.source.indptr[lo], self.source.indptr[hi], got)
        except (OSError, ValueError, TypeError, EOFError) as exc:
            raise ValueError(f"{self.where(c)} could not be read: {exc}") from exc
        if nnz and (int(got.min()) < 0 or int(got.max()) >= q):
            raise ValueError(f"{self.where(c)}: a column index outside 0..{q - 1} (the "
                             "file's sparse structure is malformed)")
        if wide:
            indices[:nnz] = got
        if self.canonical[c] or _increasing(indptr, indices[:nnz]):
            self.canonical[c] = True
        elif nnz:  # sorted, duplicates summed
            block = sp.csr_matrix((data[:nnz], indices[:nnz], indptr), shape=(hi - lo, q))
            block.sum_duplicates()
            nnz = block.nnz
            data[:nnz], indices[:nnz] = block.data, block.indices
            indptr = block.indptr.astype(np.int64)
        if self.exponent:
            np.ldexp(data[:nnz], self.exponent, out=data[:nnz])
        return data[:nnz], indptr, indices[:nnz]


def _largest(indptr, rows):
    """The most entries in a chunk of ``rows`` stored rows."""
    ends = np.minimum(np.arange(0, indptr.shape[0] - 1 + rows, rows), indptr.shape[0] - 1)
    return int(np.diff(indptr[ends]).max()) if ends.shape[0] > 1 else 0


def _increasing(indptr, indices):
    """Whether each row's column indices increase strictly (scipy's canonical format)."""
    step = np.diff(indices) > 0
    starts = indptr[1:-1]  # the first entry of each row but the first: no order asked
    step[starts[(starts > 0) & (starts < indices.shape[0])] - 1] = True
    return bool(step.all())
