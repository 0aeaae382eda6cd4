"""mu — multiplicative updates (Lee & Seung 2001), Frobenius loss."""

import numpy as np

from ._common import alternate

EPS = np.finfo(np.float32).eps  # scikit-learn's: replaces a zero denominator


def mu_half(F, A, B, l1, l2, rng, shuffle):
    """F ← F ∘ B ⊘ (A F + l1 + l2 F)."""
    denominator = A @ F + l1 + l2 * F
    denominator[denominator == 0] = EPS
    F *= B / denominator
    return 0.0


def mu(prob, W, H, seed):
    return alternate(prob, W, H, seed, mu_half)
