"""The stopping rule of ``fastnmf.nmf`` for the loops written in Python: the reference
solvers' (reference/_common.py) and the Dask driver's (_dask.py). The kernels' loop
(_kernels/_solve.pyx, solve_core) states the same rule in C; docs/algorithms.md,
"Stopping rules and check cadence", states it in words."""

from . import _registry

__all__ = ["StoppingRule"]


class StoppingRule:
    """At each check (every ``check_every`` iterations), by the registry's rule for the
    solver: "gradient" (the sweep's projected-gradient norm at tol × its value at the first
    iteration) or "decrease" ((previous error − error) / initial error < tol). tol = 0
    never stops early."""

    def __init__(self, solver, tol, err0):
        entry = _registry.SOLVERS[solver]
        self.check_every = entry.check_every
        self.decrease = entry.stops_on == "decrease"
        self.tol, self.err0, self.prev, self.violation0 = tol, err0, err0, 0.0

    def checks(self, it):
        """Whether iteration ``it`` ends with a check."""
        return it % self.check_every == 0

    def converged(self, it, err, violation):
        """At a check after iteration ``it``: whether the rule is met (the loop stops when
        it is and tol > 0)."""
        if self.decrease:
            met = self.err0 == 0 or (self.prev - err) / self.err0 < self.tol
            self.prev = err
            return met
        if it == 1:
            self.violation0 = violation
        return self.violation0 == 0 or violation / self.violation0 <= self.tol
