# cython: language_level=3
from cython cimport floating
from ._common cimport XData, Trace

# rsvd_core's return when its trace's hook said stop (gesdd's infos are small ints).
cdef enum:
    RSVD_STOPPED = -1000000

cdef void nndsvd_split(Py_ssize_t k, Py_ssize_t n, Py_ssize_t m, floating* Wt, floating* H,
                       const floating* sigma, double fill) noexcept nogil
cdef int rsvd_core(const XData* x, Py_ssize_t k, int ell, int q, const floating* omega,
                   floating* Wt, floating* Ht, floating* sigma, floating* work,
                   int* iwork, int n_threads, Trace* t) noexcept nogil
