"""nmf_batch throughput: 200 matrices of 100 x 80, k = 8, 200 iterations (issue: many
matrices), for n_jobs 1 and 2 and a plain loop of fastnmf.nmf."""

import fastnmf

from .common import stack


class Batch:
    params = ((1, 2, "loop"),)
    param_names = ("n_jobs",)
    timeout = 300

    def setup(self, n_jobs):
        self.Xs = stack()
        self.kw = dict(init="nndsvda", tol=0, max_iter=200)

    def time_200_matrices(self, n_jobs):
        if n_jobs == "loop":
            for X in self.Xs:
                fastnmf.nmf(X, 8, **self.kw)
        else:
            fastnmf.nmf_batch(self.Xs, 8, n_jobs=n_jobs, **self.kw)
