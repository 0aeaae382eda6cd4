# cython: language_level=3
from cython cimport floating

cdef void nndsvd_split(Py_ssize_t k, Py_ssize_t n, Py_ssize_t m, floating* Wt, floating* H,
                       const floating* sigma, double fill) noexcept nogil
