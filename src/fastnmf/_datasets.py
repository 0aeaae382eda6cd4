"""Generated data sets for the demo, the tests, the benchmarks and the command line.

Nothing here reads a file: every data set is made in code from a seed.
"""

import itertools

import numpy as np

__all__ = ["low_rank", "swimmer", "swimmer_parts", "swimmer_weights", "ascii_image"]


def low_rank(n, m, k, *, noise=0.05, density=None, dtype=np.float64, seed=0):
    """A non-negative n × m matrix of rank k plus non-negative noise (dense, or CSR at
    ``density``)."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, k)) @ rng.random((k, m))
    X += noise * X.mean() * rng.random((n, m))
    if density is not None:
        import scipy.sparse as sp

        mask = rng.random((n, m)) < density
        return sp.csr_matrix(np.where(mask, X, 0).astype(dtype))
    return X.astype(dtype)


# --- swimmer -------------------------------------------------------------------------------
#
# Donoho & Stodden's "swimmer" (When does non-negative matrix factorization give a correct
# decomposition into parts?, NIPS 2003), drawn here: a 32 × 32 image of a vertical torso
# with two arms hinged at the shoulder (row 10) and two legs hinged at the hip (row 21),
# each limb a one-pixel line segment in one of four angles. The limbs start a few pixels
# away from their hinge, so no two limb positions and no limb and the torso share a pixel:
# every image is exactly the sum of its five parts.

SWIMMER_SHAPE = (32, 32)
_TORSO_ROWS = (9, 22)  # rows 9..21 of columns 15 and 16
_TORSO_COLS = (15, 17)
_SHOULDER = (9.5, 15.5)  # (row, column) of the arms' hinge
_HIP = (21.5, 15.5)  # the legs' hinge
# Angles in degrees, counter-clockwise from "right" (0°), with "up" at 90°.
_LIMBS = (
    ("left arm", _SHOULDER, (100.0, 140.0, 180.0, 220.0)),
    ("right arm", _SHOULDER, (80.0, 40.0, 0.0, -40.0)),
    ("left leg", _HIP, (180.0, 210.0, 240.0, 265.0)),
    ("right leg", _HIP, (0.0, -30.0, -60.0, -85.0)),
)
_LIMB_START, _LIMB_END = 2.6, 11.0  # distance from the hinge, in pixels


def _segment(origin, angle, start, end, shape):
    """The pixels of a one-pixel line from ``start`` to ``end`` pixels away from
    ``origin`` at ``angle`` degrees, as a boolean image."""
    img = np.zeros(shape, dtype=bool)
    theta = np.deg2rad(angle)
    # Rounded, so that 0° and 180° are exactly horizontal: the hinges lie on half pixels,
    # where a direction off by 1e-16 would flip the rounding halfway along the line.
    dy, dx = round(-np.sin(theta), 12), round(np.cos(theta), 12)
    for t in np.linspace(start, end, 8 * int(np.ceil(end - start)) + 1):
        r = int(np.floor(origin[0] + t * dy + 0.5))
        c = int(np.floor(origin[1] + t * dx + 0.5))
        if 0 <= r < shape[0] and 0 <= c < shape[1]:
            img[r, c] = True
    return img


def swimmer_parts():
    """The 17 true parts of :func:`swimmer`, one flattened 32 × 32 image per row.

    Returns
    -------
    parts : ndarray of shape (17, 1024), float64, values in {0, 1}
        Row 0 is the torso; row ``1 + 4 * limb + position`` is limb ``limb`` (left arm,
        right arm, left leg, right leg) in position ``position`` (0..3). The parts have
        pairwise disjoint supports.
    """
    shape = SWIMMER_SHAPE
    torso = np.zeros(shape, dtype=bool)
    torso[slice(*_TORSO_ROWS), slice(*_TORSO_COLS)] = True
    parts = [torso]
    for _, hinge, angles in _LIMBS:
        for angle in angles:
            parts.append(_segment(hinge, angle, _LIMB_START, _LIMB_END, shape))
    return np.array([p.ravel() for p in parts], dtype=np.float64)


def swimmer_weights():
    """The exact non-negative weights of the swimmer images on their parts.

    Returns
    -------
    weights : ndarray of shape (256, 17), float64, values in {0, 1}
        ``swimmer() == swimmer_weights() @ swimmer_parts()`` exactly (without noise): column
        0 (the torso) is all ones and each image has one position of each of the four limbs.
        Image ``i`` has limb ``j`` in position ``(i >> 2 * (3 - j)) & 3``.
    """
    A = np.zeros((256, 17))
    A[:, 0] = 1.0
    for i, positions in enumerate(itertools.product(range(4), repeat=4)):
        for limb, pos in enumerate(positions):
            A[i, 1 + 4 * limb + pos] = 1.0
    return A


def swimmer(noise=0.0, seed=0):
    """The "swimmer" images: a parts-based data set for NMF (Donoho & Stodden, 2003).

    Every 32 × 32 image shows the same torso and four limbs (two arms, two legs), each limb
    in one of four positions: all 4⁴ = 256 combinations. The images are generated in code
    and are exact sums of 17 parts with disjoint supports (see :func:`swimmer_parts` and
    :func:`swimmer_weights`), so NMF with 17 components can recover them.

    Parameters
    ----------
    noise : float, default=0.0
        Scale of non-negative uniform noise added to every pixel (``noise * U[0, 1)``).
    seed : int, default=0
        Seed of the noise.

    Returns
    -------
    X : ndarray of shape (256, 1024), float64
        One flattened image per row, values in {0, 1} when ``noise == 0``.

    Examples
    --------
    >>> from fastnmf._datasets import swimmer
    >>> X = swimmer()
    >>> X.shape, sorted(set(X.ravel().tolist()))
    ((256, 1024), [0.0, 1.0])
    """
    noise = float(noise)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}.")
    X = swimmer_weights() @ swimmer_parts()
    if noise > 0:
        X += noise * np.random.default_rng(seed).random(X.shape)
    return X


# --- text rendering ------------------------------------------------------------------------

_RAMP = " .:-=+*#%@"


def ascii_image(vec, shape=(32, 32), *, pool=(2, 1), ramp=_RAMP, vmax=None):
    """Render a non-negative image as text, one character per (pooled) pixel.

    Parameters
    ----------
    vec : array-like with ``prod(shape)`` entries
        The image, flattened or not.
    shape : (int, int), default=(32, 32)
        Rows and columns of the image.
    pool : (int, int), default=(2, 1)
        Blocks of pixels merged into one character (their maximum). The default halves the
        rows, so a square image looks square in a terminal whose characters are about twice
        as tall as they are wide.
    ramp : str, default=" .:-=+*#%@"
        Characters from darkest (zero) to brightest; intensities are rounded to the
        nearest level, so values below half a level are drawn as the first character.
    vmax : float, default=None
        The intensity drawn with the last character; None: the image's maximum.

    Returns
    -------
    str
        ``ceil(rows / pool[0])`` lines of ``ceil(cols / pool[1])`` characters each,
        joined by newlines.
    """
    img = np.asarray(vec, dtype=np.float64).reshape(shape)
    img = np.where(np.isfinite(img), np.maximum(img, 0.0), 0.0)
    pr, pc = pool
    rows, cols = -(-shape[0] // pr), -(-shape[1] // pc)
    padded = np.zeros((rows * pr, cols * pc))
    padded[: shape[0], : shape[1]] = img
    pooled = padded.reshape(rows, pr, cols, pc).max(axis=(1, 3))
    top = pooled.max() if vmax is None else float(vmax)
    if top <= 0:
        levels = np.zeros(pooled.shape, dtype=int)
    else:
        scaled = np.clip(pooled / top, 0.0, 1.0)
        levels = np.rint(scaled * (len(ramp) - 1)).astype(int)
    return "\n".join("".join(ramp[v] for v in row) for row in levels)
