"""``stop_gradient``: two ways to hide part of a computation from the tape.

z = f(x) + g(x, y) has dz/dx = f'(x) + dg/dx and dz/dy = dg/dy. Compute g where
the tape does not record it and z keeps its value, while the gradients see f
alone: dz/dx = f'(x) and dz/dy = None, the tape having no path to y:

* ops run inside ``with tape.stop_recording():`` are computed but not recorded;
* ``tape.reset()`` throws away everything recorded so far.

The default is the advanced autodiff guide's example, z = x*x + y*y at x = 2,
y = 3 with y*y hidden: dz/dx = 4.0, dz/dy = None. (``tf.stop_gradient`` is a
function of the tensor language: ``scenario=guide/stop_gradient`` runs it as a
program.) Why it matters: target networks, straight-through estimators and
EM-style updates all need a value in the forward pass that the backward pass
ignores. Finite differences only run forward, so they cannot see the hiding: the
hidden cases are checked against SymPy's derivative of f and the differences of f
alone.
"""


import time
from collections.abc import Callable
from typing import Any

import numpy as np

from runner.language import backends, expr, syntax
from runner.oracles.checks import compare, finite
from runner.result import Outcome
from runner.routines.catalogue import Arg, Call, Raw, expect, run_cases, selected, verify_expression
from runner.routines.support import tf_dtype
from runner.scenarios.schema import RunConfig, StopGradientScenario
from runner.tfenv import tf


def without(f: "Callable[..., tf.Tensor]", g: "Callable[..., tf.Tensor]", x: tf.Variable,
            y: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        z = f(x) + g(x, y)  # the tape records both parts
    grad = tape.gradient(z, {"x": x, "y": y})
    return {"z (without)": z, "dz/dx (without)": grad["x"], "dz/dy (without)": grad["y"]}


def with_stop_recording(f: "Callable[..., tf.Tensor]", g: "Callable[..., tf.Tensor]", x: tf.Variable,
                        y: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        x_sq = f(x)
        with tape.stop_recording():
            y_sq = g(x, y)  # computed, but the tape does not record these ops
        z = x_sq + y_sq
    grad = tape.gradient(z, {"x": x, "y": y})
    return {"z (stop_recording)": z,
            "dz/dx (stop_recording)": grad["x"], "dz/dy (stop_recording)": grad["y"]}


def with_reset(f: "Callable[..., tf.Tensor]", g: "Callable[..., tf.Tensor]", x: tf.Variable,
               y: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        y_sq = g(x, y)
        tape.reset()  # throw out everything recorded so far, y_sq's ops included
        z = f(x) + y_sq
    grad = tape.gradient(z, {"x": x, "y": y})
    return {"z (reset)": z, "dz/dx (reset)": grad["x"], "dz/dy (reset)": grad["y"]}


CASES: dict[str, Callable[..., dict[str, Any]]] = {"stop_recording": with_stop_recording, "reset": with_reset}

NOTES = {
    "without": "Nothing is hidden: the tape differentiates z = f(x) + g(x, y) whole.",
    "stop_recording": "g(x, y) was computed inside `with tape.stop_recording():`, so the tape never saw "
                      "the ops that made it; to the tape it is a constant, and only f(x) is differentiated, "
                      "while z keeps its value.",
    "reset": "tape.reset() erased everything recorded before it, including the ops of g(x, y); only "
             "f(x), computed after the reset, is differentiated, while z keeps its value.",
}


def run(scenario: StopGradientScenario, run: RunConfig) -> Outcome:
    trees = {"f": expr.parse(scenario.function, ["x"]), "g": expr.parse(scenario.hidden, ["x", "y"])}
    backend = backends.TensorFlowBackend(tf_dtype(run))

    def f(x: Any) -> Any:
        return syntax.evaluate(trees["f"], {"x": x}, backend)

    def g(x: Any, y: Any) -> Any:
        return syntax.evaluate(trees["g"], {"x": x, "y": y}, backend)

    cases = selected("stop_gradient", scenario.case)
    x, y = Arg(float(scenario.x)), Arg(float(scenario.y))
    calls = [Call(fn, [Raw(f, "f"), Raw(g, "g"), x, y], values=[f"z ({name})"])
             for name, fn in [("without", without), *((c, CASES[c]) for c in cases)]]
    code, names = backends.CodeBackend(run.dtype), {"x": backends.Code("x"), "y": backends.Code("y")}
    definitions = [f"def {name}({params}):\n    return {syntax.evaluate(trees[name], names, code)}  # {text}"
                   for name, params, text in (("f", "x", scenario.function), ("g", "x, y", scenario.hidden))]
    outcome, found = run_cases(run, calls, setup=definitions)

    started = time.perf_counter()
    at = {"x": x.held(run.dtype), "y": y.held(run.dtype)}
    outcome.inputs = dict(at)
    whole = f"({scenario.function}) + ({scenario.hidden})"
    for name in ("without", *cases):
        value = f"z ({name})"
        outcome.values[value] = found[value]
        outcome.checks.append(finite(f"{value} finite", found[value]))
        if name != "without":
            outcome.checks.append(compare(f"{value} equals z (without): hiding changes no value",
                                          found[value], found["z (without)"], run.tolerances().analytic))
        seen = whole if name == "without" else scenario.function  # what the tape differentiates
        for source in ("x", "y"):
            _gradient(outcome, f"dz/d{source} ({name})", found, run, seen, source, at, NOTES[name])
    outcome.timings["checks"] = time.perf_counter() - started
    return outcome


def _gradient(outcome: Outcome, label: str, found: dict[str, Any], run: RunConfig, seen: str, source: str,
              at: dict[str, np.ndarray], note: str) -> None:
    """d(seen)/d(source) against SymPy and finite differences, or None where ``seen`` does not read it."""
    if source not in syntax.names(expr.parse(seen, list(at))):
        expect(outcome, label, found[label], "None",
               f"{note} What it differentiates, {seen}, does not read {source}, so the tape has no path "
               f"from z to {source}: None.")
        return
    outcome.notes[label] = note
    verify_expression(outcome, label, found[label], run, seen, source, at)
