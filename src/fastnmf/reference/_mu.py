"""mu — multiplicative updates (Lee & Seung 2001) for the Frobenius loss, and for a
β-divergence the updates of Févotte & Idier (2011) as scikit-learn implements them."""

import math

import numpy as np
import scipy.sparse as sp

from .._registry import SOLVERS as _ENTRIES
from ._common import alternate

EPS = np.finfo(np.float32).eps  # scikit-learn's: replaces a zero denominator
EPS64 = np.finfo(np.float64).eps


def mu_half(F, A, B, l1, l2, rng, prob):
    """F ← F ∘ B ⊘ (A F + l1 + l2 F)."""
    denominator = A @ F + l1 + l2 * F
    denominator[denominator == 0] = EPS
    F *= B / denominator
    return 0.0


def _wh_at(X, W, H):
    """WH: dense, or only at the non-zeros of a sparse X (as a CSR with X's pattern)."""
    if not sp.issparse(X):
        return W @ H
    X = X.tocsr()
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    data = np.einsum("ij,ij->i", W[rows], H[:, X.indices].T)
    return sp.csr_matrix((data, X.indices, X.indptr), shape=X.shape)


def _numerator_ratio(X, WH_at_X, beta):
    """X ∘ (WH)^(β−2), WH floored at eps where the power is negative; X's pattern."""
    wh = WH_at_X.data if sp.issparse(X) else WH_at_X
    x = X.tocsr().data if sp.issparse(X) else X
    if beta < 2:
        wh = np.maximum(wh, EPS)
    if beta == 1:
        y = x / wh
    elif beta == 0:
        y = x * (1 / wh) ** 2
    else:
        y = wh ** (beta - 2) * x
    if sp.issparse(X):
        return sp.csr_matrix((y, WH_at_X.indices, WH_at_X.indptr), shape=X.shape)
    return y


def _powered_wh(W, H, beta):
    """(WH)^(β−1), WH floored at eps where the power is negative (dense: the loss needs it
    everywhere)."""
    WH = W @ H
    if beta < 1:
        WH = np.maximum(WH, EPS)
    return WH ** (beta - 1)


def _update(F, numerator, denominator, l1, l2, gamma):
    denominator = denominator + l1 if l1 > 0 else denominator
    denominator = denominator + l2 * F if l2 > 0 else denominator
    denominator = np.where(denominator == 0, EPS, denominator)
    delta = numerator / denominator
    if gamma != 1:
        delta = delta**gamma
    F *= delta


def beta_error(X, W, H, beta):
    """sqrt(2 · D_β(X ‖ WH)): the X terms only where X > eps, WH floored at eps there."""
    W64, H64 = W.astype(np.float64), H.astype(np.float64)
    WH = _wh_at(X, W64, H64)
    x = X.tocsr().data if sp.issparse(X) else X.ravel()
    wh = WH.data if sp.issparse(X) else WH.ravel()
    keep = x > EPS
    x, wh = x[keep].astype(np.float64), np.maximum(wh[keep], EPS)
    if beta == 1:
        res = np.dot(x, np.log(x / wh)) + W64.sum(axis=0) @ H64.sum(axis=1) - x.sum()
    elif beta == 0:
        res = np.sum(x / wh) - X.shape[0] * X.shape[1] - np.sum(np.log(x / wh))
    else:
        sum_wh_beta = np.sum((W64 @ H64) ** beta)
        res = (np.sum(x**beta) - beta * np.dot(x, wh ** (beta - 1))
               + sum_wh_beta * (beta - 1)) / (beta * (beta - 1))
    return math.sqrt(2 * res) if res > 0 else 0.0


def mu_beta(prob, W, H, report):
    """scikit-learn's multiplicative-update loop for a β-divergence (β ≠ 2); ``report`` as
    in _common.alternate."""
    X, beta, tol = prob.X, prob.beta, prob.tol
    gamma = 1 / (2 - beta) if beta < 1 else (1 / (beta - 1) if beta > 2 else 1.0)
    check_every = _ENTRIES["mu"].check_every
    history = [beta_error(X, W, H, beta)]
    prev = err0 = history[0]
    if report is not None:
        report(0, err0)
    converged, n_iter = False, 0
    for it in range(1, prob.max_iter + 1):
        Y = _numerator_ratio(X, _wh_at(X, W, H), beta)
        numerator = np.asarray(Y @ H.T)
        denominator = H.sum(axis=1)[None, :] if beta == 1 else _powered_wh(W, H, beta) @ H.T
        _update(W, numerator, denominator, prob.l1_W, prob.l2_W, gamma)
        if beta < 1:
            W[W < EPS64] = 0
        if prob.update_H:
            Y = _numerator_ratio(X, _wh_at(X, W, H), beta)
            numerator = np.asarray(Y.T @ W).T
            denominator = (W.sum(axis=0)[:, None] if beta == 1
                           else W.T @ _powered_wh(W, H, beta))
            _update(H, numerator, denominator, prob.l1_H, prob.l2_H, gamma)
            if beta <= 1:
                H[H < EPS64] = 0
        n_iter = it
        if it % check_every:
            continue
        err = beta_error(X, W, H, beta)
        history.append(err)
        if report is not None:
            report(it, err)
        converged = err0 == 0 or (prev - err) / err0 < tol
        prev = err
        if converged and tol > 0:
            break
    return W, H, n_iter, converged, np.array(history), beta_error(X, W, H, beta)


def mu(prob, W, H, seed, report=None):
    if prob.beta != 2:
        return mu_beta(prob, W, H, report)
    return alternate(prob, W, H, seed, mu_half, report)
