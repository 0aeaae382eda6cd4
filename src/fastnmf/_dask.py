"""One matrix on a Dask cluster: X a ``dask.array.Array`` while a ``distributed`` client
is active.

X is cut into blocks of whole rows, converted to the computation dtype and kept on the
workers (computed once, as futures). Each block is checked where it lives (finite,
non-negative: the error names the block's rows; ‖X‖², the maximum and the sum come back
as four numbers a block). W's rows live beside their block; the client holds H.

Each worker that holds blocks gets a ``_Share`` (a Dask actor: its blocks, their rows of W,
its part of the sums), which the client calls directly: a call's round trip is a
millisecond or two, where a task through the scheduler takes about ten (the scheduler's
and the client's batched sends), and an iteration would take three in a row. Per
iteration the client sends H to each share; each runs the row-block engine's pass on its
blocks (``_kernels._solve.block_pass``: B_b = H X_bᵀ, the half-step of W_b, W_bᵀ X_b, all
compiled, without the GIL, on the worker's threads) and adds their W_bᵀ X_b and W_bᵀ W_b
in block order; the shares' parts are added by a fixed binary tree, share to share on the
workers (by placement: the same sums whatever the timing), and C = Wᵀ X and G = WᵀW come
to the client; there the H half-step runs (``half_step_of``), then the loss
‖X‖² − 2⟨H, C⟩ + ⟨G, HHᵀ⟩ and the stopping rule of ``fastnmf.nmf``. Traffic per
iteration: H to each worker, C and G from each (k·(m + k) numbers), independent of n. At
the end W's blocks are gathered (or, with ``gather_W=False``, left on the workers as the
blocks of a dask.array W).

The other solvers (als, bpp, cd with accelerate), whose W half-step decides over the
whole factor, run the pass on a guess of that decision, as the engine does in memory
(``_guessed_pass``): the shares keep their blocks' Wᵀ_b before the pass and B_b, the
client settles the decision from the summed evidence, and a wrong guess is redone block
by block, without reading X. The nndsvd starts' randomized SVD makes each product a pass on
the workers too (``times``: ell·(n + m) numbers move, not X). X and W never leave the
workers during the iterations; ``DaskRows.read`` (fetching a block to the client) serves
only as a Chunked's fallback.
"""

import asyncio
import math

import numpy as np
import scipy.sparse as sp

from . import _registry
from ._chunked import Chunked
from ._stopping import StoppingRule
from ._threads import default_threads, single_threaded_blas
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
        checks = self.client.gather([
            self.client.submit(_check_block, b, self.exponent, f"X ({self.where(c)})",
                               pure=False) for c, b in enumerate(self.blocks)])
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
    X = DaskRows(client, blocks, shape, dtype, rows, "the Dask array").scan(arg, n_threads)
    X.blocks = _balanced(client, X.blocks)
    return X


def _balanced(client, blocks):
    """The blocks spread over the workers in proportion to their threads (each worker's
    share runs its blocks one after another, so the busiest one sets an iteration's
    time): where the scheduler put more than that on a worker, its last blocks are moved
    to the workers short of theirs, once (a task pinned there; the block's old copy goes
    with its future, unless the caller's own array holds it). The fewest moves; a
    placement within one block of the target is left as it is."""
    threads = {w: info["nthreads"] for w, info in client.scheduler_info()["workers"].items()}
    if len(threads) < 2 or len(blocks) < 2:
        return blocks
    total = sum(threads.values())
    order = sorted(threads)
    target = {w: len(blocks) * threads[w] // total for w in order}
    for w in sorted(order, key=lambda w: -(len(blocks) * threads[w] % total))[
            :len(blocks) - sum(target.values())]:
        target[w] += 1  # the remainders, to the largest fractions (ties: address order)
    held = dict(_placement(blocks, client.who_has(blocks)))
    if all(abs(len(held.get(w, [])) - target[w]) <= 1 for w in order) and "" not in held:
        return blocks
    extra = [c for w, cs in sorted(held.items()) for c in cs[target.get(w, 0):]]
    short = [w for w in order for _ in range(target[w] - len(held.get(w, [])))]
    from distributed import wait

    blocks = list(blocks)
    for c, w in zip(extra, short):
        blocks[c] = client.submit(_moved, blocks[c], workers=[w], pure=False)
    wait(blocks)  # (where each is, for the shares)
    return blocks


def _moved(block):
    return block


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
    """A block as block_pass takes it: dense C order, or a CSR's three arrays (views of
    the block's own where they already have the kernels' types)."""
    if sp.issparse(block):
        block = _canonical_block(block, "X")
        data = np.ldexp(block.data, exponent) if exponent else block.data
        return (np.ascontiguousarray(data), block.indptr.astype(np.int64, copy=False),
                block.indices.astype(np.int32, copy=False))
    return _dense_block(block, exponent)


def _canonical_block(block, arg):
    """A sparse block as a CSR in the form the kernels take: its structure checked (a
    ValueError naming ``arg``, never a read out of bounds), duplicates summed and stored
    zeros dropped, as ``fastnmf.nmf`` takes a sparse X in memory."""
    from ._validation import checked_sparse  # (_validation imports this module)

    return sp.csr_matrix(checked_sparse(block, arg))


def _check_block(block, exponent, arg):
    if sp.issparse(block):
        block = _canonical_block(block, arg)
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


class _Share:
    """A worker's share of the iterations (a Dask actor, one on each worker that holds
    blocks; the client calls its methods directly): its blocks of X as they were computed
    there, their rows of W (Wᵀ_b, k × w each), after a pass on a guess their Wᵀ_b before
    the pass and their B_b (a redo's), and its part of the last call's sums: the blocks'
    (W_bᵀ X_b or None, W_bᵀ W_b or None, violation, evidence or None) added item by item
    in block order (``_sums``), then its children's parts in the tree's order
    (``_tree_total``). Every share takes the same calls in the same order, so a share
    asks a child for the part of its own call count, which the child gives once it has
    it (``part``, on the worker's event loop while the call runs on the actor's
    thread). The pass runs on the worker's threads, BLAS held to one."""

    def __init__(self, solver, exponent, *blocks):
        from distributed import get_worker

        self.solver, self.exponent, self.blocks = solver, exponent, blocks
        # the blocks as block_pass takes them, made once for the whole call
        self.operands = [_operand(block, exponent) for block in blocks]
        self.Wt = self.before = self.B = self.sums = None
        self.children, self.root = [], False
        self.calls = self.done = 0  # tree calls taken; the last one whose part is ready
        self.closing = False
        self._loop = self._ready = None  # (part's, on the worker's event loop)
        # The worker's threads: its OMP_NUM_THREADS as Dask's nanny sets it, and never
        # more than the worker was given (a worker in the client's process sets none).
        self.threads = max(1, min(default_threads(), get_worker().state.nthreads))

    def start(self, Wt, children, root):
        """Take the blocks' Wᵀ_b (from the start) and the share's place in the tree (the
        (worker, actor key) of the shares whose parts it adds; whether it is the first),
        and form the blocks' W_bᵀ X_b and W_bᵀ W_b."""
        from distributed import Actor

        self.Wt = [np.array(w) for w in Wt]  # writable, the share's own
        # (handles of its own: with workers in one process, the client's would be shared)
        self.children = [Actor(_Share, worker, key) for worker, key in children]
        self.root = root
        return self._tree_call(lambda: [_cross(b, w, self.exponent)
                                        for b, w in zip(self.blocks, self.Wt)])

    def run(self, H, A, perm, l1, l2, guess=None):
        """The pass over the blocks (``guess``: block_pass's keywords of a pass on a
        guess, which keeps Wᵀ_b before it and B_b)."""
        def parts():
            # block_pass updates the share's own Wᵀ_b in place; a guess keeps them as
            # they were before the pass, and a B_b for each
            self.before = self.B = None
            if guess is not None:
                self.before, self.Wt = self.Wt, [np.array(w) for w in self.Wt]
                self.B = [np.empty_like(w) for w in self.Wt]
            out = []
            with single_threaded_blas:
                for c, (operand, Wt) in enumerate(zip(self.operands, self.Wt)):
                    C, viol, evidence = block_pass(
                        self.solver, operand, Wt, H, A, perm, l1, l2, self.threads,
                        keep=None if guess is None else self.B[c], **(guess or {}))
                    out.append((C, Wt @ Wt.T, viol, evidence))
            return out

        return self._tree_call(parts)

    def redo(self, A, perm, l1, l2, guess):
        """The blocks' half-step redone on another guess, from their Wᵀ_b before the pass
        and their kept B_b (X is not read): as the engine's whole half-step, by blocks."""
        def parts():
            self.Wt, out = [np.array(w) for w in self.before], []
            with single_threaded_blas:
                for Wt, B in zip(self.Wt, self.B):
                    _, _, evidence = half_step_of(self.solver, Wt, A, B, l1, l2, perm=perm,
                                                  **guess)
                    out.append((None, None, 0.0, evidence))
            return out

        return self._tree_call(parts)

    def cross(self, H, A, perm):
        """W_bᵀ X_b and W_bᵀ W_b of the blocks' rows of W as they are (block_pass, mode
        "c"); the guess's state is let go."""
        def parts():
            out = []
            with single_threaded_blas:
                for operand, Wt in zip(self.operands, self.Wt):
                    C, _, _ = block_pass(self.solver, operand, Wt, H, A, perm, 0.0, 0.0,
                                         self.threads, mode="c")
                    out.append((C, Wt @ Wt.T, 0.0, None))
            self.before = self.B = None
            return out

        return self._tree_call(parts)

    def _tree_call(self, parts):
        """One tree call: the blocks' ``parts()`` summed, then each child's part of this
        call added; the part is marked ready (None if the call failed), and the first
        share returns it: the client's total."""
        self.calls += 1
        self.sums = None
        try:
            sums = _sums(*parts())
            for child in self.children:
                got = _waited(child.part(self.calls), lambda: self.closing)
                if got is None:
                    raise RuntimeError("a share of this call failed on another worker")
                sums = _sums(sums, got)
            self.sums = sums
        finally:
            self._mark(self.calls)
        return self.sums if self.root else None

    def _mark(self, done):
        self.done = done
        if self._ready is not None:
            self._loop.call_soon_threadsafe(self._ready.set)

    async def part(self, calls):
        """This share's part of its ``calls``-th tree call, once ready (None if it
        failed or the share was closed): a coroutine, on the worker's event loop."""
        if self._ready is None:
            self._loop, self._ready = asyncio.get_running_loop(), asyncio.Event()
        while self.done < calls:
            self._ready.clear()
            if self.done >= calls:
                break
            await self._ready.wait()
        return self.sums

    async def close(self):
        """Let go of the blocks, W and the children, and release a parent that waits and
        a wait on a child (the call's end; a coroutine on the worker's event loop, so it
        runs at once even while a call holds the actor's thread: a call in flight then
        ends by itself). The actor itself goes when the last handle to it does, which
        Python's cycle collector may take a while to find: distributed's method calls
        leave reference cycles to the handle."""
        self.closing = True
        self.blocks = self.operands = self.Wt = self.before = self.B = self.sums = None
        self.children = None
        self._mark(math.inf)

    def errors(self, H):
        """‖X_b − W_b H‖² of each block (dense blocks), formed directly."""
        out = []
        for block, Wt in zip(self.blocks, self.Wt):
            R = _dense_block(block, self.exponent) - Wt.T @ H
            out.append(float(np.square(R, dtype=np.float64).sum()))
        return out

    def rows(self, c=None):
        """The blocks' Wᵀ_b (a list), or block c's rows of W (w × k)."""
        return self.Wt if c is None else self.Wt[c].T


def _cross(block, Wt, exponent):
    """W_bᵀ X_b and W_bᵀ W_b of a block as the start gives W_b (numpy's products)."""
    return _left_task(block, Wt, exponent), Wt @ Wt.T, 0.0, None


def _sums(*parts):
    """Add parts in their order: arrays, or tuples of them (None for a part not formed)
    added item by item."""
    total = parts[0]
    for part in parts[1:]:
        total = (tuple(None if a is None else a + b for a, b in zip(total, part))
                 if isinstance(total, tuple) else total + part)
    return total


def _share_rows(share, c):
    """Block c's rows of W, from its worker's share (a task beside it: gather_W=False)."""
    return share.rows(c).result()


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
            F_at = client.scatter(F, broadcast=True, hash=False)  # (_scatter_rows: keys)
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
    """The blocks' products (futures) summed on each worker over its blocks (``groups``:
    _placement), then across workers by a binary tree of tasks, and brought to the
    client: only a few partial sums cross the network (``times``: once a product of the
    start, so a task's latency does not count here)."""
    futures = [client.submit(_sums, *[futures[i] for i in group], pure=False)
               for _, group in groups]
    while len(futures) > 1:
        futures = [client.submit(_sums, *futures[i:i + 2], pure=False)
                   for i in range(0, len(futures), 2)]
    return futures[0].result()


def solve(prob, W, H, seed, report):
    """``fastnmf.nmf`` on the cluster (runs_on_workers): returns what _api's solvers
    return, (W, H, n_iter, converged, history, final error). W's rows stay beside their
    blocks, in the workers' shares: one pass an iteration (``_Share.run``), or for als,
    bpp and accelerate a pass on a guess settled here (_guessed_pass)."""
    from .reference._rng import SplitMix64  # the kernels' sweep-order generator

    X = prob.X
    client, k, dtype = X.client, prob.k, prob.dtype
    rng = SplitMix64(seed)
    H = np.array(H, dtype=dtype, order="C")
    guessing = _guesses(prob)
    groups = _placement(X.blocks, client.who_has(X.blocks))
    half = dict(shuffle=prob.shuffle, accelerate=prob.accelerate, entries=float(X.entries))
    guess, sure = 1, False  # the engine's first guess (engine_pass)
    actors = shares = []  # the shares' futures and handles: let go on the way out
    try:
        actors = [client.submit(_Share, prob.solver, X.exponent, *[X.blocks[c] for c in group],
                                workers=[worker] if worker else None, actor=True,
                                pure=False)
                  for worker, group in groups]
        shares = _handles(client, actors, groups)
        A = H @ H.T
        C, G, _, _ = _send_rows(shares, X, groups,
                                np.ascontiguousarray(np.asarray(W, dtype=dtype).T))
        err_sq = _loss(prob.sqnorm, H, C, G, A)
        history = [math.sqrt(max(err_sq, 0.0))]
        rule = StoppingRule(prob.solver, prob.tol, history[0])
        if report is not None:
            report(0, history[0])
        converged, n_iter = False, 0
        for it in range(1, prob.max_iter + 1):
            perm = np.asarray(rng.order(k, prob.shuffle), dtype=np.intp)
            step = (H, A, perm, prob.l1_W, prob.l2_W)
            if guessing:
                C, G, violation, guess, sure = _guessed_pass(prob, shares, step, half, rng,
                                                             guess, sure)
            else:
                C, G, violation, _ = _tree_total(shares, "run", *step)
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
            final = math.sqrt(sum(_by_block(groups, _each(shares, "errors", H))))
        if not prob.gather_W:  # W stays on the workers, as a dask.array of X's row blocks
            W = _dask_W(client, X, actors, groups, k, dtype)
        else:
            W = np.concatenate(_by_block(groups, _each(shares, "rows")), axis=1).T
    finally:  # the shares go (a call in flight ends with its pass): nothing stays behind
        for share in shares:
            if not share.lost:  # (a call to a lost one would wait for it to come back)
                share.handle.close()  # not waited for
        for actor in actors:  # released, not cancelled: gather_W=False's blocks stay
            actor.release()
    return W, H, n_iter, converged, np.array(history), final


def _handles(client, actors, groups):
    """The shares' handles (``actors``: their futures, on the ``groups``' workers). Their
    calls go straight to the workers when the client surely reaches them (the client's
    ``direct_to_workers``, or every worker on this machine's loopback or in this
    process), else through the scheduler as the client's other messages do: then H and
    the sums cross the network twice."""
    from distributed import Actor

    handles = [actor.result() for actor in actors]  # (each created, or its error raised)
    if not _reaches(client, [worker for worker, _ in groups]):
        return [_Remote(h, a, w) for h, a, (w, _) in zip(handles, actors, groups)]

    class Direct(Actor):
        """An actor handle whose calls open their own connection to the worker."""

        @property
        def _worker_rpc(self):
            return self._client.rpc(self._address) if self._worker is None \
                else super()._worker_rpc

    return [_Remote(Direct(_Share, worker, actor.key), actor, worker)
            for (worker, _), actor in zip(groups, actors)]


def _reaches(client, workers):
    """Whether the client surely reaches the workers directly (_handles)."""
    from distributed.comm import get_address_host, parse_address

    def here(worker):
        return (parse_address(worker)[0] == "inproc"
                or get_address_host(worker) in ("127.0.0.1", "::1", "localhost"))

    return bool(client.direct_to_workers) or all(here(worker) for worker in workers)


def _each(shares, method, *args):
    """Call ``method`` of every share at once; their results, in the shares' order."""
    return _results(shares, [getattr(share.handle, method)(*args) for share in shares])


def _results(shares, calls):
    """The results of ``calls`` (one to each share, in flight), in the shares' order:
    waited for from the last (a child's failure comes first), giving up if a share's
    worker is lost."""
    lost = _lost_check(shares)
    return [_waited(call, lost) for call in calls[::-1]][::-1]


_WATCH = 0.5  # seconds between the checks of a wait (_waited)


def _waited(call, stop):
    """An actor call's result; every _WATCH seconds ``stop()`` is asked whether to give
    up (an actor whose worker died never answers: distributed waits for the actor to
    come back, which it cannot)."""
    while True:
        try:
            return call.result(timeout=_WATCH)
        except TimeoutError:
            if stop():
                raise RuntimeError("a share of this call was closed while it waited")


def _lost_check(shares):
    """For _waited on the client: raises if the worker of a share is gone (its actor is
    no longer in memory there)."""
    def lost():
        for share in shares:
            if share.future.status != "finished":
                share.lost = True
                raise RuntimeError(
                    f"the worker {share.worker} holding a share of this fastnmf.nmf call was "
                    "lost; the call stopped (the other workers' shares were let go)")
        return False

    return lost


class _Remote:
    """A share as the client holds it: its actor's handle and future, its worker."""

    def __init__(self, handle, future, worker):
        self.handle, self.future, self.worker, self.lost = handle, future, worker, False


def _tree_total(shares, method, *args):
    """Call ``method`` of every share at once and return the sum of their parts, which
    the shares add among themselves by a fixed binary tree (share i takes the parts of
    shares i + 1, i + 2, i + 4, ... while i is a multiple of twice the step: ((0 + 1) +
    (2 + 3)) + ...; the same sums whatever the timing) and the first share returns: one
    round trip a call, and only a few k × m partial sums cross the network."""
    return _each(shares, method, *args)[0]


def _tree(places):
    """Each share's children in _tree_total's tree, as their ``places`` ((worker, actor
    key) each)."""
    out = []
    for i in range(len(places)):
        children, step = [], 1
        while i % (2 * step) == 0 and i + step < len(places):
            children.append(places[i + step])
            step *= 2
        out.append(children)
    return out


def _by_block(groups, per_share):
    """The shares' lists of per-block items, in block order."""
    out = {}
    for (_, group), items in zip(groups, per_share):
        out.update(zip(group, items))
    return [out[c] for c in range(len(out))]


def _guessed_pass(prob, shares, step, half, rng, guess, sure):
    """engine_pass on the cluster, for a solver whose W half-step decides over the whole
    factor: each share runs its blocks on a guess of the decision (``guess`` if the last
    one held, ``sure``, and then forms W_bᵀ X_b too; else 1, without it) and keeps their
    Wᵀ_b before the pass and B_b; settle_of decides from the summed evidence; another
    outcome is redone block by block from what they kept (X is not read), and W_bᵀ X_b
    then takes a pass of its own. The iterates are the in-memory engine's, and so the
    two-pass loop's, up to the order of additions. ``half``: the half-steps' keywords
    (solve's). Returns (C, G, violation, guess, sure)."""
    X, k = prob.X, prob.k
    H, A, perm, l1, l2 = step
    bet = sure
    tried = guess if bet else 1
    spec = dict(half, rng=rng.state, whole=X.shape[0])  # a guess's keywords
    C, G, violation, evidence = _tree_total(
        shares, "run", *step, dict(spec, guess=tried, mode="both" if bet else "half"))
    outcome, redo, state = settle_of(prob.solver, evidence, tried, k, **spec)
    redone = False
    while redo:  # (accelerate's count past the guess: a redo on the cap first)
        evidence = _tree_total(shares, "redo", A, perm, l1, l2, dict(spec, guess=outcome))[3]
        tried, redone = outcome, True
        outcome, redo, state = settle_of(prob.solver, evidence, tried, k, **spec)
    rng.state = state
    if redone or not bet:  # C and G from the settled W
        C, G, _, _ = _tree_total(shares, "cross", H, A, perm)
    return C, G, violation, outcome, outcome == guess


def _dask_W(client, X, actors, groups, k, dtype):
    """W as a dask.array whose blocks are the workers' rows of W (X's row blocks), each
    computed beside its share before the share goes."""
    import dask.array as da

    from distributed import wait

    n = X.shape[0]
    rows = _by_block(groups, [[client.submit(_share_rows, actor, j, pure=False,
                                             workers=[worker] if worker else None)
                               for j in range(len(group))]
                              for actor, (worker, group) in zip(actors, groups)])
    wait(rows)
    parts = [da.from_delayed(r, shape=(min(X.rows, n - c * X.rows), k), dtype=dtype)
             for c, r in enumerate(rows)]
    return da.concatenate(parts, axis=0)


def _send_rows(shares, X, groups, Wt):
    """Each share takes its blocks' columns of Wᵀ (once a call: W's rows then stay) and
    its place in the tree (its children's worker and actor key); returns the sums of W
    as it starts (_tree_total)."""
    pieces = [[np.ascontiguousarray(Wt[:, c * X.rows:(c + 1) * X.rows]) for c in group]
              for _, group in groups]
    places = [(share.worker, share.future.key) for share in shares]
    return _results(shares, [share.handle.start(p, children, i == 0) for i, (share, p, children)
                             in enumerate(zip(shares, pieces, _tree(places)))])[0]


def _scatter_rows(client, X, Wt, where):
    """Wᵀ's columns of each block, sent to the worker that holds the block (under keys of
    their own: content-hashed keys of one call's data can meet a release of the same key,
    and a task on them then loses its dependency)."""
    return [client.scatter(np.ascontiguousarray(Wt[:, c * X.rows:(c + 1) * X.rows]),
                           workers=list(where.get(b.key, ())) or None, hash=False)
            for c, b in enumerate(X.blocks)]


def _placement(blocks, where):
    """The blocks' indices grouped by the worker that holds each, as (worker, indices) pairs
    (workers in address order, blocks in index order within one): the order the sums are
    added in. The same placement gives the same sums, bit for bit; another one differs by
    rounding only."""
    held = [min(where.get(b.key, ()) or [""]) for b in blocks]
    groups = {}
    for i in range(len(blocks)):
        groups.setdefault(held[i], []).append(i)
    return [(w, groups[w]) for w in sorted(groups)]


def _loss(sqnorm, H, C, G, A):
    """‖X − WH‖² = ‖X‖² − 2⟨H, WᵀX⟩ + ⟨WᵀW, HHᵀ⟩, in float64."""
    f64 = np.float64
    return (sqnorm - 2 * float(np.vdot(H.astype(f64), C.astype(f64)))
            + float(np.vdot(G.astype(f64), A.astype(f64))))
