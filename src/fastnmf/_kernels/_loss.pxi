# The loss from Grams and products, the error formed directly, and the trace of a run
# (history, status, final error).
# Included by _common.pyx (one module: the cdef functions are declared in _common.pxd).


cdef double loss_sq(const XData* x, Py_ssize_t k, Py_ssize_t p, const floating* F,
                    const floating* B, const floating* G, const floating* A) noexcept nogil:
    """‖X − WH‖² = ‖X‖² − 2⟨F, B⟩ + ⟨G, A⟩ where B is F's product with X (F = Wᵀ or H)
    and G, A are the Grams WᵀW, HHᵀ: no n × m work."""
    return x.sqnorm - 2 * dot(k * p, F, B) + dot(k * k, G, A)


# The final error of a dense float64 X comes from the last loss unless the relative error
# is below 1e-3 (squared: FINAL_DIRECT); forming it directly costs about one product.
cdef double FINAL_DIRECT = 1e-6


cdef double accurate_loss_sq(const XData* x, Py_ssize_t k, const floating* Wt,
                            const floating* H, double err_sq, floating* T,
                            Py_ssize_t T_len) noexcept nogil:
    """``err_sq`` from the expanded formula, or — when the relative error is so small that
    the formula cancels (below 1e-6 in float64, 1e-3 in float32) and X is dense — the
    error formed directly (docs/algorithms.md, "Measuring the error")."""
    cdef double d
    if not formed(x, err_sq, 1e-12 if floating is double else 1e-6):
        return err_sq
    d = direct_error(x, k, Wt, H, T, T_len)
    return d * d


cdef inline bint formed(const XData* x, double err_sq, double near) noexcept nogil:
    """Whether the error is formed directly rather than taken from the loss: a dense X
    fitted closer than ``near`` (‖X − WH‖² / ‖X‖²)."""
    return not x.sparse and err_sq < near * x.sqnorm


cdef double direct_error(const XData* x, Py_ssize_t k, const floating* Wt,
                         const floating* H, floating* T, Py_ssize_t T_len) noexcept nogil:
    """‖X − WH‖_F for dense X, formed a block of rows at a time in T (no n × m temporary);
    an X out of core a chunk at a time (stream_error)."""
    cdef Py_ssize_t n = x.n, m = x.m, b = T_len // m, r0, rb, i, j
    cdef const floating* X = <const floating*> x.dense
    cdef double s = 0, d
    if x.source != NULL:
        return stream_error(x, k, Wt, H)
    if b > n:
        b = n
    r0 = 0
    while r0 < n:
        rb = b if r0 + b <= n else n - r0
        if x.fortran:
            for i in range(rb):
                for j in range(m):
                    T[i * m + j] = X[j * n + r0 + i]
        else:
            memcpy(T, X + r0 * m, rb * m * sizeof(floating))
        # T ← T − W[r0:r0+rb] H, with W rows taken as columns of Wt (k×n)
        gemm(True, False, <int> rb, <int> m, <int> k, <floating> -1, Wt + r0, <int> n, H,
             <int> m, <floating> 1, T, <int> m)
        for i in range(rb * m):
            d = T[i]
            s += d * d
        r0 += rb
    return sqrt(s)


# Entries of a history's first buffer; it doubles when full.
cdef Py_ssize_t HISTORY_START = 64


cdef void init_trace(Trace* t) noexcept nogil:
    """An empty trace: no history buffer yet (record allocates it), no hook."""
    t.history = NULL
    t.n_hist = 0
    t.capacity = 0
    t.out_of_memory = False
    t.n_iter = 0
    t.converged = False
    t.final_err = 0
    t.hook = NULL


cdef bint grow_history(Trace* t) noexcept nogil:
    """Double the history's buffer (C realloc: safe in any thread, no GIL); False if the
    memory is not there (the buffer is then unchanged)."""
    cdef Py_ssize_t capacity = 2 * t.capacity if t.capacity else HISTORY_START
    cdef double* grown = <double*> realloc(t.history, capacity * sizeof(double))
    if grown == NULL:
        return False
    t.history = grown
    t.capacity = capacity
    return True


cdef double record(Trace* t, double err_sq) noexcept nogil:
    """Append ‖X − WH‖_F (from its square, clamped at 0) to the history, growing it as it
    fills (a history as long as max_iter is never reserved); return it."""
    cdef double err = sqrt(err_sq) if err_sq > 0 else 0.0
    if not isfinite(err_sq):
        err = err_sq
    if t.n_hist < t.capacity or grow_history(t):
        t.history[t.n_hist] = err
        t.n_hist += 1
    else:
        t.out_of_memory = True
    return err


cdef int trace_status(const Trace* t, int status) noexcept nogil:
    """A solver's ``status``, or STATUS_NO_MEMORY if its history could not grow."""
    return STATUS_NO_MEMORY if status == STATUS_OK and t.out_of_memory else status


cdef object take_history(Trace* t):
    """The trace's history as a new float64 array; frees its buffer (call it once, also
    when the solve failed)."""
    cdef double[::1] out
    try:
        history = np.empty(t.n_hist, dtype=np.float64)
        out = history
        if t.n_hist:
            memcpy(&out[0], t.history, t.n_hist * sizeof(double))
    finally:
        free(t.history)
        t.history = NULL
        t.n_hist = t.capacity = 0
    return history


cdef int finish(const XData* x, Py_ssize_t k, const floating* Wt, const floating* H,
                floating* T, Py_ssize_t T_len, double err_sq, Trace* t) noexcept nogil:
    """Set the final error and the status. The last loss is accurate to about
    1e-16 · ‖X‖² / ‖X − WH‖² (relative): for a dense float64 X it is the final error
    unless the fit is closer than FINAL_DIRECT (then the error is formed directly, as it
    always is for float32); a sparse X always takes the loss (docs/algorithms.md)."""
    if not isfinite(err_sq):
        return STATUS_NONFINITE
    if (floating is float and not x.sparse) or formed(x, err_sq, FINAL_DIRECT):
        t.final_err = direct_error(x, k, Wt, H, T, T_len)
    else:
        t.final_err = sqrt(err_sq) if err_sq > 0 else 0.0
    if not isfinite(t.final_err):
        return STATUS_NONFINITE
    return STATUS_OK
