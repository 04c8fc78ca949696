"""``custom_gradients:``: functions whose backward pass the user writes, as ``@tf.custom_gradient`` does.

    custom_gradients:
      clip_gradients: {args: [y], value: y, grads: {y: clip_by_norm(upstream, 0.5)}}
    targets:
      output: clip_gradients(v * v)

``value`` is the forward pass over the arguments; ``grads`` holds one expression per
argument over the arguments, ``value`` and ``upstream`` (the gradient arriving from
above), which the tape uses instead of differentiating ``value``. A call is a step of its
own. Everything that reads the program as written (shapes, dtypes, the float64 forward
pass) reads the call as ``value`` with the arguments put in (:func:`as_written`); only
the tape and the oracle that checks it follow ``grads``.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from runner.errors import ConfigError
from runner.language import expr, shape_rules, syntax
from runner.scenarios.values import check_name, parse_checked, typed

#: The names a ``grads`` expression reads besides the arguments.
GRAD_NAMES = ("value", "upstream")


@dataclass
class CustomGradient:
    args: list[str] = field(default_factory=list)
    value: str = MISSING
    grads: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """A step that calls a custom gradient: ``fn`` and each argument's expression, as written."""

    fn: str
    args: tuple[str, ...]


def check(definitions: Mapping[str, Any], taken: list[str]) -> dict[str, CustomGradient]:
    """Each definition typed and checked: its name free, its arguments names, ``value`` over them,
    one ``grads`` entry per argument over them, ``value`` and ``upstream``."""
    checked = {}
    for name, node in definitions.items():
        where = f"scenario.custom_gradients.{name}"
        check_name(name, where)
        if name in taken:
            raise ConfigError(f"{where}: the name is already an input or a step")
        if isinstance(node, CustomGradient):  # checked before: a program's own copy
            node = dataclasses.asdict(node)
        spec: CustomGradient = typed(CustomGradient, node if isinstance(node, dict) else {"value": node},
                                     where)
        if not spec.args or len(set(spec.args)) < len(spec.args):
            raise ConfigError(f"{where}.args: give the arguments' names, each once, e.g. [y]")
        for arg in spec.args:
            check_name(arg, f"{where}.args")
            if arg in GRAD_NAMES:
                raise ConfigError(f"{where}.args: {arg!r} is what grads calls the "
                                  f"{'forward value' if arg == 'value' else 'incoming gradient'}")
        parse_checked(spec.value, spec.args, f"{where}.value", tensors=True)
        if sorted(spec.grads) != sorted(spec.args):
            raise ConfigError(f"{where}.grads: give one expression per argument ({', '.join(spec.args)}), "
                              f"e.g. {{{spec.args[0]}: upstream}}")
        for arg, text in spec.grads.items():
            parse_checked(text, [*spec.args, *GRAD_NAMES], f"{where}.grads.{arg}", tensors=True)
        checked[name] = spec
    return checked


def call(entry: Any, definitions: Mapping[str, Any]) -> Call | None:
    """The custom gradient a step's text calls, as the whole step, or None for any other step."""
    if not isinstance(entry, str) or not definitions:
        return None
    try:
        node = ast.parse(entry.strip(), mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in definitions):
        return None
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise ConfigError(f"{node.func.id}(): pass its arguments by position")
    return Call(node.func.id, tuple(ast.unparse(a) for a in node.args))


def as_written(entry: Any, definitions: Mapping[str, CustomGradient]) -> Any:
    """A call as the expression it computes (``value`` with the arguments put in); any other entry as
    it is. ``clip_gradients(v * v)`` with value ``y`` reads ``(v * v)``."""
    found = call(entry, definitions)
    if found is None:
        return entry
    spec = definitions[found.fn]
    spec = spec if isinstance(spec, CustomGradient) else CustomGradient(**spec)
    put = {name: ast.parse(f"({text})", mode="eval").body
           for name, text in zip(spec.args, found.args, strict=True)}

    class Put(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            return put.get(node.id, node)

    return ast.unparse(Put().visit(ast.parse(spec.value, mode="eval")))


def check_call(found: Call, spec: CustomGradient, known: list[str], where: str) -> None:
    """A call's arguments: as many as the definition names, each an expression over earlier names."""
    if len(found.args) != len(spec.args):
        raise ConfigError(f"{where}: {found.fn} takes {len(spec.args)} argument(s) ({', '.join(spec.args)}), "
                          f"got {len(found.args)}")
    for text in found.args:
        parse_checked(text, known, where, tensors=True)


def check_grads_shapes(found: Call, spec: CustomGradient, shapes: Mapping[str, tuple[int, ...]],
                       where: str) -> None:
    """Each ``grads`` expression has its argument's shape, as TensorFlow requires of a gradient."""
    args = {a: shape_rules.infer_shape(expr.parse(t, shapes), shapes)
            for a, t in zip(spec.args, found.args, strict=True)}
    value = shape_rules.infer_shape(expr.parse(spec.value, args), args)
    env = {**args, "value": value, "upstream": value}
    for arg, text in spec.grads.items():
        got = shape_rules.infer_shape(expr.parse(text, env), env)
        if got != args[arg]:
            raise ConfigError(f"{where}: {found.fn}'s grads.{arg} has shape {got}, its argument {arg} "
                              f"{args[arg]}; a gradient has its argument's shape")


def reads(found: Call, known: list[str]) -> set[str]:
    """The names a call's arguments read."""
    return set().union(*(syntax.names(expr.parse(t, known)) for t in found.args))
