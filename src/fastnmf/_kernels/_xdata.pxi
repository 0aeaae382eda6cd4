# X, as the kernels read it, and the workspace layout (_common.pxd): the X descriptor, its
# other-order copy for a tiny dense X, the sizes of the workspace regions.
# Included by _common.pyx (one module: the cdef functions are declared in _common.pxd).


cdef int prepare_x(XData* x, object X, Py_ssize_t n, Py_ssize_t m, double sqnorm,
                   const floating[:, ::1] like) except -1:
    """Fill ``x`` from X: a dense ndarray (C- or F-contiguous), the tuple
    (data, indptr, indices, data_t, indptr_t, indices_t) of X's and Xᵀ's CSR
    (int64 indptr, int32 indices), or a ChunkStream (X out of core), in the dtype of
    ``like`` (whose rows, k, are the factors'); Xᵀ's three empty when the call reads X by
    rows only (the row-block engine: x.cptr NULL). X must outlive ``x``."""
    cdef const floating[::1] xd, rd, cd
    cdef const int64_t[::1] rptr, cptr
    cdef const int32_t[::1] rind, cind
    x.n = n
    x.m = m
    x.sqnorm = sqnorm
    x.itemsize = sizeof(floating)
    x.entries = <double> n * m
    x.source = NULL
    x.rdata = x.cdata = NULL
    x.rptr = x.cptr = NULL
    x.rind = x.cind = NULL
    if isinstance(X, ChunkStream):
        if tuple(X.reader.shape) != (n, m):
            raise ValueError("X's stream does not match the factors' shapes")
        return (<ChunkStream> X).attach(x, like.shape[0], sizeof(floating))
    if isinstance(X, tuple):
        rd, rptr, rind, cd, cptr, cind = X
        if rptr.shape[0] != n + 1 or cptr.shape[0] not in (0, m + 1):
            raise ValueError("sparse operands do not match the factors' shapes")
        x.sparse = True
        x.fortran = False
        x.dense = NULL
        x.other = NULL
        x.rdata = &rd[0] if rd.shape[0] else NULL
        x.rptr = &rptr[0]
        x.rind = &rind[0] if rind.shape[0] else NULL
        x.cdata = &cd[0] if cd.shape[0] else NULL
        x.cptr = &cptr[0] if cptr.shape[0] else NULL
        x.cind = &cind[0] if cind.shape[0] else NULL
        x.entries = <double> rptr[n]
        return 0
    if X.shape != (n, m) or not (X.flags.c_contiguous or X.flags.f_contiguous):
        raise ValueError("X must be C- or F-contiguous and match the factors' shapes")
    x.sparse = False
    x.fortran = not X.flags.c_contiguous
    xd = X.ravel(order="K")  # a view: X is contiguous
    x.dense = &xd[0]
    x.other = NULL
    return 0


cdef double x_entries(const XData* x) noexcept nogil:
    """The entries of X a product reads: n·m dense, nnz sparse (validation drops explicit
    zeros: they change nothing, accelerate's sweep cap included)."""
    return x.entries


cdef Py_ssize_t workspace_len(Py_ssize_t n, Py_ssize_t m, Py_ssize_t k, int n_threads,
                              Py_ssize_t region, Py_ssize_t bt) noexcept nogil:
    """Entries of one call's workspace (the layout in _common.pxd), ``region`` those of the
    solver's own region, ``bt`` those of B and of T each (k·P, or less: _solve's
    product_len)."""
    cdef Py_ssize_t P = n if n > m else m
    cdef Py_ssize_t size = 4 * k * k + 2 * bt + vectors_len(k, P, n_threads) + region
    if keeps_other_order(n, m, k):
        size += n * m  # a tiny dense X in its other order, last (see other_order)
    return size


cdef inline bint keeps_other_order(Py_ssize_t n, Py_ssize_t m, Py_ssize_t k) noexcept nogil:
    return n * m * k <= OTHER_ORDER_WORK


cdef bint other_order(XData* x, Py_ssize_t k, floating* end) noexcept nogil:
    """For a tiny dense X, store X in its other order in the n·m entries before ``end``
    (the workspace's end) and point x.other at it: both products then run as plain
    (untransposed) BLAS calls, which OpenBLAS serves by its small-matrix kernels, several
    times faster than its packing path at these sizes (50 x 30, k = 5: 25 % of a call).
    Only up to OTHER_ORDER_WORK multiply-adds: from 100 x 80, k = 8 on, two such calls
    side by side (nmf_batch on two cores) ran 8 % slower than the packing path, which
    the copy no longer pays for. Not where narrow_whole's kernels form the products on X as
    it is stored; with the copy, the narrow kernels may take each product on the layout
    that suits it (narrow_both). Returns whether it did."""
    cdef floating* O = end - x.n * x.m
    if (x.sparse or x.source != NULL or not keeps_other_order(x.n, x.m, k)
            or narrow_whole(x, k)):
        return False
    if x.fortran:  # X stored m×n: O is X in C order
        transpose(x.m, x.n, <const floating*> x.dense, O, 1)
    else:
        transpose(x.n, x.m, <const floating*> x.dense, O, 1)
    x.other = O
    return True


cdef Py_ssize_t vectors_len(Py_ssize_t k, Py_ssize_t P, int n_threads) noexcept nogil:
    """Entries of the workspace's region v: per thread acc_stride(k) (a sparse row's
    accumulator), then two doubles per sweep block (its violation and change) with room
    for alignment, then GRAM_PIECES k×k pieces of a Gram (factor_gram)."""
    return sums_at(k, n_threads) + sums_len(P) + GRAM_PIECES * k * k


cdef inline Py_ssize_t sums_at(Py_ssize_t k, int n_threads) noexcept nogil:
    """Where the per-block sums start in region v (after the threads' accumulators)."""
    return n_threads * acc_stride(k)


cdef inline Py_ssize_t sums_len(Py_ssize_t P) noexcept nogil:
    """Entries for two doubles per sweep block, with room for alignment."""
    return 4 * (P // SWEEP_MIN + 3)


cdef inline Py_ssize_t acc_stride(Py_ssize_t k) noexcept nogil:
    """Entries between two threads' accumulators of k entries: k rounded up to 16, plus 16
    (at least 64 bytes apart: no cache line written by two threads; 20000 x 5000 CSR,
    k = 30, with accumulators k apart the sparse products ran 1.7x slower)."""
    return (k + 15) // 16 * 16 + 16
