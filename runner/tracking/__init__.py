"""Tracking: each finished job's results.json handed to the tools people already look at.

``tracking=tensorboard`` and ``tracking=mlflow`` (or both, ``tracking=[tensorboard,mlflow]``)
add a Hydra callback each (conf/tracking/). Callbacks run wherever the job ran (a
joblib or Ray worker too) and read only the files the job wrote, so what a tool shows
is what the summary shows. This module turns one job's record into the neutral
pieces every tool takes: where it belongs, its parameters, its numbers and its
plots. Heavy imports (TensorFlow's summary writer, MLflow) stay in the callback
that needs them.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.types import RunMode
from omegaconf import DictConfig

from runner.jobs.objective import MAX_CHECK_ERROR, max_check_error
from runner.outputs.files import RESULTS

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One finished job, as a tracking tool sees it."""

    name: str  # the job's directory name: 3_basic in a sweep
    run_dir: Path
    record: dict[str, Any]

    @property
    def params(self) -> dict[str, str]:
        """The job's command-line overrides, key -> value as typed."""
        overrides = (self.record.get("job") or {}).get("overrides") or []
        pairs = (o.lstrip("+~").split("=", 1) for o in overrides if "=" in o)
        return {key: value for key, value in pairs}

    @property
    def gradients(self) -> dict[str, float]:
        """Every gradient that is one finite number (curves and arrays stay in results.json)."""
        return {label: float(value) for label, value in (self.record.get("gradients") or {}).items()
                if _is_number(value)}

    @property
    def metrics(self) -> dict[str, float]:
        """Gradients by label, the worst check error, each check's error and each timing (seconds)."""
        found = dict(self.gradients)
        worst = max_check_error(self.record)
        if worst is not None:
            found[MAX_CHECK_ERROR] = worst
        for check in self.record.get("checks") or []:
            if _is_number(check.get("max_abs_err")):
                found[f"check/{check['name']}"] = float(check["max_abs_err"])
        for name, seconds in (self.record.get("timings") or {}).items():
            if _is_number(seconds):
                found[f"timing/{name}"] = float(seconds)
        return found

    @property
    def plots(self) -> list[Path]:
        return [self.run_dir / name for name in self.record.get("plots") or []
                if (self.run_dir / name).is_file()]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def finished_job(config: DictConfig) -> Job | None:
    """The job Hydra has just run, from its results.json; None if it left none."""
    run_dir = Path(config.hydra.runtime.output_dir)
    try:
        record = json.loads((run_dir / RESULTS).read_text())
    except (OSError, json.JSONDecodeError):
        log.warning("nothing to track in %s: no readable %s", run_dir, RESULTS)
        return None
    return Job(run_dir.name, run_dir, record)


def root_dir(config: DictConfig) -> Path:
    """The sweep's directory in a sweep, the run's directory in a single run."""
    if config.hydra.mode == RunMode.MULTIRUN:
        return Path(config.hydra.sweep.dir)
    return Path(config.hydra.runtime.output_dir)


def finished_jobs(root: Path) -> list[Job]:
    """Every job under a sweep directory that left a results.json, in job order."""
    jobs = []
    for path in root.glob(f"*/{RESULTS}"):
        try:
            jobs.append(Job(path.parent.name, path.parent, json.loads(path.read_text())))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(jobs, key=lambda job: (_job_number(job.name), job.name))


def _job_number(name: str) -> int:
    head = name.split("_", 1)[0]
    return int(head) if head.isdigit() else -1


def swept_keys(jobs: list[Job]) -> list[str]:
    """Override keys whose values differ between the jobs, first seen first."""
    params = [job.params for job in jobs]
    keys = dict.fromkeys(k for p in params for k in p)
    return [k for k in keys if len({p.get(k) for p in params}) > 1]


def typed(value: str) -> float | bool | str:
    """An override's value as the number or flag it spells, for tools that sort and filter by type."""
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        return float(value)
    except ValueError:
        return value.strip("'\"")


def safe_name(name: str) -> str:
    """A metric or param name any tool accepts: letters, digits and ``_-./ :``, others as ``_``."""
    return re.sub(r"[^A-Za-z0-9_\-./ :]", "_", name)
