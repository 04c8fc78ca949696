"""Parsing the closed expression language: text into :mod:`runner.language.syntax`, whitelisted.

A scenario's ``function: x**3*cos(x)`` is parsed with :mod:`ast` and every node is
checked against a short whitelist before anything is evaluated; constant
sub-expressions are vetted on the way (:mod:`runner.language.vetting`), so what
survives is a tree that every backend can evaluate and
:func:`runner.language.shape_rules.infer_shape` can shape.
Nothing here calls ``eval``, ``exec`` or SymPy's string parsers.

This package imports neither TensorFlow nor SymPy at import time, so configs are
validated in milliseconds.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from runner.errors import ConfigError
from runner.language.syntax import (
    ALL_FUNCTIONS,
    CONSTANTS,
    FUNCTIONS,
    SIGNATURES,
    Array,
    BinOp,
    Call,
    Compare,
    Expr,
    Func,
    IfExp,
    Index,
    IndexItem,
    Name,
    Neg,
    Num,
    names,
    short,
)
from runner.language.vetting import MAX_EXPONENT, input_power, vetted

MAX_LENGTH = 10_000


MAX_DEPTH = 200  # a chain of n binary operators nests n deep


MAX_DIGITS = 30  # digits in one number literal: far past what any float dtype holds




_DIGIT_RUN = re.compile(r"[0-9][0-9_]*")


_CONTROL_NAMES = {"\n": "a line break", "\r": "a line break", "\x0b": "a line break", "\x0c": "a form feed"}


_BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.MatMult: "@",
}


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
            raise ConfigError(f"number literal {short(run.group(), 20)!r} has {digits} digits; "
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
        raise ConfigError(f"syntax error in expression {short(text)!r}: {err.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ConfigError(f"expression {short(text)!r} is nested too deeply to parse") from None
    converted = _convert(tree.body, allowed, depth=0)[0]
    input_power(converted, {})
    return converted


def parse(text: str, allowed: Iterable[str]) -> Expr:
    """Parse ``text`` into an :data:`Expr` over the names in ``allowed``.

    Raises :class:`ConfigError` with a one-line reason for anything outside the
    language: unknown names or functions, attribute access, subscripts, lambdas,
    comprehensions, keyword arguments, strings, oversize or overflowing constants.
    """
    return _parse(str(text), frozenset(allowed))


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
                raise ConfigError(f"number literal {short(repr(value), 30)} has more than {MAX_DIGITS} "
                                  "decimal digits")
            if abs(value) > 1e300 or not math.isfinite(float(value)):  # a huge int never reaches float()
                raise ConfigError(f"constant {short(repr(value), 30)} is too large")
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
            return vetted(Neg(arg), value)
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
            return vetted(tree, both)
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
            return vetted(Call(fn, arg), value)
    power = isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor)
    raise ConfigError(f"{_describe(node)} is not allowed in an expression"
                      + ("; for a power write ** (x**2), not ^" if power else ""))


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
    if sig.leading:  # einsum('ij,jk->ik', a, b): the option first, then any number of tensors
        if not args or len(args) < 1 + sig.tensors or keywords:
            raise ConfigError(f"{fn}() takes its {sig.options[0]} first, then tensors, as in "
                              f"{fn}('ij,jk->ik', a, b)")
        tensors = tuple(_convert(a, allowed, depth + 1)[0] for a in args[1:])
        return Func(fn, tensors, ((sig.options[0], _option(fn, sig.options[0], args[0])),))
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
    """A constant option: ``keepdims`` True/False; ``axis`` an integer (or a list, for reductions);
    ``clip_norm`` a positive number."""
    if name == "equation":
        return _equation(fn, node)
    if name == "clip_norm":
        number = node.value if isinstance(node, ast.Constant) else None
        if isinstance(number, bool) or not isinstance(number, int | float) or not 0 < number < float("inf"):
            raise ConfigError(f"{fn}(): clip_norm must be a positive number")
        return float(number)
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


#: An einsum equation as TensorFlow takes it here: explicit, letters only (no ellipsis), e.g. 'bxby->bxy'.
_EQUATION = re.compile(r"[a-zA-Z]+(,[a-zA-Z]+)*->[a-zA-Z]*")


def _equation(fn: str, node: ast.AST) -> str:
    """einsum's subscripts, spaces dropped: each operand's letters, '->', the output's (each once)."""
    given = node.value if isinstance(node, ast.Constant) else None
    text = given.replace(" ", "") if isinstance(given, str) else ""
    if not _EQUATION.fullmatch(text):
        raise ConfigError(f"{fn}(): the equation is a string of subscripts with an explicit output, "
                          "letters only, as in 'bxby->bxy' or 'ij,jk->ik'")
    inputs, output = text.split("->")
    if len(set(output)) < len(output) or not set(output) <= set(inputs.replace(",", "")):
        raise ConfigError(f"{fn}(): {text!r}: each output letter appears once, and in an operand")
    return text


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
