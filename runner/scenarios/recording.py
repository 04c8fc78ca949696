"""What the tape does not record: a step written ``y_sq: {expression: y * y, recorded: false}``, and a
variable's update ``u: assign_add(x1, x0)`` (a stateful op: the path from x0 stops there).

TensorFlow's ``with tape.stop_recording(): y_sq = y * y`` computes the value while the
tape looks away, so nothing flows back through it and the tape cannot differentiate with
respect to it either (``y_sq`` is a tensor it never saw, as a setup result is). The oracles
read the step as ``stop_gradient(y * y)``: its value, held constant.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from runner.errors import ConfigError

KEYS = ("expression", "recorded")


def is_step(entry: Any) -> bool:
    """A step written as a mapping with ``expression`` (and ``recorded``)."""
    return isinstance(entry, Mapping) and "expression" in entry


def unrecorded(entry: Any) -> bool:
    return is_step(entry) and entry.get("recorded", True) is False


def as_written(entry: Any) -> Any:
    """The expression the oracles read: held constant where the tape does not record the step."""
    if not is_step(entry):
        return entry
    return f"stop_gradient({entry['expression']})" if unrecorded(entry) else entry["expression"]


def check(entry: Mapping[str, Any], where: str, derivative: str, gradient_steps: bool) -> None:
    """Its keys, a string expression, a boolean ``recorded``, and a derivative asked of one tape."""
    unknown = [k for k in entry if k not in KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (a step written as a mapping takes "
                          f"{', '.join(KEYS)})")
    if not isinstance(entry.get("expression"), str) or not isinstance(entry.get("recorded", True), bool):
        raise ConfigError(f"{where}: expression is a string and recorded true or false")
    if unrecorded(entry) and (derivative not in ("gradient", "jacobian", "batch_jacobian") or gradient_steps):
        raise ConfigError(f"{where}: recorded: false pauses the program's one tape, so it takes gradients, "
                          f"Jacobians or batch Jacobians and no gradient steps (not {derivative})")


def check_reset(name: str | None, targets: Mapping[str, Any], derivative: str) -> None:
    """``reset_after`` names an expression step; every step up to it is an expression, and the tape is the
    program's one (gradients, Jacobians or batch Jacobians)."""
    if name is None:
        return
    if name not in targets:
        raise ConfigError(f"scenario.reset_after: {name!r} is not a step (steps: {', '.join(targets)})")
    before = list(targets)[:list(targets).index(name) + 1]
    if any(not isinstance(targets[s], str) for s in before):
        raise ConfigError("scenario.reset_after: the steps up to the reset are expressions (a layer, "
                          "gradient or unrecorded step's record cannot be thrown out here)")
    if derivative not in ("gradient", "jacobian", "batch_jacobian"):
        raise ConfigError(f"scenario.reset_after: tape.reset() resets the program's one tape, so it takes "
                          f"gradients, Jacobians or batch Jacobians (not {derivative})")


def assignment(entry: Any) -> tuple[str, str] | None:
    """``assign_add(x1, x0)`` written as a whole step: the variable's name and the increment's text."""
    if not isinstance(entry, str) or "assign_add" not in entry:
        return None
    try:
        node = ast.parse(entry.strip(), mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "assign_add"):
        return None
    if len(node.args) != 2 or node.keywords or not isinstance(node.args[0], ast.Name):
        raise ConfigError("assign_add(variable, value): a variable's name, then the value to add")
    return node.args[0].id, ast.unparse(node.args[1])


def assigned_as_written(entry: Any) -> Any:
    """An update as the value it leaves in the variable, the increment held constant (no path back)."""
    found = assignment(entry)
    return entry if found is None else f"{found[0]} + stop_gradient({found[1]})"
