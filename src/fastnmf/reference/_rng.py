"""The sweep order's random numbers: twin of ``_kernels/_rng.pxi``."""

__all__ = ["SplitMix64"]

_MASK = (1 << 64) - 1


class SplitMix64:
    """The kernels' sweep-order generator (Steele, Lea & Flood 2014), in Python ints."""

    def __init__(self, seed):
        self.state = seed & _MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def order(self, k, shuffle):
        """0..k-1, or its Fisher–Yates shuffle."""
        perm = list(range(k))
        if shuffle:
            for i in range(k - 1, 0, -1):
                j = self.next() % (i + 1)
                perm[i], perm[j] = perm[j], perm[i]
        return perm
