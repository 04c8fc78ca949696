"""``control_flow``: a Python for loop and tf.while_loop inside the tape.

The tape records operations, not programs. Python control flow runs before the
tape sees anything: a ``for`` loop simply records its body once per iteration.
``tf.while_loop`` is one op whose gradient replays the body's gradients
backwards. Either way, y = x**(steps+1) built by multiplication has the
derivative (steps+1) x**steps. (A Python ``if``, whose gradient follows the branch
taken, is the tensor language's conditional: ``scenario=guide/control_flow``.)
"""

import time
from typing import Any

import numpy as np
import sympy as sp

from runner.oracles.symbolic import oracle
from runner.result import Outcome
from runner.routines.catalogue import Arg, Call, Raw, run_cases, selected, verify
from runner.scenarios.schema import ControlFlowScenario, RunConfig
from runner.tfenv import tf


def power_by_for(x: tf.Tensor, steps: int) -> tf.Tensor:
    y = x
    for _ in range(steps):
        y = y * x  # one recorded multiplication per iteration
    return y


def power_by_while_loop(x: tf.Tensor, steps: int) -> tf.Tensor:
    _, y = tf.while_loop(lambda i, y: i < steps, lambda i, y: (i + 1, y * x), (tf.constant(0), x),
                         maximum_iterations=max(steps, 1))  # a bound lets XLA differentiate the loop
    return y


def python_for(x: tf.Variable, steps: int) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        y = power_by_for(x, steps)
    return {"dy/dx (python_for)": tape.gradient(y, x)}


def while_loop(x: tf.Variable, steps: int) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        y = power_by_while_loop(x, steps)
    return {"dy/dx (while_loop)": tape.gradient(y, x)}


def run(scenario: ControlFlowScenario, run: RunConfig) -> Outcome:
    cases = selected("control_flow", scenario.case)
    x = Arg(float(scenario.x))
    steps = Raw(scenario.steps, repr(scenario.steps))
    calls = {"python_for": Call(python_for, [x, steps]), "while_loop": Call(while_loop, [x, steps])}
    chosen = [calls[c] for c in cases]
    outcome, found = run_cases(run, chosen, helpers=[power_by_for, power_by_while_loop])

    started = time.perf_counter()
    value = x.held(run.dtype)
    outcome.inputs = {"x": value, "steps": np.asarray(scenario.steps)}
    symbol = sp.Symbol("x", real=True)
    power = symbol ** (scenario.steps + 1)
    for case, loop in (("python_for", power_by_for), ("while_loop", power_by_while_loop)):
        if case not in cases:
            continue
        label = f"dy/dx ({case})"
        derivative = sp.diff(power, symbol)
        outcome.analytic[label] = f"d({power})/dx = {derivative}"
        outcome.notes[label] = _loop_note(case, scenario.steps, float(value))
        verify(outcome, label, found[label], _at(derivative, symbol, value), run,
               fd=(lambda t, loop=loop: loop(t, scenario.steps), value))
    outcome.timings["checks"] = time.perf_counter() - started
    return outcome


def _at(derivative: sp.Expr, symbol: sp.Symbol, at: Any) -> np.ndarray:
    shape = np.shape(at)
    return oracle(derivative, {"x": symbol}, {"x": np.asarray(at)}, shape, shape)


def _loop_note(case: str, steps: int, x: float) -> str:
    how = (f"The Python for loop ran before the tape saw anything and left {steps} recorded "
           "multiplications y = y * x"
           if case == "python_for" else
           f"tf.while_loop recorded the loop as one op that ran its body {steps} times, and its gradient "
           "replays the body's gradient backwards once per iteration")
    return (f"{how}; y = x**{steps + 1}, so the chain rule through every multiplication gives "
            f"dy/dx = {steps + 1} x**{steps} at x = {x:g}.")
