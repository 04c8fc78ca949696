"""The expression language's tree: its nodes, its functions' signatures, and the one evaluator.

A scenario's ``function: x**3*cos(x)`` is data, not code: :mod:`runner.language.expr`
parses it into a tiny tree of :class:`Num`, :class:`Name`, :class:`Neg`, :class:`BinOp`
and :class:`Call`, and for tensor programs :class:`Array` (list literals), :class:`Func`
(functions of several arguments with constant options such as ``axis=``),
:class:`Compare`, :class:`IfExp` and :class:`Index`. :func:`evaluate` walks that tree
for every backend (:mod:`runner.language.backends`): TensorFlow tensors build the ops
the tape records, SymPy symbols the oracle's expression, NumPy float64 arrays the finite
differences, text the reports' snippets.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runner.language import ops

CONSTANTS = {"pi": math.pi, "e": math.e}


#: The functions an expression may call, each of one argument (runner/language/ops.py: each backend's).
FUNCTIONS = tuple(ops.FUNCTIONS)


@dataclass(frozen=True)
class Signature:
    """How a function of the tensor language is called.

    ``tensors`` leading positional tensor arguments (or, when ``listed``, one list
    of them), then constant ``options`` given positionally after the tensors or by
    keyword (only by keyword when ``keyword_only``, as TensorFlow's own signature
    puts something else there). ``condition`` marks ``where``, whose first
    argument is a comparison. ``gradient`` is False for an op TensorFlow registers
    no gradient for: ``tape.gradient`` through it raises LookupError. ``leading``: the
    first option comes first, before the tensors, and any number of tensors follow
    (``einsum('ij,jk->ik', a, b)``, as TensorFlow's own signature).
    """

    tensors: int
    options: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    listed: bool = False
    keyword_only: bool = False
    condition: bool = False
    gradient: bool = True
    leading: bool = False


_REDUCE = Signature(1, ("axis", "keepdims"))


#: The functions of several arguments, by TensorFlow's own names (``tf.<name>`` unless in TF_PATHS).
SIGNATURES: dict[str, Signature] = {
    "matmul": Signature(2),
    "reduce_sum": _REDUCE, "reduce_mean": _REDUCE, "reduce_max": _REDUCE, "reduce_min": _REDUCE,
    "reduce_prod": _REDUCE, "reduce_logsumexp": _REDUCE,
    "where": Signature(3, condition=True),
    "maximum": Signature(2), "minimum": Signature(2), "clip_by_value": Signature(3),
    "square": Signature(1),
    "stop_gradient": Signature(1),
    "numpy": Signature(1),  # a detour through NumPy: the value comes back as a constant the tape never saw
    "softmax": Signature(1, ("axis",)),
    "norm": Signature(1, ("axis", "keepdims"), keyword_only=True),
    "clip_by_norm": Signature(1, ("clip_norm", "axes"), required=("clip_norm",)),
    "adjust_contrast": Signature(2, gradient=False),  # tf.image's: images [..., height, width, channels]
    "transpose": Signature(1, ("perm",)),
    "reshape": Signature(1, ("shape",), required=("shape",)),
    "concat": Signature(0, ("axis",), required=("axis",), listed=True),
    "stack": Signature(0, ("axis",), listed=True),
    "einsum": Signature(1, ("equation",), required=("equation",), leading=True),
}


TF_PATHS = {"softmax": "nn.softmax", "adjust_contrast": "image.adjust_contrast"}


ALL_FUNCTIONS = (*FUNCTIONS, *SIGNATURES)


RESERVED = frozenset(FUNCTIONS) | frozenset(CONSTANTS) | frozenset(SIGNATURES)  # names no input may take


@dataclass(frozen=True)
class Num:
    value: float

    def __str__(self) -> str:
        return repr(self.value)


@dataclass(frozen=True)
class Name:
    id: str

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class Neg:
    arg: Expr

    def __str__(self) -> str:
        return f"(-{self.arg})"


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Expr
    right: Expr

    def __str__(self) -> str:
        return f"({self.left} {self.op} {self.right})"


@dataclass(frozen=True)
class Call:
    fn: str
    arg: Expr

    def __str__(self) -> str:
        return f"{self.fn}({self.arg})"


@dataclass(frozen=True)
class Array:
    """A list literal of numbers, nested to any depth: ``[[1.0, 2.0, 3.0]]``."""

    values: tuple[Any, ...]  # nested tuples of floats, rectangular
    shape: tuple[int, ...]

    def __str__(self) -> str:
        return str(nested_list(self.values))


@dataclass(frozen=True)
class Func:
    """Several tensors and constant options: ``reduce_sum(x, axis=1)``, ``concat([a, b], 0)``."""

    fn: str
    args: tuple[Expr, ...]
    options: tuple[tuple[str, Any], ...] = ()  # (name, int | tuple of ints | bool), as given

    def __str__(self) -> str:
        tensors = ", ".join(map(str, self.args))
        if SIGNATURES[self.fn].listed:
            tensors = f"[{tensors}]"
        if SIGNATURES[self.fn].leading:  # einsum('bxby->bxy', j)
            return f"{self.fn}({dict(self.options)['equation']!r}, {tensors})"
        opts = "".join(f", {k}={list(v) if isinstance(v, tuple) else v}" for k, v in self.options)
        return f"{self.fn}({tensors}{opts})"


@dataclass(frozen=True)
class Compare:
    """``a < b`` and the like: only the condition of ``where`` or of a conditional."""

    op: str
    left: Expr
    right: Expr

    def __str__(self) -> str:
        return f"({self.left} {self.op} {self.right})"


@dataclass(frozen=True)
class IfExp:
    """``a if x > 0 else b``: like Python's ``if`` inside a tape, only the branch taken is recorded."""

    test: Compare
    body: Expr
    orelse: Expr

    def __str__(self) -> str:
        return f"({self.body} if {self.test} else {self.orelse})"


#: One index of a subscript: a constant integer, or a slice as (start, stop, step), each maybe None.
IndexItem = int | tuple[int | None, int | None, int | None]


@dataclass(frozen=True)
class Index:
    """``x[0]``, ``x[:, 1]``, ``x[1:3]``: constant indices and slices only."""

    value: Expr
    index: tuple[IndexItem, ...]

    def __str__(self) -> str:
        return f"{self.value}[{', '.join(map(index_text, self.index))}]"


Expr = Num | Name | Neg | BinOp | Call | Array | Func | Compare | IfExp | Index


def children(expr: Expr) -> tuple[Expr, ...]:
    """A node's sub-expressions, in field order, whatever kind of node it is.

    Every field holding a node, or a tuple of nodes, counts; numbers, names, list
    literals and constant options have none. Read from the dataclass fields, so a node
    kind added later is walked by every bound and analysis without being named here.
    """
    found: list[Expr] = []
    for item in (getattr(expr, f.name) for f in dataclasses.fields(expr)):
        for part in item if isinstance(item, tuple) else (item,):
            if dataclasses.is_dataclass(part) and not isinstance(part, type):
                found.append(part)
    return tuple(found)


def names(expr: Expr) -> set[str]:
    """The free names an expression reads (its inputs; constants excluded)."""
    if isinstance(expr, Name):
        return set() if expr.id in CONSTANTS else {expr.id}
    return set().union(*(names(child) for child in children(expr)))


def ungraded(expr: Expr) -> set[str]:
    """The functions in an expression that TensorFlow registers no gradient for."""
    found = {expr.fn} if isinstance(expr, Func) and not SIGNATURES[expr.fn].gradient else set()
    return found.union(*(ungraded(child) for child in children(expr)))


def size(expr: Expr) -> int:
    """The number of nodes: each is one op (one tensor) when the tape records the expression."""
    return 1 + sum(size(child) for child in children(expr))


def gradient_names(expr: Expr, taken: Callable[[IfExp], bool], *, conditions: bool = False,
                   both: bool = False) -> set[str]:
    """The names a gradient can flow back to: only into the branch taken (into both with ``both``, as
    ``tf.cond`` records them), and not through a condition (unless ``conditions``: then every name the
    ops that were built read)."""
    def walk(node: Expr) -> set[str]:
        return gradient_names(node, taken, conditions=conditions, both=both)

    match expr:
        case Compare() if not conditions:
            return set()
        case Func(fn="stop_gradient" | "numpy"):  # not recorded: nothing flows back through it
            return set()
        case IfExp(test=test, body=body, orelse=orelse):
            tested = walk(test) if conditions else set()
            return tested | (walk(body) | walk(orelse) if both else walk(body if taken(expr) else orelse))
        case Name():
            return names(expr)
    return set().union(*(walk(child) for child in children(expr)))


#: Functions of several arguments that act element by element, so every routine may use them.
ELEMENTWISE = frozenset({"where", "maximum", "minimum", "clip_by_value", "square"})


def elementwise(expr: Expr) -> bool:
    """Whether the tree stays in the elementwise language every routine speaks (``program`` speaks more)."""
    scalar = (isinstance(expr, Num | Name | Neg | Call | Compare)
              or (isinstance(expr, BinOp) and expr.op != "@")
              or (isinstance(expr, Func) and expr.fn in ELEMENTWISE))
    return scalar and all(elementwise(child) for child in children(expr))


def nested_list(values: Any) -> Any:
    return [nested_list(v) for v in values] if isinstance(values, tuple) else values


def index_text(item: IndexItem) -> str:
    if isinstance(item, int):
        return str(item)
    start, stop, step = ("" if v is None else str(v) for v in item)
    return f"{start}:{stop}" + (f":{step}" if step else "")


def python_index(index: tuple[IndexItem, ...]) -> tuple[int | slice, ...]:
    return tuple(i if isinstance(i, int) else slice(*i) for i in index)


def short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def evaluate(expr: Expr, env: Mapping[str, Any], backend: Any) -> Any:
    """Walk the tree once, combining values with ``backend.number`` and ``backend.call``.

    Each backend does its own arithmetic (``backend.binary``), functions and numbers, from
    its own implementations in :mod:`runner.language.ops`: no table is shared between TensorFlow and
    the oracles, so none can hide a mistake by making it on both sides.
    """
    match expr:
        case Num(value=v):
            return backend.number(v)
        case Name(id=i):
            return env[i] if i in env else backend.number(CONSTANTS[i])
        case Neg(arg=a):
            return -evaluate(a, env, backend)
        case BinOp(op=op, left=left, right=right):
            return backend.binary(op, evaluate(left, env, backend), evaluate(right, env, backend))
        case Call(fn=fn, arg=a):
            return backend.call(fn, evaluate(a, env, backend))
        case Array(values=values):
            return backend.array(nested_list(values))
        case Func(fn="stop_gradient" | "numpy", args=(arg,)):
            return backend.stop(expr, lambda: evaluate(arg, env, backend))
        case Func(fn=fn, args=args, options=options):
            return backend.apply(fn, [evaluate(a, env, backend) for a in args], dict(options))
        case Compare(op=op, left=left, right=right):
            return backend.compare(op, evaluate(left, env, backend), evaluate(right, env, backend))
        case IfExp(test=test, body=body, orelse=orelse):
            def branch(node: Expr) -> Callable[[], Any]:
                return lambda: evaluate(node, env, backend)

            return backend.choose(expr, branch(test), branch(body), branch(orelse))
        case Index(value=value, index=index):
            return backend.subscript(evaluate(value, env, backend), index)
    raise TypeError(f"not an expression node: {expr!r}")
