"""Tape routines, one module per routine: ``runner/routines/<name>.py`` defines ``run``.

A routine is declared once, by its schema in :mod:`runner.scenarios.schema` (its name, fields,
checks and cases); its module, named alike, takes the validated scenario and run
config and returns an :class:`~runner.result.Outcome`. The module is imported only
when a scenario asks for it, so TensorFlow is loaded by the first routine, not by the CLI.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from runner.result import Outcome
from runner.scenarios.schema import RunConfig

Routine = Callable[[Any, RunConfig], Outcome]


def load_routine(name: str) -> Routine:
    """Import a routine's module (and with it TensorFlow) and return its ``run``."""
    routine: Routine = importlib.import_module(f"{__name__}.{name}").run
    return routine


def run_routine(run: RunConfig) -> Outcome:
    """Reseed TensorFlow and run the scenario's routine.

    Reseeding every job matters where a launcher reuses its worker processes
    (joblib): a job's random ops must not depend on the jobs before it.
    """
    routine = load_routine(run.scenario.routine)
    from runner.tfenv import seed

    seed(run.seed)
    outcome = routine(run.scenario, run)
    if run.dtype in run.checks.float64_reference and run.dtype != "float64":
        outcome.reference = _against_float64(routine, run, outcome)
    return outcome


def _against_float64(routine: Routine, run: RunConfig, outcome: Outcome) -> dict[str, float]:
    """The same job in float64, unchecked: how far the run's dtype moved each gradient (returned), and a
    check per gradient that it moved no further than the dtype's precision allows (its
    ``float64_differences`` tolerance, element by element). Not an oracle: both runs are TensorFlow's."""
    import numpy as np

    from runner.oracles.checks import compare
    from runner.tfenv import seed

    checks = dataclasses.replace(run.checks, analytic=False, finite_differences=False)
    seed(run.seed)
    wide = routine(run.scenario, dataclasses.replace(run, dtype="float64", checks=checks))
    errors = {}
    for label, got in outcome.gradients.items():
        want = wide.gradients.get(label)
        if got is not None and want is not None:
            diff = np.abs(np.asarray(got, dtype=np.float64) - np.asarray(want, dtype=np.float64))
            errors[label] = float(diff.max()) if diff.size else 0.0
            name = f"{label} within {run.dtype}'s precision of the same job in float64"
            outcome.checks.append(compare(name, got, want, run.tolerances().float64_differences))
    return errors
