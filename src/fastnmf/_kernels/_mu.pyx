# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""mu — multiplicative updates (NMF-MATH.md, "mu"; Lee & Seung 2001), Frobenius loss.

F ← F ∘ B ⊘ (A F + l1 + l2 F), a zero denominator replaced by float32's eps as in
scikit-learn. Monotone non-increasing in the (regularized) objective.
"""

from cython cimport floating
from libc.stdint cimport uint64_t

from ._blas cimport gemm

# scikit-learn's EPSILON: numpy.finfo(numpy.float32).eps
cdef double MU_EPS = 1.1920928955078125e-07


cdef double mu_half(Py_ssize_t k, Py_ssize_t p, floating* F, const floating* A,
                    const floating* B, double l1, double l2, floating* T, floating* C,
                    floating* S, floating* v, Py_ssize_t* perm, bint shuffle,
                    uint64_t* rng, bint measure) noexcept nogil:
    """Update F (k×p) in place; T (k×p) holds the denominator. Returns 0 (no violation)."""
    cdef Py_ssize_t i, kp = k * p
    cdef floating den, fl1 = l1, fl2 = l2, eps = <floating> MU_EPS
    gemm(False, False, <int> k, <int> p, <int> k, <floating> 1, A, <int> k, F, <int> p,
         <floating> 0, T, <int> p)
    for i in range(kp):
        den = T[i] + fl1 + fl2 * F[i]
        if den == 0:
            den = eps
        F[i] = F[i] * (B[i] / den)
    return 0
