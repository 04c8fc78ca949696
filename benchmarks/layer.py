"""A million-weight Dense layer checked by random projections: the whole check against the tape step.

Dense(1024) on a (64, 1024) batch holds 1024 x 1024 + 1024 weights; the kernel's and
the bias's gradients are each checked by random projections v.(J u) (above
``checks.fd_max_elements``), through a float64 copy of the layer holding the same
weights. This measures the runner's own ``timings.checks`` (every check of the run)
against ``timings.tape_repeat`` (the compiled tape step alone, forward and backward,
tracing excluded) of the same job, run in process. Prints one JSON object for
benchmarks/run.py.

Usage: python benchmarks/layer.py REPS [PROJECTIONS]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from runner.app import CONFIG_DIR  # noqa: E402  (registers the schemas)
from runner.routines import run_routine  # noqa: E402
from runner.schema import load_run  # noqa: E402

LAYER = {
    "name": "dense_1e6",
    "inputs": {"x": {"init": "normal", "shape": [64, 1024], "kind": "constant"}},
    "targets": {"y": {"layer": "Dense", "input": "x", "args": {"units": 1024}}, "loss": "reduce_mean(y**2)"},
    "gradients": {"loss": ["y.kernel", "y.bias"]},
}


def main() -> None:
    reps, projections = int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 4
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "scenario=layers", "compile=function", "timing_repeats=3", f"checks.projections={projections}"])
    data = OmegaConf.to_container(cfg, resolve=True)
    data["scenario"].update(LAYER)
    run = load_run(data)
    checks, tape = [], []
    for _ in range(reps):
        outcome = run_routine(run)
        assert outcome.passed and sum("random projections" in c.name for c in outcome.checks) == 2
        checks.append(outcome.timings["checks"])
        tape.append(outcome.timings["tape_repeat"])
    print(json.dumps({"checks": checks, "tape": tape}))


if __name__ == "__main__":
    main()
