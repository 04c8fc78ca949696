"""A tensor program of 10^6 elements, checked by random projections: the checks' cost against the tape's.

Projections make the check of a large program cost a few forward passes and one
vector-Jacobian product per pair, whatever its size, where checking each element
would cost two forward passes per element. This measures the runner's own
``timings.checks`` against ``timings.tape_repeat`` (the compiled tape step alone,
tracing excluded) of the same job, run in process (plots and reports off). Prints
one JSON object for benchmarks/run.py.

Usage: python benchmarks/program.py REPS
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from runner.cli.main import CONFIG_DIR  # noqa: E402  (registers the schemas)
from runner.routines import run_routine  # noqa: E402
from runner.scenarios.loading import load_run  # noqa: E402

PROGRAM = {
    "name": "program_1e6",
    "inputs": {"x": {"init": "normal", "shape": [1000, 1000]},
               "w": {"init": "glorot_uniform", "shape": [1000, 10]}},
    "targets": {"h": "tanh(x @ w)", "loss": "reduce_mean(square(h - 0.5))"},
    "gradients": {"loss": ["x", "w"]},
}


def measure(scenario: dict[str, Any], reps: int, *overrides: str) -> dict[str, list[float]]:
    """``timings.checks`` and ``timings.tape_repeat`` of ``reps`` runs of a program, compiled."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config",
                      overrides=["scenario=program", "compile=function", "timing_repeats=3", *overrides])
    data = OmegaConf.to_container(cfg, resolve=True)
    data["scenario"].update(scenario)
    run = load_run(data)
    checks, tape = [], []
    for _ in range(reps):
        outcome = run_routine(run)
        assert outcome.passed and any("random projection" in c.name for c in outcome.checks)
        checks.append(outcome.timings["checks"])
        tape.append(outcome.timings["tape_repeat"])
    return {"checks": checks, "tape": tape}


def main() -> None:
    print(json.dumps(measure(PROGRAM, int(sys.argv[1]))))


if __name__ == "__main__":
    main()
