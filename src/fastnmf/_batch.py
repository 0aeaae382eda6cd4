"""fastnmf.nmf_batch: many factorizations on all cores (threads, the GIL released) or on any
concurrent.futures executor (a Dask cluster's among them)."""

import concurrent.futures
import math
import queue
import secrets
import threading
import time

import numpy as np
import scipy.sparse as sp

from ._api import NMF_DEFAULTS, make_result, operands, start
from ._progress import BatchProgress
from ._kernels._batch import STATUS_INIT_FAILED, Batch
from ._kernels._common import aligned_empty
from ._result import raise_for_status
from ._threads import exiting_after_interrupt, single_threaded_blas
from ._validation import check_nmf_args, check_options, error_message, resolve_threads

__all__ = ["nmf_batch", "BatchError"]

_ERRORS = ("raise", "return")


class BatchError(RuntimeError):
    """A factorization of ``nmf_batch`` failed while working; raised with errors='raise'.

    Attributes
    ----------
    index : int
        The index of the first item that failed.
    results : list
        One entry per item, in input order: an NMFResult, or the exception of that item.
    """

    def __init__(self, index, results):
        self.index = index
        self.results = results
        super().__init__(f"Xs[{index}]: {results[index]} (the other items' results are in "
                         f"this exception's .results)")


def nmf_batch(Xs, n_components, *, n_jobs=None, executor=None, errors="raise",
              progress=False, **nmf_kwargs):
    """Factorize many matrices: item i equals ``fastnmf.nmf(Xs[i], n_components, ...)``.

    Parameters
    ----------
    Xs : sequence of {array-like, sparse matrix} or ndarray of shape (b, n, m)
        The matrices; shapes, dtypes and formats may differ.
    n_components : int
        Rank k of every factorization.
    n_jobs : int, default=None
        Threads on this machine: None → 1, -1 → the threads ``fastnmf.nmf``'s
        ``n_threads=None`` would use (OMP_NUM_THREADS, threadpoolctl's OpenMP limit, else
        the available CPUs), -2 → one fewer, and so on.
        Dense and sparse items run in one compiled call, an OpenMP loop over the items
        without the GIL, one item per thread at a time; BLAS is held to one thread
        meanwhile and restored afterwards. With 2 or more (from the main thread) the loop
        solves items while this thread still starts the later ones: the call then keeps
        n_jobs threads and the calling one busy; with 1 every item is started first.
        With ``executor``, the threads each task uses.
    executor : concurrent.futures.Executor, default=None
        Run the items on this executor instead, in chunks (a few per worker), e.g. a Dask
        cluster's ``distributed.Client(...).get_executor()``. Each chunk runs as a local
        batch on its worker with ``n_jobs`` threads (None there means -1: the threads that
        worker may use; one in a Dask worker process, whose nanny sets OMP_NUM_THREADS=1).
    errors : {'raise', 'return'}, default='raise'
        What a failure during the work does (bad input is always raised before any work
        starts, as ValueError naming the index): 'raise' raises BatchError naming the first
        failed index, its ``.results`` holding every item's result or exception; 'return'
        puts the exception in place of the failed item's result. A failure of the executor
        itself (a task that raised, a worker lost: Dask's KilledWorker, a broken process
        pool) ends the run: the tasks not yet finished are cancelled (those that cannot be
        are waited for), every finished result is kept, and that failure takes the place
        of each item left without a result.
    progress : bool, default=False
        Show progress on stderr (items done, rate, time left). Never shown unless asked. On
        a terminal one line is redrawn; elsewhere (a log file, a pipe) a line is written
        each time another quarter of the items is done, and at the end.
    **nmf_kwargs
        Any argument of ``fastnmf.nmf``. ``random_state``: an int or None is given to every
        item as it is; a numpy Generator is split by ``Generator.spawn`` into one child per
        item before any work; a RandomState draws one int seed per item, in input order,
        before any work; a sequence of len(Xs) seeds or generators gives each item its own.

    Returns
    -------
    list of NMFResult
        In input order.
    """
    if errors not in _ERRORS:
        raise ValueError(error_message("errors", "must be one of", "'raise', 'return'",
                                       got=f"{errors!r}"))
    unknown = set(nmf_kwargs) - set(NMF_DEFAULTS)
    if unknown:
        raise TypeError(f"nmf_batch() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    if nmf_kwargs.get("callback") is not None:  # the items run without the GIL
        raise TypeError(error_message("callback", "is not taken by nmf_batch (use "
                                      "progress=True to follow a batch)"))
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(error_message(
            "executor", "must be a concurrent.futures.Executor (an object with a submit "
            "method), e.g. distributed.Client(...).get_executor()",
            got=type(executor).__name__))
    items = _as_items(Xs)
    seeds = _split_random_state(nmf_kwargs.pop("random_state", None), len(items))
    kwargs = {**NMF_DEFAULTS, **nmf_kwargs}
    options = check_options(n_components, **kwargs)  # the arguments every item shares, once
    probs = [_check_item(i, X, n_components, kwargs, options, seeds[i])
             for i, X in enumerate(items)]
    if executor is not None:
        results = _run_on_executor(executor, items, n_components, kwargs, seeds, n_jobs,
                                   progress)
    else:
        results = _run_local(probs, _resolve_n_jobs(n_jobs, len(probs)), progress)
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    if failed and errors == "raise":
        raise BatchError(failed[0], results)
    return results


def _as_items(Xs):
    if isinstance(Xs, np.ndarray):
        if Xs.ndim != 3:
            raise ValueError(error_message("Xs", "must be a sequence of 2-D matrices or a 3-D "
                                           "array", got=f"an array of shape {Xs.shape}"))
        return list(Xs)
    if sp.issparse(Xs) or isinstance(Xs, (str, bytes)) or not hasattr(Xs, "__iter__"):
        raise TypeError(error_message("Xs", "must be a sequence of 2-D matrices or a 3-D array",
                                      got=type(Xs).__name__))
    return list(Xs)


def _split_random_state(random_state, count):
    """One random_state per item, fixed before any work (docs/api.md, nmf_batch)."""
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return [random_state] * count
    if isinstance(random_state, np.random.Generator):
        return random_state.spawn(count)
    if isinstance(random_state, np.random.RandomState):
        return [int(s) for s in random_state.randint(0, 2**32, size=count, dtype=np.uint64)]
    if hasattr(random_state, "__len__") and not isinstance(random_state, (str, bytes)):
        seeds = list(random_state)
        if len(seeds) != count:
            raise ValueError(error_message("random_state", "as a sequence must have one seed "
                                           f"per matrix ({count})", got=f"{len(seeds)}"))
        return seeds
    raise TypeError(error_message(
        "random_state", "must be None, an int, a Generator, a RandomState or a sequence of "
        "one per matrix", got=type(random_state).__name__))


def _check_item(i, X, n_components, kwargs, options, random_state):
    try:
        return check_nmf_args(X, n_components, W=kwargs["W"], H=kwargs["H"],
                              random_state=random_state, gather_W=kwargs["gather_W"],
                              out_of_core=False, options=options)
    except (ValueError, TypeError) as exc:
        exc_type = ValueError if str(exc).startswith("X ") else type(exc)
        raise exc_type(f"Xs[{i}]: {exc}") from None


def _resolve_n_jobs(n_jobs, count):
    """Threads for ``count`` items: no more than there are items (each thread has its own
    workspace)."""
    return max(1, min(count, 1 if n_jobs is None else resolve_threads(n_jobs, "n_jobs")))


def _run_local(probs, n_threads, progress, stop=None):
    """Start each item as ``fastnmf.nmf`` does (``_api.start``) and solve it in a compiled
    batch (``Batch``: an OpenMP loop without the GIL), one per dtype and solver settings.
    From the main thread with two threads or more, each batch runs in the helper thread
    from the start, solving items as this thread starts and hands them over (the starts,
    Python's part of the work, no longer wait for one another's solves nor the solves for
    all the starts); otherwise every item is started first. ``stop``: the flag (an intc
    array of one) that ends the items once set elsewhere, else one of its own."""
    results = [None] * len(probs)
    keys = [_settings(prob) for prob in probs]  # each item's batch
    slots = {}  # settings -> the indices of the items of that batch, in order
    for i, key in enumerate(keys):
        slots.setdefault(key, []).append(i)
    done = np.zeros(8 * n_threads, dtype=np.int64)
    stop = np.zeros(1, dtype=np.intc) if stop is None else stop
    batches = {key: Batch(key[1], len(indices), probs[indices[0]].k, key[0],
                          **dict(zip(_SETTINGS[2:], key[2:])), n_threads=n_threads,
                          done=done, stop=stop)
               for key, indices in slots.items()}
    early = n_threads > 1 and threading.current_thread() is threading.main_thread()
    runs, started = [], {}
    monitor = BatchProgress(len(probs)) if progress else None
    if monitor is not None:
        monitor.watch(done)
    outside = threading.current_thread() is not threading.main_thread()
    if outside:  # no signal reaches this thread: the exit after one must stop it
        _exit_watch.add(stop)
    try:
        with single_threaded_blas:  # the starts and the solves, as fastnmf.nmf holds it
            for batch in batches.values() if early else ():
                runs.append(_Run(batch, first=not runs))
            for i, prob in enumerate(probs):
                batch = batches[keys[i]]
                try:  # as fastnmf.nmf starts; a dense nndsvd/nndsvda start only planned
                    e, work, W, H, seed, planned = start(prob, plan=True)
                except _ITEM_FAILURES as exc:  # a start that failed (the SVD did not converge)
                    results[i] = exc
                    batch.skip()
                    if monitor is not None:
                        monitor.add(1)
                    continue
                if planned:  # the compiled batch makes it, in its parallel loop
                    omega, power, fill = planned
                    Wt = aligned_empty((prob.k, prob.n), prob.dtype)
                    H = aligned_empty((prob.k, prob.m), prob.dtype)
                else:
                    omega, power, fill = None, -1, -1.0
                    Wt = np.ascontiguousarray(W.T)
                batch.add(operands(work.X), Wt, H, work.sqnorm,
                          (work.l1_W, work.l2_W, work.l1_H, work.l2_H), seed, omega, power,
                          fill)
                started[i] = (e, Wt, H)
            for batch in batches.values() if not early else ():
                runs.append(_Run(batch))
            for run in runs:
                run.wait()
    except BaseException:  # an interrupt among them: every item still running ends soon
        stop[0] = 1
        for run in runs:
            run.finish()
        raise
    finally:  # also when interrupted: the bar's thread stops, its line ends
        if outside:
            _exit_watch.discard(stop)
        if monitor is not None:
            monitor.close()
    if stop[0] and exiting_after_interrupt():  # stopped by _exit_watch
        raise KeyboardInterrupt
    for key, batch in batches.items():
        _collect(probs, slots[key], batch, started, results)
    return results


class _ExitWatch:
    """Stops the batches that run in threads other than the main one once a
    KeyboardInterrupt ends the main thread (_threads.exiting_after_interrupt): Python then
    waits for every such thread before it exits, and a batch's OpenMP loop cannot take the
    GIL to ask (fastnmf.nmf's loop asks itself). A daemon thread asks every _WAIT seconds
    while such a batch runs and sets its stop flag; it ends when none runs."""

    def __init__(self):
        self.lock = threading.Lock()
        self.stops = {}  # id -> the stop flag of a batch running outside the main thread
        self.thread = None

    def add(self, stop):
        with self.lock:
            self.stops[id(stop)] = stop
            if self.thread is None or not self.thread.is_alive():  # (or a forked child's)
                self.thread = threading.Thread(target=self._watch, name="fastnmf-exit",
                                               daemon=True)
                self.thread.start()

    def discard(self, stop):
        with self.lock:
            self.stops.pop(id(stop), None)

    def _watch(self):
        while True:
            time.sleep(_WAIT)
            with self.lock:
                if not self.stops:
                    self.thread = None
                    return
                if exiting_after_interrupt():
                    for stop in self.stops.values():
                        stop[0] = 1


_exit_watch = _ExitWatch()


# The solver settings one compiled batch shares (Problem attributes; the first two are the
# dtype and the solver, the others Batch's keyword arguments).
_SETTINGS = ("dtype", "solver", "max_iter", "tol", "update_H", "shuffle", "beta",
             "accelerate")


def _settings(prob):
    return tuple(getattr(prob, name) for name in _SETTINGS)


_ITEM_FAILURES = (ArithmeticError, np.linalg.LinAlgError, MemoryError)  # caught per item


def _collect(probs, indices, batch, started, results):
    """The results of a batch's items (or their failures) into ``results``."""
    n_iter, converged, histories, errs, status = batch.results()
    for j, i in enumerate(indices):
        if i not in started:  # its start failed: results[i] holds that
            continue
        e, Wt, H = started[i]
        try:
            if status[j] == STATUS_INIT_FAILED:
                raise np.linalg.LinAlgError("the SVD for NNDSVD did not converge")
            raise_for_status(int(status[j]), probs[i], int(n_iter[j]))
            results[i] = make_result(probs[i], e, np.ascontiguousarray(Wt.T), H, n_iter[j],
                                     converged[j], histories[j], errs[j])
        except _ITEM_FAILURES as exc:
            results[i] = exc


class _Run:
    """``batch.run()``: from the main thread in the helper thread (the only thread Python
    delivers signals to must stay free to take them: the batch's OpenMP loop cannot take
    the GIL to look, and the thread running it is one of its workers), from any other
    thread in the calling thread, at once.

    ``wait`` waits with the GIL released, a bounded wait at a time (interruptible on every
    platform): a KeyboardInterrupt (or any exception) raised meanwhile propagates, and the
    caller then sets the batch's stop flag and calls ``finish``, which waits for the items
    to end (a few tens of milliseconds of work each). With ``first`` (the helper is idle),
    the constructor returns once the batch is running without the GIL: the helper would
    otherwise wait for the GIL up to the interpreter's switch interval (5 ms) while this
    thread runs Python code."""

    def __init__(self, batch, first=False):
        self.error = None
        if threading.current_thread() is not threading.main_thread():
            self.done = None
            batch.run()  # an exception propagates at once: nothing else is running
            return
        self.done = threading.Event()
        entered = threading.Event() if first else None

        def task():
            try:
                with single_threaded_blas:  # a per-thread BLAS count is this thread's own
                    if entered is not None:
                        entered.set()  # seen by the waiting thread once run releases the GIL
                    batch.run()
            except BaseException as exc:  # handed to the waiting thread
                self.error = exc
            finally:
                if entered is not None:
                    entered.set()
                self.done.set()

        _helper.submit(task)
        if entered is not None:
            entered.wait()

    def wait(self):
        if self.done is not None:
            while not self.done.wait(_WAIT):  # a bounded wait: interruptible everywhere
                pass
        if self.error is not None:
            raise self.error

    def finish(self):
        """Wait for the run to end, whatever else is raised meanwhile."""
        while self.done is not None and not self.done.is_set():
            try:
                self.done.wait()
            except KeyboardInterrupt:  # another Ctrl-C: the stop is already on its way
                pass


# Seconds between two wake-ups of the main thread waiting for a batch.
_WAIT = 0.1


class _Helper:
    """The daemon thread that runs the main thread's batches, started on first use and
    reused: a new thread for each batch would also start a new OpenMP team for each (3-4 ms
    a call with two threads). Only the main thread submits; its batches run one after
    another."""

    def __init__(self):
        self.thread, self.tasks = None, None

    def submit(self, task):
        if self.thread is None or not self.thread.is_alive():  # also in a forked child
            self.tasks = queue.SimpleQueue()
            self.thread = threading.Thread(target=self._serve, args=(self.tasks,),
                                           name="fastnmf-batch", daemon=True)
            self.thread.start()
        self.tasks.put(task)

    @staticmethod
    def _serve(tasks):
        while True:
            tasks.get()()


_helper = _Helper()


def _run_on_executor(executor, items, n_components, kwargs, seeds, n_jobs, progress):
    """Run the items in chunks (a few per worker), gathered as they finish. A chunk whose
    task fails ends the run (nmf_batch's ``errors``); on any way out, an interrupt among
    them, what is still pending is cancelled."""
    count = len(items)
    chunk = max(1, math.ceil(count / 32))
    # Each run's tasks distinct: Dask names a task by its function and arguments, and hands
    # a run like an earlier one the earlier futures, a failed one's too (a retry after a
    # KilledWorker failed at once with it).
    run = secrets.token_hex(8)
    _STOPS[run] = np.zeros(1, dtype=np.intc)
    results = [None] * count
    spans = {}  # future -> (start, stop)
    failure = None
    monitor = BatchProgress(count) if progress else None
    try:
        for start in range(0, count, chunk):
            stop = min(start + chunk, count)
            try:
                future = executor.submit(_run_chunk, items[start:stop], n_components, kwargs,
                                         seeds[start:stop], n_jobs, start, run)
            except Exception as exc:  # a shut-down or broken executor
                failure = exc
                break
            spans[future] = (start, stop)
        pending = set(spans)
        if failure is not None:
            pending -= _cancel(pending)
        while pending:
            done, pending = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                start, stop = spans[future]
                if future.cancelled():
                    continue
                exc = future.exception()
                if exc is None:
                    results[start:stop] = future.result()
                else:
                    results[start:stop] = [exc] * (stop - start)
                    if failure is None:
                        failure = exc
                if monitor is not None:
                    monitor.add(stop - start)
            if failure is not None:
                pending -= _cancel(pending)
    finally:
        _cancel(spans)
        _STOPS.pop(run)[0] = 1  # what still runs in this process ends (an interrupt)
        if monitor is not None:
            monitor.close()
    return [failure if r is None else r for r in results]


# The stop flags of the runs on an executor, by run: a task that runs in this process (a
# ThreadPoolExecutor's) finds its run's here, so that the run's end, an interrupt among
# them, stops it too. Elsewhere (a process pool, a Dask worker) a task is cancelled or
# left to end.
_STOPS = {}


def _cancel(futures):
    """Cancel every future not yet finished (a running one too where the executor can:
    Dask's can, concurrent.futures' pools only those not started); returns those cancelled.
    They are not waited for: a cancelled future wakes ``wait`` only once its executor says
    so, and an executor whose task failed meanwhile (Dask's, when the cancel crosses a
    KilledWorker) never does."""
    return {future for future in futures if future.cancel()}


def _run_chunk(items, n_components, kwargs, seeds, n_jobs, start, run):
    """One executor task: a local batch on the worker (the threads it may use unless
    n_jobs says). ``run`` tells the runs' tasks apart, and in this process finds the
    run's stop flag (_STOPS)."""
    options = check_options(n_components, **kwargs)
    probs = [_check_item(start + i, X, n_components, kwargs, options, seeds[i])
             for i, X in enumerate(items)]
    return _run_local(probs, _resolve_n_jobs(-1 if n_jobs is None else n_jobs, len(probs)),
                      False, _STOPS.get(run))
