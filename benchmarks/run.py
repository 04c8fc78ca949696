"""tape-runner's benchmark: the runner against hand-written baselines, measured in the same run.

Absolute times drift on shared machines, so every figure is a median over
repetitions, and every target is a ratio against a baseline timed in the same
process, interleaved with it rep by rep. Each command runs in a fresh process
(TensorFlow start-up included, as a user pays it); peak memory is that process's
maximum resident set size.

Usage: python benchmarks/run.py [--reps N]   (writes benchmarks/results.md)
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEED = "basic,watch,sigmoid,linear,persistent"


@dataclass
class Sample:
    seconds: list[float] = field(default_factory=list)
    peak_mib: list[float] = field(default_factory=list)

    def add(self, seconds: float, peak_mib: float) -> None:
        self.seconds.append(seconds)
        self.peak_mib.append(peak_mib)


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one fresh process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{proc.stderr.read().decode()}")
    return seconds, usage.ru_maxrss / 1024


@dataclass
class Comparison:
    name: str
    runner: list[str]
    baseline: list[str]
    baseline_label: str
    target: float
    results: dict[str, Sample] = field(default_factory=lambda: {"runner": Sample(), "baseline": Sample()})

    def ratio(self) -> float:
        return statistics.median(self.results["runner"].seconds) / statistics.median(
            self.results["baseline"].seconds)


def comparisons(work: Path) -> list[Comparison]:
    python = sys.executable
    return [
        Comparison(
            "seed sweep (5 scenarios, checks, plots, reports)",
            [python, "-m", "runner", "-m", f"scenario={SEED}", f"hydra.sweep.dir={work}/sweep"],
            [python, str(HERE / "plain_seed.py"), str(work / "plain")],
            "plain TensorFlow, same gradients, same checks, same files",
            1.5,
        ),
        Comparison(
            "seed sweep against gradients only",
            [python, "-m", "runner", "-m", f"scenario={SEED}", f"hydra.sweep.dir={work}/sweep2"],
            [python, str(HERE / "plain_seed.py"), str(work / "plain2"), "--no-checks"],
            "plain TensorFlow, same gradients, no checks",
            0.0,  # informational: no target
        ),
    ]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = cpu
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}"


def render(items: list[Comparison], reps: int) -> str:
    lines = ["# tape-runner benchmark", "",
             f"Machine: {machine()}  ", f"Repetitions: {reps}, interleaved; times are wall seconds "
             "of a fresh process (min / median / max); memory is peak RSS.", "",
             "| benchmark | runner s (min/med/max) | baseline s (min/med/max) | ratio | target | "
             "peak MiB runner / baseline | met |",
             "|---|---|---|---|---|---|---|"]
    for item in items:
        r, b = item.results["runner"], item.results["baseline"]

        def span(values: list[float]) -> str:
            return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"

        target = f"≤ {item.target:.2f}x" if item.target else "—"
        met = ("yes" if item.ratio() <= item.target else "**no**") if item.target else "—"
        lines.append(f"| {item.name} | {span(r.seconds)} | {span(b.seconds)} | {item.ratio():.2f}x | "
                     f"{target} | {statistics.median(r.peak_mib):.0f} / "
                     f"{statistics.median(b.peak_mib):.0f} | {met} |")
    lines += ["", "Baselines:"]
    lines += [f"- {item.name}: {item.baseline_label}" for item in items]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tape-runner-bench-"))
    try:
        items = comparisons(work)
        for rep in range(args.reps):
            for item in items:
                for side, cmd in (("runner", item.runner), ("baseline", item.baseline)):
                    item.results[side].add(*timed(cmd, work))
                    for leftover in ("sweep", "sweep2", "plain", "plain2"):
                        shutil.rmtree(work / leftover, ignore_errors=True)
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = render(items, args.reps)
    (HERE / "results.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
