# cython: language_level=3
from cython cimport floating
from libc.stdint cimport uint64_t

from ._common cimport Half

cdef double bpp_half(const Half* h, floating* F, const floating* A,
                     const floating* B) noexcept nogil
cdef Py_ssize_t bpp_region_len(Py_ssize_t k, Py_ssize_t P) noexcept nogil
