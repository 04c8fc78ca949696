"""A program's steps, evaluated in order on any backend: TensorFlow on the tape, NumPy, SymPy.

One walk for every backend, so the tape and each oracle evaluate the same steps in the
same order: expressions through :func:`runner.language.syntax.evaluate`, a Keras layer
step through its layer (or, on NumPy, its float64 twin), a gradient step through its
inner tape (or nested float64 differences).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from runner.language import backends, syntax
from runner.routines import layer_steps
from runner.scenarios import gradient_steps
from runner.tfenv import tf


@tf.autograph.experimental.do_not_convert  # plain Python building ops: nothing for AutoGraph to do
def evaluate_steps(
    trees: Mapping[str, syntax.Expr | layer_steps.Step | gradient_steps.GradientStep], env: Mapping[str, Any],
    backend: Any, override: Mapping[str, Any] | None = None, upto: str | None = None,
) -> dict[str, Any]:
    """Each step in order over the inputs and the steps before it; ``override`` replaces a step's value
    (to differentiate with respect to it), ``upto`` stops after that step."""
    values = dict(env)
    steps = {n: t for n, t in trees.items() if isinstance(t, gradient_steps.GradientStep)}
    with contextlib.ExitStack() as stack:  # a gradient step's inner tape records from the start
        tapes = (gradient_steps.inner_tapes(steps, values, stack)
                 if steps and isinstance(backend, backends.TensorFlowBackend) else {})
        for name, tree in trees.items():
            given = override is not None and name in override
            if given:
                values[name] = override[name]
            elif isinstance(tree, gradient_steps.GradientStep):  # on NumPy: nested float64 differences
                values[name] = tapes[name].gradient(
                    values[tree.target], values[tree.wrt], unconnected_gradients=tf.UnconnectedGradients.ZERO,
                ) if tapes else tree.numpy_value(trees, values, backend, evaluate_steps)
            else:  # a Keras layer step calls its layer (or, on NumPy, its float64 twin); a custom gradient's
                values[name] = (tree(values, backend) if callable(tree)  # call builds it on the tape
                                else syntax.evaluate(tree, values, for_step(backend, name)))
            for g in (g for g, step in steps.items() if step.wrt == name and g in tapes):
                tapes[g].watch(values[name])
            if name == upto:
                break
    return {name: values[name] for name in trees if name in values}


class UnrecordedStep:
    """A step whose record the tape does not keep: written ``recorded: false`` (computed under the tape's
    stop_recording()), or at or before ``reset_after`` (recorded, then thrown out by tape.reset(), which
    the step named there calls once it is computed). On the oracles ``stop_gradient(expression)``, its
    value held constant."""

    def __init__(self, expression: syntax.Expr, held: syntax.Expr, *, paused: bool = True,
                 reset: bool = False) -> None:
        self.expression, self.held, self.paused, self.reset = expression, held, paused, reset

    @staticmethod
    def gradient_names() -> set[str]:
        return set()  # the tape kept nothing of it: nothing flows back

    def __call__(self, values: Mapping[str, Any], backend: Any) -> Any:
        if not isinstance(backend, backends.TensorFlowBackend):
            return syntax.evaluate(self.held, values, backend)
        tape = backend.tape
        with tape.stop_recording() if tape is not None and self.paused else contextlib.nullcontext():
            value = syntax.evaluate(self.expression, values, backend)
        if tape is not None and self.reset:
            tape.reset()
        return value


class AssignStep:
    """``assign_add(x1, x0)``: on the tape the variable's own update, a stateful op the path back from x0
    stops at (TensorFlow's constants, which have no update, get the same value anew); on the oracles the
    variable's value moved by the increment held constant, which every later step reads."""

    def __init__(self, variable: str, increment: syntax.Expr, held: syntax.Expr) -> None:
        self.variable, self.increment, self.held = variable, increment, held

    def gradient_names(self) -> set[str]:
        return {self.variable}  # the value read back is the variable's

    def __call__(self, values: dict[str, Any], backend: Any) -> Any:
        current = values[self.variable]
        if isinstance(backend, backends.TensorFlowBackend) and hasattr(current, "assign_add"):
            current.assign_add(syntax.evaluate(self.increment, values, backend))
            return current.read_value()
        values[self.variable] = backend.binary("+", current, syntax.evaluate(self.held, values, backend))
        return values[self.variable]


def for_step(backend: Any, name: str) -> Any:
    """The backend a step computes with: TensorFlow's and the snippet's in the step's own dtype; the
    oracles' always in float64."""
    choose = getattr(backend, "for_step", None)
    return backend if choose is None else choose(name)
