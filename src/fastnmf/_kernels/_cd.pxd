# cython: language_level=3
from cython cimport floating
from libc.stdint cimport uint64_t

from ._common cimport Half

cdef double cd_half(const Half* h, floating* F, const floating* A,
                    const floating* B) noexcept nogil
