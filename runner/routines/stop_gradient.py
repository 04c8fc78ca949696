"""``stop_gradient``: three ways to hide part of a computation from the tape.

y = f(x) + f(x) has dy/dx = 2 f'(x). Hide the second copy from the tape and
dy/dx becomes f'(x), while y keeps its value 2 f(x):

* ``tf.stop_gradient(f(x))`` passes the value on but marks it a constant;
* ops run inside ``with tape.stop_recording():`` are computed but not recorded;
* ``tape.reset()`` throws away everything recorded so far.

Why it matters: target networks, straight-through estimators and EM-style
updates all need a value in the forward pass that the backward pass ignores.
Finite differences only run forward, so they cannot see the hiding: the hidden
cases are checked against f' (SymPy) and the differences of f alone.
"""


import time
from collections.abc import Callable
from typing import Any

from runner import expr
from runner.checks import compare, finite
from runner.result import Outcome
from runner.routines.catalogue import Arg, Call, Raw, expect, run_cases, selected, verify_expression
from runner.routines.support import tf_dtype
from runner.schema import RunConfig, StopGradientScenario
from runner.tfenv import tf


def without(f: "Callable[[tf.Tensor], tf.Tensor]", x: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        y = f(x) + f(x)  # the tape records both copies
    return {"y (without)": y, "dy/dx (without)": tape.gradient(y, x)}


def with_stop_gradient(f: "Callable[[tf.Tensor], tf.Tensor]", x: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        y = f(x) + tf.stop_gradient(f(x))  # same value; the second copy is a constant to the tape
    return {"y (stop_gradient)": y, "dy/dx (stop_gradient)": tape.gradient(y, x)}


def with_stop_recording(f: "Callable[[tf.Tensor], tf.Tensor]", x: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        recorded = f(x)
        with tape.stop_recording():
            hidden = f(x)  # computed, but the tape does not record these ops
        y = recorded + hidden
    return {"y (stop_recording)": y, "dy/dx (stop_recording)": tape.gradient(y, x)}


def with_reset(f: "Callable[[tf.Tensor], tf.Tensor]", x: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        hidden = f(x)
        tape.reset()  # forget everything recorded so far, including hidden's ops
        recorded = f(x)
        y = hidden + recorded
    return {"y (reset)": y, "dy/dx (reset)": tape.gradient(y, x)}


CASES: dict[str, Callable[..., dict[str, Any]]] = {
    "stop_gradient": with_stop_gradient, "stop_recording": with_stop_recording, "reset": with_reset}

NOTES = {
    "without": "Nothing is hidden: y = f(x) + f(x) = 2 f(x), the tape differentiates both copies, "
               "and dy/dx = 2 f'(x).",
    "stop_gradient": "tf.stop_gradient passed the second copy's value through but told the tape to "
                     "treat it as a constant, so only the first copy counts: dy/dx = f'(x), half the "
                     "gradient without it, while y keeps its value 2 f(x).",
    "stop_recording": "The second copy of f(x) was computed inside `with tape.stop_recording():`, so "
                      "the tape never saw the ops that made it; to the tape it is a constant and "
                      "dy/dx = f'(x), while y keeps its value 2 f(x).",
    "reset": "tape.reset() erased everything recorded before it, including the ops of the first "
             "copy of f(x); only the copy computed after the reset is differentiated, so "
             "dy/dx = f'(x), while y keeps its value 2 f(x).",
}


def run(scenario: StopGradientScenario, run: RunConfig) -> Outcome:
    tree = expr.parse(scenario.function, ["x"])
    backend = expr.TensorFlowBackend(tf_dtype(run))

    def f(x: Any) -> Any:
        return expr.evaluate(tree, {"x": x}, backend)

    cases = selected("stop_gradient", scenario.case)
    x = Arg(float(scenario.x))
    calls = [Call(fn, [Raw(f, "f"), x], values=[f"y ({name})"])
             for name, fn in [("without", without), *((c, CASES[c]) for c in cases)]]
    code = expr.evaluate(tree, {"x": expr.Code("x")}, expr.CodeBackend(run.dtype))
    definition = f"def f(x):\n    return {code}  # {scenario.function}"
    outcome, found = run_cases(run, calls, setup=[definition])

    started = time.perf_counter()
    at = {"x": x.held(run.dtype)}
    outcome.inputs = dict(at)
    connected = "x" in expr.names(tree)
    twice = f"({scenario.function}) + ({scenario.function})"
    for name in ("without", *cases):
        label, value = f"dy/dx ({name})", f"y ({name})"
        outcome.values[value] = found[value]
        outcome.checks.append(finite(f"{value} finite", found[value]))
        if name != "without":
            outcome.checks.append(compare(f"{value} equals y (without): hiding changes no value",
                                          found[value], found["y (without)"], run.tolerances().analytic))
        if not connected:
            expect(outcome, label, found[label], "None",
                   f"f = {scenario.function} does not read x, so the tape has no path from y to x.")
            continue
        outcome.notes[label] = NOTES[name]
        verify_expression(outcome, label, found[label], run,
                          twice if name == "without" else scenario.function, "x", at)
    outcome.timings["checks"] = time.perf_counter() - started
    return outcome
