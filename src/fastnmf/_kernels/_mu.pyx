# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""mu — multiplicative updates (docs/algorithms.md, "mu"; Lee & Seung 2001), Frobenius loss.

F ← F ∘ B ⊘ (A F + l1 + l2 F), a zero denominator replaced by float32's eps as in
scikit-learn. Monotone non-increasing in the (regularized) objective.
"""

from cython cimport floating
from libc.stdint cimport uint64_t, int32_t, int64_t

from libc.math cimport pow, log, sqrt, isfinite

from ._blas cimport gemm
from ._common cimport (XData, Half, Params, Trace, kernel_capsule, STATUS_OK,
                      STATUS_NONFINITE, STATUS_STOPPED, vectors_len, record, tick, at_check)

# scikit-learn's EPSILON: numpy.finfo(numpy.float32).eps
cdef double MU_EPS = 1.1920928955078125e-07


cdef double mu_half(const Half* h, floating* F, const floating* A,
                    const floating* B) noexcept nogil:
    """Update F (k×p) in place; T (k×p) holds the denominator. Returns 0 (no violation)."""
    cdef Py_ssize_t k = h.k, p = h.p, i, kp = h.k * h.p
    cdef floating den, fl1 = h.l1, fl2 = h.l2, eps = <floating> MU_EPS
    cdef floating* T = <floating*> h.T
    gemm(False, False, <int> k, <int> p, <int> k, <floating> 1, A, <int> k, F, <int> p,
         <floating> 0, T, <int> p)
    for i in range(kp):
        den = T[i] + fl1 + fl2 * F[i]
        if den == 0:
            den = eps
        F[i] = F[i] * (B[i] / den)
    return 0


# ---------------------------------------------------------------------------------------
# β-divergence losses (β ≠ 2): scikit-learn's multiplicative updates (Févotte & Idier 2011)
# with its exponent γ, its float32-eps guards and its zeroing of tiny factor entries.
# Every pass over X takes a block of rows of X and of WH at a time (Y1, Y2: no n × m
# temporary); a sparse X is read only at its non-zeros, except where the loss needs WH
# everywhere (β ∉ {0, 1}), formed a row at a time.
# ---------------------------------------------------------------------------------------


cdef double EPS64 = 2.220446049250313e-16


cdef inline double numerator_term(double beta, double x, double wh) noexcept nogil:
    """X ∘ (WH)^(β−2), WH floored at eps where the power is negative (scikit-learn)."""
    if beta < 2 and wh < MU_EPS:
        wh = MU_EPS
    if beta == 1:
        return x / wh
    if beta == 0:
        return x * (1 / wh) * (1 / wh)
    return pow(wh, beta - 2) * x


cdef inline double denominator_term(double beta, double wh) noexcept nogil:
    """(WH)^(β−1), WH floored at eps where the power is negative."""
    if beta < 1 and wh < MU_EPS:
        wh = MU_EPS
    return pow(wh, beta - 1)


cdef inline floating x_at(const floating* X, const XData* x, Py_ssize_t i,
                          Py_ssize_t j) noexcept nogil:
    """X[i, j] of a dense X stored in C or Fortran order."""
    return X[j * x.n + i] if x.fortran else X[i * x.m + j]


cdef void wh_block(Py_ssize_t k, Py_ssize_t n, Py_ssize_t m, const floating* Wt,
                   const floating* H, Py_ssize_t r0, Py_ssize_t rb,
                   floating* out) noexcept nogil:
    """out (rb×m) = W[r0:r0+rb] H, W's rows taken as columns of Wt (k×n)."""
    gemm(True, False, <int> rb, <int> m, <int> k, <floating> 1, Wt + r0, <int> n, H,
         <int> m, <floating> 0, out, <int> m)


cdef inline void rows_major(Py_ssize_t k, Py_ssize_t n, Py_ssize_t m, const floating* Wt,
                            const floating* H, floating* Wr, floating* Ht) noexcept nogil:
    """Wr (n×k) = W and Ht (m×k) = Hᵀ, row-major: the k-vectors a sparse pass gathers."""
    cdef Py_ssize_t c, i, j
    for c in range(k):
        for i in range(n):
            Wr[i * k + c] = Wt[c * n + i]
        for j in range(m):
            Ht[j * k + c] = H[c * m + j]


cdef inline Py_ssize_t block_rows(Py_ssize_t n, Py_ssize_t m, Py_ssize_t Y_len) noexcept nogil:
    """Rows of X (and of WH) per block of a dense pass: as many as Y_len entries hold."""
    cdef Py_ssize_t b = Y_len // m
    return b if b < n else n


cdef void beta_products(const XData* x, double beta, Py_ssize_t k, const floating* Wt,
                        const floating* H, bint for_W, floating* num, floating* den,
                        floating* Y1, floating* Y2, Py_ssize_t Y_len,
                        floating* z) noexcept nogil:
    """The numerator and denominator of one multiplicative half-step (component-major):

    for W: num (k×n) = H (X ∘ (WH)^(β−2))ᵀ, den (k×n) = H ((WH)^(β−1))ᵀ;
    for H: num (k×m) = Wᵀ (X ∘ (WH)^(β−2)),  den (k×m) = Wᵀ (WH)^(β−1).
    For β = 1 the denominator is a row sum of the other factor (filled by the caller).
    """
    cdef Py_ssize_t n = x.n, m = x.m, b, r0, rb, i, j, c, p, q, r
    cdef Py_ssize_t rows = n if for_W else m, cols = m if for_W else n
    cdef const int64_t* ptr = x.rptr if for_W else x.cptr
    cdef const int32_t* ind = x.rind if for_W else x.cind
    cdef const floating* data = <const floating*> (x.rdata if for_W else x.cdata)
    cdef const floating* mine       # this side's factor, row-major (rows×k)
    cdef const floating* other      # the other side's, row-major (cols×k)
    cdef floating* acc_k = z + 2 * (n if n > m else m)
    cdef floating acc
    cdef floating* Wr
    cdef floating* Ht
    cdef double wh, v, xv
    if not x.sparse:
        b = block_rows(n, m, Y_len)
        r0 = 0
        while r0 < n:
            rb = b if r0 + b <= n else n - r0
            wh_block(k, n, m, Wt, H, r0, rb, Y2)
            for i in range(rb):
                for j in range(m):
                    wh = Y2[i * m + j]
                    xv = x_at(<const floating*> x.dense, x, r0 + i, j)
                    Y1[i * m + j] = <floating> numerator_term(beta, xv, wh)
                    if beta != 1:
                        Y2[i * m + j] = <floating> denominator_term(beta, wh)
            if for_W:  # columns r0.. of num, den (k×n) = H (k×m) · Y[rb×m]ᵀ
                gemm(False, True, <int> k, <int> rb, <int> m, <floating> 1, H, <int> m, Y1,
                     <int> m, <floating> 0, num + r0, <int> n)
                if beta != 1:
                    gemm(False, True, <int> k, <int> rb, <int> m, <floating> 1, H, <int> m,
                         Y2, <int> m, <floating> 0, den + r0, <int> n)
            else:      # num, den (k×m) += Wt[:, r0:r0+rb] · Y (rb×m)
                gemm(False, False, <int> k, <int> m, <int> rb, <floating> 1, Wt + r0,
                     <int> n, Y1, <int> m, <floating> (0 if r0 == 0 else 1), num, <int> m)
                if beta != 1:
                    gemm(False, False, <int> k, <int> m, <int> rb, <floating> 1, Wt + r0,
                         <int> n, Y2, <int> m, <floating> (0 if r0 == 0 else 1), den,
                         <int> m)
            r0 += rb
        return
    # Sparse: W row-major (n×k) in Y1, Hᵀ (m×k) in Y2; the rows of X (for W) or of Xᵀ (for
    # H) are gathered; z holds a dense row of WH (P) and its transformed copy (P).
    Wr, Ht = Y1, Y2
    rows_major(k, n, m, Wt, H, Wr, Ht)
    if for_W:
        mine, other = Wr, Ht
    else:
        mine, other = Ht, Wr
    for r in range(rows):
        for c in range(k):
            acc_k[c] = 0
        for p in range(ptr[r], ptr[r + 1]):
            q = ind[p]
            wh = 0
            for c in range(k):
                wh += mine[r * k + c] * other[q * k + c]
            v = numerator_term(beta, data[p], wh)
            for c in range(k):
                acc_k[c] += <floating> v * other[q * k + c]
        for c in range(k):
            num[c * rows + r] = acc_k[c]
        if beta != 1:  # the dense row r of WH (or of (WH)ᵀ), then other ᵀ · its power
            for q in range(cols):
                wh = 0
                for c in range(k):
                    wh += mine[r * k + c] * other[q * k + c]
                z[q] = <floating> denominator_term(beta, wh)
            for c in range(k):
                acc = 0
                for q in range(cols):
                    acc += other[q * k + c] * z[q]
                den[c * rows + r] = acc


cdef void beta_update(Py_ssize_t k, Py_ssize_t p, floating* F, const floating* num,
                      floating* den, const floating* other_sum, double beta, double gamma,
                      double l1, double l2, double zero_below) noexcept nogil:
    """F ← F ∘ (num ⊘ (den + l1 + l2 F))^γ, den = other_sum for β = 1; a zero denominator
    becomes eps; then entries below ``zero_below`` become 0 (scikit-learn's stabilization)."""
    cdef Py_ssize_t c, j, i
    cdef double d, delta
    for c in range(k):
        for j in range(p):
            i = c * p + j
            d = other_sum[c] if beta == 1 else den[i]
            if l1 > 0:
                d = d + l1
            if l2 > 0:
                d = d + l2 * F[i]
            if d == 0:
                d = MU_EPS
            delta = num[i] / d
            if gamma != 1:
                delta = pow(delta, gamma)
            F[i] = <floating> (F[i] * delta)
            if F[i] < zero_below:
                F[i] = 0


cdef double beta_error(const XData* x, double beta, Py_ssize_t k, const floating* Wt,
                       const floating* H, floating* Y1, floating* Y2, Py_ssize_t Y_len,
                       floating* z) noexcept nogil:
    """sqrt(2 · D_β(X ‖ WH)) as scikit-learn's _beta_divergence(square_root=True): the X
    terms only where X > eps, WH floored at eps there."""
    cdef Py_ssize_t n = x.n, m = x.m, b, r0, rb, i, j, c, p, q
    cdef double xv, wh, res = 0, sum_x = 0, sum_xw = 0, sum_x_beta = 0, sum_wh_beta = 0
    cdef double sum_log = 0, sum_div = 0, sum_W, sum_H
    cdef double s
    cdef floating* Wr
    cdef floating* Ht
    if not x.sparse:
        b = block_rows(n, m, Y_len)
        r0 = 0
        while r0 < n:
            rb = b if r0 + b <= n else n - r0
            wh_block(k, n, m, Wt, H, r0, rb, Y2)
            for i in range(rb):
                for j in range(m):
                    wh = Y2[i * m + j]
                    if beta != 0 and beta != 1:
                        sum_wh_beta += pow(wh, beta)
                    xv = x_at(<const floating*> x.dense, x, r0 + i, j)
                    if xv > MU_EPS:
                        accumulate_x_terms(beta, xv, wh, &sum_x, &sum_xw, &sum_x_beta,
                                           &sum_log, &sum_div)
            r0 += rb
    else:
        Wr, Ht = Y1, Y2
        rows_major(k, n, m, Wt, H, Wr, Ht)
        for i in range(n):
            for p in range(x.rptr[i], x.rptr[i + 1]):
                xv = (<const floating*> x.rdata)[p]
                if xv > MU_EPS:
                    q = x.rind[p]
                    wh = 0
                    for c in range(k):
                        wh += Wr[i * k + c] * Ht[q * k + c]
                    accumulate_x_terms(beta, xv, wh, &sum_x, &sum_xw, &sum_x_beta,
                                       &sum_log, &sum_div)
            if beta != 0 and beta != 1:
                for q in range(m):
                    wh = 0
                    for c in range(k):
                        wh += Wr[i * k + c] * Ht[q * k + c]
                    sum_wh_beta += pow(wh, beta)
    if beta == 1:
        s = 0  # Σ WH = (Σ_i W[i, :]) · (Σ_j H[:, j])
        for c in range(k):
            sum_W = 0
            sum_H = 0
            for i in range(n):
                sum_W += Wt[c * n + i]
            for j in range(m):
                sum_H += H[c * m + j]
            s += sum_W * sum_H
        res = sum_log + s - sum_x
    elif beta == 0:
        res = sum_div - <double> n * m - sum_log
    else:
        res = (sum_x_beta - beta * sum_xw + sum_wh_beta * (beta - 1)) / (beta * (beta - 1))
    return sqrt(2 * res) if res > 0 else (0.0 if res == res else res)


cdef inline void accumulate_x_terms(double beta, double xv, double wh, double* sum_x,
                                    double* sum_xw, double* sum_x_beta, double* sum_log,
                                    double* sum_div) noexcept nogil:
    if wh < MU_EPS:
        wh = MU_EPS
    if beta == 1:
        sum_x[0] += xv
        sum_log[0] += xv * log(xv / wh)
    elif beta == 0:
        sum_div[0] += xv / wh
        sum_log[0] += log(xv / wh)
    else:
        sum_xw[0] += xv * pow(wh, beta - 1)
        sum_x_beta[0] += pow(xv, beta)


cdef int mu_loss_loop(const XData* x, Py_ssize_t k, floating* Wt, floating* H,
                      floating* work, const Params* p, Trace* t) noexcept nogil:
    """mu for a β-divergence (β ≠ 2), scikit-learn's loop: W, then H (with the new W),
    each F ← F ∘ (num ⊘ den)^γ with γ = 1/(2−β) for β < 1, 1/(β−1) for β > 2, else 1;
    W entries below float64's eps are zeroed for β < 1, H's for β ≤ 1. The error
    sqrt(2 D_β) is checked every ``check_every`` iterations: stop when (previous − error)
    / initial error < tol."""
    cdef Py_ssize_t n = x.n, m = x.m, P = n if n > m else m, kk = k * k, c, i, j
    cdef floating* num = work + 4 * kk
    cdef floating* den = num + k * P
    cdef floating* Y1 = den + k * P + vectors_len(k, P, p.n_threads)
    cdef floating* Y2 = Y1 + k * P
    cdef floating* z = Y2 + k * P
    cdef floating* sums = z + 2 * P + k   # k row sums of the fixed factor (β = 1)
    cdef double beta = p.beta, gamma = 1.0, err, err0, prev
    cdef double half_work = <double> n * m * k  # a half-step's multiply-adds (WH by blocks)
    cdef bint conv
    cdef int it
    if beta < 1:
        gamma = 1.0 / (2.0 - beta)
    elif beta > 2:
        gamma = 1.0 / (beta - 1.0)
    t.n_hist = 0
    t.n_iter = 0
    t.converged = False
    err = beta_error(x, beta, k, Wt, H, Y1, Y2, k * P, z)
    if not isfinite(err):
        return STATUS_NONFINITE
    err0 = prev = record(t, err * err)
    if at_check(t, 0, 0, err0):
        return STATUS_STOPPED
    for it in range(1, p.max_iter + 1):
        beta_products(x, beta, k, Wt, H, True, num, den, Y1, Y2, k * P, z)
        if beta == 1:
            for c in range(k):
                sums[c] = 0
                for j in range(m):
                    sums[c] += H[c * m + j]
        beta_update(k, n, Wt, num, den, sums, beta, gamma, p.l1_W, p.l2_W,
                    EPS64 if beta < 1 else 0.0)
        if p.update_H:
            beta_products(x, beta, k, Wt, H, False, num, den, Y1, Y2, k * P, z)
            if beta == 1:
                for c in range(k):
                    sums[c] = 0
                    for i in range(n):
                        sums[c] += Wt[c * n + i]
            beta_update(k, m, H, num, den, sums, beta, gamma, p.l1_H, p.l2_H,
                        EPS64 if beta <= 1 else 0.0)
        t.n_iter = it
        if it % p.check_every:
            if tick(t, 2 * half_work):
                return STATUS_STOPPED
            continue
        err = beta_error(x, beta, k, Wt, H, Y1, Y2, k * P, z)
        if not isfinite(err):
            return STATUS_NONFINITE
        record(t, err * err)
        conv = err0 == 0 or (prev - err) / err0 < p.tol
        prev = err
        t.converged = conv
        if at_check(t, 3 * half_work, it, err):
            return STATUS_STOPPED
        if conv and p.tol > 0:
            break
    t.final_err = beta_error(x, beta, k, Wt, H, Y1, Y2, k * P, z)
    return STATUS_OK if isfinite(t.final_err) else STATUS_NONFINITE


cdef Py_ssize_t mu_region_len(Py_ssize_t k, Py_ssize_t P, double beta) noexcept nogil:
    """Entries of mu's own region: none for β = 2; else Y1, Y2 (k×P each: blocks of rows of
    X and WH) and z (2P + 2k), which mu_loss_loop carves (its region starts where the
    workspace's v ends)."""
    return 0 if beta == 2 else 2 * k * P + 2 * P + 2 * k


# The entry points _solve.pyx dispatches to (_common.pxd, Kernel).
KERNEL = kernel_capsule(mu_half[float], mu_half[double], mu_region_len,
                        mu_loss_loop[float], mu_loss_loop[double])
