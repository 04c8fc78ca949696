"""One job, start to finish: validate, run the routine, write every file, report status.

The wrapper never lets an exception escape into Hydra: a bad config or a failing
routine becomes a ``results.json`` with status ``error`` and a one-line log
message, so one job's failure never costs a sweep its other jobs or its summary.
With ``HYDRA_FULL_ERROR=1`` the exception is re-raised after the record is
written, so Hydra prints its traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from runner import outputs, report
from runner.errors import ConfigError, JobTimeout
from runner.failures import keep_traceback, one_line
from runner.result import Outcome
from runner.schema import load_run

log = logging.getLogger(__name__)

EXIT_CODES = {"ok": 0, "error": 1, "check_failed": 2}
_SEVERITY = ("ok", "check_failed", "error")
_worst = "ok"


def exit_status() -> int:
    """The exit code for everything this process ran: the worst job decides."""
    return EXIT_CODES[_worst]


def note_status(status: str) -> None:
    global _worst
    if _SEVERITY.index(status) > _SEVERITY.index(_worst):
        _worst = status


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`JobTimeout` inside the job once ``seconds`` have passed.

    Signals reach only the main thread, where every launcher here runs its jobs;
    elsewhere (or with ``seconds <= 0``) the job runs unbounded. An op running in
    TensorFlow's C++ is interrupted when it returns to Python.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise JobTimeout(f"the job ran past limits.time_s={seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _config_container(cfg: DictConfig) -> Any:
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an unresolvable interpolation is itself the error being reported
        return OmegaConf.to_container(cfg, resolve=False)


def _shell_word(text: str) -> str:
    """Quote for a POSIX shell, preferring the readable "scenario.function='x**2'" form."""
    if text == shlex.quote(text) or any(c in text for c in '"$`\\!'):
        return shlex.quote(text)
    return f'"{text}"'


def _commands(run_dir: Path) -> tuple[str, str]:
    overrides = HydraConfig.get().overrides.task
    command = " ".join(["tape-runner", *(_shell_word(o) for o in overrides)])
    snapshot = _shell_word(str((run_dir / ".hydra").resolve()))
    return command, f"tape-runner --config-path {snapshot} --config-name config"


def execute(cfg: DictConfig) -> str:
    """Run the job ``cfg`` describes into Hydra's output directory; return its status."""
    started = time.perf_counter()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    scenario = cfg.get("scenario")
    name = scenario.get("name") if isinstance(scenario, DictConfig) else None
    outcome: Outcome | None = None
    failure: Exception | None = None
    message = None
    trace: str | None = None
    timings: dict[str, float] = {}
    try:
        run = load_run(cfg)
        from runner import routines

        routines.load_routine(run.scenario.routine)  # TensorFlow loads here, not at start-up
        timings["setup"] = time.perf_counter() - started
        with time_limit(run.limits.time_s):
            outcome = routines.run_routine(run)
        status = "ok" if outcome.passed else "check_failed"
    except ConfigError as err:
        failure, status, message = err, "error", str(err)
    except Exception as err:
        failure, status, message = err, "error", one_line(err)
        trace = keep_traceback(err, log)

    if message:
        log.error("%s", message)
    record = _record(cfg, name, status, message, outcome, run_dir, timings)
    record["traceback"] = trace  # an unexpected exception's whole story; None otherwise
    try:
        if outcome is not None:
            _draw(cfg, outcome, run_dir, record)
        record["timings"]["total"] = time.perf_counter() - started  # before the reports, which show it
        if cfg.get("report", True):
            report.write_reports(record, run_dir)
        outputs.write_json(run_dir / outputs.RESULTS, record)
    except OSError as err:  # a full disk, a directory gone read-only
        log.error("cannot write outputs to %s: %s", run_dir, err.strerror or err)
        note_status("error")
        return "error"

    failed = [c.name for c in outcome.checks if not c.passed] if outcome else []
    if failed:
        log.warning("check failed: %s", "; ".join(failed))
    log.info("%s: %s; outputs in %s", name, status, run_dir)
    note_status(status)
    if failure is not None and os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise failure  # the record is written; now show where it came from
    return status


def _record(
    cfg: DictConfig,
    name: str | None,
    status: str,
    message: str | None,
    outcome: Outcome | None,
    run_dir: Path,
    timings: dict[str, float],
) -> dict[str, Any]:
    tfenv = sys.modules.get("runner.tfenv")
    command, rerun = _commands(run_dir)
    hydra = HydraConfig.get()
    record: dict[str, Any] = {
        "scenario": name,
        "status": status,
        "message": message,
        "job": {"num": hydra.job.num if hydra.mode == RunMode.MULTIRUN else None,
                "overrides": list(hydra.overrides.task)},
        "gradients": {},
        "inputs": {},
        "values": {},
        "checks": [],
        "notes": {},
        "analytic": {},
        "plots": [],
        "config": _config_container(cfg),
        "environment": outputs.environment(getattr(tfenv, "DEVICES", None)),
        "timings": timings,
        "command": command,
        "rerun_command": rerun,
        "snippet": "",
        "reference_error": {},
    }
    if outcome is not None:
        record.update(gradients=outcome.gradients, inputs=outcome.inputs, values=outcome.values,
                      checks=outcome.checks, notes=outcome.notes, analytic=outcome.analytic,
                      snippet=outcome.snippet, reference_error=outcome.reference)
        timings.update(outcome.timings)
    return outputs.jsonable(record)


def _draw(cfg: DictConfig, outcome: Outcome, run_dir: Path, record: dict[str, Any]) -> None:
    if not cfg.get("plots", True) or not outcome.figures:
        return
    from runner.plots import draw

    started = time.perf_counter()
    record["plots"] = [draw(figure, run_dir).name for figure in outcome.figures]
    record["timings"]["plots"] = time.perf_counter() - started
