"""fastnmf.sklearn.NMF: a drop-in for ``sklearn.decomposition.NMF`` on fastnmf's solvers.

This module imports scikit-learn (>= 1.6); the core package never imports it.

>>> import numpy as np
>>> from fastnmf.sklearn import NMF
>>> X = np.array([[1, 1], [2, 1], [3, 1.2], [4, 1], [5, 0.8], [6, 1]])
>>> model = NMF(n_components=2, init='random', random_state=0, max_iter=1000)
>>> W = model.fit_transform(X)
>>> W.shape, model.components_.shape
((6, 2), (2, 2))
"""

import warnings
from math import sqrt
from numbers import Integral

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.decomposition import NMF as _SklearnNMF
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.extmath import randomized_svd
from sklearn.utils.validation import check_is_fitted, check_non_negative

try:  # a function since scikit-learn 1.6, like the tags API used below
    from sklearn.utils.validation import validate_data
except ImportError as exc:  # pragma: no cover - depends on the installed scikit-learn
    raise ImportError(
        f"fastnmf.sklearn needs scikit-learn >= 1.6; found {sklearn.__version__}"
    ) from exc

from . import _registry
from ._api import nmf
from ._threads import single_threaded_blas
from ._validation import (canonical_sparse, check_sparse_structure, has_zeros, most_threads,
                          scale_exponent, with_int_indices)

__all__ = ["NMF"]


class _Count(Interval):
    """scikit-learn's interval of ints without True and False, which ``fastnmf.nmf``
    refuses as a thread count (scikit-learn's Interval takes them as 1 and 0)."""

    def is_satisfied_by(self, val):
        return not isinstance(val, bool) and super().is_satisfied_by(val)


# NNDSVD's factors below this are zeros (scikit-learn's eps).
_NNDSVD_EPS = 1e-6


def _beta_loss_to_float(beta_loss):
    return _registry.LOSSES[beta_loss].beta if isinstance(beta_loss, str) else beta_loss


def _check_init(A, shape, whom):
    """scikit-learn's check of a custom W or H (same messages); returns A as an array."""
    A = check_array(A)
    if shape[0] != "auto" and A.shape[0] != shape[0]:
        raise ValueError(
            f"Array with wrong first dimension passed to {whom}. Expected {shape[0]}, "
            f"but got {A.shape[0]}."
        )
    if shape[1] != "auto" and A.shape[1] != shape[1]:
        raise ValueError(
            f"Array with wrong second dimension passed to {whom}. Expected {shape[1]}, "
            f"but got {A.shape[1]}."
        )
    check_non_negative(A, whom)
    if np.max(A) == 0:
        raise ValueError(f"Array passed to {whom} is full of zeros.")
    return A


def _nndsvd_start(X, k, init, random_state):
    """scikit-learn's NNDSVD start (``_nndsvd_split``) for X, or for an X of extreme scale
    (``fastnmf``'s rule: its largest entry beyond [2**-40, 2**100] in float64, [2**-40,
    2**40] in float32) for X · 2**-e, then scaled back by 2**(e/2), exactly, as
    ``fastnmf.nmf`` starts: there scikit-learn's own start overflows, or zeros every
    entry below its absolute threshold."""
    xmax = (X.data.max() if X.nnz else 0.0) if sp.issparse(X) else X.max()
    e = scale_exponent(float(xmax), X.dtype)
    if e == 0:
        return _nndsvd_split(X, k, init, random_state)
    if sp.issparse(X):
        X = X.copy()
        X.data = np.ldexp(X.data, -e)
    else:
        X = np.ldexp(X, -e)
    W, H = _nndsvd_split(X, k, init, random_state)
    return np.ldexp(W, e // 2), np.ldexp(H, e // 2)


def _nndsvd_split(X, k, init, random_state):
    """scikit-learn's NNDSVD start of its NMF (``init`` 'nndsvd', 'nndsvda' or 'nndsvdar'),
    to the bit: the singular triplets from scikit-learn's ``randomized_svd`` with its
    defaults (k + 10 columns, 7 power iterations when k < min(n, m) / 10, else 4, LU
    normalized; so the same draws from ``random_state``), then the split into non-negative
    parts with the same NumPy operations in the same order (fastnmf's compiled split rounds
    differently: it scales by λ/‖u₊‖ once rather than dividing then multiplying, and adds its
    norms in another order). Returns (W, H) in X's dtype.

    BLAS is held to one thread throughout, as in ``fastnmf.nmf``'s own start. So the
    start is scikit-learn's as scikit-learn computes it at one BLAS thread, whatever BLAS
    count the caller has and from any Python thread (on two BLAS threads its randomized
    SVD gives other last bits). And a multi-threaded BLAS call would leave OpenBLAS's
    threads spinning for a while after it, on the cores that the solver's threads need
    next.
    """
    with single_threaded_blas:
        U, S, V = randomized_svd(X, k, random_state=random_state)
        W = np.zeros_like(U)
        H = np.zeros_like(V)
        # the leading pair is non-negative up to sign
        W[:, 0] = np.sqrt(S[0]) * np.abs(U[:, 0])
        H[0, :] = np.sqrt(S[0]) * np.abs(V[0, :])
        for j in range(1, k):
            x, y = U[:, j], V[j, :]
            parts = []
            for a, b in ((np.maximum(x, 0), np.maximum(y, 0)),
                         (np.abs(np.minimum(x, 0)), np.abs(np.minimum(y, 0)))):
                norm_a, norm_b = sqrt(np.dot(a, a)), sqrt(np.dot(b, b))
                parts.append((a, b, norm_a, norm_b, norm_a * norm_b))
            a, b, norm_a, norm_b, sigma = parts[0] if parts[0][4] > parts[1][4] else parts[1]
            if sigma > 0:  # else both parts vanish: the component stays zero
                lbd = np.sqrt(S[j] * sigma)
                W[:, j] = lbd * (a / norm_a)
                H[j, :] = lbd * (b / norm_b)
        W[W < _NNDSVD_EPS] = 0
        H[H < _NNDSVD_EPS] = 0
        if init == "nndsvda":
            avg = X.mean()
            W[W == 0] = avg
            H[H == 0] = avg
        elif init == "nndsvdar":
            rng = check_random_state(random_state)
            avg = X.mean()
            W[W == 0] = abs(avg * rng.standard_normal(size=len(W[W == 0])) / 100)
            H[H == 0] = abs(avg * rng.standard_normal(size=len(H[H == 0])) / 100)
        return W, H


class NMF(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Non-Negative Matrix Factorization (NMF), computed by fastnmf's compiled solvers.

    A drop-in for :class:`sklearn.decomposition.NMF`: the same parameters, defaults,
    methods, fitted attributes, parameter validation and warnings. Find two
    non-negative matrices W (n_samples × n_components) and H (n_components × n_features)
    minimizing ½‖X − WH‖²_F plus scikit-learn's L1/L2 regularization of W and H.
    ``fit_transform`` returns W; ``components_`` is H; ``transform`` solves W for new
    data with H fixed.

    Parameters
    ----------
    n_components : int, {'auto'} or None, default='auto'
        Number of components. None: n_features. 'auto': inferred from the shapes of W
        and H when ``init='custom'``, else n_features.
    init : {'random', 'nndsvd', 'nndsvda', 'nndsvdar', 'custom'}, default=None
        Initialization; None means 'nndsvda' if n_components <= min(n_samples,
        n_features), else 'random' (as scikit-learn).
    solver : {'cd', 'mu', 'als', 'bpp'}, default='cd'
        'cd': coordinate descent (HALS), 'mu': multiplicative updates, 'als': fastnmf's
        monotone projected alternating least squares, 'bpp': exact alternating
        non-negative least squares by block principal pivoting.
    beta_loss : float or {'frobenius', 'kullback-leibler', 'itakura-saito'}, default='frobenius'
        Passed to :func:`fastnmf.nmf` (non-Frobenius losses: solver 'mu' only).
    tol : float, default=1e-4
        Tolerance of the stopping condition; 0 runs exactly ``max_iter`` iterations.
    max_iter : int, default=200
        Maximum number of iterations.
    random_state : int, RandomState instance or None, default=None
        Used by init 'random' and 'nndsvdar' (and the randomized SVD of large X) and by
        ``shuffle``. An int gives scikit-learn's random start.
    alpha_W : float, default=0.0
        Regularization of W (scikit-learn's scaling by n_features).
    alpha_H : float or 'same', default='same'
        Regularization of H (scaled by n_samples); 'same' takes alpha_W.
    l1_ratio : float, default=0.0
        The L1 share of the regularization, in [0, 1].
    verbose : int, default=0
        Print the error at each convergence check.
    shuffle : bool, default=False
        cd/als: randomize the order of the components in each sweep.
    n_threads : int, default=None
        Threads of each fit and transform (fastnmf's own parameter; results are the same
        for any count). None: what OpenMP may use here -- ``OMP_NUM_THREADS``,
        threadpoolctl's OpenMP limit, the CPU quota and the affinity mask, as
        scikit-learn's own OpenMP code decides; so inside ``GridSearchCV(n_jobs=...)``'s
        workers, which joblib limits, each fit takes its share. A negative int counts
        back from that (-1: the same).

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The factor H.
    n_components_ : int
        Number of components.
    reconstruction_err_ : float
        ‖X − WH‖_F of the training data (for another beta_loss, sqrt(2·divergence)).
    n_iter_ : int
        Iterations performed.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names seen during fit, when X has string column names.

    Notes
    -----
    Differences from scikit-learn: the extra solvers 'als' and 'bpp'; ``transform`` accepts X of
    another float dtype than the fitted model (scikit-learn raises TypeError) and then
    computes in X's dtype. A sparse X's index arrays are checked first (a malformed one
    is a ValueError; scikit-learn reads through it), and X is used as ``fastnmf.nmf`` uses
    it, on a copy where it must change (X itself is never modified): a sparse X with
    duplicates summed and explicit zeros dropped, so that neither changes a result
    (scikit-learn's start sums the stored entries, its zeros among them), an unaligned
    array aligned. An X of extreme scale (its largest entry beyond [2**-40, 2**100],
    [2**-40, 2**40] in float32) is solved, its NNDSVD start included, for X · 2**-e and
    scaled back, as ``fastnmf.nmf`` does (scikit-learn's start overflows there, or zeros
    every entry).
    """

    # scikit-learn's own constraints (the same objects, so the same error messages: a set
    # built here could list its options in another order), with fastnmf's solvers.
    _parameter_constraints: dict = {
        **_SklearnNMF._parameter_constraints,
        "solver": [StrOptions(set(_registry.SOLVERS))],
        "n_threads": [_Count(Integral, 1, most_threads(), closed="both"),
                      _Count(Integral, -most_threads(), -1, closed="both"), None],
    }

    def __init__(
        self,
        n_components="auto",
        *,
        init=None,
        solver="cd",
        beta_loss="frobenius",
        tol=1e-4,
        max_iter=200,
        random_state=None,
        alpha_W=0.0,
        alpha_H="same",
        l1_ratio=0.0,
        verbose=0,
        shuffle=False,
        n_threads=None,
    ):
        self.n_components = n_components
        self.init = init
        self.solver = solver
        self.beta_loss = beta_loss
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.verbose = verbose
        self.shuffle = shuffle
        self.n_threads = n_threads

    def fit(self, X, y=None, **params):
        """Learn an NMF model for the data X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (CSR/CSC matrices are used without densifying).
        y : Ignored
        **params : kwargs
            Passed to ``fit_transform`` (``W`` and ``H`` when ``init='custom'``).

        Returns
        -------
        self : object
        """
        self.fit_transform(X, **params)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None, W=None, H=None):
        """Learn an NMF model for the data X and return the transformed data W.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : Ignored
        W : array-like of shape (n_samples, n_components), default=None
            Initial W when ``init='custom'``.
        H : array-like of shape (n_components, n_features), default=None
            Initial H when ``init='custom'``.

        Returns
        -------
        W : ndarray of shape (n_samples, n_components)
        """
        X = self._validate_X(X, reset=True)
        res = self._solve(X, W=W, H=H, update_H=True)
        self.reconstruction_err_ = res.reconstruction_err
        self.n_components_ = res.H.shape[0]
        # the resolved n_components under scikit-learn's private name, which its own
        # tests read (test_nmf_n_components_auto)
        self._n_components = self.n_components_
        self.components_ = res.H.copy()  # writable, as scikit-learn's
        self.n_iter_ = res.n_iter
        return res.W.copy()

    def transform(self, X):
        """Transform X with the fitted model: solve W >= 0 with H = ``components_`` fixed.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        W : ndarray of shape (n_samples, n_components)
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return self._solve(X, W=None, H=self.components_, update_H=False).W.copy()

    def inverse_transform(self, X):
        """Transform data back to its original space: ``X @ components_``.

        Parameters
        ----------
        X : {ndarray, sparse matrix} of shape (n_samples, n_components)

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        return X @ self.components_

    @property
    def _n_features_out(self):
        """Number of transformed output features."""
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # -- the work ------------------------------------------------------------------

    def _validate_X(self, X, reset):
        """scikit-learn's validation of X (in transform, non-negative too), and before it
        fastnmf's checks of a sparse X's shape and index arrays (scipy's conversions and
        reductions would read through malformed ones, or allocate for a shape beyond C
        ints); then X as ``fastnmf.nmf`` takes it, copied only where it must change (the
        caller's X is never modified): a sparse X with duplicates summed and explicit
        zeros dropped (they change no result, scikit-learn's start included; the order of
        the entries, which its start's sums follow, kept otherwise: a TF-IDF matrix's rows
        come unsorted), an array aligned."""
        if sp.issparse(X):
            check_sparse_structure(X, "X")
            X = with_int_indices(X)  # (scipy's products refuse uint64 ones)
        X = validate_data(
            self,
            X,
            accept_sparse=("csr", "csc"),
            dtype=[np.float64, np.float32],
            reset=reset,
            **({} if reset else {"ensure_non_negative": True}),
        )
        if sp.issparse(X):
            return canonical_sparse(X, given=True, keep_order=True)
        return X if X.flags.aligned else X.copy(order="K")

    def _solve(self, X, *, W, H, update_H):
        """scikit-learn's checks of ``_fit_transform``, then ``fastnmf.nmf``."""
        beta_loss = _beta_loss_to_float(self.beta_loss)
        entry = _registry.SOLVERS[self.solver]
        if _registry.loss_of_beta(beta_loss) not in entry.losses:
            raise ValueError(
                f"Invalid beta_loss parameter: solver {self.solver!r} does not handle "
                f"beta_loss = {self.beta_loss!r}"
            )
        if entry.keeps_zeros and self.init == "nndsvd":  # in transform too, as sklearn
            warnings.warn(
                "The multiplicative update ('mu') solver cannot update zeros present in "
                "the initialization, and so leads to poorer results when used jointly "
                "with init='nndsvd'. You may try init='nndsvda' or init='nndsvdar' "
                "instead.",
                UserWarning,
            )
        if beta_loss <= 0 and has_zeros(X):
            raise ValueError(
                "When beta_loss <= 0 and X contains zeros, the solver may diverge. "
                "Please add small values to X, or use a positive beta_loss."
            )

        n_samples, n_features = X.shape
        k = self.n_components if update_H else self.n_components_
        if k is None:
            k = n_features
        if update_H and self.init == "custom":
            # scikit-learn skips this check with init='custom' (and then returns
            # negative factors); the core would reject X anyway, this keeps
            # scikit-learn's wording for it (as MiniBatchNMF's "(input X)")
            check_non_negative(X, "NMF (input X)")
            H = _check_init(H, (k, n_features), "NMF (input H)")
            W = _check_init(W, (n_samples, k), "NMF (input W)")
            if k == "auto":
                k = H.shape[0]
            if H.dtype != X.dtype or W.dtype != X.dtype:
                raise TypeError(
                    "H and W should have the same dtype as X. Got "
                    f"H.dtype = {H.dtype} and W.dtype = {W.dtype}."
                )
        elif update_H:
            if W is not None or H is not None:
                warnings.warn(
                    "When init!='custom', provided W or H are ignored. Set "
                    " init='custom' to use them as initialization.",
                    RuntimeWarning,
                )
            W = H = None
            if k == "auto":
                k = n_features
            check_non_negative(X, "NMF initialization")
            if self.init not in (None, "random") and k > min(n_samples, n_features):
                raise ValueError(
                    f"init = '{self.init}' can only be used when "
                    "n_components <= min(n_samples, n_features)"
                )
            init = self.init
            if init is None:
                init = "nndsvda" if k <= min(n_samples, n_features) else "random"
            if init != "random":  # scikit-learn's own NNDSVD start, handed over as custom
                W, H = _nndsvd_start(X, k, init, self.random_state)
        # else (transform): H = components_, W starts as scikit-learn's (inside nmf).

        res = nmf(
            X,
            k,
            solver=self.solver,
            init="custom" if W is not None else (self.init if update_H else None),
            W=W,
            H=H,
            update_H=update_H,
            max_iter=self.max_iter,
            tol=self.tol,
            beta_loss=self.beta_loss,
            alpha_W=self.alpha_W,
            alpha_H=self.alpha_H,
            l1_ratio=self.l1_ratio,
            random_state=self.random_state,
            shuffle=self.shuffle,
            verbose=bool(self.verbose),
            n_threads=self.n_threads,
        )
        if res.n_iter == self.max_iter and self.tol > 0:
            warnings.warn(
                "Maximum number of iterations %d reached. Increase "
                "it to improve convergence." % self.max_iter,
                ConvergenceWarning,
            )
        return res
