# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""cd — coordinate descent / HALS (docs/algorithms.md, "cd"): one exact coordinate sweep per
half-step, or with ``accelerate`` several (Gillis & Glineur 2012's accelerated HALS)."""

from cython cimport floating
from libc.stdint cimport uint64_t

from ._common cimport Params, hals_sweep, next_permutation

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


cdef double cd_half(Py_ssize_t k, Py_ssize_t p, floating* F, const floating* A,
                    const floating* B, double l1, double l2, floating* T, floating* C,
                    floating* S, floating* v, Py_ssize_t* perm, uint64_t* rng,
                    bint measure, const Params* prm) noexcept nogil:
    """Update F (k×p) given A = Gram of the other factor and B = its product with X.

    Returns the first sweep's violation (Σ |projected gradient| at the incoming F) for the
    stopping test.
    """
    cdef double viol, first, moved = 0
    cdef int sweep, most
    next_permutation(k, perm, prm.shuffle, rng)
    if not prm.accelerate:
        return hals_sweep(k, p, F, A, B, l1, l2, perm, v, measure, prm.n_threads, NULL)
    viol = hals_sweep(k, p, F, A, B, l1, l2, perm, v, measure, prm.n_threads, &moved)
    first = moved
    most = inner_sweeps(k, p, prm)
    for sweep in range(1, most):
        if not moved > INNER_RATIO * INNER_RATIO * first:
            break
        next_permutation(k, perm, prm.shuffle, rng)
        hals_sweep(k, p, F, A, B, l1, l2, perm, v, False, prm.n_threads, &moved)
    return viol
