"""``setup:``: a program's steps before the tape opens, as the guide's ``x2 = tf.Variable(2.0) + 1.0``.

TensorFlow computes them from the inputs while no tape records, so each result is a
plain tensor: the tape sees it only where ``watch`` names it (``tape.watch(x2)``), and
never sees through it to the inputs it was made from. The oracles take it the same
way: a setup result is a leaf, like an input made with ``tf.constant``, held at the
value TensorFlow computed in the run's dtype; that value is itself checked against
the float64 forward pass over the inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from runner.language import backends, expr, syntax
from runner.language.arrays import NumPyBackend
from runner.oracles.checks import compare
from runner.result import Check
from runner.routines.program_steps import for_step
from runner.scenarios.inputs import ProgramInput, ProgramKind
from runner.scenarios.schema import ProgramScenario

if TYPE_CHECKING:
    from runner.routines.program import Program


def parse(scenario: ProgramScenario) -> dict[str, syntax.Expr]:
    """Each setup step parsed, over the inputs and the setup steps before it."""
    trees: dict[str, syntax.Expr] = {}
    for name, text in scenario.setup.items():
        trees[name] = expr.parse(text, [*scenario.inputs, *trees])
    return trees


def evaluate(trees: Mapping[str, syntax.Expr], tensors: Mapping[str, Any], backend: Any) -> dict[str, Any]:
    """The setup results, in order, from the inputs (no tape is open: nothing is recorded)."""
    values = dict(tensors)
    for name, tree in trees.items():
        values[name] = syntax.evaluate(tree, values, for_step(backend, name))
    return {name: values[name] for name in trees}


def as_inputs(scenario: ProgramScenario, trees: Mapping[str, syntax.Expr], values: Mapping[str, Any],
              backend: Any) -> ProgramScenario:
    """The scenario as the tape and the oracles see it: each setup result one more input, a constant
    at the value TensorFlow computes for it (in its dtype), watched where ``watch`` names it."""
    results = evaluate(trees, values, backend)
    leaves = {name: ProgramInput(value=np.asarray(value.numpy(), dtype=np.float64).tolist(),
                                 kind=ProgramKind.constant, watch=name in scenario.watch,
                                 dtype=value.dtype.name if name in backend.dtypes else None)
              for name, value in results.items()}
    return dataclasses.replace(scenario, inputs={**scenario.inputs, **leaves})


def value_checks(program: Program) -> list[Check]:
    """Each setup result as the run holds it against the float64 forward pass over the inputs."""
    held = {n: program.held[n] for n in program.scenario.inputs if n not in program.setup}
    want = evaluate(program.setup, held, NumPyBackend({}, {}))
    tol = program.run.tolerances().forward
    return [compare(f"{name} vs float64 forward pass (setup, before the tape)", program.held[name],
                    want[name], tol) for name in program.setup]


def why_none(program: Program, target: str, source: str) -> str:
    """Why a setup step stands between ``target`` and ``source``, or '' where none does."""
    if source in program.setup and not program.watched(source):
        return (f"{source} was computed in scenario.setup, before the tape opened, so it is a plain tensor "
                f"the tape did not record (name it in scenario.watch to call tape.watch({source}))")
    through = [s for s in program.setup if s in program.reaches(target) and source in _reads(program, s)]
    if through:
        return (f"{target} reads {source} only through {', '.join(through)}, computed in scenario.setup "
                "before the tape opened, so the tape has no path back to it")
    return ""


def _reads(program: Program, name: str) -> set[str]:
    """The inputs a setup step was made from, through the setup steps before it."""
    found: set[str] = set()
    for used in syntax.names(program.setup[name]):
        found |= {used} | (_reads(program, used) if used in program.setup else set())
    return found


def snippet_lines(program: Program) -> list[str]:
    """The setup steps as plain TensorFlow, after the inputs and before the tape opens."""
    code = program.code()
    known = {n: backends.Code(n) for n in program.scenario.inputs}
    return [f"{name} = {syntax.evaluate(tree, known, code.for_step(name))}  # {program.scenario.setup[name]}"
            for name, tree in program.setup.items()]
