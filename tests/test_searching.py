"""Sweepers that search: a job returns its objective, and Optuna finds sigmoid's steepest point."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import CliRun

Cli = Callable[..., CliRun]


def _sigmoid_slope(x: float) -> float:
    s = 1.0 / (1.0 + math.exp(-x))
    return s * (1.0 - s)


@pytest.mark.slow
def test_optuna_maximises_the_derivative_of_sigmoid(cli: Cli) -> None:
    run = cli("-m", "hydra/sweeper=optuna", "scenario.function=sigmoid(x)",
              "scenario.inputs.x.value=interval(-3,3)", "objective=dy/dx",
              "hydra.sweeper.direction=maximize", "hydra.sweeper.n_trials=20")
    assert run.returncode == 0, run.stderr
    (found,) = run.cwd.glob("outputs/multirun/*/*/optimization_results.yaml")
    sweep = found.parent
    best = yaml.safe_load(found.read_text())
    x = best["best_params"]["scenario.inputs.x.value"]
    assert abs(x) < 0.5 and best["best_value"] > _sigmoid_slope(0.5)  # sigmoid' peaks at 0.25, at x = 0
    assert best["best_value"] == pytest.approx(_sigmoid_slope(x), rel=1e-5)

    # No job list: the summary has every trial, in the order they finished, with its numbers.
    assert not (sweep / "jobs.json").exists()
    summary = json.loads((sweep / "summary.json").read_text())
    rows = summary["rows"]
    assert len(rows) == 20 and all(r["status"] == "ok" for r in rows)
    assert [r["job"] for r in rows] == list(range(20))  # the basic launcher runs trials one after another
    for row in rows:
        value = float(next(o for o in row["overrides"].split() if o.startswith("scenario.inputs.x.value="))
                      .split("=", 1)[1])
        assert row["dy/dx"] == pytest.approx(_sigmoid_slope(value), rel=1e-5)
    assert max(r["dy/dx"] for r in rows) == best["best_value"]
    assert "job 20 done" in run.stderr + run.stdout
    # The console carries the sweep's lines, not Optuna's storage set-up or its study line twice.
    assert "setup plugin alembic" not in run.stderr + run.stdout
    assert "A new study created" not in run.stderr + run.stdout and "Study name:" in run.stderr + run.stdout


@pytest.mark.slow
def test_an_objective_that_is_not_there_fails_the_sweep(cli: Cli) -> None:
    run = cli("-m", "scenario=sigmoid", "objective=dy/dx,max_check_error", "plots=false", "report=false")
    assert run.returncode == 1  # dy/dx of sigmoid is a curve, not a number
    console = run.stdout + run.stderr
    assert console.count("objective dy/dx: no value, it is not a finite scalar here") == 1
    assert "objective max_check_error" not in console and "Traceback" not in console


def test_without_a_job_list_rows_follow_completion(tmp_path: Path) -> None:
    import os

    from runner.outputs import summary

    for num, finished in ((0, 2_000_000_000), (1, 1_000_000_000), (2, 1_500_000_000)):
        job = tmp_path / f"{num}_basic"
        job.mkdir()
        (job / "results.json").write_text(json.dumps({
            "status": "ok", "gradients": {"dy/dx": float(num)}, "checks": [
                    {"name": "dy/dx vs SymPy", "passed": True, "max_abs_err": 0.0, "tol": 1e-6}],
            "job": {"overrides": [f"scenario.inputs.x.value={num}"]}}))
        os.utime(job / "results.json", (finished, finished))
    (tmp_path / "3_basic" / ".hydra").mkdir(parents=True)  # started, never finished
    rows = summary.write(tmp_path).rows
    assert [(r["job"], r["status"]) for r in rows] == [(1, "ok"), (2, "ok"), (0, "ok"), (3, "missing")]
