"""What :func:`runner.language.syntax.evaluate` computes with: TensorFlow, SymPy, or snippet text.

Each backend does its own arithmetic, functions and numbers from its own column of the
op registry (:mod:`runner.language.ops`): no table is shared between TensorFlow and the
oracles, so none can hide a mistake by making it on both sides. (NumPy's float64
backend, for tensors, is :mod:`runner.language.arrays`.)
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from runner.errors import ConfigError
from runner.language import ops
from runner.language.syntax import (
    SIGNATURES,
    TF_PATHS,
    Func,
    IfExp,
    IndexItem,
    index_text,
    python_index,
    short,
)
from runner.language.vetting import MAX_EXACT_DIGITS, MAX_EXPONENT, MAX_FOLDED_DIGITS


class TensorFlowBackend:
    """Native TensorFlow ops, so the tape records exactly what the expression says."""

    def __init__(self, dtype: Any, branches: Mapping[IfExp, bool] | None = None,
                 dtypes: Mapping[str, Any] | None = None) -> None:
        from runner.tfenv import tf

        self.dtype = dtype
        self.dtypes = dict(dtypes or {})  # step -> its dtype, where it is not ``dtype``
        self._steps: dict[str, TensorFlowBackend] = {}
        self._tf = tf
        self.tape: Any = None  # the tape recording, which a step written recorded: false pauses
        self._functions: dict[str, Callable[[Any], Any]] = {
            fn: functools.reduce(getattr, f.tensorflow.split("."), tf) for fn, f in ops.FUNCTIONS.items()
        }
        self._ops = {fn: functools.reduce(getattr, TF_PATHS.get(fn, fn).split("."), tf)
                     for fn in SIGNATURES if fn != "numpy"}  # numpy() is no op of TensorFlow's: see stop()
        self.branches = dict(branches or {})  # conditional -> branch taken, decided before the tape

    def on(self, tape: Any) -> TensorFlowBackend:
        """The same backend, recording on ``tape`` (whose stop_recording an unrecorded step enters)."""
        found = copy.copy(self)
        found.tape, found._steps = tape, {}
        return found

    def for_step(self, name: str) -> TensorFlowBackend:
        """The backend a step computes with: its numbers in its own dtype (an integer input's, say)."""
        if name not in self.dtypes:
            return self
        if name not in self._steps:
            self._steps[name] = TensorFlowBackend(self.dtypes[name], self.branches)
        return self._steps[name]

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
        if SIGNATURES[fn].leading:
            return self._ops[fn](*options.values(), *args)
        return self._ops[fn](*args, **options)

    def compare(self, op: str, left: Any, right: Any) -> Any:
        return getattr(self._tf.math, ops.COMPARISONS[op][0])(left, right)

    def choose(self, node: IfExp, test: Callable[[], Any], body: Callable[[], Any],
               orelse: Callable[[], Any]) -> Any:
        """Python's ``if``: run eagerly, one branch is built, so the tape records only that one. Traced
        into a tf.function (``compile=function`` or ``xla``), AutoGraph turns an ``if`` on a tensor into
        ``tf.cond``, which records both: a source read only in the other branch gets zeros, not None."""
        if not self._tf.executing_eagerly():
            return self._tf.cond(test(), body, orelse)
        taken = self.branches[node] if node in self.branches else bool(test())
        return body() if taken else orelse()

    @staticmethod
    def subscript(value: Any, index: tuple[IndexItem, ...]) -> Any:
        return value[python_index(index)]

    def stop(self, node: Func, value: Callable[[], Any]) -> Any:
        """``stop_gradient``: an op the tape records with no gradient. ``numpy``: the value handed to
        NumPy and back, a new constant (as ``np.mean(x2)`` in a tape), which needs an eager tensor."""
        if node.fn == "stop_gradient":
            return self._tf.stop_gradient(value())
        if not self._tf.executing_eagerly():
            raise ConfigError("numpy(): a NumPy detour needs an eager tensor; traced into a tf.function "
                              "(compile=function or xla) a tensor has no value to hand NumPy, and TensorFlow "
                              "refuses it: use compile=eager")
        return self._tf.constant(value().numpy())


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
            raise ConfigError(f"the oracle would raise {short(str(base), 30)} to the power "
                              f"{short(str(exponent), 30)} once SymPy folds it; the limit is {MAX_EXPONENT}")
        if isinstance(base, sp.Rational) and isinstance(exponent, sp.Number) and base != 0 and abs(base) != 1:
            power = float(exponent)
            magnitude = power * (math.log10(abs(base.p)) - math.log10(base.q))  # log10 of the result
            digits = abs(power) * max(math.log10(abs(base.p)), math.log10(base.q))  # the exact fraction
            if magnitude > MAX_FOLDED_DIGITS or digits > MAX_EXACT_DIGITS:
                raise ConfigError(f"the oracle would build the exact number {short(str(base), 30)} ** "
                                  f"{short(str(exponent), 30)}, about 10^{magnitude:,.0f}"
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
        raise ValueError(f"{fn} needs arrays: evaluate it with runner.language.arrays.SymPyArrays")

    def symbols(self, names: Iterable[str]) -> dict[str, Any]:
        """Real symbols, so that d|x|/dx is sign(x) rather than a complex-valued form."""
        return {n: self._sp.Symbol(n, real=True) for n in names}


class Code(str):
    """Python source for a TensorFlow expression: :class:`CodeBackend` builds bigger source from it."""

    def __neg__(self) -> Code:
        return Code(f"(-{self})")


class CodeBackend:
    """Source text that builds the same TensorFlow ops: the reports' standalone snippets."""

    def __init__(self, dtype: str, dtypes: Mapping[str, str] | None = None) -> None:
        self.dtype = dtype
        self.dtypes = dict(dtypes or {})  # step -> its dtype, where it is not ``dtype``

    def for_step(self, name: str) -> CodeBackend:
        return CodeBackend(self.dtypes[name]) if name in self.dtypes else self

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
        if SIGNATURES[fn].leading:
            return Code(f"tf.{fn}({', '.join(map(repr, options.values()))}, {tensors})")
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
        return Code(f"{value}[{', '.join(map(index_text, index))}]")

    @staticmethod
    def stop(node: Func, value: Callable[[], Code]) -> Code:
        if node.fn == "numpy":  # through NumPy and back: a constant
            return Code(f"tf.constant(np.asarray({value()}))")
        return Code(f"tf.stop_gradient({value()})")
