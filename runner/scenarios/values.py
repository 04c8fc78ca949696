"""What every part of a scenario's config is checked with: numbers, names, expressions, typed merges.

The bottom of the scenario layer: the schema's dataclasses, the program checks and the
derivative specs all vet their fields with these, so none of them imports another to do it.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import keyword
import re
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from runner.errors import ConfigError
from runner.language import expr, syntax

if TYPE_CHECKING:
    from runner.scenarios.schema import RunConfig

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


#: Names the standalone snippet in each report uses for itself.
_SNIPPET_NAMES = frozenset({"tf", "np", "json", "tape", "gradients"})


def finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


def nested_shape(value: Any, where: str) -> tuple[int, ...]:
    """The shape of a number or rectangular nested list of finite numbers, or a one-line error."""
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where}: an empty list has no values")
        shapes = {nested_shape(v, where) for v in value}
        if len(shapes) > 1:
            raise ConfigError(f"{where}: nested lists must be rectangular (every row the same length)")
        return (len(value), *shapes.pop())
    if isinstance(value, bool) or not isinstance(value, int | float) or not finite(value):
        raise ConfigError(f"{where}: {value!r} is not a finite number")
    return ()


def check_name(name: str, where: str) -> None:
    if not _IDENTIFIER.match(name) or keyword.iskeyword(name):
        raise ConfigError(f"{where}: {name!r} is not a valid name (letters, digits, _; a letter first)")
    if name in syntax.RESERVED:
        raise ConfigError(f"{where}: {name!r} is reserved for a function or constant")
    if name in _SNIPPET_NAMES:
        raise ConfigError(f"{where}: {name!r} is reserved (the report's TensorFlow snippet uses it)")


def check_new_expression(name: str, text: Any, where: str, taken: Any, *, taken_as: str,
                         otherwise: str) -> None:
    """A step named ``name`` whose entry must be an expression: a valid name not in ``taken`` (else "the
    name is already ``taken_as``"), and a string (else ``otherwise``)."""
    check_name(name, where)
    if name in taken:
        raise ConfigError(f"{where}: the name is already {taken_as}")
    if not isinstance(text, str):
        raise ConfigError(f"{where}: {otherwise}")


def parse_checked(text: str, names: Any, where: str, *, tensors: bool = False) -> None:
    """Parse to vet; only a program (``tensors``) may use more than the elementwise language."""
    try:
        tree = expr.parse(text, names)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    if not tensors and not syntax.elementwise(tree):
        raise ConfigError(f"{where}: {text!r} uses the tensor language (matmul, reductions, where, lists, "
                          "subscripts, conditionals), which only scenario=program runs; this routine's "
                          "expressions are elementwise")


def typed(schema: type, values: dict[str, Any], where: str) -> Any:
    """Merge plain ``values`` into ``schema`` and build the dataclass, or say in one line what is wrong.

    Plain values, not the composed node: the node carries its own typing, which
    would admit keys added with ``+``. A sweep's jobs mostly repeat the same values
    (every job's tolerances, say), and merging into a schema is slow, so each
    distinct set of values is merged once per process and each caller gets a copy.
    """
    return copy.deepcopy(_typed_once(schema, json.dumps(values), where))


def typed_apart(schema: type, values: Any, where: str, key: str) -> Any:
    """:func:`typed`, with ``key`` (a field typed ``Any``, or a dict of ``Any`` by name) set afterwards.

    Merging checks nothing inside such a field, so leaving it out changes no result; a
    slider's calls, which differ only in an input's value, then reuse the merged rest.
    """
    part = values.get(key) if isinstance(values, dict) else None
    field_ = next((f for f in dataclasses.fields(schema) if f.name == key), None)
    if part is None or field_ is None or (field_.default_factory is dict and not (
            isinstance(part, dict) and all(isinstance(k, str) for k in part))):
        return typed(schema, values, where)  # nothing to set apart, or what only the merge refuses
    merged = typed(schema, {k: v for k, v in values.items() if k != key}, where)
    setattr(merged, key, copy.deepcopy(part))
    return merged


@functools.lru_cache(maxsize=256)
def _typed_once(schema: type, values: str, where: str) -> Any:
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), json.loads(values)))
    except OmegaConfBaseException as err:
        key = ".".join(part for part in (where, err.full_key) if part)
        reason = str(err.msg).splitlines()[0] if err.msg else type(err).__name__
        raise ConfigError(f"{key}: {reason}") from None


def with_differences(parts: dict[str, int], run: RunConfig, differences: int) -> dict[str, int]:
    """A kind's parts, and its finite differences' bytes where the run checks by them."""
    return {**parts, "finite differences": differences} if run.checks.finite_differences else parts
