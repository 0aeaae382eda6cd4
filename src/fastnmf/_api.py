"""fastnmf.nmf: validate, initialize, dispatch to a solver, wrap the result."""

import inspect

import numpy as np

from . import _registry
from ._chunked import Chunked
from ._dask import runs_on_workers, solve as _dask_solve
from ._init import LazyRNG, initialize, operands, planned_nndsvd, reads_once
from ._kernels._solve import solve
from ._result import NMFResult, raise_for_status
from ._threads import single_threaded_blas
from ._validation import SOLVERS, check_nmf_args, scale2

__all__ = ["nmf", "run", "make_result", "NMF_DEFAULTS"]


def nmf(X, n_components, *, solver="cd", init=None, W=None, H=None, update_H=True,
        max_iter=200, tol=1e-4, beta_loss="frobenius", alpha_W=0.0, alpha_H="same",
        l1_ratio=0.0, random_state=None, shuffle=False, verbose=False, n_threads=None,
        accelerate=False, callback=None, gather_W=True):
    """Non-negative matrix factorization: find W, H >= 0 with X ≈ W @ H.

    Minimizes ½‖X − WH‖²_F plus scikit-learn's regularization, with compiled solvers
    whose whole iteration loop runs without the GIL.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n, m)
        Non-negative data. float32 computes in float32, float64 in float64, integer and
        boolean input in float64. CSR/CSC matrices are used as they are (never densified).
        X is never modified. An ``np.memmap`` (``np.load(path, mmap_mode="r")``), an h5py
        dataset, a zarr array, or any object with ``shape``, ``dtype`` and row slicing and
        no ``__array__`` is read a chunk of rows at a time, never whole; a Dask array runs
        on its cluster, its blocks staying there, when a ``distributed`` client is active (docs/algorithms.md, "X out
        of core" and "One matrix on a Dask cluster"); the Frobenius loss only.
    n_components : int
        Rank k >= 1.
    solver : {'cd', 'als', 'mu', 'bpp'}, default='cd'
        'cd': coordinate descent (HALS), one exact sweep over each factor per iteration
        (scikit-learn's cd; with ``accelerate=True``, several sweeps per product).
        'als': projected alternating least squares, each proposal accepted only if it
        lowers the half-step objective, followed by a HALS sweep (monotone).
        'mu': multiplicative updates (Lee & Seung).
        'bpp': alternating non-negative least squares, each half-step solved exactly by
        block principal pivoting (Kim & Park 2011).

        Which to pick: for a fixed number of iterations 'cd' is the cheapest (close to
        the two products with X per iteration); to reach a given error, 'bpp' and 'cd'
        with ``accelerate=True`` need far fewer iterations. 'bpp' costs more per iteration
        as k grows (about k³/3 per distinct passive set); 'mu' is the slowest to converge
        and the only solver for the other β-divergences. The README's benchmark table and
        docs/algorithms.md ("Cost per iteration") give the figures.
    init : {None, 'random', 'nndsvd', 'nndsvda', 'nndsvdar', 'custom'}, default=None
        None means 'nndsvda' when n_components <= min(n, m), else 'random'.
    W : array-like of shape (n, k), default=None
        Starting W for init='custom' (or with update_H=False). Copied, never modified.
    H : array-like of shape (k, m), default=None
        Starting H for init='custom'; the fixed H when update_H=False.
    update_H : bool, default=True
        False: H is kept fixed and only W is solved; W starts at zeros ('mu': the constant
        sqrt(mean(X) / k)) unless W is given.
    max_iter : int, default=200
        Maximum number of iterations (>= 1).
    tol : float, default=1e-4
        Stopping tolerance; 0 runs exactly max_iter iterations.
    beta_loss : {'frobenius', 'kullback-leibler', 'itakura-saito'} or float, default='frobenius'
        The β-divergence minimized (2, 1, 0 for the three names); other than 'frobenius',
        solver 'mu' only, with scikit-learn's updates. β <= 0 needs X without zeros. A
        sparse X is read only at its non-zeros for β = 1 (for other β the loss needs WH
        everywhere, formed a row at a time).
    alpha_W, alpha_H, l1_ratio : float, default=0.0, 'same', 0.0
        scikit-learn's regularization: alpha_W · l1_ratio · m · ‖W‖₁ +
        ½ alpha_W (1 − l1_ratio) m ‖W‖²_F and the same for H with n; alpha_H='same' takes
        alpha_W.
    random_state : int, numpy.random.Generator, RandomState or None, default=None
        Seeds 'random', 'nndsvdar', the randomized SVD of 'nndsvd*' on large X, and
        ``shuffle``. An int gives scikit-learn's random start.
    shuffle : bool, default=False
        cd and als: visit the components in a random order in each sweep (mu and bpp have
        no sweep order).
    verbose : bool, default=False
        Print ``fastnmf: iteration N, error E`` at the start (N = 0) and at each
        convergence check, through ``sys.stdout``.
    n_threads : int, default=None
        Threads of this call for the large products with X and the sweeps. None: as
        scikit-learn's OpenMP code decides -- ``OMP_NUM_THREADS`` or threadpoolctl's
        OpenMP limit when set (as joblib/loky and Dask set them in their workers), else
        every CPU of the affinity mask within the CPU quota; a negative int counts back
        from that (-1: the same). BLAS is held to one thread meanwhile, from whichever
        Python thread calls, and restored afterwards. Small problems run on one thread
        whatever it says; results do not depend on it. Within ``nmf_batch`` every matrix
        runs on one thread (``n_jobs`` sets the parallelism there). A process forked from
        one that imported fastnmf runs on one thread (GNU OpenMP hangs in a forked child
        otherwise); "spawn" children, and "forkserver" ones that do not preload fastnmf,
        keep every core.
    accelerate : bool, default=False
        'cd' only: accelerated HALS (Gillis & Glineur 2012). Each half-step repeats its
        sweep, with the same products, while a sweep still moves the factor by more than
        a tenth of the first sweep's move (at most 1 + ½ · (cost of a product with X) /
        (cost of a sweep) sweeps). An iteration costs more, far fewer are needed for an
        error: use it with a ``tol`` or a time budget, not to compare iteration counts.
        False keeps scikit-learn's cd iterates.
    callback : callable, default=None
        Called as ``callback(iteration, error)`` at the start (iteration 0) and at each
        convergence check while the call runs, from the calling thread, with the error
        that ``history`` records there. An exception it raises stops the call and is
        raised (for a time budget or a progress display). ``nmf_batch`` does not take it.
    gather_W : bool, default=True
        With X a Dask array while a ``distributed`` client is active: False returns W as
        a dask.array chunked by X's row blocks, whose blocks stay on the workers (W is not
        brought to the client); True gathers it into a NumPy array. False with any other
        X raises ValueError.

    Returns
    -------
    NMFResult
        W, H, n_iter, converged, reconstruction_err (‖X − WH‖_F), history, solver.

    Raises
    ------
    ValueError
        Negative, NaN or infinite entries; not 2-D; empty; n_components out of range;
        unknown solver, init or beta_loss; custom W/H of the wrong shape or negative.
    TypeError
        An argument of the wrong type.

    Notes
    -----
    Every iteration updates W with A = HHᵀ, B = XHᵀ, then H with A = WᵀW, B = WᵀX
    (2·n·m·k flops for each product, dense; 2·nnz·k sparse), and evaluates
    ‖X − WH‖² = ‖X‖² − 2⟨H, WᵀX⟩ + ⟨WᵀW, HHᵀ⟩ without forming WH. The final
    ``reconstruction_err`` comes from the last loss, or is formed directly (a block of rows
    at a time) for a float32 X and where a dense float64 fit is within 1e-3 relative.

    Stopping: 'cd', 'als' and 'bpp' check every iteration and stop when the sum of
    absolute projected gradients at the start of the half-steps falls to ``tol`` times
    its value at the first iteration (scikit-learn's cd rule); 'mu' checks every 10 iterations and stops when
    (previous error − error) / initial error < ``tol`` (scikit-learn's mu rule).
    ``history`` holds the error at the start and at each check. For another ``beta_loss``
    the error is sqrt(2 · D_β(X ‖ WH)), as scikit-learn's ``reconstruction_err_``.

    Examples
    --------
    >>> import numpy as np, fastnmf
    >>> X = np.random.default_rng(0).random((6, 4)) @ np.random.default_rng(1).random((4, 5))
    >>> res = fastnmf.nmf(X, 4, random_state=0, max_iter=500, tol=0)
    >>> res.W.shape, res.H.shape
    ((6, 4), (4, 5))
    >>> bool(res.reconstruction_err < 1e-2 * np.linalg.norm(X))
    True
    """
    prob = check_nmf_args(
        X, n_components, solver=solver, init=init, W=W, H=H, update_H=update_H,
        max_iter=max_iter, tol=tol, beta_loss=beta_loss, alpha_W=alpha_W, alpha_H=alpha_H,
        l1_ratio=l1_ratio, random_state=random_state, shuffle=shuffle, verbose=verbose,
        n_threads=n_threads, accelerate=accelerate, callback=callback, gather_W=gather_W)
    return run(prob, _SOLVERS)


def run(prob, solvers):
    """Initialize ``prob`` and solve it with ``solvers[prob.solver]``; wrap the result.

    An X of extreme scale is solved as X · 2⁻ᵉ and the result scaled back (exactly).
    """
    # BLAS at one thread for the whole call: the kernels share the work among their own
    # threads, and the start's BLAS calls give the same bits whatever count BLAS had and
    # whatever another Python thread's call holds it at.
    work = prob
    try:
        with single_threaded_blas:
            e, work, W, H, seed, _ = start(prob)
            W, H, n_iter, converged, history, err = solvers[work.solver](
                work, W, H, seed, _reporter(prob, e))
    finally:
        for X in (prob.X, work.X):  # a Chunked's read-ahead buffers (X · 2⁻ᵉ's too)
            if isinstance(X, Chunked):
                X.close()
    return make_result(prob, e, W, H, n_iter, converged, history, err)


def _reporter(prob, e):
    """What the loop calls at the start and at each check, ``report(iteration, error)``:
    ``verbose``'s line and ``callback``, the error in X's scale (undoing a scaling of X by
    2⁻ᵉ); None when neither is asked for."""
    if not prob.verbose and prob.callback is None:
        return None
    shift = prob.error_shift(e) if e else 0

    def report(it, err):
        err = scale2(float(err), shift)
        if prob.verbose:
            print(f"fastnmf: iteration {it}, error {err:.10g}", flush=True)
        if prob.callback is not None:
            prob.callback(it, err)
    return report


def start(prob, plan=False):
    """The steps before the solve, for ``fastnmf.nmf`` and each item of ``nmf_batch``:
    returns (e, work, W, H, seed, planned): X's scale exponent (``work`` is ``prob`` with
    X · 2⁻ᵉ, or ``prob`` itself), the starting factors and the sweep-order seed, drawn
    after the start from the same generator. With ``plan`` (a batch), a start the compiled
    batch can make itself is only planned: W and H are None and ``planned`` is
    _init.planned_nndsvd's (Ω, q, fill); else ``planned`` is None. BLAS must be held to
    one thread meanwhile."""
    e = prob.scale_exponent()
    work = prob.scaled(e) if e else prob
    rng = LazyRNG(work.random_state)
    planned = planned_nndsvd(work, rng) if plan else None
    W, H = (None, None) if planned else initialize(work, rng)
    seed = rng.uint63() if work.shuffle and _registry.SOLVERS[work.solver].sweeps else 0
    return e, work, W, H, seed, planned


def make_result(prob, e, W, H, n_iter, converged, history, err):
    """The NMFResult of ``prob``, undoing a scaling of X by 2⁻ᵉ."""
    if e:
        shift = prob.error_shift(e)
        with np.errstate(over="raise"):
            try:
                history, err = scale2(history, shift), float(scale2(np.asarray(err), shift))
            except FloatingPointError:  # validation leaves room for errors up to 4 ‖X‖_F
                raise FloatingPointError(
                    f"X is too large for float64: an error of the {prob.solver!r} solver "
                    "(history, reconstruction_err) exceeded float64's largest value; rescale "
                    "X") from None
        W = np.ldexp(W, e // 2)
        H = np.ldexp(H, e // 2) if prob.update_H else prob.H
    return NMFResult(W=W, H=H, n_iter=int(n_iter), converged=bool(converged),
                     reconstruction_err=float(err), history=history, solver=prob.solver)


def _compiled(prob, W, H, seed, report):
    """Run the compiled solver (factors component-major inside: Wᵀ is k × n); on the
    cluster where X's blocks are (_dask)."""
    if runs_on_workers(prob):
        return _dask_solve(prob, W, H, seed, report)
    Wt = np.ascontiguousarray(W.T)
    n_iter, converged, history, err, status = solve(
        prob.solver, operands(prob.X, columns=not reads_once(prob)), Wt, H, prob.sqnorm,
        max_iter=prob.max_iter, tol=prob.tol,
        l1_W=prob.l1_W, l2_W=prob.l2_W, l1_H=prob.l1_H, l2_H=prob.l2_H,
        update_H=prob.update_H, shuffle=prob.shuffle, seed=seed, beta=prob.beta,
        progress=report, n_threads=prob.n_threads,
        accelerate=prob.accelerate)
    raise_for_status(status, prob, n_iter)
    return Wt.T, H, n_iter, converged, history, err  # W Fortran-ordered: no copy of it


_SOLVERS = {name: _compiled for name in SOLVERS}

# The keyword arguments of nmf and their defaults (shared by reference.nmf and nmf_batch).
NMF_DEFAULTS = {name: p.default for name, p in inspect.signature(nmf).parameters.items()
                if p.kind is p.KEYWORD_ONLY}

