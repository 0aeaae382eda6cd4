"""Data sets for the demo, the tests, the benchmarks, the examples and the command line.

The generated ones (``low_rank``, ``swimmer``) are made in code from a seed. The real ones
(``real_matrix``) need nothing downloaded: scikit-learn's bundled digits and sample images,
and the docstrings of the running Python's standard library (``stdlib_docstrings``) as a
TF-IDF or count matrix; they import scikit-learn when called (the package does not need it).
"""

import contextlib
import importlib
import inspect
import io
import itertools
import os
import pkgutil
import sys
import sysconfig
import warnings

import numpy as np

__all__ = ["low_rank", "swimmer", "swimmer_parts", "swimmer_weights", "ascii_image",
           "stdlib_docstrings", "docstring_matrix", "real_matrix", "REAL_MATRICES"]


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


# --- real data: the standard library's docstrings ----------------------------------------

# Modules never imported: side effects on import (printing the Zen of Python, opening a
# web browser, writing grammar caches, setting up the terminal's readline), GUIs, test suites, the
# deprecated distutils/lib2to3 (which setuptools and others patch), generated data, the
# C-API demo modules, and the codec tables (hundreds of near-identical docstrings).
SKIP = frozenset({
    "this", "antigravity", "idlelib", "tkinter", "turtle", "turtledemo", "test", "tests",
    "lib2to3", "distutils", "ensurepip", "pydoc_data", "readline", "rlcompleter", "site",
    "sitecustomize", "usercustomize", "xxlimited", "xxlimited_35", "xxsubtype",
    "encodings",
})
MIN_CHARS, MIN_WORDS = 80, 10  # shorter docstrings say too little to have a topic
MAX_CHARS = 3000  # the few longer ones (whole module manuals) are cut to this


def _skipped(name):
    """Whether the module ``name`` (dotted) or any package above it is skipped."""
    return any(
        part.startswith(("_", "test_")) or part.endswith("_test") or part in SKIP
        for part in name.split(".")
    )


def _import_quietly(name):
    """The module ``name``, or None when importing it fails in any way; nothing it prints
    or warns reaches the terminal."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            return importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - ImportError, OSError, SystemExit, ...
            return None


def stdlib_modules():
    """The standard library's public modules and subpackages, imported, by name (sorted)."""
    stdlib = sysconfig.get_paths()["stdlib"]
    top = {m.name for m in pkgutil.iter_modules([stdlib, os.path.join(stdlib, "lib-dynload")])}
    top |= set(sys.builtin_module_names)
    pending = sorted(n for n in top if not _skipped(n))
    modules = {}
    while pending:
        name = pending.pop(0)
        module = _import_quietly(name)
        if module is None:  # e.g. Windows-only modules, optional C extensions
            continue
        modules[name] = module
        if hasattr(module, "__path__"):  # a package: its submodules too
            subs = sorted(f"{name}.{m.name}" for m in pkgutil.iter_modules(module.__path__))
            pending.extend(s for s in subs if not _skipped(s))
    return dict(sorted(modules.items()))


def _own_docstrings(module):
    """(where, docstring) of ``module`` and of its own public classes, their methods and
    properties, and its functions (not the ones it imports from elsewhere)."""
    yield module.__name__, module.__doc__
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        where = f"{module.__name__}.{name}"
        if inspect.isclass(obj):
            yield where, obj.__doc__
            for attr_name, attr in sorted(vars(obj).items()):
                if not attr_name.startswith("_") and (
                        inspect.isroutine(attr) or inspect.isdatadescriptor(attr)
                        or isinstance(attr, (staticmethod, classmethod))):
                    yield f"{where}.{attr_name}", getattr(attr, "__doc__", None)
        elif inspect.isroutine(obj):
            yield where, obj.__doc__


def stdlib_docstrings(max_docs=None, seed=0):
    """The standard library's docstrings: a list of (where, text), distinct texts of at
    least MIN_CHARS characters and MIN_WORDS words (cut to MAX_CHARS), in module order; at
    most ``max_docs`` of them (a seeded random subset, kept in order)."""
    write_bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # never write __pycache__ into the installation
    try:
        docs = {}
        with warnings.catch_warnings():  # deprecated modules warn on import and on access
            warnings.simplefilter("ignore")
            for module in stdlib_modules().values():
                try:
                    for where, text in _own_docstrings(module):
                        if not isinstance(text, str):
                            continue
                        text = inspect.cleandoc(text)
                        if len(text) >= MIN_CHARS and len(text.split()) >= MIN_WORDS:
                            docs.setdefault(text[:MAX_CHARS], where)
                except Exception:  # noqa: BLE001, S112 - a misbehaving attribute
                    continue
    finally:
        sys.dont_write_bytecode = write_bytecode
    items = [(where, text) for text, where in docs.items()]
    if max_docs is not None and len(items) > max_docs:
        keep = np.sort(np.random.default_rng(seed).choice(len(items), max_docs, replace=False))
        items = [items[i] for i in keep]
    return items


def docstring_matrix(docs, kind="tfidf", min_df=5):
    """Documents (a list of (where, text)) as a sparse CSR (documents × words) float64
    matrix: ``kind`` 'tfidf' (scikit-learn's TfidfVectorizer, sublinear tf) or 'counts'
    (CountVectorizer). Words of 3+ letters, English stop words left out, in at least
    ``min_df`` documents and at most half of them, the 5000 most frequent. Returns the
    matrix and the words (one per column)."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    if kind not in ("tfidf", "counts"):
        raise ValueError(f"kind must be 'tfidf' or 'counts'; got {kind!r}.")
    options = dict(
        stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z]{3,}\b",  # words of 3+ letters: no numbers or 'x1'
        min_df=min_df,
        max_df=0.5,
        max_features=5000,
    )
    vectorizer = (TfidfVectorizer(sublinear_tf=True, **options) if kind == "tfidf"
                  else CountVectorizer(**options))
    X = vectorizer.fit_transform(text for _, text in docs).tocsr().astype(np.float64)
    return X, vectorizer.get_feature_names_out()


# The real matrices of ``real_matrix``, by name.
REAL_MATRICES = ("digits", "image", "tfidf", "counts")


def real_matrix(name):
    """A real non-negative data matrix, nothing downloaded (needs scikit-learn).

    'digits': scikit-learn's ``load_digits().data`` (1797 × 64, dense). 'image': the first
    of ``load_sample_images()`` (a photograph, 427 × 640) in grey, the mean of its three
    channels (dense, values 0..255). 'tfidf' and 'counts': :func:`stdlib_docstrings` as
    :func:`docstring_matrix` (sparse CSR, about 2800 docstrings × 1900 words; the exact
    size depends on the Python version).
    """
    if name == "digits":
        from sklearn.datasets import load_digits

        return np.ascontiguousarray(load_digits().data)
    if name == "image":
        from sklearn.datasets import load_sample_images

        return load_sample_images().images[0].astype(np.float64).mean(axis=2)
    if name in ("tfidf", "counts"):
        return docstring_matrix(stdlib_docstrings(), kind=name)[0]
    raise ValueError(f"name must be one of {REAL_MATRICES}; got {name!r}.")
