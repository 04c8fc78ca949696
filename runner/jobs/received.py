"""The gate between a folder someone sent and Hydra: a received snapshot or sweep is data.

``tape-runner-report DIR --rerun`` (and ``tape-runner --config-path <run>/.hydra``)
hands Hydra what a results folder holds: a run's saved ``config.yaml`` becomes the
primary config, and a sweep's ``multirun.yaml`` overrides become the resumed
sweep's command line. Unchecked, either could set Hydra's own settings (a log
handler that appends to any file, an output directory anywhere, a callback naming
Python), load any YAML on disk through ``..`` in a config-group value, read the
environment through an interpolation (``${oc.env:TOKEN}``), or lift the
installation's limits. So, before anything is composed, all of it passes here:

- a snapshot folder holds ``config.yaml`` and at most Hydra's ``hydra.yaml`` and
  ``overrides.yaml``: regular files, no links, at most :data:`MAX_FILE` bytes each;
- ``config.yaml`` is the task's own config: the run schema's keys and types, no
  ``hydra`` or ``defaults`` key;
- nowhere a key Hydra's ``instantiate`` acts on (``_target_``, ...), nowhere ``${``
  (an interpolation is refused, never resolved);
- each override is one Hydra can parse, sets no Hydra key and no package, and
  chooses only config names: in a resumed sweep, where the choice is composed,
  a name the search path lists; in a snapshot's ``overrides.yaml``, which is only
  recorded as the rerun's command, a plain relative name (no ``..``, no ``/`` first);
- ``limits`` may tighten the installation's and never loosen them (``time_s: 0``,
  no limit, loosens).

Each refusal is one :class:`Refused` line naming the file, the key and the rule.
"""

from __future__ import annotations

import functools
import math
import os
import re
import reprlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import ConfigError
from runner.outputs.records import Rejected, read_inside

MAX_FILE = 2**20  # far above any snapshot file a run writes (a few kilobytes)
MAX_NODES = 100_000  # keys, values and list items in one received YAML document
SNAPSHOT_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
#: Keys that Hydra's instantiate (or a callback's config) reads as code to call.
CODE_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")
LIMITS = ("memory_mb", "time_s")
MAX_MULTIRUN_YAML = 16 * 2**20  # a sweep's multirun.yaml: its config and Hydra's, tens of kilobytes
#: Hydra settings a resumed sweep keeps: the launcher's choice, its resource values, how jobs were batched
#: and the swept parameters (runner overrides). Any other Hydra setting is left out, and said so.
KEPT = ("hydra/launcher", "hydra.mode", "hydra.sweeper.max_batch_size")
LAUNCHER_KEYS = frozenset({
    "n_jobs", "backend", "prefer", "timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node",
    "mem_gb", "nodes", "name", "partition", "qos", "comment", "constraint", "exclude", "gres",
    "cpus_per_gpu", "gpus_per_task", "mem_per_gpu", "mem_per_cpu", "account", "array_parallelism",
    "max_num_timeout"})
#: A launcher value as a scheduler takes it (a partition, a gres, a count): one word, nothing that a
#: shell or a line of an sbatch script would read as more than that.
_LAUNCHER_VALUE = re.compile(r"[A-Za-z0-9_.,:@+&|*\[\]-]{0,200}\Z")
_PARAMS = "hydra.sweeper.params."
#: A config name as a snapshot may record it: relative, no '..' segment, no odd characters.
#: A key as a received override may write it: dotted names, a group's path, no '..', no '/' first.
_KEY = re.compile(r"[A-Za-z0-9_-]+(?:[./][A-Za-z0-9_-]+)*\Z")
_PLAIN_NAME = re.compile(r"(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}\Z")


class Refused(ConfigError):
    """Something a received folder holds that is not data the runner accepts, in one line."""


def installed_limits(config_dir: str | Path) -> dict[str, float]:
    """``limits`` as this installation's ``config.yaml`` sets them: what a received config may tighten."""
    import yaml

    limits = (yaml.safe_load((Path(config_dir) / "config.yaml").read_text()) or {}).get("limits") or {}
    return {name: float(limits[name]) for name in LIMITS}


@dataclass(frozen=True)
class SearchPath:
    """The config directories a composition searches (the installed one, then any ``--config-dir``),
    and the options Hydra's installed plugins register: what a config-group choice may name."""

    dirs: tuple[Path, ...]

    def is_group(self, group: str) -> bool:
        return any((d / group).is_dir() for d in self.dirs) or bool(_registered(group))

    @functools.cache  # noqa: B019  (a handful of instances, each living as long as the command)
    def options(self, group: str) -> frozenset[str]:
        found: set[str] = set()
        for directory in self.dirs:
            root = directory / group
            if root.is_dir():
                found |= {str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml")}
        return frozenset(found | _registered(group))


@functools.cache
def _registered(group: str) -> frozenset[str]:
    """Options of ``group`` in Hydra's ConfigStore, once the installed plugins have registered theirs."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    from runner.scenarios.schema import register_configs

    Plugins.instance()  # imports hydra_plugins.*, which register their launchers' and sweepers' configs
    register_configs()
    try:
        listed = ConfigStore.instance().list(group)
    except OSError:  # no such group
        return frozenset()
    return frozenset(name.removesuffix(".yaml") for name in listed if name.endswith(".yaml"))


def _short(value: Any, width: int = 60) -> str:
    """``value`` shown in a line: a string as it is, anything else by a repr bounded in depth and items
    (a YAML alias bomb's plain repr would be gigabytes)."""
    text = value if isinstance(value, str) else reprlib.repr(value)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: width * 4])  # one line
    return text if len(text) <= width else text[: width - 3] + "..."


def read_yaml(path: Path, what: str, limit: int = MAX_FILE) -> Any:
    """A received YAML file: a regular file reached without a link, bounded, parsed as plain data."""
    import yaml

    try:
        raw = read_inside(path, limit)
        return yaml.safe_load(raw)
    except Rejected as err:
        raise Refused(f"{what}: {err}") from None
    except yaml.YAMLError as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise Refused(f"{what}: not YAML: {reason}") from None
    except RecursionError:
        raise Refused(f"{what}: nested too deeply") from None


def check_data(value: Any, what: str) -> None:
    """No interpolation and no key Hydra's instantiate acts on, anywhere in ``value``; bounded in size."""
    budget = MAX_NODES
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, where = stack.pop()
        budget -= 1
        if budget < 0:
            raise Refused(f"{what}: more than {MAX_NODES:,} keys and values (or a YAML alias loop)")
        if isinstance(node, dict):
            for key, item in node.items():
                here = f"{where}.{key}" if where else str(key)
                if not isinstance(key, str):
                    raise Refused(f"{what}: key {_short(key)} at {where or 'the top'} is not a string")
                if key in CODE_KEYS:
                    raise Refused(f"{what}: {here}: a {key} key names Python to call; a received config "
                                  "is data")
                if "${" in key:
                    raise Refused(f"{what}: key {_short(here)} holds an interpolation ('${{'); a received "
                                  "config is data and is never resolved")
                stack.append((item, here))
        elif isinstance(node, list):
            stack.extend((item, f"{where}[{index}]") for index, item in enumerate(node))
        elif isinstance(node, str) and "${" in node:
            raise Refused(f"{what}: {where or 'a value'}: {_short(node)!r} is an interpolation ('${{'); a "
                          "received config is data and is never resolved")


def check_limits(values: Any, installed: dict[str, float], what: str, skip: Iterable[str] = ()) -> None:
    """``limits`` that tighten the installation's, never loosen them (0 s is no limit: a loosening)."""
    if not isinstance(values, dict):
        raise Refused(f"{what}: limits must be a mapping of {', '.join(LIMITS)}, got {_short(values)}")
    for name in LIMITS:
        if name in skip:
            continue
        if name not in values:
            raise Refused(f"{what}: limits.{name} is missing")
        _tightens(name, values[name], installed, what)


def _tightens(name: str, value: Any, installed: dict[str, float], what: str) -> None:
    ceiling = installed[name]
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number):
        raise Refused(f"{what}: limits.{name} must be a number, got {_short(value)}")
    unbounded = ceiling <= 0  # this installation sets no such limit: any bound tightens it
    if not unbounded and not 0 < number <= ceiling:
        raise Refused(f"{what}: limits.{name}={number} would loosen this installation's "
                      f"limits.{name}={ceiling:g}; a received config may only tighten limits (to allow "
                      f"it, give limits.{name}={number} on your own command line)")


def check_config(saved: Any, installed: dict[str, float], what: str, own: Iterable[str] = ()) -> None:
    """A saved ``config.yaml``: the task's config as the run schema types it, data only.

    ``own`` are the keys the user overrides on their own command line: their limits are theirs.
    """
    if not isinstance(saved, dict):
        raise Refused(f"{what}: expected the task's config (a mapping), got {_short(saved)}")
    if found := [key for key in ("hydra", "defaults") if key in saved]:
        raise Refused(f"{what}: a '{found[0]}' key sets Hydra's own settings; a run's saved config "
                      "has none")
    check_data(saved, what)
    from runner.scenarios.loading import typed_run

    try:
        typed_run(saved)
    except ConfigError as err:
        raise Refused(f"{what}: {err}") from None
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as err:  # a former routine's
        raise Refused(f"{what}: not a config a run saved ({type(err).__name__}: "  # translation, fed junk
                      f"{_short(str(err))})") from None
    own = set(own)
    check_limits(saved.get("limits"), installed, what,
                 skip=[n for n in LIMITS if {"limits", f"limits.{n}"} & own])


def _parse(line: Any, what: str) -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if not isinstance(line, str):
        raise Refused(f"{what}: an override must be a string, got {_short(line)}")
    if "${" in line:
        raise Refused(f"{what}: {_short(line)!r} holds an interpolation ('${{'); a received override is "
                      "data and is never resolved")
    if found := next((k for k in CODE_KEYS if k in line), None):
        raise Refused(f"{what}: {_short(line)!r}: a {found} key names Python to call")
    try:
        (override,) = OverridesParser.create().parse_overrides([line])
    except HydraException as err:
        raise Refused(f"{what}: {_short(line)!r} is not an override: {str(err).splitlines()[0]}") from None
    if override.package is not None:
        raise Refused(f"{what}: {_short(line)!r} places a config at a package ('@'); a received override "
                      "may not")
    return override


def values(override: Any, search: SearchPath) -> Iterator[Any]:
    """Each value an override sets: the choices of a sweep one by one, an element as it is."""
    from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, Override, RangeSweep

    value = override.value()
    if isinstance(value, ChoiceSweep):
        yield from (Override._convert_value(item) for item in value.list)
    elif isinstance(value, RangeSweep):
        yield from value.range()
    elif isinstance(value, IntervalSweep):
        yield from (value.start, value.end)
    elif isinstance(value, Glob):  # choices among the names listed: nothing else can match
        matched = value.filter(sorted(search.options(override.key_or_group)))
        if not matched:
            raise Refused(f"{_short(override.input_line)!r}: the glob matches no {override.key_or_group} "
                          "config the search path lists")
        yield from matched
    else:
        yield value


def _choices(value: Any) -> list[Any]:
    """A group override's names: one, or a list of them (tracking=[tensorboard,mlflow])."""
    return list(value) if isinstance(value, list) else [value]


def check_override(line: Any, installed: dict[str, float], what: str, search: SearchPath, *,
                   listed: bool) -> Any:
    """One received task override: parsed, no Hydra key, names only, limits tightened. Returns it parsed.

    ``listed``: a group's choice must be a name ``search`` lists (the override will be composed);
    otherwise a plain relative name (it is only recorded).
    """
    override = _parse(line, what)
    key = override.key_or_group
    if not _KEY.match(key):
        raise Refused(f"{what}: {_short(line)!r}: {_short(key)!r} is not a key a config has")
    if override.is_hydra_override() or key == "hydra":
        raise Refused(f"{what}: {_short(line)!r} sets Hydra's own settings; a received override may not")
    if override.is_delete():
        return override
    group = "." not in key and search.is_group(key)
    for value in values(override, search):
        if group:
            _check_choices(key, value, search if listed else None, what, line)
        elif key == "limits" or key.startswith("limits."):
            limits = value if key == "limits" else {key.removeprefix("limits."): value}
            if not isinstance(limits, dict):
                raise Refused(f"{what}: {_short(line)!r}: limits must be a mapping")
            for name, bound in limits.items():
                if name not in LIMITS:
                    raise Refused(f"{what}: {_short(line)!r}: unknown limit {name!r} "
                                  f"(limits: {', '.join(LIMITS)})")
                _tightens(name, bound, installed, what)
    return override


def _check_choices(group: str, value: Any, search: SearchPath | None, what: str, line: str) -> None:
    for choice in _choices(value):
        if choice is None:
            continue
        if search is None:
            if not (isinstance(choice, str) and _PLAIN_NAME.match(choice)):
                raise Refused(f"{what}: {_short(line)!r}: {_short(choice)!r} is not a config name (a "
                              "relative name without '..')")
        elif choice not in search.options(group):
            raise Refused(f"{what}: {_short(line)!r}: {_short(choice)!r} is not a {group} config the "
                          f"search path lists (known: {', '.join(sorted(search.options(group))[:12])}"
                          f"{', ...' if len(search.options(group)) > 12 else ''})")


def check_snapshot(path: Path, installed: dict[str, float], search: SearchPath, own: Iterable[str] = ()
                   ) -> None:
    """A run's snapshot folder: Hydra's files only, the config data only, the overrides names only.

    ``own`` are the keys of the user's own overrides on the command line (theirs to set).
    """
    if os.path.islink(path) and not path.exists():
        raise Refused(f"{path}: a link to nothing")
    if not path.is_dir():
        raise Refused(f"{path} is not a directory")
    extra = sorted(p.name for p in path.iterdir() if p.name not in SNAPSHOT_FILES)
    if extra:
        raise Refused(f"{path} is not a run's snapshot: it holds {', '.join(_short(e, 40) for e in extra)} "
                      f"(a snapshot holds only {', '.join(SNAPSHOT_FILES)})")
    if not os.path.lexists(path / "config.yaml"):
        raise Refused(f"{path} holds no config.yaml: nothing to re-run")
    if os.path.lexists(path / "hydra.yaml"):  # Hydra's record of its settings, never read back: a file
        try:
            read_inside(path / "hydra.yaml", MAX_FILE)
        except Rejected as err:
            raise Refused(f"{path / 'hydra.yaml'}: {err}") from None
    check_config(read_yaml(path / "config.yaml", str(path / "config.yaml")), installed,
                 str(path / "config.yaml"), own)
    if os.path.lexists(path / "overrides.yaml"):
        where = str(path / "overrides.yaml")
        listed = read_yaml(path / "overrides.yaml", where)
        if not isinstance(listed, list):
            raise Refused(f"{where}: expected a list of overrides, got {_short(listed)}")
        check_data(listed, where)
        for line in listed:
            check_override(line, installed, where, search, listed=False)


def _kept(line: str) -> bool:
    """Whether a resumed sweep needs this Hydra override of the original (by its key alone)."""
    key = line.lstrip("+~").split("=", 1)[0]
    if key.startswith(_PARAMS):
        return not key.removeprefix(_PARAMS).lstrip("+~").startswith("hydra")
    return key in KEPT or (key.startswith("hydra.launcher.") and key.removeprefix("hydra.launcher.")
                           in LAUNCHER_KEYS)


def _check_hydra(line: str, installed: dict[str, float], search: SearchPath, what: str) -> None:
    """A Hydra override a resumed sweep keeps: a listed launcher, plain values, swept runner values."""
    if line.lstrip("+~").startswith(_PARAMS):
        key, _, value = line.lstrip("+~").partition("=")
        check_override(f"{key.removeprefix(_PARAMS)}={value}", installed, what, search, listed=True)
        return
    override = _parse(line, what)
    key = override.key_or_group
    for value in values(override, search):
        if key == "hydra/launcher":
            _check_choices(key, value, search, what, line)
        elif key == "hydra.mode":
            ok = value in ("RUN", "MULTIRUN")
        elif key == "hydra.sweeper.max_batch_size":
            ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0)
        else:
            ok = value is None or isinstance(value, bool | int | float) or (
                isinstance(value, str) and bool(_LAUNCHER_VALUE.match(value)))
        if key != "hydra/launcher" and not ok:
            raise Refused(f"{what}: {_short(line)!r}: {_short(value)!r} is not a value {key} takes from a "
                          "received folder")


def check_sweep(path: Path, installed: dict[str, float], search: SearchPath
                ) -> tuple[list[str], list[str], list[str]]:
    """A sweep's ``multirun.yaml``: its task overrides, the Hydra overrides a resume keeps (each through
    the gate, choices listed by ``search``), and the Hydra overrides it leaves out."""
    what = str(path)
    saved = read_yaml(path, f"cannot read the sweep's command from {what}", MAX_MULTIRUN_YAML)
    try:
        overrides = saved["hydra"]["overrides"]
        task, hydra = list(overrides["task"]), list(overrides["hydra"])
    except (KeyError, TypeError) as err:
        raise Refused(f"cannot read the sweep's command from {what}: {type(err).__name__}: "
                      f"{_short(str(err))}") from None
    if not all(isinstance(o, str) for o in [*task, *hydra]):
        raise Refused(f"{what}: overrides must be strings")
    for line in task:
        check_override(line, installed, what, search, listed=True)
    kept = [line for line in hydra if _kept(line)]
    for line in kept:
        _check_hydra(line, installed, search, what)
    return task, kept, [line for line in hydra if line not in kept]
