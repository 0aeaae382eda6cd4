"""The row-block engine (one pass over X per iteration): same iterates as the two-pass loop
up to the order of additions, the same for every thread count, twin of the reference, and
used exactly where its rule says (docs/algorithms.md, "One pass over X")."""

import os
import platform
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

import fastnmf
import fastnmf._kernels as kernels
from fastnmf import _threads, reference
from fastnmf._kernels import _common, _solve

from conftest import SOLVERS, kernel_levels, narrow, run_at_level, setting

# Every Frobenius solver goes through the engine: the separable ones block by block, the
# others (accelerated cd, als, bpp) on a guess of their whole-factor decision, settled
# after the pass (docs/algorithms.md, "One pass over X").
ENGINE = [dict(solver=s) for s in SOLVERS] + [dict(solver="cd", accelerate=True)]
SPECULATIVE = [c for c in ENGINE
               if not fastnmf._registry.SOLVERS[c["solver"]].separable or c.get("accelerate")]


def case_id(case):
    return "-".join(str(v) if v is not True else k for k, v in case.items())


def engine_from(nbytes):
    return setting(_solve.engine_min_bytes, nbytes)


def data(n, m, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, 8)) @ rng.random((8, m)) + 0.1 * rng.random((n, m))).astype(dtype)


def fit(X, case, **kw):
    kw = {"init": "random", "random_state": 0, "max_iter": 30, "tol": 0, **case, **kw}
    return fastnmf.nmf(X, 6, **kw)


def ref(X, case, **kw):
    kw = {"init": "random", "random_state": 0, "max_iter": 30, "tol": 0, **case, **kw}
    return reference.nmf(X, 6, **kw)


def same(a, b):
    return (np.array_equal(a.W, b.W) and np.array_equal(a.H, b.H)
            and np.array_equal(a.history, b.history))


def rel(P, Q):
    return float(np.abs(P - Q).max() / np.abs(P).max())


VARIANTS = [{}, dict(shuffle=True, alpha_W=0.01, l1_ratio=0.5), dict(init="nndsvda")]


@pytest.mark.parametrize("variant", VARIANTS, ids=["plain", "shuffle-reg", "nndsvda"])
@pytest.mark.parametrize("case", ENGINE, ids=case_id)
def test_one_pass_equals_two_passes(case, variant):
    X = data(700, 500, np.float64)  # 2.8 MB: above ENGINE_MIN_BYTES
    assert X.nbytes >= _solve.engine_min_bytes()
    one = fit(X, case, **variant)
    with engine_from(np.inf):
        two = fit(X, case, **variant)
    assert not same(one, two)  # another path: the sums of Wᵀ X come in another order
    assert one.n_iter == two.n_iter
    assert rel(two.W, one.W) < 1e-10 and rel(two.H, one.H) < 1e-10
    np.testing.assert_allclose(one.history, two.history, rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ENGINE, ids=case_id)
def test_fortran_x_is_read_by_columns_in_one_pass(case, dtype):
    """A Fortran-ordered X is read once per iteration by its columns (H updated a block at a
    time): the two-pass iterates, its reference twin, any thread count."""
    X = np.asfortranarray(data(700, 500, dtype))
    kw = dict(shuffle=True, random_state=4, alpha_W=1e-3, l1_ratio=0.5)
    one = fit(X, case, **kw)
    with engine_from(np.inf):
        two = fit(X, case, **kw)
    assert not same(one, two)
    tol = 1e-10 if dtype == np.float64 else 1e-3
    assert rel(two.W, one.W) < tol and rel(two.H, one.H) < tol
    assert same(one, fit(X, case, n_threads=1, **kw))
    assert same(one, fit(X, case, n_threads=3, **kw))
    if dtype == np.float64:
        r = ref(X, case, **kw)
        assert rel(r.W, one.W) < 1e-9 and rel(r.H, one.H) < 1e-9


@pytest.mark.parametrize("case", ENGINE, ids=case_id)
def test_one_pass_float32_and_stopping(case):
    X = data(900, 700, np.float32)
    one = fit(X, case, tol=1e-3, max_iter=200)
    with engine_from(np.inf):
        two = fit(X, case, tol=1e-3, max_iter=200)
    assert abs(one.n_iter - two.n_iter) <= 2
    assert one.reconstruction_err == pytest.approx(two.reconstruction_err, rel=1e-4)


@pytest.mark.parametrize("case", ENGINE, ids=case_id)
def test_one_pass_is_the_same_on_every_thread_count(case):
    X = data(1100, 600, np.float64)
    runs = [fit(X, case, n_threads=t, shuffle=True, random_state=2) for t in (1, 2, 3)]
    assert same(runs[0], runs[1]) and same(runs[0], runs[2])


@pytest.mark.parametrize("case", ENGINE, ids=case_id)
def test_one_pass_matches_its_reference_twin(case):
    X = data(700, 500, np.float64)
    kw = dict(shuffle=True, random_state=1, max_iter=15)
    c = fit(X, case, **kw)
    r = ref(X, case, **kw)
    assert rel(r.W, c.W) < 1e-9 and rel(r.H, c.H) < 1e-9
    np.testing.assert_allclose(c.history, r.history, rtol=1e-10)


@pytest.mark.parametrize("case", ENGINE, ids=case_id)
def test_below_the_threshold_the_loop_is_unchanged(case):
    X = data(300, 200, np.float64)  # 0.48 MB
    assert X.nbytes < _solve.engine_min_bytes()
    a = fit(X, case)
    with engine_from(np.inf):
        b = fit(X, case)
    assert same(a, b)


CASES = ([dict(case, update_H=False) for case in ENGINE]
         + [dict(solver="mu", beta_loss="kullback-leibler")])


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_where_the_rule_says_no_engine_nothing_changes(case):
    case = dict(case)
    X = data(700, 500, np.float64)
    if not case.get("update_H", True):
        case.update(H=np.random.default_rng(3).random((6, 500)))
    with engine_from(0):
        a = fit(X, case)
    with engine_from(np.inf):
        b = fit(X, case)
    assert same(a, b)


def outcomes(X, case, monkeypatch, **kw):
    """The outcome of each W half-step's whole-factor decision, recorded from the reference
    run: the sweeps of accelerated cd; whether als takes its proposal (the lower of the two
    objectives it compares) and bpp its solution (no closing sweep)."""
    from fastnmf.reference import _als, _bpp, _cd

    solver, n, seen, calls = case["solver"], X.shape[0], [], []
    module = {"cd": _cd, "als": _als, "bpp": _bpp}[solver]
    watched = "half_objective" if solver == "als" else "hals_sweep"
    real_half, real_watched = getattr(module, solver + "_half"), getattr(module, watched)

    def watching(*args):
        value = real_watched(*args)
        calls.append(value)
        return value

    def half(F, A, B, l1, l2, rng, prob):
        calls.clear()
        violation = real_half(F, A, B, l1, l2, rng, prob)
        if F.shape[1] == n:
            if solver == "cd":
                seen.append(len(calls))
            elif solver == "als":
                seen.append(len(calls) == 2 and calls[0] < calls[1])
            else:
                seen.append(not calls)
        return violation

    monkeypatch.setattr(module, watched, watching)
    monkeypatch.setattr(module, solver + "_half", half)
    ref(X, case, **kw)
    monkeypatch.undo()
    return seen


@pytest.mark.parametrize("case", SPECULATIVE, ids=case_id)
def test_a_wrong_guess_is_settled_to_the_two_pass_iterates(case, monkeypatch):
    """The engine runs a whole-factor decision on a guess (the last outcome); the data
    here make the outcome change, so some guesses are wrong (for accelerated cd both
    ways: more sweeps than guessed, fewer), and the iterates are still the two-pass
    loop's."""
    X = data(700, 500, np.float64)
    kw = dict(max_iter=25, random_state=3)
    if case["solver"] == "cd":
        X = np.random.default_rng(5).random((700, 500))
    elif case["solver"] == "bpp":
        # a start whose last component lies where X is zero: the exact solve zeroes it,
        # so the first half-step closes with the sweep and the next ones take the solution
        rng = np.random.default_rng(1)
        X[:, 450:] = 0
        W, H = rng.random((700, 6)), rng.random((6, 500))
        H[5, :450] = 0
        kw.update(init="custom", W=W, H=H)
    seen = outcomes(X, case, monkeypatch, **kw)
    changes = [b for a, b in zip(seen, seen[1:]) if a != b]
    assert changes, seen
    if case["solver"] == "cd":
        rises = sum(b > a for a, b in zip(seen, seen[1:]))
        falls = sum(b < a for a, b in zip(seen, seen[1:]))
        assert rises and falls, seen
    one = fit(X, case, **kw)
    with engine_from(np.inf):
        two = fit(X, case, **kw)
    assert rel(two.W, one.W) < 1e-10 and rel(two.H, one.H) < 1e-10
    np.testing.assert_allclose(one.history, two.history, rtol=1e-10)


@pytest.mark.parametrize("case", SPECULATIVE, ids=case_id)
def test_speculative_float32_and_csc(case):
    # In float32 the two loops' different orders of addition in C differ by rounding,
    # which a solve amplifies by A's condition (als from a random start: 3.3e-3 after one
    # iteration on an AMD EPYC, within the 1e-3 this test used to ask on an Intel Xeon).
    # The engine's iterates must be as close to the float64 iterates as the two-pass
    # loop's are.
    def apart(P, Q):
        return max(rel(P.W, Q.W), rel(P.H, Q.H))

    for X, iters in ((data(900, 700, np.float32), 30),
                     (sparse_data(6000, 2000, 0.02, np.float32, "csc"), 10)):
        one = fit(X, case, max_iter=iters)
        with engine_from(np.inf):
            two = fit(X, case, max_iter=iters)
        exact = fit(X.astype(np.float64), case, max_iter=iters)
        assert apart(one, two) < 1e-2
        assert apart(one, exact) < 4 * apart(two, exact) + 1e-5, (apart(one, exact),
                                                                  apart(two, exact))


def sparse_data(n, m, density, dtype, fmt="csr"):
    X = sp.random(n, m, density=density, format=fmt, random_state=n, dtype=np.float64)
    return X.astype(dtype)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("case", ENGINE, ids=case_id)
def test_sparse_one_pass_equals_two_passes(case, fmt):
    X = sparse_data(6000, 2000, 0.02, np.float64, fmt)  # 2.9 MB of entries and indices
    kw = dict(shuffle=True, random_state=4, alpha_W=1e-4, l1_ratio=0.5)
    with engine_from(0):  # (by default a sparse X this small takes two passes)
        one = fit(X, case, **kw)
        runs = [fit(X, case, n_threads=t, **kw) for t in (1, 3)]
        r = ref(X, case, max_iter=10, **kw)
        c = fit(X, case, max_iter=10, **kw)
    with engine_from(np.inf):
        two = fit(X, case, **kw)
    assert np.abs(one.W).max() > 0.1  # the regularization left a factorization
    assert not same(one, two)
    assert rel(two.W, one.W) < 1e-10 and rel(two.H, one.H) < 1e-10
    np.testing.assert_allclose(one.history, two.history, rtol=1e-10)
    assert same(one, runs[0]) and same(one, runs[1])
    assert rel(r.W, c.W) < 1e-9 and rel(r.H, c.H) < 1e-9


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_sparse_x_takes_one_pass_from_eight_times_the_dense_threshold(dtype):
    """A sparse X goes through the engine from ENGINE_SPARSE_FACTOR (8) times a dense X's
    threshold, its entries and column indices counted: below, X and its transposed copy
    stay in a last-level cache and the two gathers of the two-pass loop beat the engine's
    gather and scatter. Either side runs one of the two loops unchanged, bit for bit."""
    size = np.dtype(dtype).itemsize + 4
    limit = 8 * _solve.engine_min_bytes()
    nnz = int(limit // size)
    for entries, engine in [(nnz - 50, False), (nnz + 50, True)]:
        X = sp.random(4000, 3000, density=entries / 12e6, format="csr", random_state=1,
                      dtype=np.float64).astype(dtype)
        X.data += 0.1
        assert (X.nnz * size >= limit) == engine, (X.nnz, nnz)
        assert _solve.reads_once("cd", 4000, 3000, np.dtype(dtype).itemsize, X.nnz, True, 2,
                                 False) == engine
        got = fit(X, dict(solver="cd"), max_iter=3)
        with engine_from(0 if engine else np.inf):
            forced = fit(X, dict(solver="cd"), max_iter=3)
        with engine_from(np.inf if engine else 0):
            other = fit(X, dict(solver="cd"), max_iter=3)
        assert same(got, forced) and not same(got, other)


def test_sparse_one_pass_never_makes_the_transpose(monkeypatch):
    """Read by rows only, a sparse X's transposed copy is not made (a call adds less
    memory), neither by the loop nor by the nndsvd start's products; where the loop needs
    it, it is, by the start too (the two copies are not held at once)."""
    from fastnmf import _init

    made = []
    real = _init._sparse_operands
    monkeypatch.setattr(_init, "_sparse_operands",
                        lambda X, columns: made.append(columns) or real(X, columns))
    X = sparse_data(6000, 2000, 0.09, np.float32)  # 8.6 MB of entries and indices
    assert X.nnz * 8 >= 8 * _solve.engine_min_bytes()
    for case in ENGINE:
        fit(X, case)
    fit(X, dict(solver="cd", init="nndsvda"))  # the start's products, then the loop
    assert made == [False] * (len(ENGINE) + 2)
    made.clear()
    fit(X, dict(solver="cd", update_H=False, H=np.ones((6, 2000), np.float32)))
    fit(X[:300], dict(solver="cd"))  # below the threshold: two passes
    fit(X[:300], dict(solver="cd", init="nndsvda"))
    assert made == [True, True, True, True]


def test_the_kernel_refuses_a_missing_transpose_where_it_needs_it():
    from fastnmf._api import operands

    X = sparse_data(300, 200, 0.05, np.float64)  # below the threshold: two passes
    Wt, H = np.ones((3, 300)), np.ones((3, 200))
    with pytest.raises(ValueError, match="Xᵀ's CSR is needed"):
        _solve.solve("cd", operands(X, columns=False), Wt, H, 1.0, max_iter=2, tol=0,
                     l1_W=0, l2_W=0, l1_H=0, l2_H=0, update_H=True, shuffle=False, seed=0)


def test_engine_plan_covers_the_rows_in_slabs():
    for n, m, k, size, nnz in [(8000, 4000, 20, 4, -1), (100, 5000, 2, 8, -1),
                               (65, 10, 30, 8, -1), (20000, 5000, 30, 8, 1e6),
                               (10, 10, 3, 4, 0)]:
        rows, slabs = _solve.engine_plan(n, m, k, size, nnz)
        assert 1 <= rows <= n and 1 <= slabs <= -(-n // rows)


@pytest.mark.parametrize("solver, accelerate", [("cd", False), ("cd", True), ("als", False),
                                                ("bpp", False), ("mu", False)])
def test_a_dense_call_adds_a_tenth_of_x_at_most(solver, accelerate):
    """Issue 9's memory case (float32 8000 × 4000, k = 40, the default start): what a call
    adds besides the W and H it returns stays under a tenth of X's size for every solver.
    Through the engine, nothing but W itself is k × n: the first loss's product, the formed
    error and a speculative solver's redo use the slabs' scratch between passes (bpp added
    0.12 of X when they had k × max(n, m) arrays of their own)."""
    import tracemalloc

    X = data(8000, 4000, np.float32)
    assert _solve.reads_once(solver, 8000, 4000, 4, -1, True, 2, accelerate)
    tracemalloc.start()
    try:
        res = fastnmf.nmf(X, 40, solver=solver, accelerate=accelerate, max_iter=3, tol=0,
                          random_state=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.isfinite(res.reconstruction_err)
    assert peak - res.W.nbytes - res.H.nbytes < 0.1 * X.nbytes, peak / X.nbytes


# -- how a dense float32 X's products are formed (_common.rows_first) --------------------


def rows_first(value):
    return setting(_common.rows_first, value)


def test_the_products_follow_the_blas_kernels():
    """Set at import from the kernels of the BLAS scipy calls and the CPU: with OpenBLAS's
    Haswell kernels a float32 X's rows first, and the narrow products where the CPU has
    AVX2 and FMA at least (whichever level FASTNMF_CPU takes: the same bits at every
    level), on any X, for k up to 128 with AVX-512 and up to NARROW_MAX_K_16 without; with
    its SkylakeX kernels the narrow products on the same CPUs, but not on a small X of the
    two-pass loop (narrow_small); the usual way with other kernels (OPENBLAS_CORETYPE
    picks them)."""
    haswell = _threads.haswell_kernels()
    skylakex = _threads.skylakex_kernels()
    wide = kernels._runs("x86_64_v4")
    avx2 = kernels._runs("x86_64_v3")
    max_k = 128 if wide else kernels.NARROW_MAX_K_16
    assert _common.rows_first() == haswell and _common.narrow_small() == haswell
    assert _common.narrow_kernels() == ((haswell or skylakex) and avx2)
    assert _common.narrow_max_k() == max_k
    if _threads.blas_kernels() is None or platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("scipy's BLAS is not an x86-64 OpenBLAS: no kernels to choose")
    code = ("import fastnmf._kernels._common as c, fastnmf._threads as t; "
            "print(t.blas_kernels(), c.rows_first(), c.narrow_kernels(), c.narrow_small(), "
            "c.narrow_max_k())")
    # (core type, rows first, narrow kernels where the CPU has AVX2, on a small X too)
    runs = [("Haswell", True, True, True, None), ("Sandybridge", False, False, False, None)]
    if wide:  # (OpenBLAS refuses a core type the CPU cannot run, and takes its own)
        runs.append(("SkylakeX", False, True, False, None))
    if kernels._built("x86_64_v3") and kernels.LEVEL != "baseline":
        runs.append(("Haswell", True, True, True, "x86_64_v3"))
    for coretype, rows, narrowed, small, level in runs:
        env = {**os.environ, "OPENBLAS_CORETYPE": coretype}
        if level:
            env["FASTNMF_CPU"] = level
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=300, check=True).stdout.split()
        assert out == [coretype.lower(), str(rows), str(narrowed and avx2), str(small),
                       str(max_k)]


@pytest.mark.parametrize("value", [False, True])
def test_the_pass_forms_wt_x_either_way(value):
    """The engine's sum Wᵀ X of a float32 X, from its accumulators in either layout."""
    rng = np.random.default_rng(4)
    X = data(300, 200, np.float32)
    Wt, H = rng.random((6, 300), dtype=np.float32), rng.random((6, 200), dtype=np.float32)
    A = H @ H.T
    with rows_first(value), narrow(False):
        C, _, _ = _solve.block_pass("cd", X, Wt, H, A, np.arange(6), 0.0, 0.0, mode="c")
    np.testing.assert_allclose(C, Wt.astype(np.float64) @ X.astype(np.float64), rtol=2e-6)


@pytest.mark.parametrize("fortran", [False, True], ids=["C", "F"])
@pytest.mark.parametrize("loop", [0, np.inf], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("case", ENGINE, ids=case_id)
def test_float32_rows_first_changes_the_rounding_only(case, loop, fortran):
    X = data(700, 500, np.float32)
    X = np.asfortranarray(X) if fortran else X
    with engine_from(loop), narrow(False):
        with rows_first(False):
            usual = fit(X, case)
        with rows_first(True):
            rows = fit(X, case)
        runs = [fit(X, case, n_threads=t, shuffle=True) for t in (1, 2, 3)]
    if _threads.haswell_kernels():
        # X's products are other BLAS calls, which with the Haswell kernels sum otherwise
        # (with the SkylakeX ones, on an AVX-512 CPU, both orders give the same bits here)
        assert not same(usual, rows)
    assert rows.n_iter == usual.n_iter
    assert rows.reconstruction_err == pytest.approx(usual.reconstruction_err, rel=1e-4)
    assert rel(usual.W @ usual.H, rows.W @ rows.H) < 1e-3
    assert same(runs[0], runs[1]) and same(runs[0], runs[2])


@pytest.mark.parametrize("case", ENGINE, ids=case_id)
def test_float64_products_are_formed_the_usual_way_whatever_the_kernels(case):
    X = data(700, 500, np.float64)
    for loop in (0, np.inf):
        with engine_from(loop):
            with rows_first(False):
                usual = fit(X, case)
            with rows_first(True):
                rows = fit(X, case)
        assert same(usual, rows)


# -- the engine's products in registers (_narrow.pxi) ----------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_narrow_products_match_numpy(dtype):
    """H X_bᵀ and F X_b (added, or set) for blocks with every kind of tail: rows past a
    multiple of 4, k past a multiple of 4, m past a multiple of the lanes, rows of several
    pieces (NARROW_PIECE_BYTES: 512 float64, 1024 float32 entries) and a piece's tail, and
    F X_b over several bands of rows (NARROW_BAND_BYTES: 256 rows of a float64 piece) with
    a short last band. Where the build has 32 vector registers H X_bᵀ takes 6 rows of X_b
    at a time (dots6x4): w = 7, 8, 9, 64, 65 end with a group that overlaps the one
    before by 1 to 5 rows; and F X_b 5 rows of F at a time (narrow_strip5): k = 6, 7, 8,
    9, 13 end with a strip that overlaps the one before by 4 to 1 rows; and with k = 5
    and 9, H X_bᵀ 5 rows of H at a time (dots4x5), the second block of k = 9
    overlapping the first by one row."""
    rng = np.random.default_rng(5)
    lanes = 16 if dtype == np.float32 else 8
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for w, m, k in [(4, 4 * lanes, 4), (5, 4 * lanes + 1, 5), (7, 5 * lanes - 1, 7),
                    (64, 100, 13), (65, 1000, 40), (3, 4 * lanes, 8), (1, 70, 6),
                    (9, 2100, 6), (700, 1100, 6), (8, 1100, 9), (11, 1030, 5)]:
        X = rng.random((w, m)).astype(dtype)
        if w >= 4:
            H = rng.random((k, m)).astype(dtype)
            out = np.full((k, w), np.nan, dtype)
            _common.narrow_hook(X, H, out, False)
            np.testing.assert_allclose(out, H.astype(float) @ X.T.astype(float), rtol=tol)
        F = rng.random((k, w)).astype(dtype)
        acc = rng.random((k, m)).astype(dtype)
        expected = acc.astype(float) + F.astype(float) @ X.astype(float)
        _common.narrow_hook(X, F, acc, True, False)
        np.testing.assert_allclose(acc, expected, rtol=tol)
        acc = np.full((k, m), np.nan, dtype)
        _common.narrow_hook(X, F, acc, True, True)
        np.testing.assert_allclose(acc, F.astype(float) @ X.astype(float), rtol=tol)
    with pytest.raises(ValueError, match="k >= 4"):
        _common.narrow_hook(X, F[:3], acc[:3], True)


# The narrow products of test_the_narrow_products_match_numpy's shapes and more, hashed
# bit for bit: each level forms them with its own blocks (x86-64-v4: 6 or 4 rows of X by 4
# or 5 of H, strips of 4 or 5 rows by 4 vectors; x86-64-v3: 3 rows of X by 2 of H, strips
# of 4 rows by one vector, from _narrow16.h; the baseline: 4 by 4), every tail included.
NARROW_CHILD = r"""
import hashlib
import numpy as np
import fastnmf._kernels as kernels
from fastnmf._kernels import _common
digest = hashlib.sha256()
rng = np.random.default_rng(6)
for dtype in (np.float64, np.float32):
    lanes = 16 if dtype == np.float32 else 8
    for w, m, k in [(4, 4 * lanes, 4), (5, 4 * lanes + 1, 5), (6, 4 * lanes + 3, 6),
                    (7, 5 * lanes - 1, 7), (8, 9 * lanes + 5, 9), (64, 100, 13),
                    (65, 1000, 40), (1, 70, 6), (9, 2100, 11), (300, 1100, 6),
                    (11, 1030, 5), (10, 4 * lanes + 1, 128)]:
        X = rng.random((w, m)).astype(dtype)
        H = rng.random((k, m)).astype(dtype)
        F = rng.random((k, w)).astype(dtype)
        acc = rng.random((k, m)).astype(dtype)
        if w >= 4:
            out = np.empty((k, w), dtype)
            _common.narrow_hook(X, H, out, False)
            digest.update(out.tobytes())
        _common.narrow_hook(X, F, acc, True, False)
        digest.update(acc.tobytes())
        _common.narrow_hook(X, F, acc, True, True)
        digest.update(acc.tobytes())
print(kernels.LEVEL, digest.hexdigest())
"""


def test_every_level_forms_the_narrow_products_alike():
    """Whichever blocks a level's narrow kernels take (the number of vector registers
    decides), each sum is formed the same way: the same bits at every level this build
    holds and this CPU runs."""
    levels = kernel_levels()
    if len(levels) == 1:
        pytest.skip("this build holds one level for this CPU")
    digests = {}
    for level in levels:
        chosen, digests[level] = run_at_level(NARROW_CHILD, level)
        assert chosen == level
    assert len(set(digests.values())) == 1, digests


@pytest.mark.parametrize("loop", [0, np.inf], ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("fortran", [False, True], ids=["C", "F"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ENGINE, ids=case_id)
def test_the_narrow_products_change_the_rounding_only(case, dtype, fortran, loop):
    """Through the engine's blocks and the two-pass loop's products (whole, or in chunks
    of columns shared among threads: one thread, two and three give the same bits)."""
    X = data(700, 500, dtype)
    X = np.asfortranarray(X) if fortran else X
    with engine_from(loop):
        with narrow(False):
            blas = fit(X, case)
        with narrow(True):
            own = fit(X, case)
            runs = [fit(X, case, n_threads=t, shuffle=True) for t in (1, 2, 3)]
    assert not same(blas, own)
    assert own.n_iter == blas.n_iter
    if dtype == np.float64:
        assert rel(blas.W, own.W) < 1e-10 and rel(blas.H, own.H) < 1e-10
    else:  # (als carries float32 rounding furthest: 2e-4 of the error in 30 iterations)
        assert own.reconstruction_err == pytest.approx(blas.reconstruction_err, rel=1e-3)
    assert same(runs[0], runs[1]) and same(runs[0], runs[2])


def test_the_narrow_products_take_small_k_and_blocks_only():
    """k below 4 or above NARROW_MAX_K (128 with AVX-512, NARROW_MAX_K_16 = 20 with AVX2
    alone) goes to BLAS as before; so does a last block shorter than 4 rows (its H X_bᵀ),
    on the same layout."""
    X = data(700, 500, np.float64)
    for k, max_k in ((3, 128), (129, 128), (21, 20), (20, 20)):
        with engine_from(0):
            with narrow(False):
                a = fastnmf.nmf(X, k, init="random", random_state=0, max_iter=5, tol=0)
            with narrow(True), setting(_common.narrow_max_k, max_k):
                b = fastnmf.nmf(X, k, init="random", random_state=0, max_iter=5, tol=0)
        assert same(a, b) == (k > max_k or k < 4)
    rows, _ = _solve.engine_plan(651, 500, 6, 8)
    assert 0 < 651 % rows < 4  # a last block of fewer than 4 rows
    Y = data(651, 500, np.float64)
    with engine_from(0), narrow(True):
        c = fit(Y, {})
    with engine_from(np.inf):
        d = fit(Y, {})
    assert rel(d.W, c.W) < 1e-10 and rel(d.H, c.H) < 1e-10


# (n, m, dtype, whether the narrow kernels take a tiny X kept in both orders): one side at
# least 4·lanes long (32 float64, 64 float32) and n·m·6 within OTHER_ORDER_WORK (32768),
# or not.
TINY = [(50, 30, np.float64, True), (30, 50, np.float64, True), (200, 20, np.float32, True),
        (31, 31, np.float64, False), (50, 30, np.float32, False), (300, 20, np.float64, False)]


@pytest.mark.parametrize("fortran", [False, True], ids=["C", "F"])
@pytest.mark.parametrize("n, m, dtype, taken", TINY,
                         ids=[f"{n}x{m}-{np.dtype(d).name}" for n, m, d, _ in TINY])
@pytest.mark.parametrize("case", ENGINE, ids=case_id)
def test_a_tiny_x_in_both_orders_takes_the_narrow_kernels(case, n, m, dtype, taken,
                                                          fortran):
    """A tiny X kept in both orders (the two-pass loop's other_order) has each product
    formed by the narrow kernels on the layout that suits it (narrow_both) where one of
    its sides is long enough: the rounding changes and nothing else, against BLAS and
    against the reference solver; with both sides short, or past the copy's size, BLAS
    forms them as before (the same bits)."""
    X = data(n, m, dtype)
    X = np.asfortranarray(X) if fortran else X
    with narrow(False):
        blas = fit(X, case)
    with narrow(True):
        own = fit(X, case)
    assert same(blas, own) != taken
    assert own.n_iter == blas.n_iter
    tol = 1e-10 if dtype == np.float64 else 1e-3
    assert rel(blas.W, own.W) < tol and rel(blas.H, own.H) < tol
    expected = ref(X.astype(np.float64), case)
    assert rel(expected.W, own.W) < tol and rel(expected.H, own.H) < tol


# (n, m, k): n·m·k at SMALL_BLAS_WORK (1e6) and just past it.
SMALL_EDGE = [(250, 200, 20), (250, 201, 20)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fortran", [False, True], ids=["C", "F"])
@pytest.mark.parametrize("n, m, k", SMALL_EDGE, ids=[f"{n}x{m}-k{k}" for n, m, k in SMALL_EDGE])
def test_without_narrow_small_a_small_x_stays_with_blas(n, m, k, dtype, fortran):
    """With narrow_small unset (the SkylakeX kernels), the two-pass loop leaves an X of
    n·m·k <= SMALL_BLAS_WORK to BLAS (the bits of the narrow kernels off) and takes the
    narrow kernels past it (the bits of narrow_small set), on both sides of the edge; the
    engine's blocks take them either way (with a small X, some of its products of the
    whole X may not)."""
    X = data(n, m, dtype)
    X = np.asfortranarray(X) if fortran else X
    kw = dict(init="random", random_state=0, max_iter=10, tol=0)
    runs = {}
    for loop in (0, np.inf):
        with engine_from(loop):
            with narrow(False):
                blas = fastnmf.nmf(X, k, **kw)
            with narrow(True):
                own = fastnmf.nmf(X, k, **kw)
                with setting(_common.narrow_small, False):
                    large_only = fastnmf.nmf(X, k, **kw)
        assert not same(blas, own)
        runs[loop] = (blas, own, large_only)
    blas, own, large_only = runs[np.inf]
    small = n * m * k <= 1e6
    assert same(large_only, blas if small else own)
    blas, own, large_only = runs[0]
    assert not same(large_only, blas)
    if not small:
        assert same(large_only, own)
