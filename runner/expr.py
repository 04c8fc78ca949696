"""The closed expression language of scenario functions.

A scenario's ``function: x**3*cos(x)`` is data, not code. It is parsed with
:mod:`ast` and every node is checked against a short whitelist before anything
is evaluated; what survives becomes a tiny tree of :class:`Num`, :class:`Name`,
:class:`Neg`, :class:`BinOp` and :class:`Call`, and for tensor programs
:class:`Array` (list literals), :class:`Func` (functions of several arguments
with constant options such as ``axis=``), :class:`Compare`, :class:`IfExp` and
:class:`Index`. One evaluator walks that tree for every backend: with
TensorFlow tensors it builds the ops the tape records, with SymPy symbols (or
NumPy arrays of them) it builds the expression whose derivative is the oracle,
with NumPy float64 arrays it computes finite differences, and as text it
writes the reports' snippets. :func:`infer_shape` knows every node's shape
before any of them runs.
Nothing here calls ``eval``, ``exec`` or SymPy's string parsers.

This module imports neither TensorFlow nor SymPy at import time, so configs are
validated in milliseconds.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import math
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from runner import ops
from runner.errors import ConfigError

MAX_LENGTH = 10_000
MAX_DEPTH = 200  # a chain of n binary operators nests n deep
MAX_EXPONENT = 1_000  # |constant exponent|; x**1e6 or 9**9**9 would stall SymPy or overflow
MAX_DIGITS = 30  # digits in one number literal: far past what any float dtype holds
MAX_RANK = 64  # dimensions of one tensor: NumPy's own limit, so every oracle can hold it
MAX_FOLDED_DIGITS = 309  # the magnitude (digits) of a number SymPy folds a constant into: float64's range
MAX_EXACT_DIGITS = 10_000  # the digits of its exact numerator or denominator: milliseconds to build
_DIGIT_RUN = re.compile(r"[0-9][0-9_]*")
_CONTROL_NAMES = {"\n": "a line break", "\r": "a line break", "\x0b": "a line break", "\x0c": "a form feed"}

#: The functions an expression may call, each of one argument (runner/ops.py: each backend's).
FUNCTIONS = tuple(ops.FUNCTIONS)
CONSTANTS = {"pi": math.pi, "e": math.e}
RESERVED = frozenset(FUNCTIONS) | frozenset(CONSTANTS)

_BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.MatMult: "@",
}


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
        return str(_nested_list(self.values))


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
        return f"{self.value}[{', '.join(map(_index_text, self.index))}]"


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


def size(expr: Expr) -> int:
    """The number of nodes: each is one op (one tensor) when the tape records the expression."""
    return 1 + sum(size(child) for child in children(expr))


def gradient_names(expr: Expr, taken: Callable[[IfExp], bool], *, conditions: bool = False) -> set[str]:
    """The names a gradient can flow back to: only into the branch taken, and not through a
    condition (unless ``conditions``: then every name the ops that were built read)."""
    match expr:
        case Compare() if not conditions:
            return set()
        case Func(fn="stop_gradient"):  # not recorded: nothing flows back through it
            return set()
        case IfExp(test=test, body=body, orelse=orelse):
            tested = gradient_names(test, taken, conditions=True) if conditions else set()
            return tested | gradient_names(body if taken(expr) else orelse, taken, conditions=conditions)
        case Name():
            return names(expr)
    return set().union(*(gradient_names(child, taken, conditions=conditions) for child in children(expr)))


#: Functions of several arguments that act element by element, so every routine may use them.
ELEMENTWISE = frozenset({"where", "maximum", "minimum", "clip_by_value", "square"})


def elementwise(expr: Expr) -> bool:
    """Whether the tree stays in the elementwise language every routine speaks (``program`` speaks more)."""
    scalar = (isinstance(expr, Num | Name | Neg | Call | Compare)
              or (isinstance(expr, BinOp) and expr.op != "@")
              or (isinstance(expr, Func) and expr.fn in ELEMENTWISE))
    return scalar and all(elementwise(child) for child in children(expr))


def check_text(text: str) -> None:
    """Refuse, before Python's parser sees it, text the language never needs but the parser would accept.

    Python folds Unicode look-alikes into ASCII names (NFKC: fullwidth x, U+FF58, reads as 'x'), joins
    lines inside brackets or after a backslash, and drops comments: each would make
    the expression mean something other than what the report and snippet show. So an
    expression is printable ASCII on one line (leading and trailing blanks aside),
    without '#' or '\\', and no number literal is longer than :data:`MAX_DIGITS`.
    """
    for index, char in enumerate(text.strip(), start=1):
        if not char.isascii():
            raise ConfigError(f"expression has the non-ASCII character {char!r} (U+{ord(char):04X}) at "
                              f"position {index}; expressions are plain ASCII")
        if char in _CONTROL_NAMES or (not char.isprintable() and char != "\t"):
            what = _CONTROL_NAMES.get(char, f"the control character U+{ord(char):04X}")
            raise ConfigError(f"expression has {what} at position {index}; an expression is one line")
        if char == "#":
            raise ConfigError(f"expression has a comment ('#' at position {index}); comments are not allowed")
        if char == "\\":
            raise ConfigError(f"expression has a backslash at position {index}; line continuations and "
                              "escapes are not allowed")
    for run in _DIGIT_RUN.finditer(text):
        digits = sum(c.isdigit() for c in run.group())
        if digits > MAX_DIGITS:
            raise ConfigError(f"number literal {_short(run.group(), 20)!r} has {digits} digits; "
                              f"the limit is {MAX_DIGITS}")


@lru_cache(maxsize=256)
def _parse(text: str, allowed: frozenset[str]) -> Expr:
    if len(text) > MAX_LENGTH:
        raise ConfigError(f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}")
    if not text.strip():
        raise ConfigError("expression is empty")
    check_text(text)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ConfigError(f"syntax error in expression {_short(text)!r}: {err.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ConfigError(f"expression {_short(text)!r} is nested too deeply to parse") from None
    converted = _convert(tree.body, allowed, depth=0)[0]
    _power(converted, {})
    return converted


def parse(text: str, allowed: Iterable[str]) -> Expr:
    """Parse ``text`` into an :data:`Expr` over the names in ``allowed``.

    Raises :class:`ConfigError` with a one-line reason for anything outside the
    language: unknown names or functions, attribute access, subscripts, lambdas,
    comprehensions, keyword arguments, strings, oversize or overflowing constants.
    """
    return _parse(str(text), frozenset(allowed))


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _convert(node: ast.AST, allowed: frozenset[str], depth: int) -> tuple[Expr, float | None]:
    """Check one node and build its :data:`Expr`, with its value if it is constant.

    Carrying constant values up the tree vets every constant sub-expression once,
    in plain floats, so none can blow up a backend (``9**9**9**9`` is refused here
    in microseconds rather than handed to SymPy's exact integers).
    """
    if depth > MAX_DEPTH:
        raise ConfigError(f"expression is nested more than {MAX_DEPTH} levels deep")
    down = depth + 1
    match node:
        case ast.Constant(value=bool()) | ast.Constant(value=complex()):
            raise ConfigError(f"unsupported constant {node.value!r}: only real numbers are allowed")
        case ast.Constant(value=int() | float() as value):
            if isinstance(value, int) and abs(value) >= 10**MAX_DIGITS:  # 0x... or 0o... spells fewer
                raise ConfigError(f"number literal {_short(repr(value), 30)} has more than {MAX_DIGITS} "
                                  "decimal digits")
            if abs(value) > 1e300 or not math.isfinite(float(value)):  # a huge int never reaches float()
                raise ConfigError(f"constant {_short(repr(value), 30)} is too large")
            return Num(value), float(value)
        case ast.Name(id=ident):
            if ident in CONSTANTS:
                return Name(ident), CONSTANTS[ident]
            if ident in allowed:
                return Name(ident), None
            if ident in ALL_FUNCTIONS:
                raise ConfigError(f"function {ident!r} must be called, as in {ident}(x)")
            known = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(f"unknown name {ident!r} (inputs: {known}; constants: pi, e)")
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            arg, value = _convert(operand, allowed, down)
            return _vetted(Neg(arg), value)
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return _convert(operand, allowed, down)
        case ast.BinOp(op=op, left=left, right=right) if type(op) in _BINOPS:
            (lhs, lvalue), (rhs, rvalue) = _convert(left, allowed, down), _convert(right, allowed, down)
            tree = BinOp(_BINOPS[type(op)], lhs, rhs)
            if tree.op == "**" and rvalue is not None and abs(rvalue) > MAX_EXPONENT:
                raise ConfigError(f"exponent {rvalue:g} in {tree} exceeds the limit of {MAX_EXPONENT}")
            if tree.op == "**" and rvalue is None and not names(rhs):
                raise ConfigError(f"exponent {rhs} in {tree} must be a single number or read an input")
            both = None if lvalue is None or rvalue is None or tree.op == "@" else (lvalue, rvalue)
            return _vetted(tree, both)
        case ast.Call(func=ast.Name(id=fn), args=args, keywords=keywords) if fn in SIGNATURES:
            return _convert_func(fn, args, keywords, allowed, down), None
        case ast.List() | ast.Tuple():
            return _array(node), None
        case ast.Subscript(value=value, slice=index):
            return Index(_convert(value, allowed, down)[0], _index(index)), None
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return IfExp(_condition(test, allowed, down), _convert(body, allowed, down)[0],
                         _convert(orelse, allowed, down)[0]), None
        case ast.Compare():
            raise ConfigError("a comparison is allowed only as the condition of where(...) or of "
                              "a conditional (a if x > 0 else b)")
        case ast.Call(func=ast.Name(id=fn), args=args, keywords=keywords):
            if fn not in FUNCTIONS:
                raise ConfigError(f"unknown function {fn!r} (known: {', '.join(ALL_FUNCTIONS)})")
            if keywords or len(args) != 1 or isinstance(args[0], ast.Starred):
                raise ConfigError(f"{fn}() takes exactly one positional argument")
            arg, value = _convert(args[0], allowed, down)
            return _vetted(Call(fn, arg), value)
    power = isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor)
    raise ConfigError(f"{_describe(node)} is not allowed in an expression"
                      + ("; for a power write ** (x**2), not ^" if power else ""))


@dataclass(frozen=True)
class Signature:
    """How a function of the tensor language is called.

    ``tensors`` leading positional tensor arguments (or, when ``listed``, one list
    of them), then constant ``options`` given positionally after the tensors or by
    keyword (only by keyword when ``keyword_only``, as TensorFlow's own signature
    puts something else there). ``condition`` marks ``where``, whose first
    argument is a comparison.
    """

    tensors: int
    options: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    listed: bool = False
    keyword_only: bool = False
    condition: bool = False


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
    "softmax": Signature(1, ("axis",)),
    "norm": Signature(1, ("axis", "keepdims"), keyword_only=True),
    "transpose": Signature(1, ("perm",)),
    "reshape": Signature(1, ("shape",), required=("shape",)),
    "concat": Signature(0, ("axis",), required=("axis",), listed=True),
    "stack": Signature(0, ("axis",), listed=True),
}
TF_PATHS = {"softmax": "nn.softmax"}
ALL_FUNCTIONS = (*FUNCTIONS, *SIGNATURES)
RESERVED = RESERVED | frozenset(SIGNATURES)
MAX_LIST_ITEMS = 10_000  # numbers in one list literal
_COMPARE: dict[type[ast.cmpop], str] = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
}


def _convert_func(fn: str, args: list[ast.expr], keywords: list[ast.keyword],
                  allowed: frozenset[str], depth: int) -> Func:
    """A call of a function in :data:`SIGNATURES`: tensors converted, options read as constants."""
    sig = SIGNATURES[fn]
    if any(isinstance(a, ast.Starred) for a in args) or any(k.arg is None for k in keywords):
        raise ConfigError(f"{fn}(): unpacking arguments is not allowed")
    count = 1 if sig.listed else sig.tensors
    if len(args) < count:
        what = "a list of tensors" if sig.listed else f"{count} tensor argument{'s' * (count > 1)}"
        raise ConfigError(f"{fn}() takes {what} first")
    positional = [] if sig.keyword_only else list(sig.options)
    if len(args) > count + len(positional):
        raise ConfigError(f"{fn}() takes at most {count + len(positional)} positional arguments, "
                          f"got {len(args)}")
    given = dict(zip(positional, args[count:], strict=False))
    for keyword in keywords:
        if keyword.arg not in sig.options:
            known = ", ".join(sig.options) or "none"
            raise ConfigError(f"{fn}() has no keyword {keyword.arg!r} (keywords: {known})")
        if keyword.arg in given:
            raise ConfigError(f"{fn}() got {keyword.arg} twice")
        given[keyword.arg] = keyword.value
    for name in sig.required:
        if name not in given:
            raise ConfigError(f"{fn}() needs {name}=")
    if sig.listed:
        if not isinstance(args[0], ast.List | ast.Tuple) or not args[0].elts:
            raise ConfigError(f"{fn}() takes a list of tensors first, as in {fn}([a, b], axis=0)")
        tensors = tuple(_convert(a, allowed, depth + 1)[0] for a in args[0].elts)
    else:
        first = _condition(args[0], allowed, depth + 1) if sig.condition else None
        rest = args[1:count] if sig.condition else args[:count]
        tensors = (*([first] if first else []), *(_convert(a, allowed, depth + 1)[0] for a in rest))
    options = tuple((name, _option(fn, name, given[name])) for name in sig.options if name in given)
    return Func(fn, tensors, options)


def _integer(node: ast.AST) -> int | None:
    match node:
        case ast.Constant(value=int() as v) if not isinstance(v, bool) and abs(v) <= 2**31:
            return v
        case ast.UnaryOp(op=ast.USub(), operand=ast.Constant(value=int() as v)) if (
                not isinstance(v, bool) and v <= 2**31):
            return -v
    return None


def _option(fn: str, name: str, node: ast.AST) -> Any:
    """A constant option: ``keepdims`` True/False; ``axis`` an integer (or a list, for reductions)."""
    if name == "keepdims":
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return node.value
        raise ConfigError(f"{fn}(): keepdims must be True or False")
    one = _integer(node)
    if one is not None and name == "axis":
        return one
    many = [_integer(e) for e in node.elts] if isinstance(node, ast.List | ast.Tuple) else [None]
    single = name == "axis" and fn in ("softmax", "concat", "stack")
    if None in many or single:
        kind = "an integer" if single else "a list of integers"
        raise ConfigError(f"{fn}(): {name} must be {kind}")
    return tuple(many)


def _array(node: ast.AST) -> Array:
    """A list literal of numbers (negative numbers too), rectangular."""
    def read(item: ast.AST, depth: int) -> Any:
        if depth > 32:
            raise ConfigError("a list literal is nested more than 32 levels deep")
        if isinstance(item, ast.List | ast.Tuple):
            return tuple(read(e, depth + 1) for e in item.elts)
        number = item.operand if isinstance(item, ast.UnaryOp) and isinstance(item.op, ast.USub) else item
        if not (isinstance(number, ast.Constant) and isinstance(number.value, int | float)
                and not isinstance(number.value, bool)):
            raise ConfigError("a list literal holds numbers only (use concat or stack to join tensors)")
        value = float(number.value) * (-1 if number is not item else 1)
        if not math.isfinite(value) or abs(value) > 1e300:
            raise ConfigError(f"constant {value!r} is too large")
        return value

    values = read(node, 0)
    shape: list[int] = []
    level: Any = values
    while isinstance(level, tuple):
        shape.append(len(level))
        if not level:
            raise ConfigError("a list literal cannot be empty")
        level = level[0]
    if math.prod(shape) > MAX_LIST_ITEMS:
        raise ConfigError(f"a list literal holds at most {MAX_LIST_ITEMS} numbers")
    _check_rectangular(values, tuple(shape))
    return Array(values, tuple(shape))


def _check_rectangular(values: Any, shape: tuple[int, ...]) -> None:
    if not shape:
        if isinstance(values, tuple):
            raise ConfigError("a list literal must be rectangular (every row the same length)")
        return
    if not isinstance(values, tuple) or len(values) != shape[0]:
        raise ConfigError("a list literal must be rectangular (every row the same length)")
    for item in values:
        _check_rectangular(item, shape[1:])


def _nested_list(values: Any) -> Any:
    return [_nested_list(v) for v in values] if isinstance(values, tuple) else values


def _index(node: ast.AST) -> tuple[IndexItem, ...]:
    """Constant subscripts: integers and slices of integers, one per axis."""
    items = node.elts if isinstance(node, ast.Tuple) else [node]
    found: list[IndexItem] = []
    for item in items:
        if isinstance(item, ast.Slice):
            bounds = []
            for part in (item.lower, item.upper, item.step):
                value = None if part is None else _integer(part)
                if part is not None and value is None:
                    raise ConfigError("a slice takes constant integers, as in x[1:3] or x[:, 0]")
                bounds.append(value)
            if bounds[2] is not None and bounds[2] <= 0:
                raise ConfigError("a slice's step must be positive")
            found.append((bounds[0], bounds[1], bounds[2]))
        elif (value := _integer(item)) is not None:
            found.append(value)
        else:
            raise ConfigError("subscripts take constant integers and slices, as in x[0] or x[:, 1]")
    return tuple(found)


def _index_text(item: IndexItem) -> str:
    if isinstance(item, int):
        return str(item)
    start, stop, step = ("" if v is None else str(v) for v in item)
    return f"{start}:{stop}" + (f":{step}" if step else "")


def _python_index(index: tuple[IndexItem, ...]) -> tuple[int | slice, ...]:
    return tuple(i if isinstance(i, int) else slice(*i) for i in index)


def _condition(node: ast.AST, allowed: frozenset[str], depth: int) -> Compare:
    """The one comparison a ``where`` or a conditional tests: ``a < b``, never chained."""
    if not isinstance(node, ast.Compare):
        raise ConfigError("a condition must be one comparison, as in x > 0")
    if len(node.ops) != 1:
        raise ConfigError("chained comparisons (a < b < c) are not allowed; use one comparison")
    if type(node.ops[0]) not in _COMPARE:
        raise ConfigError(f"comparison {type(node.ops[0]).__name__} is not allowed (use < <= > >= == !=)")
    left, right = _convert(node.left, allowed, depth)[0], _convert(node.comparators[0], allowed, depth)[0]
    return Compare(_COMPARE[type(node.ops[0])], left, right)


def _vetted(tree: Neg | BinOp | Call, constant_parts: Any) -> tuple[Expr, float | None]:
    """Evaluate ``tree`` in floats when all its parts are constant; refuse what overflows."""
    if constant_parts is None:
        return tree, None
    if isinstance(tree, BinOp) and tree.op == "**" and constant_parts[0] not in (0.0, 1.0, -1.0):
        base, exponent = constant_parts  # SymPy builds an integer base's power exactly: bound its digits
        digits = abs(exponent * math.log10(abs(base)))
        if digits > MAX_EXACT_DIGITS:
            raise ConfigError(f"constant sub-expression {_short(str(tree))} is about 10^"
                              f"{math.copysign(digits, exponent * math.log10(abs(base))):,.0f}: beyond any "
                              "float's range, and too large for SymPy to build exactly")
    try:
        value = FloatBackend.apply(tree, constant_parts)
    except (OverflowError, ZeroDivisionError, ValueError) as err:
        raise ConfigError(f"constant sub-expression {tree} cannot be evaluated: {err}") from None
    if isinstance(value, complex) or not math.isfinite(value):
        raise ConfigError(f"constant sub-expression {tree} is not a finite real number")
    return tree, float(value)


#: Each node's values at the probe points (by the node's id: a tree is probed while it is alive).
Probes = dict[int, tuple[float, ...] | None]


def _power(tree: Expr, probes: Probes) -> float:
    """The highest power of the inputs SymPy may build from ``tree``; refused above :data:`MAX_EXPONENT`.

    SymPy folds ``(x**a)**b`` into ``x**(a*b)`` and ``x**a * x**b`` into ``x**(a+b)``, so
    the bound on a literal exponent alone is bypassed by nesting: ``(x**1000)**1000``
    is ``x**1000000``. Powers multiply through nested exponents and add through
    products; a function call is a new atom (its argument is bounded on its own).

    SymPy also folds what only looks like it reads an input: ``x - x + 9`` is 9, so
    ``x**((x-x+9)**(x-x+9))`` is ``x**387420489`` and ``9**that`` an exact integer of
    370 million digits. So an exponent is judged by its value at a few points
    (:func:`_probe`): one that is the same number at all of them is that constant
    to SymPy too, and is bounded as a literal would be.
    """
    parts = [_power(part, probes) for part in children(tree)]  # every part is bounded, always
    match tree:
        case Num():
            power = 0.0
        case Name(id=ident):
            power = 0.0 if ident in CONSTANTS else 1.0
        case Neg():
            power = parts[0]
        case Call():
            power = min(parts[0], 1.0)
        case BinOp(op="+" | "-"):
            power = max(parts)
        case BinOp(op="*" | "/"):
            power = sum(parts)
        case BinOp(op="**", left=left, right=right):
            exponent = _folded_exponent(tree, left, right, probes)
            power = min(parts[0] + parts[1], 1.0) if exponent is None else parts[0] * abs(exponent)
        case _:  # any other node: as high as the highest of its parts
            power = max(parts, default=0.0)
    if _constant(_probe(tree, probes)) is not None:
        power = 0.0  # SymPy folds it to a number
    if power > MAX_EXPONENT:
        raise ConfigError(f"{_short(str(tree))} raises the inputs to the power {power:g} once SymPy folds "
                          f"nested powers and products; the limit is {MAX_EXPONENT}")
    return power


def _folded_exponent(tree: BinOp, left: Expr, right: Expr, probes: Probes) -> float | None:
    """The exponent of ``left ** right`` as SymPy folds it (None where it stays a variable, a new atom);
    refused when the folded exponent or its base is beyond what SymPy can build at once."""
    values = _probe(right, probes)
    if values is not None and not all(math.isfinite(v) for v in values):
        raise ConfigError(f"exponent {_short(str(right))} in {_short(str(tree))} overflows a float")
    exponent = _constant(values)
    if exponent is None:
        return None
    if abs(exponent) > MAX_EXPONENT:
        raise ConfigError(f"exponent {_short(str(right))} in {_short(str(tree))} is {exponent:g} once SymPy "
                          f"folds it, beyond the limit of {MAX_EXPONENT}")
    base = _probe(left, probes)
    if abs(exponent) > 1 and base is not None and not any(math.isfinite(v) for v in base):
        raise ConfigError(f"base {_short(str(left))} in {_short(str(tree))} overflows a float before it is "
                          f"raised to the power {exponent:g}")
    return exponent


#: How many points :func:`_probe` evaluates a tree at.
PROBES = 3


def _probe_point(name: str, k: int) -> float:
    """Input ``name``'s value at probe ``k``: in [0.5, 1.7], irrational steps, different for each name and
    point so that no difference of two inputs is the same at every point."""
    i = zlib.crc32(name.encode()) % 97 + 1
    return 0.5 + (i * 0.7548776662 + (k + 1) * 0.5698402910 + i * (k + 1) * 0.1234567891) % 1.2


def _probe(tree: Expr, memo: Probes) -> tuple[float, ...] | None:
    """``tree``'s value at :data:`PROBES` points in plain floats (``inf`` where a float overflows), or None
    where a point leaves its domain or it is not an elementwise function of scalars the probe knows."""
    if id(tree) in memo:
        return memo[id(tree)]
    values: tuple[Any, ...] | None = None
    match tree:
        case Num(value=v):
            values = (float(v),) * PROBES
        case Name(id=ident):
            values = ((CONSTANTS[ident],) * PROBES if ident in CONSTANTS
                      else tuple(_probe_point(ident, k) for k in range(PROBES)))
        case Neg() | Call() | BinOp(op="+" | "-" | "*" | "/" | "**") | Compare() | IfExp():
            values = _pointwise(tree, [_probe(part, memo) for part in children(tree)])
        case Func(fn=fn, args=args) if fn in ELEMENTWISE:
            values = _pointwise(tree, [_probe(part, memo) for part in args])
    if values is not None and any(isinstance(v, complex) or v != v for v in values):
        values = None  # NaN or complex: nothing SymPy folds to a real number
    memo[id(tree)] = values
    return values


def _pointwise(tree: Expr, parts: list[tuple[float, ...] | None]) -> tuple[Any, ...] | None:
    """One node's value at each probe point, from its parts' values there."""
    if any(part is None for part in parts):
        return None
    found = []
    for point in zip(*parts, strict=True):  # type: ignore[call-overload]
        try:
            value = _at_point(tree, point)
        except OverflowError:
            value = math.inf
        except (ValueError, ZeroDivisionError, TypeError):
            return None
        underflows = (isinstance(tree, BinOp) and tree.op in ("*", "/", "**")) or (
            isinstance(tree, Call) and tree.fn in _NEVER_ZERO)
        if value == 0 and underflows and all(arg != 0 for arg in point):
            return None  # a float underflowed: x**-1503 is not the constant 0 it rounds to
        found.append(value)
    return tuple(found)


#: Functions that are never exactly 0 at a non-zero argument: a 0 from them is a float's underflow.
_NEVER_ZERO = frozenset({"exp", "sigmoid", "softplus", "cosh"})


def _at_point(tree: Expr, args: tuple[Any, ...]) -> Any:
    match tree:
        case Neg():
            return -args[0]
        case BinOp(op=op):
            return ops.OPERATORS[op].floats(*args)
        case Call(fn=fn):
            return ops.FUNCTIONS[fn].floats(args[0])
        case Compare(op=op):
            return FloatBackend.compare(op, *args)
        case IfExp():
            return args[1] if args[0] else args[2]
        case Func(fn="where"):
            return args[1] if args[0] else args[2]
        case Func(fn="maximum"):
            return max(args)
        case Func(fn="minimum"):
            return min(args)
        case Func(fn="clip_by_value"):
            return min(max(args[0], args[1]), args[2])
        case Func(fn="square"):
            return args[0] * args[0]
    raise TypeError(tree)


def _constant(values: tuple[float, ...] | None) -> float | None:
    """The one finite number all probe values are (to rounding), or None."""
    if values is None or not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        return None
    first = float(values[0])
    return first if all(abs(v - first) <= 1e-9 * max(abs(v), abs(first)) for v in values) else None


def _describe(node: ast.AST) -> str:
    what = {
        ast.Attribute: "attribute access", ast.Subscript: "subscripting",
        ast.Lambda: "lambda", ast.Call: "calling anything but a named function",
        ast.ListComp: "a comprehension", ast.GeneratorExp: "a comprehension",
        ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
        ast.Constant: "a string or bytes constant", ast.Compare: "a comparison",
        ast.BoolOp: "a boolean operator", ast.IfExp: "a conditional expression",
        ast.NamedExpr: "assignment", ast.Starred: "unpacking",
    }
    for kind, label in what.items():
        if isinstance(node, kind):
            return label
    if isinstance(node, ast.BinOp):
        return f"operator {type(node.op).__name__}"
    if isinstance(node, ast.UnaryOp):
        return f"unary operator {type(node.op).__name__}"
    return type(node).__name__


class FloatBackend:
    """Plain-Python floats: used only to vet constant sub-expressions (runner/ops.py's ``floats``)."""

    number = staticmethod(float)

    @staticmethod
    def apply(tree: Neg | BinOp | Call, parts: Any) -> float:
        """One node, given its children's values (a float, or a pair for BinOp)."""
        if isinstance(tree, BinOp):
            return FloatBackend.binary(tree.op, *parts)
        if isinstance(tree, Neg):
            return -parts
        return FloatBackend.call(tree.fn, parts)

    @staticmethod
    def binary(op: str, left: float, right: float) -> float:
        return ops.OPERATORS[op].floats(left, right)

    @staticmethod
    def call(fn: str, arg: float) -> float:
        return ops.FUNCTIONS[fn].floats(arg)

    @staticmethod
    def compare(op: str, left: float, right: float) -> bool:
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right,
                "==": left == right, "!=": left != right}[op]


def evaluate(expr: Expr, env: Mapping[str, Any], backend: Any) -> Any:
    """Walk the tree once, combining values with ``backend.number`` and ``backend.call``.

    Each backend does its own arithmetic (``backend.binary``), functions and numbers, from
    its own implementations in :mod:`runner.ops`: no table is shared between TensorFlow and
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
            return backend.array(_nested_list(values))
        case Func(fn="stop_gradient", args=(arg,)):
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


class ShapeError(ConfigError):
    """Two shapes an operation cannot combine, found before any tensor exists."""


def infer_shape(expr: Expr, shapes: Mapping[str, tuple[int, ...]], sizes: list[int] | None = None
                ) -> tuple[int, ...]:
    """The shape of ``expr`` given its names' shapes, by TensorFlow's rules, without computing anything.

    Raises :class:`ShapeError` naming the operation and the shapes it cannot combine.
    ``sizes``, when given, collects the element count of every node (one tensor each).
    """
    kids = [infer_shape(child, shapes, sizes) for child in children(expr)]
    match expr:
        case Num():
            shape: tuple[int, ...] = ()
        case Name(id=i):
            shape = tuple(shapes.get(i, ()))
        case Array(shape=literal):
            shape = literal
        case Neg() | Call():
            shape = kids[0]
        case BinOp(op="@"):
            shape = _matmul_shape(expr, *kids)
        case BinOp() | Compare():
            shape = _broadcast(expr, kids)
        case IfExp():
            if kids[0]:
                raise ShapeError(f"{_show(expr)}: a conditional needs a scalar condition, got {kids[0]}")
            if kids[1] != kids[2]:
                raise ShapeError(f"{_show(expr)}: both branches need one shape, got {kids[1]} and {kids[2]}")
            shape = kids[1]
        case Index(index=index):
            shape = _index_shape(expr, kids[0], index)
        case Func():
            shape = _function_shape(expr, kids)
    check_shape(_show(expr), shape)
    if sizes is not None:
        sizes.append(math.prod(shape))
    return shape


def check_shape(what: str, shape: tuple[int, ...]) -> None:
    """Refuse a shape no oracle can hold (more than :data:`MAX_RANK` dimensions, NumPy's limit) or one
    with no elements (an empty slice: nothing to differentiate, and ops such as softmax fail on it)."""
    if len(shape) > MAX_RANK:
        raise ShapeError(f"{what} has {len(shape)} dimensions; the limit is {MAX_RANK} (NumPy's)")
    if 0 in shape:
        raise ShapeError(f"{what} has shape {shape}: an empty tensor, with nothing to differentiate")


def _show(expr: Expr) -> str:
    text = str(expr)
    return text[1:-1] if text.startswith("(") and text.endswith(")") else text


def _broadcast(expr: Expr, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    rank = max(map(len, shapes))
    padded = [(1,) * (rank - len(s)) + s for s in shapes]
    out = []
    for dims in zip(*padded, strict=True):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            listed = " and ".join(str(s) for s in shapes)
            raise ShapeError(f"{_show(expr)} cannot broadcast shapes {listed}")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _matmul_shape(expr: Expr, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
        why = " (matmul needs two or more axes on each side)" if min(len(a), len(b)) < 2 else ""
        raise ShapeError(f"{_show(expr)} cannot multiply shapes {a} and {b}{why}")
    batch = _broadcast(expr, [a[:-2], b[:-2]]) if a[:-2] or b[:-2] else ()
    return (*batch, a[-2], b[-1])


def _axes(expr: Expr, shape: tuple[int, ...], axis: int | tuple[int, ...] | None) -> tuple[int, ...]:
    """Axes made non-negative; every axis when ``axis`` is None."""
    if axis is None:
        return tuple(range(len(shape)))
    found = []
    for a in (axis,) if isinstance(axis, int) else axis:
        if not -len(shape) <= a < len(shape):
            raise ShapeError(f"{_show(expr)}: axis {a} is out of range for shape {shape}")
        found.append(a % len(shape))
    if len(set(found)) != len(found):
        raise ShapeError(f"{_show(expr)}: axis {axis} repeats an axis")
    return tuple(found)


def _index_shape(expr: Expr, shape: tuple[int, ...], index: tuple[IndexItem, ...]) -> tuple[int, ...]:
    if len(index) > len(shape):
        raise ShapeError(f"{_show(expr)}: {len(index)} indices for shape {shape}")
    out = []
    for item, size in zip(index, shape, strict=False):
        if isinstance(item, int):
            if not -size <= item < size:
                raise ShapeError(f"{_show(expr)}: index {item} is out of range for shape {shape}")
        else:
            out.append(len(range(*slice(*item).indices(size))))
    return (*out, *shape[len(index):])


def _function_shape(expr: Func, kids: list[tuple[int, ...]]) -> tuple[int, ...]:
    fn, opts = expr.fn, dict(expr.options)
    if fn == "matmul":
        return _matmul_shape(expr, *kids)
    if fn.startswith("reduce_") or fn == "norm":
        shape = kids[0]
        axes = _axes(expr, shape, opts.get("axis"))
        if fn == "norm" and len(axes) > 2 and "axis" in opts:
            raise ShapeError(f"{_show(expr)}: norm takes one axis or a pair of axes")
        if opts.get("keepdims"):
            return tuple(1 if i in axes else d for i, d in enumerate(shape))
        return tuple(d for i, d in enumerate(shape) if i not in axes)
    if fn in ("where", "maximum", "minimum", "square", "stop_gradient"):
        return _broadcast(expr, kids)
    if fn == "clip_by_value":
        if _broadcast(expr, kids) != kids[0]:
            raise ShapeError(f"{_show(expr)}: the bounds' shapes {kids[1]} and {kids[2]} must broadcast "
                             f"to the tensor's {kids[0]}")
        return kids[0]
    if fn == "softmax":
        _axes(expr, kids[0], opts.get("axis", -1))
        return kids[0]
    if fn == "transpose":
        perm = opts.get("perm", tuple(reversed(range(len(kids[0])))))
        if sorted(perm) != list(range(len(kids[0]))):
            raise ShapeError(f"{_show(expr)}: perm {list(perm)} does not permute the axes of {kids[0]}")
        return tuple(kids[0][p] for p in perm)
    if fn == "reshape":
        return _reshape(expr, kids[0], opts["shape"])
    axis = opts.get("axis", 0)
    first = kids[0]
    if fn == "stack":
        if any(k != first for k in kids):
            raise ShapeError(f"{_show(expr)}: stack needs one shape, got {' and '.join(map(str, kids))}")
        (a,) = _axes(expr, (*first, 1), axis)
        return (*first[:a], len(kids), *first[a:])
    (a,) = _axes(expr, first, axis)  # concat
    if any(len(k) != len(first) or k[:a] + k[a + 1:] != first[:a] + first[a + 1:] for k in kids):
        raise ShapeError(f"{_show(expr)} cannot join shapes {' and '.join(map(str, kids))} along axis {axis}")
    return (*first[:a], sum(k[a] for k in kids), *first[a + 1:])


def _reshape(expr: Expr, shape: tuple[int, ...], target: tuple[int, ...]) -> tuple[int, ...]:
    size = math.prod(shape)
    unknown = [i for i, d in enumerate(target) if d == -1]
    if len(unknown) > 1 or any(d < -1 for d in target):
        raise ShapeError(f"{_show(expr)}: shape {list(target)} may hold one -1 and sizes >= 0")
    known = math.prod(d for d in target if d != -1)
    if unknown and known and size % known == 0:
        return tuple(size // known if d == -1 else d for d in target)
    if unknown or known != size:
        raise ShapeError(f"{_show(expr)} cannot reshape {shape} ({size} elements) into {list(target)}")
    return tuple(target)


class TensorFlowBackend:
    """Native TensorFlow ops, so the tape records exactly what the expression says."""

    def __init__(self, dtype: Any, branches: Mapping[IfExp, bool] | None = None) -> None:
        from runner.tfenv import tf

        self.dtype = dtype
        self._tf = tf
        self._functions: dict[str, Callable[[Any], Any]] = {
            fn: functools.reduce(getattr, f.tensorflow.split("."), tf) for fn, f in ops.FUNCTIONS.items()
        }
        self._ops = {fn: functools.reduce(getattr, TF_PATHS.get(fn, fn).split("."), tf) for fn in SIGNATURES}
        self.branches = dict(branches or {})  # conditional -> branch taken, decided before the tape

    def number(self, value: float) -> Any:
        return self._tf.constant(value, self.dtype)

    def call(self, fn: str, arg: Any) -> Any:
        return self._functions[fn](arg)

    def binary(self, op: str, left: Any, right: Any) -> Any:
        return ops.OPERATORS[op].tensorflow(self._tf, left, right)

    def array(self, values: list[Any]) -> Any:
        return self._tf.constant(values, self.dtype)

    def apply(self, fn: str, args: list[Any], options: dict[str, Any]) -> Any:
        if SIGNATURES[fn].listed:
            return self._ops[fn](args, **options)
        return self._ops[fn](*args, **options)

    def compare(self, op: str, left: Any, right: Any) -> Any:
        return getattr(self._tf.math, ops.COMPARISONS[op][0])(left, right)

    def choose(self, node: IfExp, test: Callable[[], Any], body: Callable[[], Any],
               orelse: Callable[[], Any]) -> Any:
        """Python's ``if``: one branch is built, so the tape records only that one."""
        taken = self.branches[node] if node in self.branches else bool(test())
        return body() if taken else orelse()

    @staticmethod
    def subscript(value: Any, index: tuple[IndexItem, ...]) -> Any:
        return value[_python_index(index)]

    def stop(self, node: Func, value: Callable[[], Any]) -> Any:
        return self._tf.stop_gradient(value())


class SymPyBackend:
    """Exact symbolic expressions: their derivatives are the analytic oracle."""

    def __init__(self) -> None:
        import sympy as sp

        self._sp = sp
        self._functions: dict[str, Callable[[Any], Any]] = {
            fn: functools.partial(f.sympy, sp) for fn, f in ops.FUNCTIONS.items()}

    def number(self, value: float) -> Any:
        return self._sp.Integer(value) if isinstance(value, int) else self._sp.Float(value)

    def binary(self, op: str, left: Any, right: Any) -> Any:
        return self.power(left, right) if op == "**" else ops.OPERATORS[op].sympy(left, right)

    def power(self, base: Any, exponent: Any) -> Any:
        """``base ** exponent``, refused where SymPy would fold it into a power or an exact number too
        large to build: the oracle's own bound on what it builds, whatever the parser's probes missed
        (an exponent folded from tensors, say)."""
        sp = self._sp
        if isinstance(exponent, sp.Number) and abs(exponent) > MAX_EXPONENT:
            raise ConfigError(f"the oracle would raise {_short(str(base), 30)} to the power "
                              f"{_short(str(exponent), 30)} once SymPy folds it; the limit is {MAX_EXPONENT}")
        if isinstance(base, sp.Rational) and isinstance(exponent, sp.Number) and base != 0 and abs(base) != 1:
            power = float(exponent)
            magnitude = power * (math.log10(abs(base.p)) - math.log10(base.q))  # log10 of the result
            digits = abs(power) * max(math.log10(abs(base.p)), math.log10(base.q))  # the exact fraction
            if magnitude > MAX_FOLDED_DIGITS or digits > MAX_EXACT_DIGITS:
                raise ConfigError(f"the oracle would build the exact number {_short(str(base), 30)} ** "
                                  f"{_short(str(exponent), 30)}, about 10^{magnitude:,.0f}"
                                  + (" (beyond any float's range)" if magnitude > MAX_FOLDED_DIGITS
                                     else f", {digits:,.0f} digits"))
        return ops.OPERATORS["**"].sympy(base, exponent)

    def call(self, fn: str, arg: Any) -> Any:
        if hasattr(arg, "shape") and hasattr(arg, "dtype"):  # a NumPy array of SymPy expressions
            import numpy as np

            return np.vectorize(self._functions[fn], otypes=[object])(arg)
        return self._functions[fn](arg)

    def compare(self, op: str, left: Any, right: Any) -> Any:
        return getattr(self._sp, ops.COMPARISONS[op][2])(left, right)

    def apply(self, fn: str, args: list[Any], options: dict[str, Any]) -> Any:
        """The elementwise functions of several arguments, on one expression each, with TensorFlow's
        choice at ties (maximum's gradient goes to its first argument where they are equal)."""
        piece = self._sp.Piecewise
        if fn == "where":
            return piece((args[1], args[0]), (args[2], True))
        if fn == "maximum":
            return piece((args[0], args[0] >= args[1]), (args[1], True))
        if fn == "minimum":
            return piece((args[0], args[0] <= args[1]), (args[1], True))
        if fn == "clip_by_value":
            return self.apply("minimum", [self.apply("maximum", args[:2], {}), args[2]], {})
        if fn == "square":
            return args[0] ** 2
        raise ValueError(f"{fn} needs arrays: evaluate it with runner.arrays.SymPyArrays")

    def symbols(self, names: Iterable[str]) -> dict[str, Any]:
        """Real symbols, so that d|x|/dx is sign(x) rather than a complex-valued form."""
        return {n: self._sp.Symbol(n, real=True) for n in names}


class Code(str):
    """Python source for a TensorFlow expression: :class:`CodeBackend` builds bigger source from it."""

    def __neg__(self) -> Code:
        return Code(f"(-{self})")


class CodeBackend:
    """Source text that builds the same TensorFlow ops: the reports' standalone snippets."""

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype

    def number(self, value: float) -> Code:
        return Code(f"tf.constant({value!r}, tf.{self.dtype})")

    def call(self, fn: str, arg: Code) -> Code:
        return Code(f"tf.{ops.FUNCTIONS[fn].tensorflow}({arg})")

    def array(self, values: list[Any]) -> Code:
        return Code(f"tf.constant({values!r}, tf.{self.dtype})")

    @staticmethod
    def binary(op: str, left: Code, right: Code) -> Code:
        return Code(f"({left} {op} {right})")

    @staticmethod
    def apply(fn: str, args: list[Code], options: dict[str, Any]) -> Code:
        tensors = ", ".join(args)
        if SIGNATURES[fn].listed:
            tensors = f"[{tensors}]"
        opts = "".join(f", {k}={list(v) if isinstance(v, tuple) else v!r}" for k, v in options.items())
        return Code(f"tf.{TF_PATHS.get(fn, fn)}({tensors}{opts})")

    @staticmethod
    def compare(op: str, left: Code, right: Code) -> Code:
        return Code(f"({left} {op} {right})")

    @staticmethod
    def choose(node: IfExp, test: Callable[[], Code], body: Callable[[], Code],
               orelse: Callable[[], Code]) -> Code:
        """Python's own conditional expression: run eagerly, it records only the branch taken."""
        return Code(f"({body()} if {test()} else {orelse()})")

    @staticmethod
    def subscript(value: Code, index: tuple[IndexItem, ...]) -> Code:
        return Code(f"{value}[{', '.join(map(_index_text, index))}]")

    @staticmethod
    def stop(node: Func, value: Callable[[], Code]) -> Code:
        return Code(f"tf.stop_gradient({value()})")
