"""scikit-learn's own NMF tests, run against fastnmf.sklearn.NMF.

The installed scikit-learn's ``sklearn/decomposition/tests/test_nmf.py`` is read at
collection time (nothing of it is copied here) and executed with its one
``from sklearn.decomposition import NMF, ...`` import taking ``NMF`` from
``fastnmf.sklearn`` instead (an edit of that import in the module's syntax tree, before it
runs: its parametrize decorators capture the class when the module executes). The tests
that use the NMF class are then exposed here under their own names, less their
MiniBatchNMF cases. The rest are not run: MiniBatchNMF's own tests, scikit-learn's
internals (``_initialize_nmf``, ``_beta_divergence``, ``_special_sparse_dot``) and
``non_negative_factorization``, which calls scikit-learn's own NMF class whatever the
module imports (where an NMF-class test compares with it, it is the reference).

Warnings: this suite turns every warning into an error, scikit-learn's own run (its CI sets
SKLEARN_WARNINGS_AS_ERRORS) only DeprecationWarning, FutureWarning and NumPy's
VisibleDeprecationWarning; scikit-learn's ``ignore`` marks on its tests apply as they are.
No other filter is added: a test here fails on any warning our estimator emits where
scikit-learn's does not.
"""

import ast
import importlib.util
import os

import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed")

from sklearn.utils._testing import get_pytest_filterwarning_lines  # noqa: E402

import fastnmf.sklearn  # noqa: E402


# scikit-learn's pytest configuration sets no filter (warnings are shown, not raised);
# its CI adds these lines (SKLEARN_WARNINGS_AS_ERRORS), in this order. "default" first
# undoes this suite's "error" for these tests only.
SKLEARN_FILTERS = ["default", *get_pytest_filterwarning_lines()]

UPSTREAM = os.path.join(os.path.dirname(sklearn.__file__), "decomposition", "tests",
                        "test_nmf.py")


def _retarget_nmf_import(tree):
    """In ``tree``, the import of NMF from sklearn.decomposition split off into an import
    from fastnmf.sklearn; raises if there is no such import (the file changed shape)."""
    for i, node in enumerate(tree.body):
        if (isinstance(node, ast.ImportFrom) and node.module == "sklearn.decomposition"
                and any(a.name == "NMF" and a.asname is None for a in node.names)):
            node.names = [a for a in node.names if a.name != "NMF"]
            ours = ast.ImportFrom(module="fastnmf.sklearn", names=[ast.alias(name="NMF")],
                                  level=0)
            tree.body[i:i + 1] = ([node] if node.names else []) + [ours]
            return ast.fix_missing_locations(tree)
    raise RuntimeError(f"{UPSTREAM} no longer imports NMF from sklearn.decomposition")


def _uses_nmf_class(func_node):
    """Whether a test's decorators or body name ``NMF``."""
    return any(isinstance(n, ast.Name) and n.id == "NMF" for n in ast.walk(func_node))


def _load_upstream():
    """scikit-learn's test module, executed with NMF = fastnmf.sklearn.NMF, and the names
    of its tests that use the NMF class."""
    with open(UPSTREAM, encoding="utf-8") as f:
        source = f.read()
    tree = _retarget_nmf_import(ast.parse(source, UPSTREAM))
    names = [node.name for node in tree.body
             if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
             and _uses_nmf_class(node)]
    spec = importlib.util.spec_from_loader("_sklearn_upstream_test_nmf", loader=None,
                                           origin=UPSTREAM)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = UPSTREAM
    exec(compile(tree, UPSTREAM, "exec"), module.__dict__)
    assert module.NMF is fastnmf.sklearn.NMF
    return module, names


def _as_upstream(func, minibatch):
    """``func`` with every parametrize case that passes ``minibatch`` dropped and, before
    its own marks (which so take precedence), scikit-learn's warning filters."""
    marks = [pytest.mark.filterwarnings(*SKLEARN_FILTERS).mark]
    for mark in getattr(func, "pytestmark", []):
        if mark.name == "parametrize":
            argnames, argvalues = mark.args[:2]
            kept = [v for v in argvalues if not _passes(v, minibatch)]
            if len(kept) != len(argvalues):
                mark = pytest.mark.parametrize(argnames, kept, *mark.args[2:],
                                               **mark.kwargs).mark
        marks.append(mark)
    func.pytestmark = marks
    return func


def _passes(value, cls):
    values = value.values if hasattr(value, "values") and hasattr(value, "marks") else (
        value if isinstance(value, (list, tuple)) else [value])
    return any(v is cls for v in values)


_upstream, UPSTREAM_TESTS = _load_upstream()
for _name in UPSTREAM_TESTS:
    globals()[_name] = _as_upstream(getattr(_upstream, _name), _upstream.MiniBatchNMF)
del _name
