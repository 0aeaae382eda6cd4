"""bpp — ANLS by block principal pivoting (Kim & Park 2011), one column at a time.

Each half-step solves min_{x >= 0} ½ xᵀ(A + l2 I)x − (b − l1)ᵀx exactly for every column
x of F, b the matching column of B: with a passive set P (warm-started from F > 0, dead
components never in it), x_P = (A + l2 I)_PP⁻¹ (b − l1)_P and x = 0 elsewhere; the
infeasible entries (x_i < 0 in P, gradient y_i < 0 outside) are exchanged, all of them while
their number falls or for up to BACKUPS rounds without progress, else only the last one.
The solution is taken if it lowers the half-step objective and keeps every live component,
else the half-step is one HALS sweep (as in als).
"""

import numpy as np
import scipy.linalg

from ._als import half_objective
from ._common import alternate
from ._sweep import hals_sweep

BACKUPS = 3
RIDGE_TRIES = 8
# Objectives this close (relative) are equal to rounding (the expanded g cancels near an
# exact fit): an exact solution (no ridge, every column solved) is then taken.
SAME_OBJECTIVE = {np.float64: 1e-13, np.float32: 1e-6}


def solve_passive(Aq, b, passive):
    """(x, exact): x_P = Aq_PP⁻¹ b_P (Cholesky, a growing ridge if needed), 0 elsewhere;
    exact is False when a ridge was needed."""
    x = np.zeros_like(b)
    idx = np.flatnonzero(passive)
    if idx.size == 0:
        return x, True
    block = Aq[np.ix_(idx, idx)]
    trace = float(np.trace(block, dtype=np.float64))
    ridge = 0.0
    for attempt in range(RIDGE_TRIES + 1):
        try:
            U = scipy.linalg.cholesky(block + ridge * np.eye(idx.size, dtype=Aq.dtype),
                                      lower=False, check_finite=False)
        except np.linalg.LinAlgError:
            small = 1e-10 if Aq.dtype == np.float64 else 1e-5
            ridge = (trace / idx.size) * small if ridge == 0 else ridge * 100
            continue
        x[idx] = scipy.linalg.cho_solve((U, False), b[idx], check_finite=False)
        return x, attempt == 0
    return x, False


def nnls_column(Aq, b, x0, live):
    """(x, exact): the non-negative least-squares solution for one column from warm start
    x0; exact is False if a solve needed a ridge or the round cap was hit."""
    k = b.shape[0]
    passive = (x0 > 0) & live
    best, backups = k + 1, BACKUPS
    x, exact = x0, True
    for _ in range(10 * k + 10):
        x, clean = solve_passive(Aq, b, passive)
        exact &= clean
        y = Aq @ x - b
        infeasible = np.flatnonzero((passive & (x < 0)) | (~passive & live & (y < 0)))
        if infeasible.size == 0:
            break
        if infeasible.size < best:
            best, backups = infeasible.size, BACKUPS
        elif backups > 0:
            backups -= 1
        else:
            passive[infeasible[-1]] ^= True
            continue
        passive[infeasible] ^= True
    else:
        exact = False
    return np.maximum(x, 0), exact


def violation(F, A, B, l1, l2):
    """Σ |projected gradient| of the half-step objective at F."""
    grad = (A @ F).astype(np.float64) + l2 * F - B + l1
    return float(np.abs(np.where(F > 0, grad, np.minimum(grad, 0))).sum())


def bpp_half(F, A, B, l1, l2, rng, prob):
    """Solve the half-step for F (k × p) exactly, column by column; return the violation
    at the incoming F."""
    viol = violation(F, A, B, l1, l2)
    Aq = A + l2 * np.eye(A.shape[0], dtype=A.dtype)
    live = np.diag(Aq) > 0
    rhs = B - F.dtype.type(l1)
    solution = np.empty_like(F)
    exact = True
    for j in range(F.shape[1]):
        solution[:, j], clean = nnls_column(Aq, rhs[:, j], F[:, j].copy(), live)
        exact &= clean
    if not np.any(~solution.any(axis=1) & F.any(axis=1)):  # no live component zeroed
        g_new = half_objective(solution, A, B, l1, l2)
        g_old = half_objective(F, A, B, l1, l2)
        slack = SAME_OBJECTIVE[F.dtype.type] * (abs(g_new) + abs(g_old)) if exact else 0
        if g_new <= g_old + slack:
            F[...] = solution
            return viol
    hals_sweep(F, A, B, l1, l2, list(range(F.shape[0])))
    return viol


def bpp(prob, W, H, seed, report=None):
    return alternate(prob, W, H, seed, bpp_half, report)
