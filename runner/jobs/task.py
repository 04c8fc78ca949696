"""One job, start to finish: validate, run the routine, write every file, report status.

The wrapper never lets an exception escape into Hydra: a bad config or a failing
routine becomes a ``results.json`` with status ``error`` and a one-line log
message, so one job's failure never costs a sweep its other jobs or its summary.
With ``HYDRA_FULL_ERROR=1`` the exception is re-raised after the record is
written, so Hydra prints its traceback.

:func:`execute` is the Hydra task; :func:`perform` is the job itself, given a
:class:`Job` (where to write, if anywhere, and the overrides that made it), so
the Python API (:mod:`runner.api`) runs exactly the same job without Hydra's
runtime config. The worst status of a CLI invocation's jobs lives in its
:class:`Invocation`, opened by the entry point, never in a module global: runs
from Python are outside any invocation and each reports only its own status.
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
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from runner.errors import ConfigError, JobTimeout
from runner.jobs import snapshot
from runner.jobs.failures import keep_traceback, one_line
from runner.outputs import console, files, report
from runner.result import Outcome
from runner.scenarios import fuzzing
from runner.scenarios.loading import load_run

log = logging.getLogger(__name__)

EXIT_CODES = {"ok": 0, "error": 1, "check_failed": 2, "unverified": 3}
_SEVERITY = ("ok", "unverified", "check_failed", "error")


def worse(first: str, second: str) -> str:
    """The more severe of two statuses (ok < unverified < check_failed < error)."""
    return max(first, second, key=_SEVERITY.index)


@dataclass
class Invocation:
    """One CLI invocation: the worst status of its jobs, and its sweep while the summary is pending."""

    worst: str = "ok"
    pending: Any = None  # runner.jobs.callbacks keeps the running sweep here until its summary is written

    def note(self, status: str) -> None:
        self.worst = worse(self.worst, status)

    def exit_status(self) -> int:
        """The exit code for everything this invocation ran: the worst job decides."""
        return EXIT_CODES[self.worst]


_INVOCATION: ContextVar[Invocation | None] = ContextVar("tape_runner_invocation", default=None)


@contextlib.contextmanager
def invocation() -> Iterator[Invocation]:
    """Open a fresh :class:`Invocation` for the jobs run inside the ``with`` block."""
    current = Invocation()
    token = _INVOCATION.set(current)
    try:
        yield current
    finally:
        _INVOCATION.reset(token)


def current_invocation() -> Invocation | None:
    return _INVOCATION.get()


def note_status(status: str) -> None:
    """Count a job's status towards the open invocation's exit status (outside one, nothing to count)."""
    if (current := _INVOCATION.get()) is not None:
        current.note(status)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`JobTimeout` inside the job once ``seconds`` have passed (``<= 0``: no limit).

    In the main thread, where every launcher here runs its jobs, a SIGALRM raises it; in any
    other thread (the Python API called from a thread, a notebook's worker), signals never
    arrive, so a timer thread raises it asynchronously in the job's thread instead. Either way
    it is raised between two Python bytecodes: an op running in TensorFlow's C++ is interrupted
    when it returns to Python. Where it lands inside a C call that calls back into Python
    (NumPy asking a tensor for its array), the C code may turn it into another exception (a
    SystemError): whatever is raised once the limit has fired is reported as the timeout it is.
    """
    if seconds <= 0:
        yield
        return
    message = f"the job ran past limits.time_s={seconds:g} s"
    fired = threading.Event()
    timer = _alarm(seconds, message, fired) if threading.current_thread() is threading.main_thread() \
        else _async_timer(seconds, message, fired)
    try:
        with timer:
            yield
    except Exception as err:
        if fired.is_set() and not (isinstance(err, JobTimeout) and str(err) == message):
            raise JobTimeout(message) from err
        raise
    if fired.is_set():  # the limit fired, and the code it interrupted swallowed the exception: still late
        raise JobTimeout(message)


@contextlib.contextmanager
def _alarm(seconds: float, message: str, fired: threading.Event) -> Iterator[None]:
    """SIGALRM after ``seconds``, raising :class:`JobTimeout` in the main thread."""
    def expire(signum: int, frame: Any) -> None:
        fired.set()
        raise JobTimeout(message)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _async_timer(seconds: float, message: str, fired: threading.Event) -> Iterator[None]:
    """A timer thread that raises :class:`JobTimeout` in this thread after ``seconds``.

    CPython's ``PyThreadState_SetAsyncExc`` raises a class, without a message: :func:`time_limit`
    gives it one. A lock keeps the timer from firing once the block has ended, and an exception it
    set that was not yet raised is withdrawn on the way out.
    """
    import ctypes

    target = ctypes.c_ulong(threading.get_ident())
    lock, active = threading.Lock(), [True]

    def expire() -> None:
        with lock:
            if active[0]:
                fired.set()
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, ctypes.py_object(JobTimeout))

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            active[0] = False
            timer.cancel()
            if fired.is_set():  # set but maybe not yet raised: never let it escape the job
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, None)


def _config_container(cfg: DictConfig) -> Any:
    """The job's config as plain data; a drawn program (scenario=fuzz) as the program it drew."""
    try:
        return fuzzing.as_drawn(OmegaConf.to_container(cfg, resolve=True))
    except Exception:  # an unresolvable interpolation is itself the error being reported
        return OmegaConf.to_container(cfg, resolve=False)


def _shell_word(text: str) -> str:
    """Quote for a POSIX shell, preferring the readable "scenario.function='x**2'" form."""
    if text == shlex.quote(text) or any(c in text for c in '"$`\\!'):
        return shlex.quote(text)
    return f'"{text}"'


@dataclass
class Job:
    """Where a job writes its files (``None``: nowhere) and the overrides that asked for it."""

    run_dir: Path | None
    overrides: list[str]
    num: int | None = None  # its number in a sweep


def _commands(job: Job) -> tuple[str, str]:
    command = " ".join(["tape-runner", *(_shell_word(o) for o in job.overrides)])
    if job.run_dir is None:  # nothing saved: only the overrides can reproduce it
        return command, ""
    saved = _shell_word(str((job.run_dir / ".hydra").resolve()))
    return command, f"tape-runner --config-path {saved} --config-name config"


@dataclass
class Done:
    """A finished job: its status, its record (what results.json holds), and what it computed."""

    status: str
    record: dict[str, Any]
    outcome: Outcome | None
    failure: Exception | None = None  # what made status "error", if it was raised


def execute(cfg: DictConfig) -> str:
    """Run the job ``cfg`` describes into Hydra's output directory; return its status."""
    hydra = HydraConfig.get()
    run_dir = Path(hydra.runtime.output_dir)
    job = Job(run_dir, snapshot.record_overrides(hydra, run_dir),
              hydra.job.num if hydra.mode == RunMode.MULTIRUN else None)
    done = perform(cfg, job)
    if done.failure is not None and os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise done.failure  # the record is written; now show where it came from
    return done.status


def perform(cfg: DictConfig, job: Job) -> Done:
    """Run the job ``cfg`` describes, write its files into ``job.run_dir`` (if any), log its status."""
    started = time.perf_counter()
    run_dir = job.run_dir
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
        status = outcome.status
        if status == "check_failed":
            message = "; ".join(c.failure() for c in outcome.checks if not c.passed)
        elif status == "unverified":
            message = (f"no oracle checked {', '.join(outcome.unchecked)}: every check independent of "
                       "TensorFlow's autodiff was off or skipped (checks.analytic, "
                       "checks.finite_differences; the notes say why)")
    except ConfigError as err:
        failure, status, message = err, "error", str(err)
    except Exception as err:
        failure, status, message = err, "error", one_line(err)
        trace = keep_traceback(err, log)

    if message and status == "error":
        log.error("%s", message)
    record = _record(cfg, name, status, message, outcome, job, timings)
    record["traceback"] = trace  # an unexpected exception's whole story; None otherwise
    try:
        _write(cfg, outcome, run_dir, record, started)
    except OSError as err:  # a full disk, a directory gone read-only
        log.error("cannot write outputs to %s: %s", run_dir, err.strerror or err)
        note_status("error")
        return Done("error", record, outcome, err)

    if outcome is not None and job.num is None:  # one run: what it computed, and how it was checked
        for line in console.lines(outcome):
            log.info("%s", line)
    if status in ("check_failed", "unverified"):
        log.warning("%s: %s", "check failed" if status == "check_failed" else "unverified", message)
    log.info("%s: %s; outputs in %s", name, status, run_dir or "not saved")
    note_status(status)
    return Done(status, record, outcome, failure)


def _write(cfg: DictConfig, outcome: Outcome | None, run_dir: Path | None, record: dict[str, Any],
           started: float) -> None:
    """Plots, reports and results.json into ``run_dir``; without one, only the plots' names."""
    if run_dir is None:
        if outcome is not None and cfg.get("plots", True):
            record["plots"] = [figure.filename for figure in outcome.figures]
        record["timings"]["total"] = time.perf_counter() - started
        return
    if outcome is not None:
        _draw(cfg, outcome, run_dir, record)
    record["timings"]["total"] = time.perf_counter() - started  # before the reports, which show it
    if cfg.get("report", True):
        report.write_reports(record, run_dir)
    files.write_json(run_dir / files.RESULTS, record)


def _record(
    cfg: DictConfig,
    name: str | None,
    status: str,
    message: str | None,
    outcome: Outcome | None,
    job: Job,
    timings: dict[str, float],
) -> dict[str, Any]:
    tfenv = sys.modules.get("runner.tfenv")
    command, rerun = _commands(job)
    record: dict[str, Any] = {
        "scenario": name,
        "status": status,
        "message": message,
        "job": {"num": job.num, "overrides": list(job.overrides)},
        "gradients": {},
        "inputs": {},
        "values": {},
        "checks": [],
        "notes": {},
        "analytic": {},
        "plots": [],
        "config": _config_container(cfg),
        "environment": files.environment(getattr(tfenv, "DEVICES", None)),
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
        if outcome.watched_variables is not None:
            record["watched_variables"] = outcome.watched_variables
        timings.update(outcome.timings)
    return files.jsonable(record)


def _draw(cfg: DictConfig, outcome: Outcome, run_dir: Path, record: dict[str, Any]) -> None:
    if not cfg.get("plots", True) or not outcome.figures:
        return
    from runner.outputs.plots import draw

    started = time.perf_counter()
    record["plots"] = [draw(figure, run_dir).name for figure in outcome.figures]
    record["timings"]["plots"] = time.perf_counter() - started
