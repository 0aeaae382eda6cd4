"""Time of one fastnmf.nmf call per variant, size and dtype (tol=0, fixed iterations), and the
relative error it reaches (``track_``: a regression in accuracy shows too). A variant the
installed build lacks (bpp, cd with accelerate=True) is skipped."""

import numpy as np

import fastnmf

from .common import ALL_VARIANTS, matrix, rel_error, variant


class Solvers:
    params = (ALL_VARIANTS, ("tiny", "small", "medium"), ("float64", "float32"))
    param_names = ("variant", "size", "dtype")
    timeout = 300

    def setup(self, label, size, dtype):
        self.X, self.k = matrix(size, np.dtype(dtype))
        self.iters = 200 if size != "medium" else 50
        self.kw = dict(variant(label), init="nndsvda", tol=0, max_iter=self.iters)

    def time_nmf(self, label, size, dtype):
        fastnmf.nmf(self.X, self.k, **self.kw)

    def track_relative_error(self, label, size, dtype):
        res = fastnmf.nmf(self.X, self.k, **self.kw)
        return rel_error(self.X, res.W, res.H)

    track_relative_error.unit = "||X - WH|| / ||X||"
