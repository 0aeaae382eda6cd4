"""cd — coordinate descent / HALS (Cichocki & Phan 2009; Hsieh & Dhillon 2011), and with
``accelerate`` the accelerated HALS of Gillis & Glineur (2012)."""

import numpy as np

from ._common import alternate
from ._sweep import hals_sweep
from ._xdata import x_entries

# Sweep again while the last sweep moved F by more than INNER_RATIO times the first sweep's
# move, at most 1 + INNER_COST · ρ sweeps, ρ = (multiply-adds of the product with X) /
# (those of one sweep) = x_entries / (p · k).
INNER_RATIO = 0.1
INNER_COST = 0.5


def cd_half(F, A, B, l1, l2, rng, prob):
    """One exact coordinate sweep over the k rows of F; with ``prob.accelerate`` more
    sweeps with the same A and B while they still move F. Returns the first sweep's
    violation."""
    k, p = F.shape
    before = F.copy()
    violation = hals_sweep(F, A, B, l1, l2, rng.order(k, prob.shuffle))
    if not prob.accelerate:
        return violation
    first = moved = float(np.sum((F - before).astype(np.float64) ** 2))
    for _ in range(1, 1 + int(INNER_COST * x_entries(prob.X) / (p * k))):
        if not moved > INNER_RATIO ** 2 * first:
            break
        before = F.copy()
        hals_sweep(F, A, B, l1, l2, rng.order(k, prob.shuffle))
        moved = float(np.sum((F - before).astype(np.float64) ** 2))
    return violation


def cd(prob, W, H, seed, report=None):
    return alternate(prob, W, H, seed, cd_half, report)
