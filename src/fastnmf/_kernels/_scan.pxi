# Validation's passes over X and a sparse X's index arrays (one pass, no temporary).
# Included by _common.pyx (one module: the cdef functions are declared in _common.pxd).


# scan reads its buffer in pieces of SCAN_PIECE entries (a fixed size: the sums, added
# piece by piece in order, are the same for any thread count), 8 lanes at a time.
cdef Py_ssize_t SCAN_PIECE = 65536


def scan(const floating[::1] values, int n_threads=1):
    """(minimum, maximum, all finite, Σ values² in double) in one pass over a contiguous
    buffer, shared among up to ``n_threads`` threads; the same result for any count."""
    cdef Py_ssize_t size = values.shape[0], pieces = (size + SCAN_PIECE - 1) // SCAN_PIECE
    cdef Py_ssize_t c
    cdef double[:, ::1] part = np.empty((pieces, 4))
    cdef double vmin, vmax, s = 0, z = 0
    cdef int nt = threads_for(n_threads, <double> size)
    with nogil:
        if nt == 1:
            for c in range(pieces):
                scan_piece(&values[0], c * SCAN_PIECE, size, &part[c, 0])
        else:
            for c in prange(pieces, schedule="static", num_threads=nt):
                scan_piece(&values[0], c * SCAN_PIECE, size, &part[c, 0])
        vmin, vmax = part[0, 1], part[0, 2]
        for c in range(pieces):
            s += part[c, 0]
            vmin = part[c, 1] if part[c, 1] < vmin else vmin
            vmax = part[c, 2] if part[c, 2] > vmax else vmax
            z += part[c, 3]
    return vmin, vmax, z == 0, s


cdef void scan_piece(const floating* values, Py_ssize_t i0, Py_ssize_t size,
                     double* out) noexcept nogil:
    """out = (Σ v², min, max, Σ (v − v)) over values[i0 : i0 + SCAN_PIECE] (within size):
    8 independent lanes, which the compiler vectorizes; the last sum is 0 exactly when
    every entry is finite (inf − inf and NaN are NaN)."""
    cdef Py_ssize_t i, l, i1 = i0 + SCAN_PIECE if i0 + SCAN_PIECE < size else size
    cdef Py_ssize_t body = i0 + (i1 - i0) // 8 * 8
    cdef double acc[8]
    cdef double lo[8]
    cdef double hi[8]
    cdef double fin[8]
    cdef double v
    for l in range(8):
        acc[l] = 0
        fin[l] = 0
        lo[l] = values[i0]
        hi[l] = values[i0]
    for i in range(i0, body, 8):
        for l in range(8):
            v = values[i + l]
            acc[l] += v * v
            lo[l] = v if v < lo[l] else lo[l]
            hi[l] = v if v > hi[l] else hi[l]
            fin[l] += v - v
    for i in range(body, i1):
        v = values[i]
        acc[0] += v * v
        lo[0] = v if v < lo[0] else lo[0]
        hi[0] = v if v > hi[0] else hi[0]
        fin[0] += v - v
    out[0] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
    out[1] = lo[0]
    out[2] = hi[0]
    out[3] = 0
    for l in range(8):
        out[1] = lo[l] if lo[l] < out[1] else out[1]
        out[2] = hi[l] if hi[l] > out[2] else out[2]
        out[3] += fin[l]


ctypedef fused index_t:
    int32_t
    int64_t


def first_decrease(const index_t[:] values):
    """The first i with values[i + 1] < values[i], or -1: one pass, no temporary (a sparse
    matrix's indptr is checked with it before anything reads through it)."""
    cdef Py_ssize_t i, found = -1
    with nogil:
        for i in range(values.shape[0] - 1):
            if values[i + 1] < values[i]:
                found = i
                break
    return found


def first_unsorted(const index_t[:] indptr, const index_t[:] indices):
    """The first row of a CSR (column of a CSC) whose indices are not strictly increasing
    (unsorted, or a duplicate entry), or -1: one pass, no temporary. (scipy's
    ``has_canonical_format`` is a flag it caches, and a caller or a conversion can leave
    it True over duplicates.) The structure is checked first (_check_structure)."""
    cdef Py_ssize_t row, i, found = -1
    with nogil:
        for row in range(indptr.shape[0] - 1):
            for i in range(indptr[row] + 1, indptr[row + 1]):
                if indices[i] <= indices[i - 1]:
                    found = row
                    break
            if found >= 0:
                break
    return found


def first_outside(const index_t[:] values, int64_t bound):
    """The first i with values[i] outside [0, bound), or -1: one pass, no temporary."""
    cdef Py_ssize_t i, found = -1
    with nogil:
        for i in range(values.shape[0]):
            if values[i] < 0 or values[i] >= bound:
                found = i
                break
    return found
