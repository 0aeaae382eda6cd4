"""``fastnmf demo``: recover the 17 parts of the generated 'swimmer' images, compare with
scikit-learn when it is installed, and draw the components as text (or to an image)."""

import time
import warnings

import numpy as np

from ._cli_io import AtomicFile, CLIError

__all__ = ["run", "match_parts", "fmt_time", "median_time", "DEMO_SETTINGS"]

# Settings of the demo: coordinate descent from scikit-learn's random start with seed 0
# reaches an exact factorization (in ~25 iterations) whose components are the 17 parts.
# Seeds 0 to 8 all do; 0 gives the closest match, and the same one in float32, with noise
# added to X, and in scikit-learn. (nndsvda merges the torso into the limbs: 16 parts.)
DEMO_SETTINGS = dict(solver="cd", init="random", random_state=0, max_iter=1000, tol=1e-6)
_DEMO_REPEATS = 5
_LIMB_NAMES = ("left arm", "right arm", "left leg", "right leg")
_DEMO_IMAGE = 0b01_10_11_00  # left arm in position 1, right arm 2, left leg 3, right leg 0


def match_parts(H, parts):
    """Match the rows of H one-to-one to the true parts by cosine similarity.

    Returns ``(component, similarity)``: for each part, the row of H matched to it and
    their cosine similarity (the assignment maximizes the total similarity).
    """
    from scipy.optimize import linear_sum_assignment

    def unit(A):
        norms = np.linalg.norm(A, axis=1, keepdims=True)
        return A / np.where(norms > 0, norms, 1.0)

    S = unit(parts) @ unit(np.asarray(H, dtype=np.float64)).T
    rows, cols = linear_sum_assignment(-S)
    component = np.empty(len(parts), dtype=int)
    component[rows] = cols
    return component, S[np.arange(len(parts)), component]


def run(args):
    """``fastnmf demo``."""
    from ._api import nmf
    from ._datasets import swimmer, swimmer_parts

    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401  (only: is it installed?)
        except ImportError:
            raise CLIError("argument --plot: needs matplotlib, which is not installed")
        plot = AtomicFile(args.plot, "argument --plot")
    else:
        plot = None
    try:
        X, parts = swimmer(), swimmer_parts()
        k = len(parts)
        norm = np.linalg.norm(X)
        settings = ", ".join(f"{key}={value!r}" for key, value in DEMO_SETTINGS.items())
        print(f"fastnmf demo: the 'swimmer' images, {X.shape[0]} images of 32x32 pixels "
              f"(X is {X.shape[0]}x{X.shape[1]}),")
        print(f"each a torso and four limbs in four positions: {k} parts in all.")
        print(f"fastnmf.nmf(X, {k}, {settings}):")
        print()
        res, seconds = median_time(lambda: nmf(X, k, **DEMO_SETTINGS), _DEMO_REPEATS)
        rows = [("fastnmf", res.reconstruction_err, res.n_iter, seconds)]
        sk = _sklearn_demo(X, k)
        if sk is not None:
            rows.append(("scikit-learn", *sk))
        print(f"  {'':<13}{'error':>10}  {'relative':>9}  {'iterations':>10}  "
              f"{'time (median of ' + str(_DEMO_REPEATS) + ')':>20}")
        for name, err, n_iter, t in rows:
            print(f"  {name:<13}{err:>10.3g}  {err / norm:>9.2g}  {n_iter:>10d}  "
                  f"{fmt_time(t):>20}")
        if sk is None:
            print("  (scikit-learn is not installed: no comparison)")
        else:
            print(f"  time ratio scikit-learn / fastnmf: {sk[2] / seconds:.1f}x "
                  "(same start, same stopping rule)")
        print()

        component, sim = match_parts(res.H, parts)
        good = int((sim > 0.9).sum())
        print(f"Parts recovered: {good} of {k} true parts match a component with cosine "
              f"similarity > 0.9")
        print(f"  (one-to-one matching; similarity min {sim.min():.3f}, median "
              f"{np.median(sim):.3f})")
        print()
        print(_demo_panels(X, res.H, component, sim))
        if plot is not None:
            _demo_plot(plot, X, res.H, component, sim)
            plot.commit()
            print(f"\nplot written to {plot.target}")
    finally:
        if plot is not None:
            plot.discard()
    return 0


def _sklearn_demo(X, k):
    """(error, n_iter, median seconds) of scikit-learn's NMF with the demo's settings, or
    None when scikit-learn is not installed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from sklearn.decomposition import NMF
    except ImportError:
        return None
    s = DEMO_SETTINGS
    model = NMF(k, solver=s["solver"], init=s["init"], random_state=s["random_state"],
                max_iter=s["max_iter"], tol=s["tol"])

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning and the like: not ours
            model.fit(X)
        return model

    model, seconds = median_time(fit, _DEMO_REPEATS)
    return float(model.reconstruction_err_), int(model.n_iter_), seconds


def _crop_box(parts, shape=(32, 32)):
    union = parts.sum(axis=0).reshape(shape) > 0
    rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(max(cols[0] - 1, 0), cols[-1] + 2)


def _demo_panels(X, H, component, sim):
    """One data image and the five components (torso and its four limbs) it is made of."""
    from ._datasets import ascii_image, swimmer_parts

    box = _crop_box(swimmer_parts())
    positions = [(_DEMO_IMAGE >> 2 * (3 - limb)) & 3 for limb in range(4)]
    panels = [(f"image {_DEMO_IMAGE} of X", "(the data)", X[_DEMO_IMAGE])]
    panels.append(("torso", f"= component {component[0]}, {sim[0]:.3f}", H[component[0]]))
    for limb, pos in enumerate(positions):
        part = 1 + 4 * limb + pos
        j = component[part]
        panels.append((f"{_LIMB_NAMES[limb]}, position {pos}",
                       f"= component {j}, {sim[part]:.3f}", H[j]))
    blocks = []
    for title, subtitle, vec in panels:
        img = np.asarray(vec, dtype=np.float64).reshape(32, 32)[box]
        blocks.append([title, subtitle] + ascii_image(img, img.shape).split("\n"))
    header = (f"Image {_DEMO_IMAGE} of X and the components matched to its parts "
              "(cosine similarity):")
    return header + "\n\n" + _side_by_side(blocks, per_row=3)


def _side_by_side(blocks, per_row, gap=3):
    width = max(len(line) for block in blocks for line in block)
    out = []
    for start in range(0, len(blocks), per_row):
        row = blocks[start:start + per_row]
        height = max(len(b) for b in row)
        for i in range(height):
            cells = [(b[i] if i < len(b) else "").ljust(width) for b in row]
            out.append((" " * gap).join(cells).rstrip())
        out.append("")
    return "\n".join(out).rstrip("\n")


def _demo_plot(target, X, H, component, sim):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(component)
    fig, axes = plt.subplots(3, 6, figsize=(12, 6.5))
    axes = axes.ravel()
    axes[0].imshow(X[_DEMO_IMAGE].reshape(32, 32), cmap="gray_r")
    axes[0].set_title(f"image {_DEMO_IMAGE} of X", fontsize=9)
    names = ["torso"] + [f"{name} {pos}" for name in _LIMB_NAMES for pos in range(4)]
    for part in range(k):
        ax = axes[part + 1]
        ax.imshow(H[component[part]].reshape(32, 32), cmap="gray_r")
        ax.set_title(f"{names[part]}: {sim[part]:.2f}", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("fastnmf on the swimmer images: components matched to the true parts "
                 "(cosine similarity)")
    fmt = target.target.suffix.lstrip(".").lower() or "png"
    try:
        fig.savefig(target.file, format=fmt, dpi=100)
    except ValueError as exc:  # an unknown format
        raise CLIError(f"argument --plot {target.target}: {exc}")
    finally:
        plt.close(fig)


def fmt_time(seconds):
    """A duration as us, ms or s, three figures."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def median_time(fn, repeats):
    """(the last result, the median seconds) of ``repeats`` calls of ``fn``."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, float(np.median(times))
