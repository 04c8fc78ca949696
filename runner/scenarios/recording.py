"""A step the tape does not record: ``y_sq: {expression: y * y, recorded: false}``.

TensorFlow's ``with tape.stop_recording(): y_sq = y * y`` computes the value while the
tape looks away, so nothing flows back through it and the tape cannot differentiate with
respect to it either (``y_sq`` is a tensor it never saw, as a setup result is). The oracles
read the step as ``stop_gradient(y * y)``: its value, held constant.
"""

from __future__ import annotations

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
