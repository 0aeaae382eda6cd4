"""The compiled kernels, for the widest instruction-set level this CPU runs.

A default build (``-Dcpu=dispatch``) holds every kernel module three times on x86-64: the
baseline ``<module>``, and ``x86_64_v3_<module>`` (AVX2, FMA) and ``x86_64_v4_<module>``
(AVX-512) compiled for those levels, each initializing as ``<module>``. At import, the
widest level whose features the CPU reports (as numpy reads them) is chosen, and every
``fastnmf._kernels.<module>`` is loaded from its level's file (a finder placed first on
``sys.meta_path`` serves them, so the kernels' own imports of one another get the same
level). ``FASTNMF_CPU=baseline|x86_64_v3|x86_64_v4`` forces a
level (for the tests, which check that every level gives the same results); a level the
CPU lacks or the build does not hold raises ImportError. ``LEVEL`` says which was taken:
"baseline" is the unprefixed modules, compiled with the build's own flags (the
architecture's baseline, or the building machine's with -Dcpu=native).
"""

import importlib.machinery
import importlib.util
import os
import sys

# The CPU features (numpy's names) each level needs: x86-64-v3 and -v4 of the x86-64 psABI.
_LEVELS = {
    "x86_64_v4": ("AVX512F", "AVX512BW", "AVX512CD", "AVX512DQ", "AVX512VL"),
    "x86_64_v3": ("AVX", "AVX2", "BMI", "BMI2", "F16C", "FMA3", "LZCNT", "MOVBE"),
}


def _features():
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return {}
    return __cpu_features__


def _runs(level):
    """Whether this CPU has every feature ``level`` needs."""
    features = _features()
    return all(features.get(name, False) for name in _LEVELS[level])


def _built(level):
    """The folder of ``level``'s files if this build holds them (an installed or an
    editable build), else None."""
    spec = importlib.util.find_spec(f"{__name__}.{level}__common")
    return None if spec is None or spec.origin is None else os.path.dirname(spec.origin)


def _choose():
    forced = os.environ.get("FASTNMF_CPU", "")
    if forced and forced != "baseline" and forced not in _LEVELS:
        raise ImportError(f"FASTNMF_CPU must be baseline or one of {', '.join(_LEVELS)}; "
                          f"got {forced!r}")
    for level, needs in _LEVELS.items():
        if forced and forced != level:
            continue
        runs = _runs(level)
        folder = _built(level) if runs else None
        if folder is not None:
            return level, folder
        if forced:
            raise ImportError(f"FASTNMF_CPU={forced}: "
                              + ("this build has no such kernels (built with -Dcpu=native "
                                 "or generic, or not on x86-64)" if runs else
                                 f"this CPU lacks {', '.join(n for n in needs if not _features().get(n))}"))
    return "baseline", None


class _LevelFinder:
    """Serves ``fastnmf._kernels.<module>`` from the chosen level's file."""

    def __init__(self, level, folder):
        self.level, self.folder = level, folder
        self.prefix = __name__ + "."

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(self.prefix) or "." in fullname[len(self.prefix):]:
            return None
        name = fullname[len(self.prefix):]
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            origin = os.path.join(self.folder, f"{self.level}_{name}{suffix}")
            if os.path.exists(origin):
                return importlib.util.spec_from_file_location(fullname, origin)
        return None


LEVEL, _folder = _choose()
if _folder is not None:
    sys.meta_path.insert(0, _LevelFinder(LEVEL, _folder))
del _folder

# The first kernel module loads the OpenMP runtime: with sleeping idle threads (see
# fastnmf._threads.loading_openmp).
from .._threads import haswell_kernels, loading_openmp, skylakex_kernels  # noqa: E402

with loading_openmp():
    from . import _common  # noqa: F401
# How a dense X's products are formed, from the kernels of the BLAS scipy calls (loaded
# with _common): _common.rows_first with OpenBLAS's Haswell kernels; _common.narrow_kernels
# with those or its SkylakeX ones, where the CPU has AVX2 and FMA at least, and on a small
# X with the Haswell ones only (_common.narrow_small: _narrow.pxi). With AVX-512's 32
# vector registers they keep 16 to 24 vectors of sums in registers and win up to the
# largest k measured (128); with AVX2's 16 they take smaller blocks (_narrow16.h), each
# loaded vector serving 2 or 3 multiply-adds where OpenBLAS's packed kernels reuse theirs
# 4 to 12 times. They win where packing is a large share of OpenBLAS's time, which falls
# as 1 / k (packing costs n·m, the product n·m·k): so up to k = NARROW_MAX_K_16 only.
# Measured as an AVX2-only CPU runs (FASTNMF_CPU=x86_64_v3, OPENBLAS_CORETYPE=Haswell) on
# an AMD EPYC (Zen 5), cd, random start, two threads, whole calls narrow over BLAS:
# k = 8 0.66-0.87 (300 x 200 to 4000 x 2000, float64 and float32), k = 20 0.73-1.02,
# k = 50 0.87-1.34 (float64 1.00-1.34). Intel's AVX2 cores load two vectors a cycle where
# Zen 5 loads more, which favours the packed kernels there: k = 20 is the largest k at
# which no case measured lost, not a crossover.
# The CPU decides, not the level taken: a level forced by FASTNMF_CPU gives the same bits.
NARROW_MAX_K_16 = 20
_haswell = haswell_kernels()
_common.rows_first(_haswell)
_common.narrow_kernels((_haswell or skylakex_kernels()) and _runs("x86_64_v3"))
_common.narrow_max_k(128 if _runs("x86_64_v4") else NARROW_MAX_K_16)
_common.narrow_small(_haswell)
# A small factor's Gram by fastnmf's own loop instead of syrk where syrk's kernels sum it
# the same way (_grams.pxi, small_gram): OpenBLAS' FMA kernels, Haswell's or SkylakeX's.
_common.small_grams(_haswell or skylakex_kernels())
del haswell_kernels, loading_openmp, skylakex_kernels, _haswell
