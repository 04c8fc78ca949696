"""Derivative kinds with a Keras layer's variable as the source (``h.kernel``): shapes and values against
NumPy by hand, the float64 checks nudging the variable through the layer's float64 twin."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest

from runner.errors import ConfigError
from tests.conftest import CliRun, assert_passed, assert_snippets_reproduce
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


def _elu(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """elu and its slope, by hand."""
    return np.where(a > 0, a, np.exp(np.minimum(a, 0)) - 1), np.where(a > 0, 1.0, np.exp(np.minimum(a, 0)))


def _batch_norm_jacobian(inputs: Mapping[str, Any]) -> np.ndarray:
    """dy/dx, (7, 6, 7, 5), of y = elu(bn(elu(x W1 + b1)) W2 + b2), bn in training mode, by hand:
    n = gamma z + beta with z = (h - mean) / s, s = sqrt(var + 0.001) over the batch, so
    dn[b, j] / dh[c, j] = gamma_j / s_j (1[b = c] - 1/B - z[b, j] z[c, j] / B)."""
    x, w1, b1, gamma, beta, w2, b2 = (np.asarray(inputs[n], dtype=np.float64) for n in (
        "x", "h.kernel", "h.bias", "n.gamma", "n.beta", "y.kernel", "y.bias"))
    h, slope1 = _elu(x @ w1 + b1)
    batch = x.shape[0]
    s = np.sqrt(h.var(axis=0) + 0.001)
    z = (h - h.mean(axis=0)) / s
    _, slope2 = _elu((gamma * z + beta) @ w2 + b2)
    dn = gamma / s * (np.eye(batch)[:, :, None] - 1 / batch - z[:, None, :] * z[None, :, :] / batch)  # b c j
    return np.einsum("bi,ji,bcj,cj,kj->bick", slope2, w2, dn, slope1, w1)


@pytest.mark.slow
def test_the_guides_layer_derivatives_and_the_batch_norm_caveat_through_the_cli(
        cli: Callable[..., CliRun]) -> None:
    """guide/batch_norm: the full Jacobian through BatchNormalization(training), every element by hand;
    its blocks between different examples are not zero, which batch_jacobian assumes."""
    run = cli("-m", "scenario=guide/batch_norm,guide/jacobian_matrix", timeout=600)
    assert run.returncode == 0, run.stderr
    found_all = (json.loads((d / "results.json").read_text()) for d in run.run_dirs())
    results = {r["scenario"]: r for r in found_all}
    assert all(r["status"] == "ok" for r in results.values())
    found = results["guide_batch_norm"]
    got, want = np.array(found["gradients"]["dy/dx"]), _batch_norm_jacobian(found["inputs"])
    assert got.shape == (7, 6, 7, 5)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    off = [np.abs(want[b, :, c, :]).max() for b in range(7) for c in range(7) if b != c]
    assert min(off) > 1e-3  # every pair of examples is coupled through the batch's mean and variance
    assert "dy/dx vs float64 central differences (every element)" in [c["name"] for c in found["checks"]]
    assert np.shape(results["guide_jacobian_matrix"]["gradients"]["dy/dy.kernel"]) == (7, 10, 5, 10)
    assert_snippets_reproduce(run.run_dirs())


@pytest.mark.slow
def test_batch_jacobian_through_a_training_batch_norm_fails_its_check() -> None:
    """The caveat, asked for: batch_jacobian differentiates the batch's sum of each output row, so its
    [c, i, :] is sum_b dy[b, i]/dx[c, :], not example c's own Jacobian; the check, which differentiates
    the whole batch, fails on the blocks between examples."""
    from runner import api

    result = api.run("guide/batch_norm", overrides=["scenario.derivative=batch_jacobian"])
    assert result.status == "check_failed"
    failed = [c for c in result.checks if not c.passed]
    assert [c.name for c in failed] == [
        "dy/dx vs float64 central differences (every element; other examples' blocks zero)"]
    full = _batch_norm_jacobian(result.to_dict()["inputs"])
    got = result.gradients["dy/dx"]
    assert got.shape == (7, 6, 5)
    np.testing.assert_allclose(got, full.sum(axis=0).transpose(1, 0, 2), rtol=1e-4, atol=1e-6)
    own = np.einsum("bibk->bik", full)  # each example's own block
    assert np.abs(got - own).max() > 1e-2
