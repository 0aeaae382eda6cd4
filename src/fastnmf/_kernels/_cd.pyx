# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""cd — coordinate descent / HALS (docs/algorithms.md, "cd"): one exact coordinate sweep per
half-step, or with ``accelerate`` several (Gillis & Glineur 2012's accelerated HALS).

Accelerated, the number of sweeps is decided over the whole factor (each sweep's move
against the first's), so the row-block engine runs it on a guess (Params.speculative): each
block runs ``guess`` sweeps and adds each sweep's move into the evidence; ``cd_settle``
reads off the count the whole half-step takes and sweeps on if that is more (the pass kept
B); if fewer, the engine redoes the half-step from the factor before the pass.
"""

from cython cimport floating
from libc.stdint cimport uint64_t, uintptr_t

from ._common cimport Half, Params, kernel_capsule, hals_sweep, next_permutation

# Accelerated HALS: after the first sweep, sweep again while the last sweep moved F by more
# than INNER_RATIO times the first sweep's move (‖ΔF‖_F), at most 1 + INNER_COST · ρ
# sweeps in all, ρ = (multiply-adds of the product with X) / (those of one sweep), so that
# the extra sweeps cost at most INNER_COST times the product they save.
cdef double INNER_RATIO = 0.1
cdef double INNER_COST = 0.5


cdef int inner_sweeps(Py_ssize_t k, Py_ssize_t p, const Params* prm) noexcept nogil:
    """The most sweeps one accelerated half-step of F (k×p) may run."""
    cdef double rho = prm.x_entries / (<double> p * k)  # (x_entries · k) / (p · k²)
    return 1 + <int> (INNER_COST * rho)


cdef double cd_half(const Half* h, floating* F, const floating* A,
                    const floating* B) noexcept nogil:
    """Update F (k×p) given A = Gram of the other factor and B = its product with X.

    Returns the first sweep's violation (Σ |projected gradient| at the incoming F) for the
    stopping test.
    """
    cdef double viol, first, moved = 0
    cdef int sweep, most
    cdef Py_ssize_t k = h.k, p = h.p
    cdef floating* v = <floating*> h.v
    cdef int threads = h.prm.n_threads
    if not h.keep_order:
        next_permutation(k, h.perm, h.prm.shuffle, h.rng)
    if not h.prm.accelerate:
        return hals_sweep(k, p, F, A, B, h.l1, h.l2, h.perm, v, h.measure, threads, NULL)
    viol = hals_sweep(k, p, F, A, B, h.l1, h.l2, h.perm, v, h.measure, threads, &moved)
    if h.guess >= 0:
        cd_block(h, F, A, B, moved)
        return viol
    first = moved
    most = inner_sweeps(k, p, h.prm)
    for sweep in range(1, most):
        if not moved > INNER_RATIO * INNER_RATIO * first:
            break
        next_permutation(k, h.perm, h.prm.shuffle, h.rng)
        hals_sweep(k, p, F, A, B, h.l1, h.l2, h.perm, v, False, threads, &moved)
    return viol

cdef Py_ssize_t cd_region_len(Py_ssize_t k, Py_ssize_t P, double beta) noexcept nogil:
    """Entries of cd's own region: one sweep order (k indices, 8-byte aligned) for a block
    of the engine."""
    return 2 * k + 2


cdef inline Py_ssize_t* block_order(const Half* h) noexcept nogil:
    return <Py_ssize_t*> ((<uintptr_t> h.own + 7) & ~(<uintptr_t> 7))


cdef void cd_block(const Half* h, floating* F, const floating* A, const floating* B,
                   double moved) noexcept nogil:
    """An accelerated half-step's sweeps 2..guess on a block of the engine (the first is
    done and moved F by ``moved``): the whole half-step's orders, drawn from a copy of the
    generator's state; each sweep's move added into the evidence."""
    cdef uint64_t state = h.rng[0]
    cdef Py_ssize_t* order = block_order(h)
    cdef int sweep
    h.evidence[0] += moved
    for sweep in range(1, h.guess):
        next_permutation(h.k, order, h.prm.shuffle, &state)
        hals_sweep(h.k, h.p, F, A, B, h.l1, h.l2, order, <floating*> h.v, False, 1, &moved)
        h.evidence[sweep] += moved


cdef int cd_settle(const Half* h, floating* F, const floating* A, const floating* B,
                   const double* evidence, bint* redo) noexcept nogil:
    """The sweeps the whole accelerated half-step runs (_common.pxd, SettleF64): from the
    moves of the guessed ones; more are run here on F, fewer are redone. Without F (the
    blocks are elsewhere), more than the guess are redone too, on a guess of the cap: its
    evidence then gives the count."""
    cdef Py_ssize_t k = h.k, p = h.p
    cdef int most = inner_sweeps(k, p, h.prm), sweeps = 1, i
    cdef double bar = INNER_RATIO * INNER_RATIO * evidence[0], moved
    while sweeps < h.guess and sweeps < most and evidence[sweeps - 1] > bar:
        sweeps += 1
    redo[0] = sweeps < h.guess  # it stops before the guess
    if redo[0]:
        return sweeps
    if F == NULL and sweeps < most and evidence[sweeps - 1] > bar:
        redo[0] = True  # it goes on past the guess
        return most
    for i in range(1, h.guess):  # the orders the blocks drew from a copy
        next_permutation(k, h.perm, h.prm.shuffle, h.rng)
    moved = evidence[sweeps - 1]
    while sweeps < most and moved > bar:
        next_permutation(k, h.perm, h.prm.shuffle, h.rng)
        hals_sweep(k, p, F, A, B, h.l1, h.l2, h.perm, <floating*> h.v, False,
                   h.prm.n_threads, &moved)
        sweeps += 1
    return sweeps


cdef Py_ssize_t cd_spec_len(Py_ssize_t k, Py_ssize_t p, const Params* prm) noexcept nogil:
    """The evidence of an accelerated half-step: each sweep's move, up to the cap."""
    return inner_sweeps(k, p, prm)

# The entry points _solve.pyx dispatches to (_common.pxd, Kernel).
KERNEL = kernel_capsule(cd_half[float], cd_half[double], cd_region_len, NULL, NULL,
                        cd_settle[float], cd_settle[double], cd_spec_len)
