"""Parts of handwritten digits, found by NMF, next to scikit-learn's NMF.

scikit-learn's ``load_digits`` (1797 images of 8 × 8 pixels, shipped with scikit-learn:
nothing is downloaded) is factorized as X ≈ W H with ``fastnmf.sklearn.NMF``, the drop-in
for ``sklearn.decomposition.NMF``: each of the 16 rows of H (``components_``) is a
non-negative 8 × 8 image, and every digit is a non-negative mix of them, so the
components come out as strokes and blobs: parts of digits rather than whole digits.
The script prints the components as text, the reconstruction error, and the same fit
by scikit-learn's own NMF (time and error).

    python examples/digits_parts.py
    python examples/digits_parts.py --plot parts.png     # also draw them (needs matplotlib)
    python examples/digits_parts.py --quick               # fewer timing repeats
"""

import argparse
import sys
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import NMF as SklearnNMF
from sklearn.exceptions import ConvergenceWarning

from fastnmf._datasets import ascii_image
from fastnmf.sklearn import NMF

SHAPE = (8, 8)


def ascii_grid(images, shape=SHAPE, per_row=8, labels=None):
    """Images (one flattened image per row) side by side as text, ``per_row`` to a line.

    Each image is scaled to its own maximum; every pixel is drawn two characters wide,
    so that the 8 × 8 images look square.
    """
    blocks = []
    for img in images:
        art = ascii_image(img, shape=shape, pool=(1, 1))
        blocks.append(["".join(ch * 2 for ch in line) for line in art.splitlines()])
    labels = labels or [str(i) for i in range(1, len(blocks) + 1)]
    width = 2 * shape[1]
    out = []
    for start in range(0, len(blocks), per_row):
        row = blocks[start:start + per_row]
        names = labels[start:start + per_row]
        out.append("  ".join(f"{name:^{width}}" for name in names).rstrip())
        out.append("  ".join("+" + "-" * (width - 2) + "+" for _ in row))
        for line in range(len(row[0])):
            out.append("  ".join(b[line] for b in row))
        out.append("")
    return "\n".join(out)


def timed_fit(make_model, X, repeats):
    """(model, best time in seconds) of ``repeats`` fits of fresh ``make_model()`` models."""
    best, model = np.inf, None
    for _ in range(repeats):
        model = make_model()
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # both warn alike at max_iter; reported below
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X)
        best = min(best, time.perf_counter() - t0)
    return model, best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", "--n-components", type=int, default=16,
                        help="number of parts (16)")
    parser.add_argument("--max-iter", type=int, default=500,
                        help="iterations at most (500)")
    parser.add_argument("--plot", metavar="OUT.png",
                        help="also draw the parts and a few reconstructions (matplotlib)")
    parser.add_argument("--quick", action="store_true",
                        help="time one fit of each instead of the best of 5")
    args = parser.parse_args(argv)
    if args.plot:
        try:
            import matplotlib
        except ImportError:
            parser.error("--plot needs matplotlib: pip install matplotlib")
        matplotlib.use("Agg")  # files only; no display needed

    digits = load_digits()
    X = digits.data  # (1797, 64) float64, values 0..16
    print(f"digits: {X.shape[0]} images of {SHAPE[0]} x {SHAPE[1]} pixels, "
          f"X is {X.shape[0]} x {X.shape[1]}")

    params = {"n_components": args.n_components, "init": "nndsvda", "solver": "cd",
              "max_iter": args.max_iter, "random_state": 0}
    repeats = 1 if args.quick else 5
    ours, t_ours = timed_fit(lambda: NMF(**params), X, repeats)
    theirs, t_theirs = timed_fit(lambda: SklearnNMF(**params), X, repeats)

    H = ours.components_
    # Order the parts by how much of the data they explain (the sum of their weights
    # times their mass), the largest first.
    W = ours.transform(X)
    order = np.argsort(-(W.sum(axis=0) * H.sum(axis=1)))
    print(f"\nthe {args.n_components} parts (fastnmf.sklearn.NMF components_, "
          f"largest first; each drawn to its own maximum):\n")
    print(ascii_grid(H[order]))

    norm_X = np.linalg.norm(X)
    print(f"{'':28s}{'time':>10s}{'iterations':>12s}{'error':>12s}{'relative':>10s}")
    for name, model, t in (("fastnmf.sklearn.NMF", ours, t_ours),
                           ("sklearn.decomposition.NMF", theirs, t_theirs)):
        print(f"{name:28s}{t * 1e3:8.1f} ms{model.n_iter_:12d}"
              f"{model.reconstruction_err_:12.4f}{model.reconstruction_err_ / norm_X:10.4f}")
    print(f"(init='nndsvda', solver='cd', max_iter={args.max_iter}; "
          f"{'one fit' if repeats == 1 else f'best of {repeats} fits'}; "
          f"error = ||X - WH||_F, relative = error / ||X||_F)")
    print("(the starts differ slightly: fastnmf computes NNDSVDa from the exact SVD of a "
          "matrix this small,\n scikit-learn from a randomized SVD; from the same start "
          "both give the same iterates)")
    print(f"reconstruction error: {ours.reconstruction_err_:.6g}")
    print(f"speed-up over scikit-learn: {t_theirs / t_ours:.1f}x")

    if args.plot:
        import matplotlib.pyplot as plt

        k = args.n_components
        cols = 8
        rows = -(-k // cols)
        fig, axes = plt.subplots(rows + 2, cols, figsize=(cols * 1.1, (rows + 2) * 1.2))
        for ax in axes.ravel():
            ax.set_axis_off()
        for i, j in enumerate(order):
            ax = axes.ravel()[i]
            ax.imshow(H[j].reshape(SHAPE), cmap="gray_r", interpolation="nearest")
            ax.set_title(f"part {i + 1}", fontsize=7)
        # A few digits and their reconstructions W H, below the parts.
        recon = W @ H
        for c in range(cols):
            for r, (img, what) in enumerate(((X[c], "digit"), (recon[c], "W H"))):
                ax = axes[rows + r, c]
                ax.imshow(img.reshape(SHAPE), cmap="gray_r", interpolation="nearest",
                          vmin=0, vmax=16)
                ax.set_title(f"{what} {digits.target[c]}", fontsize=7)
        fig.suptitle(f"NMF parts of the digits (k = {k}) and a few reconstructions")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        plt.close(fig)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
