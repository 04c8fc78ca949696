"""A misspelt or misplaced key, answered in one line that names the keys meant.

Hydra answers ``scenario.fuction=...`` (or ``dtyp=float64``) with six lines ending in
"To append to your config use +scenario.fuction=...", a hint that fails too (the
schema refuses the new key). The schemas know every key a run and a scenario can
have, so a key that none has is refused here, before Hydra composes anything, with
the closest valid keys; a key only another kind of scenario has names the kinds
that have it. Keys that are names (an input, an output, a target) are the user's to
choose, and pass on to Hydra untouched, as do Hydra's own.
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


def unknown_scenario_key(args: list[str], config_dir: str | None = None) -> str | None:
    """A one-line hint for the first override of a key that no config has, or None: a misspelt
    top-level key (``dtyp``) or group (``scenaro``), a key no scenario has, and (given the config
    directory) a key of another scenario than the one chosen, with the scenarios that have it."""
    if {"-sc", "--shell-completion"} & set(args):
        return None  # Hydra completes the words typed so far: nothing is an override yet
    for before, arg in zip(["", *args], args, strict=False):
        if arg.startswith(("+", "-")) or ("=" not in arg and not arg.startswith("~")) or before in _VALUED:
            continue  # flags and their values, and keys added on purpose (the schema checks them)
        parts = arg.lstrip("~").split("=", 1)[0].split(".")
        if parts[0].startswith("hydra"):
            continue  # Hydra's own settings: Hydra answers for them
        if parts[0] != "scenario":
            hint = _unknown(parts, _top_fields(), "")
            return hint.lstrip(".").replace(" .", " ") if hint else None
        if len(parts) > 1 and (hint := _unknown(parts[1:], _scenario_fields(), "scenario")):
            return hint
        if len(parts) > 1 and config_dir is not None and (
                hint := _other_scenarios(parts[1], args, config_dir)):
            return hint
    return None


#: Hydra's flags whose next word is their value, never an override.
_VALUED = frozenset({"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-p", "--package",
                     "--experimental-rerun", "-i", "--info"})


@functools.cache
def _top_fields() -> dict[str, Any]:
    """The run's keys and the config groups: what a top-level override may name."""
    from runner.scenarios.schema import RunConfig

    groups = dict.fromkeys(("experiment", "tracking", "checks"), None)
    return {**groups, **typing.get_type_hints(RunConfig)}  # checks: the group, typed as its schema


def _chosen(args: list[str], config_dir: str) -> str:
    """The scenario an invocation runs: its ``scenario=`` override, else the config's default; '' when an
    experiment may choose it (only composing would tell)."""
    import re
    from pathlib import Path

    given = [a.split("=", 1)[1] for a in args if a.startswith("scenario=")]
    if given:
        return given[-1]
    if any(a.startswith(("experiment=", "+experiment=")) for a in args):
        return ""
    found = re.search(r"^\s*- scenario: (\S+)", (Path(config_dir) / "config.yaml").read_text(), re.M)
    return found.group(1) if found else ""


def _routine(name: str, config_dir: str) -> str | None:
    """The routine a shipped scenario's YAML names in its defaults list (``/schema/scenario/<routine>``)."""
    import re
    from pathlib import Path

    path = Path(config_dir) / "scenario" / f"{name}.yaml"
    if "," in name or not path.is_file():  # a sweep over several, or a config of the user's own
        return None
    found = re.search(r"/schema/scenario/(\w+)@_here_", path.read_text())
    return found.group(1) if found else None


def _other_scenarios(key: str, args: list[str], config_dir: str) -> str | None:
    """``scenario.batch=32`` on basic: the key is another scenario kind's; say which have it."""
    chosen = _chosen(args, config_dir)
    routine = _routine(chosen, config_dir)
    if routine is None or key in typing.get_type_hints(SCENARIO_SCHEMAS[routine]):
        return None
    having = [r for r, schema in SCENARIO_SCHEMAS.items() if key in typing.get_type_hints(schema)]
    return (f"scenario.{key}: scenario={chosen} (a {routine}) has no key {key}; "
            f"{' and '.join(having)} {'has' if len(having) == 1 else 'have'} it, e.g. scenario={having[0]}")
