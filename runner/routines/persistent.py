"""``persistent``: several named targets from one tape, each differentiated in turn.

With ``persistent=false`` the second ``tape.gradient`` call raises RuntimeError;
the routine records that as the expected outcome, with the reason, not a crash.
"""

from __future__ import annotations

from runner.result import Outcome
from runner.routines.tape import differentiate
from runner.schema import PersistentScenario, RunConfig


def run(scenario: PersistentScenario, run: RunConfig) -> Outcome:
    return differentiate(
        scenario.inputs,
        scenario.targets,
        persistent=scenario.persistent,
        watch_accessed_variables=scenario.watch_accessed_variables,
        run=run,
    )
