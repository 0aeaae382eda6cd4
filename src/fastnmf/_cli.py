"""The ``fastnmf`` command line: ``factorize``, ``demo`` and ``bench``.

Every bad input or argument ends the program with status 2 and exactly one line on stderr,
``fastnmf: error: <what, naming the file or argument>``; no traceback, and no output file
is left behind (outputs are written to a temporary file beside the target and renamed into
place only when complete).
"""

import argparse
import math
import os
import secrets
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

__all__ = ["main"]

PROG = "fastnmf"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Progress on stderr: only when stderr is a terminal, and only once a run has lasted this
# long (seconds); then refreshed every _PROGRESS_INTERVAL seconds.
_PROGRESS_DELAY = 1.0
_PROGRESS_INTERVAL = 0.1

_READERS = {}  # extension -> reader, filled below
_WORKER_NAME = "fastnmf-cli-worker"


class CLIError(Exception):
    """A bad input or argument: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (no usage text) and no sys.exit."""

    def error(self, message):
        raise CLIError(message)


# --- argument types --------------------------------------------------------------------------

def _int_at_least(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an int >= {low}; got {text!r}")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an int >= {low}; got {text!r}")
        return value

    return parse


def _tolerance(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0; got {text!r}")
    return value


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be an int in [0, 2**32 - 1]; got {text!r}")
    return value


def _build_parser():
    from ._validation import SOLVERS

    parser = _Parser(
        prog=PROG,
        description="Fast non-negative matrix factorization (X ~ W @ H, W, H >= 0).",
    )
    sub = parser.add_subparsers(dest="command", metavar="{factorize,demo,bench}")
    sub.required = True

    p = sub.add_parser(
        "factorize", help="factorize a matrix read from a file",
        description="Factorize the matrix in INPUT and write W, H, reconstruction_err, "
                    "n_iter, converged and solver to an .npz file.")
    p.add_argument("input", metavar="INPUT",
                   help="the matrix: .npy, .npz (its only array or the one named X), "
                        ".csv/.tsv (numbers; a non-numeric first line is a header) or "
                        "Matrix Market .mtx (kept sparse)")
    p.add_argument("-k", "--n-components", dest="k", type=_int_at_least(1), required=True,
                   metavar="K", help="number of components (rank), >= 1")
    p.add_argument("-o", "--output", metavar="OUT.npz",
                   help="output file (default: INPUT's stem + .nmf.npz, beside INPUT)")
    p.add_argument("--solver", choices=SOLVERS, default="cd", help="solver (default: cd)")
    p.add_argument("--max-iter", type=_int_at_least(1), default=200, metavar="N",
                   help="maximum number of iterations (default: 200)")
    p.add_argument("--tol", type=_tolerance, default=1e-4, metavar="T",
                   help="stopping tolerance; 0 runs exactly --max-iter iterations "
                        "(default: 1e-4)")
    p.add_argument("--init", choices=("random", "nndsvd", "nndsvda", "nndsvdar"),
                   default=None,
                   help="initialization (default: nndsvda if K <= min(n, m), else random)")
    p.add_argument("--random-state", type=_seed, default=0, metavar="R",
                   help="seed of the random initialization and of the randomized SVD "
                        "(default: 0)")
    p.add_argument("--accelerate", action="store_true",
                   help="cd only: accelerated HALS (several sweeps per product with X; "
                        "fewer iterations to an error)")
    p.add_argument("--threads", type=_int_at_least(1), default=None, metavar="N",
                   help="threads of the computation (default: all cores)")
    p.set_defaults(func=_factorize)

    p = sub.add_parser(
        "demo", help="recover the 17 parts of the 'swimmer' images",
        description="Factorize the swimmer images (256 images of 32x32 pixels, each a "
                    "torso and four limbs in one of four positions) with 17 components "
                    "and show that the components are the parts.")
    p.add_argument("--plot", metavar="OUT.png",
                   help="also draw the components to this image file (needs matplotlib)")
    p.set_defaults(func=_demo)

    p = sub.add_parser(
        "bench", help="time fastnmf against the reference solvers and scikit-learn",
        description="Median time per call of fastnmf.nmf, fastnmf.reference.nmf and "
                    "scikit-learn's non_negative_factorization (when installed), same "
                    "init (nndsvda), tol=0 and a fixed number of iterations.")
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_bench)
    return parser


# --- entry point -----------------------------------------------------------------------------

def main(argv=None):
    """Run the ``fastnmf`` command line with ``argv`` (default: ``sys.argv[1:]``); return
    the exit status."""
    try:
        parser = _build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help
            return exc.code if isinstance(exc.code, int) else 0
        return args.func(args)
    except CLIError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        status = _fail("interrupted", EXIT_INTERRUPTED)
        if argv is None and _worker_alive():
            # The program itself (not a call from Python code) was interrupted while a
            # factorization still runs in its thread, which cannot be stopped: leave now.
            # A normal exit would wait forever in OpenBLAS's exit handler for the BLAS call
            # that thread is in. Output files were already removed.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
        return status
    except MemoryError:
        return _fail("out of memory", 1)


def _fail(message, status):
    line = " ".join(str(message).split())  # exactly one line, whatever the message holds
    sys.stdout.flush()
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return status


# --- reading matrices ------------------------------------------------------------------------

def _reader(*extensions):
    def register(fn):
        for ext in extensions:
            _READERS[ext] = fn
        return fn

    return register


def _known_extensions():
    exts = sorted(_READERS)
    return ", ".join(exts[:-1]) + " or " + exts[-1]


def read_matrix(path):
    """Read the matrix of ``path`` (by extension); raise CLIError naming the file."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _READERS:
        what = f"extension {path.suffix!r}" if path.suffix else "no extension"
        raise CLIError(f"{path}: unknown file type ({what}); expected {_known_extensions()}")
    if not path.exists():
        raise CLIError(f"{path}: no such file")
    if path.is_dir():
        raise CLIError(f"{path}: is a directory, not a file")
    try:
        return _READERS[ext](path)
    except CLIError:
        raise
    except OSError as exc:
        raise CLIError(f"{path}: cannot read: {exc.strerror or exc}")
    except MemoryError:
        raise
    except Exception as exc:  # any parser's complaint about a malformed file
        raise CLIError(f"{path}: cannot read: {exc}")


def _read_head(path, n):
    with open(path, "rb") as f:
        return f.read(n)


@_reader(".npy")
def _read_npy(path):
    if _read_head(path, 6) != b"\x93NUMPY":
        raise CLIError(f"{path}: not a NumPy .npy file")
    X = np.load(path, allow_pickle=False)
    return X


@_reader(".npz")
def _read_npz(path):
    if _read_head(path, 4) not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise CLIError(f"{path}: not a NumPy .npz file")
    with np.load(path, allow_pickle=False) as npz:
        names = list(npz.files)
        if "X" in names:
            return npz["X"]
        if len(names) == 1:
            return npz[names[0]]
        if not names:
            raise CLIError(f"{path}: holds no array")
        listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise CLIError(f"{path}: holds {len(names)} arrays ({listed}) and none named 'X'; "
                       "name the matrix X")


def _read_table(path, delimiter):
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CLIError(f"{path}: not a text file (not UTF-8)")
    lines = text.splitlines()
    rows = [(i, line) for i, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")]
    if rows and not _numeric_line(rows[0][1], delimiter):
        rows = rows[1:]  # a header
    if not rows:
        raise CLIError(f"{path}: holds no numbers")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.loadtxt([line for _, line in rows], delimiter=delimiter,
                              dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        pass
    # Find the first bad line and say where it is (loadtxt counts rows from 0, skipping).
    width = None
    for lineno, line in rows:
        fields = line.split(delimiter)
        for col, field in enumerate(fields, 1):
            if not _is_number(field):
                raise CLIError(f"{path}: line {lineno}, column {col}: {field.strip()!r} "
                               "is not a number")
        if width is None:
            width = (lineno, len(fields))
        elif len(fields) != width[1]:
            raise CLIError(f"{path}: line {lineno} has {len(fields)} values, line "
                           f"{width[0]} has {width[1]}")
    raise CLIError(f"{path}: not a table of numbers")


def _is_number(field):
    try:
        float(field)
    except ValueError:
        return False
    return True


def _numeric_line(line, delimiter):
    return all(_is_number(f) for f in line.split(delimiter))


@_reader(".csv")
def _read_csv(path):
    return _read_table(path, ",")


@_reader(".tsv")
def _read_tsv(path):
    return _read_table(path, "\t")


@_reader(".mtx")
def _read_mtx(path):
    import scipy.io
    import scipy.sparse as sp

    X = scipy.io.mmread(path)
    return X if sp.issparse(X) else np.asarray(X)  # check_X converts, once its shape is checked


# --- writing ---------------------------------------------------------------------------------

class _AtomicFile:
    """A temporary file beside ``target``, renamed onto it by ``commit`` and removed
    otherwise. Created at once, so that an unwritable target fails before any work."""

    def __init__(self, target, arg):
        self.target = Path(target)
        folder = self.target.parent
        if self.target.is_dir():
            raise CLIError(f"{arg} {self.target}: is a directory")
        if not folder.is_dir():
            raise CLIError(f"{arg} {self.target}: folder {str(folder)!r} does not exist")
        self.tmp = folder / f".{self.target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            # 0o666 and O_EXCL, as open() would create it: the umask applies, no races.
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise CLIError(f"{arg} {self.target}: cannot write: {exc.strerror or exc}")
        self.file = os.fdopen(fd, "wb")

    def commit(self):
        self.file.close()
        os.replace(self.tmp, self.target)
        self.tmp = None

    def discard(self):
        if self.tmp is not None:
            self.file.close()
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            self.tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()
        return False


def default_output(input_path):
    """``data.csv`` -> ``data.nmf.npz``, in the input's folder."""
    path = Path(input_path)
    return path.with_name(path.stem + ".nmf.npz")


# --- progress --------------------------------------------------------------------------------

def _isatty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def run_with_progress(fn, label, stream=None, status=None):
    """Call ``fn()`` in a worker thread and return its result (or raise its exception).

    When ``stream`` (default: stderr) is a terminal and the call lasts more than
    ``_PROGRESS_DELAY`` seconds, a spinner with the elapsed time (and ``status()``, if
    given) is shown on it and erased at the end; otherwise nothing is written. The main thread only waits, so Ctrl-C is
    handled at once (the kernels release the GIL, so the worker does not slow it down).
    """
    stream = sys.stderr if stream is None else stream
    outcome = {}
    done = threading.Event()

    def work():
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc
        finally:
            done.set()

    t0 = time.perf_counter()
    worker = threading.Thread(target=work, name=_WORKER_NAME, daemon=True)
    worker.start()
    if _isatty(stream) and not done.wait(_PROGRESS_DELAY):
        import shutil

        width, columns = 0, max(shutil.get_terminal_size().columns - 1, 20)
        try:
            for frame in _spin():
                text = f"{label} {frame} {time.perf_counter() - t0:.1f} s"
                if status is not None:
                    text += status()
                if len(text) > columns:  # a wrapped line could not be redrawn with \r
                    text = "..." + text[len(text) - columns + 3:]
                width = max(width, len(text))
                _write(stream, "\r" + text.ljust(width))
                if done.wait(_PROGRESS_INTERVAL):
                    break
        finally:
            _write(stream, "\r" + " " * width + "\r")
    done.wait()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _worker_alive():
    return any(t.name == _WORKER_NAME and t.is_alive() for t in threading.enumerate())


def _spin():
    while True:
        yield from "|/-\\"


def _write(stream, text):
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass


# --- factorize -------------------------------------------------------------------------------

def _factorize(args):
    from ._api import nmf_live
    from ._validation import check_X

    path = Path(args.input)
    out = Path(args.output) if args.output else default_output(path)
    out_arg = "-o/--output" if args.output else "output"
    X = read_matrix(path)
    try:
        X, sqnorm, _ = check_X(X, arg="the data")
    except (ValueError, TypeError) as exc:
        raise CLIError(f"{path}: {exc}")
    if out.exists() and path.resolve() == out.resolve():
        raise CLIError(f"{out_arg} {out}: is the input file; choose another output")

    with _AtomicFile(out, out_arg) as target:
        n, m = X.shape
        sparse = not isinstance(X, np.ndarray)
        shape = f"{n}x{m}" + (f" sparse (nnz {X.nnz})" if sparse else "")
        label = f"{PROG}: factorizing {path.name} ({shape}, k={args.k}, {args.solver})"
        latest = [None]  # (iteration, error) of the latest check, set as the kernel runs

        def progress(it, err):
            latest[0] = it, err

        def status():
            if latest[0] is None:
                return ""
            it, err = latest[0]
            return f", iteration {it}, error {err:.6g}"

        t0 = time.perf_counter()
        try:
            res = run_with_progress(
                lambda: nmf_live(X, args.k, progress, solver=args.solver, init=args.init,
                                 max_iter=args.max_iter, tol=args.tol,
                                 random_state=args.random_state,
                                 accelerate=args.accelerate, n_threads=args.threads),
                label, status=status)
        except (ValueError, TypeError, OverflowError) as exc:
            raise CLIError(f"{path}: {exc}")
        seconds = time.perf_counter() - t0
        try:
            np.savez(target.file, W=res.W, H=res.H,
                     reconstruction_err=np.float64(res.reconstruction_err),
                     n_iter=np.int64(res.n_iter), converged=np.bool_(res.converged),
                     solver=np.str_(res.solver), history=res.history)
            target.commit()
        except OSError as exc:
            raise CLIError(f"{out_arg} {out}: cannot write: {exc.strerror or exc}")

    norm = math.sqrt(sqnorm)
    rel = res.reconstruction_err / norm if norm > 0 else 0.0
    status = "converged" if res.converged else "max_iter reached"
    print(f"{path}: {shape}, k={args.k}, solver {res.solver}: "
          f"error {res.reconstruction_err:.6g} (relative {rel:.3g}), "
          f"{res.n_iter} iterations ({status}), {_fmt_time(seconds)} -> {out}")
    return 0


def _fmt_time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


# --- demo ------------------------------------------------------------------------------------

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


def _median_time(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, float(np.median(times))


def _demo(args):
    from ._api import nmf
    from ._datasets import swimmer, swimmer_parts

    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401  (only: is it installed?)
        except ImportError:
            raise CLIError("argument --plot: needs matplotlib, which is not installed")
        plot = _AtomicFile(args.plot, "argument --plot")
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
        res, seconds = _median_time(lambda: nmf(X, k, **DEMO_SETTINGS), _DEMO_REPEATS)
        rows = [("fastnmf", res.reconstruction_err, res.n_iter, seconds)]
        sk = _sklearn_demo(X, k)
        if sk is not None:
            rows.append(("scikit-learn", *sk))
        print(f"  {'':<13}{'error':>10}  {'relative':>9}  {'iterations':>10}  "
              f"{'time (median of ' + str(_DEMO_REPEATS) + ')':>20}")
        for name, err, n_iter, t in rows:
            print(f"  {name:<13}{err:>10.3g}  {err / norm:>9.2g}  {n_iter:>10d}  "
                  f"{_fmt_time(t):>20}")
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

    model, seconds = _median_time(fit, _DEMO_REPEATS)
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


# --- bench -----------------------------------------------------------------------------------

_BENCH_SOLVERS = ("cd", "mu", "als", "bpp")
# (n, m, k, iterations, at most this many timed runs, solvers timed in the reference too):
# a tiny problem where call overhead counts, a medium and a large one where the kernels do.
# Each configuration gets about _BENCH_BUDGET seconds of timed runs (at least one), so that
# the whole table takes well under a minute; the NumPy reference 'als' and 'bpp' (Python
# loops of least-squares solves) are left out of the larger sizes.
_BENCH_SIZES = (
    (50, 30, 5, 100, 31, _BENCH_SOLVERS),
    (500, 300, 10, 100, 7, ("cd", "mu", "als")),
    (2000, 1000, 20, 30, 3, ("cd", "mu")),
)
_BENCH_QUICK = (  # bench --quick, for the tests
    (50, 30, 5, 20, 3, _BENCH_SOLVERS),
    (200, 100, 8, 20, 3, _BENCH_SOLVERS),
)
_BENCH_BUDGET = 2.0


def _bench(args):
    import scipy

    from ._bench import batch_rows, interleaved, sklearn_nnf

    from . import _api, reference
    from ._datasets import low_rank

    non_negative_factorization = sklearn_nnf()
    sklearn = sys.modules.get("sklearn") if non_negative_factorization else None

    sizes = _BENCH_QUICK if args.quick else _BENCH_SIZES
    versions = f"numpy {np.__version__}, scipy {scipy.__version__}"
    versions += f", scikit-learn {sklearn.__version__}" if sklearn else \
        ", scikit-learn not installed"
    print(f"fastnmf bench: median time per call (interleaved runs), init='nndsvda', tol=0, "
          f"fixed iterations; {versions}")
    print("ratio = that implementation's time / fastnmf's time; relative error = "
          "||X - WH||_F / ||X||_F")
    print()
    print(_row(_BENCH_HEADER))
    print(_row(["-" * w for w, _ in _BENCH_COLUMNS]))
    for n, m, k, iters, max_repeats, reference_solvers in sizes:
        X = low_rank(n, m, k, seed=0)
        norm = np.linalg.norm(X)
        for solver in _BENCH_SOLVERS:
            kw = dict(solver=solver, init="nndsvda", tol=0.0, max_iter=iters, random_state=0)
            impls = {"fastnmf": lambda kw=kw: _api.nmf(X, k, **kw)}
            if solver in reference_solvers:
                impls["reference"] = lambda kw=kw: reference.nmf(X, k, **kw)
            if non_negative_factorization is not None and solver in ("cd", "mu"):
                impls["scikit-learn"] = lambda kw=kw: _sklearn_nnf(
                    non_negative_factorization, X, k, kw)
            med, results = interleaved(impls, budget=_BENCH_BUDGET, max_repeats=max_repeats)
            errors = {name: _rel_error(r, X, norm) for name, r in results.items()}
            base = med["fastnmf"]
            cells = [f"{n}x{m}", str(k), str(iters), solver, _fmt_time(base)]
            for name in ("reference", "scikit-learn"):
                cells.append(f"{_fmt_time(med[name])} ({med[name] / base:.1f}x)"
                             if name in med else "-")
            for name in ("fastnmf", "reference", "scikit-learn"):
                cells.append(f"{errors[name]:.4g}" if name in errors else "-")
            print(_row(cells), flush=True)
    notes = []
    if any(len(s[5]) < len(_BENCH_SOLVERS) for s in sizes):
        notes.append("the reference 'als' and 'bpp' are too slow for the larger sizes")
    if non_negative_factorization is not None:
        notes.append("scikit-learn has no 'als' or 'bpp' solver")
    if notes:
        print(f"\n({'; '.join(notes)})")
    count, n, m, k, iters = (20, 50, 40, 5, 20) if args.quick else (200, 100, 80, 8, 200)
    print(f"\nmany matrices: {count} matrices of {n}x{m}, k={k}, {iters} iterations, "
          f"init='nndsvda', tol=0")
    for name, rate, ratio, err in batch_rows(count, n, m, k, iters,
                                             budget=1.0 if args.quick else 6.0):
        print(f"  {name:<22} {rate:9.1f} matrices/s  {ratio:5.2f}x n_jobs=1  "
              f"relative error {err:.4g}")
    return 0


# (width, align) of each column of the bench table; rows are printed as they are measured.
_BENCH_HEADER = ("size", "k", "iters", "solver", "fastnmf", "reference", "scikit-learn",
                 "err fastnmf", "err ref", "err sklearn")
_BENCH_COLUMNS = ((9, "<"), (3, ">"), (5, ">"), (6, "<"), (9, ">"), (17, ">"), (17, ">"),
                  (11, ">"), (10, ">"), (11, ">"))


def _row(cells):
    return "  ".join(f"{c:{a}{w}}" for c, (w, a) in zip(cells, _BENCH_COLUMNS)).rstrip()


def _sklearn_nnf(non_negative_factorization, X, k, kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W, H, _ = non_negative_factorization(
            X, n_components=k, init=kw["init"], solver=kw["solver"], tol=kw["tol"],
            max_iter=kw["max_iter"], random_state=kw["random_state"])
    return W, H


def _rel_error(result, X, norm):
    if isinstance(result, tuple):
        W, H = result
        return float(np.linalg.norm(X - W @ H) / norm)
    return result.reconstruction_err / norm
