"""The scripts in examples/ run, as a user runs them, and print what they promise.

Each script runs in a subprocess (``sys.executable examples/<name>.py [--quick]``, from
the repository root), so a warning in a script is printed, not raised as pytest's
``filterwarnings = error`` would; the checks are on the exit status and the output.
"""

import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn", reason="the examples use scikit-learn")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 300  # seconds; a first import may rebuild the compiled kernels


def run_example(name, *args):
    """stdout of ``examples/<name>`` run with ``args``; fails the test on a non-zero exit,
    showing both streams."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, (
        f"{name} {' '.join(args)} exited with status {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )
    return proc.stdout


def _float_after(label, text):
    match = re.search(rf"{label}\s*([-+0-9.eE]+|nan|inf)", text)
    assert match, f"no {label!r} line in the output:\n{text}"
    return float(match.group(1))


def test_topics_kullback_leibler():
    out = run_example("topics.py")  # the whole corpus: a few seconds
    # The real thing: multiplicative updates under the KL divergence, not a fallback.
    assert "beta_loss='kullback-leibler'" in out, out
    topics = re.findall(r"^topic\s+(\d+): (.+)$", out, flags=re.MULTILINE)
    word_lines = [words.split() for _, words in topics[:10]]
    assert [int(t) for t, _ in topics[:10]] == list(range(1, 11)), out
    for words in word_lines:
        assert len(words) == 8 and all(w.isalpha() for w in words), out
    # Distinct topics, not ten copies of one (the sign of a stalled or degenerate fit).
    assert len({w for words in word_lines for w in words}) >= 40, out
    err, start = (float(x) for x in re.search(
        r"reconstruction error: (\S+) \(at the start: (\S+)\)", out).groups())
    assert math.isfinite(err) and 0 < err < start, out


def test_digits_parts():
    out = run_example("digits_parts.py", "--quick")
    # 16 parts in two rows of 8, each part 8 lines of 16 characters (a pixel is drawn two
    # characters wide) under a "+----+" rule.
    lines = out.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("+--------------+")]
    assert len(rules) == 2, out
    for i in rules:
        assert lines[i] == "  ".join(["+" + "-" * 14 + "+"] * 8), out
        for art in lines[i + 1:i + 9]:
            assert re.fullmatch(r"(?:[ .:\-=+*#%@]{16}  ){7}[ .:\-=+*#%@]{16}", art), out
    ours = re.search(r"^fastnmf\.sklearn\.NMF\s+\S+ ms\s+(\d+)\s+(\S+)\s+(\S+)$", out, re.MULTILINE)
    theirs = re.search(r"^sklearn\.decomposition\.NMF\s+\S+ ms\s+(\d+)\s+(\S+)\s+(\S+)$",
                       out, re.MULTILINE)
    assert ours and theirs, out
    err_ours, err_theirs = float(ours.group(2)), float(theirs.group(2))
    assert err_ours == pytest.approx(_float_after("reconstruction error:", out), rel=1e-5)
    # Both reach a comparable fit of the digits (relative error about 0.26); they start
    # from slightly different NNDSVDa factors, so not from exactly the same point.
    assert 0.2 < float(ours.group(3)) < 0.3, out
    assert err_ours == pytest.approx(err_theirs, rel=0.02), out


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="--plot needs matplotlib")
def test_digits_parts_plot(tmp_path):
    png = tmp_path / "parts.png"
    out = run_example("digits_parts.py", "--quick", "--plot", str(png))
    assert f"wrote {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
