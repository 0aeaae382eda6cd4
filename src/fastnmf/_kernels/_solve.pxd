# cython: language_level=3
from cython cimport floating
from ._common cimport XData, Params, Trace

cdef int solve_core(int solver, const XData* x, Py_ssize_t k, floating* Wt, floating* H,
                    floating* work, Py_ssize_t* perm, const Params* p,
                    Trace* t) noexcept nogil
cdef int solver_params(str solver, Params* p) except -1
cdef Py_ssize_t solver_workspace_len(int solver, Py_ssize_t n, Py_ssize_t m, Py_ssize_t k,
                                     double beta, int n_threads) noexcept nogil
