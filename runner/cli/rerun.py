"""``tape-runner-report DIR --rerun``: run a run again, or resume a sweep.

A run is re-run from its own snapshot (``<run>/.hydra``), exactly as its report's
``rerun_command`` says. A sweep is resumed: only the jobs whose results are
missing or errored (from ``jobs.json`` and each job's directory) run again, into
their own directories, through the launcher the sweep chose; the sweep's summary
is then rebuilt over all of them.

A folder someone sent is data (:mod:`runner.jobs.received`): a run's snapshot is
checked before it is handed to Hydra, and a sweep's command comes from its
``multirun.yaml`` only through the same gate. Only the launcher's choice and
values, the sweep's parameters and its batch size carry over of Hydra's
settings; anything else of Hydra's is left out, and said so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from runner.jobs import received
from runner.outputs import summary
from runner.outputs.files import JOBS, RESULTS


class RerunError(ValueError):
    """A run or sweep that cannot be re-run, with the reason in one line."""


def _runner(*args: str) -> list[str]:
    return [sys.executable, "-m", "runner", *args]


def _installed() -> tuple[dict[str, float], received.SearchPath]:
    """This installation's limits and config search path: what a received folder is checked against."""
    from runner.cli.main import CONFIG_DIR

    return received.installed_limits(CONFIG_DIR), received.SearchPath((Path(CONFIG_DIR),))


def rerun_run(run_dir: Path) -> int:
    """Run ``run_dir``'s snapshot again (outputs under the working directory); its exit status."""
    snapshot = run_dir / ".hydra"
    if snapshot.is_symlink():
        raise RerunError(f"{snapshot} is a symbolic link; it is not followed")
    if not os.path.lexists(snapshot / "config.yaml"):
        raise RerunError(f"{snapshot} holds no config.yaml: nothing to re-run")
    try:
        received.check_snapshot(snapshot, *_installed())
    except received.Refused as err:
        raise RerunError(str(err)) from None
    command = _runner("--config-path", str(snapshot.resolve()), "--config-name", "config")
    return subprocess.run(command).returncode


def sweep_command(sweep_dir: Path, jobs: list[int]) -> tuple[list[str], list[str]]:
    """The command that runs ``jobs`` of the sweep again, and the Hydra overrides it leaves out."""
    try:
        task, kept, dropped = received.check_sweep(sweep_dir / "multirun.yaml", *_installed())
    except received.Refused as err:
        raise RerunError(str(err)) from None
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
