"""The iteration loop shared by the reference solvers: twin of ``_kernels/_solve.pyx``.

The same steps in the same order, in NumPy, from the twins of the kernels' files:
_products.py, _grams.py, _loss.py, _sweep.py (used by the solvers), _rng.py, _xdata.py.
Factors are handled component-major like the kernels do: F = Wᵀ (k × n, a view of W) and
H (k × m), so one half-step function serves both factors.
"""

import math

import numpy as np

from .._stopping import StoppingRule
from .._api import reads_once
from ._engine import by_columns, engine_pass
from ._grams import gram
from ._loss import accurate_loss_sq, final_error, loss_sq
from ._products import product_H, product_W
from ._rng import SplitMix64

__all__ = ["alternate"]


def alternate(prob, W, H, seed, half_step, report):
    """Alternate ``half_step`` on Wᵀ and H; the stopping rules of fastnmf.nmf's docstring.
    ``report(iteration, error)``, if not None, at the start and at each check."""
    X, sqnorm, tol = prob.X, prob.sqnorm, prob.tol
    rng = SplitMix64(seed)
    Wt = W.T  # a view: updating Wt updates W
    A = gram(H)
    B = product_W(X, H)
    G = gram(Wt)
    err_sq = loss_sq(sqnorm, Wt, B, G, A)
    history = [math.sqrt(max(accurate_loss_sq(X, W, H, err_sq, sqnorm), 0.0))]
    rule = StoppingRule(prob.solver, tol, history[0])
    if report is not None:
        report(0, history[0])
    converged, n_iter = False, 0
    engine = reads_once(prob)
    columns = engine and by_columns(prob)
    for it in range(1, prob.max_iter + 1):
        if engine and not columns:  # one pass over X: the W half-step and B = Wᵀ X, new W
            violation, B = engine_pass(prob, H, Wt, A, half_step, rng)
        else:  # (by columns, B = H Xᵀ is the last pass's)
            if it > 1 and prob.update_H and not columns:
                B = product_W(X, H)
            violation = half_step(Wt, A, B, prob.l1_W, prob.l2_W, rng, prob)
        G = gram(Wt)
        if columns:  # one pass over Xᵀ: the H half-step and B = H Xᵀ with the new H
            v, B = engine_pass(prob, Wt, H, G, half_step, rng, X.T, prob.l1_H, prob.l2_H)
            violation += v
            A = gram(H)
            err_sq = loss_sq(sqnorm, Wt, B, G, A)
        elif prob.update_H:
            if not engine:
                B = product_H(X, W)
            violation += half_step(H, G, B, prob.l1_H, prob.l2_H, rng, prob)
            A = gram(H)
            err_sq = loss_sq(sqnorm, H, B, G, A)
        else:
            err_sq = loss_sq(sqnorm, Wt, B, G, A)
        n_iter = it
        if not np.isfinite(err_sq):
            raise FloatingPointError(f"the reference {prob.solver!r} solver diverged")
        if not rule.checks(it):
            continue
        err = math.sqrt(max(accurate_loss_sq(X, W, H, err_sq, sqnorm), 0.0))
        history.append(err)
        if report is not None:
            report(it, err)
        converged = rule.converged(it, err, violation)
        if converged and tol > 0:
            break
    err = final_error(X, W, H, err_sq, sqnorm)
    return W, H, n_iter, converged, np.array(history, dtype=np.float64), err
