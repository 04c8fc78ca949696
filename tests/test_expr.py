"""The expression language: what it accepts, what it refuses, and that it never runs Python."""

from __future__ import annotations

import sys
from unittest import mock

import pytest

from runner.errors import ConfigError
from runner.language import backends, expr, syntax


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("x**2", "(x ** 2)"),
        ("sigmoid(x)", "sigmoid(x)"),
        ("x*y + sin(x)", "((x * y) + sin(x))"),
        ("-x**-2", "(-(x ** (-2)))"),
        ("+x", "x"),
        ("e**x * pi", "((e ** x) * pi)"),
        ("softplus(relu(x)) / log1p(abs(x))", "(softplus(relu(x)) / log1p(abs(x)))"),
    ],
)
def test_accepts_the_language(text: str, shown: str) -> None:
    assert str(expr.parse(text, ["x", "y"])) == shown


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("__import__('os').system('true')", "not allowed"),
        ("__import__('os')", "unknown function '__import__'"),
        ("x.real", "attribute access"),
        ("x[y]", "subscripts take constant integers"),
        ("(lambda: 1)()", "not allowed"),
        ("lambda: 1", "lambda"),
        ("[i for i in x]", "comprehension"),
        ("{i: 1 for i in x}", "comprehension"),
        ("'abc'", "string"),
        ("True", "unsupported constant"),
        ("1j", "unsupported constant"),
        ("x if x else 1", "condition must be one comparison"),
        ("x < 1", "comparison"),
        ("x and y", "boolean"),
        ("(y := 1)", "assignment"),
        ("x % 2", "operator Mod"),
        ("~x", "unary operator Invert"),
        ("foo(x)", "unknown function 'foo'"),
        ("sin", "must be called"),
        ("sin(x, y)", "exactly one"),
        ("sin(x=1)", "exactly one"),
        ("sin(*x)", "exactly one"),
        ("z", "unknown name 'z'"),
        ("x +", "syntax error"),
        ("", "empty"),
        ("1/0", "cannot be evaluated"),
        ("9**9**9**9", "exceeds the limit"),
        ("x**5000", "exceeds the limit"),
        ("1e400", "too large"),
        ("exp(1000)", "cannot be evaluated"),
        ("(-8)**(1/3)", "not a finite real"),
        ("(" * 300 + "x" + ")" * 300, "too many nested parentheses"),
        ("x" + "+x" * 250, "nested more than"),
        ("x+" * 6000 + "x", "characters long"),
    ],
)
def test_refuses_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        expr.parse(text, ["x", "y"])


def test_hostile_input_is_refused_without_any_backend() -> None:
    for text in ("9**9**9**9", "2**2**2**2**2**2**2", "(" * 5000 + ")" * 5000, "-" * 9999 + "x"):
        with mock.patch.dict(sys.modules, {"sympy": None, "tensorflow": None}), pytest.raises(ConfigError):
            expr.parse(text, ["x"])


def test_names_are_the_inputs_read() -> None:
    assert syntax.names(expr.parse("x*y + sin(x) + pi", ["x", "y", "z"])) == {"x", "y"}


def test_sympy_backend_gives_exact_derivatives() -> None:
    import sympy as sp

    backend = backends.SymPyBackend()
    symbols = backend.symbols(["x"])
    f = syntax.evaluate(expr.parse("x**3*cos(x)", ["x"]), symbols, backend)
    x = symbols["x"]
    assert sp.simplify(sp.diff(f, x) - (3 * x**2 * sp.cos(x) - x**3 * sp.sin(x))) == 0
    relu = syntax.evaluate(expr.parse("relu(x)", ["x"]), symbols, backend)
    assert sp.diff(relu, x).subs(x, 0) == 0  # agrees with TensorFlow's relu'(0)
