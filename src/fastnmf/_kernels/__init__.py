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
# with those or its SkylakeX ones, only where the CPU has AVX-512's 32 vector registers
# too, and on a small X with the Haswell ones only (_common.narrow_small: _narrow.pxi).
# The narrow kernels keep 16 to 24 vectors of sums in registers; with AVX2's 16 they
# spill (x86-64-v3's dots4x4: 46 of its 80 FMAs read the stack) and lose to OpenBLAS's
# Haswell kernels on large X. Measured with the x86-64-v3 build (FASTNMF_CPU) on an AMD
# EPYC (Zen 5), time per iteration narrow over BLAS: 8000 x 4000 float64 k = 16 / 50
# 1.07 / 1.32, float32 k = 20 1.13, 2000 x 1000 k = 12 to 20 0.91-1.00, float32 k = 16
# 1.10, 50 x 30 k = 5 1.13; the x86-64-v4 build 0.50-0.64.
# The CPU decides, not the level taken: a level forced by FASTNMF_CPU gives the same bits.
_haswell = haswell_kernels()
_common.rows_first(_haswell)
_common.narrow_kernels((_haswell or skylakex_kernels()) and _runs("x86_64_v4"))
_common.narrow_small(_haswell)
del haswell_kernels, loading_openmp, skylakex_kernels, _haswell
