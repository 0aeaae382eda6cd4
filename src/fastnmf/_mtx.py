"""A Matrix Market coordinate file too large for memory, for the command line: read in
pieces, twice, into a CSR in a temporary folder (``tempfile``'s: ``TMPDIR``), which
fastnmf then reads a chunk of rows at a time (_chunked.SparseFile).

The first pass counts each row's entries (X's indptr); the second writes each entry into
its row's place in the raw data (float64) and column index (int32) files. A symmetric
file's entries off the diagonal are written twice, as the matrix they stand for holds
them. Order within a row and duplicate entries are left to the reader, which makes each
chunk canonical (sorted, duplicates summed) as scipy does.
"""

import io
import os
import tempfile
import warnings

import numpy as np

from ._chunked import RawMember, SparseFile

__all__ = ["Header", "to_csr_file"]

# Bytes of the file parsed at a time.
PIECE_BYTES = 1 << 24


class Header:
    """A Matrix Market file's banner and size line: ``format`` ('coordinate' or 'array'),
    ``field``, ``symmetry``, ``shape``, ``entries`` (lines of a coordinate file) and
    ``start`` (the byte of the first entry)."""

    def __init__(self, path):
        self.path = str(path)
        with open(path, "rb") as f:
            banner = f.readline().split()
            if (len(banner) != 5 or banner[0].lower() != b"%%matrixmarket"
                    or banner[1].lower() != b"matrix"):
                raise ValueError(f"{path}: not a Matrix Market matrix (its first line is "
                                 "not '%%MatrixMarket matrix ...')")
            self.format, self.field, self.symmetry = (b.lower().decode("ascii", "replace")
                                                      for b in banner[2:])
            line = f.readline()
            while line and (line.startswith(b"%") or not line.strip()):
                line = f.readline()
            self.start = f.tell()
        sizes = line.split()
        try:
            sizes = [int(v) for v in sizes]
        except ValueError:
            sizes = []
        want = 3 if self.format == "coordinate" else 2
        if len(sizes) != want or min(sizes) < 0:
            raise ValueError(f"{path}: its size line {line.strip()[:80]!r} is not "
                             f"{want} non-negative integers")
        self.shape = (sizes[0], sizes[1])
        self.entries = sizes[2] if want == 3 else sizes[0] * sizes[1]

    def check_room(self):
        """Each entry takes a line of at least "1\n" (array), "1 1\n" (pattern) or
        "1 1 1\n": a size line that claims more entries than the file can hold is refused,
        before anything is allocated for them."""
        least = 2 if self.format == "array" else (4 if self.field == "pattern" else 6)
        room = os.path.getsize(self.path) - self.start
        if self.entries * least - 1 > room:
            raise ValueError(f"{self.path}: its size line claims {self.entries} entries, "
                             f"more than the {room} bytes after it can hold (a truncated "
                             "file?)")

    @property
    def nbytes(self):
        """The matrix's bytes in memory as CSR of float64 (a symmetric file's mirrored
        entries counted)."""
        stored = self.entries * (1 if self.symmetry == "general" else 2)
        return stored * 12 + 8 * (self.shape[0] + 1)


def to_csr_file(head):
    """The coordinate file of ``head`` as a SparseFile (CSR) written in a temporary folder,
    which lives as long as it. ValueError for a file fastnmf cannot factorize or that is
    malformed (naming its line)."""
    if head.format != "coordinate":
        raise ValueError(f"{head.path}: a dense ('array') Matrix Market file is read in "
                         "memory")
    if head.field not in ("real", "integer", "pattern", "double"):
        raise ValueError(f"{head.path}: its field is {head.field!r}; fastnmf factorizes "
                         "real matrices")
    if head.symmetry not in ("general", "symmetric"):
        raise ValueError(f"{head.path}: a {head.symmetry} matrix has negative or complex "
                         "entries; fastnmf factorizes non-negative ones")
    n, m = head.shape
    counts = np.zeros(n, dtype=np.int64)
    for rows, cols, _ in _entries(head):
        counts += np.bincount(rows, minlength=n)
        if head.symmetry == "symmetric":
            counts += np.bincount(cols[rows != cols], minlength=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    total = int(indptr[-1])
    folder = tempfile.TemporaryDirectory(prefix="fastnmf-")
    paths = [os.path.join(folder.name, name) for name in ("data", "indices")]
    data = _writable(paths[0], np.float64, total)
    indices = _writable(paths[1], np.int32, total)
    filled = indptr[:-1].copy()  # the next free place of each row
    for rows, cols, values in _entries(head):
        if head.symmetry == "symmetric":
            off = rows != cols
            rows, cols = np.concatenate([rows, cols[off]]), np.concatenate([cols, rows[off]])
            values = np.concatenate([values, values[off]])
        order = np.argsort(rows, kind="stable")
        rows = rows[order]
        first = np.searchsorted(rows, rows, side="left")  # each entry's rank in its row
        places = filled[rows] + (np.arange(rows.shape[0]) - first)
        data[places] = values[order]
        indices[places] = cols[order]
        filled += np.bincount(rows, minlength=n)
    for array in (data, indices):
        if isinstance(array, np.memmap):
            array.flush()
    del data, indices
    parts = (RawMember(paths[0], np.float64, total), RawMember(paths[1], np.int32, total),
             indptr)
    return SparseFile(head.path, "csr", head.shape, parts=parts, keep=folder)


def _writable(path, dtype, size):
    if size == 0:
        open(path, "wb").close()
        return np.empty(0, dtype)
    return np.memmap(path, dtype=dtype, mode="w+", shape=(size,))


def _entries(head):
    """(rows, columns, values) of the file's entries, 0-based, a piece at a time; checks
    every index and the count of entries."""
    n, m = head.shape
    width = 2 if head.field == "pattern" else 3
    seen = 0
    line = 0  # lines of entries before this piece
    with open(head.path, "rb") as f:
        f.seek(head.start)
        rest = b""
        while True:
            piece = f.read(PIECE_BYTES)
            text = rest + piece
            cut = text.rfind(b"\n") + 1 if piece else len(text)
            text, rest = text[:cut], text[cut:]
            if text.strip():
                table = _parse(head, text, width, line)
                line += text.count(b"\n")
                rows = table[:, 0].astype(np.int64) - 1
                cols = table[:, 1].astype(np.int64) - 1
                bad = ((rows < 0) | (rows >= n) | (cols < 0) | (cols >= m)
                       | (table[:, 0] != rows + 1) | (table[:, 1] != cols + 1))
                if bad.any():
                    i = int(np.argmax(bad))
                    raise ValueError(f"{head.path}: entry {seen + i + 1} has indices "
                                     f"({table[i, 0]:g}, {table[i, 1]:g}), outside the "
                                     f"{n} x {m} matrix (1-based)")
                seen += rows.shape[0]
                if seen > head.entries:
                    raise ValueError(f"{head.path}: holds more than the {head.entries} "
                                     "entries its size line says")
                values = table[:, 2] if width == 3 else np.ones(rows.shape[0])
                yield rows, cols, values
            if not piece:
                break
    if seen != head.entries:
        raise ValueError(f"{head.path}: holds {seen} entries, not the {head.entries} its "
                         "size line says (truncated?)")


def _parse(head, text, width, line):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = np.loadtxt(io.BytesIO(text), dtype=np.float64, ndmin=2, comments="%")
    except ValueError as exc:
        raise ValueError(f"{head.path}: after line {line} of its entries: {exc}") from None
    if table.shape[0] and table.shape[1] != width:
        raise ValueError(f"{head.path}: its entries have {table.shape[1]} fields, not "
                         f"the {width} of a {head.field} coordinate file (after line "
                         f"{line} of its entries)")
    return table
