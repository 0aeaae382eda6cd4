# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""cd — coordinate descent / HALS (NMF-MATH.md, "cd"): one exact coordinate sweep per half-step."""

from cython cimport floating
from libc.stdint cimport uint64_t

from ._common cimport Params, hals_sweep, next_permutation


cdef double cd_half(Py_ssize_t k, Py_ssize_t p, floating* F, const floating* A,
                    const floating* B, double l1, double l2, floating* T, floating* C,
                    floating* S, floating* v, Py_ssize_t* perm, uint64_t* rng,
                    bint measure, const Params* prm) noexcept nogil:
    """Update F (k×p) given A = Gram of the other factor and B = its product with X.

    Returns the sweep's violation (Σ |projected gradient|) for the stopping test.
    """
    next_permutation(k, perm, prm.shuffle, rng)
    return hals_sweep(k, p, F, A, B, l1, l2, perm, v, measure, prm.n_threads)
