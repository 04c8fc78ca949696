"""Tape routines, one module per routine, each registered under its schema's name.

A routine takes the validated scenario and run config and returns an
:class:`~runner.result.Outcome`. Its module is imported only when a scenario
asks for it, so TensorFlow is loaded by the first routine, not by the CLI.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from runner.result import Outcome
from runner.schema import RunConfig

Routine = Callable[[Any, RunConfig], Outcome]
_ROUTINES: dict[str, Routine] = {}


def register(name: str) -> Callable[[Routine], Routine]:
    def decorate(fn: Routine) -> Routine:
        _ROUTINES[name] = fn
        return fn

    return decorate


def load_routine(name: str) -> Routine:
    """Import a routine's module (and with it TensorFlow) and return the routine."""
    importlib.import_module(f"{__name__}.{name}")
    return _ROUTINES[name]


def run_routine(run: RunConfig) -> Outcome:
    """Reseed TensorFlow and run the scenario's routine.

    Reseeding every job matters where a launcher reuses its worker processes
    (joblib): a job's random ops must not depend on the jobs before it.
    """
    routine = load_routine(run.scenario.routine)
    from runner.tfenv import seed

    seed(run.seed)
    return routine(run.scenario, run)
