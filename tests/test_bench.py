"""``make bench`` runs: its harness, on one repetition of its cheapest rows, prints their table.

The figures themselves are noise at one repetition on a shared machine (the benchmark's own targets are
judged at five or more); what is tested is that the rows are measured and reported against their baselines,
and that a short run leaves benchmarks/results.md alone.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_the_benchmark_reports_the_warm_api_rows_against_the_hand_written_cell() -> None:
    stored = (ROOT / "benchmarks" / "results.md").read_text()
    done = subprocess.run([sys.executable, "benchmarks/run.py", "--reps", "1", "--only", "notebook", "cli"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {cells[0]: cells[1:] for line in done.stdout.splitlines()
            if (cells := [c.strip() for c in line.strip("|").split("|")]) and len(cells) == 7}
    for name in ("notebook: warm run('basic'), nothing written, vs a hand-written cell",
                 "notebook: warm run('basic') with a new x on every call (a slider)",
                 "CLI: --help (no TensorFlow)"):
        unit, runner, baseline, ratio, target, met = rows[name]
        assert unit == "s" and re.fullmatch(r"[<>≤≥] [\d.]+", target) and met in ("yes", "**no**"), rows[name]
        medians = [float(side.split(" / ")[1]) for side in (runner, baseline)]
        assert all(m > 0 for m in medians)
        assert float(ratio) == pytest.approx(medians[0] / medians[1], rel=0.02)  # 3 digits shown
    assert (ROOT / "benchmarks" / "results.md").read_text() == stored
