# cython: language_level=3
from cython cimport floating
from libc.stdint cimport uint64_t


# als's pieces that bpp uses too.
cdef double half_objective(Py_ssize_t k, Py_ssize_t p, const floating* F, const floating* A,
                           const floating* B, double l1, double l2,
                           floating* S) noexcept nogil

cdef bint kills_component(Py_ssize_t k, Py_ssize_t p, const floating* P,
                          const floating* F) noexcept nogil

cdef void count_rows(Py_ssize_t k, Py_ssize_t p, const floating* F,
                     double* counts) noexcept nogil

cdef bint evidence_kills(Py_ssize_t k, const double* rows) noexcept nogil
