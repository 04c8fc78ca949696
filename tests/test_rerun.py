"""Reruns from a run's snapshot, and resuming a sweep whose jobs were lost."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.cli import rerun
from runner.cli.main import CONFIG_DIR
from runner.errors import ConfigError
from runner.jobs.snapshot import PROJECT_HYDRA, rerun_arguments
from tests.conftest import saved_config

BIN = Path(sys.executable).parent
ENV = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"},
       "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(exist_ok=True)
    return subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def _only_run(cwd: Path) -> Path:
    (results,) = cwd.glob("outputs/*/*/results.json")
    return results.parent


@pytest.mark.slow
def test_run_rerun_and_rerun_of_the_rerun_are_bit_identical(tmp_path: Path) -> None:
    first = _run(["tape-runner", "scenario.function=x*y + sin(x)", "+scenario.inputs.y.value=2",
                  "scenario.inputs.x.value=0.7"], tmp_path / "a")
    assert first.returncode == 0, first.stderr
    original = _only_run(tmp_path / "a")

    # From another directory, with the path relative to it, as a user types it.
    relative = os.path.relpath(original / ".hydra", tmp_path / "b")
    second = _run(["tape-runner", "--config-path", relative, "--config-name", "config"], tmp_path / "b")
    assert second.returncode == 0, second.stderr
    rerun_dir = _only_run(tmp_path / "b")

    # The rerun's own printed command, word for word, from a third directory.
    rerun_record = json.loads((rerun_dir / "results.json").read_text())
    third = _run(shlex.split(rerun_record["rerun_command"]), tmp_path / "c")
    assert third.returncode == 0, third.stderr
    # The short form, on the rerun of the rerun.
    fourth = _run(["tape-runner-report", str(_only_run(tmp_path / "c")), "--rerun"], tmp_path / "d")
    assert fourth.returncode == 0, fourth.stderr

    records = [json.loads((_only_run(tmp_path / d) / "results.json").read_text()) for d in "abcd"]
    assert records[0]["gradients"] == {"df/dx": pytest.approx(2 + math.cos(0.7)), "df/dy": pytest.approx(0.7)}
    for record in records[1:]:
        for key in ("gradients", "inputs", "values", "checks", "config", "command"):
            assert record[key] == records[0][key], key
        assert record["status"] == "ok"
    # Each rerun is a run like any other: the project's naming, log, callbacks and command.
    assert records[0]["command"] == "tape-runner \"scenario.function='x*y + sin(x)'\" " \
                                    "+scenario.inputs.y.value=2 scenario.inputs.x.value=0.7"
    for d in "bcd":
        run_dir = _only_run(tmp_path / d)
        assert re.fullmatch(r"\d\d-\d\d-\d\d-\d{6}_basic", run_dir.name), run_dir
        assert (run_dir / "tape-runner.log").is_file()
        hydra = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]
        assert hydra["callbacks"]["runner"]["_target_"] == "runner.jobs.callbacks.RunnerCallback"
        assert yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) == \
            records[0]["job"]["overrides"]
        report = (run_dir / "report.md").read_text()
        assert records[0]["command"] in report and f"--config-path {run_dir.resolve()}/.hydra" in report


#: A run's scenario saved while ``persistent`` was a routine of its own, as its .hydra/config.yaml held it.
OLD_PERSISTENT = """\
scenario:
  name: persistent
  routine: persistent
  description: A persistent tape (persistent=True) keeps its record after tape.gradient.
  inputs:
    x:
      value: 3.0
      kind: variable
      watch: false
  targets:
    'y': x**2
    z: y**2
  persistent: false
  watch_accessed_variables: true
"""


#: The same while ``jacobian`` was (its batch_jacobian at 8 seeded points is not kept).
OLD_JACOBIAN = """\
scenario:
  name: jacobian
  routine: jacobian
  description: The Jacobian of F, one row per output and one column per input.
  inputs:
    x:
      value: 1.0
    'y':
      value: 2.0
    z:
      value: 0.5
  outputs:
    f: x*y*z
    g: sin(x) + y**2 - exp(z)
  batch: 8
"""


def _rerun_as_saved_by(old: str, tmp_path: Path) -> dict[str, Any]:
    """results.json of a run whose .hydra/config.yaml holds the ``old`` scenario, rerun from there."""
    first = _run(["tape-runner", "scenario=persistent"], tmp_path / "a")
    assert first.returncode == 0, first.stderr
    config = _only_run(tmp_path / "a") / ".hydra" / "config.yaml"
    saved = yaml.safe_load(config.read_text())
    saved["scenario"] = yaml.safe_load(old)["scenario"]
    config.write_text(yaml.safe_dump(saved))
    again = _run(["tape-runner", "--config-path", str(config.parent), "--config-name", "config"],
                 tmp_path / "b")
    assert again.returncode == 0, again.stderr
    record: dict[str, Any] = json.loads((_only_run(tmp_path / "b") / "results.json").read_text())
    assert record["status"] == "ok"
    return record


@pytest.mark.slow
def test_a_jacobian_run_saved_by_its_former_routine_reruns_as_its_program(tmp_path: Path) -> None:
    record = _rerun_as_saved_by(OLD_JACOBIAN, tmp_path)
    columns = [record["gradients"][f"dF/d{s}"] for s in ("x", "y", "z")]
    want = [[1.0, 0.5, 2.0], [math.cos(1.0), 4.0, -math.exp(0.5)]]  # [[y*z, x*z, x*y], [cos x, 2y, -e^z]]
    assert [[c[row] for c in columns] for row in (0, 1)] == [pytest.approx(r, rel=1e-6) for r in want]
    assert record["values"]["f"] == 1.0 and "jacobian_while_loop" in record["timings"]


@pytest.mark.slow
def test_a_run_saved_by_a_former_routine_reruns_as_its_program(tmp_path: Path) -> None:
    record = _rerun_as_saved_by(OLD_PERSISTENT, tmp_path)
    assert record["gradients"] == {"dy/dx": 6.0, "dz/dx": None}
    (refusal,) = [c for c in record["checks"] if "raises RuntimeError" in c["name"]]
    assert refusal["passed"] and "can only be used to compute one set of gradients" in refusal["detail"]


def test_rerun_arguments_make_the_path_absolute_and_add_the_project_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = tmp_path / "run" / ".hydra"
    snapshot.mkdir(parents=True)
    (snapshot / "config.yaml").write_text(yaml.safe_dump(saved_config()))
    (snapshot / "hydra.yaml").write_text("hydra: {}\n")
    (snapshot / "overrides.yaml").write_text("[]\n")
    monkeypatch.chdir(tmp_path)
    args = rerun_arguments(["--config-path", "run/.hydra", "--config-name", "config", "seed=1"], CONFIG_DIR)
    assert args == ["--config-path", str(snapshot), "--config-name", "config", "seed=1",
                    f"hydra.searchpath=['file://{Path(CONFIG_DIR).resolve()}']", PROJECT_HYDRA]
    assert rerun_arguments([f"--config-path={snapshot}"], CONFIG_DIR)[0] == f"--config-path={snapshot}"
    # Whatever --config-path names is a run's snapshot, and is refused when it is not one.
    (tmp_path / "mine").mkdir()
    with pytest.raises(ConfigError, match=r"holds no config\.yaml"):
        rerun_arguments(["-cp", "mine"], CONFIG_DIR)
    # A snapshot is data: Hydra settings or extra config groups in it are refused.
    (snapshot / "config.yaml").write_text("hydra:\n  callbacks:\n    x: {_target_: os.system}\n")
    with pytest.raises(ConfigError, match="a 'hydra' key sets Hydra's own settings"):
        rerun_arguments(["--config-path", str(snapshot)], CONFIG_DIR)
    (snapshot / "config.yaml").write_text(yaml.safe_dump(saved_config()))
    (snapshot / "hydra").mkdir()
    with pytest.raises(ConfigError, match="it holds hydra"):
        rerun_arguments(["--config-path", str(snapshot)], CONFIG_DIR)


def test_a_resumed_sweep_keeps_only_its_launcher_and_runner_overrides(tmp_path: Path) -> None:
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {
        "task": ["scenario=basic", "scenario.inputs.x.value=1,2"],
        "hydra": ["hydra.mode=MULTIRUN", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                  "hydra.sweep.dir=elsewhere", "+hydra.callbacks.x._target_=os.system",
                  "hydra.launcher._target_=os.system", "hydra.launcher.setup=[touch pwned]",
                  "hydra.sweeper.params.hydra.job.env_set.X=1", "hydra.sweeper.params.seed=1,2"]}}}))
    command, dropped = rerun.sweep_command(tmp_path, [1, 3])
    assert command[3:] == ["-m", "hydra.mode=MULTIRUN", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                           "hydra.sweeper.params.seed=1,2", "scenario=basic", "scenario.inputs.x.value=1,2",
                           f"hydra.sweep.dir='{tmp_path}'", "hydra.sweeper.rerun=[1,3]"]
    assert dropped == ["hydra.sweep.dir=elsewhere", "+hydra.callbacks.x._target_=os.system",
                       "hydra.launcher._target_=os.system", "hydra.launcher.setup=[touch pwned]",
                       "hydra.sweeper.params.hydra.job.env_set.X=1"]
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {
        "task": ["hydra.callbacks.x._target_=os.system"], "hydra": []}}}))
    with pytest.raises(rerun.RerunError, match="a _target_ key names Python to call"):
        rerun.sweep_command(tmp_path, [0])


def test_the_sweeper_reruns_consecutive_jobs_together() -> None:
    # Imported here: Hydra's plugin scan re-executes plugin modules, so a class imported at
    # collection time can be older than the BasicSweeper it then finds in its module.
    from hydra_plugins.tape_runner.sweeper import TemplateSweeper

    sweeper = TemplateSweeper(max_batch_size=2, rerun=[7, 1, 2, 3, 5])
    jobs = [[f"x={n}"] for n in range(8)]
    assert sweeper._runs(jobs) == [(1, [["x=1"], ["x=2"]]), (3, [["x=3"]]), (5, [["x=5"]]), (7, [["x=7"]])]


@pytest.mark.slow
def test_a_killed_sweep_resumes_only_its_missing_and_errored_jobs(tmp_path: Path) -> None:
    values = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    args = ["tape-runner", "-m", "scenario.function=x**3",
            f"scenario.inputs.x.value={','.join(map(str, values))}",
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while len(list(tmp_path.glob("outputs/multirun/*/*/*/results.json"))) < 2 and proc.poll() is None:
        assert time.monotonic() < deadline, "the sweep never finished a job"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, midway
    proc.wait()
    (sweep,) = tmp_path.glob("outputs/multirun/*/*")
    finished = sorted(int(p.parent.name.split("_")[0]) for p in sweep.glob("*/results.json"))
    assert 2 <= len(finished) < len(values) and not (sweep / "summary.json").exists()
    # One finished job loses its results; another is made an error, as a crash would leave it.
    deleted, errored, *kept = finished
    (sweep / f"{deleted}_basic" / "results.json").unlink()
    record = json.loads((sweep / f"{errored}_basic" / "results.json").read_text())
    (sweep / f"{errored}_basic" / "results.json").write_text(json.dumps({**record, "status": "error"}))
    untouched = {n: (sweep / f"{n}_basic" / "results.json").read_bytes() for n in kept}
    jobs = (sweep / "jobs.json").read_text()

    done = _run(["tape-runner-report", str(sweep), "--rerun"], tmp_path)
    assert done.returncode == 0, done.stderr
    rerun_jobs = sorted({deleted, errored} | (set(range(len(values))) - set(finished)))
    assert f"re-running job(s) {', '.join(map(str, rerun_jobs))} of {sweep}" in done.stdout
    assert f"rebuilt {sweep / 'summary.html'}: 6 jobs (6 ok)" in done.stdout
    assert (sweep / "jobs.json").read_text() == jobs
    for num, content in untouched.items():
        assert (sweep / f"{num}_basic" / "results.json").read_bytes() == content, num
    for num in rerun_jobs:
        hydra = yaml.safe_load((sweep / f"{num}_basic" / ".hydra" / "hydra.yaml").read_text())["hydra"]
        assert hydra["runtime"]["choices"]["hydra/launcher"] == "joblib"
        assert hydra["job"]["num"] == num
    rows = json.loads((sweep / "summary.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok"] * 6
    assert [r["dy/dx"] for r in rows] == pytest.approx([3 * v**2 for v in values], rel=1e-6)
    again = _run(["tape-runner-report", str(sweep), "--rerun"], tmp_path)
    assert again.returncode == 0 and "nothing to re-run" in again.stdout


def test_only_a_sweep_that_listed_its_jobs_can_be_resumed(tmp_path: Path) -> None:
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")
    with pytest.raises(rerun.RerunError, match=r"has no jobs\.json: only a sweep whose jobs were listed"):
        rerun.rerun(tmp_path)
    with pytest.raises(rerun.RerunError, match=r"holds no config\.yaml: nothing to re-run"):
        rerun.rerun_run(tmp_path)
