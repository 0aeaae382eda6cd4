"""Time of one fastnmf.nmf call per solver, size and dtype (tol=0, fixed iterations), and the
relative error it reaches (``track_``: a regression in accuracy shows too)."""

import numpy as np

import fastnmf

from .common import matrix


class Solvers:
    params = (("cd", "als", "mu"), ("tiny", "small", "medium"), ("float64", "float32"))
    param_names = ("solver", "size", "dtype")
    timeout = 300

    def setup(self, solver, size, dtype):
        self.X, self.k = matrix(size, np.dtype(dtype))
        self.iters = 200 if size != "medium" else 50
        self.kw = dict(solver=solver, init="nndsvda", tol=0, max_iter=self.iters)

    def time_nmf(self, solver, size, dtype):
        fastnmf.nmf(self.X, self.k, **self.kw)

    def track_relative_error(self, solver, size, dtype):
        res = fastnmf.nmf(self.X, self.k, **self.kw)
        return res.reconstruction_err / np.linalg.norm(self.X)
