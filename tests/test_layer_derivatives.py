"""Derivative kinds with a Keras layer's variable as the source (``h.kernel``): shapes and values against
NumPy by hand, the float64 checks nudging the variable through the layer's float64 twin."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from runner.errors import ConfigError
from tests.conftest import assert_passed
from tests.test_language import run_program

X = np.array([[1.0, 2.0, -1.0], [-0.5, 3.0, 0.25]])  # (2, 3)
DENSE = {"layer": "Dense", "input": "x", "args": {"units": 4}}


def _names(outcome: Any) -> list[str]:
    return [c.name for c in outcome.checks]


def test_jacobian_of_a_dense_layer_with_respect_to_its_kernel_is_x_times_the_identity() -> None:
    """y = x @ K + b: dy[i, j] / dK[k, l] = x[i, k] when j = l, whatever K; dy/db = 1 when j = l."""
    outcome = assert_passed(run_program({"y": DENSE}, {"y": ["y.kernel", "y.bias"]}, persistent=True,
                                        inputs={"x": {"value": X.tolist(), "kind": "constant"}},
                                        derivative="jacobian"))
    np.testing.assert_allclose(outcome.gradients["dy/dy.kernel"], np.einsum("ik,jl->ijkl", X, np.eye(4)),
                               rtol=1e-12)
    np.testing.assert_allclose(outcome.gradients["dy/dy.bias"], np.einsum("i,jl->ijl", np.ones(2), np.eye(4)))
    assert "dy/dy.kernel vs float64 central differences (every element)" in _names(outcome)
    assert "print(json.dumps" in outcome.snippet and "_weights['y.kernel']" in outcome.snippet


def test_hessian_of_a_squared_dense_output_with_respect_to_its_kernel_and_a_newton_step() -> None:
    """loss = sum((x @ K + b)**2): H[k, l, m, n] = 2 (x^T x)[k, m] [l = n]; the gradient is
    2 x^T (x K + b), so the damped Newton step is -solve(H + d I, g)."""
    outcome = assert_passed(run_program(
        {"h": DENSE, "loss": "reduce_sum(h**2)"}, {"loss": ["h.kernel"]}, derivative="hessian",
        inputs={"x": {"value": X.tolist(), "kind": "constant"}}, newton_step=True, damping=0.5))
    hessian = 2 * np.einsum("km,ln->klmn", X.T @ X, np.eye(4))
    np.testing.assert_allclose(outcome.gradients["d2loss/dh.kernel2"], hessian, rtol=1e-10, atol=1e-10)
    gradient = 2 * X.T @ outcome.values["h"]  # (3, 4)
    step = -np.linalg.solve(hessian.reshape(12, 12) + 0.5 * np.eye(12), gradient.reshape(12)).reshape(3, 4)
    np.testing.assert_allclose(outcome.values["d2loss/dh.kernel2 Newton step"], step, rtol=1e-8, atol=1e-10)
    assert "d2loss/dh.kernel2 vs float64 central second differences (every element)" in _names(outcome)


def test_batch_jacobian_with_respect_to_a_kernel_whose_rows_are_the_batch() -> None:
    """x (3, 3) diagonal, Dense(2): y[b, i] = x[b, b] K[b, i] + bias[i], so example b reads only row b
    of K and batch_jacobian(y, K)[b, i, j] = x[b, b] [i = j]; every other block is zero."""
    diagonal = np.diag([2.0, -1.0, 0.5])
    outcome = assert_passed(run_program(
        {"y": {"layer": "Dense", "input": "x", "args": {"units": 2, "activation": "linear"}}},
        {"y": ["y.kernel"]}, inputs={"x": {"value": diagonal.tolist(), "kind": "constant"}},
        derivative="batch_jacobian"))
    want = np.einsum("b,ij->bij", np.diag(diagonal), np.eye(2))
    np.testing.assert_allclose(outcome.gradients["dy/dy.kernel"], want, rtol=1e-12)
    assert any(n.startswith("dy/dy.kernel") and "blocks zero" in n for n in _names(outcome))


def test_jvp_along_a_kernel_tangent_is_x_times_the_tangent() -> None:
    """y = x @ K + b pushed along U in K: J U = x @ U; the dot-product test against the tape's VJP."""
    tangent = np.arange(12.0).reshape(3, 4) / 10
    outcome = assert_passed(run_program(
        {"y": DENSE}, {"y": ["y.kernel"]}, inputs={"x": {"value": X.tolist(), "kind": "constant"}},
        derivative="jvp", tangents={"y.kernel": tangent.tolist()}))
    np.testing.assert_allclose(outcome.gradients["dy/dy.kernel"], X @ tangent, rtol=1e-12)
    assert any("dot-product test" in n for n in _names(outcome))


def test_a_jvp_still_refuses_a_step_as_its_source() -> None:
    with pytest.raises(ConfigError, match="input or a layer's variable; 'h' is a step"):
        run_program({"h": DENSE, "y": "h * 2"}, {"y": ["h"]},
                    inputs={"x": {"value": X.tolist(), "kind": "constant"}}, derivative="jvp")
