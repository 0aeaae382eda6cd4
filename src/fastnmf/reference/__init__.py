"""Reference solvers: each algorithm of docs/algorithms.md stated plainly in NumPy.

``fastnmf.reference.nmf`` has the signature and result of ``fastnmf.nmf`` and shares its
validation and initialization; only the solver table differs. The tests cross-check the
compiled kernels against these functions.
"""

import importlib
import inspect

from .._api import NMF_DEFAULTS, nmf as _compiled_nmf, run
from .._registry import SOLVERS as _ENTRIES
from .._validation import check_nmf_args

__all__ = ["nmf", "SOLVERS"]

# Each registry solver's twin: the function <name> of reference/_<name>.py.
SOLVERS = {name: getattr(importlib.import_module(f"._{name}", __name__), name)
           for name in _ENTRIES}


def nmf(X, n_components, **kwargs):
    """``fastnmf.nmf`` computed by the NumPy reference solvers (same arguments, same result)."""
    unknown = set(kwargs) - set(NMF_DEFAULTS)
    if unknown:
        raise TypeError(f"nmf() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    prob = check_nmf_args(X, n_components, **{**NMF_DEFAULTS, **kwargs}, out_of_core=False)
    return run(prob, SOLVERS)


nmf.__signature__ = inspect.signature(_compiled_nmf)
