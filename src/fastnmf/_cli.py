"""The ``fastnmf`` command line: ``factorize``, ``demo`` and ``bench`` (parsing, the entry
point and ``factorize``; files in _cli_io, progress in _progress, the demo in _demo, the
bench in _bench).

Every bad input or argument ends the program with status 2 and exactly one line on stderr,
``fastnmf: error: <what, naming the file or argument>``; a failure during the work (a
divergence, memory) with status 1 and one line; Ctrl-C with status 130. No traceback, and
no output file is left behind (outputs are written to a temporary file beside the target
and renamed into place only when complete; only a regular file is ever replaced).
"""

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ._cli_io import (OUTPUT_EXTENSIONS, AtomicFile, CLIError, default_output, output_paths,
                      read_matrix, write_result)
from ._chunked import SparseFile
from ._demo import fmt_time
from ._progress import run_with_progress
from ._validation import most_threads

__all__ = ["main"]

PROG = "fastnmf"
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Failure(Exception):
    """A failure during the work (not a bad input): one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (no usage text) and no sys.exit."""

    def error(self, message):
        raise CLIError(message)


# --- argument types --------------------------------------------------------------------------

def _int_at_least(low, high=None):
    rule = f"an int >= {low}" if high is None else f"an int in [{low}, {high}]"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule}; got {text!r}")
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {rule}; got {text!r}")
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


def _beta_loss(text):
    from ._registry import LOSSES

    if text in LOSSES:
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(
            f"must be {', '.join(LOSSES)} or a finite number; got {text!r}")
    return value


def _build_parser():
    from ._registry import SOLVERS

    parser = _Parser(
        prog=PROG,
        description="Fast non-negative matrix factorization (X ~ W @ H, W, H >= 0).",
    )
    sub = parser.add_subparsers(dest="command", metavar="{factorize,demo,bench}")
    sub.required = True

    p = sub.add_parser(
        "factorize", help="factorize a matrix read from a file",
        description="Factorize the matrix in INPUT and write W, H, reconstruction_err, "
                    "n_iter, converged, solver and history to an .npz file, or W and H "
                    "to two CSV/TSV files.")
    p.add_argument("input", metavar="INPUT",
                   help="the matrix: .npy, .npz (its only array, the one named X, or a "
                        "scipy.sparse.save_npz file: kept sparse), .csv/.tsv (numbers; a "
                        "first line with no number in it is a header) or Matrix Market "
                        ".mtx (kept sparse)")
    p.add_argument("-k", "--n-components", dest="k", type=_int_at_least(1), required=True,
                   metavar="K", help="number of components (rank), >= 1")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="the output, by its extension: " + "; ".join(
                       f"{ext}: {what}" for ext, what in OUTPUT_EXTENSIONS.items())
                   + " (STEM: OUT without its extension). Only regular files are "
                     "written: an existing device, FIFO, socket or directory is refused "
                     "(default: INPUT's stem + .nmf.npz, beside INPUT)")
    p.add_argument("--solver", choices=tuple(SOLVERS), default="cd",
                   help="solver (default: cd): " + "; ".join(
                       f"{name}: {s.summary}" for name, s in SOLVERS.items()))
    p.add_argument("--beta-loss", type=_beta_loss, default="frobenius", metavar="LOSS",
                   help="frobenius (default), kullback-leibler, itakura-saito or a number "
                        "β; other than frobenius needs --solver mu")
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
    p.add_argument("--threads", type=_int_at_least(1, most_threads()), default=None,
                   metavar="N",
                   help="threads of the computation (default: what OpenMP may use here: "
                        "OMP_NUM_THREADS when set, else the CPUs this process may run on, "
                        "as its affinity mask and CPU quota allow)")
    p.set_defaults(func=_factorize)

    p = sub.add_parser(
        "demo", help="recover the 17 parts of the 'swimmer' images",
        description="Factorize the swimmer images (256 images of 32x32 pixels, each a "
                    "torso and four limbs in one of four positions) with 17 components "
                    "and show that the components are the parts.")
    p.add_argument("--plot", metavar="OUT.png",
                   help="also draw the components to this image file (needs matplotlib)")
    p.set_defaults(func=_demo)  # imported when run

    p = sub.add_parser(
        "bench", help="time fastnmf against the reference solvers and scikit-learn",
        description="Median time per call of fastnmf.nmf, fastnmf.reference.nmf and "
                    "scikit-learn's non_negative_factorization (when installed), same "
                    "init (nndsvda), tol=0 and a fixed number of iterations.")
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_bench)  # imported when run
    return parser


# --- entry point -----------------------------------------------------------------------------

class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived while the command ran: raised where Python takes the
    signal (fastnmf.nmf's loop asks for it as for Ctrl-C), so that the work stops and its
    temporary files are removed on the way out."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class _Stopping:
    """The handler of Ctrl-C, SIGTERM and SIGHUP while the command runs. The first raises
    (KeyboardInterrupt, or _Terminated) where Python takes it; a second one is ignored, so
    that the clean-up it started (the temporary files removed) is not cut short by a
    double Ctrl-C; a third ends the process as that signal does by default. While held
    (``hold`` to ``release``: the outputs being renamed, all or none) a signal waits."""

    def __init__(self):
        self.count = 0
        self.held = False
        self.pending = None

    def __call__(self, signum, frame):
        if self.held:  # (the outputs being renamed: _cli_io._signals_held)
            self.pending = self.pending or signum
            return
        self.count += 1
        if self.count == 1:
            raise KeyboardInterrupt if signum == signal.SIGINT else _Terminated(signum)
        if self.count >= 3:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def hold(self):
        self.held = True

    def release(self):
        """Stop holding; a signal that came meanwhile takes effect now."""
        self.held = False
        if self.pending is not None:
            signum, self.pending = self.pending, None
            self(signum, None)


@contextlib.contextmanager
def _terminating():
    """While the block runs, SIGTERM and SIGHUP (what ``timeout``, a batch scheduler or a
    closed terminal send) stop the command as Ctrl-C does, where their disposition is the
    default one (a signal ignored, as under ``nohup``, stays ignored), and Ctrl-C, SIGTERM
    and SIGHUP go to one _Stopping (see it); restored after. Python handles signals in
    the main thread only: from another thread, nothing changes."""
    installed = []
    if threading.current_thread() is threading.main_thread():
        handler = _Stopping()
        for name, default in (("SIGINT", signal.default_int_handler),
                              ("SIGTERM", signal.SIG_DFL), ("SIGHUP", signal.SIG_DFL)):
            signum = getattr(signal, name, None)
            if signum is not None and signal.getsignal(signum) == default:
                installed.append((signum, signal.signal(signum, handler)))
    try:
        yield
    finally:
        for signum, former in installed:
            signal.signal(signum, former)


def main(argv=None):
    """Run the ``fastnmf`` command line with ``argv`` (default: ``sys.argv[1:]``); return
    the exit status."""
    try:
        with _terminating():
            parser = _build_parser()
            try:
                args = parser.parse_args(argv)
            except SystemExit as exc:  # --help
                return exc.code if isinstance(exc.code, int) else 0
            return args.func(args)
    except CLIError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:  # fastnmf.nmf, in this thread, stops itself on Ctrl-C
        return _fail("interrupted", EXIT_INTERRUPTED)
    except _Terminated as exc:  # as the shell reports a death by that signal
        return _fail(f"terminated by {signal.Signals(exc.signum).name}", 128 + exc.signum)
    except _Failure as exc:
        return _fail(str(exc), EXIT_FAILED)
    except MemoryError:
        return _fail("out of memory", EXIT_FAILED)


def _fail(message, status):
    line = " ".join(str(message).split())  # exactly one line, whatever the message holds
    sys.stdout.flush()
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return status


# --- factorize -------------------------------------------------------------------------------

def _demo(args):
    from ._demo import run

    return run(args)


def _bench(args):
    from ._bench import run

    return run(args)


# fastnmf.nmf's arguments as the command line spells them, for its errors.
_OPTIONS = {"n_components": "-k/--n-components", "solver": "--solver", "init": "--init",
            "beta_loss": "--beta-loss", "max_iter": "--max-iter", "tol": "--tol",
            "random_state": "--random-state", "accelerate": "--accelerate",
            "n_threads": "--threads"}


def _in_cli_words(exc):
    """An error of fastnmf.nmf's validation (it starts with the argument's name) with the
    argument named as the command line's option."""
    message = str(exc)
    name = message.split(" ", 1)[0]
    return _OPTIONS.get(name, name) + message[len(name):]


def _nmf_arguments(args):
    return dict(solver=args.solver, init=args.init, max_iter=args.max_iter, tol=args.tol,
                beta_loss=args.beta_loss, random_state=args.random_state,
                accelerate=args.accelerate, n_threads=args.threads)


def _factorize(args):
    from ._api import NMF_DEFAULTS, nmf
    from ._validation import check_X, check_options

    X = read_matrix(args.input)  # first: a directory or an empty path is named as the input
    try:  # the options alone, before X is checked or anything said of it
        check_options(args.k, **{**NMF_DEFAULTS, **_nmf_arguments(args)})
    except (ValueError, TypeError) as exc:
        raise CLIError(_in_cli_words(exc))
    path = Path(args.input)
    out = args.output if args.output is not None else default_output(path)
    out_arg = "-o/--output" if args.output is not None else "output"
    if args.beta_loss not in ("frobenius", 2.0):  # the other losses read X in memory
        if isinstance(X, np.memmap):
            X = np.array(X)
        elif isinstance(X, SparseFile):
            X = X.load()
    try:
        X, sqnorm, _ = check_X(X, arg="the data")
    except (ValueError, TypeError) as exc:
        raise CLIError(f"{path}: {exc}")
    targets = output_paths(out, out_arg)  # by the extension: refused before any work
    for target in targets:
        if target.exists() and path.resolve() == target.resolve():
            raise CLIError(f"{out_arg} {target}: is the input file; choose another output")
    n, m = X.shape
    if args.k > min(n, m) and args.init in (None, "random"):  # else the API refuses it
        print(f"{PROG}: note: -k {args.k} exceeds min(n, m) = {min(n, m)} of {path.name} "
              f"({n}x{m}): allowed, but no rank above {min(n, m)} fits X better, and "
              "each iteration costs more", file=sys.stderr)

    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(AtomicFile(target, out_arg)) for target in targets]
        sparse = sp.issparse(X) or getattr(X, "sparse", False)  # (a Chunked's)
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
                lambda: nmf(X, args.k, callback=progress, **_nmf_arguments(args)),
                label, status=status)
        except np.linalg.LinAlgError as exc:  # a ValueError, but not a bad input
            raise _Failure(f"{path}: {exc}")
        except (ValueError, TypeError, OverflowError) as exc:
            raise CLIError(f"{path}: {_in_cli_words(exc)}")
        except ArithmeticError as exc:  # the solver diverged (FloatingPointError)
            raise _Failure(f"{path}: {exc}")
        seconds = time.perf_counter() - t0
        try:
            write_result(files, res)
        except OSError as exc:
            raise CLIError(f"{out_arg} {out}: cannot write: {exc.strerror or exc}")

    norm = math.sqrt(sqnorm)
    rel = res.reconstruction_err / norm if norm > 0 else 0.0
    status = "converged" if res.converged else "max_iter reached"
    print(f"{path}: {shape}, k={args.k}, solver {res.solver}: "
          f"error {res.reconstruction_err:.6g} (relative {rel:.3g}), "
          f"{res.n_iter} iterations ({status}), {fmt_time(seconds)} -> "
          + ", ".join(map(str, targets)))
    return 0
