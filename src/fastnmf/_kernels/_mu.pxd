# cython: language_level=3
from cython cimport floating
from libc.stdint cimport uint64_t

from ._common cimport Half, Params

cdef double mu_half(const Half* h, floating* F, const floating* A,
                    const floating* B) noexcept nogil

from ._common cimport XData, Trace

cdef int mu_beta_core(const XData* x, Py_ssize_t k, floating* Wt, floating* H,
                      floating* work, const Params* p, Trace* t) noexcept nogil
