"""tape.jacobian through the runner's program: pfor against the tf.while_loop, time and peak memory.

y = x @ w with x (64, 256) and w (256, COLUMNS); the Jacobian dy/dw has
64 * COLUMNS * 256 * COLUMNS elements (at 256 columns 2^30, 4 GiB in float32). One
process per path, so each peak resident set is its own; the checks are off (an
oracle for 2^30 elements would dwarf the tape), as are plots and reports. The step is
traced once (compile=function) and then timed REPS more times. Prints one JSON object
for benchmarks/run.py: the step's min, median and max seconds after tracing, the
process's peak RSS and what the job added to it beyond TensorFlow's import.

Usage: python benchmarks/jacobian_program.py pfor|while_loop COLUMNS REPS
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from runner.cli.main import CONFIG_DIR  # noqa: E402  (registers the schemas)
from runner.routines import run_routine  # noqa: E402
from runner.scenarios.loading import load_run  # noqa: E402


def program(columns: int, use_pfor: bool) -> dict[str, object]:
    return {
        "name": f"jacobian_64x256_by_256x{columns}",
        "inputs": {"x": {"init": "normal", "shape": [64, 256], "kind": "constant"},
                   "w": {"init": "glorot_uniform", "shape": [256, columns]}},
        "targets": {"y": "x @ w"},
        "gradients": {"y": ["w"]},
        "derivative": "jacobian",
        "experimental_use_pfor": use_pfor,
        "persistent": not use_pfor,  # the while_loop calls gradient() once per row
    }


def main() -> None:
    mode, columns, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "scenario=program", "checks.analytic=false", "checks.finite_differences=false",
            "plots=false", "report=false", "limits.memory_mb=20000", "compile=function",
            f"timing_repeats={reps}"])
    data = OmegaConf.to_container(cfg, resolve=True)
    data["scenario"].update(program(columns, mode == "pfor"))
    run = load_run(data)
    from runner.tfenv import tf  # noqa: F401  (TensorFlow's own memory is not the job's)

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    outcome = run_routine(run)
    assert outcome.passed and outcome.gradients["dy/dw"].shape == (64, columns, 256, columns)
    timings = outcome.timings
    seconds = [timings.get(f"tape_repeat{end}", timings["tape_repeat"]) for end in ("_min", "", "_max")]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak, "extra_mib": peak - before}))


if __name__ == "__main__":
    main()
