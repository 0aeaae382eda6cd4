"""als — projected ALS made safe (docs/algorithms.md): a clipped least-squares proposal and the
current factor each get one HALS sweep; the one with the lower half-step objective is kept
(a proposal that zeroes a live component is not considered)."""

import numpy as np
import scipy.linalg

from ._common import alternate
from ._sweep import hals_sweep

RIDGE_TRIES = 8


def half_objective(F, A, B, l1, l2):
    """g(F) = ½⟨FFᵀ, A⟩ + ½ l2 ‖F‖² − ⟨F, B⟩ + l1 ΣF."""
    f64 = np.float64
    return (0.5 * np.sum((F @ F.T) * A, dtype=f64) + 0.5 * l2 * np.sum(F * F, dtype=f64)
            - np.sum(F * B, dtype=f64) + l1 * np.sum(F, dtype=f64))


def factor_system(A, l2):
    """Upper Cholesky factor of A + (l2 + ridge) I, the ridge growing until it exists."""
    k = A.shape[0]
    trace = float(np.trace(A, dtype=np.float64))
    if trace + k * l2 <= 0:
        return None
    ridge = 0.0
    for _ in range(RIDGE_TRIES + 1):
        try:
            return scipy.linalg.cholesky(A + (l2 + ridge) * np.eye(k, dtype=A.dtype),
                                         lower=False, check_finite=False)
        except np.linalg.LinAlgError:
            small = 1e-10 if A.dtype == np.float64 else 1e-5
            ridge = (trace / k) * small if ridge == 0 else ridge * 100
    return None


def als_half(F, A, B, l1, l2, rng, prob):
    order = rng.order(F.shape[0], prob.shuffle)
    U = factor_system(A, l2)
    if U is None:
        return hals_sweep(F, A, B, l1, l2, order)
    P = scipy.linalg.cho_solve((U, False), B - l1, check_finite=False)
    P = np.where(P > 0, P, 0).astype(F.dtype, copy=False)
    if np.any(~P.any(axis=1) & F.any(axis=1)):  # clipping zeroed a live component
        return hals_sweep(F, A, B, l1, l2, order)
    hals_sweep(P, A, B, l1, l2, order)
    violation = hals_sweep(F, A, B, l1, l2, order)  # measured at the incoming F, as cd's
    if half_objective(P, A, B, l1, l2) < half_objective(F, A, B, l1, l2):
        F[...] = P
    return violation


def als(prob, W, H, seed, report=None):
    return alternate(prob, W, H, seed, als_half, report)
