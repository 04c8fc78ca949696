"""A misspelt scenario key, answered in one line that names the keys meant.

Hydra answers ``scenario.fuction=...`` with six lines ending in "To append to your
config use +scenario.fuction=...", a hint that fails too (the schema refuses the
new key). The schemas know every key a scenario can have, so a key that no
scenario has is refused here, before Hydra composes anything, with the closest
valid keys. Keys that are names (an input, an output, a target) are the user's
to choose, and pass on to Hydra untouched.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from typing import Any

from runner.scenarios.inputs import ProgramInput
from runner.scenarios.schema import SCENARIO_SCHEMAS


@functools.cache
def _scenario_fields() -> dict[str, Any]:
    """Every key of every scenario schema, with its type.

    ``inputs`` maps names to :class:`ProgramInput`, whose keys include every other
    routine's input keys: a key a program's input may have is no typo anywhere (the
    schema then says in one line where it does not belong).
    """
    fields: dict[str, Any] = {}
    for schema in SCENARIO_SCHEMAS.values():
        fields.update(typing.get_type_hints(schema))
    fields["inputs"] = dict[str, ProgramInput]
    return fields


def _fields(kind: Any) -> dict[str, Any] | None:
    if dataclasses.is_dataclass(kind):
        return typing.get_type_hints(kind)
    args = [a for a in typing.get_args(kind) if a is not type(None)]  # Linspace | None
    return _fields(args[0]) if len(args) == 1 else None


def _closest(typed: str, candidates: list[str]) -> list[str]:
    """The candidates fewest edits away (a swap of two neighbours counts one, as typists make it)."""
    if not candidates:
        return []
    distance = {c: _edits(typed, c) for c in candidates}
    return [c for c in candidates if distance[c] == min(distance.values())]


def _edits(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours turning ``a`` into ``b``."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def _unknown(parts: list[str], fields: dict[str, Any], done: str) -> str | None:
    """The hint for the first of ``parts`` that is not a key where it stands, if any."""
    head, rest = parts[0], parts[1:]
    if head not in fields:
        close = _closest(head, difflib.get_close_matches(head, list(fields), n=3, cutoff=0.6))
        meant = " or ".join(f"{done}.{c}" for c in close)
        return (f"{done}.{head}: unknown key; "
                + (f"did you mean {meant}?" if close else f"the keys here are {', '.join(sorted(fields))}"))
    kind = fields[head]
    if not rest:
        return None
    if typing.get_origin(kind) is dict:  # a name of the user's choosing, then its own keys
        value = _fields(typing.get_args(kind)[1])
        return _unknown(rest[1:], value, f"{done}.{head}.{rest[0]}") if value and rest[1:] else None
    nested = _fields(kind)
    return _unknown(rest, nested, f"{done}.{head}") if nested else None


def unknown_scenario_key(args: list[str]) -> str | None:
    """A one-line hint for the first override of a key that no scenario has, or None."""
    for arg in args:
        if arg.startswith(("+", "-")) or ("=" not in arg and not arg.startswith("~")):
            continue  # flags, and keys added on purpose (which the schema checks after composing)
        parts = arg.lstrip("~").split("=", 1)[0].split(".")
        if parts[0] == "scenario" and len(parts) > 1 and (hint := _unknown(parts[1:], _scenario_fields(),
                                                                          "scenario")):
            return hint
    return None
