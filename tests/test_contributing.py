"""CONTRIBUTING.md's rows for a tracker and a launcher, followed as written, in a config dir of their own.

Each test adds what the row says, and nothing else, outside the checkout: a module on PYTHONPATH in
place of ``runner/tracking/<name>.py``, and ``<config dir>/tracking/<name>.yaml`` or
``<config dir>/hydra/launcher/<name>.yaml`` in place of ``conf/``'s (``--config-dir`` puts them beside
the shipped groups). A sweep through each shows the row is enough.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent

#: The tracker of the row: a Hydra callback on the neutral record of runner/tracking/__init__.py.
TRACKER = '''
"""Each finished job as one JSON line in <sweep>/tracked.jsonl."""

import json

from hydra.experimental.callback import Callback

from runner.tracking import finished_job, root_dir


class JsonLinesCallback(Callback):
    def __init__(self, filename: str) -> None:
        self.filename = filename

    def on_job_end(self, config, job_return, **kwargs) -> None:
        job = finished_job(config)
        if job is not None:
            with open(root_dir(config) / self.filename, "a") as out:
                out.write(json.dumps({"job": job.name, "params": job.params, "metrics": job.metrics}) + "\\n")
'''


def _sweep(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cwd / "mine"), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "runner", "-m", "--config-dir", str(cwd / "conf"), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_a_tracker_is_a_callback_on_the_neutral_record_and_a_yaml_naming_it(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "jsonl_tracker.py").write_text(TRACKER)
    (tmp_path / "conf" / "tracking").mkdir(parents=True)
    (tmp_path / "conf" / "tracking" / "jsonl.yaml").write_text(textwrap.dedent("""\
        # @package _global_
        hydra:
          callbacks:
            jsonl:
              _target_: jsonl_tracker.JsonLinesCallback
              filename: tracked.jsonl
        """))
    done = _sweep(tmp_path, "tracking=jsonl", "scenario.inputs.x.value=1,2", "plots=false")
    assert done.returncode == 0, done.stderr
    (tracked,) = tmp_path.glob("outputs/multirun/*/*/tracked.jsonl")
    lines = [json.loads(line) for line in tracked.read_text().splitlines()]
    assert [line["job"] for line in lines] == ["0_basic", "1_basic"]
    assert [line["params"]["scenario.inputs.x.value"] for line in lines] == ["1", "2"]
    assert [line["metrics"]["dy/dx"] for line in lines] == [2.0, 4.0]  # d(x**2)/dx = 2x
    assert all(line["metrics"]["max_check_error"] < 1e-4 for line in lines)


def test_a_launcher_is_a_yaml_over_hydras_plugin(tmp_path: Path) -> None:
    (tmp_path / "conf" / "hydra" / "launcher").mkdir(parents=True)
    (tmp_path / "conf" / "hydra" / "launcher" / "two_processes.yaml").write_text(textwrap.dedent("""\
        # two_processes: joblib's launcher, two worker processes, each job a fresh Python
        defaults:
          - joblib
          - _self_

        n_jobs: 2
        backend: loky
        """))
    done = _sweep(tmp_path, "hydra/launcher=two_processes", "scenario.inputs.x.value=1,2,3", "plots=false")
    assert done.returncode == 0, done.stderr
    (summary,) = tmp_path.glob("outputs/multirun/*/*/summary.json")
    assert [row["dy/dx"] for row in json.loads(summary.read_text())["rows"]] == [2.0, 4.0, 6.0]
    hydra_config = yaml.safe_load((summary.parent / "0_basic" / ".hydra" / "hydra.yaml").read_text())["hydra"]
    assert hydra_config["runtime"]["choices"]["hydra/launcher"] == "two_processes"
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert hydra_config["launcher"]["_target_"] == joblib
    assert hydra_config["launcher"]["n_jobs"] == 2
