"""SymPy's derivatives as NumPy functions (runner/oracles/symbolic.py), against numbers written by hand.

Fast and TensorFlow-free, like tests/test_checks.py: ``make mutation`` runs these against mutants of
the oracle module.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from runner.oracles import symbolic


def test_a_derivative_is_evaluated_at_the_inputs_in_float64() -> None:
    x, y = sp.Symbol("x", real=True), sp.Symbol("y", real=True)
    got = symbolic.oracle(sp.cos(x) * y, {"x": x, "y": y}, {"x": np.array([0.0, 1.0]), "y": np.array(2.0)},
                      (2,), (2,))
    np.testing.assert_allclose(got, [2.0, 2 * np.cos(1.0)], rtol=1e-15)
    assert got.dtype == np.float64


def test_the_derivative_is_weighted_and_summed_down_to_a_broadcast_inputs_shape() -> None:
    x, w = sp.Symbol("x", real=True), sp.Symbol("w", real=True)
    # d/dw sum(weight * x * w) over a (2, 3) target where w is one number: sum(weight * x)
    x_values = np.arange(6.0).reshape(2, 3)
    weight = np.array([[1.0, 0.0, 2.0], [0.5, 1.0, -1.0]])
    got = symbolic.oracle(x, {"x": x, "w": w}, {"x": x_values, "w": np.array(3.0)}, (2, 3), (), weight)
    assert got.shape == () and float(got) == pytest.approx(float(np.sum(weight * x_values)))
    # ... and against a row vector w of shape (1, 3): each column's sum
    got = symbolic.oracle(x, {"x": x, "w": w}, {"x": x_values, "w": np.ones((1, 3))}, (2, 3), (1, 3), weight)
    np.testing.assert_allclose(got, np.sum(weight * x_values, axis=0, keepdims=True))


def test_a_constant_derivative_is_broadcast_to_the_target() -> None:
    x = sp.Symbol("x", real=True)
    got = symbolic.oracle(sp.Integer(3), {"x": x}, {"x": np.zeros(4)}, (4,), (4,))
    np.testing.assert_array_equal(got, [3.0, 3.0, 3.0, 3.0])


def test_input_names_that_shadow_numpy_functions_are_renamed() -> None:
    sign, select = sp.Symbol("sign", real=True), sp.Symbol("select", real=True)
    fn = symbolic.numeric([sign, select], sp.Abs(sign) * select + sp.Piecewise((sign, sign > 0), (0, True)))
    assert fn(np.array([-2.0]), np.array([3.0]))[0] == pytest.approx(6.0)
    assert fn(np.array([2.0]), np.array([3.0]))[0] == pytest.approx(8.0)


def test_the_same_expression_is_made_a_function_once() -> None:
    x = sp.Symbol("x", real=True)
    first = symbolic.lambdified(sp.sin(x) ** 2, {"x": x})
    assert symbolic.lambdified(sp.sin(x) ** 2, {"x": x}) is first
    assert symbolic.lambdified(sp.cos(x), {"x": x}) is not first
    assert first(np.array(0.5)) == pytest.approx(np.sin(0.5) ** 2)


def test_a_matrix_is_evaluated_too() -> None:
    x, y = sp.Symbol("x", real=True), sp.Symbol("y", real=True)
    jacobian = sp.Matrix([[y, x], [2 * x, 0]])  # mutable: cannot be a cache key, made each time
    got = symbolic.lambdified(jacobian, {"x": x, "y": y})(3.0, 5.0)
    np.testing.assert_array_equal(np.asarray(got, dtype=np.float64), [[5.0, 3.0], [6.0, 0.0]])


def test_integer_inputs_are_evaluated_in_floats() -> None:
    x = sp.Symbol("x", real=True)
    got = symbolic.oracle(sp.Pow(x, -2), {"x": x}, {"x": np.array([1, 2])}, (2,), (2,))  # NumPy: no int**-2
    np.testing.assert_allclose(got, [1.0, 0.25])
