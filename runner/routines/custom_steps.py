"""A custom gradient's call as a program step, and the oracle that checks the tape followed its ``grads``.

On TensorFlow the call is a ``@tf.custom_gradient`` function built from the definition
(:mod:`runner.scenarios.custom_specs`): ``value`` forward, ``grads`` backward. Everywhere
else the step is the program as written: ``value`` with the arguments put in.

The oracle shares nothing with TensorFlow's autodiff. It does the chain rule through
each custom step in float64 by central differences: the target's gradient with every
custom step's value held (the paths around them), plus, for each custom step, its
``grads`` evaluated in NumPy at the upstream gradient the differences find for it, carried
back to the source through its arguments. The guide's ``clip_gradients(v * v)`` at 2:
upstream 1.0, clipped to 0.5, times d(v*v)/dv = 4: 2.0, where the program as written
gives 4.0 (recorded beside it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from runner.language import backends, expr, syntax
from runner.language.arrays import NumPyBackend
from runner.oracles.checks import compare
from runner.oracles.differences import float64_differences
from runner.result import Check, Outcome
from runner.routines.program_steps import evaluate_steps
from runner.scenarios.custom_specs import GRAD_NAMES, Call, CustomGradient

if TYPE_CHECKING:
    from runner.routines.program import Program


class CustomStep:
    """A step ``name = fn(args...)`` whose backward pass is ``fn``'s ``grads``."""

    def __init__(self, name: str, call: Call, spec: CustomGradient, known: list[str], written: str) -> None:
        self.name, self.fn, self.params = name, call.fn, tuple(spec.args)
        self.args = tuple(expr.parse(text, known) for text in call.args)
        self.value = expr.parse(spec.value, spec.args)
        self.grads = tuple(expr.parse(spec.grads[a], [*spec.args, *GRAD_NAMES]) for a in spec.args)
        self.written = expr.parse(written, known)  # value with the arguments put in

    def gradient_names(self) -> set[str]:
        """What the backward pass reaches: whatever the arguments read."""
        return set().union(*(syntax.names(a) for a in self.args))

    def __call__(self, values: Mapping[str, Any], backend: Any) -> Any:
        if isinstance(backend, backends.TensorFlowBackend):
            return self._on_tape([syntax.evaluate(a, values, backend) for a in self.args], backend)
        return syntax.evaluate(self.written, values, backend)

    def _on_tape(self, args: list[Any], backend: backends.TensorFlowBackend) -> Any:
        from runner.tfenv import tf

        @tf.custom_gradient
        def fn(*xs: Any) -> Any:
            env = dict(zip(self.params, xs, strict=True))
            value = syntax.evaluate(self.value, env, backend)

            def grad(upstream: Any) -> Any:
                env_back = {**env, "value": value, "upstream": upstream}
                found = [syntax.evaluate(g, env_back, backend) for g in self.grads]
                return found if len(found) > 1 else found[0]

            return value, grad

        return fn(*(tf.convert_to_tensor(x) for x in args))

    def definition_code(self, code: backends.CodeBackend) -> list[str]:
        """The ``@tf.custom_gradient`` function as the snippet defines it, before the tape opens."""
        params = {p: backends.Code(p) for p in self.params}
        back = {**params, **{n: backends.Code(n) for n in GRAD_NAMES}}
        grads = [str(syntax.evaluate(g, back, code)) for g in self.grads]
        return ["", "@tf.custom_gradient", f"def {self.fn}({', '.join(self.params)}):",
                f"    value = {syntax.evaluate(self.value, params, code)}", "", "    def grad(upstream):",
                f"        return {grads[0] if len(grads) == 1 else '[' + ', '.join(grads) + ']'}", "",
                "    return value, grad"]

    def call_code(self, code: backends.CodeBackend, known: Mapping[str, Any]) -> str:
        return f"{self.fn}({', '.join(str(syntax.evaluate(a, known, code)) for a in self.args)})"


def customs(program: Program) -> dict[str, CustomStep]:
    return {n: t for n, t in program.trees.items() if isinstance(t, CustomStep)}


def difference_check(program: Program, outcome: Outcome, label: str, target: str, source: str,
                     got: np.ndarray) -> Check:
    """The tape's gradient against the chain rule through every custom step's ``grads``, by float64
    differences; the program as written, differentiated the same way, goes to the values beside it."""
    steps, delta, weight = customs(program), program.delta, program.weights[target]
    point = program.point(source)
    held = {c: program.forward[c] for c in steps if c != source}

    def around(p: np.ndarray) -> np.ndarray:  # the target, every custom step's value held
        return program.evaluate({**program.held, **held, source: p}, target)

    want = float64_differences(around, point, weight, delta)
    for name, step in steps.items():
        on_path = name == target or name in program.reaches(target)
        if name == source or not on_path or source not in program.reaches(name):
            continue
        upstream = float64_differences(
            lambda p, name=name: program.evaluate({**program.held, **held, name: p}, target),
            program.point(name), weight, delta)
        numpy = NumPyBackend(program.branches, program.frozen)
        env = {**dict(zip(step.params, _arguments(program, step, held, source, point), strict=True)),
               "value": program.forward[name], "upstream": upstream}
        cotangents = [np.broadcast_to(syntax.evaluate(g, env, numpy), np.shape(env[p]))
                      for g, p in zip(step.grads, step.params, strict=True)]

        def carried(p: np.ndarray, step: CustomStep = step, cotangents: list[np.ndarray] = cotangents) -> Any:
            return sum(np.sum(c * a) for c, a in zip(cotangents, _arguments(program, step, held, source, p),
                                                     strict=True))

        want = want + float64_differences(carried, point, 1.0, delta)
    outcome.values[f"{label} (as written)"] = float64_differences(
        program.forward_fn(target, source), point, weight, delta)
    through = ", ".join(f"{s.fn}'s" for n, s in steps.items() if n == target or n in program.reaches(target))
    return compare(f"{label} vs float64 differences through {through or 'no custom'} grads", got, want,
                   program.run.tolerances().float64_differences)


def _arguments(program: Program, step: CustomStep, held: Mapping[str, Any], source: str,
               at: np.ndarray) -> list[np.ndarray]:
    """A custom step's arguments in float64 with the source at ``at`` and every custom step held."""
    inputs = {n: v for n, v in program.held.items() if n not in program.trees}
    override = {**held, **({source: at} if source in program.trees else {})}
    if source not in program.trees:
        inputs[source] = at
    numpy = NumPyBackend(program.branches, program.frozen)
    values = {**inputs, **evaluate_steps(program.trees, inputs, numpy, override, step.name)}
    return [np.asarray(syntax.evaluate(a, values, numpy), dtype=np.float64) for a in step.args]
