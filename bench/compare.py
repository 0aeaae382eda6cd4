"""Side-by-side table: fastnmf against its reference solvers and scikit-learn (where
installed), implementations interleaved in one process, medians reported.

    python bench/compare.py            # the full table (a few minutes)
    python bench/compare.py --quick    # the same cases, smaller

Unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for this command alone where they are set
(`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py`): they slow numpy.
"""

import sys

from fastnmf._cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
