"""The number a job hands back to Hydra, so that sweepers that search (Optuna) have something to optimise.

``objective: dy/dx`` names one scalar gradient of the job (its label in
``results.json``), ``objective: max_check_error`` the largest error of any of its
checks; ``objective: null`` (the default) returns nothing, as before. The value is
read from the ``results.json`` the job has just written, so it is exactly the
number the summary shows. A job that failed, or has no such scalar, returns NaN
(Optuna records the trial as failed and goes on) and the sweep exits 1: a search
never silently optimises a label that is not there.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from runner.outputs.files import RESULTS

MAX_CHECK_ERROR = "max_check_error"

log = logging.getLogger(__name__)


def max_check_error(record: dict[str, Any]) -> float | None:
    """The largest ``max_abs_err`` over the job's checks, None when no check measured one."""
    errors = [c.get("max_abs_err") for c in record.get("checks") or []]
    numbers = [float(e) for e in errors if isinstance(e, int | float)]
    return max(numbers) if numbers else None


def value_of(record: dict[str, Any], label: str) -> float | None:
    """The finite number ``label`` names in a job's record, or None."""
    if label == MAX_CHECK_ERROR:
        value: Any = max_check_error(record)
    else:
        value = (record.get("gradients") or {}).get(label)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def of_job(cfg: DictConfig) -> float | None:
    """The job's objective for the sweeper; None when the config names none."""
    label = cfg.get("objective")
    if label is None:
        return None
    try:
        record = json.loads((Path(HydraConfig.get().runtime.output_dir) / RESULTS).read_text())
    except (OSError, ValueError):  # the job could not write its results: it is an error
        record = {"status": "error"}
    value = value_of(record, str(label))
    if value is not None:
        return value
    from runner.jobs import task

    scalars = [k for k, v in (record.get("gradients") or {}).items() if isinstance(v, int | float)]
    why = (f"the job's status is {record.get('status')}" if record.get("status") == "error"
           else f"it is not a finite scalar here (scalar gradients: {', '.join(scalars) or 'none'}; "
                f"or {MAX_CHECK_ERROR})")
    log.error("objective %s: no value, %s", label, why)
    task.note_status("error")
    return math.nan
