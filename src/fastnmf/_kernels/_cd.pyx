# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""cd — coordinate descent / HALS (docs/algorithms.md, "cd"): one exact coordinate sweep per
half-step, or with ``accelerate`` several (Gillis & Glineur 2012's accelerated HALS)."""

from cython cimport floating
from libc.stdint cimport uint64_t

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
    first = moved
    most = inner_sweeps(k, p, h.prm)
    for sweep in range(1, most):
        if not moved > INNER_RATIO * INNER_RATIO * first:
            break
        next_permutation(k, h.perm, h.prm.shuffle, h.rng)
        hals_sweep(k, p, F, A, B, h.l1, h.l2, h.perm, v, False, threads, &moved)
    return viol

# The entry points _solve.pyx dispatches to (_common.pxd, Kernel).
KERNEL = kernel_capsule(cd_half[float], cd_half[double], NULL, NULL, NULL)
