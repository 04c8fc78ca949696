"""What a program may ask the tape for besides a gradient, as data: kinds, labels, shapes, refusals.

A program's ``derivative`` key applies to every entry of its ``gradients``:
``gradient`` (tape.gradient), ``jacobian`` (tape.jacobian), ``batch_jacobian``,
``hessian`` (nested tapes: the Jacobian of the gradient), ``hvp`` (a Hessian-vector product,
forward over reverse: a ForwardAccumulator around the tape, pushing the tangent through its
gradient) or ``jvp`` (tf.autodiff.ForwardAccumulator). Each result keeps its tensor's full shape. This
module holds no TensorFlow: the schema vets a config with it before any job starts,
and the memory estimate sizes every result from shapes alone. The tape work and the
checks are in :mod:`runner.routines.derivative_kinds`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError
from runner.scenarios.values import finite, nested_shape

if TYPE_CHECKING:
    from runner.scenarios.schema import ProgramScenario

KINDS = ("gradient", "jacobian", "batch_jacobian", "hessian", "hvp", "jvp")
#: Kinds that push a tangent forward: ``scenario.tangents`` gives it, at an input or a layer's variable.
TANGENT_KINDS = ("hvp", "jvp")
Shape = tuple[int, ...]


def label(kind: str, target: str, source: str) -> str:
    """``d<target>/d<source>``; a Hessian's (and a Hessian-vector product's) ``d2<target>/d<source>2``."""
    return f"d2{target}/d{source}2" if kind in ("hessian", "hvp") else f"d{target}/d{source}"


def result_shape(kind: str, target: Shape, source: Shape) -> Shape:
    """What the tape returns: a gradient (and H u) is shaped like the source, a JVP like the target, a
    Jacobian like both (a batch Jacobian shares the batch axis once), a Hessian like the source twice."""
    return {"gradient": source, "hvp": source, "jvp": target, "jacobian": target + source,
            "batch_jacobian": target + source[1:], "hessian": source + source}[kind]


def check(scenario: ProgramScenario, shapes: dict[str, Shape]) -> None:
    """The derivative keys against each other and the shapes; one line per problem."""
    kind, pfor = scenario.derivative, scenario.experimental_use_pfor
    if kind not in KINDS:
        raise ConfigError(f"scenario.derivative: unknown {kind!r} (known: {', '.join(KINDS)})")
    if not (pfor is True or pfor is False or pfor == "both"):  # not 1 or 0, which equal True and False
        raise ConfigError(f"scenario.experimental_use_pfor: {pfor!r} is not true, false or both")
    if pfor is not True and kind != "jacobian":
        raise ConfigError("scenario.experimental_use_pfor chooses how derivative=jacobian runs; "
                          f"derivative={kind} has no such choice")
    if pfor is not True and not scenario.persistent:
        raise ConfigError("scenario.experimental_use_pfor: the tf.while_loop path calls gradient() once "
                          "per row, which eager TensorFlow allows only on a persistent tape: set "
                          "scenario.persistent=true")
    if scenario.tangents and kind not in TANGENT_KINDS:
        raise ConfigError(f"scenario.tangents: only derivative=jvp or hvp takes tangents, not {kind}")
    if scenario.newton_step and kind != "hessian":
        raise ConfigError(f"scenario.newton_step solves with a Hessian: it needs derivative=hessian, "
                          f"not {kind}")
    if not (finite(scenario.damping) and scenario.damping >= 0):
        raise ConfigError(f"scenario.damping must be a finite number >= 0, got {scenario.damping}")
    if scenario.output_gradients and kind not in ("gradient", "hessian", "hvp"):
        raise ConfigError(f"scenario.output_gradients: {kind} differentiates every element of the target "
                          "apart; only gradient, hessian and hvp take a cotangent")
    plan = scenario.plan()
    for target, sources in plan.items():
        where = f"scenario.gradients.{target}"
        if kind == "batch_jacobian":
            if len(sources) > 1 and not scenario.persistent:
                raise ConfigError(f"{where}: batch_jacobian takes one source per call, so several sources "
                                  "need a persistent tape (scenario.persistent=true)")
            for source in sources:
                check_batch_pair(where, target, source, shapes)
        if kind in TANGENT_KINDS:
            for source in sources:
                if source not in scenario.inputs and "." not in source:  # "." : a layer's variable
                    raise ConfigError(f"{where}: derivative={kind} pushes its tangent in at an input or a "
                                      f"layer's variable; {source!r} is a step")
    every = {s for sources in plan.values() for s in sources}
    for source, value in scenario.tangents.items():
        where = f"scenario.tangents.{source}"
        if source not in every:
            raise ConfigError(f"{where}: {source!r} is not a source in scenario.gradients")
        given = nested_shape(value, where)
        if given and given != shapes[source]:
            raise ConfigError(f"{where}: shape {given} is not {source}'s {shapes[source]} (give a number "
                              "to fill it, or a nested list shaped like it)")



def check_batch_pair(where: str, target: str, source: str, shapes: dict[str, Shape]) -> None:
    """A batch Jacobian's target and source share their first (batch) axis, and each has another."""
    t, s = shapes[target], shapes[source]
    if not t or not s or t[0] != s[0]:
        raise ConfigError(f"{where}: batch_jacobian needs {target} {t} and {source} {s} to share "
                          "their first (batch) dimension")
    if len(t) < 2 or len(s) < 2:
        raise ConfigError(f"{where}: batch_jacobian needs {target} {t} and {source} {s} to have "
                          "a dimension after the batch's (reshape a vector to (batch, 1))")


def memory(scenario: ProgramScenario, shapes: dict[str, Shape], item: int, checked: bool) -> dict[str, int]:
    """Bytes the results take beyond a gradient's: every Jacobian and Hessian element, held by the tape's
    vectorised pass and by the result (twice with both pfor paths), and once more in float64 to check."""
    kind = scenario.derivative
    if kind in ("gradient", "hvp", "jvp"):
        return {}
    count = sum(math.prod(result_shape(kind, shapes[t], shapes[s]))
                for t, sources in scenario.plan().items() for s in sources)
    paths = 2 if scenario.experimental_use_pfor == "both" else 1
    parts = {f"{kind} results": 2 * item * count * paths}
    if checked:
        parts[f"{kind} checks"] = 2 * 8 * count
    return parts


def tangent_value(value: Any, shape: Shape) -> Any:
    """A given tangent as float64, a number filled to the source's shape."""
    import numpy as np

    return np.broadcast_to(np.asarray(value, dtype=np.float64), shape).copy()
