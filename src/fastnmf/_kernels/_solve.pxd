# cython: language_level=3
from cython cimport floating
from libc.stdint cimport uint64_t
from ._common cimport XData, Params, Trace

cdef int solve_core(int solver, const XData* x, Py_ssize_t k, floating* Wt, floating* H,
                    floating* work, Py_ssize_t* perm, const Params* p,
                    Trace* t) noexcept nogil
cdef int kernel_id(str solver) except -1
cdef int fill_params(Params* p, str solver, const XData* x, int max_iter, double tol,
                     double l1_W, double l2_W, double l1_H, double l2_H, bint update_H,
                     bint shuffle, uint64_t seed, double beta, int n_threads,
                     bint accelerate) except -1
cdef Py_ssize_t solver_workspace_len(int solver, const XData* x, Py_ssize_t k,
                                     const Params* p) noexcept nogil
