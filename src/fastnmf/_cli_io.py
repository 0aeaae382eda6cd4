"""The command line's files: reading a matrix by its extension, and writing an output only
to a regular file, atomically, as .npz or as CSV/TSV text (docs/api.md, "The command
line").

Every problem with a file is a :class:`CLIError` naming the file: the command line prints
it as one line and exits with status 2.
"""

import contextlib
import os
import secrets
import signal
import stat
import warnings
from pathlib import Path

import numpy as np

from ._chunked import SparseFile
from ._validation import check_shape

__all__ = ["CLIError", "read_matrix", "AtomicFile", "default_output", "output_paths",
           "write_result", "OUTPUT_EXTENSIONS"]

_READERS = {}  # extension -> reader, filled below
# The extensions an output may have: what fastnmf writes for them.
OUTPUT_EXTENSIONS = {
    ".npz": "a NumPy .npz of W, H, reconstruction_err, n_iter, converged, solver and "
            "history",
    ".csv": "W and H as comma-separated numbers in STEM.W.csv and STEM.H.csv",
    ".tsv": "W and H as tab-separated numbers in STEM.W.tsv and STEM.H.tsv",
}
_DELIMITERS = {".csv": ",", ".tsv": "\t"}


class CLIError(Exception):
    """A bad input or argument: reported as one line, exit status 2."""


# --- reading ---------------------------------------------------------------------------------

def _reader(*extensions):
    def register(fn):
        for ext in extensions:
            _READERS[ext] = fn
        return fn

    return register


def _listing(items):
    items = sorted(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def read_matrix(path):
    """Read the matrix of ``path`` (by extension); raise CLIError naming the file. The file
    must be a readable regular file (or a FIFO or device that reads as one)."""
    if str(path) == "":
        raise CLIError("the input path is empty")
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file")
    except OSError as exc:
        raise CLIError(f"{path}: cannot read: {exc.strerror or exc}")
    if stat.S_ISDIR(info.st_mode):
        raise CLIError(f"{path}: is a directory, not a file")
    ext = path.suffix.lower()
    if ext not in _READERS:
        what = f"extension {path.suffix!r}" if path.suffix else "no extension"
        raise CLIError(f"{path}: unknown file type ({what}); expected {_listing(_READERS)}")
    try:
        return _READERS[ext](path)
    except CLIError:
        raise
    except OSError as exc:
        raise CLIError(f"{path}: cannot read: {exc.strerror or exc}")
    except MemoryError:
        raise
    except Exception as exc:  # any parser's complaint about a malformed file
        raise CLIError(f"{path}: cannot read: {exc}")


def _read_head(path, n):
    with open(path, "rb") as f:
        return f.read(n)


@_reader(".npy")
def _read_npy(path):
    if _read_head(path, 6) != b"\x93NUMPY":
        raise CLIError(f"{path}: not a NumPy .npy file")
    shape = _npy_shape(path)
    if shape is not None and len(shape) == 2:  # before numpy computes the mapping's size
        try:
            check_shape(shape, "the data")
        except ValueError as exc:
            raise CLIError(f"{path}: {exc}")
    # Mapped, not read: fastnmf.nmf reads a memmap a chunk at a time from its file, so a
    # matrix larger than memory is factorized (the Frobenius loss; another loss reads X
    # into memory, see _factorize).
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _npy_shape(path):
    """The shape an .npy file's header states, or None if numpy's header readers do not
    take it (np.load then says what is wrong)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            return read(f)[0]
    except Exception:  # a malformed header: left to np.load's message
        return None


# The arrays of an .npz written by scipy.sparse.save_npz, by its "format" entry.
_SPARSE_NPZ = {"csr": {"data", "indices", "indptr"}, "csc": {"data", "indices", "indptr"},
               "bsr": {"data", "indices", "indptr"}, "coo": {"data", "row", "col"},
               "dia": {"data", "offsets"}}


@_reader(".npz")
def _read_npz(path):
    if _read_head(path, 4) not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise CLIError(f"{path}: not a NumPy .npz file")
    with np.load(path, allow_pickle=False) as npz:
        names = list(npz.files)
        if "format" in names and "shape" in names:
            fmt = npz["format"].item()
            fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
            if _SPARSE_NPZ.get(fmt, {"?"}) <= set(names):  # scipy.sparse.save_npz's file
                if fmt not in ("csr", "csc"):  # COO, BSR, DIA: read into memory
                    import scipy.sparse as sp

                    return sp.load_npz(path)
                # CSR or CSC: read into memory if it fits, else read a chunk at a time
                X = SparseFile(path, fmt, npz["shape"])
                return X.load() if X.nbytes <= memory_budget() else X
        if "X" in names:
            return npz["X"]
        if len(names) == 1:
            return npz[names[0]]
        if not names:
            raise CLIError(f"{path}: holds no array")
        listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise CLIError(f"{path}: holds {len(names)} arrays ({listed}) and none named 'X', "
                       "nor a scipy.sparse matrix; name the matrix X")


def memory_budget():
    """Bytes a sparse input may take in memory: half of the memory available now (Linux's
    MemAvailable, else the free physical pages)."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (OSError, ValueError, AttributeError):
        return 1 << 62


def _read_table(path, delimiter):
    """Numbers separated by ``delimiter``; blank lines and lines starting with # skipped.
    The first row is a header when none of its fields is a number; any other field that
    is not a number is an error naming its line and column."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CLIError(f"{path}: not a text file (not UTF-8)")
    # Lines end at \n, \r\n or \r only, as numpy.loadtxt reads them (str.splitlines also
    # breaks at \v, \f, \x1c-\x1e, \x85, U+2028 and U+2029: rows that are not there)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    rows = [(i, line) for i, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")]
    if rows and not any(_is_number(f) for f in rows[0][1].split(delimiter)):
        rows = rows[1:]  # a header
    if not rows:
        raise CLIError(f"{path}: holds no numbers")
    width = None
    for lineno, line in rows:
        fields = line.split(delimiter)
        for col, field in enumerate(fields, 1):
            if not _is_number(field):
                shown = field.strip()
                what = "an empty field" if not shown else f"{shown!r} is not a number"
                raise CLIError(f"{path}: line {lineno}, column {col}: {what}")
        if width is None:
            width = (lineno, len(fields))
        elif len(fields) != width[1]:
            raise CLIError(f"{path}: line {lineno} has {len(fields)} values, line "
                           f"{width[0]} has {width[1]}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.loadtxt([line for _, line in rows], delimiter=delimiter, dtype=np.float64,
                          comments=None, ndmin=2)


def _is_number(field):
    """Whether ``field`` is a number as numpy.loadtxt reads one: float()'s syntax in ASCII,
    without the digit-group underscores (1_0) or other scripts' digits (١, ３) that float()
    takes too."""
    if not field.isascii() or "_" in field:
        return False
    try:
        float(field)
    except ValueError:
        return False
    return True


@_reader(".csv")
def _read_csv(path):
    return _read_table(path, ",")


@_reader(".tsv")
def _read_tsv(path):
    return _read_table(path, "\t")


@_reader(".mtx")
def _read_mtx(path):
    import scipy.io
    import scipy.sparse as sp

    from ._mtx import Header, to_csr_file

    try:
        head = Header(path)
        check_shape(head.shape, "the data")  # before scipy or to_csr_file allocates for it
        head.check_room()
        if head.format == "coordinate" and head.nbytes > memory_budget():
            return to_csr_file(head)  # read a chunk at a time, from a CSR written aside
    except ValueError as exc:  # its message starts with the file's name
        raise CLIError(f"{path}: cannot read: {str(exc).removeprefix(f'{path}: ')}")
    X = scipy.io.mmread(path)
    return X if sp.issparse(X) else np.asarray(X)  # check_X converts, once its shape is checked


# --- writing ---------------------------------------------------------------------------------

def _check_target(target, arg):
    """Refuse a target that exists and is not a regular file (a device such as /dev/null,
    a FIFO, a socket, a directory): it would be replaced."""
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CLIError(f"{arg} {target}: cannot write: {exc.strerror or exc}")
    if stat.S_ISDIR(info.st_mode):
        raise CLIError(f"{arg} {target}: is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise CLIError(f"{arg} {target}: exists and is not a regular file (a device, FIFO "
                       "or socket); fastnmf writes only regular files")


def _check_extension(target, arg, extensions):
    if target.suffix.lower() not in extensions:
        what = f"has extension {target.suffix!r}" if target.suffix else "has no extension"
        kinds = "; ".join(f"{ext}: {what_}" for ext, what_ in extensions.items())
        raise CLIError(f"{arg} {target}: {what}; the output may be {kinds}")


class AtomicFile:
    """A temporary file beside ``target``, renamed onto it by ``commit`` and removed
    otherwise; ``target`` must be a regular file or not exist (checked now and again just
    before the rename). Created at once, so that an unwritable target fails before any
    work. ``extensions``: the suffixes ``target`` may have (None: any)."""

    def __init__(self, target, arg, extensions=None):
        self.target, self.arg = Path(target), arg
        if str(target) == "":
            raise CLIError(f"{arg}: the path is empty")
        _check_target(self.target, arg)
        if extensions is not None:
            _check_extension(self.target, arg, extensions)
        folder = self.target.parent
        if not folder.is_dir():
            raise CLIError(f"{arg} {self.target}: folder {str(folder)!r} does not exist")
        self.tmp = folder / f".{self.target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            # 0o666 and O_EXCL, as open() would create it: the umask applies, no races.
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise CLIError(f"{arg} {self.target}: cannot write: {exc.strerror or exc}")
        self.file = os.fdopen(fd, "wb")

    def commit(self):
        commit_all([self])

    def discard(self):
        if self.tmp is not None:
            self.file.close()
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            self.tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()
        return False


def commit_all(files):
    """Put every AtomicFile of ``files`` in place: each target is checked again (it may
    have become a device meanwhile) before any is replaced."""
    for f in files:
        f.file.close()
    for f in files:
        _check_target(f.target, f.arg)
    with _signals_held():  # all renamed or none: a .csv's W and H belong together
        for f in files:
            os.replace(f.tmp, f.target)
            f.tmp = None


_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                      if hasattr(signal, name))


@contextlib.contextmanager
def _signals_held():
    """Ctrl-C, SIGTERM and SIGHUP held back while the block runs, where the command's
    handler of them (_cli._Stopping: anything with ``hold`` and ``release``) is installed:
    one that came meanwhile takes effect right after the block."""
    handlers = []
    for signum in _STOP_SIGNALS:
        handler = signal.getsignal(signum)
        if hasattr(handler, "hold") and handler not in handlers:
            handlers.append(handler)
    for handler in handlers:
        handler.hold()
    try:
        yield
    finally:
        for handler in handlers:
            handler.release()


def output_paths(out, arg):
    """The files written for the output ``out``, by its extension: ``out`` itself for
    .npz; ``STEM.W.csv`` and ``STEM.H.csv`` beside it for .csv (.tsv likewise)."""
    if str(out) == "":  # (before Path, which makes it ".")
        raise CLIError(f"{arg}: the path is empty")
    out = Path(out)
    _check_target(out, arg)  # a device or a directory first, whatever its name
    _check_extension(out, arg, OUTPUT_EXTENSIONS)
    ext = out.suffix
    if ext.lower() not in _DELIMITERS:
        return [out]
    return [out.with_name(f"{out.stem}.{name}{ext}") for name in ("W", "H")]


def write_result(files, res):
    """Write ``res`` (an NMFResult) into the open AtomicFiles ``files`` (from
    ``output_paths``) and commit them. Text keeps every value exactly: the shortest
    decimal that reads back as the same double."""
    ext = files[0].target.suffix.lower()
    if ext not in _DELIMITERS:
        np.savez(files[0].file, W=res.W, H=res.H,
                 reconstruction_err=np.float64(res.reconstruction_err),
                 n_iter=np.int64(res.n_iter), converged=np.bool_(res.converged),
                 solver=np.str_(res.solver), history=res.history)
    else:
        sep = _DELIMITERS[ext]
        for f, A in zip(files, (res.W, res.H)):
            for row in A.tolist():
                f.file.write((sep.join(map(repr, row)) + "\n").encode("ascii"))
    commit_all(files)


def default_output(input_path):
    """``data.csv`` -> ``data.nmf.npz``, in the input's folder."""
    path = Path(input_path)
    return path.with_name(path.stem + ".nmf.npz")
