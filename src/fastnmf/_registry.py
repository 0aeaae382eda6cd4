"""The solvers and losses fastnmf knows, one entry each.

Validation, dispatch (``_kernels/_solve.pyx`` and ``_kernels/_batch.pyx``), the
reference solvers, the scikit-learn estimator, the command line, the bench and the tests
read these tables; nothing else spells out a solver's or a loss's facts. A solver's
formulas are in docs/algorithms.md ("Solvers"), its kernel in ``_kernels/_<name>.pyx``
and its NumPy twin in ``reference/_<name>.py``.
"""

from dataclasses import dataclass

__all__ = ["Solver", "Loss", "SOLVERS", "LOSSES", "loss_of_beta"]


@dataclass(frozen=True)
class Solver:
    """One solver.

    name : what users pass as ``solver``.
    check_every : iterations between two convergence checks (and history entries).
    stops_on : what ``tol`` bounds at a check: "gradient" (the sweep's projected-gradient
        norm against the first iteration's) or "decrease" (the error's decrease since the
        last check, relative to the starting error); docs/algorithms.md, "Stopping rules".
    losses : the names of the losses (``LOSSES``) it minimizes.
    sweeps : whether its iteration has HALS sweeps, whose component order ``shuffle=True``
        draws a seed for (one integer from ``random_state``'s generator after the start;
        bpp draws it too, though its closing sweep keeps the order).
    accelerate : whether it takes ``accelerate=True`` (repeated sweeps per product).
    separable : whether its half-step updates each column of F (each row of W) from that
        column alone, given A and B's column: the row-block engine then updates W a block
        of rows at a time while it reads X once per iteration (docs/algorithms.md, "One pass
        over X"). als and bpp are not: each compares or checks the whole factor; the engine
        runs them (and accelerated cd) on a guess of that decision, which their KERNEL
        settles after the pass (``Kernel.settle``), and the Dask driver keeps W on the
        client for them.
    keeps_zeros : whether an entry at zero stays there (multiplicative updates), so a fixed
        H's W (``update_H=False``) starts from a positive constant, not from zeros.
    summary : one line for ``--help`` and docs.

    Its compiled entry points are the ``KERNEL`` of ``_kernels/_<name>.pyx`` (a half-step,
    its own workspace region, if ``losses`` names more than Frobenius its loop for them,
    and if it is not separable its settling of a guessed decision: ``Kernel`` in
    ``_kernels/_common.pxd``), which ``_kernels/_solve.pyx`` gathers at
    import; its NumPy twin is the function ``<name>`` of ``reference/_<name>.py``. Both
    modules are named in the ``solvers`` list of ``src/fastnmf/meson.build``. A new solver
    is those four files and this entry.
    """

    name: str
    check_every: int
    stops_on: str
    losses: tuple
    sweeps: bool
    accelerate: bool
    separable: bool
    keeps_zeros: bool
    summary: str


@dataclass(frozen=True)
class Loss:
    """One named loss: ``beta`` its β-divergence (2 is ½‖X − WH‖²_F)."""

    name: str
    beta: float


LOSSES = {loss.name: loss for loss in (
    Loss("frobenius", 2.0),
    Loss("kullback-leibler", 1.0),
    Loss("itakura-saito", 0.0),
)}

_ALL_BETAS = tuple(LOSSES) + ("beta",)  # "beta": any other float β

SOLVERS = {s.name: s for s in (
    Solver("cd", 1, "gradient", ("frobenius",), sweeps=True, accelerate=True, separable=True,
           keeps_zeros=False, summary="coordinate descent (HALS), scikit-learn's cd"),
    Solver("als", 1, "gradient", ("frobenius",), sweeps=True, accelerate=False, separable=False,
           keeps_zeros=False,
           summary="projected ALS, proposals kept only when they lower the objective"),
    Solver("mu", 10, "decrease", _ALL_BETAS, sweeps=False, accelerate=False, separable=True,
           keeps_zeros=True, summary="multiplicative updates (Lee & Seung), every β-divergence"),
    Solver("bpp", 1, "gradient", ("frobenius",), sweeps=True, accelerate=False, separable=False,
           keeps_zeros=False, summary="exact ANLS by block principal pivoting (Kim & Park)"),
)}


def loss_of_beta(beta):
    """The name under which ``solver.losses`` lists β: a named loss's, else "beta"."""
    for loss in LOSSES.values():
        if loss.beta == beta:
            return loss.name
    return "beta"
