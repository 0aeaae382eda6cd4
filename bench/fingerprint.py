"""One hash of many fits' results, to show that a change leaves every result bit-identical.

    python bench/fingerprint.py            # prints: <fits> <sha256>

Run it on the installed fastnmf before and after a change (``git stash``, rebuild, run,
``git stash pop``, rebuild, run): the same hash means the same bits for W, H, history,
reconstruction_err and n_iter of every fit below, and of the batches. The fits cover every
solver, five shapes from 20 x 12 to 1200 x 900 (both sides of the tiny-Gram, other-order
and threading thresholds), dense C and Fortran order, CSR and CSC, float32 and float64,
the default start and a random one with shuffle and regularization, cd's accelerate, a
fixed-iteration run, nmf_batch with its own starts and a Kullback-Leibler mu. A different
hash says something changed, not what: compare fits one by one to find it.
"""

import hashlib
import sys
import warnings

import numpy as np
import scipy.sparse as sp

import fastnmf

SHAPES = [(20, 12, 3), (50, 30, 5), (100, 80, 8), (300, 200, 12), (1200, 900, 20)]


def fits():
    """Yield every result of the fingerprint, in a fixed order."""
    rng = np.random.default_rng(1)
    for n, m, k in SHAPES:
        X = rng.random((n, k)) @ rng.random((k, m)) + 0.05 * rng.random((n, m))
        Xs = sp.random(n, m, density=0.2, format="csr", random_state=n, dtype=np.float64)
        for data in (X, np.asfortranarray(X), Xs, Xs.tocsc()):
            for dtype in (np.float64, np.float32):
                D = data.astype(dtype)
                for solver in fastnmf._registry.SOLVERS:
                    variants = [dict(max_iter=60),
                                dict(max_iter=60, init="random", random_state=3,
                                     shuffle=True, alpha_W=0.01, l1_ratio=0.5),
                                dict(max_iter=60, accelerate=True) if solver == "cd"
                                else dict(tol=0, max_iter=30)]
                    for kw in variants:
                        yield fastnmf.nmf(D, k, solver=solver, **kw)
                yield from fastnmf.nmf_batch([D] * 3, k, n_jobs=2, max_iter=20,
                                             random_state=1)
                positive = D if sp.issparse(D) else D + 0.1
                yield fastnmf.nmf(positive, k, solver="mu", beta_loss="kullback-leibler",
                                  max_iter=20)


def main():
    warnings.simplefilter("ignore")
    digest, count = hashlib.sha256(), 0
    for r in fits():
        for a in (r.W, r.H, r.history, np.float64(r.reconstruction_err), np.int64(r.n_iter)):
            digest.update(np.ascontiguousarray(a).tobytes())
        count += 1
    print(count, digest.hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main())
