"""Derivative kinds with a Keras layer's variable as the source (``h.kernel``): shapes and values against
NumPy by hand, the float64 checks nudging the variable through the layer's float64 twin."""

from __future__ import annotations

import json
import re
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


def test_jacobian_of_a_tanh_dense_layer_by_projections_through_its_shared_nudges() -> None:
    """y = tanh(x @ K + b) above fd_max_elements: dy[i, j] / dK[k, l] = x[i, k] (1 - y[i, j]^2) when
    j = l, dy/db likewise without x; both checked by projections, the layer nudged once per sign."""
    outcome = assert_passed(run_program(
        {"y": {"layer": "Dense", "input": "x", "args": {"units": 4, "activation": "tanh"}}},
        {"y": ["y.kernel", "y.bias"]}, persistent=True, derivative="jacobian",
        inputs={"x": {"value": X.tolist(), "kind": "constant"}},
        overrides=["checks.fd_max_elements=2", "checks.projections=3"]))
    slope = 1 - outcome.values["y"] ** 2  # (2, 4)
    np.testing.assert_allclose(outcome.gradients["dy/dy.kernel"],
                               np.einsum("ik,ij,jl->ijkl", X, slope, np.eye(4)), rtol=1e-12)
    np.testing.assert_allclose(outcome.gradients["dy/dy.bias"], np.einsum("ij,jl->ijl", slope, np.eye(4)),
                               rtol=1e-12)
    for source in ("y.kernel", "y.bias"):
        name = f"dy/d{source} vs float64 central differences (3 random projections v.(J u))"
        assert name in _names(outcome)


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


def test_a_gradient_step_on_an_inner_tape_with_respect_to_an_input_and_to_a_step() -> None:
    """g = d out/d wrt on an inner tape, then the program's tape differentiates norm(g), by hand:
    out = sum(x**3): g = 3 x**2, d norm(g)/dx = 6 x g / norm(g); with h = 2 x and out = sum(h**3)
    differentiated in h: g = 3 h**2, d norm(g)/dx = 2 * 6 h g / norm(g)."""
    x = np.array([0.5, -1.0, 2.0])
    inputs = {"x": {"value": x.tolist()}}
    by_input = assert_passed(run_program(
        {"out": "reduce_sum(x**3)", "g": {"gradient": "out", "wrt": "x"}, "mag": "norm(g)"},
        {"mag": ["x"]}, inputs=inputs))
    g = 3 * x**2
    np.testing.assert_allclose(by_input.values["g"], g, rtol=1e-12)
    np.testing.assert_allclose(by_input.gradients["dmag/dx"], 6 * x * g / np.linalg.norm(g), rtol=1e-12)
    assert "dmag/dx vs float64 central differences (every element)" in _names(by_input)
    assert "nested float64 differences" in by_input.notes["dmag/dx"]
    by_step = assert_passed(run_program(
        {"h": "2 * x", "out": "reduce_sum(h**3)", "g": {"gradient": "out", "wrt": "h"}, "mag": "norm(g)"},
        {"mag": ["x"]}, inputs=inputs))
    h = 2 * x
    g = 3 * h**2
    np.testing.assert_allclose(by_step.gradients["dmag/dx"], 12 * h * g / np.linalg.norm(g), rtol=1e-12)
    assert "_inner['g'].watch(h)" in by_step.snippet


@pytest.mark.parametrize(("targets", "options", "message"), [
    ({"out": "reduce_sum(x**3)", "g": {"gradient": "out", "wrt": "x", "order": 2}}, {},
     "scenario.targets.g: unknown key 'order' (a gradient step takes gradient, wrt)"),
    ({"out": "reduce_sum(x**3)", "g": {"gradient": "x", "wrt": "x"}}, {},
     "scenario.targets.g.gradient: 'x' is not a step before g"),
    ({"out": "reduce_sum(x**3)", "g": {"gradient": "out", "wrt": "z"}}, {},
     "scenario.targets.g.wrt: 'z' is neither an input nor a step before g"),
    ({"out": "reduce_sum(x**3)", "g": {"gradient": "out", "wrt": "x"}}, {"derivative": "jacobian"},
     "scenario.targets.g: a gradient step runs inside the program's tape, which then takes gradients only"),
])
def test_bad_gradient_steps_are_refused_in_one_line(targets: dict[str, Any], options: dict[str, Any],
                                                    message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_program(targets, {"g": ["x"]}, inputs={"x": {"value": [0.5, -1.0]}}, **options)


@pytest.mark.slow
def test_input_gradient_regularisation_through_the_cli(cli: Callable[..., CliRun]) -> None:
    """guide/input_gradient, by hand: y = relu(x K + b), G = d sum(y**2)/dx = 2 y K^T, m = |G|; with
    M = [y > 0], dm/dK = (2 x^T ((G K) * M) + 2 G^T y) / m and dm/db = 2 sum_rows((G K) * M) / m."""
    run = cli("-m", "scenario=guide/input_gradient", "compile=eager,function", timeout=600)
    assert run.returncode == 0, run.stderr
    dirs = run.run_dirs()
    summary = json.loads((dirs[0].parent / "summary.json").read_text())
    assert summary["statuses"] == {"ok": 2}  # the sweep's records accept a gradient step
    (first,) = [d for d in dirs if d.name.startswith("0_")]
    found = json.loads((first / "results.json").read_text())
    assert "g1 = tape.gradient(out, x); g1_mag = norm(g1)" in (first / "report.md").read_text()
    x, kernel, bias = (np.array(found["inputs"][n]) for n in ("x", "y.kernel", "y.bias"))
    y = np.maximum(x @ kernel + bias, 0)
    g = 2 * y @ kernel.T
    m = np.linalg.norm(g)
    back = (g @ kernel) * (y > 0)
    np.testing.assert_allclose(found["values"]["g1"], g, rtol=1e-5, atol=1e-6)
    got_kernel, got_bias = (np.array(found["gradients"][k]) for k in ("dg1_mag/dy.kernel", "dg1_mag/dy.bias"))
    assert got_kernel.shape == (5, 10) and got_bias.shape == (10,)
    np.testing.assert_allclose(got_kernel, (2 * x.T @ back + 2 * g.T @ y) / m, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_bias, 2 * back.sum(axis=0) / m, rtol=1e-5, atol=1e-6)
    names = [c["name"] for c in found["checks"]]
    assert "dg1_mag/dy.kernel vs float64 central differences (every element)" in names
    assert_snippets_reproduce(dirs)
