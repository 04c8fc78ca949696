"""``gradient``: one function of named inputs, one tape (basic, watch, sigmoid).

When an input is a linspace the target is a vector; ``tape.gradient`` then
differentiates its sum, which for an elementwise function is the derivative at
every point, and the routine draws the function and its derivative.
"""

from __future__ import annotations

from runner import expr
from runner.checks import compare
from runner.result import Curve, Outcome
from runner.routines.tape import differentiate, oracle
from runner.schema import GradientScenario, RunConfig


def run(scenario: GradientScenario, run: RunConfig) -> Outcome:
    target = scenario.target_name()
    outcome = differentiate(
        scenario.inputs,
        {target: scenario.function},
        persistent=False,
        watch_accessed_variables=scenario.watch_accessed_variables,
        run=run,
    )
    _check_closed_forms(scenario, outcome, target, run)
    curve = _curve(scenario, outcome, target)
    if curve is not None:
        outcome.figures.append(curve)
    return outcome


def _check_closed_forms(
    scenario: GradientScenario, outcome: Outcome, target: str, run: RunConfig
) -> None:
    """Compare with derivatives the config states by hand, e.g. sigmoid(x)*(1 - sigmoid(x)).

    An analytic check like SymPy's, so ``checks.analytic=false`` turns it off too.
    A closed form belongs to the function it was written for (``closed_form_for``):
    once ``scenario.function`` is another, it is dropped, with a note, and SymPy and
    finite differences check the run as they check any other.
    """
    if not run.checks.analytic or not scenario.closed_form:
        return
    written_for = scenario.closed_form_for
    if written_for is not None and (expr.parse(written_for, scenario.inputs)
                                    != expr.parse(scenario.function, scenario.inputs)):
        for name, text in scenario.closed_form.items():
            label = f"d{target}/d{name}"
            note = (f"closed form {text} not checked: it was written for {written_for}, not "
                    f"{scenario.function}; SymPy and finite differences check this function")
            outcome.notes[label] = "; ".join(filter(None, [outcome.notes.get(label), note]))
        return
    sympy = expr.SymPyBackend()
    symbols = sympy.symbols(scenario.inputs)
    out_shape = outcome.values[target].shape
    for name, text in scenario.closed_form.items():
        label = f"d{target}/d{name}"
        got = outcome.gradients[label]
        if got is None:
            continue
        form = expr.evaluate(expr.parse(text, scenario.inputs), symbols, sympy)
        want = oracle(form, symbols, outcome.inputs, out_shape, got.shape)
        outcome.checks.append(
            compare(f"{label} vs closed form {text}", got, want, run.tolerances().analytic))


def _curve(scenario: GradientScenario, outcome: Outcome, target: str) -> Curve | None:
    """The function and its derivative against the first linspace input, if there is one."""
    axis = next((n for n, spec in scenario.inputs.items() if spec.linspace is not None), None)
    if axis is None:
        return None
    label = f"d{target}/d{axis}"
    series = {f"{target} = {scenario.function}": outcome.values[target]}
    if outcome.gradients[label] is not None:
        series[label] = outcome.gradients[label]
    return Curve(f"{scenario.name}.png", f"{scenario.function} and its derivative", axis,
                 outcome.inputs[axis], series)
