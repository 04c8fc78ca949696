"""Sweeps through the real CLI: summaries, experiments, launchers, faults."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliRun
from tests.servers import slurm_ready, unavailable
from tests.test_doc_commands import doc_commands
from tests.warm_cli import run_commands

pytestmark = pytest.mark.slow

Cli = Callable[..., CliRun]


def _sweep_dir(run: CliRun) -> Path:
    (jobs,) = run.cwd.glob("outputs/multirun/*/*/jobs.json")
    return jobs.parent


def _summary(run: CliRun) -> dict:
    return json.loads((_sweep_dir(run) / "summary.json").read_text())


def _rows(run: CliRun) -> list[dict]:
    return _summary(run)["rows"]


def test_a_parameter_sweep_summarises_and_plots_itself(cli: Cli) -> None:
    run = cli("-m", "scenario=basic", "scenario.inputs.x.value=range(-3,4)", "plots=false")
    assert run.returncode == 0, run.stderr
    rows = _rows(run)
    assert [r["job"] for r in rows] == list(range(7))
    assert [r["dy/dx"] for r in rows] == [2.0 * x for x in range(-3, 4)]
    # y finite and vs the float64 forward pass; dy/dx recorded, finite, vs SymPy, vs float64 differences
    assert all(r["status"] == "ok" and r["checks"] == "6 passed" for r in rows)
    sweep = _sweep_dir(run)
    assert _summary(run)["varying"] == "scenario.inputs.x.value"
    assert (sweep / "summary.png").stat().st_size > 10_000
    with (sweep / "summary.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [float(r["dy/dx"]) for r in table] == [2.0 * x for x in range(-3, 4)]
    md = (sweep / "summary.md").read_text()
    assert "[report](0_basic/report.html)" in md and "![summary.png](summary.png)" in md
    assert "job 7/7 done" in run.stderr + run.stdout


def test_watch_matrix_is_the_whole_table(cli: Cli) -> None:
    run = cli("experiment=watch_matrix")
    assert run.returncode == 0, run.stderr
    table = {}
    for row in _rows(run):
        params = dict(item.split("=", 1) for item in row["overrides"].split())
        key = (params["scenario.inputs.x.kind"], params["scenario.inputs.x.watch"].lower(),
               params["scenario.watch_accessed_variables"].lower())
        table[key] = row["dy/dx"]
        assert row["status"] == "ok"
    assert len(table) == 8
    for (kind, watch, auto), value in table.items():
        seen = watch == "true" or (kind == "variable" and auto == "true")
        assert value == (6.0 if seen else None), (kind, watch, auto)


def test_a_broken_job_is_an_error_beside_the_others_numbers(cli: Cli) -> None:
    run = cli("-m", "scenario.function=x**2,nope(x),x**3")
    assert run.returncode == 1
    rows = _rows(run)
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert rows[0]["dy/dx"] == 6.0 and rows[2]["dy/dx"] == pytest.approx(27.0)
    assert "unknown function 'nope'" in rows[1]["message"]
    assert (_sweep_dir(run) / "summary.html").is_file()


def test_every_job_failing_still_writes_the_summary(cli: Cli) -> None:
    run = cli("-m", "scenario.function=nope(x),x.y")
    assert run.returncode == 1
    assert [r["status"] for r in _rows(run)] == ["error", "error"]


def test_an_empty_sweep_says_so(cli: Cli) -> None:
    run = cli("-m", "scenario.inputs.x.value=range(0,0)")
    assert run.returncode == 1
    assert "the sweep has no jobs" in run.stderr + run.stdout
    assert _summary(run)["jobs"] == 0


def test_two_sweeps_started_together_do_not_collide(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-m", "runner", "-m", "scenario.function=nope(x)"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(2)]
    for proc in procs:
        proc.wait(timeout=120)
    assert len(list(tmp_path.glob("outputs/multirun/*/*/summary.json"))) == 2


def test_report_rebuilt_from_a_sweep_with_a_job_missing(cli: Cli) -> None:
    run = cli("-m", "scenario.inputs.x.value=1,2,3", "plots=false")
    sweep = _sweep_dir(run)
    shutil.rmtree(sweep / "1_basic")
    (sweep / "2_basic" / "results.json").unlink()
    (sweep / "summary.json").unlink()
    done = subprocess.run([sys.executable, "-m", "runner.cli.rebuild", str(sweep)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "job 1 missing" in done.stdout and "job 2 missing" in done.stdout
    rows = json.loads((sweep / "summary.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok", "missing", "missing"]
    assert rows[1]["overrides"].endswith("scenario.inputs.x.value=2 plots=False")


def test_rebuild_refuses_a_directory_that_is_neither(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "runner.cli.rebuild", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "neither" in done.stderr and "Traceback" not in done.stderr


def _comparable(rows: list[dict]) -> list[tuple]:
    return [(r["job"], r["overrides"], r["status"], r["checks"], r.get("dy/dx")) for r in rows]


LAUNCHER_SWEEP = ("-m", "scenario.inputs.x.value=1.5,2", "scenario.function=x**3*cos(x),nope(x)",
                  "plots=false")


@pytest.fixture(scope="module")
def basic_launcher_rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    cwd = tmp_path_factory.mktemp("basic-launcher")
    subprocess.run([sys.executable, "-m", "runner", *LAUNCHER_SWEEP], cwd=cwd, capture_output=True,
                   timeout=300)
    (summary,) = cwd.glob("outputs/multirun/*/*/summary.json")
    return json.loads(summary.read_text())["rows"]


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local", "submitit_slurm", "hydra_sweeper"])
def test_every_launcher_gives_the_same_summary(
    cli: Cli, basic_launcher_rows: list[dict], launcher: str
) -> None:
    """The default (basic launcher, compose-once sweeper) against every launcher, and Hydra's own sweeper."""
    if launcher == "submitit_slurm" and (reason := slurm_ready()):
        unavailable(reason)
    extra = {"joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
             "submitit_local": ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"],
             "submitit_slurm": ["hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=10"],
             "hydra_sweeper": ["hydra/sweeper=basic"]}[launcher]
    run = cli(*LAUNCHER_SWEEP, *extra, timeout=600)
    assert run.returncode == 1, run.stderr  # the nope(x) jobs are errors
    rows = _rows(run)
    assert [r["status"] for r in rows] == ["ok", "error", "ok", "error"]
    assert _comparable(rows) == _comparable(basic_launcher_rows)


#: docs/sweeps.md's launchers for this machine and for Slurm (its Ray commands: tests/test_ray.py).
PAGE_LAUNCHERS = [c for page, c in doc_commands()
                  if page == "sweeps.md" and "hydra/launcher=" in c and "hydra/launcher=ray" not in c]


def test_the_pages_launcher_commands_give_the_basic_launchers_summary(tmp_path: Path) -> None:
    """As written, each a process of its own forked from one that imported TensorFlow (tests/warm_cli.py)."""
    assert [c.split("hydra/launcher=")[1].split()[0] for c in PAGE_LAUNCHERS] == [
        "joblib", "submitit_local", "submitit_slurm"]
    if reason := slurm_ready():
        unavailable(reason)
    commands = ["tape-runner experiment=seed_tour", *PAGE_LAUNCHERS]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    runs = run_commands([(c, tmp_path / str(i)) for i, c in enumerate(commands)], env)
    summaries = []
    for command, index, done in zip(commands, range(len(commands)), runs, strict=True):
        assert done.returncode == 0, (command, done.stderr[-2000:])
        (summary,) = (tmp_path / str(index)).glob("outputs/multirun/*/*/summary.json")
        summaries.append(json.loads(summary.read_text())["rows"])
    basic, *launched = summaries
    assert [r["status"] for r in basic] == ["ok"] * 5 and basic[0]["dy/dx"] == 6.0  # x² at 3
    for command, rows in zip(PAGE_LAUNCHERS, launched, strict=True):
        assert _comparable(rows) == _comparable(basic), command
