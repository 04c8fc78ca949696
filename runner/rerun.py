"""``tape-runner-report DIR --rerun``: run a run again, or resume a sweep.

A run is re-run from its own snapshot (``<run>/.hydra``), exactly as its report's
``rerun_command`` says. A sweep is resumed: only the jobs whose results are
missing or errored (from ``jobs.json`` and each job's directory) run again, into
their own directories, through the launcher the sweep chose; the sweep's summary
is then rebuilt over all of them.

The sweep's command comes from its ``multirun.yaml``, a file someone may have
sent: its overrides are data for the runner, never Hydra settings that could name
Python to run. Only the launcher's choice and values, the sweep's parameters and
its batch size carry over; anything else of Hydra's is left out, and said so.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from runner import summary
from runner.outputs import JOBS, RESULTS

#: Hydra settings a resumed sweep keeps as they were: the launcher's choice, how its jobs were batched.
_KEPT = ("hydra/launcher", "hydra.mode", "hydra.sweeper.max_batch_size")
#: The launcher's values a resumed sweep keeps: resources and scheduling, never shell lines or paths.
_LAUNCHER_KEYS = frozenset({
    "n_jobs", "backend", "prefer", "timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node",
    "mem_gb", "nodes", "name", "partition", "qos", "comment", "constraint", "exclude", "gres",
    "cpus_per_gpu", "gpus_per_task", "mem_per_gpu", "mem_per_cpu", "account", "array_parallelism",
    "max_num_timeout"})
_CODE_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")


class RerunError(ValueError):
    """A run or sweep that cannot be re-run, with the reason in one line."""


def _runner(*args: str) -> list[str]:
    return [sys.executable, "-m", "runner", *args]


def rerun_run(run_dir: Path) -> int:
    """Run ``run_dir``'s snapshot again (outputs under the working directory); its exit status."""
    snapshot = run_dir / ".hydra"
    if not (snapshot / "config.yaml").is_file():
        raise RerunError(f"{snapshot} holds no config.yaml: nothing to re-run")
    command = _runner("--config-path", str(snapshot.resolve()), "--config-name", "config")
    return subprocess.run(command).returncode


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def _kept(override: str) -> bool:
    """Whether a Hydra override of the original sweep is safe and needed to resume it."""
    key = _key(override)
    if any(k in override for k in _CODE_KEYS):
        return False
    if key.startswith("hydra.launcher."):
        return key.removeprefix("hydra.launcher.") in _LAUNCHER_KEYS
    if key.startswith("hydra.sweeper.params."):  # the swept values: runner keys, never Hydra's
        return not key.removeprefix("hydra.sweeper.params.").lstrip("+~").startswith("hydra")
    return key in _KEPT


def sweep_command(sweep_dir: Path, jobs: list[int]) -> tuple[list[str], list[str]]:
    """The command that runs ``jobs`` of the sweep again, and the Hydra overrides it leaves out."""
    import yaml

    where = sweep_dir / "multirun.yaml"
    try:
        saved = yaml.safe_load(where.read_text())
        overrides = saved["hydra"]["overrides"]
        task, hydra = list(overrides["task"]), list(overrides["hydra"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise RerunError(f"cannot read the sweep's command from {where}: {err}") from None
    if not all(isinstance(o, str) for o in [*task, *hydra]):
        raise RerunError(f"{where}: overrides must be strings")
    if bad := [o for o in task if _key(o).startswith("hydra") or any(k in o for k in _CODE_KEYS)]:
        raise RerunError(f"{where}: not a runner override: {bad[0]}")
    kept = [o for o in hydra if _kept(o)]
    dropped = [o for o in hydra if o not in kept]
    mark = next((q for q in "'\"" if q not in str(sweep_dir.resolve())), None)
    if mark is None:
        raise RerunError(f"cannot pass {sweep_dir.resolve()} to Hydra: it holds both kinds of quote")
    command = _runner("-m", *kept, *task, f"hydra.sweep.dir={mark}{sweep_dir.resolve()}{mark}",
                      f"hydra.sweeper.rerun=[{','.join(map(str, jobs))}]")
    return command, dropped


def resume_sweep(sweep_dir: Path) -> int:
    """Run the sweep's missing and errored jobs again; the exit status (0 when none needed it)."""
    if not (sweep_dir / JOBS).is_file():
        raise RerunError(f"{sweep_dir} has no {JOBS}: only a sweep whose jobs were listed when it "
                         "started can be resumed")
    todo = [row["job"] for row in summary.collect(sweep_dir).rows if row["status"] in ("missing", "error")]
    if not todo:
        print(f"every job of {sweep_dir} has results: nothing to re-run")
        return 0
    command, dropped = sweep_command(sweep_dir, todo)
    if dropped:
        print(f"tape-runner-report: not carried over from the sweep: {' '.join(dropped)}", file=sys.stderr)
    print(f"re-running job(s) {', '.join(map(str, todo))} of {sweep_dir}", flush=True)
    return subprocess.run(command).returncode


def is_run(directory: Path) -> bool:
    """A run directory (its results, or at least its snapshot), not a sweep's."""
    return (directory / RESULTS).is_file() or (directory / ".hydra" / "config.yaml").is_file()


def rerun(directory: Path) -> int:
    """Re-run a run, or resume a sweep; the exit status of what ran."""
    return rerun_run(directory) if is_run(directory) else resume_sweep(directory)
