"""The benchmarks that share one TensorFlow start-up: heavy tape work and curves.

The runner's side is a real job: its config composed by Hydra's compose API and
run by ``runner.jobs.task.execute`` into a directory of its own, as the CLI runs it,
minus the process start-up that ``one run`` measures. The baseline is the same
computation written by hand in plain TensorFlow, in this one process: curves
alternate with it repetition by repetition; each linear size runs the runner's
job (its repeats timed inside it) and then the hand-written step. Prints one
JSON object for benchmarks/run.py.

Usage: python benchmarks/inprocess.py REPS WORK_DIR
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import OmegaConf, open_dict  # noqa: E402

from runner.cli.main import CONFIG_DIR  # noqa: E402  (registers the schemas)
from runner.jobs import task  # noqa: E402
from runner.tfenv import tf  # noqa: E402

CURVE_POINTS = 10_000_000
HEAVY_SIZES = (2048, 4096)


def runner_job(overrides: list[str], out: Path) -> dict[str, Any]:
    """One job, composed and run as the CLI would; its results.json."""
    cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    out.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out)
    HydraConfig.instance().set_config(cfg)
    job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    task.execute(job)
    return json.loads((out / "results.json").read_text())


def seconds(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def plain_curve(out: Path, n: int) -> None:
    """Sigmoid and its derivative over n points by hand, verified much as the runner verifies them.

    No NaN or Inf, SymPy's derivative and the stated closed form in float64, and
    central differences at every point (in float32, the run's dtype, with the
    runner's step); then a JSON summary and the plot. The runner does more: its
    differences are float64, every element is held to its own tolerance and the
    forward values are checked against float64 too. This baseline stays as it was
    so that the row's ratio compares with earlier ones (benchmarks/results.md,
    "What the verification contract costs", measures the runner against itself).
    """
    import sympy as sp

    x = tf.Variable(tf.constant(np.linspace(-10.0, 10.0, n), tf.float32))
    with tf.GradientTape() as tape:
        y = tf.sigmoid(x)
    d = tape.gradient(y, x).numpy()
    grid = x.numpy().astype(np.float64)
    s = sp.Symbol("x", real=True)
    sigmoid = 1 / (1 + sp.exp(-s))
    delta = 2.0**-10
    references = {
        "sympy": sp.lambdify([s], sp.diff(sigmoid, s), "numpy", cse=True)(grid),
        "closed form": sp.lambdify([s], sigmoid * (1 - sigmoid), "numpy", cse=True)(grid),
        "finite differences": ((tf.sigmoid(x + delta) - tf.sigmoid(x - delta)) / (2 * delta)).numpy(),
    }
    errors = {name: float(np.max(np.abs(d - want))) for name, want in references.items()}
    finite = bool(np.isfinite(y.numpy()).all() and np.isfinite(d).all())
    out.mkdir(parents=True, exist_ok=True)
    summary = {"min": float(d.min()), "max": float(d.max()), "errors": errors, "finite": finite}
    (out / "results.json").write_text(json.dumps({"dy/dx": summary}))
    from matplotlib.figure import Figure

    stride = max(1, n // 5000)
    fig = Figure(figsize=(7, 4.2), dpi=110)
    ax = fig.add_subplot()
    ax.plot(grid[::stride], y.numpy()[::stride], label="y")
    ax.plot(grid[::stride], d[::stride], label="dy/dx")
    ax.legend()
    fig.savefig(out / "sigmoid.png")


def bench_curves(reps: int, work: Path) -> dict[str, Any]:
    found: dict[str, Any] = {"runner": [], "plain": [], "runner_timings": []}
    overrides = ["scenario=sigmoid", f"scenario.inputs.x.linspace.num={CURVE_POINTS}"]
    runner_job(["scenario=sigmoid"], work / "curve-warm-up" / "runner")  # first-use imports, both sides
    plain_curve(work / "curve-warm-up" / "plain", 201)
    for rep in range(reps):
        out = work / f"curve-{rep}"
        started = time.perf_counter()
        found["runner_timings"].append(runner_job(overrides, out / "runner")["timings"])
        found["runner"].append(time.perf_counter() - started)
        found["plain"].append(seconds(functools.partial(plain_curve, out / "plain", CURVE_POINTS)))
    return found


def hand_linear(n: int, reps: int) -> dict[str, list[float]]:
    """The linear model's gradients as a hand-written tf.function, and the machine's matmul rate."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((n, n)), tf.float32)
    w = tf.Variable(tf.constant(rng.standard_normal((n, n)) / np.sqrt(n), tf.float32))
    b = tf.Variable(tf.constant(0.1 * rng.standard_normal(n), tf.float32))

    @tf.function
    def step(w: tf.Variable, b: tf.Variable) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b))
        return tape.gradient(loss, [w, b])

    @tf.function
    def matmul(a: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
        return tf.matmul(a, c)

    def rates(fn: Callable[..., Any], flops: float, *args: Any) -> list[float]:
        fn(*args)  # trace
        # Timed as the runner times its step (runner/routines/support.py): the call, no copy out.
        return [flops / seconds(lambda: fn(*args)) / 1e9 for _ in range(reps)]

    return {"hand": rates(step, 4 * n**3, w, b), "matmul": rates(matmul, 2 * n**3, x, x)}


def bench_heavy(reps: int, work: Path) -> dict[str, Any]:
    found = {}
    for n in HEAVY_SIZES:
        timings = runner_job(
            ["scenario=linear", f"scenario.batch={n}", f"scenario.in_features={n}",
             f"scenario.out_features={n}", "compile=function", f"timing_repeats={reps}",
             "checks.analytic=false", "checks.finite_differences=false", "report=false"],
            work / f"linear-{n}")["timings"]
        flops = 4 * n**3
        steps = [timings.get(key, timings["tape_repeat"])  # min and max exist from two repeats on
                 for key in ("tape_repeat_max", "tape_repeat", "tape_repeat_min")]
        runner = [flops / step / 1e9 for step in steps]
        found[str(n)] = {"runner": runner, **hand_linear(n, reps)}
    return found


def main() -> None:
    reps, work = int(sys.argv[1]), Path(sys.argv[2])
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        heavy = bench_heavy(reps, work)
        curves = bench_curves(reps, work)
    print(json.dumps({"heavy": heavy, "curves": curves}))


if __name__ == "__main__":
    main()
