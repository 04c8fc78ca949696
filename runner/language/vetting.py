"""Constant sub-expressions and powers vetted while parsing: what would overflow, or stall SymPy.

``9**9**9`` or ``x**1e6`` is refused with one line before any backend sees it: constant
parts are evaluated in plain floats (:class:`FloatBackend`) and every node is probed at a
few points to bound the power of the inputs SymPy would build.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

from runner.errors import ConfigError
from runner.language import ops
from runner.language.syntax import (
    CONSTANTS,
    ELEMENTWISE,
    BinOp,
    Call,
    Compare,
    Expr,
    Func,
    IfExp,
    Name,
    Neg,
    Num,
    children,
    short,
)

MAX_EXPONENT = 1_000  # |constant exponent|; x**1e6 or 9**9**9 would stall SymPy or overflow


MAX_FOLDED_DIGITS = 309  # the magnitude (digits) of a number SymPy folds a constant into: float64's range


MAX_EXACT_DIGITS = 10_000  # the digits of its exact numerator or denominator: milliseconds to build


def vetted(tree: Neg | BinOp | Call, constant_parts: Any) -> tuple[Expr, float | None]:
    """Evaluate ``tree`` in floats when all its parts are constant; refuse what overflows."""
    if constant_parts is None:
        return tree, None
    if isinstance(tree, BinOp) and tree.op == "**" and constant_parts[0] not in (0.0, 1.0, -1.0):
        base, exponent = constant_parts  # SymPy builds an integer base's power exactly: bound its digits
        digits = abs(exponent * math.log10(abs(base)))
        if digits > MAX_EXACT_DIGITS:
            raise ConfigError(f"constant sub-expression {short(str(tree))} is about 10^"
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


def input_power(tree: Expr, probes: Probes, powers: dict[int, float] | None = None) -> float:
    """The highest power of the inputs SymPy may build from ``tree``; refused above :data:`MAX_EXPONENT`.

    SymPy folds ``(x**a)**b`` into ``x**(a*b)`` and ``x**a * x**b`` into ``x**(a+b)``, so
    the bound on a literal exponent alone is bypassed by nesting: ``(x**1000)**1000``
    is ``x**1000000``. Powers multiply through nested exponents and add through
    products; a function call is a new atom (its argument is bounded on its own),
    except where SymPy folds a power through it: ``sqrt(a)`` is ``a**(1/2)``,
    ``abs(x**3)`` is ``Abs(x)**3`` and ``exp(c*log(a))`` is ``a**c``.

    SymPy also folds what only looks like it reads an input: ``x - x + 9`` is 9, so
    ``x**((x-x+9)**(x-x+9))`` is ``x**387420489`` and ``9**that`` an exact integer of
    370 million digits. So an exponent is judged by its value at a few points
    (:func:`_probe`): one that is the same number at all of them is that constant
    to SymPy too, and is bounded as a literal would be.
    """
    powers = {} if powers is None else powers  # each node's power, by id, once: exp(log(...)) reads it again
    if id(tree) in powers:
        return powers[id(tree)]
    parts = [input_power(part, probes, powers) for part in children(tree)]  # every part is bounded, always
    match tree:
        case Num():
            power = 0.0
        case Name(id=ident):
            power = 0.0 if ident in CONSTANTS else 1.0
        case Neg():
            power = parts[0]
        case Call(fn="sqrt"):  # sqrt(a) is a**(1/2): (sqrt(x**3))**1000 folds to x**1500
            power = parts[0] / 2
        case Call(fn="abs"):  # Abs(x**3) is Abs(x)**3
            power = parts[0]
        case Call(fn="exp", arg=arg) if (logged := _log_power(arg, probes, powers)) is not None:
            power = logged  # exp(c*log(a)) is a**c
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
        raise ConfigError(f"{short(str(tree))} raises the inputs to the power {power:g} once SymPy folds "
                          f"nested powers and products; the limit is {MAX_EXPONENT}")
    powers[id(tree)] = power
    return power


def _log_power(arg: Expr, probes: Probes, powers: dict[int, float]) -> float | None:
    """The power SymPy gives ``exp(arg)`` when ``arg`` is a constant times ``log(a)``, which it folds into
    ``a**c``; None for any other argument."""
    match arg:
        case Call(fn="log", arg=inner):
            return input_power(inner, probes, powers)
        case Neg(arg=inner):
            return _log_power(inner, probes, powers)
        case BinOp(op="*", left=left, right=right):
            for logged, factor in ((left, right), (right, left)):
                coefficient, power = _constant(_probe(factor, probes)), _log_power(logged, probes, powers)
                if coefficient is not None and power is not None:
                    return power * abs(coefficient)
        case BinOp(op="/", left=left, right=right):
            coefficient, power = _constant(_probe(right, probes)), _log_power(left, probes, powers)
            if coefficient and power is not None:
                return power / abs(coefficient)
    return None


def _folded_exponent(tree: BinOp, left: Expr, right: Expr, probes: Probes) -> float | None:
    """The exponent of ``left ** right`` as SymPy folds it (None where it stays a variable, a new atom);
    refused when the folded exponent or its base is beyond what SymPy can build at once."""
    values = _probe(right, probes)
    if values is not None and not all(math.isfinite(v) for v in values):
        raise ConfigError(f"exponent {short(str(right))} in {short(str(tree))} overflows a float")
    exponent = _constant(values)
    if exponent is None:
        return None
    if abs(exponent) > MAX_EXPONENT:
        raise ConfigError(f"exponent {short(str(right))} in {short(str(tree))} is {exponent:g} once SymPy "
                          f"folds it, beyond the limit of {MAX_EXPONENT}")
    base = _probe(left, probes)
    if abs(exponent) > 1 and base is not None and not any(math.isfinite(v) for v in base):
        raise ConfigError(f"base {short(str(left))} in {short(str(tree))} overflows a float before it is "
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


class FloatBackend:
    """Plain-Python floats: only to vet constant sub-expressions (the op registry's ``floats``)."""

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
