"""The ``fastnmf`` command line."""

import argparse
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastnmf")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from . import nmf
        from ._datasets import low_rank

        X = low_rank(500, 300, 10)
        t0 = time.perf_counter()
        res = nmf(X, 10, random_state=0)
        print(res, f"{time.perf_counter() - t0:.3f} s")
    return 0
