"""A target that is a list or dict of earlier steps: ``ys: "[y0, y1]"``, ``yd: "{'y0': y0, 'y1': y1}"``.

``tape.gradient`` takes such a structure as its target and differentiates the sum of
every part's elements (the guide: ``y0 = x**2, y1 = 1/x`` at 2 give 4 and -0.25
apart, 3.75 as one target). The tape is handed the structure itself; everything else
(shapes, the oracles, the value recorded) reads the expression it stands for,
``reduce_sum(y0) + reduce_sum(y1)``, which has that same gradient.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from runner.errors import ConfigError


@dataclass(frozen=True)
class Structure:
    parts: tuple[str, ...]  # the steps (or inputs) it holds, in order
    keys: tuple[str, ...] | None  # a dict's keys; None for a list

    def total(self) -> str:
        """The expression with the structure's gradient: the sum of every part's elements."""
        return " + ".join(f"reduce_sum({p})" for p in self.parts)

    def code(self) -> str:
        """The structure as Python builds it from the parts' tensors."""
        if self.keys is None:
            return f"[{', '.join(self.parts)}]"
        return "{" + ", ".join(f"{k!r}: {p}" for k, p in zip(self.keys, self.parts, strict=True)) + "}"

    def build(self, values: dict[str, Any]) -> Any:
        """The structure of the parts' values, as ``tape.gradient`` is given it."""
        if self.keys is None:
            return [values[p] for p in self.parts]
        return {k: values[p] for k, p in zip(self.keys, self.parts, strict=True)}


def parse(entry: Any) -> Structure | None:
    """The structure a target's text (or YAML list) spells, or None for any other step."""
    if isinstance(entry, list) and entry and all(isinstance(p, str) for p in entry):
        return Structure(tuple(entry), None)
    if not isinstance(entry, str) or entry.lstrip()[:1] not in ("[", "{"):
        return None
    try:
        node = ast.parse(entry.strip(), mode="eval").body
    except SyntaxError:
        return None
    listed = isinstance(node, ast.List | ast.Tuple) and node.elts
    if listed and all(isinstance(e, ast.Name) for e in node.elts):  # type: ignore[attr-defined]
        return Structure(tuple(e.id for e in node.elts), None)  # type: ignore[attr-defined]
    if isinstance(node, ast.Dict) and node.keys and all(
            isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys) and all(
            isinstance(v, ast.Name) for v in node.values):
        return Structure(tuple(v.id for v in node.values),  # type: ignore[attr-defined]
                         tuple(k.value for k in node.keys))  # type: ignore[union-attr]
    return None


def expression(entry: Any) -> Any:
    """What a step's entry is read as: a structure's total, any other entry itself."""
    found = parse(entry)
    return entry if found is None else found.total()


def check(name: str, structure: Structure, known: list[str], where: str) -> None:
    """Its parts are earlier steps or inputs, each once; its dict keys distinct."""
    for part in structure.parts:
        if part not in known:
            raise ConfigError(f"{where}: {part!r} is neither an input nor a step before {name}")
    if len(set(structure.parts)) < len(structure.parts):
        raise ConfigError(f"{where}: a step appears twice in the structure")
    if structure.keys is not None and len(set(structure.keys)) < len(structure.keys):
        raise ConfigError(f"{where}: a key appears twice")
