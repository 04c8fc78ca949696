"""The closed expression language of scenario functions.

A scenario's ``function: x**3*cos(x)`` is data, not code. It is parsed with
:mod:`ast` and every node is checked against a short whitelist before anything
is evaluated; what survives becomes a tiny tree of :class:`Num`, :class:`Name`,
:class:`Neg`, :class:`BinOp` and :class:`Call`. One evaluator walks that tree
for every backend: with TensorFlow tensors it builds the ops the tape records,
with SymPy symbols it builds the expression whose derivative is the oracle.
Nothing here calls ``eval``, ``exec`` or SymPy's string parsers.

This module imports neither TensorFlow nor SymPy at import time, so configs are
validated in milliseconds.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from runner.errors import ConfigError

MAX_LENGTH = 10_000
MAX_DEPTH = 200  # a chain of n binary operators nests n deep
MAX_EXPONENT = 1_000  # |constant exponent|; x**1e6 or 9**9**9 would stall SymPy or overflow
MAX_DIGITS = 30  # digits in one number literal: far past what any float dtype holds
_DIGIT_RUN = re.compile(r"[0-9][0-9_]*")
_CONTROL_NAMES = {"\n": "a line break", "\r": "a line break", "\x0b": "a line break", "\x0c": "a form feed"}

#: Each function's TensorFlow op, as a path under the ``tf`` module.
TF_OPS = {
    "sin": "sin", "cos": "cos", "tan": "tan", "exp": "exp", "log": "math.log",
    "log1p": "math.log1p", "sqrt": "sqrt", "abs": "abs", "tanh": "tanh", "sigmoid": "sigmoid",
    "softplus": "math.softplus", "relu": "nn.relu", "sinh": "sinh", "cosh": "cosh", "atan": "atan",
}
#: The functions an expression may call, each of one argument.
FUNCTIONS = tuple(TF_OPS)
CONSTANTS = {"pi": math.pi, "e": math.e}
RESERVED = frozenset(TF_OPS) | frozenset(CONSTANTS)

_BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**",
}
_APPLY: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul,
    "/": operator.truediv, "**": operator.pow,
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


Expr = Num | Name | Neg | BinOp | Call


def names(expr: Expr) -> set[str]:
    """The free names an expression reads (its inputs; constants excluded)."""
    match expr:
        case Name(id=i):
            return set() if i in CONSTANTS else {i}
        case Neg(arg=a) | Call(arg=a):
            return names(a)
        case BinOp(left=left, right=right):
            return names(left) | names(right)
    return set()


def size(expr: Expr) -> int:
    """The number of nodes: each is one op (one tensor) when the tape records the expression."""
    match expr:
        case Neg(arg=a) | Call(arg=a):
            return 1 + size(a)
        case BinOp(left=left, right=right):
            return 1 + size(left) + size(right)
    return 1


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
    _power(converted)
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
            if abs(value) > 1e300 or not math.isfinite(float(value)):  # a huge int never reaches float()
                raise ConfigError(f"constant {_short(repr(value), 30)} is too large")
            return Num(value), float(value)
        case ast.Name(id=ident):
            if ident in CONSTANTS:
                return Name(ident), CONSTANTS[ident]
            if ident in allowed:
                return Name(ident), None
            if ident in FUNCTIONS:
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
            both = None if lvalue is None or rvalue is None else (lvalue, rvalue)
            return _vetted(tree, both)
        case ast.Call(func=ast.Name(id=fn), args=args, keywords=keywords):
            if fn not in FUNCTIONS:
                raise ConfigError(f"unknown function {fn!r} (known: {', '.join(FUNCTIONS)})")
            if keywords or len(args) != 1 or isinstance(args[0], ast.Starred):
                raise ConfigError(f"{fn}() takes exactly one positional argument")
            arg, value = _convert(args[0], allowed, down)
            return _vetted(Call(fn, arg), value)
    power = isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor)
    raise ConfigError(f"{_describe(node)} is not allowed in an expression"
                      + ("; for a power write ** (x**2), not ^" if power else ""))


def _vetted(tree: Neg | BinOp | Call, constant_parts: Any) -> tuple[Expr, float | None]:
    """Evaluate ``tree`` in floats when all its parts are constant; refuse what overflows."""
    if constant_parts is None:
        return tree, None
    try:
        value = FloatBackend.apply(tree, constant_parts)
    except (OverflowError, ZeroDivisionError, ValueError) as err:
        raise ConfigError(f"constant sub-expression {tree} cannot be evaluated: {err}") from None
    if isinstance(value, complex) or not math.isfinite(value):
        raise ConfigError(f"constant sub-expression {tree} is not a finite real number")
    return tree, float(value)


def _power(tree: Expr) -> float:
    """The highest power of the inputs SymPy may build from ``tree``; refused above :data:`MAX_EXPONENT`.

    SymPy folds ``(x**a)**b`` into ``x**(a*b)`` and ``x**a * x**b`` into ``x**(a+b)``, so
    the bound on a literal exponent alone is bypassed by nesting: ``(x**1000)**1000``
    is ``x**1000000``. Powers multiply through nested exponents and add through
    products; a function call is a new atom (its argument is bounded on its own).
    """
    match tree:
        case Num():
            power = 0.0
        case Name(id=ident):
            power = 0.0 if ident in CONSTANTS else 1.0
        case Neg(arg=arg):
            power = _power(arg)
        case Call(arg=arg):
            power = min(_power(arg), 1.0)
        case BinOp(op="+" | "-", left=left, right=right):
            power = max(_power(left), _power(right))
        case BinOp(op="*" | "/", left=left, right=right):
            power = _power(left) + _power(right)
        case BinOp(op="**", left=left, right=right) if not names(right):
            power = _power(left) * abs(evaluate(right, {}, FloatBackend))
        case BinOp(op="**", left=left, right=right):
            power = min(_power(left) + _power(right), 1.0)
        case _:  # any other node: as high as the highest of its parts
            power = max((_power(part) for part in children(tree)), default=0.0)
    if power > MAX_EXPONENT:
        raise ConfigError(f"{_short(str(tree))} raises the inputs to the power {power:g} once SymPy folds "
                          f"nested powers and products; the limit is {MAX_EXPONENT}")
    return power


def children(node: Expr) -> list[Expr]:
    """A node's sub-expressions, whatever kind of node it is (fields holding a node or a tuple of them)."""
    found: list[Expr] = []
    for item in (getattr(node, f.name) for f in dataclasses.fields(node)):
        for part in item if isinstance(item, tuple | list) else [item]:
            if dataclasses.is_dataclass(part) and not isinstance(part, type):
                found.append(part)
    return found


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
    """Plain-Python floats: used only to vet constant sub-expressions."""

    number = staticmethod(float)

    @staticmethod
    def apply(tree: Neg | BinOp | Call, parts: Any) -> float:
        """One node, given its children's values (a float, or a pair for BinOp)."""
        if isinstance(tree, BinOp):
            return _APPLY[tree.op](*parts)
        if isinstance(tree, Neg):
            return -parts
        return FloatBackend.call(tree.fn, parts)

    @staticmethod
    def call(fn: str, arg: float) -> float:
        # Written so that no intermediate overflows: sigmoid(-1000) is 0, softplus(1000) is 1000.
        if fn == "sigmoid":
            return 1.0 / (1.0 + math.exp(-arg)) if arg >= 0 else math.exp(arg) / (1.0 + math.exp(arg))
        if fn == "softplus":
            return max(arg, 0.0) + math.log1p(math.exp(-abs(arg)))
        if fn == "relu":
            return max(arg, 0.0)
        return getattr(math, {"abs": "fabs"}.get(fn, fn))(arg)


def evaluate(expr: Expr, env: Mapping[str, Any], backend: Any) -> Any:
    """Walk the tree once, combining values with ``backend.number`` and ``backend.call``.

    The arithmetic itself is Python's operators, which TensorFlow tensors, SymPy
    expressions and floats all implement; only numbers and named functions differ.
    """
    match expr:
        case Num(value=v):
            return backend.number(v)
        case Name(id=i):
            return env[i] if i in env else backend.number(CONSTANTS[i])
        case Neg(arg=a):
            return -evaluate(a, env, backend)
        case BinOp(op=op, left=left, right=right):
            return _APPLY[op](evaluate(left, env, backend), evaluate(right, env, backend))
        case Call(fn=fn, arg=a):
            return backend.call(fn, evaluate(a, env, backend))
    raise TypeError(f"not an expression node: {expr!r}")


class TensorFlowBackend:
    """Native TensorFlow ops, so the tape records exactly what the expression says."""

    def __init__(self, dtype: Any) -> None:
        from runner.tfenv import tf

        self.dtype = dtype
        self._tf = tf
        self._functions: dict[str, Callable[[Any], Any]] = {
            fn: functools.reduce(getattr, path.split("."), tf) for fn, path in TF_OPS.items()
        }

    def number(self, value: float) -> Any:
        return self._tf.constant(value, self.dtype)

    def call(self, fn: str, arg: Any) -> Any:
        return self._functions[fn](arg)


class SymPyBackend:
    """Exact symbolic expressions: their derivatives are the analytic oracle."""

    def __init__(self) -> None:
        import sympy as sp

        self._sp = sp
        self._functions: dict[str, Callable[[Any], Any]] = {
            "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "exp": sp.exp,
            "log": sp.log, "log1p": lambda a: sp.log(1 + a), "sqrt": sp.sqrt,
            "abs": sp.Abs, "tanh": sp.tanh, "sigmoid": lambda a: 1 / (1 + sp.exp(-a)),
            "softplus": lambda a: sp.log(1 + sp.exp(a)),
            # relu'(0) is 0 in TensorFlow; this Piecewise agrees, Heaviside(0) would not.
            "relu": lambda a: sp.Piecewise((a, a > 0), (0, True)),
            "sinh": sp.sinh, "cosh": sp.cosh, "atan": sp.atan,
        }

    def number(self, value: float) -> Any:
        return self._sp.Integer(value) if isinstance(value, int) else self._sp.Float(value)

    def call(self, fn: str, arg: Any) -> Any:
        return self._functions[fn](arg)

    def symbols(self, names: Iterable[str]) -> dict[str, Any]:
        """Real symbols, so that d|x|/dx is sign(x) rather than a complex-valued form."""
        return {n: self._sp.Symbol(n, real=True) for n in names}


class Code(str):
    """Python source for a TensorFlow expression; operators build bigger source."""

    def _binary(self, op: str, other: str) -> Code:
        return Code(f"({self} {op} {other})")

    def __add__(self, other: str) -> Code:  # type: ignore[override]
        return self._binary("+", other)

    def __sub__(self, other: str) -> Code:
        return self._binary("-", other)

    def __mul__(self, other: str) -> Code:  # type: ignore[override]
        return self._binary("*", other)

    def __truediv__(self, other: str) -> Code:
        return self._binary("/", other)

    def __pow__(self, other: str) -> Code:
        return self._binary("**", other)

    def __neg__(self) -> Code:
        return Code(f"(-{self})")


class CodeBackend:
    """Source text that builds the same TensorFlow ops: the reports' standalone snippets."""

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype

    def number(self, value: float) -> Code:
        return Code(f"tf.constant({value!r}, tf.{self.dtype})")

    def call(self, fn: str, arg: Code) -> Code:
        return Code(f"tf.{TF_OPS[fn]}({arg})")
