# X out of core (XData.source, _common.pxd): a Python reader's chunks of rows handed to the
# nogil loop one at a time, and the products and the formed error as passes over them.
# Included by _common.pyx (one module: the cdef functions are declared in _common.pxd).


cdef class ChunkStream:
    """X read a chunk of rows at a time from ``reader``, for the kernels (prepare_x takes it
    in place of an array). ``reader``: ``shape`` (n, m), ``dtype`` (float32 or float64),
    ``fortran`` (the stored rows are X's columns: chunks of Xᵀ), ``rows`` (stored rows per
    chunk), ``count`` (chunks) and ``read(c)``, which returns chunk c as a C-contiguous
    array of the stored matrix's rows c·rows.. (w × q, ``dtype``), valid until the next
    call; or, with ``csr`` true, as the CSR (data, indptr, indices) of those rows
    (``dtype``, int64 from 0, int32) and ``nnz`` X's non-zeros. A read that raises (Ctrl-C
    included: the main thread's pending signals are checked at each chunk) stops the pass;
    the caller raises ``error``."""

    cdef Source src
    cdef readonly object reader
    cdef object current, scratch
    cdef public object error
    cdef Py_ssize_t q, k
    cdef bint signals, sparse
    cdef double row_entries  # a sparse X's non-zeros per stored row (a chunk's entries)

    def __init__(self, reader):
        n, m = reader.shape
        self.reader = reader
        self.q = n if reader.fortran else m
        self.src.fetch = stream_fetch
        self.src.owner = <void*> self
        self.src.rows = reader.rows
        self.src.count = reader.count
        self.src.failed = False
        self.src.scratch = NULL
        self.k = 0
        self.error = None
        self.current = None
        self.sparse = bool(getattr(reader, "csr", False))
        N = m if reader.fortran else n
        self.row_entries = float(reader.nnz) / N if self.sparse else self.q

    @property
    def shape(self):
        return tuple(self.reader.shape)

    def raise_if_failed(self):
        """Raise the exception of a read that failed during the last call, if any."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    cdef int attach(self, XData* x, Py_ssize_t k, int itemsize) except -1:
        """Point x (shape set) at this stream for a call whose factors have k rows: the
        scratch sized for them, no failure pending."""
        cdef Py_ssize_t size = stream_scratch_len(k, self.src.rows, self.q)
        dtype = np.float64 if itemsize == 8 else np.float32
        if np.dtype(self.reader.dtype) != dtype:
            raise ValueError("the chunks' dtype is not the computation's")
        if self.scratch is None or self.scratch.dtype != dtype or self.scratch.shape[0] < size:
            self.scratch = np.empty(size, dtype=dtype)
        self.src.scratch = <void*> <uintptr_t> self.scratch.ctypes.data
        self.src.failed = False
        self.error = None
        self.signals = threading.current_thread() is threading.main_thread()
        x.sparse = self.sparse
        if self.sparse:
            x.entries = float(self.reader.nnz)
        x.fortran = bool(self.reader.fortran)
        x.dense = NULL
        x.other = NULL
        x.source = &self.src
        return 0

    cdef int fetch(self, Py_ssize_t c, XData* chunk):
        cdef Py_ssize_t w = self.src.rows, N
        cdef uintptr_t address, ptr = 0, ind = 0
        cdef int itemsize
        try:
            N = self.reader.shape[1 if self.reader.fortran else 0]
            if self.signals:
                PyErr_CheckSignals()
            self.current = None
            if c == self.src.count - 1:
                w = N - c * self.src.rows
            block = self.reader.read(c)
            if self.sparse:
                address, ptr, ind = self.check_csr(c, w, block)
            else:
                if (not isinstance(block, np.ndarray) or block.shape != (w, self.q)
                        or block.dtype != self.scratch.dtype
                        or not block.flags.c_contiguous):
                    raise ValueError(f"chunk {c} of X was read as {type(block).__name__} "
                                     f"{getattr(block, 'shape', '')}; expected a "
                                     f"C-contiguous {self.scratch.dtype} array of shape "
                                     f"{(w, self.q)}")
                address = <uintptr_t> block.ctypes.data
            self.current = block
            itemsize = self.scratch.dtype.itemsize
        except BaseException as exc:  # a Ctrl-C too: everything Python runs is in here
            self.error = exc
            return 1
        chunk.n, chunk.m = w, self.q
        chunk.sparse = self.sparse
        chunk.fortran = False
        chunk.dense = NULL if self.sparse else <const void*> address
        chunk.other = chunk.source = NULL
        chunk.itemsize = itemsize
        # a sparse chunk's entries at X's mean per row: its engine blocks are X's (slab_len)
        chunk.entries = w * self.row_entries
        chunk.sqnorm = 0
        chunk.rdata = <const void*> address if self.sparse else NULL
        chunk.rptr = <const int64_t*> ptr
        chunk.rind = <const int32_t*> ind
        chunk.cdata = NULL
        chunk.cptr = NULL
        chunk.cind = NULL
        return 0

    def check_csr(self, c, w, block):
        """The addresses of chunk c's CSR (data, indptr, indices), checked: the kernels
        read them as they are (the indices' range is the reader's to check)."""
        ok = isinstance(block, tuple) and len(block) == 3
        if ok:
            data, indptr, indices = block
            ok = (all(isinstance(a, np.ndarray) and a.ndim == 1 and a.flags.c_contiguous
                      for a in block)
                  and data.dtype == self.scratch.dtype and indptr.dtype == np.int64
                  and indices.dtype == np.int32 and indptr.shape[0] == w + 1)
        if ok:
            nnz = int(indptr[w])
            ok = (int(indptr[0]) == 0 and 0 <= nnz <= min(data.shape[0], indices.shape[0])
                  and bool((indptr[1:w + 1] >= indptr[:w]).all()))
        if not ok:
            raise ValueError(f"chunk {c} of X was read as {type(block).__name__}; expected "
                             f"the CSR (data, indptr, indices) of {w} rows, "
                             f"{self.scratch.dtype}, int64 from 0 and int32")
        return (<uintptr_t> data.ctypes.data, <uintptr_t> indptr.ctypes.data,
                <uintptr_t> indices.ctypes.data)


cdef int stream_fetch(Source* s, Py_ssize_t c, XData* chunk) noexcept nogil:
    with gil:
        return (<ChunkStream> s.owner).fetch(c, chunk)


cdef Py_ssize_t stream_scratch_len(Py_ssize_t k, Py_ssize_t rows, Py_ssize_t q) noexcept nogil:
    """Entries of a Source's scratch for factors of k rows, chunks of ``rows`` stored rows of
    q entries: a factor's columns of a chunk (k×rows), a chunk's product (k×q) and the
    products' scratch T (k×max(rows, q), then a sparse row's accumulator)."""
    return k * rows + k * q + k * (rows if rows > q else q) + acc_stride(k)


cdef bint fetch_chunk(const XData* x, Py_ssize_t c, XData* chunk,
                      Py_ssize_t* r0) noexcept nogil:
    """Chunk c of an X out of core into ``chunk``, its first stored row in r0; False once a
    read has failed."""
    cdef Source* s = x.source
    if s.failed:
        return False
    if s.fetch(s, c, chunk) != 0:
        s.failed = True
        return False
    r0[0] = c * s.rows
    return True


cdef bint source_failed(const XData* x) noexcept nogil:
    """Whether X is out of core and a read failed (the loop then stops)."""
    return x.source != NULL and x.source.failed


cdef void copy_columns(Py_ssize_t k, const floating* F, Py_ssize_t ld, Py_ssize_t c0,
                       Py_ssize_t w, floating* out, bint back) noexcept nogil:
    """out (k×w) = columns c0..c0+w of F (k×ld); with ``back``, those columns = out."""
    cdef Py_ssize_t c
    for c in range(k):
        if back:
            memcpy(<floating*> F + c * ld + c0, out + c * w, w * sizeof(floating))
        else:
            memcpy(out + c * w, F + c * ld + c0, w * sizeof(floating))


cdef void stream_product(const XData* x, Py_ssize_t k, const floating* F, floating* B,
                         bint for_W, int n_threads) noexcept nogil:
    """product_W (``for_W``: B = H Xᵀ, k×n) or product_H (B = Wᵀ X, k×m) for an X out of
    core, a chunk at a time. The stored rows (X's, or Xᵀ's when x.fortran) give either
    B's columns chunk by chunk (F times the chunk's transpose) or a sum over the chunks
    (F's columns of the chunk times the chunk), added in chunk order; each chunk's product
    is the in-memory one; a sparse chunk's are the row-block engine's (block_product_W,
    block_add_H: one thread)."""
    cdef Source* s = x.source
    cdef bint by_chunk = for_W != x.fortran
    cdef Py_ssize_t N = x.m if x.fortran else x.n, q = x.n if x.fortran else x.m
    cdef Py_ssize_t c, i, r0, w
    cdef floating* Fc = <floating*> s.scratch
    cdef floating* Oc = Fc + k * s.rows
    cdef floating* Tc = Oc + k * q
    cdef XData chunk
    if x.sparse and by_chunk:
        transpose(k, q, F, Tc, n_threads)  # Fᵀ (q×k), gathered by rows; then an accumulator
    for c in range(s.count):
        if not fetch_chunk(x, c, &chunk, &r0):
            return
        w = chunk.n
        if x.sparse:
            if by_chunk:
                block_product_W(&chunk, k, F, Tc, 0, w, Fc, Tc + k * q, NULL)
                copy_columns(k, B, N, r0, w, Fc, True)
            else:  # Oc (q×k) += the transpose of F's columns r0.. times the chunk
                copy_columns(k, F, N, r0, w, Fc, False)
                block_add_H(&chunk, k, Fc, 0, w, Oc, c == 0, Tc)
                if c == s.count - 1:
                    transpose(q, k, Oc, B, n_threads)
        elif by_chunk:  # B's columns r0.. = F chunkᵀ
            product_W(&chunk, k, F, Fc, Tc, n_threads)
            copy_columns(k, B, N, r0, w, Fc, True)
        else:  # B += F's columns r0.. times the chunk
            copy_columns(k, F, N, r0, w, Fc, False)
            product_H(&chunk, k, Fc, B if c == 0 else Oc, Tc, n_threads)
            if c:
                for i in range(k * q):
                    B[i] = B[i] + Oc[i]


cdef double stream_error(const XData* x, Py_ssize_t k, const floating* Wt,
                         const floating* H) noexcept nogil:
    """direct_error for an X out of core: ‖chunk − (its factor columns)ᵀ (other factor)‖²
    summed over the chunks (on Xᵀ's rows, the roles of W and H exchanged)."""
    cdef Source* s = x.source
    cdef Py_ssize_t N = x.m if x.fortran else x.n, q = x.n if x.fortran else x.m
    cdef Py_ssize_t c, r0, P = s.rows if s.rows > q else q
    cdef const floating* R = H if x.fortran else Wt
    cdef const floating* Q = Wt if x.fortran else H
    cdef floating* Fc = <floating*> s.scratch
    cdef floating* Tc = Fc + k * s.rows + k * q
    cdef double total = 0, d
    cdef XData chunk
    for c in range(s.count):
        if not fetch_chunk(x, c, &chunk, &r0):
            return 0
        copy_columns(k, R, N, r0, chunk.n, Fc, False)
        d = direct_error(&chunk, k, Fc, Q, Tc, k * P)
        total += d * d
    return sqrt(total)
