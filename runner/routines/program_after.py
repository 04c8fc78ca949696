"""A program's ``after:`` steps: evaluated once the tape is done, over its inputs, steps and named
derivatives (runner/scenarios/named_derivatives.py), and checked against the same expressions in
float64 NumPy over the tape's derivatives as given, each of which its own oracle checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from runner.language import syntax
from runner.language.arrays import NumPyBackend
from runner.oracles.checks import compare, finite
from runner.result import Check, Outcome

if TYPE_CHECKING:
    from runner.routines.program import Program


def evaluate(program: Program, env: dict[str, Any]) -> dict[str, np.ndarray]:
    """The after steps, in order, eagerly over the tape's results: each a value (none where it reads a
    derivative TensorFlow returned None; its check says so)."""
    values: dict[str, np.ndarray] = {}
    backend = program.backend()
    for name, tree in program.after.items():
        if any(env.get(n, 0) is None for n in syntax.names(tree)):
            env[name] = None
            continue
        env[name] = syntax.evaluate(tree, env, backend)
        values[name] = env[name].numpy()
    return values


def checks(program: Program, outcome: Outcome) -> list[Check]:
    """Each after step against the same expression in float64 NumPy, over the float64 forward pass and
    the tape's derivatives as given (each checked by its own oracle above)."""
    checks: list[Check] = []
    env = {**program.held, **program.forward, **{
        d.name: np.asarray(outcome.gradients[d.name], dtype=np.float64) for d in program.derivatives
        if not d.listed and outcome.gradients[d.name] is not None}}
    numpy = NumPyBackend(program.branches, program.frozen)
    for name, tree in program.after.items():
        if name not in outcome.values:
            missing = sorted(n for n in syntax.names(tree) if n not in env)
            checks.append(Check(f"{name} computed", False, None, None,
                                f"reads {', '.join(missing)}, which TensorFlow returned as None"))
            continue
        env[name] = syntax.evaluate(tree, env, numpy)
        checks.append(finite(f"{name} finite", outcome.values[name]))
        checks.append(compare(f"{name} vs float64 (over the tape's derivatives)", outcome.values[name],
                              env[name], program.run.tolerances().forward))
    return checks
