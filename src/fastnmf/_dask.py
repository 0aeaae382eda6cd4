"""One matrix on a Dask cluster: X a ``dask.array.Array`` while a ``distributed`` client
is active.

X is cut into blocks of whole rows, converted to the computation dtype and kept on the
workers (computed once, as futures). Each block is checked where it lives (finite,
non-negative: the error names the block's rows; ‖X‖², the maximum and the sum come back
as four numbers a block). W's rows live beside their block; the client holds H.

Per iteration the client sends H once to each worker; each block's task runs
the row-block engine's pass on it (``_kernels._solve.block_pass``: B_b = H X_bᵀ, the half-
step of W_b, W_bᵀ X_b, all compiled, without the GIL) and returns W_bᵀ X_b and W_bᵀ W_b; a
fixed binary tree of additions (by block index: the same sums whatever the placement) gives
C = Wᵀ X and G = WᵀW, which come to the client; there the H half-step runs
(``half_step_of``), then the loss ‖X‖² − 2⟨H, C⟩ + ⟨G, HHᵀ⟩ and the stopping rule of
``fastnmf.nmf``. Traffic per iteration: H to each worker, C and G from each (k·(m + k)
numbers), independent of n. At the end W's blocks are gathered (or, with ``gather_W=False``,
left on the workers as the blocks of a dask.array W).

The other solvers (als, bpp, cd with accelerate), whose W half-step decides over the
whole factor, run the pass on a guess of that decision, as the engine does in memory
(``_guessed_pass``): the blocks keep their Wᵀ_b before the pass and B_b, the client
settles the decision from their summed evidence, and a wrong guess is redone block by
block, without reading X. The nndsvd starts' randomized SVD makes each product a pass on
the workers too (``times``: ell·(n + m) numbers move, not X). X and W never leave the
workers during the iterations; ``DaskRows.read`` (fetching a block to the client) serves
only as a Chunked's fallback.
"""

import math
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from . import _registry
from ._chunked import Chunked
from ._stopping import StoppingRule
from ._kernels._common import scan as _scan
from ._kernels._solve import block_pass, half_step_of, settle_of, speculative

__all__ = ["DaskRows", "is_distributed", "open_dask", "runs_on_workers", "solve"]


def _client():
    """The active distributed client, or None."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def is_distributed(X):
    """Whether X is a Dask array and a distributed client is active (then fastnmf.nmf runs
    the pass on the workers; with Dask's local schedulers X is read out of core)."""
    return type(X).__module__.partition(".")[0] == "dask" and hasattr(X, "chunks") \
        and _client() is not None


class DaskRows(Chunked):
    """X's row blocks, held on the workers as futures: a Chunked (its chunks are the blocks,
    fetched to the client by ``read``) that the driver also runs on in place."""

    def __init__(self, client, blocks, shape, dtype, rows, name):
        self.client, self.blocks = client, blocks
        super().__init__(None, shape, dtype, False, name, rows)

    def _load(self, c, out):
        block = self.client.submit(_dense_block, self.blocks[c], self.exponent).result()
        out[...] = block
        return out

    def scan(self, arg, n_threads):
        checks = self.client.gather([self.client.submit(_check_block, b, self.exponent, pure=False)
                                     for b in self.blocks])
        sqnorm = xmax = total = 0.0
        self.entries = 0
        self.sparse = any(check[-1] for check in checks)
        for c, (finite, vmin, vmax, sq, s, entries, _) in enumerate(checks):
            if not finite:
                raise ValueError(f"{arg} contains NaN or infinity (in {self.where(c)}).")
            if vmin < 0:
                raise ValueError(f"{arg} must be non-negative; its minimum in {self.where(c)} "
                                 f"is {vmin:g}.")
            sqnorm, xmax, total = sqnorm + sq, max(xmax, vmax), total + s
            self.entries += int(entries)  # the products' entries (accelerate's sweep cap)
        self.sqnorm, self.xmax, self.total = sqnorm, xmax, total
        return self


def open_dask(X, arg, n_threads, computation_dtype, check_shape):
    """X (a Dask array; is_distributed) as DaskRows: rechunked to blocks of whole rows of
    one size (the last shorter), in the computation dtype, computed once on the workers,
    and scanned there."""
    client = _client()
    shape = tuple(int(s) for s in X.shape)
    if len(shape) != 2 or any(math.isnan(s) for s in X.shape):
        raise ValueError(f"{arg} must be a 2-D Dask array of known shape; got shape {X.shape}.")
    check_shape(shape, arg)
    dtype = computation_dtype(np.dtype(X.dtype), arg)
    rows = max(X.chunks[0])
    X = X.rechunk({0: rows, 1: -1}).astype(dtype)
    blocks = client.compute(list(X.to_delayed()[:, 0]))
    return DaskRows(client, blocks, shape, dtype, rows, "the Dask array").scan(arg, n_threads)


def runs_on_workers(prob):
    """Whether ``solve`` runs ``prob`` with X's blocks where they are: X is DaskRows
    (validation lets such an X take the Frobenius loss only)."""
    return isinstance(prob.X, DaskRows)


def _guesses(prob):
    """Whether the W half-step runs on a guess of its decision over the whole factor (als,
    bpp, accelerate: the kernels' Params.speculative), else by rows alone (cd, mu)."""
    if _registry.SOLVERS[prob.solver].separable and not prob.accelerate:
        return False
    if speculative(prob.solver, prob.accelerate):
        return True
    raise ValueError(f"solver {prob.solver!r} can neither run by blocks of rows nor settle "
                     "a guess: it cannot run on a Dask cluster")  # every registry solver can


# --- the tasks (run on the workers) ------------------------------------------------------

def _dense_block(block, exponent):
    block = block.toarray() if sp.issparse(block) else np.ascontiguousarray(block)
    return np.ldexp(block, exponent) if exponent else block


def _operand(block, exponent):
    """A block as block_pass takes it: dense C order, or a CSR's three arrays."""
    if sp.issparse(block):
        block = sp.csr_matrix(block)
        block.sum_duplicates()
        data = np.ldexp(block.data, exponent) if exponent else block.data
        return (np.ascontiguousarray(data), block.indptr.astype(np.int64),
                block.indices.astype(np.int32))
    return _dense_block(block, exponent)


def _check_block(block, exponent):
    values = block.data if sp.issparse(block) else np.ascontiguousarray(block)
    if exponent:
        values = np.ldexp(values, exponent)
    entries = np.count_nonzero(values) if sp.issparse(block) else values.size
    if values.size == 0:
        return True, 0.0, 0.0, 0.0, 0.0, 0, sp.issparse(block)
    vmin, vmax, finite, sq = _scan(values.reshape(-1), 1)
    with np.errstate(over="ignore", invalid="ignore"):
        return (finite, vmin, vmax, sq, float(values.sum(dtype=np.float64)), entries,
                sp.issparse(block))


class _Held(NamedTuple):
    """What a block's task leaves on its worker: its rows of W (Wᵀ_b), the parts it adds to
    the iteration's sums (W_bᵀ X_b or None, W_bᵀ W_b or None, violation, evidence or None),
    and after a pass on a guess the block's Wᵀ_b before the pass and its B_b (a redo's)."""
    Wt: np.ndarray
    sums: tuple
    before: object = None
    B: object = None


def _pass_task(solver, block, held, H, A, perm, l1, l2, exponent, guess=None):
    """The pass on one block (``held``: the block's _Held, or its first Wᵀ_b); ``guess``:
    block_pass's keywords of a pass on a guess."""
    before = _held_W(held)
    Wt = np.array(before)  # never the argument's buffer
    B = None if guess is None else np.empty_like(Wt)
    C, viol, evidence = block_pass(solver, _operand(block, exponent), Wt, H, A, perm, l1, l2,
                                   keep=B, **(guess or {}))
    return _Held(Wt, (C, Wt @ Wt.T, viol, evidence), before, B)


def _redo_task(solver, held, A, perm, l1, l2, guess):
    """A block's half-step redone on another guess, from its Wᵀ_b before the pass and its
    kept B_b (X is not read): as the engine's whole half-step, block by block."""
    Wt = np.array(held.before)
    _, _, evidence = half_step_of(solver, Wt, A, held.B, l1, l2, perm=perm, **guess)
    return _Held(Wt, (None, None, 0.0, evidence), held.before, held.B)


def _c_task(solver, block, held, H, A, perm, exponent):
    """W_bᵀ X_b and W_bᵀ W_b of the block's rows of W as they are (block_pass, mode "c")."""
    Wt = np.array(_held_W(held))
    C, _, _ = block_pass(solver, _operand(block, exponent), Wt, H, A, perm, 0.0, 0.0,
                         mode="c")
    return _Held(Wt, (C, Wt @ Wt.T, 0.0, None))


def _cross_task(block, held, exponent):
    Wt = _held_W(held)
    if sp.issparse(block):
        X = sp.csr_matrix(block)
        C = np.ascontiguousarray((X.T @ Wt.T).T)
        C = np.ldexp(C, exponent) if exponent else C
    else:
        C = Wt @ _dense_block(block, exponent)
    return C, Wt @ Wt.T, 0.0, None


def _error_task(block, held, H, exponent):  # a dense block
    Wt = held[0] if isinstance(held, tuple) else held
    X = _dense_block(block, exponent)
    R = X - Wt.T @ H
    return float(np.square(R, dtype=np.float64).sum())


def _held_W(held):
    return held[0] if isinstance(held, tuple) else held


def _rows_of_W(held):
    """A block's rows of W (w × k), from the Wᵀ_b a worker holds (a view, no copy)."""
    return _held_W(held).T


def _sums(*parts):
    """Add the blocks' parts, in their order: arrays, or tuples of them (None for a part
    not formed) added item by item (a task's _Held counts as its sums)."""
    parts = [p.sums if isinstance(p, _Held) else p for p in parts]
    total = parts[0]
    for part in parts[1:]:
        total = (tuple(None if a is None else a + b for a, b in zip(total, part))
                 if isinstance(total, tuple) else total + part)
    return total


def _right_task(block, F, exponent):
    """F X_bᵀ (ell × w) for F (ell × m)."""
    if sp.issparse(block):
        out = np.ascontiguousarray((sp.csr_matrix(block) @ F.T).T)
        return np.ldexp(out, exponent) if exponent else out
    return F @ _dense_block(block, exponent).T


def _left_task(block, F, exponent):
    """F_b X_b (ell × m) for F_b (ell × w), the block's columns of F."""
    if sp.issparse(block):
        out = np.ascontiguousarray((sp.csr_matrix(block).T @ F.T).T)
        return np.ldexp(out, exponent) if exponent else out
    return F @ _dense_block(block, exponent)


# --- the driver (runs on the client) ----------------------------------------------------

def times(X, F, transpose):
    """_init._times on the cluster: F Xᵀ (F: ell × m; each block's ell × w columns,
    gathered) or, with ``transpose``, F X (F: ell × n; each block's columns of F sent to
    its worker, the blocks' products summed as _tree_sum does). Moves ell·(n + m) numbers,
    never X: the randomized SVD of the nndsvd starts, on the workers."""
    client = X.client
    F = np.ascontiguousarray(F, dtype=X.dtype)
    pending = []
    try:
        if not transpose:
            F_at = client.scatter(F, broadcast=True)
            pending = [client.submit(_right_task, b, F_at, X.exponent, pure=False)
                       for b in X.blocks]
            out = np.concatenate(client.gather(pending), axis=1)
        else:
            where = client.who_has(X.blocks)
            pieces = _scatter_rows(client, X, F, where)
            pending = [client.submit(_left_task, b, f, X.exponent, pure=False)
                       for b, f in zip(X.blocks, pieces)]
            out = _tree_sum(client, pending, _placement(X.blocks, where))
        pending = []
        return np.ascontiguousarray(out)
    finally:
        if pending:
            client.cancel(pending)


def _tree_sum(client, futures, groups):
    """The blocks' (C, G, violation) summed on each worker over its blocks (``groups``:
    _placement), then across workers by a binary tree, and brought to the client: only a
    few k × m partial sums cross the network."""
    futures = [client.submit(_sums, *[futures[i] for i in group], pure=False) for group in groups]
    while len(futures) > 1:
        futures = [client.submit(_sums, *futures[i:i + 2], pure=False)
                   for i in range(0, len(futures), 2)]
    return futures[0].result()


def solve(prob, W, H, seed, report):
    """``fastnmf.nmf`` on the cluster (runs_on_workers): returns what _api's solvers
    return, (W, H, n_iter, converged, history, final error). W's rows stay beside their
    blocks: one pass an iteration (block_pass), or for als, bpp and accelerate a pass on a
    guess settled here (_guessed_pass)."""
    from .reference._rng import SplitMix64  # the kernels' sweep-order generator

    X = prob.X
    client, k, dtype = X.client, prob.k, prob.dtype
    rng = SplitMix64(seed)
    H = np.array(H, dtype=dtype, order="C")
    guessing = _guesses(prob)
    where = client.who_has(X.blocks)
    groups = _placement(X.blocks, where)
    half = dict(shuffle=prob.shuffle, accelerate=prob.accelerate, entries=float(X.entries))
    guess, sure = 1, False  # the engine's first guess (engine_pass)
    live = []  # the futures to cancel if the call stops
    try:
        A = H @ H.T
        Ws = _scatter_rows(client, X, np.ascontiguousarray(np.asarray(W, dtype=dtype).T),
                           where)
        live = [client.submit(_cross_task, b, w, X.exponent, pure=False)
                for b, w in zip(X.blocks, Ws)]
        C, G, _, _ = _tree_sum(client, live, groups)
        err_sq = _loss(prob.sqnorm, H, C, G, A)
        history = [math.sqrt(max(err_sq, 0.0))]
        rule = StoppingRule(prob.solver, prob.tol, history[0])
        if report is not None:
            report(0, history[0])
        converged, n_iter = False, 0
        for it in range(1, prob.max_iter + 1):
            perm = np.asarray(rng.order(k, prob.shuffle), dtype=np.intp)
            H_at = client.scatter(H, broadcast=True)
            step = (H_at, A, perm, prob.l1_W, prob.l2_W)
            if guessing:
                Ws, C, G, violation, guess, sure = _guessed_pass(
                    client, prob, Ws, groups, step, half, rng, guess, sure, live)
            else:
                live[:] = Ws = [client.submit(_pass_task, prob.solver, b, w, *step, X.exponent,
                                              pure=False) for b, w in zip(X.blocks, Ws)]
                C, G, violation, _ = _tree_sum(client, Ws, groups)
            if prob.update_H:
                v, rng.state, _ = half_step_of(prob.solver, H, G, C, prob.l1_H, prob.l2_H,
                                               rng.state, **half)
                violation += v
                A = H @ H.T
            err_sq = _loss(prob.sqnorm, H, C, G, A)
            n_iter = it
            if not math.isfinite(err_sq):
                raise FloatingPointError(f"the {prob.solver!r} solver diverged on the cluster")
            if not rule.checks(it):
                continue
            err = math.sqrt(max(err_sq, 0.0))
            history.append(err)
            if report is not None:
                report(it, err)
            converged = rule.converged(it, err, violation)
            if converged and prob.tol > 0:
                break
        final = math.sqrt(max(err_sq, 0.0))
        # As the kernels' finish: a dense float32 X, or a fit so close that the loss
        # cancels, takes the error formed directly; a sparse X always takes the loss.
        if not X.sparse and (dtype == np.float32 or err_sq < 1e-6 * prob.sqnorm):
            H_at = client.scatter(H, broadcast=True)
            live[:] = [client.submit(_error_task, b, w, H_at, X.exponent, pure=False)
                       for b, w in zip(X.blocks, Ws)]
            final = math.sqrt(sum(client.gather(live)))
        if not prob.gather_W:  # W stays on the workers, as a dask.array of X's row blocks
            W = _dask_W(client, X, Ws, k, dtype)
        else:
            live[:] = [client.submit(_held_W, w, pure=False) for w in Ws]
            W = np.concatenate(client.gather(live), axis=1).T
        live = []
    finally:
        if live:  # interrupted or failed: nothing left running on the cluster
            client.cancel(live)
    return W, H, n_iter, converged, np.array(history), final


def _guessed_pass(client, prob, Ws, groups, step, half, rng, guess, sure, live):
    """engine_pass on the cluster, for a solver whose W half-step decides over the whole
    factor: each block runs on a guess of the decision (``guess`` if the last one held,
    ``sure``, and then forms its W_bᵀ X_b too; else 1, without it) and keeps its Wᵀ_b
    before the pass and B_b; settle_of decides from the summed evidence; another outcome
    is redone block by block from what they kept (X is not read), and W_bᵀ X_b then takes
    a pass of its own. The iterates are the in-memory engine's, and so the two-pass
    loop's, up to the order of additions. ``half``: the half-steps' keywords (solve's).
    Returns (Ws, C, G, violation, guess, sure); ``live`` holds the futures in flight."""
    X, k = prob.X, prob.k
    H_at, A, perm, l1, l2 = step
    bet = sure
    tried = guess if bet else 1
    spec = dict(half, rng=rng.state, whole=X.shape[0])  # a guess's keywords
    live[:] = Ws = [client.submit(_pass_task, prob.solver, b, w, *step, X.exponent,
                                  dict(spec, guess=tried, mode="both" if bet else "half"),
                                  pure=False) for b, w in zip(X.blocks, Ws)]
    C, G, violation, evidence = _tree_sum(client, Ws, groups)
    outcome, redo, state = settle_of(prob.solver, evidence, tried, k, **spec)
    redone = False
    while redo:  # (accelerate's count past the guess: a redo on the cap first)
        live[:] = Ws = [client.submit(_redo_task, prob.solver, w, A, perm, l1, l2,
                                      dict(spec, guess=outcome), pure=False) for w in Ws]
        evidence = _tree_sum(client, Ws, groups)[3]
        tried, redone = outcome, True
        outcome, redo, state = settle_of(prob.solver, evidence, tried, k, **spec)
    rng.state = state
    if redone or not bet:  # C and G from the settled W
        live[:] = Ws = [client.submit(_c_task, prob.solver, b, w, H_at, A, perm, X.exponent,
                                      pure=False) for b, w in zip(X.blocks, Ws)]
        C, G, _, _ = _tree_sum(client, Ws, groups)
    return Ws, C, G, violation, outcome, outcome == guess


def _dask_W(client, X, Ws, k, dtype):
    """W as a dask.array whose blocks are the workers' rows of W (X's row blocks)."""
    import dask.array as da

    from distributed import wait

    n = X.shape[0]
    rows = [client.submit(_rows_of_W, w, pure=False) for w in Ws]
    wait(rows)  # computed before the blocks they come from are released
    parts = [da.from_delayed(r, shape=(min(X.rows, n - c * X.rows), k), dtype=dtype)
             for c, r in enumerate(rows)]
    return da.concatenate(parts, axis=0)


def _scatter_rows(client, X, Wt, where):
    """Wᵀ's columns of each block, sent to the worker that holds the block (under keys of
    their own: content-hashed keys of one call's data can meet a release of the same key,
    and a task on them then loses its dependency)."""
    return [client.scatter(np.ascontiguousarray(Wt[:, c * X.rows:(c + 1) * X.rows]),
                           workers=list(where.get(b.key, ())) or None, hash=False)
            for c, b in enumerate(X.blocks)]


def _placement(blocks, where):
    """The blocks' indices grouped by the worker that holds each (workers in address order,
    blocks in index order within one): the order the sums are added in. The same placement
    gives the same sums, bit for bit; another one differs by rounding only."""
    held = [min(where.get(b.key, ()) or [""]) for b in blocks]
    groups = {}
    for i in range(len(blocks)):
        groups.setdefault(held[i], []).append(i)
    return [groups[w] for w in sorted(groups)]


def _loss(sqnorm, H, C, G, A):
    """‖X − WH‖² = ‖X‖² − 2⟨H, WᵀX⟩ + ⟨WᵀW, HHᵀ⟩, in float64."""
    f64 = np.float64
    return (sqnorm - 2 * float(np.vdot(H.astype(f64), C.astype(f64)))
            + float(np.vdot(G.astype(f64), A.astype(f64))))
