"""tape-runner's benchmark: the runner against hand-written baselines, measured in the same run.

Absolute times drift on shared machines, so every figure is a median over
repetitions and every target is a ratio against a baseline timed in the same
run, interleaved with it repetition by repetition. Where start-up is the point
(one run, sweeps, the CLI) every repetition is a fresh process, TensorFlow's
import included as a user pays it, and peak memory is that process's maximum
resident set size. Heavy tape work and curves share one process and one
TensorFlow start-up (benchmarks/inprocess.py), runner job against hand-written
code. Baselines import TensorFlow as the runner does (benchmarks/plain_tf.py).
The runner's modules are compiled to bytecode first, as installing a package
does: with PYTHONDONTWRITEBYTECODE set, an editable checkout would otherwise
compile its every module again in every process, which no installed copy does
(the baselines' libraries are compiled at install).
The default set at five or more repetitions rewrites the table in
benchmarks/results.md, keeping its hand-written sections; other runs only print.

Usage: python benchmarks/run.py [--reps N] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import compileall
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


def run_process(cmd: list[str], cwd: Path, expect: int = 0) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of one fresh process; raise if it exits other than
    ``expect`` (2 for a campaign whose findings fail their checks)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != expect:
            raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{err.read()[-2000:]}")
        return seconds, usage.ru_maxrss / 1024, out.read()


@dataclass
class Measured:
    seconds: list[float] = field(default_factory=list)
    peak_mib: list[float] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)


def interleaved(reps: int, work: Path, **commands: list[str]) -> dict[str, Measured]:
    """Run each command once per repetition, alternating, so drift hits all of them alike."""
    results = {name: Measured() for name in commands}
    for _ in range(reps):
        for name, cmd in commands.items():
            seconds, peak, out = run_process(cmd, work)
            results[name].seconds.append(seconds)
            results[name].peak_mib.append(peak)
            results[name].stdout.append(out)
            shutil.rmtree(work / "outputs", ignore_errors=True)
            shutil.rmtree(work / "plain", ignore_errors=True)
    return results


def bench_one_run(reps: int, work: Path) -> list[Row]:
    m = interleaved(reps, work, runner=[*RUNNER, "scenario=basic"],
                    plain=[PYTHON, str(HERE / "plain_seed.py"), str(work / "plain"), "--only", "basic"])
    imports = [json.loads(out.splitlines()[-1])["tf_import_s"] for out in m["plain"].stdout]
    note = "plain: the same tape, the same SymPy and finite-difference checks, the same results.json"
    return [Row("one run: tape-runner scenario=basic, wall", m["runner"].seconds, m["plain"].seconds,
                target=1.15, note=note),
            Row("one run: peak memory", m["runner"].peak_mib, m["plain"].peak_mib, unit="MiB",
                target=1.10),
            Row("TensorFlow import, paid once per process (each joblib worker)", imports, [1.0] * reps,
                note="absolute seconds, timed in the plain processes above (Keras deferred, as the runner "
                     "imports it); the baseline column is 1 s for scale")]


def bench_seed_sweep(reps: int, work: Path) -> list[Row]:
    m = interleaved(reps, work, runner=[*RUNNER, "experiment=seed_tour"],
                    plain=[PYTHON, str(HERE / "plain_seed.py"), str(work / "plain")])
    return [Row("seed sweep (make run): 5 scenarios, checks, plot, reports", m["runner"].seconds,
                m["plain"].seconds, target=1.5,
                note="plain: the same five computations and checks, the same files. Where the runner's "
                     f"time goes, in one more run: {seed_sweep_costs(work)}")]


IMPORTED = ("tensorflow", "hydra", "omegaconf", "sympy", "matplotlib", "numpy")


def seed_sweep_costs(work: Path) -> str:
    """One seed sweep with ``-X importtime``: its imports, its jobs' phases, and the rest."""
    started = time.perf_counter()
    done = subprocess.run([PYTHON, "-X", "importtime", "-m", "runner", "experiment=seed_tour"], cwd=work,
                          capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    wall = time.perf_counter() - started
    imports = {}
    for line in done.stderr.splitlines():  # "import time: self [us] | cumulative | package"
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] in IMPORTED and parts[1].isdigit():
            imports[parts[2]] = int(parts[1]) / 1e6
    phases: dict[str, float] = {}
    for path in work.glob("outputs/multirun/*/*/*/results.json"):
        for phase, seconds in json.loads(path.read_text())["timings"].items():
            if phase != "tape_repeat":
                phases[phase] = phases.get(phase, 0.0) + seconds
    shutil.rmtree(work / "outputs", ignore_errors=True)
    jobs = phases.pop("total", 0.0)
    known = sum(v for k, v in phases.items() if k != "setup")
    phases["reports, snippet and results.json"] = jobs - known - phases.get("setup", 0.0)
    rest = wall - jobs - imports.get("hydra", 0.0) - imports.get("omegaconf", 0.0)
    return (f"{wall:.1f} s in all; imports (cumulative, each once) "
            + ", ".join(f"{k} {v:.2f} s" for k, v in imports.items())
            + "; the five jobs' phases " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items())
            + f" (setup includes TensorFlow's import in the first job); everything else (interpreter, "
              f"Hydra's start-up and composition, the job list, the summary and its plot) {rest:.2f} s")


NOTEBOOK_CALLS = 20


def bench_notebook(reps: int, work: Path) -> list[Row]:
    """Warm Python API calls against hand-written notebook cells (benchmarks/notebook.py), 20 calls each."""
    _, _, out = run_process([PYTHON, str(HERE / "notebook.py"), str(NOTEBOOK_CALLS)], work)
    found = json.loads(out.splitlines()[-1])
    cell = ("a hand-written cell: the same tape, SymPy derivative, central differences and JSON; the "
            "runner's call also builds the whole record results.json would hold")
    return [
        Row("notebook: warm run('basic'), nothing written, vs a hand-written cell", found["basic"]["runner"],
            found["basic"]["cell"], target=1.5,
            note=f"median of {NOTEBOOK_CALLS} calls each, alternating; {cell}"),
        Row("notebook: warm run('basic') with a new x on every call (a slider)", found["slider"]["runner"],
            found["slider"]["cell"], target=3.0,
            note="each call composes nothing: its value goes onto the template of scenario=basic"),
        Row("notebook: warm run('sigmoid') and its inline report with the figure", found["sigmoid"]["runner"],
            found["sigmoid"]["cell"], target=1.5,
            note="the cell also draws the function and its derivative and renders the PNG, as Jupyter's "
                 "inline backend does; the runner renders its report's HTML with the PNG inline"),
    ]



SWEEP_JOBS = 100


def sweep_command(values: str) -> list[str]:
    return [*RUNNER, "-m", "scenario=basic", f"scenario.inputs.x.value={values}", "plots=false"]


def bench_sweeps(reps: int, work: Path) -> list[Row]:
    values = f"range(0,{SWEEP_JOBS})"
    bare = [PYTHON, str(HERE / "bare" / "app.py"), "-m", f"x={values}"]
    m = interleaved(reps, work, runner=sweep_command(values), bare=bare)
    per_job_ms = (statistics.median(m["runner"].seconds) - statistics.median(m["bare"].seconds)) / SWEEP_JOBS
    return [Row(f"sweep overhead: {SWEEP_JOBS} jobs, basic launcher", m["runner"].seconds, m["bare"].seconds,
                target=1.3, note=f"bare Hydra: a task that writes one JSON (plus one TensorFlow import); "
                                 f"the runner's own cost is {1000 * per_job_ms:+.0f} ms per job")]


def bench_joblib(reps: int, work: Path) -> list[Row]:
    values = f"range(0,{SWEEP_JOBS})"
    m = interleaved(reps, work, basic=sweep_command(values),
                    joblib=[*sweep_command(values), "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"])
    return [Row(f"parallel: joblib, 2 workers vs basic launcher, {SWEEP_JOBS} jobs", m["basic"].seconds,
                m["joblib"].seconds, note="ratio = speed-up of joblib (basic time / joblib time)")]


#: Each launcher as a sweep would choose it; Ray starts a local instance for each sweep.
LAUNCHERS = {"basic": [], "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
             "submitit_local": ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"],
             "ray": ["hydra/launcher=ray"]}
LAUNCHER_JOBS = 9


def bench_launchers(reps: int, work: Path) -> list[Row]:
    """What one more short job costs under each launcher: (T(9 jobs) - T(1 job)) / 8, fresh processes.

    The difference leaves out what a sweep pays once (Hydra, the first TensorFlow import,
    Ray's start-up) and keeps what each job pays: a process and TensorFlow's import per job
    under submitit, a reused worker under joblib and Ray. One repetition per five asked
    for: the eight sweeps take about three minutes here.
    """
    commands = {f"{name} {size}": [*sweep_command(values), *extra] for name, extra in LAUNCHERS.items()
                for size, values in (("1", "0"), ("n", f"range(0,{LAUNCHER_JOBS})"))}
    m = interleaved(max(1, reps // 5), work, **commands)
    per_job = {name: [(n - one) / (LAUNCHER_JOBS - 1) for one, n in
                      zip(m[f"{name} 1"].seconds, m[f"{name} n"].seconds, strict=True)] for name in LAUNCHERS}
    return [Row(f"per-job cost, {name} launcher", per_job[name], per_job["basic"], unit="s/job",
                note=f"(sweep of {LAUNCHER_JOBS} jobs - sweep of 1) / {LAUNCHER_JOBS - 1}, 2 CPUs; "
                     "baseline: the basic launcher") for name in LAUNCHERS]


def bench_summary(reps: int, work: Path) -> list[Row]:
    """summary.write over 1,000 jobs' files, in this process."""
    sys.path.insert(0, str(HERE.parent))
    from runner.outputs import summary

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


def bench_inprocess(reps: int, work: Path) -> list[Row]:
    """Heavy tape work and curves: one process, one TensorFlow start-up (benchmarks/inprocess.py)."""
    _, _, out = run_process([PYTHON, str(HERE / "inprocess.py"), str(reps), str(work / "inprocess")], work)
    found = json.loads(out.splitlines()[-1])
    shutil.rmtree(work / "inprocess", ignore_errors=True)
    rows = []
    for n, rates in found["heavy"].items():
        rows += [Row(f"heavy tape: linear {n}^3 float32, compile=function vs hand-written tf.function",
                     rates["runner"], rates["hand"], unit="GFLOP/s", target=0.95, higher_is_better=True,
                     note="runner: its step's min / median / max over timing_repeats, from results.json"),
                 Row(f"heavy tape: linear {n}^3, runner vs the machine's tf.matmul rate", rates["runner"],
                     rates["matmul"], unit="GFLOP/s", target=0.8, higher_is_better=True)]
    curves = found["curves"]
    checks = statistics.median(t["checks"] for t in curves["runner_timings"])
    plots = statistics.median(t.get("plots", 0.0) for t in curves["runner_timings"])
    rows.append(Row("curves: sigmoid over 10^7 points, verified", curves["runner"], curves["plain"],
                    target=1.1,
                    note=f"both sides check the gradient at every point against SymPy, the closed form and "
                         f"central differences, write a JSON and the plot; the runner's checks take "
                         f"{checks:.2f} s and its plot {plots:.2f} s (medians), after start-up"))
    return rows


JACOBIAN = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[4])
from plain_tf import tf
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
    for mode in ("pfor", "while_loop"):  # one process each, so each peak memory is its own
        _, _, out = run_process([PYTHON, "-c", JACOBIAN, str(n), mode, str(reps), str(HERE)], work)
        found[mode] = json.loads(out.splitlines()[-1])
    return [Row(f"Hessian of a {n}-input function: pfor vs while_loop, time", found["pfor"]["seconds"],
                found["while_loop"]["seconds"], target=1.0,
                note="tape.jacobian(experimental_use_pfor=True), the runner's default, against False"),
            Row(f"Hessian of a {n}-input function: pfor vs while_loop, memory added",
                [found["pfor"]["extra_mib"]], [found["while_loop"]["extra_mib"]], unit="MiB")]


def program_jacobian_rows(reps: int, work: Path, sizes: tuple[int, ...]) -> list[Row]:
    """dy/dw of y = x @ w, x (64, 256), w (256, n), through the runner (benchmarks/jacobian_program.py):
    pfor against the while_loop, one process per path and size, so each peak memory is its own."""
    rows = []
    for columns in sizes:
        found = {}
        for mode in ("pfor", "while_loop"):
            _, _, out = run_process([PYTHON, str(HERE / "jacobian_program.py"), mode, str(columns),
                                     str(reps)], work)
            found[mode] = json.loads(out.splitlines()[-1])
        shape = f"(64, {columns}, 256, {columns})"
        gib = 64 * columns * 256 * columns * 4 / 2**30
        rows += [Row(f"program jacobian {shape}, {gib:g} GiB float32: pfor vs while_loop, time",
                     found["pfor"]["seconds"], found["while_loop"]["seconds"],
                     note=f"compile=function: min / median / max of {reps} calls after tracing "
                          "(timings.tape_repeat); one process per path; checks off"),
                 Row(f"program jacobian {shape}: pfor vs while_loop, peak memory added",
                     [found["pfor"]["extra_mib"]], [found["while_loop"]["extra_mib"]], unit="MiB",
                     note=f"the job's peak resident set over TensorFlow's; the traced step runs {reps + 1} "
                          "times, and each call's Jacobian is still held while the next one runs")]
    return rows


def bench_program_jacobian(reps: int, work: Path) -> list[Row]:
    """The Jacobian of a (64, 256) output w.r.t. a (256, 64) and a (256, 128) kernel (2^26, 2^28 elements)."""
    return program_jacobian_rows(max(3, reps // 2), work, (64, 128))


def bench_program_jacobian_256(reps: int, work: Path) -> list[Row]:
    """The full (256, 256) kernel: 2^30 elements, 4 GiB; each path's process peaks near 13 GiB."""
    return program_jacobian_rows(2, work, (256,))


def bench_program(reps: int, work: Path) -> list[Row]:
    """A 10^6-element program checked by random projections (benchmarks/program.py), one process."""
    _, _, out = run_process([PYTHON, str(HERE / "program.py"), str(reps)], work)
    found = json.loads(out.splitlines()[-1])
    return [Row("program of 10^6 elements: checks (random projections) vs the tape step alone",
                found["checks"], found["tape"],
                note="x (1000, 1000) and w (1000, 10), loss = reduce_mean(square(tanh(x @ w) - 0.5)): each "
                     "source is checked by 4 projections v.(J u), each two float64 NumPy forward passes and "
                     "one eager VJP, against the compiled tape step's median (timings.tape_repeat)")]


def bench_layer(reps: int, work: Path) -> list[Row]:
    """A million-weight Dense layer checked by random projections (benchmarks/layer.py), one process."""
    rows = []
    for count in (1, 4):  # checks.projections's default, then four
        _, _, out = run_process([PYTHON, str(HERE / "layer.py"), str(reps), str(count)], work)
        found = json.loads(out.splitlines()[-1])
        rows.append(Row(f"Dense(1024) on a batch of 64 (10^6 weights): the whole check, {count} projection"
                        f"{'s' if count > 1 else ''} per source, vs the tape step alone",
                        found["checks"], found["tape"], target=10.0 if count == 1 else None,
                        note="dloss/dy.kernel and dloss/dy.bias, loss = reduce_mean(y**2), each checked by "
                             f"checks.projections={count} v.(J u), float64 central differences sharing "
                             "one x @ s product per kernel projection; "
                             "timings.checks against the compiled tape step's median (timings.tape_repeat, "
                             "forward and backward)"))
    return rows


def bench_fuzzing(reps: int, work: Path) -> list[Row]:
    """The default campaign (tape-runner -m experiment=fuzz), once: it is a minute or more on its own."""
    del reps  # one campaign: 100 programs are already 100 samples of a program's cost
    seconds, _, _ = run_process([*RUNNER, "-m", "experiment=fuzz"], work, expect=2)
    (found,) = work.glob("outputs/multirun/*/*/findings/findings.json")
    campaign = json.loads(found.read_text())
    shutil.rmtree(work / "outputs")
    per_program = campaign["seconds"] / campaign["programs"]
    shrinks = [f["shrink_s"] for f in campaign["findings"]] or [0.0]
    return [
        Row("fuzzing: the default campaign, programs a minute", [60 / per_program], [10.0],
            unit="programs/min", target=1.0, higher_is_better=True,
            note=f"{campaign['programs']} programs in {campaign['seconds']:.0f} s, the whole command in "
                 f"{seconds:.0f} s (its findings shrunk and written); baseline is the budget, 100 "
                 "programs in 10 minutes on a 2-core machine"),
        Row("fuzzing: shrinking a finding, in programs' time", shrinks, [per_program] * len(shrinks),
            note=f"{len(campaign['findings'])} finding(s), each shrunk to "
                 f"{', '.join(str(f['steps']) for f in campaign['findings'])} step(s); baseline is the "
                 "campaign's mean time per program: the ratio is how many programs' time a shrink costs"),
    ]


#: make bench runs these, in about seventeen minutes here (the launchers item alone takes three to five:
#: eight sweeps, one Ray start-up each for two of them). More run on request, outside that budget:
#: --only joblib (five pairs of 100-job sweeps, ~4 minutes), --only program_jacobian_256 (2^30 elements).
def bench_bounds(reps: int, work: Path) -> list[Row]:
    """Hostile input refused before its work (benchmarks/bounds.py): budgets from SECURITY.md."""
    sys.path.insert(0, str(HERE))
    import bounds

    m = bounds.main(reps)
    cases = ("layer", "embedding", "tower")
    worst = [max(parts) for parts in zip(*(m[f"{c}_after"] for c in cases), strict=True)]
    peaks = [max(parts) for parts in zip(*(m[f"{c}_peak"] for c in cases), strict=True)]
    return [
        Row("hostile config refused (Dense 20000x20000, Embedding 5e6x40, 9**9**9 folded): s after start-up",
            worst, [2.0] * reps, target=1.0,
            note="the worst of the three per repetition, minus the same command's --cfg job; baseline is "
                 "the 2 s budget"),
        Row("hostile config refused: peak memory", peaks, [p + 100 for p in m["tf_peak"]], unit="MiB",
            target=1.0, note="baseline is TensorFlow's own import plus 100 MiB (none of them imports it)"),
        Row("a sweep folder naming job 1,000,000: tape-runner-report, s after start-up",
            m["job_1000000_after"], [2.0] * reps, target=1.0, note="minus tape-runner-report --help; "
                                                                   "baseline is the 2 s budget"),
        Row("a received snapshot setting hydra.run.dir: --rerun refused, s after start-up",
            m["snapshot_after"], [1.0] * reps, target=1.0, note="minus tape-runner-report --help; "
                                                                "baseline is the 1 s budget"),
        Row("a 2-job sweep with tracking=mlflow, its server down: extra s over tracking=none",
            [d - n for d, n in zip(m["mlflow_down"], m["mlflow_none"], strict=True)], [10.0] * reps,
            target=1.0, note="MLFLOW_TRACKING_URI at a closed port on 127.0.0.1; baseline is the 10 s "
                             "budget"),
    ]


BENCHMARKS: dict[str, Callable[[int, Path], list[Row]]] = {
    "one_run": bench_one_run, "sweeps": bench_sweeps, "summary": bench_summary, "cli": bench_cli,
    "inprocess": bench_inprocess, "jacobian": bench_jacobian, "program": bench_program,
    "notebook": bench_notebook, "seed_sweep": bench_seed_sweep, "launchers": bench_launchers,
    "program_jacobian": bench_program_jacobian, "layer": bench_layer, "bounds": bench_bounds,
    "fuzzing": bench_fuzzing,
}
OPTIONAL: dict[str, Callable[[int, Path], list[Row]]] = {
    "joblib": bench_joblib, "program_jacobian_256": bench_program_jacobian_256,
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
             f"Machine: {machine()}  ", f"Repetitions: {reps}, interleaved (min / median / max). "
             f"Whole benchmark: {elapsed:.0f} s.", "",
             "| benchmark | unit | runner | baseline | ratio | target | met |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        target = "—" if row.target is None else f"{'≥' if row.higher_is_better else '≤'} {row.target:g}"
        met = {None: "—", True: "yes", False: "**no**"}[row.met]
        lines.append(f"| {row.name} | {row.unit} | {span(row.runner)} | {span(row.baseline)} | "
                     f"{row.ratio:.3g} | {target} | {met} |")
    lines += ["", "Notes:"] + [f"- {row.name}: {row.note}" for row in rows if row.note]
    return "\n".join(lines) + "\n"


def _analysis(path: Path) -> str:
    """The hand-written sections (from the first "## " heading on) of the results file, kept."""
    text = path.read_text() if path.exists() else ""
    return text[text.index("\n## "):] if "\n## " in text else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", nargs="*", choices=[*BENCHMARKS, *OPTIONAL], default=list(BENCHMARKS))
    args = parser.parse_args()
    for package in ("runner", "hydra_plugins"):  # bytecode, as an install has it (see above)
        compileall.compile_dir(HERE.parent / package, quiet=1)
    work = Path(tempfile.mkdtemp(prefix="tape-runner-bench-"))
    started = time.perf_counter()
    rows: list[Row] = []
    try:
        for name in args.only:
            t = time.perf_counter()
            rows += {**BENCHMARKS, **OPTIONAL}[name](args.reps, work)
            print(f"{name}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = render(rows, args.reps, time.perf_counter() - started)
    if args.only == list(BENCHMARKS) and args.reps >= 5:
        (HERE / "results.md").write_text(report + _analysis(HERE / "results.md"))
    print(report)


if __name__ == "__main__":
    main()
