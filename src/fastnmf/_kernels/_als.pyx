# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""als — projected ALS made safe (docs/algorithms.md, "als").

Each half-step: the least-squares proposal P = max(0, (A + l2 I)⁻¹ (B − l1)) through a
Cholesky factorization (with a growing ridge if A is singular); one HALS sweep (the cd
update, same A and B) on P and one on the current factor F; F becomes whichever has the
lower half-step objective g(F) = ½⟨FFᵀ, A⟩ + ½ l2 ‖F‖² − ⟨F, B⟩ + l1 ΣF. A proposal that
zeroes a whole live row is not considered (HALS never revives it: its Gram diagonal
becomes 0). Each half-step is monotone and never worse than cd's from the same point.

That choice is over the whole factor, so the row-block engine runs it on a guess
(Params.speculative): each block computes both candidates, keeps the guessed one, and adds
into the evidence the pieces of both objectives and of the zero-row test; ``als_settle``
takes the whole half-step's choice from them and, if it is not the guess, redoes the
half-step from the factor before the pass (the pass kept B).
"""

from cython cimport floating
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

from ._blas cimport gram, cholesky, chol_solve, dot
from ._common cimport Half, Params, kernel_capsule, hals_sweep, next_permutation

# The evidence (_common.pxd, Half.evidence): g of the swept proposal and of the swept
# factor, the blocks whose system could not be factored, then per component the blocks
# where the proposal's row and the incoming factor's row have a non-zero entry.
cdef enum:
    EV_G_PROPOSAL = 0
    EV_G_FACTOR = 1
    EV_SINGULAR = 2
    EV_ROWS = 3

# Ridge tries when A + l2 I is not numerically positive definite.
cdef int RIDGE_TRIES = 8


cdef double half_objective(Py_ssize_t k, Py_ssize_t p, const floating* F, const floating* A,
                           const floating* B, double l1, double l2,
                           floating* S) noexcept nogil:
    """g(F) = ½⟨FFᵀ, A⟩ + ½ l2 ‖F‖² − ⟨F, B⟩ + l1 ΣF, with S (k×k) as scratch."""
    cdef Py_ssize_t i
    cdef double trace = 0, total = 0
    gram(<int> k, <int> p, F, <int> p, S)
    for i in range(k):
        trace += S[i * k + i]
    if l1 != 0:
        for i in range(k * p):
            total += F[i]
    return 0.5 * dot(k * k, S, A) + 0.5 * l2 * trace - dot(k * p, F, B) + l1 * total


cdef bint kills_component(Py_ssize_t k, Py_ssize_t p, const floating* P,
                          const floating* F) noexcept nogil:
    """True if some row of P is all zero where the same row of F is not."""
    cdef Py_ssize_t c, j
    cdef bint p_zero, f_zero
    for c in range(k):
        p_zero = f_zero = True
        for j in range(p):
            if P[c * p + j] != 0:
                p_zero = False
                break
        if p_zero:
            for j in range(p):
                if F[c * p + j] != 0:
                    f_zero = False
                    break
            if not f_zero:
                return True
    return False


cdef int factor_system(Py_ssize_t k, const floating* A, double l2, floating* C) noexcept nogil:
    """C ← Cholesky factor of A + (l2 + ridge) I; 0 on success."""
    cdef Py_ssize_t i
    cdef double trace = 0, ridge = 0
    cdef int info, attempt
    for i in range(k):
        trace += A[i * k + i]
    if trace + k * l2 <= 0:
        return -1
    for attempt in range(RIDGE_TRIES + 1):
        memcpy(C, A, k * k * sizeof(floating))
        for i in range(k):
            C[i * k + i] += <floating> (l2 + ridge)
        info = cholesky(<int> k, C)
        if info == 0:
            return 0
        ridge = (trace / k) * (1e-10 if floating is double else 1e-5) if ridge == 0 else ridge * 100
    return info


cdef void count_rows(Py_ssize_t k, Py_ssize_t p, const floating* F,
                     double* counts) noexcept nogil:
    """Add 1 into counts[c] for each row c of F (k×p) with a non-zero entry."""
    cdef Py_ssize_t c, j
    for c in range(k):
        for j in range(p):
            if F[c * p + j] != 0:
                counts[c] += 1
                break


cdef bint evidence_kills(Py_ssize_t k, const double* rows) noexcept nogil:
    """kills_component over the whole factor from the blocks' counts (rows[c]: of the
    candidate, rows[k + c]: of the incoming factor)."""
    cdef Py_ssize_t c
    for c in range(k):
        if rows[c] == 0 and rows[k + c] != 0:
            return True
    return False


cdef double als_half(const Half* h, floating* F, const floating* A,
                     const floating* B) noexcept nogil:
    """Update F (k×p) in place; T (k×p) holds the proposal. Returns the violation
    (Σ |projected gradient|) of the sweep from F, that is at the incoming point as cd's is:
    the proposal's would be near zero from the first iteration on when the least-squares
    solution is already feasible, and the stopping test relative to it would never hold."""
    cdef Py_ssize_t k = h.k, p = h.p, i, kp = h.k * h.p
    cdef double l1 = h.l1, l2 = h.l2, viol
    cdef floating fl1 = l1
    cdef floating* T = <floating*> h.T
    cdef floating* C = <floating*> h.C
    cdef floating* v = <floating*> h.v
    cdef Py_ssize_t* perm = h.perm
    cdef bint measure = h.measure
    cdef const Params* prm = h.prm
    cdef double* ev = h.evidence
    if not h.keep_order:
        next_permutation(k, perm, prm.shuffle, h.rng)
    if factor_system(k, A, l2, C) != 0:
        if h.guess >= 0:
            ev[EV_SINGULAR] += 1
        return hals_sweep(k, p, F, A, B, l1, l2, perm, v, measure, prm.n_threads, NULL)
    for i in range(kp):
        T[i] = B[i] - fl1
    chol_solve(<int> k, <int> p, C, T)
    for i in range(kp):
        if not T[i] > 0:  # also clears a NaN from a near-singular solve
            T[i] = 0
    if h.guess >= 0:  # a block of the engine: both candidates, the guessed one kept
        count_rows(k, p, T, ev + EV_ROWS)
        count_rows(k, p, F, ev + EV_ROWS + k)
        hals_sweep(k, p, T, A, B, l1, l2, perm, v, False, prm.n_threads, NULL)
        viol = hals_sweep(k, p, F, A, B, l1, l2, perm, v, measure, prm.n_threads, NULL)
        ev[EV_G_PROPOSAL] += half_objective(k, p, T, A, B, l1, l2, <floating*> h.S)
        ev[EV_G_FACTOR] += half_objective(k, p, F, A, B, l1, l2, <floating*> h.S)
        if h.guess:
            memcpy(F, T, kp * sizeof(floating))
        return viol
    if kills_component(k, p, T, F):
        return hals_sweep(k, p, F, A, B, l1, l2, perm, v, measure, prm.n_threads, NULL)
    hals_sweep(k, p, T, A, B, l1, l2, perm, v, False, prm.n_threads, NULL)
    viol = hals_sweep(k, p, F, A, B, l1, l2, perm, v, measure, prm.n_threads, NULL)
    if half_objective(k, p, T, A, B, l1, l2, <floating*> h.S) < \
            half_objective(k, p, F, A, B, l1, l2, <floating*> h.S):
        memcpy(F, T, kp * sizeof(floating))
    return viol


cdef int als_settle(const Half* h, floating* F, const floating* A, const floating* B,
                    const double* evidence, bint* redo) noexcept nogil:
    """The whole half-step's choice (_common.pxd, SettleF64): 1 the proposal, 0 the
    factor; another choice than the guess is redone."""
    cdef int outcome = (evidence[EV_SINGULAR] == 0
                        and not evidence_kills(h.k, evidence + EV_ROWS)
                        and evidence[EV_G_PROPOSAL] < evidence[EV_G_FACTOR])
    redo[0] = outcome != h.guess
    return outcome


cdef Py_ssize_t als_spec_len(Py_ssize_t k, Py_ssize_t p, const Params* prm) noexcept nogil:
    return EV_ROWS + 2 * k

# The entry points _solve.pyx dispatches to (_common.pxd, Kernel).
KERNEL = kernel_capsule(als_half[float], als_half[double], NULL, NULL, NULL,
                        als_settle[float], als_settle[double], als_spec_len)
