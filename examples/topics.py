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
import sys
import time

import numpy as np

import fastnmf
from fastnmf._datasets import docstring_matrix, stdlib_docstrings


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
        import sklearn  # noqa: F401 - for the vectorizer
    except ImportError:
        parser.error("this example needs scikit-learn: pip install scikit-learn")
    max_iter = args.max_iter or (100 if args.quick else 300)

    t0 = time.perf_counter()
    docs = stdlib_docstrings(max_docs=1000 if args.quick else 4000)
    t_corpus = time.perf_counter() - t0
    print(f"corpus: {len(docs)} docstrings of the Python {sys.version.split()[0]} standard "
          f"library ({t_corpus:.1f} s)")

    t0 = time.perf_counter()
    X, words = docstring_matrix(docs, kind="tfidf", min_df=3 if args.quick else 5)
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
