"""Topics of the Python standard library's documentation, found by NMF.

The corpus ships with Python itself, so nothing is downloaded: the docstrings of the
standard library's public modules, classes, functions and methods, collected from the
running interpreter. Each docstring is one document; scikit-learn's ``TfidfVectorizer``
turns them into a sparse (documents × words) TF-IDF matrix, and ``fastnmf.nmf`` factorizes
it with multiplicative updates under the (generalized) Kullback-Leibler divergence,
X ≈ W H: each row of H is a topic (a non-negative weight per word), each row of W says
how much of each topic a docstring contains.

    python examples/topics.py               # all the docstrings (about 2800), 10 topics
    python examples/topics.py --quick       # 1000 of them and at most 100 iterations
    python examples/topics.py -k 15 --beta-loss frobenius

Needs scikit-learn (for the vectorizer). Collecting the corpus imports the standard
library's modules, skipping the ones with side effects or a GUI (``this``,
``antigravity``, ``idlelib``, ``tkinter``, ``turtle``, ...), private modules and tests,
with warnings silenced and every import error caught.
"""

import argparse
import contextlib
import importlib
import inspect
import io
import os
import pkgutil
import sys
import sysconfig
import time
import warnings

import numpy as np

import fastnmf

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


def _beta_loss(text):
    """--beta-loss: a name, or a number (β)."""
    try:
        return float(text)
    except ValueError:
        return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", "--n-topics", type=int, default=10, help="number of topics (10)")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="NMF iterations at most (300; 100 with --quick)")
    parser.add_argument("--beta-loss", default="kullback-leibler", type=_beta_loss,
                        help="'kullback-leibler' (default), 'frobenius' or a number β")
    parser.add_argument("--top", type=int, default=8, help="words shown per topic (8)")
    parser.add_argument("--quick", action="store_true",
                        help="1000 docstrings and fewer iterations, for a fast check")
    args = parser.parse_args(argv)
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError:
        parser.error("this example needs scikit-learn: pip install scikit-learn")
    max_iter = args.max_iter or (100 if args.quick else 300)

    t0 = time.perf_counter()
    docs = stdlib_docstrings(max_docs=1000 if args.quick else 4000)
    t_corpus = time.perf_counter() - t0
    print(f"corpus: {len(docs)} docstrings of the Python {sys.version.split()[0]} standard "
          f"library ({t_corpus:.1f} s)")

    t0 = time.perf_counter()
    vectorizer = TfidfVectorizer(
        stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z]{3,}\b",  # words of 3+ letters: no numbers or 'x1'
        min_df=3 if args.quick else 5,  # in at least this many docstrings
        max_df=0.5,  # and in at most half of them
        max_features=5000,
        sublinear_tf=True,
    )
    X = vectorizer.fit_transform(text for _, text in docs).tocsr()
    words = vectorizer.get_feature_names_out()
    print(f"TF-IDF matrix: {X.shape[0]} x {X.shape[1]} sparse CSR, {X.nnz} non-zeros "
          f"({time.perf_counter() - t0:.1f} s)")

    t0 = time.perf_counter()
    try:
        res = fastnmf.nmf(X, args.n_topics, solver="mu", beta_loss=args.beta_loss,
                          init="nndsvda", max_iter=max_iter, random_state=0)
    except ValueError as exc:  # e.g. a β <= 0, which cannot fit the zeros of X
        parser.error(str(exc))
    t_nmf = time.perf_counter() - t0

    print(f"\n{args.n_topics} topics (top {args.top} words each):")
    for t, h in enumerate(res.H, start=1):
        top = np.argsort(h)[::-1][: args.top]
        print(f"topic {t:2d}: " + " ".join(words[top]))
    # The docstring that weighs most on each topic, as a hint of what the topic is about.
    print("\ndocstring most about each topic:")
    share = res.W / np.maximum(res.W.sum(axis=1, keepdims=True), np.finfo(float).tiny)
    for t in range(args.n_topics):
        print(f"topic {t + 1:2d}: {docs[int(np.argmax(share[:, t] * res.W[:, t]))][0]}")

    print(f"\nfastnmf.nmf(solver='mu', beta_loss={args.beta_loss!r}, init='nndsvda'): "
          f"{res.n_iter} iterations ({'converged' if res.converged else 'max_iter reached'}) "
          f"in {t_nmf:.2f} s")
    print(f"reconstruction error: {res.reconstruction_err:.6g} "
          f"(at the start: {res.history[0]:.6g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
