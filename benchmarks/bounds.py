"""Hostile input, refused before the work it asks for: what each refusal costs after start-up; what a
tracking server that is down costs a sweep.

Each case is a fresh process, as a user (or a folder someone sent) would start it, timed against the
same command's start-up without the hostile part: ``tape-runner --cfg job`` composes the config and
stops, ``tape-runner-report --help`` loads the report command. The difference is what the refusal
itself costs, against the budgets SECURITY.md states. Peak memory is compared with TensorFlow's own
import (the most a refusal could need were TensorFlow loaded; none of these loads it).

Usage (from benchmarks/run.py, or alone): python benchmarks/bounds.py [reps]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
RUNNER = [PYTHON, "-m", "runner"]
REPORT = [PYTHON, "-m", "runner.cli.rebuild"]
LAYER = ["scenario=layers", "scenario.inputs.x.shape=[1,20000]", "scenario.targets.h.args.units=20000",
         "limits.memory_mb=100"]
EMBEDDING = ["scenario=layers", "scenario.targets.h.layer=Embedding", "~scenario.targets.h.args.units",
             "~scenario.targets.h.args.activation", "+scenario.targets.h.args.input_dim=5000000",
             "+scenario.targets.h.args.output_dim=40", "limits.memory_mb=50"]
TOWER = ["scenario.function=(x-x+9)**((x-x+9)**(x-x+9))"]


def measure(cmd: list[str], cwd: Path, expect: int) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one fresh process that must exit with ``expect``."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != expect:
        raise SystemExit(f"expected exit {expect} from {' '.join(cmd)}\n{err[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def mlflow_down(reps: int, work: Path) -> tuple[list[float], list[float]]:
    """A two-job sweep with tracking=mlflow against a closed port on 127.0.0.1, and with tracking=none."""
    import socket

    with socket.socket() as probe:  # bound and closed again: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sweep = [*RUNNER, "-m", "scenario=basic", "scenario.inputs.x.value=1,2", "plots=false"]
    down, none = [], []
    for _ in range(reps):
        os.environ["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
        try:
            down.append(measure([*sweep, "tracking=mlflow"], work, 0)[0])
        finally:
            del os.environ["MLFLOW_TRACKING_URI"]
        none.append(measure([*sweep, "tracking=none"], work, 0)[0])
        shutil.rmtree(work / "outputs", ignore_errors=True)
    return down, none


def folders(work: Path) -> dict[str, Path]:
    """A sweep folder with a directory claiming job 1,000,000, and a run whose snapshot sets hydra.run."""
    sweep = work / "sweep"
    (sweep / "1000000_x" / ".hydra").mkdir(parents=True)
    (sweep / "jobs.json").write_text(json.dumps([["seed=0"], ["seed=1"]]))
    snapshot = work / "run" / ".hydra"
    snapshot.mkdir(parents=True)
    (snapshot / "config.yaml").write_text("seed: 0\nhydra:\n  run:\n    dir: /tmp/elsewhere\n")
    return {"sweep": sweep, "run": work / "run"}


def main(reps: int) -> dict[str, list[float]]:
    work = Path(tempfile.mkdtemp(prefix="tape-runner-bounds-"))
    try:
        made = folders(work)
        cases = {  # name: (command, exit status, start-up command)
            "layer": ([*RUNNER, *LAYER], 1, [*RUNNER, "--cfg", "job", *LAYER]),
            "embedding": ([*RUNNER, *EMBEDDING], 1, [*RUNNER, "--cfg", "job", *EMBEDDING]),
            "tower": ([*RUNNER, *TOWER], 1, [*RUNNER, "--cfg", "job", *TOWER]),
            "job_1000000": ([*REPORT, str(made["sweep"])], 0, [*REPORT, "--help"]),
            "snapshot": ([*REPORT, str(made["run"]), "--rerun"], 1, [*REPORT, "--help"]),
        }
        found: dict[str, list[float]] = {f"{name}_{part}": [] for name in cases for part in ("after", "peak")}
        found["tf_peak"] = []
        for _ in range(reps):
            for name, (cmd, expect, startup) in cases.items():
                seconds, peak = measure(cmd, work, expect)
                base, _ = measure(startup, work, 0)
                found[f"{name}_after"].append(seconds - base)
                found[f"{name}_peak"].append(peak)
                shutil.rmtree(work / "outputs", ignore_errors=True)
            found["tf_peak"].append(measure([PYTHON, "-c", "import tensorflow"], work, 0)[1])
        found["mlflow_down"], found["mlflow_none"] = mlflow_down(reps, work)
        return found
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    measured = main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
    print(json.dumps({name: statistics.median(values) for name, values in measured.items()}, indent=1))
