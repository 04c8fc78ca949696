"""The expression language's functions and operators: one entry each, its implementations side by side.

A derivative is verified by setting what TensorFlow's autodiff makes of an op's
TensorFlow implementation against what SymPy makes of its SymPy implementation and
against central differences of its NumPy implementation. That proves something only
if the three share no code: a mistake in a table every backend reads (``@`` with its
operands swapped, ``tanh`` mapped to ``atan``) would sit on every side of every
comparison and agree with itself. So each entry holds one implementation per backend,
written apart: TensorFlow's (a path under ``tf``, which the reports' snippets print
too), NumPy's, SymPy's, and plain Python floats' (for the constants the parser folds).
Each takes its library as the first argument, so this module imports none of them
and configs are still checked in milliseconds.

Adding a one-argument function is one :class:`Function` entry here; ``tests/test_ops.py``
walks every entry and compares its implementations at random points.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Function:
    """A one-argument function of the language, elementwise, in every backend."""

    tensorflow: str  # a path under the tf module: "math.log"
    numpy: Callable[[Any, Any], Any]  # (numpy, x) -> value, float64 arrays
    sympy: Callable[[Any, Any], Any]  # (sympy, x) -> expression
    floats: Callable[[float], float]  # plain floats, for the parser's constants: must never overflow early
    domain: tuple[float, float] = (-3.0, 3.0)  # where it is smooth and finite: the registry test draws there


def _sigmoid(x: float) -> float:
    """Each branch never overflows on its side of 0."""
    if x >= 0:  # pragma: no mutate (near 0 both branches give the same number)
        return 1.0 / (1.0 + math.exp(-x))
    return math.exp(x) / (1.0 + math.exp(x))


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


#: The one-argument functions, by the name an expression calls them.
FUNCTIONS: dict[str, Function] = {
    "sin": Function("sin", lambda np, x: np.sin(x), lambda sp, x: sp.sin(x), math.sin),
    "cos": Function("cos", lambda np, x: np.cos(x), lambda sp, x: sp.cos(x), math.cos),
    "tan": Function("tan", lambda np, x: np.tan(x), lambda sp, x: sp.tan(x), math.tan, (-1.3, 1.3)),
    "exp": Function("exp", lambda np, x: np.exp(x), lambda sp, x: sp.exp(x), math.exp),
    "log": Function("math.log", lambda np, x: np.log(x), lambda sp, x: sp.log(x), math.log, (0.1, 5.0)),
    "log1p": Function("math.log1p", lambda np, x: np.log1p(x), lambda sp, x: sp.log(1 + x), math.log1p,
                      (-0.9, 5.0)),
    "sqrt": Function("sqrt", lambda np, x: np.sqrt(x), lambda sp, x: sp.sqrt(x), math.sqrt, (0.1, 5.0)),
    "abs": Function("abs", lambda np, x: np.abs(x), lambda sp, x: sp.Abs(x), math.fabs),
    "tanh": Function("tanh", lambda np, x: np.tanh(x), lambda sp, x: sp.tanh(x), math.tanh),
    "sigmoid": Function("sigmoid", lambda np, x: 1.0 / (1.0 + np.exp(-x)), lambda sp, x: 1 / (1 + sp.exp(-x)),
                        _sigmoid),
    "softplus": Function("math.softplus", lambda np, x: np.logaddexp(0.0, x),
                         lambda sp, x: sp.log(1 + sp.exp(x)), _softplus),
    # relu'(0) is 0 in TensorFlow; this Piecewise agrees, Heaviside(0) would not.
    "relu": Function("nn.relu", lambda np, x: np.maximum(x, 0.0),
                     lambda sp, x: sp.Piecewise((x, x > 0), (0, True)), lambda x: max(x, 0.0)),
    "sinh": Function("sinh", lambda np, x: np.sinh(x), lambda sp, x: sp.sinh(x), math.sinh),
    "cosh": Function("cosh", lambda np, x: np.cosh(x), lambda sp, x: sp.cosh(x), math.cosh),
    "atan": Function("atan", lambda np, x: np.arctan(x), lambda sp, x: sp.atan(x), math.atan),
    "asinh": Function("asinh", lambda np, x: np.arcsinh(x), lambda sp, x: sp.asinh(x), math.asinh),
}


@dataclass(frozen=True)
class Operator:
    """A binary operator of the language, in every backend (operands as the expression wrote them)."""

    tensorflow: Callable[[Any, Any, Any], Any]  # (tf, a, b)
    numpy: Callable[[Any, Any, Any], Any]  # (numpy, a, b)
    sympy: Callable[[Any, Any], Any]  # (a, b): SymPy's own arithmetic on its expressions
    floats: Callable[[float, float], float]


#: The binary operators. ``@`` exists only in programs, and only in TensorFlow and NumPy (SymPy's arrays
#: are NumPy object arrays, multiplied by NumPy).
OPERATORS: dict[str, Operator] = {
    "+": Operator(lambda tf, a, b: tf.add(a, b), lambda np, a, b: np.add(a, b), lambda a, b: a + b,
                  lambda a, b: a + b),
    "-": Operator(lambda tf, a, b: tf.subtract(a, b), lambda np, a, b: np.subtract(a, b), lambda a, b: a - b,
                  lambda a, b: a - b),
    "*": Operator(lambda tf, a, b: tf.multiply(a, b), lambda np, a, b: np.multiply(a, b), lambda a, b: a * b,
                  lambda a, b: a * b),
    "/": Operator(lambda tf, a, b: tf.divide(a, b), lambda np, a, b: np.divide(a, b), lambda a, b: a / b,
                  lambda a, b: a / b),
    "**": Operator(lambda tf, a, b: tf.pow(a, b), lambda np, a, b: np.power(a, b), lambda a, b: a**b,
                   lambda a, b: a**b),
    "@": Operator(lambda tf, a, b: tf.linalg.matmul(a, b), lambda np, a, b: np.matmul(a, b),
                  lambda a, b: a @ b, lambda a, b: a @ b),
}

#: Comparisons, the condition of ``where`` and of ``a if c else b``: TensorFlow's, NumPy's, SymPy's.
COMPARISONS: dict[str, tuple[str, str, str]] = {
    "<": ("less", "less", "Lt"), "<=": ("less_equal", "less_equal", "Le"),
    ">": ("greater", "greater", "Gt"), ">=": ("greater_equal", "greater_equal", "Ge"),
    "==": ("equal", "equal", "Eq"), "!=": ("not_equal", "not_equal", "Ne"),
}
