"""A program's checks once the tape has run: TensorFlow's refusals as expected, every step's value
against the float64 forward pass, and every derivative (the ``gradients`` and the named
``derivatives``) by its kind's oracles: its None predicted, SymPy, float64 central differences
or random projections. None of them uses TensorFlow's autodiff as the reference."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from runner.oracles.checks import compare, finite, recorded
from runner.oracles.differences import (
    KINK_MARK,
    compare_differences,
    float64_differences,
    one_sided_differences,
)
from runner.oracles.projections import projection_check
from runner.result import Check, Outcome
from runner.routines import custom_steps, pointwise, program_after, program_notes, program_setup, saved_model
from runner.routines import derivative_kinds as kinds
from runner.routines.program_sympy import sympy_check
from runner.routines.program_why import lookup_checks
from runner.scenarios.schema import Unconnected

if TYPE_CHECKING:
    from runner.routines.program import Program

NON_PERSISTENT = (
    "a non-persistent tape frees its record after the first gradient() call, so TensorFlow raised "
    "RuntimeError here; set scenario.persistent=true to take several gradients"
)


#: How TensorFlow's RuntimeError for a second gradient() on a non-persistent tape begins.
SECOND_CALL_REFUSED = "A non-persistent GradientTape can only be used to compute one set of gradients"



def check(program: Program, outcome: Outcome, refused: Mapping[str, str]) -> None:
    scenario = program.scenario
    raised = {t: m for t, m in refused.items() if m.startswith("LookupError")}  # no registered gradient
    refused = {t: m for t, m in refused.items() if t not in raised}
    outcome.checks += lookup_checks(program, raised)
    expected_refusals = [] if scenario.persistent else list(program.plan)[1:]
    if expected_refusals or refused:
        first = next(iter(refused), expected_refusals[0] if expected_refusals else "")
        other = next((m for m in refused.values() if not m.startswith(SECOND_CALL_REFUSED)), None)
        detail = (f"expected {SECOND_CALL_REFUSED!r}, TensorFlow said: {other}" if other is not None
                  else f"TensorFlow said: {refused[first]}" if first in refused
                  else "TensorFlow raised no RuntimeError")
        outcome.checks.append(Check(
            f"d{first}: second gradient() on a non-persistent tape raises RuntimeError",
            other is None and sorted(refused) == sorted(expected_refusals), None, None, detail))
    outcome.checks += program_setup.value_checks(program)
    for target in program.trees:
        outcome.checks.append(finite(f"{target} finite", outcome.values[target]))
        outcome.checks.append(_value_check(program, target, outcome.values[target]))
    symbolic = sympy_check(program, outcome) if program.plan else None
    for target, sources in program.plan.items():
        for source in sources:
            label = kinds.label(scenario.derivative, target, source)
            if target in raised:
                outcome.notes[label] = f"TensorFlow raised {raised[target]}"
            elif target in refused:
                outcome.notes[label] = f"{NON_PERSISTENT}: {refused[target]}"
            else:
                _check_result(program, outcome, label, target, source, symbolic)
    for derivative in program.derivatives:  # each by its own kind's oracles
        view = program.asked(derivative)
        symbolic = sympy_check(view, outcome)
        for source, label in derivative.labels().items():
            _check_result(view, outcome, label, derivative.target, source, symbolic)
    outcome.checks += program_after.checks(program, outcome)
    if program.run.checks.saved_model:
        outcome.checks += saved_model.round_trip(program, outcome)
    pointwise.check_closed_forms(program, outcome)


def _check_result(program: Program, outcome: Outcome, label: str, target: str, source: str,
                  symbolic: Callable[..., None] | None) -> None:
    """One derivative's checks: its None predicted, then SymPy and float64 differences (or its kind's)."""
    scenario, run = program.scenario, program.run
    tolerances = run.tolerances()
    got = outcome.gradients[label]
    reason = kinds.why_none(program, target, source)
    if reason and scenario.unconnected_gradients is Unconnected.zero:
        outcome.notes[label] = (f"{reason}; unconnected_gradients=zero turns TensorFlow's None into "
                                f"zeros shaped like {source}")
        name = f"{label} vs zeros (unconnected_gradients=zero: no path)"
        outcome.checks.append(
            Check(name, False, None, None, "TensorFlow returned None") if got is None
            else compare(name, got, kinds.zeros(program, target, source), tolerances.analytic))
        return
    outcome.checks.append(recorded(label, got, reason))
    if got is None:
        outcome.notes[label] = reason or "TensorFlow returned None"
        return
    outcome.checks.append(finite(f"{label} finite", got))
    if traced := program_notes.traced_branch(program, target, source):
        outcome.notes[label] = traced
    if symbolic is not None:
        symbolic(label, target, source, got)
    if scenario.derivative != "gradient":
        outcome.checks += kinds.check(program, outcome, label, target, source, got)
        return
    if run.checks.finite_differences and custom_steps.customs(program):
        outcome.checks.append(
            custom_steps.difference_check(program, outcome, label, target, source, got))
    elif run.checks.finite_differences:
        check = _difference_check(program, label, target, source, got)
        outcome.checks.append(check)
        if check.detail.startswith(KINK_MARK):  # say it where the gradient is shown, too
            outcome.notes[label] = "; ".join(filter(None, [outcome.notes.get(label), check.detail]))


def _value_check(program: Program, target: str, got: np.ndarray) -> Check:
    """A step's value against the float64 forward pass (NumPy, never TensorFlow's ops): a wrong forward op
    is caught even where a derivative check happens to agree. A gradient step's value (and any step's
    computed from one) is a derivative by float64 differences there, held to their tolerance; any other
    step's to the ``forward`` one."""
    tolerances = program.run.tolerances()
    if pointwise.elementwise(program.trees):  # block by block, as its other oracles: never whole at once
        return pointwise.value_check(program, target, got, tolerances.forward)
    derived = {target, *program.reaches(target, conditions=True)} & set(program.gradient_steps)
    tol = tolerances.float64_differences if derived else tolerances.forward
    return compare(f"{target} vs float64 forward pass", got, program.forward[target], tol)


def _difference_check(program: Program, label: str, target: str, source: str, got: np.ndarray) -> Check:
    run = program.run
    tol = run.tolerances().float64_differences
    delta, point = program.delta, program.point(source)
    fn, weight = program.forward_fn(target, source), program.weights[target]
    if np.size(point) <= run.checks.fd_max_elements:
        want = float64_differences(fn, point, weight, delta)
        return compare_differences(f"{label} vs float64 central differences (every element)", got, want, tol,
                                   lambda elements: one_sided_differences(fn, point, weight, delta, elements))
    if pointwise.elementwise(program.trees):
        return pointwise.difference_check(program, label, target, source, got)
    return projection_check(label, got, fn, program.vjp(target, source), point, weight, tol, delta,
                            run.checks.projections, run.seed, program.across(target, source))
