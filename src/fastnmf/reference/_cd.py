"""cd — coordinate descent / HALS (Cichocki & Phan 2009; Hsieh & Dhillon 2011)."""

from ._common import alternate, hals_sweep


def cd_half(F, A, B, l1, l2, rng, shuffle):
    """One exact coordinate sweep over the k rows of F."""
    return hals_sweep(F, A, B, l1, l2, rng.order(F.shape[0], shuffle))


def cd(prob, W, H, seed):
    return alternate(prob, W, H, seed, cd_half)
