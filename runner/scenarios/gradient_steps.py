"""A gradient as a program step: ``g: {gradient: out, wrt: x}``, for derivatives of derivatives.

The guide's input-gradient regularisation differentiates a gradient's norm with
respect to a layer's weights: an inner tape (``watch_accessed_variables=False``,
watching only ``wrt``) records the program up to ``out``, its gradient becomes the
step's value, and the program's own tape, open around it, records that gradient
too. Each gradient step has its own inner tape, opened before the first step so
it records everything ``out`` reads; ``wrt`` (an input, or an earlier step) is
watched as soon as it exists, and an unconnected gradient is zeros.

The oracles never use TensorFlow's autodiff: on NumPy the step's value is the
float64 central difference of ``sum(out)`` in every element of ``wrt``, at step
:data:`INNER_DELTA`. The checks then difference the whole program again, so each
outer difference costs ``2 * size(wrt)`` forward passes (nested differences). This
module holds no TensorFlow: the schema vets a config with it before any job starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runner.errors import ConfigError

KEYS = ("gradient", "wrt")
#: The inner differences' step, about eps^(1/4) as second differences take it: the outer differences
#: divide the inner ones' rounding error (about eps / delta) by their own step, so it must not be tiny.
INNER_DELTA = 1e-4
ZERO_CODE = "unconnected_gradients=tf.UnconnectedGradients.ZERO"  # an unconnected gradient is zeros
Evaluate = Callable[..., dict[str, Any]]  # program_steps.evaluate_steps(trees, env, backend, override, upto)


def is_gradient_step(entry: Any) -> bool:
    """A target entry that is a gradient step (a mapping with ``gradient``), not a layer or an expression."""
    return isinstance(entry, Mapping) and "gradient" in entry


def check(name: str, entry: Mapping[str, Any], known: list[str], inputs: Mapping[str, Any],
          derivative: str) -> None:
    """``gradient`` names an earlier step, ``wrt`` an input or an earlier step; nothing else; the
    program's own tape asks for gradients."""
    where = f"scenario.targets.{name}"
    if derivative != "gradient":
        raise ConfigError(f"{where}: a gradient step runs inside the program's tape, which then takes "
                          f"gradients only (derivative=gradient, not {derivative})")
    unknown = [k for k in entry if k not in KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (a gradient step takes gradient, wrt)")
    target, wrt = entry.get("gradient"), entry.get("wrt")
    if target not in known or target in inputs:
        raise ConfigError(f"{where}.gradient: {target!r} is not a step before {name}")
    if wrt not in known:
        raise ConfigError(f"{where}.wrt: {wrt!r} is neither an input nor a step before {name}")


@dataclass(frozen=True)
class GradientStep:
    """A checked gradient step: the step ``target`` is differentiated with respect to ``wrt``."""

    name: str
    target: str
    wrt: str

    def gradient_names(self) -> set[str]:
        """A gradient reads the whole record of its target: what the target reads, and wrt."""
        return {self.target, self.wrt}

    def call_code(self) -> str:
        return f"_inner[{self.name!r}].gradient({self.target}, {self.wrt}, {ZERO_CODE})"

    def numpy_value(self, trees: Mapping[str, Any], values: Mapping[str, Any], backend: Any,
                    evaluate: Evaluate) -> Any:
        """d sum(target) / d wrt by float64 central differences (every element), the rest held."""
        import numpy as np

        from runner.oracles.differences import float64_differences

        def fn(point: np.ndarray) -> np.ndarray:
            env, override = dict(values), {}
            (override if self.wrt in trees else env)[self.wrt] = point
            return np.asarray(evaluate(trees, env, backend, override, self.target)[self.target])

        return float64_differences(fn, np.asarray(values[self.wrt], dtype=np.float64), 1.0, INNER_DELTA)



def build(targets: Mapping[str, Any]) -> dict[str, GradientStep]:
    return {name: GradientStep(name, entry["gradient"], entry["wrt"])
            for name, entry in targets.items() if is_gradient_step(entry)}


def inner_tapes(steps: Mapping[str, GradientStep], values: Mapping[str, Any],
                stack: contextlib.ExitStack) -> dict[str, Any]:
    """One inner tape per gradient step, the first step's innermost, each watching its input ``wrt``."""
    from runner.tfenv import tf

    tapes = {}
    for name, step in reversed(steps.items()):
        tapes[name] = stack.enter_context(tf.GradientTape(watch_accessed_variables=False))
        if step.wrt in values:
            tapes[name].watch(values[step.wrt])
    return tapes


def snippet(steps: Mapping[str, GradientStep], lines: list[tuple[str, str]], inputs: Any) -> list[str]:
    """The program's step lines, ``(name, line)`` indented for the outer tape's block, nested in the
    inner tapes: each step sits inside the tapes of the gradient steps after it, so each gradient
    step's ``with`` block closes just before its own line."""
    order = [name for name, _ in lines]
    out = ["    _inner = {}  # each gradient step's inner tape"]
    for level, (name, step) in enumerate(reversed(steps.items())):
        pad = "    " * (level + 1)
        out.append(f"{pad}with tf.GradientTape(watch_accessed_variables=False) as _inner[{name!r}]:")
        if step.wrt in inputs:
            out.append(f"{pad}    _inner[{name!r}].watch({step.wrt})")
    for index, (name, line) in enumerate(lines):
        pad = "    " * sum(1 for later in order[index + 1:] if later in steps)
        out.append(pad + line)
        out += [f"{pad}    _inner[{g!r}].watch({name})" for g, s in steps.items() if s.wrt == name]
    return out
