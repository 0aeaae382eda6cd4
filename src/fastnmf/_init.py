"""Starting factors: random, NNDSVD and its variants, custom copies (NumPy, both paths).

Formulas: NMF-MATH.md, "Initialization"; the draws follow scikit-learn's so that the
same int ``random_state`` gives scikit-learn's random start.
"""

import numpy as np
import scipy.linalg
import scipy.sparse as sp

__all__ = ["initialize", "LazyRNG", "randomized_svd"]

# Dense matrices up to this many entries get an exact SVD: cheaper than the randomized one.
_EXACT_SVD_MAX_SIZE = 40_000
_NNDSVD_EPS = 1e-6


class LazyRNG:
    """``random_state`` made into a generator on first use (an int seeds a RandomState)."""

    __slots__ = ("_seed", "_rng")

    def __init__(self, random_state):
        self._seed = random_state
        self._rng = random_state if not (random_state is None or isinstance(random_state, int)) else None

    def get(self):
        if self._rng is None:
            self._rng = np.random.RandomState(self._seed)
        return self._rng

    def uint63(self):
        """One integer seed in [0, 2**63) drawn from the generator."""
        rng = self.get()
        if isinstance(rng, np.random.Generator):
            return int(rng.integers(0, 2**63, dtype=np.int64))
        return int(rng.randint(0, 2**63, dtype=np.int64))


def _mean(X):
    return X.mean()


def initialize(prob, rng):
    """Return the starting (W, H), C-contiguous, of shape (n, k) and (k, m), in prob.dtype."""
    X, k, dtype = prob.X, prob.k, prob.dtype
    if not prob.update_H:
        H = prob.H
        if prob.W is not None:
            W = prob.W
        elif prob.solver == "mu":
            W = np.full((prob.n, k), np.sqrt(_mean(X) / k), dtype=dtype)
        else:
            W = np.zeros((prob.n, k), dtype=dtype)
        return W, H
    if prob.init == "custom":
        return prob.W, prob.H
    if prob.init == "random":
        avg = np.sqrt(_mean(X) / k)
        gen = rng.get()
        H = avg * gen.standard_normal(size=(k, prob.m)).astype(dtype, copy=False)
        W = avg * gen.standard_normal(size=(prob.n, k)).astype(dtype, copy=False)
        np.abs(H, out=H)
        np.abs(W, out=W)
        return np.ascontiguousarray(W, dtype=dtype), np.ascontiguousarray(H, dtype=dtype)
    return _nndsvd(X, k, prob.init, rng, dtype)


def randomized_svd(X, k, rng, n_oversamples=10, n_iter=None):
    """Leading k singular triplets of X by a randomized range finder (Halko et al. 2011).

    Power iterations are normalized by QR; the products go through X's own BLAS/sparse code.
    """
    n, m = X.shape
    transpose = n < m
    A = X.T if transpose else X
    rows, cols = A.shape
    ell = min(k + n_oversamples, cols)
    if n_iter is None:
        n_iter = 7 if k < 0.1 * min(n, m) else 4
    Q = rng.get().standard_normal(size=(cols, ell)).astype(X.dtype, copy=False)
    Q, _ = scipy.linalg.qr(A @ Q, mode="economic", check_finite=False)
    for _ in range(n_iter):
        Q, _ = scipy.linalg.qr(A.T @ Q, mode="economic", check_finite=False)
        Q, _ = scipy.linalg.qr(A @ Q, mode="economic", check_finite=False)
    B = np.asarray((A.T @ Q).T)  # (ell, cols) = Qᵀ A
    Ub, s, Vt = scipy.linalg.svd(B, full_matrices=False, check_finite=False)
    U = Q @ Ub
    U, s, Vt = U[:, :k], s[:k], Vt[:k]
    if transpose:
        U, Vt = Vt.T, U.T
    return U, s, Vt


def _svd(X, k, rng):
    if not sp.issparse(X) and (X.size <= _EXACT_SVD_MAX_SIZE or k + 10 >= min(X.shape)):
        U, s, Vt = scipy.linalg.svd(X, full_matrices=False, check_finite=False)
        return U[:, :k], s[:k], Vt[:k]
    return randomized_svd(X, k, rng)


def _nndsvd(X, k, variant, rng, dtype):
    """NNDSVD (Boutsidis & Gallopoulos 2008) and its a/ar variants."""
    U, S, Vt = _svd(X, k, rng)
    W = np.zeros((X.shape[0], k), dtype=dtype)
    H = np.zeros((k, X.shape[1]), dtype=dtype)
    W[:, 0] = np.sqrt(S[0]) * np.abs(U[:, 0])
    H[0, :] = np.sqrt(S[0]) * np.abs(Vt[0, :])
    for j in range(1, k):
        x, y = U[:, j], Vt[j, :]
        x_p, y_p = np.maximum(x, 0), np.maximum(y, 0)
        x_n, y_n = np.maximum(-x, 0), np.maximum(-y, 0)
        x_p_nrm, y_p_nrm = np.linalg.norm(x_p), np.linalg.norm(y_p)
        x_n_nrm, y_n_nrm = np.linalg.norm(x_n), np.linalg.norm(y_n)
        m_p, m_n = x_p_nrm * y_p_nrm, x_n_nrm * y_n_nrm
        if m_p > m_n:
            u, v, sigma, un, vn = x_p, y_p, m_p, x_p_nrm, y_p_nrm
        else:
            u, v, sigma, un, vn = x_n, y_n, m_n, x_n_nrm, y_n_nrm
        if sigma > 0:  # a zero singular vector part leaves the component at zero
            lbd = np.sqrt(S[j] * sigma)
            W[:, j] = lbd * u / un
            H[j, :] = lbd * v / vn
    W[W < _NNDSVD_EPS] = 0
    H[H < _NNDSVD_EPS] = 0
    if variant == "nndsvda":
        avg = _mean(X)
        W[W == 0] = avg
        H[H == 0] = avg
    elif variant == "nndsvdar":
        avg = _mean(X)
        gen = rng.get()
        W[W == 0] = abs(avg * gen.standard_normal(size=int((W == 0).sum())) / 100)
        H[H == 0] = abs(avg * gen.standard_normal(size=int((H == 0).sum())) / 100)
    return W, H
