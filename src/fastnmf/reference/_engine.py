"""The row-block engine: twin of the engine in ``_kernels/_solve.pyx`` (engine_pass).

For a solver whose W half-step is separable by rows (the registry's ``separable``), an
iteration reads X once: block by block of rows X_b, B_b = H X_bᵀ, the half-step of W_b,
and W_bᵀ X_b added into C = Wᵀ X, the product the H half-step needs. The blocks are cut
as the kernels cut them (``engine_plan``), into slabs whose sums are added in order.

A solver that takes one decision over the whole factor (accelerated cd, als, bpp: not
separable) runs there on a guess of it, settled after the pass; what it computes is stated
here plainly: B gathered block by block, the whole half-step, then C block by block.
"""

import numpy as np
import scipy.sparse as sp

from .._kernels._solve import engine_plan
from .._registry import SOLVERS

__all__ = ["by_columns", "engine_pass"]


class _Given:
    """A sweep-order source that hands out one order drawn beforehand."""

    def __init__(self, order):
        self._order = order

    def order(self, k, shuffle):
        return self._order


def by_columns(prob):
    """Whether the engine reads a Fortran-ordered X by its columns (the rows of Xᵀ): the
    pass then updates H block by block and forms H Xᵀ, with the roles of W and H exchanged."""
    return not sp.issparse(prob.X) and not prob.X.flags.c_contiguous


def engine_pass(prob, H, Wt, A, half_step, rng, X=None, l1=None, l2=None):
    """Update Wᵀ (k × n, in place) block by block given A = HHᵀ; return (violation, C)
    with C = Wᵀ X from the new W. By columns: X = Xᵀ, H = Wᵀ, Wt = H, A = WᵀW and the H
    penalties; C is then H Xᵀ."""
    X = prob.X if X is None else X
    l1 = prob.l1_W if l1 is None else l1
    l2 = prob.l2_W if l2 is None else l2
    (k, n), m = Wt.shape, X.shape[1]
    if sp.issparse(X):
        X = X.tocsr()
        rows, slabs = engine_plan(n, m, k, X.dtype.itemsize, X.nnz)
    else:
        rows, slabs = engine_plan(n, m, k, X.itemsize)
    blocks = -(-n // rows)
    cuts = [[slice(b * rows, min(n, (b + 1) * rows))
             for b in range(s * blocks // slabs, (s + 1) * blocks // slabs)]
            for s in range(slabs)]
    violation, C = 0.0, None
    separable = SOLVERS[prob.solver].separable and not prob.accelerate
    if separable:
        given = _Given(rng.order(k, prob.shuffle))  # one sweep order for every block
    else:
        B = np.empty_like(Wt)
        for rows_b in (rows_b for cut in cuts for rows_b in cut):
            B[:, rows_b] = H @ X[rows_b].T
        violation = half_step(Wt, A, B, l1, l2, rng, prob)
    for cut in cuts:
        acc = None
        for rows_b in cut:
            Xb = X[rows_b]
            F = np.ascontiguousarray(Wt[:, rows_b])
            if separable:
                violation += half_step(F, A, H @ Xb.T, l1, l2, given, prob)
                Wt[:, rows_b] = F
            acc = F @ Xb if acc is None else acc + F @ Xb
        C = acc if C is None else C + acc
    return violation, C
