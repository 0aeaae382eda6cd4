# cython: language_level=3
from cython cimport floating
from ._common cimport XData

cdef Py_ssize_t nndsvd_workspace_len(Py_ssize_t n, Py_ssize_t m, Py_ssize_t k) noexcept nogil
cdef int nndsvd_core(const XData* x, Py_ssize_t k, floating* Wt, floating* H, double fill,
                     floating* work, int* iwork) noexcept nogil
cdef void nndsvd_split(Py_ssize_t k, Py_ssize_t n, Py_ssize_t m, floating* Wt, floating* H,
                       const floating* sigma, double fill) noexcept nogil
