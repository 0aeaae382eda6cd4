"""The kernels built for several instruction-set levels (meson's -Dcpu=dispatch, the
default): each level this CPU runs gives the same results, bit for bit, and every kernel
module comes from the level chosen (fastnmf/_kernels/__init__.py)."""

import os
import subprocess
import sys

import fastnmf._kernels as kernels

from conftest import kernel_levels, run_at_level

# Fits of every solver on dense and sparse X, float32 and float64, on both sides of the
# engine's and the threads' thresholds, and with k = 5 (the narrow kernels' blocks of 5
# rows, with AVX-512's registers only); the child prints a hash of their bits and the
# folders its kernel modules came from.
CHILD = r"""
import hashlib, sys
import numpy as np, scipy.sparse as sp
import fastnmf, fastnmf._kernels as kernels
from fastnmf._datasets import low_rank
digest = hashlib.sha256()
for n, m, k in [(40, 30, 4), (50, 30, 5), (700, 500, 10)]:
    X = low_rank(n, m, k, seed=1)
    S = low_rank(n, m, k, density=0.2, seed=2)
    for data in (X, np.asfortranarray(X), S):
        for dtype in (np.float64, np.float32):
            for solver in fastnmf._registry.SOLVERS:
                r = fastnmf.nmf(data.astype(dtype), k, solver=solver, max_iter=20, tol=0,
                                shuffle=True, random_state=0)
                for a in (r.W, r.H, r.history):
                    digest.update(np.ascontiguousarray(a).tobytes())
    r = fastnmf.nmf(X, k, solver="mu", beta_loss="kullback-leibler", max_iter=20)
    digest.update(r.W.tobytes())
files = [m.__file__.split("/")[-1] for name, m in sys.modules.items()
         if name.startswith("fastnmf._kernels._") and hasattr(m, "__file__")]
folders = {f.split("__")[0] if "__" in f else "baseline" for f in files}
print(kernels.LEVEL, digest.hexdigest(), ",".join(sorted(folders)))
"""


def test_every_level_gives_the_same_bits():
    levels = kernel_levels()
    results = {level: run_at_level(CHILD, level) for level in levels}
    for level, (chosen, digest, folders) in results.items():
        assert chosen == level
        assert folders == level, (level, folders)  # every kernel module from the level's files
    assert len({digest for _, digest, _ in results.values()}) == 1, results


def test_the_widest_level_is_chosen_and_a_bad_one_refused():
    levels = kernel_levels()
    env = {k: v for k, v in os.environ.items() if k != "FASTNMF_CPU"}
    out = subprocess.run([sys.executable, "-c", "import fastnmf._kernels as k; print(k.LEVEL)"],
                         env=env, capture_output=True, text=True, check=True)
    widest = next((level for level in kernels._LEVELS if level in levels), "baseline")
    assert out.stdout.strip() == widest
    bad = subprocess.run([sys.executable, "-c", "import fastnmf"],
                         env=dict(env, FASTNMF_CPU="pentium"), capture_output=True, text=True)
    assert bad.returncode != 0 and "FASTNMF_CPU must be baseline or one of" in bad.stderr
