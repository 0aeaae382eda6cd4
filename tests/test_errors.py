"""Every bad input of docs/api.md's "Errors and warnings" section, for ``fastnmf.nmf`` and ``fastnmf.reference.nmf``.

One table of (X, n_components, keyword arguments, exception, patterns). The patterns name
the argument and what is allowed (or the value found), never the whole sentence: each is
searched for anywhere in the message, case-insensitively, in any order.
"""

import re

import numpy as np
import pytest
import scipy.sparse as sp

import fastnmf
import fastnmf.reference

N, M, K = 6, 5, 2


def good_X():
    return np.random.default_rng(0).random((N, M)) + 0.1


def good_W():
    return np.random.default_rng(1).random((N, K))


def good_H():
    return np.random.default_rng(2).random((K, M))


def with_entry(value, sparse=False, dtype=np.float64, *where):
    X = good_X().astype(dtype)
    for i, j in where or [(2, 3)]:
        X[i, j] = value
    return sp.csr_matrix(X) if sparse else X


def factor(shape, value=None, where=(0, 1)):
    F = np.random.default_rng(3).random(shape)
    if value is not None:
        F[where] = value
    return F


def all_of(*patterns):
    """A regex that finds every pattern somewhere in the message (any order, any case)."""
    return "(?si)" + "".join(f"(?=.*(?:{p}))" for p in patterns)


X_ = r"\bX\b"
W_ = r"\bW\b"
H_ = r"\bH\b"
NAN = r"\bnan\b"
INF = r"\binf"
SOLVER_CHOICES = (r"\bsolver\b", r"\bcd\b", r"\bals\b", r"\bmu\b")
INIT_CHOICES = (r"\binit\b", r"\brandom\b", r"\bnndsvd\b", r"\bnndsvda\b", r"\bnndsvdar\b",
                r"\bcustom\b")
BETA_CHOICES = (r"\bbeta_loss\b", r"frobenius", r"kullback-leibler", r"itakura-saito")
AT_LEAST_1 = r">=\s*1\b|≥\s*1\b|at least 1\b|positive"
AT_LEAST_0 = r">=\s*0\b|≥\s*0\b|at least 0\b|non-?negative"
TYPE_OR_VALUE = (TypeError, ValueError)


DEFAULT = object()  # stands for good_X(): None itself is one of the bad inputs


def malformed(fmt, **changes):
    """good_X() as a ``fmt`` matrix whose index arrays were then changed (as a caller can:
    SciPy checks them only when the matrix is built)."""
    X = sp.csr_matrix(good_X()).asformat(fmt)
    for name, change in changes.items():
        setattr(X, name, change(getattr(X, name).copy()))
    return X


def setting(i, value):
    def change(a):
        a[i] = value
        return a
    return change


def bad_lil():
    X = sp.lil_matrix(good_X())
    X.rows[0][0] = 9
    return X


def bad_dok():
    X = sp.dok_matrix(good_X())
    # a key beyond its shape, past dok's own checks (its store: a dict inside it since
    # scipy 1.13, the matrix itself before)
    store = getattr(X, "_dict", None)
    if store is None:
        dict.__setitem__(X, (9, 0), 1.0)
    else:
        store[(9, 0)] = 1.0
    return X


def pandas_cases():
    """pandas' missing value (pandas.NA, which float() refuses): in a frame of nullable
    Float64 columns (NumPy reads it as objects), in an object array, in a fixed H. None
    without pandas (an optional dependency)."""
    try:
        import pandas as pd
    except ImportError:
        return []
    frame = pd.DataFrame(good_X()).astype("Float64")
    frame.iloc[2, 3] = pd.NA
    objects = good_X().astype(object)
    objects[1, 1] = pd.NA
    H = good_H().astype(object)
    H[0, 2] = pd.NA
    return [
        case("X-pandas-nullable-missing", ValueError, (X_, NAN), X=frame),
        case("X-object-pandas-NA", ValueError, (X_, NAN), X=objects),
        case("fixed-H-pandas-NA", ValueError, (H_, NAN), update_H=False, H=H),
    ]


class Tall:
    """An array-like of 2**31 x 2 ones with no memory behind it (a broadcast view)."""

    def __array__(self, dtype=None, copy=None):
        return np.broadcast_to(np.float64(1), (2**31, 2))


HUGE_SPARSE = sp.coo_matrix(([1.0], ([0], [0])), shape=(2**31, 3))  # one stored entry
IN_INT32 = r"2\*\*31"


def case(id, exc, patterns, X=DEFAULT, k=K, **kwargs):
    return pytest.param(X, k, kwargs, exc, all_of(*patterns), id=id)


CASES = [
    # --- X: values -------------------------------------------------------------------
    case("X-negative", ValueError, (X_, "negative", r"-0\.5\b"), X=with_entry(-0.5)),
    case("X-negative-reports-minimum", ValueError, (X_, "negative", r"-2\.25\b"),
         X=with_entry(-2.25)),
    case("X-negative-float32", ValueError, (X_, "negative", r"-0\.5\b"),
         X=with_entry(-0.5, False, np.float32)),
    case("X-negative-int", ValueError, (X_, "negative", r"-3\b"),
         X=np.array([[1, 2, 0], [0, -3, 1], [2, 2, 2]])),
    case("X-negative-sparse", ValueError, (X_, "negative", r"-0\.5\b"),
         X=with_entry(-0.5, True)),
    case("X-negative-csc", ValueError, (X_, "negative", r"-0\.5\b"),
         X=sp.csc_matrix(with_entry(-0.5))),
    case("X-negative-coo", ValueError, (X_, "negative", r"-0\.5\b"),
         X=sp.coo_matrix(with_entry(-0.5))),
    case("X-nan", ValueError, (X_, NAN), X=with_entry(np.nan)),
    case("X-nan-float32", ValueError, (X_, NAN), X=with_entry(np.nan, False, np.float32)),
    case("X-nan-sparse", ValueError, (X_, NAN), X=with_entry(np.nan, True)),
    case("X-inf", ValueError, (X_, INF), X=with_entry(np.inf)),
    case("X-minus-inf", ValueError, (X_, INF), X=with_entry(-np.inf)),
    case("X-inf-sparse", ValueError, (X_, INF), X=with_entry(np.inf, True)),
    case("X-inf-sparse-csc", ValueError, (X_, INF), X=sp.csc_matrix(with_entry(np.inf))),
    case("X-masked", ValueError, (X_, "masked", "1 masked", r"filled"),
         X=np.ma.masked_array(np.ones((N, M)), mask=np.arange(N * M).reshape(N, M) == 0)),
    case("X-object-None", ValueError, (X_,),
         X=np.array([[1.0, None], [2.0, 3.0]], dtype=object), k=1),
    case("X-longdouble-beyond-float64", ValueError, (X_, "beyond float64's range"),
         X=with_entry(np.longdouble("1e400"), False, np.longdouble)),
    case("X-longdouble-beyond-float64-sparse", ValueError, (X_, "beyond float64's range"),
         X=sp.csr_matrix(with_entry(np.longdouble("1e400"), False, np.longdouble))),
    # --- X: shape ----------------------------------------------------------------------
    case("X-1d", ValueError, (X_, r"2-?d|two-dim|dimension"), X=np.ones(5), k=1),
    case("X-3d", ValueError, (X_, r"2-?d|two-dim|dimension"), X=np.ones((2, 3, 4)), k=1),
    case("X-0d", ValueError, (X_, r"2-?d|two-dim|dimension"), X=np.float64(1.0), k=1),
    case("X-empty-rows", ValueError, (X_, "empty"), X=np.ones((0, 5)), k=1),
    case("X-empty-cols", ValueError, (X_, "empty"), X=np.ones((5, 0)), k=1),
    case("X-empty-both", ValueError, (X_, "empty"), X=np.ones((0, 0)), k=1),
    case("X-empty-list", ValueError, (X_,), X=[], k=1),
    case("X-empty-sparse-rows", ValueError, (X_, "empty"), X=sp.csr_matrix((0, 5)), k=1),
    case("X-empty-sparse-cols", ValueError, (X_, "empty"), X=sp.csr_matrix((5, 0)), k=1),
    case("X-ragged", ValueError, (X_,), X=[[1.0, 2.0], [3.0]], k=1),
    # --- X: sizes beyond the kernels' C ints, refused before anything is allocated --------
    case("X-sparse-2**31-rows-coo", ValueError, (X_, IN_INT32, r"2147483648"), X=HUGE_SPARSE,
         k=1),
    case("X-sparse-2**31-cols-csr", ValueError, (X_, IN_INT32),
         X=sp.csr_matrix((3, 2**31)), k=1),
    case("X-sparse-3e9-rows", ValueError, (X_, IN_INT32),
         X=sp.coo_matrix(([1.0], ([0], [0])), shape=(3 * 10**9, 3)), k=1),
    case("X-dense-2**31-rows", ValueError, (X_, IN_INT32),
         X=Tall(), k=1),
    # --- X: malformed sparse structure (never read out of bounds) -----------------------
    case("X-csr-column-out-of-range", ValueError, (X_, "CSR", r"\[0, 5\)", r"indices\[3\] = 7"),
         X=malformed("csr", indices=setting(3, 7))),
    case("X-csr-column-negative", ValueError, (X_, "CSR", r"indices\[3\] = -1"),
         X=malformed("csr", indices=setting(3, -1))),
    case("X-csc-row-out-of-range", ValueError, (X_, "CSC", r"row indices", r"\[0, 6\)"),
         X=malformed("csc", indices=setting(-1, 6))),
    case("X-csr-int64-index-out-of-range", ValueError, (X_, "CSR", r"2147483648"),
         X=malformed("csr", indices=lambda a: np.where(np.arange(a.size) == 0, 2**31,
                                                        a).astype(np.int64))),
    case("X-csr-indptr-decreasing", ValueError, (X_, "indptr", "non-decreasing"),
         X=malformed("csr", indptr=setting(2, 100))),
    case("X-csr-indptr-short", ValueError, (X_, "indptr", r"\b7\b", r"\b6\b"),
         X=malformed("csr", indptr=lambda a: a[:-1])),
    case("X-csr-indptr-not-from-0", ValueError, (X_, "indptr", r"indptr\[0\] = 1"),
         X=malformed("csr", indptr=setting(0, 1))),
    case("X-csr-indptr-end", ValueError, (X_, "indptr", r"stored entries \(30\)"),
         X=malformed("csr", indptr=setting(-1, 29))),
    case("X-csr-indptr-beyond", ValueError, (X_, "indptr"),
         X=malformed("csr", indptr=setting(-1, 10**6))),
    case("X-csc-data-short", ValueError, (X_, "CSC", "same length", r"29 and 30"),
         X=malformed("csc", data=lambda a: a[:-1])),
    case("X-csr-indices-float", ValueError, (X_, "indices", "integer"),
         X=malformed("csr", indices=lambda a: a.astype(float))),
    case("X-coo-row-out-of-range", ValueError, (X_, "COO", r"row\[2\] = 9", r"\[0, 6\)"),
         X=malformed("coo", row=setting(2, 9))),
    case("X-coo-col-negative", ValueError, (X_, "COO", r"col\[0\] = -2"),
         X=malformed("coo", col=setting(0, -2))),
    case("X-coo-col-short", ValueError, (X_, "COO", "same length"),
         X=malformed("coo", col=lambda a: a[:-1])),
    case("X-bsr-index-out-of-range", ValueError, (X_, "BSR", "block column"),
         X=malformed("bsr", indices=setting(0, 5))),
    case("X-lil-column-out-of-range", ValueError, (X_, r"\[0, 5\)"), X=bad_lil()),
    case("X-dok-key-out-of-range", ValueError, (X_, "malformed DOK"), X=bad_dok()),
    case("X-csr-data-2d", ValueError, (X_, "CSR", "data", "1-D", r"\(30, 1\)"),
         X=malformed("csr", data=lambda a: a[:, None])),
    # --- X: type -----------------------------------------------------------------------
    case("X-complex", TypeError, (X_, r"real|complex"), X=good_X().astype(complex)),
    case("X-complex-sparse", TypeError, (X_, r"real|complex"),
         X=sp.csr_matrix(good_X().astype(complex))),
    case("X-string", TypeError, (X_,), X="abc", k=1),
    case("X-bytes", TypeError, (X_,), X=b"abc", k=1),
    case("X-None", TypeError, (X_,), X=None, k=1),
    case("X-string-array", TypeError, (X_,), X=np.array([["a", "b"], ["c", "d"]]), k=1),
    case("X-object-strings", TypeError, (X_,),
         X=np.array([["a", "b"], ["c", "d"]], dtype=object), k=1),
    case("X-datetime", TypeError, (X_,),
         X=np.array([["2020-01-01", "2020-01-02"]] * 2, dtype="datetime64[D]"), k=1),
    # --- n_components ------------------------------------------------------------------
    case("k-0", ValueError, (r"\bn_components\b", AT_LEAST_1), k=0),
    case("k-minus-1", ValueError, (r"\bn_components\b", AT_LEAST_1), k=-1),
    case("k-float", TypeError, (r"\bn_components\b", r"\bint"), k=1.5),
    case("k-float-integral", TypeError, (r"\bn_components\b", r"\bint"), k=2.0),
    case("k-True", TypeError, (r"\bn_components\b", r"\bint"), k=True),
    case("k-str", TypeError, (r"\bn_components\b", r"\bint"), k="3"),
    case("k-array", TypeError, (r"\bn_components\b",), k=np.array([2, 3])),
    case("k-too-large-nndsvd", ValueError, (r"\bn_components\b", r"\bmin\b|\b5\b"),
         k=6, init="nndsvd"),
    case("k-too-large-nndsvda", ValueError, (r"\bn_components\b", r"\bmin\b|\b5\b"),
         k=6, init="nndsvda"),
    case("k-too-large-nndsvdar", ValueError, (r"\bn_components\b", r"\bmin\b|\b5\b"),
         k=6, init="nndsvdar"),
    case("k-too-large-nndsvd-tall", ValueError, (r"\bn_components\b", r"\bmin\b|\b5\b"),
         X=good_X().T, k=6, init="nndsvda"),
    # --- solver, init ------------------------------------------------------------------
    case("solver-unknown", ValueError, SOLVER_CHOICES, solver="sgd"),
    case("solver-wrong-case", ValueError, SOLVER_CHOICES, solver="CD"),
    case("solver-empty", ValueError, SOLVER_CHOICES, solver=""),
    case("solver-None", TypeError, SOLVER_CHOICES, solver=None),
    case("solver-int", TypeError, SOLVER_CHOICES, solver=1),
    case("init-unknown", ValueError, INIT_CHOICES, init="bogus"),
    case("init-wrong-case", ValueError, INIT_CHOICES, init="NNDSVD"),
    case("init-int", TypeError, INIT_CHOICES, init=1),
    # --- switches: a bool (or an int), not any object's truth value ---------------------
    case("update_H-string", TypeError, (r"\bupdate_H\b", "bool", "'no'"), update_H="no",
         H=good_H()),
    case("shuffle-string", TypeError, (r"\bshuffle\b", "bool"), shuffle="no"),
    case("shuffle-None", TypeError, (r"\bshuffle\b", "bool"), shuffle=None),
    case("verbose-list", TypeError, (r"\bverbose\b", "bool"), verbose=[1]),
    case("accelerate-float", TypeError, (r"\baccelerate\b", "bool"), accelerate=1.0),
    case("gather_W-None", TypeError, (r"\bgather_W\b", "bool"), gather_W=None),
    # --- beta_loss ---------------------------------------------------------------------
    case("beta-kl-with-cd", ValueError, (r"\bbeta_loss\b",), beta_loss="kullback-leibler"),
    case("beta-is-with-cd", ValueError, (r"\bbeta_loss\b",), beta_loss="itakura-saito"),
    case("beta-kl-with-als", ValueError, (r"\bbeta_loss\b",), beta_loss="kullback-leibler",
         solver="als"),
    case("beta-1-with-cd", ValueError, (r"\bbeta_loss\b",), beta_loss=1),
    case("beta-0-with-cd", ValueError, (r"\bbeta_loss\b",), beta_loss=0),
    case("beta-bogus", ValueError, BETA_CHOICES, beta_loss="bogus"),
    case("beta-None", TypeError, (r"\bbeta_loss\b",), beta_loss=None),
    # --- init='custom' -----------------------------------------------------------------
    case("custom-W-missing", ValueError, (W_,), init="custom", H=good_H()),
    case("custom-H-missing", ValueError, (H_,), init="custom", W=good_W()),
    case("custom-both-missing", ValueError, (r"\bW\b|\bH\b",), init="custom"),
    case("custom-W-shape", ValueError, (W_, "shape", r"\(6, 2\)"), init="custom",
         W=factor((N, K + 1)), H=good_H()),
    case("custom-W-transposed", ValueError, (W_, "shape", r"\(6, 2\)"), init="custom",
         W=factor((K, N)), H=good_H()),
    case("custom-W-1d", ValueError, (W_,), init="custom", W=factor((N * K,)), H=good_H()),
    case("custom-H-shape", ValueError, (H_, "shape", r"\(2, 5\)"), init="custom",
         W=good_W(), H=factor((K, M - 1))),
    case("custom-W-negative", ValueError, (W_, "negative"), init="custom",
         W=factor((N, K), -0.25), H=good_H()),
    case("custom-H-negative", ValueError, (H_, "negative"), init="custom", W=good_W(),
         H=factor((K, M), -0.25)),
    case("custom-W-nan", ValueError, (W_, NAN), init="custom", W=factor((N, K), np.nan),
         H=good_H()),
    case("custom-H-nan", ValueError, (H_, NAN), init="custom", W=good_W(),
         H=factor((K, M), np.nan)),
    case("custom-H-inf", ValueError, (H_, INF), init="custom", W=good_W(),
         H=factor((K, M), np.inf)),
    case("custom-W-complex", TypeError, (W_,), init="custom",
         W=good_W().astype(complex), H=good_H()),
    case("custom-W-beyond-float32", ValueError, (W_, "float32's range", r"1e\+300"),
         X=good_X().astype(np.float32), init="custom", W=factor((N, K), 1e300), H=good_H()),
    case("fixed-H-beyond-float32", ValueError, (H_, "float32's range"),
         X=good_X().astype(np.float32), update_H=False, H=factor((K, M), -1e300) * -1),
    case("custom-W-sparse", TypeError, (W_,), init="custom", W=sp.csr_matrix(good_W()),
         H=good_H()),
    case("custom-W-strings", TypeError, (W_,), init="custom",
         W=np.full((N, K), "a"), H=good_H()),
    # --- update_H=False ----------------------------------------------------------------
    case("fixed-H-missing", ValueError, (H_, r"\bupdate_H\b"), update_H=False),
    case("fixed-H-shape", ValueError, (H_, "shape", r"\(2, 5\)"), update_H=False,
         H=factor((K, M + 1))),
    case("fixed-H-negative", ValueError, (H_, "negative"), update_H=False,
         H=factor((K, M), -1.0)),
    case("fixed-H-nan", ValueError, (H_, NAN), update_H=False, H=factor((K, M), np.nan)),
    case("fixed-W-shape", ValueError, (W_, "shape", r"\(6, 2\)"), update_H=False,
         H=good_H(), W=factor((N - 1, K))),
    case("fixed-W-negative", ValueError, (W_, "negative"), update_H=False, H=good_H(),
         W=factor((N, K), -1.0)),
    # --- max_iter, tol -----------------------------------------------------------------
    case("max_iter-0", ValueError, (r"\bmax_iter\b", AT_LEAST_1), max_iter=0),
    case("max_iter-negative", ValueError, (r"\bmax_iter\b", AT_LEAST_1), max_iter=-5),
    case("max_iter-float", TypeError, (r"\bmax_iter\b", r"\bint"), max_iter=1.5),
    case("max_iter-str", TypeError, (r"\bmax_iter\b", r"\bint"), max_iter="10"),
    case("max_iter-None", TypeError, (r"\bmax_iter\b",), max_iter=None),
    case("max_iter-2**31", ValueError, (r"\bmax_iter\b", r"\[1, 2147483646\]"),
         max_iter=2**31),
    case("max_iter-huge", ValueError, (r"\bmax_iter\b", r"\[1, 2147483646\]"),
         max_iter=10**30),
    # --- sizes: n_components, n_threads -------------------------------------------------
    case("k-2**40", ValueError, (r"\bn_components\b", r"\[1, 2147483647\]"), k=2**40,
         init="random"),
    case("k-too-large-for-memory", ValueError, (r"\bn_components\b", r"\[1, \d+\]",
                                                r"TiB"), k=2**25, init="random"),
    case("n_threads-2**40", ValueError, (r"\bn_threads\b", r"\[-\d+, \d+\]"),
         n_threads=2**40),
    case("n_threads-minus-2**40", ValueError, (r"\bn_threads\b", r"\[-\d+, \d+\]"),
         n_threads=-2**40),
    case("n_threads-10**5", ValueError, (r"\bn_threads\b", r"\[-\d+, \d+\]"),
         n_threads=10**5),  # would crash OpenMP (thread creation fails)
    case("n_threads-0", ValueError, (r"\bn_threads\b",), n_threads=0),
    case("tol-negative", ValueError, (r"\btol\b", AT_LEAST_0), tol=-1),
    case("tol-nan", ValueError, (r"\btol\b",), tol=np.nan),
    case("tol-str", TypeError, (r"\btol\b",), tol="x"),
    case("tol-None", TypeError, (r"\btol\b",), tol=None),
    case("tol-int-beyond-float", ValueError, (r"\btol\b", "finite", "401 digits"),
         tol=10**400),
    # --- regularization ----------------------------------------------------------------
    case("alpha_W-negative", ValueError, (r"\balpha_W\b", AT_LEAST_0), alpha_W=-1),
    case("alpha_W-nan", ValueError, (r"\balpha_W\b",), alpha_W=np.nan),
    case("alpha_W-str", TypeError, (r"\balpha_W\b",), alpha_W="x"),
    case("alpha_W-int-beyond-float", ValueError, (r"\balpha_W\b", "finite"), alpha_W=10**400),
    case("alpha_H-negative", ValueError, (r"\balpha_H\b", AT_LEAST_0), alpha_H=-1),
    case("alpha_H-bogus", ValueError, (r"\balpha_H\b", r"\bsame\b"), alpha_H="bogus"),
    case("l1_ratio-2", ValueError, (r"\bl1_ratio\b", r"\b1\b"), l1_ratio=2),
    case("l1_ratio-negative", ValueError, (r"\bl1_ratio\b", r"\b0\b"), l1_ratio=-0.1),
    case("l1_ratio-nan", ValueError, (r"\bl1_ratio\b",), l1_ratio=np.nan),
    case("l1_ratio-str", TypeError, (r"\bl1_ratio\b",), l1_ratio="x"),
    # regularization beyond the computation dtype (not blamed on X's scale)
    case("alpha_W-1e38-float32", ValueError, (r"\balpha_W\b", "float32", r"\[0, "),
         X=good_X().astype(np.float32), alpha_W=1e38),
    case("alpha_H-1e38-float32", ValueError, (r"\balpha_H\b", "float32", r"\[0, "),
         X=good_X().astype(np.float32), alpha_H=1e38),
    case("alpha_W-5e307-float64", ValueError, (r"\balpha_W\b", "float64", r"\[0, "),
         alpha_W=5e307),
    case("alpha_W-inf-term", ValueError, (r"\balpha_W\b",), alpha_W=1e308, l1_ratio=0.5),
    case("alpha_W-tiny-X-float32", ValueError, (r"\balpha_W\b", r"2\*\*150"),
         X=good_X().astype(np.float32) * np.float32(1e-30), alpha_W=1e7, l1_ratio=1),
    # --- X near float64's largest value: its errors could not be represented -------------
    case("X-norm-near-float64-max", ValueError, (X_, "float64", r"2\*\*102\d"),
         X=good_X() * 3e307),
    case("X-norm-overflows-float64", ValueError, (X_, "float64"),
         X=np.full((N, M), np.finfo(np.float64).max)),
    # --- random_state ------------------------------------------------------------------
    case("random_state-negative", ValueError, (r"\brandom_state\b",), random_state=-1),
    case("random_state-too-large", ValueError, (r"\brandom_state\b",), random_state=2**32),
    case("random_state-str", TypeError, (r"\brandom_state\b",), random_state="x"),
    case("random_state-float", TypeError, (r"\brandom_state\b",), random_state=1.5),
]
CASES += pandas_cases()

ENTRY_POINTS = {"fastnmf.nmf": fastnmf.nmf, "reference.nmf": fastnmf.reference.nmf}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("X,k,kwargs,exc,match", CASES)
def test_bad_input_raises(entry, X, k, kwargs, exc, match):
    X = good_X() if X is DEFAULT else X
    with pytest.raises(exc, match=match):
        ENTRY_POINTS[entry](X, k, **kwargs)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("name", ["bogus", "n_jobs", "alpha", "regularization"])
def test_unknown_keyword_raises_type_error(entry, name):
    with pytest.raises(TypeError, match=name):
        ENTRY_POINTS[entry](good_X(), K, **{name: 1})


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_extra_positional_argument_raises_type_error(entry):
    with pytest.raises(TypeError):
        ENTRY_POINTS[entry](good_X(), K, "cd")


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("X,k,kwargs,exc,match", CASES)
def test_bad_input_leaves_arguments_untouched(entry, X, k, kwargs, exc, match):
    """A rejected call modifies nothing it was given."""
    X = good_X() if X is DEFAULT else X
    arrays = [a for a in [X, kwargs.get("W"), kwargs.get("H")] if isinstance(a, np.ndarray)]
    copies = [a.copy() for a in arrays]
    with pytest.raises(exc):
        ENTRY_POINTS[entry](X, k, **kwargs)
    for a, c in zip(arrays, copies):
        if a.dtype == object:  # (pandas.NA has no truth value: the same objects)
            assert all(x is y for x, y in zip(a.ravel(), c.ravel()))
        else:
            np.testing.assert_array_equal(a, c)


# Valid inputs that sit next to the bad ones above: these must not raise.
VALID = [
    pytest.param(dict(k=6, init="random"), id="k-above-min-with-random"),
    pytest.param(dict(k=6), id="k-above-min-with-init-None"),
    pytest.param(dict(k=5, init="nndsvd"), id="k-equal-min-nndsvd"),
    pytest.param(dict(k=np.int64(2)), id="k-numpy-int"),
    pytest.param(dict(max_iter=np.int32(3)), id="max_iter-numpy-int"),
    pytest.param(dict(tol=0), id="tol-int-0"),
    pytest.param(dict(tol=np.float32(1e-3)), id="tol-numpy-float"),
    pytest.param(dict(beta_loss=2), id="beta-2"),
    pytest.param(dict(beta_loss=2.0), id="beta-2.0"),
    pytest.param(dict(beta_loss="frobenius"), id="beta-frobenius"),
    pytest.param(dict(l1_ratio=1), id="l1_ratio-1"),
    pytest.param(dict(l1_ratio=0), id="l1_ratio-0"),
    pytest.param(dict(alpha_W=0.1, alpha_H=0), id="alpha_H-0"),
    pytest.param(dict(random_state=0), id="random_state-0"),
    pytest.param(dict(random_state=2**32 - 1), id="random_state-max"),
    pytest.param(dict(random_state=np.int64(7)), id="random_state-numpy-int"),
    pytest.param(dict(random_state=np.random.default_rng(0)), id="random_state-Generator"),
    pytest.param(dict(X=np.array([["1", "2"], ["3", "4"]], dtype=object), k=1),
                 id="X-object-numbers"),
    pytest.param(dict(X=-np.zeros((3, 4))), id="X-negative-zero"),
    pytest.param(dict(X=sp.coo_matrix(good_X())), id="X-coo"),
    pytest.param(dict(X=sp.csr_matrix(good_X()).astype(np.int64)), id="X-sparse-int"),
    pytest.param(dict(X=malformed("csr", indices=lambda a: a.astype(np.uint64),
                                  indptr=lambda a: a.astype(np.uint64))),
                 id="X-csr-uint64-indices"),
    pytest.param(dict(X=malformed("coo", row=lambda a: a.astype(np.uint16))),
                 id="X-coo-uint16-rows"),
    pytest.param(dict(verbose=2), id="verbose-int"),
    pytest.param(dict(solver=np.str_("als"), init=np.str_("random")), id="names-numpy-str"),
    pytest.param(dict(shuffle=np.True_), id="shuffle-numpy-bool"),
]


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("kw", VALID)
def test_valid_neighbours_accepted(entry, kw):
    kw = dict(kw)
    X = kw.pop("X", good_X())
    k = kw.pop("k", K)
    res = ENTRY_POINTS[entry](X, k, max_iter=kw.pop("max_iter", 5), **kw)
    assert np.all(np.isfinite(res.W)) and np.all(res.W >= 0)
    assert np.all(np.isfinite(res.H)) and np.all(res.H >= 0)
    assert res.W.shape == (np.shape(X)[0], k)


@pytest.mark.parametrize("entry", [fastnmf.nmf, fastnmf.reference.nmf])
def test_beta_loss_rules(entry):
    X = np.random.default_rng(0).random((6, 5))
    with pytest.raises(ValueError, match=r"beta_loss.*solver='mu'"):
        entry(X, 2, solver="cd", beta_loss="kullback-leibler")
    with pytest.raises(ValueError, match=r"beta_loss.*solver='mu'"):
        entry(X, 2, solver="als", beta_loss=1.5)
    X[0, 0] = 0
    for beta in ("itakura-saito", -0.5, 0):
        with pytest.raises(ValueError, match=r"X contains zeros.*β <= 0"):
            entry(X, 2, solver="mu", beta_loss=beta)
        with pytest.raises(ValueError, match=r"X contains zeros.*β <= 0"):
            entry(sp.csr_matrix(X), 2, solver="mu", beta_loss=beta)  # an implicit zero
        full = sp.csr_matrix(X + 1)  # sparse format, no zero at all: accepted
        assert np.isfinite(entry(full, 2, solver="mu", beta_loss=beta, max_iter=5).W).all()


# --- faults: nothing allocated for a refused size, unaligned X, scaling -----------------

@pytest.mark.parametrize("fmt", ["coo", "csr", "csc", "dok"])
def test_huge_sparse_refused_before_allocating(fmt):
    """One stored entry in a 2**31 x 3 matrix: refused before any conversion allocates in
    proportion to its shape (a CSR of it has a 16 GiB indptr)."""
    import tracemalloc

    if fmt == "coo":
        X = HUGE_SPARSE
    elif fmt == "dok":
        X = sp.dok_matrix((2**31, 3))
        X[5, 1] = 1.0
    else:  # its transpose's CSR/CSC (3 x 2**31) costs nothing
        small = sp.csr_matrix(([1.0], [0], np.array([0, 1, 1, 1], dtype=np.int64)),
                              shape=(3, 2**31))
        X = small.T if fmt == "csc" else small
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"X has too many rows.*2\*\*31"):
            fastnmf.nmf(X, 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def unaligned(A):
    """A copy of A (C or F order kept) whose data starts one byte past an aligned address,
    as np.frombuffer hands out for a pickled buffer at an odd offset."""
    order = "F" if A.flags.f_contiguous and not A.flags.c_contiguous else "C"
    raw = np.empty(A.nbytes + 1, dtype=np.uint8)
    out = np.frombuffer(raw.data, dtype=A.dtype, count=A.size, offset=1)
    out = out.reshape(A.shape, order=order)
    out[...] = A
    assert not out.flags.aligned
    return out


@pytest.mark.parametrize("layout", ["C", "F", "float32", "csr", "csc"])
@pytest.mark.parametrize("solver", ["cd", "mu", "bpp"])
def test_unaligned_X_is_copied(layout, solver):
    """An X not naturally aligned (undefined behaviour in C) gives the results of its
    aligned copy, bit for bit, and is left as it is."""
    A = np.random.default_rng(4).random((60, 40))
    A[A < 0.5] = 0
    if layout == "F":
        A = np.asfortranarray(A)
    if layout == "float32":
        A = A.astype(np.float32)
    if layout in ("csr", "csc"):
        aligned = sp.csr_matrix(A).asformat(layout)
        X = aligned.copy()
        X.data = unaligned(X.data)
        X.indices = unaligned(X.indices)
    else:
        aligned, X = A, unaligned(A)
    before = X.copy()
    kw = dict(solver=solver, random_state=0, tol=0, max_iter=20)
    got, want = fastnmf.nmf(X, 3, **kw), fastnmf.nmf(aligned, 3, **kw)
    np.testing.assert_array_equal(got.W, want.W)
    np.testing.assert_array_equal(got.H, want.H)
    np.testing.assert_array_equal(got.history, want.history)
    assert got.reconstruction_err == want.reconstruction_err
    if sp.issparse(X):
        assert not X.data.flags.aligned and (X != before).nnz == 0
    else:
        assert not X.flags.aligned and np.array_equal(X, before)


@pytest.mark.parametrize("beta", [2.0, 1.0, 1.5, 0.5])
def test_extreme_scale_errors_and_regularization_follow_beta(beta):
    """X · 2¹²⁰ is solved as X (scaled back exactly): its errors are sqrt(2 D_β), which
    scale by 2^(60β), and its regularization must scale as D_β does."""
    X = np.random.default_rng(5).random((30, 20)) + 0.1
    e = 120
    kw = dict(solver="mu", beta_loss=beta, init="random", random_state=0, tol=0,
              max_iter=20, l1_ratio=1.0)
    big = fastnmf.nmf(X * 2.0**e, 3, alpha_W=0.5, **kw)
    # the same problem at scale 1: L1 term divided by 2^(eβ − e/2)
    small = fastnmf.nmf(X, 3, alpha_W=0.5 * 2.0 ** -(e * beta - e / 2), **kw)
    np.testing.assert_array_equal(big.W, np.ldexp(small.W, e // 2))
    np.testing.assert_array_equal(big.H, np.ldexp(small.H, e // 2))
    np.testing.assert_allclose(big.history, small.history * 2.0 ** (e * beta / 2),
                               rtol=1e-15)
    WH, Y = big.W @ big.H, X * 2.0**e
    if beta == 1:
        D = (Y * np.log(Y / WH) - Y + WH).sum()
    elif beta == 2:
        D = 0.5 * ((Y - WH) ** 2).sum()
    else:
        D = ((Y**beta + (beta - 1) * WH**beta - beta * Y * WH ** (beta - 1))
             / (beta * (beta - 1))).sum()
    assert big.reconstruction_err == pytest.approx(np.sqrt(2 * D), rel=1e-9)


@pytest.mark.parametrize("batch", [False, True], ids=["nmf", "nmf_batch"])
@pytest.mark.parametrize("kwargs, words", [
    (dict(init="custom", W=np.full((N, K), 1e308), H=np.ones((K, M))),
     ["given W and H", "W 1e\\+308", "rescale them"]),
    (dict(update_H=False, H=np.full((K, M), 1e200)), ["given H", "H 1e\\+200"]),
    (dict(solver="mu", beta_loss=1e308), [r"beta_loss=1e\+308", "powers"]),
], ids=["custom-W", "fixed-H", "beta"])
def test_overflow_names_its_cause(kwargs, words, batch):
    """A non-finite value during the work (X itself is rescaled into range, the
    regularization checked beforehand) is a FloatingPointError naming what took the
    arithmetic there, never X's scale."""
    X = good_X()
    if batch:
        error = fastnmf.nmf_batch([X], K, errors="return", **kwargs)[0]
    else:
        with pytest.raises(FloatingPointError) as info:
            fastnmf.nmf(X, K, **kwargs)
        error = info.value
    assert isinstance(error, FloatingPointError)
    assert re.search(all_of("non-finite value", *words), str(error)), str(error)
    assert "X's values" not in str(error)


def test_X_near_float64_max_raises_or_is_finite():
    """Errors of the order of float64's largest value are refused up front (no history of
    inf, no warning); a large X whose norm leaves room is solved."""
    import warnings

    X = good_X()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for scale in (1e306, 1e307):
            res = fastnmf.nmf(X * scale, K, max_iter=30)
            assert np.isfinite(res.history).all() and np.isfinite(res.reconstruction_err)
            assert res.reconstruction_err < np.linalg.norm(X) * scale
        for scale in (3e307, 1e308):
            with pytest.raises(ValueError, match=r"X is too large for float64"):
                fastnmf.nmf(X * scale, K)
