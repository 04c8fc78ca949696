"""tape-runner's benchmark: the runner against hand-written baselines, measured in the same run.

Absolute times drift on shared machines, so every figure is a median over
repetitions and every target is a ratio against a baseline timed in the same
run, interleaved with it repetition by repetition. Commands run in fresh
processes (TensorFlow start-up included, as a user pays it); peak memory is that
process's maximum resident set size. Writes benchmarks/results.md.

Usage: python benchmarks/run.py [--reps N] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
RUNNER = [PYTHON, "-m", "runner"]
SEED = "basic,watch,sigmoid,linear,persistent"


@dataclass
class Row:
    """One line of the table: runner against baseline, and the target the ratio must meet."""

    name: str
    runner: list[float]
    baseline: list[float]
    unit: str = "s"
    target: float | None = None  # the ratio's bound
    higher_is_better: bool = False  # rates: the ratio must be at least the target
    note: str = ""

    @property
    def ratio(self) -> float:
        return statistics.median(self.runner) / statistics.median(self.baseline)

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target


@dataclass
class Measured:
    seconds: list[float] = field(default_factory=list)
    peak_mib: list[float] = field(default_factory=list)


def run_process(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one fresh process; raise if it fails."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def interleaved(reps: int, work: Path, **commands: list[str]) -> dict[str, Measured]:
    """Run each command once per repetition, alternating, so drift hits all of them alike."""
    results = {name: Measured() for name in commands}
    for _ in range(reps):
        for name, cmd in commands.items():
            seconds, peak = run_process(cmd, work)
            results[name].seconds.append(seconds)
            results[name].peak_mib.append(peak)
            shutil.rmtree(work / "outputs", ignore_errors=True)
            shutil.rmtree(work / "plain", ignore_errors=True)
    return results


def bench_one_run(reps: int, work: Path) -> list[Row]:
    m = interleaved(reps, work, runner=[*RUNNER, "scenario=basic"],
                    plain=[PYTHON, str(HERE / "plain_seed.py"), str(work / "plain"), "--only", "basic"])
    note = "plain: the same tape, the same SymPy and finite-difference checks, the same results.json"
    return [Row("one run: tape-runner scenario=basic, wall", m["runner"].seconds, m["plain"].seconds,
                target=1.15, note=note),
            Row("one run: peak memory", m["runner"].peak_mib, m["plain"].peak_mib, unit="MiB",
                target=1.10)]


def bench_seed_sweep(reps: int, work: Path) -> list[Row]:
    m = interleaved(reps, work, runner=[*RUNNER, "experiment=seed_tour"],
                    plain=[PYTHON, str(HERE / "plain_seed.py"), str(work / "plain")])
    return [Row("seed sweep: 5 scenarios, checks, plot, reports", m["runner"].seconds, m["plain"].seconds,
                target=1.5, note="plain: the same five computations and checks, the same files")]


SWEEP_JOBS = 100
SWEEP_REPS = 3  # three 100-job sweeps a repetition: more would take make bench past ten minutes


def bench_sweeps(reps: int, work: Path) -> list[Row]:
    values = f"range(0,{SWEEP_JOBS})"
    m = interleaved(
        min(reps, SWEEP_REPS), work,
        runner=[*RUNNER, "-m", "scenario=basic", f"scenario.inputs.x.value={values}", "plots=false"],
        bare=[PYTHON, str(HERE / "bare" / "app.py"), "-m", f"x={values}"],
        joblib=[*RUNNER, "-m", "scenario=basic", f"scenario.inputs.x.value={values}", "plots=false",
                "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"])
    per_job_ms = (statistics.median(m["runner"].seconds) - statistics.median(m["bare"].seconds)) / SWEEP_JOBS
    return [
        Row(f"sweep overhead: {SWEEP_JOBS} jobs, basic launcher", m["runner"].seconds, m["bare"].seconds,
            target=1.3, note=f"bare Hydra: a task that writes one JSON (plus one TensorFlow import); "
                             f"the runner's own cost is {1000 * per_job_ms:.0f} ms per job"),
        Row(f"parallel: joblib, 2 workers vs basic launcher, {SWEEP_JOBS} jobs", m["runner"].seconds,
            m["joblib"].seconds, unit="s", note="ratio = speed-up of joblib (basic time / joblib time)"),
    ]


def bench_summary(reps: int, work: Path) -> list[Row]:
    """summary.write over 1,000 jobs' files, in this process."""
    sys.path.insert(0, str(HERE.parent))
    from runner import summary

    sweep = work / "sweep1000"
    source = {"scenario": "basic", "status": "ok", "message": None, "gradients": {"dy/dx": 6.0},
              "checks": [{"name": "dy/dx vs SymPy", "passed": True, "max_abs_err": 0.0, "tol": 1e-5}]}
    for job in range(1000):
        job_dir = sweep / f"{job}_basic"
        (job_dir / ".hydra").mkdir(parents=True)
        (job_dir / "results.json").write_text(json.dumps({
            **source, "gradients": {"dy/dx": 2.0 * job},
            "job": {"num": job, "overrides": [f"scenario.inputs.x.value={job}"]}}))
        (job_dir / ".hydra" / "overrides.yaml").write_text(f"- scenario.inputs.x.value={job}\n")
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        summary.write(sweep)
        times.append(time.perf_counter() - started)
    return [Row("summary of 1,000 jobs (csv, json, md, html, plot)", times, [1.0] * reps, target=1.0,
                note="baseline is the 1 s budget itself")]


def bench_cli(reps: int, work: Path) -> list[Row]:
    bare = [PYTHON, str(HERE / "bare" / "app.py")]
    m = interleaved(reps, work, runner_help=[*RUNNER, "--help"], bare_help=[*bare, "--help"],
                    runner_cfg=[*RUNNER, "--cfg", "job"], bare_cfg=[*bare, "--cfg", "job"])
    return [Row("CLI: --help (no TensorFlow)", m["runner_help"].seconds, m["bare_help"].seconds, target=1.3),
            Row("CLI: --cfg job (no TensorFlow)", m["runner_cfg"].seconds, m["bare_cfg"].seconds, target=1.3)]


def bench_curves(reps: int, work: Path) -> list[Row]:
    n = 10_000_000
    m = interleaved(reps, work,
                    runner=[*RUNNER, "scenario=sigmoid", f"scenario.inputs.x.linspace.num={n}"],
                    plain=[PYTHON, str(HERE / "plain_curve.py"), str(work / "plain"), str(n)])
    return [Row("curves: sigmoid over 10^7 points", m["runner"].seconds, m["plain"].seconds, target=1.1,
                note="runner with its checks (SymPy and sampled finite differences); plain: the tape, "
                     "a JSON summary and the plot, no checks")]


HAND_LINEAR = """
import json, statistics, sys, time
import numpy as np, tensorflow as tf
n = int(sys.argv[1]); rng = np.random.default_rng(0)
x = tf.constant(rng.standard_normal((n, n)), tf.float32)
w = tf.Variable(tf.constant(rng.standard_normal((n, n)) / np.sqrt(n), tf.float32))
b = tf.Variable(tf.constant(0.1 * rng.standard_normal(n), tf.float32))
@tf.function
def step(w, b):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b))
    return tape.gradient(loss, [w, b])
@tf.function
def matmul(a, c):
    return tf.matmul(a, c)
def median(fn, *args):
    fn(*args)
    times = []
    for _ in range(5):
        t = time.perf_counter(); [v.numpy() for v in tf.nest.flatten(fn(*args))]
        times.append(time.perf_counter() - t)
    return statistics.median(times), times
hand, hand_all = median(step, w, b)
mm, mm_all = median(matmul, x, x)
print(json.dumps({"hand": [4 * n**3 / t / 1e9 for t in hand_all],
                  "matmul": [2 * n**3 / t / 1e9 for t in mm_all]}))
"""


def bench_heavy(reps: int, work: Path) -> list[Row]:
    rows = []
    for n in (2048, 4096):
        done = subprocess.run([PYTHON, "-c", HAND_LINEAR, str(n)], capture_output=True, text=True, check=True,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        hand = json.loads(done.stdout.strip().splitlines()[-1])
        run_process([*RUNNER, "scenario=linear", f"scenario.batch={n}", f"scenario.in_features={n}",
                     f"scenario.out_features={n}", "compile=function", f"timing_repeats={reps}",
                     "checks.analytic=false", "checks.finite_differences=false", "report=false",
                     "hydra.run.dir=outputs/heavy"], work)
        timings = json.loads((work / "outputs" / "heavy" / "results.json").read_text())["timings"]
        shutil.rmtree(work / "outputs", ignore_errors=True)
        rate = 4 * n**3 / timings["tape_repeat"] / 1e9
        rows += [Row(f"heavy tape: linear {n}^3 float32, compile=function vs hand-written tf.function",
                     [rate], hand["hand"], unit="GFLOP/s", target=0.95, higher_is_better=True,
                     note="runner: median of timing_repeats steady-state steps, read from results.json"),
                 Row(f"heavy tape: linear {n}^3, runner vs the machine's tf.matmul rate", [rate],
                     hand["matmul"], unit="GFLOP/s", target=0.8, higher_is_better=True)]
    return rows


JACOBIAN = """
import json, resource, sys, time
import tensorflow as tf
n, mode, reps = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
x = tf.Variable(tf.random.stateless_normal([n], seed=[1, 2]))
def f(v):
    return tf.reduce_sum(tf.sin(v) * tf.roll(v, 1, 0) ** 2) + tf.reduce_sum(v ** 4) / n
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
seconds = []
for _ in range(reps):
    t = time.perf_counter()
    with tf.GradientTape(persistent=(mode != "pfor")) as outer:  # the while_loop path needs it
        with tf.GradientTape() as inner:
            y = f(x)
        g = inner.gradient(y, x)
    outer.jacobian(g, x, experimental_use_pfor=(mode == "pfor")).numpy()
    seconds.append(time.perf_counter() - t)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak, "extra_mib": peak - before}))
"""


def bench_jacobian(reps: int, work: Path) -> list[Row]:
    n = 256
    found = {}
    for mode in ("pfor", "while_loop"):  # one process each; the repetitions run inside it
        done = subprocess.run([PYTHON, "-c", JACOBIAN, str(n), mode, str(reps)], capture_output=True,
                              text=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        found[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    return [Row(f"Hessian of a {n}-input function: pfor vs while_loop, time", found["pfor"]["seconds"],
                found["while_loop"]["seconds"], target=1.0,
                note="tape.jacobian(experimental_use_pfor=True), the runner's default, against False"),
            Row(f"Hessian of a {n}-input function: pfor vs while_loop, memory added",
                [found["pfor"]["extra_mib"]], [found["while_loop"]["extra_mib"]], unit="MiB")]


def bench_tf_import(reps: int, work: Path) -> list[Row]:
    m = interleaved(reps, work, tf=[PYTHON, "-c", "import tensorflow"], bare=[PYTHON, "-c", "pass"])
    cost = [a - b for a, b in zip(m["tf"].seconds, m["bare"].seconds, strict=True)]
    return [Row("TensorFlow import, paid once per process (each joblib worker)", cost, [1.0] * reps,
                note="absolute seconds; baseline column is 1 s for scale")]


BENCHMARKS: dict[str, Callable[[int, Path], list[Row]]] = {
    "one_run": bench_one_run, "seed_sweep": bench_seed_sweep, "sweeps": bench_sweeps,
    "summary": bench_summary, "cli": bench_cli, "heavy": bench_heavy, "curves": bench_curves,
    "jacobian": bench_jacobian, "tf_import": bench_tf_import,
}


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}"


def render(rows: list[Row], reps: int, elapsed: float) -> str:
    def span(values: list[float]) -> str:
        return f"{min(values):.3g} / {statistics.median(values):.3g} / {max(values):.3g}"

    lines = ["# tape-runner benchmark", "",
             f"Machine: {machine()}  ", f"Repetitions: {reps}, interleaved (min / median / max); "
             f"the 100-job sweeps {min(reps, SWEEP_REPS)}. Whole benchmark: {elapsed:.0f} s.", "",
             "| benchmark | unit | runner | baseline | ratio | target | met |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        target = "—" if row.target is None else f"{'≥' if row.higher_is_better else '≤'} {row.target:g}"
        met = {None: "—", True: "yes", False: "**no**"}[row.met]
        lines.append(f"| {row.name} | {row.unit} | {span(row.runner)} | {span(row.baseline)} | "
                     f"{row.ratio:.2f} | {target} | {met} |")
    lines += ["", "Notes:"] + [f"- {row.name}: {row.note}" for row in rows if row.note]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", nargs="*", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tape-runner-bench-"))
    started = time.perf_counter()
    rows: list[Row] = []
    try:
        for name in args.only:
            t = time.perf_counter()
            rows += BENCHMARKS[name](args.reps, work)
            print(f"{name}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = render(rows, args.reps, time.perf_counter() - started)
    if set(args.only) == set(BENCHMARKS):
        (HERE / "results.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
