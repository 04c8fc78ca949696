"""``higher_order``: the n-th derivative, by nesting n tapes.

``tape.gradient`` is itself made of TensorFlow operations, so a tape that is
still open while an inner tape takes its gradient records that gradient too, and
can differentiate it again. Nesting ``order`` tapes gives dy/dx, d2y/dx2, ...,
each from the one below it. Every tape watches the input explicitly, so the
input's ``kind`` and ``watch`` settings change nothing here.

Once a derivative no longer depends on x (the third derivative of x*x*x is the
constant 6), the next tape finds no path from it to x and returns None, not 0.
The true derivative is 0, which is what
``unconnected_gradients=tf.UnconnectedGradients.ZERO`` returns; the routine
records where that happened. With a linspace input the function is elementwise,
so each gradient of the sum is the derivative at every point.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from runner.language import backends, expr, syntax
from runner.language.arrays import NumPyBackend
from runner.oracles.checks import compare, finite
from runner.result import Curve, Outcome, axis_label
from runner.routines import snippets
from runner.routines.nested_tapes import (
    at_inputs,
    compile_lines,
    explain_range,
    fresh_names,
    label,
    target_name,
)
from runner.routines.support import float64_delta, tf_dtype, timed_step
from runner.scenarios.schema import HigherOrderScenario, RunConfig
from runner.tfenv import tf

PLOT_POINTS = 201
PLOT_HALF_WIDTH = 2.0  # a value input is plotted over [x - 2, x + 2]

Function = Callable[[tf.Tensor], tf.Tensor]


def derivatives(x: tf.Tensor, fn: Function, order: int) -> tuple[list[tf.Tensor], list[bool]]:
    """[f(x), f'(x), ..., the order-th derivative], and whether each tape found a path to x.

    The tape opened here stays open while every tape inside it takes its gradient.
    """
    if order == 0:
        return [fn(x)], []
    with tf.GradientTape() as tape:
        tape.watch(x)
        lower, connected = derivatives(x, fn, order - 1)
    top = tape.gradient(lower[-1], x)
    # None: lower[-1] no longer depends on x. Its derivative is 0, as UnconnectedGradients.ZERO has it.
    return [*lower, tf.zeros_like(x) if top is None else top], [*connected, top is not None]


def _function(tree: syntax.Expr, name: str, dtype: tf.DType) -> Function:
    backend = backends.TensorFlowBackend(dtype)
    return lambda x: syntax.evaluate(tree, {name: x}, backend)


def run(scenario: HigherOrderScenario, run: RunConfig) -> Outcome:
    import sympy as sp

    ((name, spec),) = scenario.inputs.items()
    target = target_name(scenario.inputs)
    # f and its derivatives, in order: y, dy/dx, d2y/dx2, ...
    names = [target, *(label(target, name, k) for k in range(1, scenario.order + 1))]
    tree = expr.parse(scenario.function, [name])
    sympy = backends.SymPyBackend()
    symbols = sympy.symbols([name])
    symbolic = [syntax.evaluate(tree, symbols, sympy)]
    for _ in range(scenario.order):  # each from the one before: sp.diff(f, x, k) would start over each time
        symbolic.append(sp.diff(symbolic[-1], symbols[name]))
    fn = _function(tree, name, tf_dtype(run))

    @tf.autograph.experimental.do_not_convert  # no tensor-dependent Python control flow to convert
    def step(x: tf.Tensor) -> tuple[list[tf.Tensor], list[bool]]:
        return derivatives(x, fn, scenario.order)

    x = tf.constant(spec.array(run.seed, name), tf_dtype(run))
    outcome = Outcome(snippet=snippet(scenario, name, names, run))
    (found, connected), outcome.timings = timed_step(step, run, x)
    outcome.inputs = {name: x.numpy()}
    outcome.values = {target: found[0].numpy()}
    for k, (value, linked) in enumerate(zip(found[1:], connected, strict=True), start=1):
        outcome.gradients[names[k]] = value.numpy()
        outcome.analytic[names[k]] = str(symbolic[k])
        if not bool(linked):
            outcome.notes[names[k]] = (
                f"tape.gradient returned None: {names[k - 1]} no longer depends on {name}, so this "
                f"tape had no path from it to {name}. The derivative is 0, which is what "
                "unconnected_gradients=tf.UnconnectedGradients.ZERO returns.")

    started = time.perf_counter()
    _check(outcome, tree, symbols, symbolic, names, x, run)
    outcome.timings["checks"] = time.perf_counter() - started
    if run.plots:
        started = time.perf_counter()
        outcome.figures.append(_curve(scenario, outcome, tree, symbols, symbolic, names, found, run))
        outcome.timings["plot_points"] = time.perf_counter() - started
    return outcome


def _check(outcome: Outcome, tree: syntax.Expr, symbols: dict[str, Any], symbolic: list[Any],
           names: list[str], x: tf.Tensor, run: RunConfig) -> None:
    """Order k against SymPy's k-th derivative, and against float64 central differences of SymPy's
    (k-1)-th: never of the tape's own lower order, which a wrong first derivative would make wrong on
    both sides of the comparison."""
    tolerances = run.tolerances()
    (name,) = symbols
    point = np.asarray(outcome.inputs[name], dtype=np.float64)  # x as the run holds it
    step = float64_delta(run)
    found = [outcome.values[names[0]], *(outcome.gradients[label] for label in names[1:])]
    for k, (got, exact) in enumerate(zip(found, symbolic, strict=True)):
        want = at_inputs(exact, symbols, outcome.inputs, got.shape)
        outcome.checks.append(explain_range(finite(f"{names[k]} finite", got), want, run.dtype))
        if not k:  # the function's own value, computed in float64 NumPy: a wrong forward op is caught
            with np.errstate(all="ignore"):
                forward = syntax.evaluate(tree, {name: point}, NumPyBackend())
            outcome.checks.append(compare(f"{names[0]} vs float64 forward pass", got,
                                          np.broadcast_to(forward, np.shape(got)), tolerances.forward))
        if k and run.checks.analytic:
            outcome.checks.append(compare(f"{names[k]} vs SymPy", got, want, tolerances.analytic))
        if k and run.checks.finite_differences:
            plus, minus = (at_inputs(symbolic[k - 1], symbols, {name: point + s}, got.shape)
                           for s in (step, -step))
            with np.errstate(all="ignore"):
                fd = (plus - minus) / (2 * step)
            outcome.checks.append(compare(
                f"{names[k]} vs float64 central differences of SymPy's {names[k - 1] if k > 1 else names[0]}",
                got, fd, tolerances.float64_differences))


def _curve(scenario: HigherOrderScenario, outcome: Outcome, tree: syntax.Expr, symbols: dict[str, Any],
           symbolic: list[Any], names: list[str], found: list[tf.Tensor], run: RunConfig) -> Curve:
    """f and its derivatives: over the linspace itself, or around a single value (evaluated again)."""
    (name,) = symbols
    spec = scenario.inputs[name]
    if spec.linspace is None:
        grid = tf.constant(np.linspace(spec.value - PLOT_HALF_WIDTH, spec.value + PLOT_HALF_WIDTH,
                                       PLOT_POINTS), tf_dtype(run))
        found, _ = derivatives(grid, _function(tree, name, tf_dtype(run)), scenario.order)
        axis = np.asarray(grid.numpy(), np.float64)
    else:
        axis = np.asarray(outcome.inputs[name], np.float64)
    curves = [np.broadcast_to(np.asarray(v, np.float64), axis.shape) for v in found]
    explained = False
    for k in range(1, len(names)):
        bad = ~np.isfinite(curves[k])
        if not bad.any():
            continue
        at = axis[bad][0]
        exact = float(at_inputs(symbolic[k], symbols, {name: at}, ()))
        note = (f"Not finite at {int(bad.sum())} of the plot's {axis.size} points, first at "
                f"{name}={at:g}, where SymPy's value is {exact:g}; the plot leaves gaps.")
        if np.isfinite(exact) and not explained:
            note += (" TensorFlow's derivative graph meets 0*inf there, though the exact value is finite"
                     + (": its power rule differentiates x**n as n*x**(n-1), so each order lowers the "
                        "power, and once it is 0 the next multiplies 0 by 0**-1 = inf at 0."
                        if "**" in scenario.function else "."))
            explained = True
        outcome.notes[names[k]] = " ".join(filter(None, [outcome.notes.get(names[k]), note]))
    series = {f"{names[0]} = {scenario.function}": curves[0], **dict(zip(names[1:], curves[1:], strict=True))}
    return Curve(f"{scenario.name}.png", f"{scenario.function} and its first {scenario.order} derivatives",
                 name, axis, series, y_label=axis_label(list(series)))


def snippet(scenario: HigherOrderScenario, name: str, names: list[str], run: RunConfig) -> str:
    """Nested tapes as a plain script, printing the same derivatives."""
    nested, order, lower, step, found = fresh_names(("derivatives", "order", "lower", "step", "found"),
                                                    [name])
    code = syntax.evaluate(expr.parse(scenario.function, [name]), {name: backends.Code(name)},
                         backends.CodeBackend(run.dtype))
    return "\n".join([
        snippets.HEADER,
        f"{name} = tf.constant({snippets.value_code(scenario.inputs[name])}, tf.{run.dtype})",
        "",
        "",
        f"def {nested}({name}, {order}):",
        f'    """[{", ".join(names[:3])}, ...]: each tape stays open while the ones inside it '
        'take their gradients."""',
        f"    if {order} == 0:",
        f"        return [{code}]  # {scenario.function}",
        "    with tf.GradientTape() as tape:",
        f"        tape.watch({name})",
        f"        {lower} = {nested}({name}, {order} - 1)",
        f"    return [*{lower}, tape.gradient({lower}[-1], {name}, "
        "unconnected_gradients=tf.UnconnectedGradients.ZERO)]",
        "",
        "",
        f"def {step}({name}):",
        f"    return {nested}({name}, {scenario.order})",
        "",
        "",
        *compile_lines(step, run.compile),
        f"_, *{found} = {step}({name})",
        f"gradients = dict(zip({names[1:]!r}, {found}))",
        snippets.FOOTER,
    ])
