"""Derivative kinds in programs: shapes and values against NumPy by hand, checks that catch a 1% error,
refusals in one line, and the guide's Jacobian, Hessian and batch Jacobian through the real CLI."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from runner.errors import ConfigError
from runner.oracles.derivative_checks import (
    batch_jacobian_check,
    dot_product_check,
    hessian_check,
    jacobian_check,
    jvp_check,
    second_differences,
    weighted,
)
from runner.oracles.tolerance import Tolerance
from runner.routines import derivative_kinds as kinds
from runner.scenarios.loading import memory_estimate
from tests.conftest import CliRun, assert_passed, assert_snippets_reproduce
from tests.test_language import program_run, run_program

X = np.array([[1.0, 2.0], [-0.5, 3.0], [2.5, -1.0]])  # (3, 2)
W = np.array([[0.5, -1.0, 2.0, 0.25], [1.5, 0.75, -0.5, 1.0]])  # (2, 4)
INPUTS = {"x": {"value": X.tolist(), "kind": "constant"}, "w": {"value": W.tolist()}}
TOL = Tolerance(rtol=1e-3, atol=1e-5)


def _names(outcome: Any) -> list[str]:
    return [c.name for c in outcome.checks]


def test_jacobian_of_a_matmul_is_x_times_the_identity() -> None:
    """d(x @ w)[i, j] / dw[k, l] = x[i, k] when j = l: x (outer) I, shape (3, 4, 2, 4)."""
    outcome = assert_passed(run_program({"y": "x @ w"}, {"y": ["w", "x"]}, inputs=INPUTS,
                                        derivative="jacobian", persistent=True))
    np.testing.assert_allclose(outcome.gradients["dy/dw"], np.einsum("ik,jl->ijkl", X, np.eye(4)), rtol=1e-12)
    # w.r.t. x: d y[i, j] / d x[k, l] = w[l, j] when i = k; x is a constant, so unwatched: None
    assert outcome.gradients["dy/dx"] is None
    assert "dy/dw vs float64 central differences (every element)" in _names(outcome)


def test_jacobian_with_respect_to_a_watched_input_and_both_pfor_paths() -> None:
    inputs = {"x": {"value": X.tolist(), "kind": "constant", "watch": True}, "w": {"value": W.tolist()}}
    outcome = assert_passed(run_program({"y": "tanh(x @ w)"}, {"y": ["x"]}, inputs=inputs,
                                        derivative="jacobian", experimental_use_pfor="both", persistent=True))
    slope = 1 - np.tanh(X @ W) ** 2  # (3, 4)
    want = np.einsum("ij,ik,lj->ijkl", slope, np.eye(3), W)
    np.testing.assert_allclose(outcome.gradients["dy/dx"], want, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(outcome.values["dy/dx (while_loop)"], want, rtol=1e-10, atol=1e-15)
    assert "dy/dx: pfor = while_loop" in _names(outcome)
    assert {"tape", "jacobian_while_loop"} <= set(outcome.timings)


def test_batch_jacobian_is_each_examples_jacobian() -> None:
    inputs = {"x": {"value": X.tolist(), "kind": "constant", "watch": True}, "w": {"value": W.tolist()}}
    outcome = assert_passed(run_program({"y": "tanh(x @ w)"}, {"y": ["x"]}, inputs=inputs,
                                        derivative="batch_jacobian"))
    slope = 1 - np.tanh(X @ W) ** 2
    np.testing.assert_allclose(outcome.gradients["dy/dx"], np.einsum("bj,kj->bjk", slope, W), rtol=1e-10)
    assert outcome.gradients["dy/dx"].shape == (3, 4, 2)
    assert any("other examples' blocks zero" in n for n in _names(outcome))


def test_batch_jacobian_check_sees_examples_that_are_not_independent() -> None:
    """x - mean(x) over the batch (what BatchNormalization does in training): the blocks off the diagonal
    are -1/3, not zero, and batch_jacobian (which differentiates the sum over the batch) reports 0 on
    the diagonal where each example's own derivative is 2/3: its check fails, by 2/3."""
    inputs = {"x": {"value": X.tolist(), "kind": "constant", "watch": True}}
    outcome = run_program({"y": "x - reduce_mean(x, axis=0)"}, {"y": ["x"]}, inputs=inputs,
                          derivative="batch_jacobian")
    (check,) = [c for c in outcome.checks if "blocks zero" in c.name]
    assert outcome.gradients["dy/dx"].tolist() == np.zeros((3, 2, 2)).tolist()
    assert not check.passed and check.max_abs_err == pytest.approx(2 / 3)


def test_hessian_of_a_quadratic_and_its_newton_step() -> None:
    """loss = sum((x @ w)**2): H[k, l, m, n] = 2 (x^T x)[k, m] [l = n]; the Newton step from w lands at
    the minimum of the damped quadratic model."""
    outcome = assert_passed(run_program({"y": "x @ w", "loss": "reduce_sum(y**2)"}, {"loss": ["w"]},
                                        inputs=INPUTS, derivative="hessian", newton_step=True, damping=0.5))
    hessian = 2 * np.einsum("km,ln->klmn", X.T @ X, np.eye(4))
    np.testing.assert_allclose(outcome.gradients["d2loss/dw2"], hessian, rtol=1e-12, atol=1e-12)
    gradient = 2 * X.T @ (X @ W)
    want = -np.linalg.solve(hessian.reshape(8, 8) + 0.5 * np.eye(8), gradient.reshape(8)).reshape(2, 4)
    np.testing.assert_allclose(outcome.values["d2loss/dw2 Newton step"], want, rtol=1e-10)
    names = _names(outcome)
    assert "d2loss/dw2 vs float64 central second differences (every element)" in names
    assert "d2loss/dw2 Newton step vs float64 solve from second and first differences" in names


def test_hessian_of_an_elementwise_function_is_diagonal() -> None:
    x = np.array([0.3, -1.2, 2.0])
    outcome = assert_passed(run_program({"y": "reduce_sum(sin(x) * x)"}, {"y": ["x"]},
                                        inputs={"x": {"value": x.tolist()}}, derivative="hessian"))
    want = np.diag(2 * np.cos(x) - x * np.sin(x))
    np.testing.assert_allclose(outcome.gradients["d2y/dx2"], want, rtol=1e-12, atol=1e-15)


def test_hvp_is_the_hessian_times_u_forward_over_reverse() -> None:
    """loss = sum((x @ w)**2) has H u = 2 x^T x u for u shaped like w; sum(sin(x) x) has the diagonal
    Hessian 2 cos x - x sin x, so H u is that times u, element by element."""
    u = np.arange(8.0).reshape(2, 4) / 4 - 1
    given = assert_passed(run_program({"y": "x @ w", "loss": "reduce_sum(y**2)"}, {"loss": ["w"]},
                                      inputs=INPUTS, derivative="hvp", tangents={"w": u.tolist()}))
    np.testing.assert_allclose(given.gradients["d2loss/dw2"], 2 * X.T @ X @ u, rtol=1e-12)
    names = _names(given)
    assert "d2loss/dw2 vs float64 central second differences times u (every element)" in names
    assert "d2loss/dw2 vs SymPy" in names
    x = np.array([0.3, -1.2, 2.0])
    drawn = assert_passed(run_program({"y": "reduce_sum(sin(x) * x)"}, {"y": ["x"]},
                                      inputs={"x": {"value": x.tolist()}}, derivative="hvp",
                                      overrides=["checks.fd_max_elements=2", "checks.projections=3"]))
    tangent = drawn.values["d2y/dx2 tangent"]
    assert tangent.shape == (3,) and np.std(tangent) > 0.1  # seeded N(0, 1)
    np.testing.assert_allclose(drawn.gradients["d2y/dx2"], (2 * np.cos(x) - x * np.sin(x)) * tangent,
                               rtol=1e-12)
    assert "d2y/dx2 vs float64 second differences (3 random projections v.(H u), u given)" in _names(drawn)


@pytest.mark.parametrize("projected", [False, True])
def test_a_wrong_second_derivative_fails_the_hvp(projected: bool) -> None:
    """Sin's gradient one percent off in TensorFlow's registry: H u of sum(sin(x) x) is off too, and both
    the whole second-difference Hessian and its projections see it."""
    from tests.planted import planted, scaled

    x = np.array([0.3, -1.2, 2.0])
    overrides = ["checks.fd_max_elements=2", "checks.projections=3"] if projected else []
    with planted("Sin", scaled(1.01)):
        outcome = run_program({"y": "reduce_sum(sin(x) * x)"}, {"y": ["x"]},
                              inputs={"x": {"value": x.tolist()}}, derivative="hvp",
                              tangents={"x": [1.0, -2.0, 0.5]}, overrides=overrides)
    failed = [c.name for c in outcome.checks if not c.passed]
    assert any(name.startswith("d2y/dx2 vs float64") for name in failed), failed
    assert "d2y/dx2 vs SymPy" in failed


def test_jvp_with_given_and_random_tangents() -> None:
    """J u for y = x @ w along u in w is x @ u, shaped like y; along a number, the number fills w."""
    u = np.arange(8.0).reshape(2, 4) / 4
    given = assert_passed(run_program({"y": "x @ w"}, {"y": ["w"]}, inputs=INPUTS, derivative="jvp",
                                      tangents={"w": u.tolist()}))
    np.testing.assert_allclose(given.gradients["dy/dw"], X @ u, rtol=1e-12)
    filled = assert_passed(run_program({"y": "x @ w"}, {"y": ["w"]}, inputs=INPUTS, derivative="jvp",
                                       tangents={"w": 2.0}))
    np.testing.assert_allclose(filled.gradients["dy/dw"], X @ np.full((2, 4), 2.0), rtol=1e-12)
    drawn = assert_passed(run_program({"y": "x @ w"}, {"y": ["w", "x"]}, inputs=INPUTS, derivative="jvp"))
    tangent = drawn.values["dy/dw tangent"]
    assert tangent.shape == (2, 4) and np.std(tangent) > 0.1
    np.testing.assert_allclose(drawn.gradients["dy/dw"], X @ tangent, rtol=1e-12)
    # A ForwardAccumulator watches its primal, tape or no tape: the constant x has a JVP too.
    np.testing.assert_allclose(drawn.gradients["dy/dx"], drawn.values["dy/dx tangent"] @ W, rtol=1e-12)
    names = _names(drawn)
    assert "dy/dw vs float64 directional central difference (every element)" in names
    assert "dy/dw: dot-product test v.(J u) = u.(J^T v) with the tape's VJP" in names


def test_unconnected_and_refused_results() -> None:
    inputs = {"x": {"value": [1.0, 2.0]}, "z": {"value": 3.0}}
    none = assert_passed(run_program({"y": "x**2"}, {"y": ["x", "z"]}, inputs=inputs, derivative="jacobian"))
    assert none.gradients["dy/dz"] is None and "does not depend on z" in none.notes["dy/dz"]
    zero = assert_passed(run_program({"y": "x**2"}, {"y": ["x", "z"]}, inputs=inputs, derivative="jacobian",
                                     unconnected_gradients="zero"))
    assert zero.gradients["dy/dz"].tolist() == [0.0, 0.0]  # target (2,) + source ()
    np.testing.assert_array_equal(zero.gradients["dy/dx"], [[2.0, 0.0], [0.0, 4.0]])
    refused = assert_passed(run_program({"y": "x**2", "s": "reduce_sum(y)"}, {"y": ["x"], "s": ["x"]},
                                        inputs=inputs, derivative="jacobian"))
    assert refused.gradients["ds/dx"] is None and "persistent=true" in refused.notes["ds/dx"]


# Checks against a wrong derivative: the tape over tf.custom_gradient whose backward pass is scaled.

def _cube(scale: float) -> Any:
    from runner.tfenv import tf

    @tf.custom_gradient
    def cube(x: Any) -> Any:
        return x**3, lambda dy: dy * 3 * x**2 * scale
    return cube


def _jacobian(scale: float, point: np.ndarray) -> np.ndarray:
    from runner.tfenv import tf

    x = tf.constant(point)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = _cube(scale)(x) * tf.reduce_sum(x)
    return tape.jacobian(y, x).numpy()


def _forward(p: np.ndarray) -> np.ndarray:
    return p**3 * np.sum(p)


@pytest.mark.parametrize("size", [6, 300])  # every element; random projections above fd_max_elements=256
@pytest.mark.parametrize(("scale", "passes"), [(1.0, True), (1.01, False)])
def test_jacobian_check_catches_one_percent(scale: float, passes: bool, size: int) -> None:
    point = np.linspace(-1.0, 1.5, size)
    check = jacobian_check("dy/dx", _jacobian(scale, point), _forward, point, TOL, 1e-6, 256, 4, 0)
    assert check.passed is passes
    assert ("every element" if size == 6 else "4 random projections v.(J u)") in check.name


@pytest.mark.parametrize(("scale", "passes"), [(1.0, True), (1.01, False)])
def test_batch_jacobian_check_catches_one_percent(scale: float, passes: bool) -> None:
    from runner.tfenv import tf

    point = np.linspace(-1.0, 1.5, 12).reshape(4, 3)
    x = tf.constant(point)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = _cube(scale)(x)
    got = tape.batch_jacobian(y, x).numpy()
    for limit in (256, 4):  # every element, then projections
        check = batch_jacobian_check("dy/dx", got, lambda p: p**3, point, TOL, 1e-6, limit, 4, 0)
        assert check.passed is passes, check


@pytest.mark.parametrize(("scale", "passes"), [(1.0, True), (1.01, False)])
def test_hessian_check_catches_one_percent(scale: float, passes: bool) -> None:
    """Nested tapes over the scaled cube: its gradient is off by 1%, and so is the Jacobian of it."""
    from runner.tfenv import tf

    point = np.linspace(-1.0, 1.5, 5)
    x = tf.constant(point)
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = tf.reduce_sum(_cube(scale)(x) * tf.sin(x))
        g = inner.gradient(y, x)
    got = outer.jacobian(g, x).numpy()
    f = weighted(lambda p: p**3 * np.sin(p), 1.0)
    full = hessian_check("d2y/dx2", got, f, point, TOL, second_differences(f, point), 4, 0)
    projected = hessian_check("d2y/dx2", got, f, point, TOL, None, 4, 0)
    assert full.passed is passes and projected.passed is passes
    assert "4 random projections v.(H u)" in projected.name


@pytest.mark.parametrize(("scale", "passes"), [(1.0, True), (1.01, False)])
def test_jvp_checks_catch_one_percent(scale: float, passes: bool) -> None:
    """A JVP off by 1% fails against the directional difference, and against an honest VJP."""
    from runner.tfenv import tf

    point, u = np.linspace(-1.0, 1.5, 7), np.linspace(2.0, -1.0, 7)
    x = tf.constant(point)
    with tf.autodiff.ForwardAccumulator(x, tf.constant(u)) as acc:
        y = x**3
    got = acc.jvp(y).numpy() * scale
    assert jvp_check("dy/dx", got, lambda p: p**3, point, u, TOL, 1e-6).passed is passes
    assert dot_product_check("dy/dx", got, lambda v: v * 3 * point**2, u, 0, TOL).passed is passes


def test_second_differences_are_exact_enough_for_float64() -> None:
    """A quartic's Hessian from second differences, within 1e-7 of the closed form."""
    point = np.array([0.5, -1.5, 2.0])
    f = weighted(lambda p: np.append(p**4, p[0] * p[1] * p[2]), 1.0)
    want = np.diag(12 * point**2) + np.array([[0, 2.0, -1.5], [2.0, 0, 0.5], [-1.5, 0.5, 0]])
    np.testing.assert_allclose(second_differences(f, point), want, atol=1e-7)


@pytest.mark.parametrize(
    ("targets", "gradients", "options", "message"),
    [
        ({"y": "x @ w"}, {"y": ["w"]}, {"derivative": "laplacian"},
         "scenario.derivative: unknown 'laplacian'"),
        ({"y": "x @ w"}, {"y": ["w"]}, {"derivative": "jvp", "tangents": {"w": [1.0, 2.0]}},
         "scenario.tangents.w: shape (2,) is not w's (2, 4)"),
        ({"y": "x @ w"}, {"y": ["w"]}, {"derivative": "jvp", "tangents": {"x": 1.0}},
         "'x' is not a source in scenario.gradients"),
        ({"y": "x @ w"}, {"y": ["w"]}, {"tangents": {"w": 1.0}}, "only derivative=jvp or hvp takes tangents"),
        ({"y": "x @ w"}, {"y": ["w"]}, {"derivative": "batch_jacobian"},
         "batch_jacobian needs y (3, 4) and w (2, 4) to share their first (batch) dimension"),
        ({"y": "reduce_sum(x)"}, {"y": ["x"]}, {"derivative": "batch_jacobian"},
         "batch_jacobian needs y () and x (3, 2)"),
        ({"y": "reduce_sum(x, axis=1)"}, {"y": ["x"]}, {"derivative": "batch_jacobian"},
         "batch_jacobian needs y (3,) and x (3, 2) to have a dimension after the batch's"),
        ({"y": "x @ w"}, {"y": ["w"]}, {"derivative": "jacobian", "experimental_use_pfor": False},
         "set scenario.persistent=true"),
        ({"y": "x @ w"}, {"y": ["w"]}, {"derivative": "jacobian", "experimental_use_pfor": "sometimes"},
         "'sometimes' is not true, false or both"),
        ({"y": "x @ w"}, {"y": ["w"]}, {"experimental_use_pfor": "both", "persistent": True},
         "derivative=gradient has no such choice"),
        ({"y": "x @ w"}, {"y": ["w"]}, {"derivative": "jacobian", "newton_step": True},
         "newton_step solves with a Hessian"),
        ({"y": "x @ w"}, {"y": ["w"]}, {"derivative": "hessian", "damping": -1.0},
         "scenario.damping must be"),
        ({"y": "x @ w"}, {"y": ["w"]}, {"derivative": "jvp", "output_gradients": {"y": 2.0}},
         "only gradient, hessian and hvp take a cotangent"),
        ({"y": "reduce_sum(x @ w)"}, {"y": ["w"]}, {"derivative": "hessian", "tangents": {"w": 1.0}},
         "only derivative=jvp or hvp takes tangents, not hessian"),
        ({"y": "x @ w", "z": "reduce_sum(y)"}, {"z": ["y"]}, {"derivative": "hvp"},
         "derivative=hvp pushes its tangent in at an input or a layer's variable; 'y' is a step"),
        ({"y": "x @ w", "z": "y * 2"}, {"z": ["y"]}, {"derivative": "jvp"}, "'y' is a step"),
        ({"y": "x @ w"}, {"y": ["w", "x"]}, {"derivative": "batch_jacobian"},
         "several sources need a persistent"),
    ],
)
def test_bad_derivative_options_are_refused_in_one_line(targets: dict[str, str], gradients: dict[str, Any],
                                                        options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        program_run(targets, gradients, inputs=INPUTS, **options)
    assert "\n" not in str(err.value)


def test_memory_estimate_counts_every_jacobian_element() -> None:
    """The benchmark's Jacobian, (64, 256) by (256, 256): 2^30 float32 elements, refused at 4 GiB."""
    inputs = {"x": {"init": "normal", "shape": [64, 256], "kind": "constant"},
              "w": {"init": "normal", "shape": [256, 256]}}
    with pytest.raises(ConfigError, match=r"jacobian results 8,192 MiB.*limits\.memory_mb=4096") as err:
        program_run({"y": "x @ w"}, {"y": ["w"]}, inputs=inputs, derivative="jacobian",
                    overrides=["dtype=float32", "checks.finite_differences=false"])
    assert "\n" not in str(err.value)
    run = program_run({"y": "x @ w"}, {"y": ["w"]}, inputs=inputs, derivative="jacobian",
                      overrides=["dtype=float32", "limits.memory_mb=65536"])
    parts = memory_estimate(run)
    assert parts["jacobian results"] == 2 * 4 * 2**30 and parts["jacobian checks"] == 2 * 8 * 2**30


@pytest.mark.slow
def test_guide_derivatives_through_the_cli(cli: Callable[..., CliRun]) -> None:
    run = cli("-m", "scenario=guide/jacobian_scalar_source,guide/jacobian_matrix,guide/hessian,"
                    "guide/batch_jacobian", timeout=600)
    assert run.returncode == 0, run.stderr
    found = (json.loads((d / "results.json").read_text()) for d in run.run_dirs())
    results = {r["scenario"]: r for r in found}
    assert all(r["status"] == "ok" and all(c["passed"] for c in r["checks"]) for r in results.values())

    scalar = results["guide_jacobian_scalar_source"]
    x = np.linspace(-10.0, 10.0, 201)
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(scalar["gradients"]["dy/ddelta"], s * (1 - s), rtol=1e-5, atol=1e-7)
    assert scalar["gradients"]["dy/ddelta"][100] == 0.25

    # Dense(10, relu): dy[i, j] / dK[k, l] = x[i, k] when j = l and y[i, j] > 0.
    matrix = results["guide_jacobian_matrix"]
    x, y = np.array(matrix["inputs"]["x"]), np.array(matrix["values"]["y"])
    assert np.array(matrix["inputs"]["y.kernel"]).shape == (5, 10)
    np.testing.assert_allclose(matrix["gradients"]["dy/dy.kernel"],
                               np.einsum("ik,jl,ij->ijkl", x, np.eye(10), y > 0), rtol=1e-7)
    assert np.shape(matrix["values"]["dy/dy.kernel (while_loop)"]) == (7, 10, 5, 10)
    assert {"tape", "jacobian_while_loop"} <= set(matrix["timings"])

    # The Hessian of mean(y**2) through two Dense(relu) layers, by hand: relu is piecewise linear, so
    # d2y/dw2 = 0 and H = (2/N) sum_ij A_ij A_ij^T with A_ij[k, l] = dy_ij/dw_kl = m2_ij u_lj m1_il x_ik.
    hessian = results["guide_hessian"]
    x, w, b, u, c = (np.array(hessian["inputs"][n])
                     for n in ("x", "h.kernel", "h.bias", "y.kernel", "y.bias"))
    a1 = x @ w + b
    a2 = np.maximum(a1, 0) @ u + c
    y, m1, m2 = np.maximum(a2, 0), (a1 > 0) * 1.0, (a2 > 0) * 1.0
    jac = np.einsum("ij,lj,il,ik->ijkl", m2, u, m1, x)  # (7, 6, 5, 8)
    want = 2 / y.size * np.einsum("ijkl,ijmn->klmn", jac, jac)
    got = np.array(hessian["gradients"]["d2loss/dh.kernel2"])
    assert got.shape == (5, 8, 5, 8)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    gradient = 2 / y.size * np.einsum("ij,ijkl->kl", y, jac)
    step = -np.linalg.solve(want.reshape(40, 40) + 1e-3 * np.eye(40), gradient.reshape(40)).reshape(5, 8)
    np.testing.assert_allclose(hessian["values"]["d2loss/dh.kernel2 Newton step"], step, rtol=1e-3, atol=1e-4)

    batch = results["guide_batch_jacobian"]
    x, w1, b1, w2, b2 = (np.array(batch["inputs"][n]) for n in ("x", "h.kernel", "h.bias", "y.kernel",
                                                                 "y.bias"))
    a1 = x @ w1 + b1
    h = np.where(a1 > 0, a1, np.exp(np.minimum(a1, 0)) - 1)
    a2 = h @ w2 + b2
    slope1, slope2 = (np.where(a > 0, 1, np.exp(np.minimum(a, 0))) for a in (a1, a2))
    want = np.einsum("bj,kj,bk,ik->bji", slope2, w2, slope1, w1)  # (7, 6, 5)
    np.testing.assert_allclose(batch["gradients"]["dy/dx"], want, rtol=1e-4, atol=1e-6)
    assert_snippets_reproduce(run.run_dirs())


@pytest.mark.parametrize(("kind", "sources", "options"), [
    ("jacobian", ["w", "x"], {"persistent": True}), ("batch_jacobian", ["x"], {}),
    ("hessian", ["w"], {}), ("hvp", ["w"], {}), ("jvp", ["w"], {})])
def test_sympy_checks_every_kind_while_the_program_is_small(kind: str, sources: list[str],
                                                           options: dict[str, Any]) -> None:
    inputs = {"x": {"value": X.tolist(), "kind": "constant", "watch": True}, "w": {"value": W.tolist()}}
    target = "reduce_sum(tanh(x @ w))" if kind in ("hessian", "hvp") else "tanh(x @ w)"
    outcome = assert_passed(run_program({"y": target}, {"y": sources}, inputs=inputs, derivative=kind,
                                        **options))
    label = kinds.label(kind, "y", sources[0])
    assert f"{label} vs SymPy" in _names(outcome)
    assert outcome.analytic[label].startswith(f"{label} = [")


@pytest.mark.slow
def test_hvp_through_the_cli_and_its_snippet(cli: Callable[..., CliRun]) -> None:
    """The dense program's H u for w and b: ok, checked, and the plain-TensorFlow script prints it."""
    run = cli("scenario=program", "scenario.derivative=hvp")
    results = run.ok()
    assert set(results["gradients"]) == {"d2loss/dw2", "d2loss/db2"}
    # loss = mean(y**2) over y's 2 elements with y = x @ w + b: d2loss/db2 = I, so H u = u for b
    np.testing.assert_allclose(results["gradients"]["d2loss/db2"], results["values"]["d2loss/db2 tangent"],
                               rtol=1e-6)
    assert_snippets_reproduce(run.run_dirs())


@pytest.mark.slow
def test_refusals_through_the_cli_exit_1_in_one_line(cli: Callable[..., CliRun]) -> None:
    for args, message in [
        (["scenario=guide/jacobian_matrix", "scenario.derivative=laplacian"],
         "scenario.derivative: unknown 'laplacian' (known: gradient, jacobian, batch_jacobian, hessian, "
         "hvp, jvp)"),
        (["scenario=guide/batch_jacobian", "scenario.gradients.y=[h.kernel]"],
         "scenario.gradients.y: batch_jacobian needs y (7, 6) and h.kernel (5, 8) to share their first "
         "(batch) dimension"),
        (["scenario=guide/jacobian_matrix", "scenario.derivative=jvp", "scenario.experimental_use_pfor=true",
          "scenario.gradients.y=[x]", "+scenario.tangents.x=[1.0, 2.0]"],
         "scenario.tangents.x: shape (2,) is not x's (7, 5)"),
    ]:
        run = cli(*args)
        output = run.stdout + run.stderr
        assert run.returncode == 1 and message in output, output
        assert "Traceback" not in output and run.results["status"] == "error"


@pytest.mark.parametrize("kind", ["jacobian", "batch_jacobian", "hessian", "hvp", "jvp"])
def test_every_kind_traced_or_in_float16_is_checked_and_agrees(kind: str) -> None:
    inputs = {"x": {"value": X.tolist(), "kind": "constant", "watch": True}, "w": {"value": W.tolist()}}
    target = "reduce_sum(tanh(x @ w))" if kind in ("hessian", "hvp") else "tanh(x @ w)"
    source = "w" if kind != "batch_jacobian" else "x"
    label = kinds.label(kind, "y", source)
    eager = run_program({"y": target}, {"y": [source]}, inputs=inputs, derivative=kind)
    traced = assert_passed(run_program({"y": target}, {"y": [source]}, inputs=inputs, derivative=kind,
                                       overrides=["compile=function"]))
    np.testing.assert_allclose(traced.gradients[label], eager.gradients[label], rtol=1e-12, atol=1e-15)
    half = assert_passed(run_program({"y": target}, {"y": [source]}, inputs=inputs, derivative=kind,
                                     overrides=["dtype=float16"]))
    assert half.gradients[label].dtype == np.float16 and 0 < half.reference[label] < 1e-2  # vs float64


def test_sympy_leaves_large_hessians_to_the_second_differences() -> None:
    """A (5, 4) source: 400 second derivatives, above the 256 SymPy builds in seconds."""
    inputs = {"w": {"init": "normal", "shape": [5, 4]}}
    outcome = assert_passed(run_program({"y": "reduce_sum(tanh(w))"}, {"y": ["w"]}, inputs=inputs,
                                        derivative="hessian"))
    assert "a Hessian of 400 second derivatives" in outcome.notes["d2y/dw2"]
    assert "d2y/dw2 vs SymPy" not in _names(outcome)
    w = outcome.inputs["w"].reshape(-1)
    want = np.diag(-2 * np.tanh(w) * (1 - np.tanh(w) ** 2)).reshape(5, 4, 5, 4)
    np.testing.assert_allclose(outcome.gradients["d2y/dw2"], want, rtol=1e-12, atol=1e-15)


def test_a_program_is_what_the_derivative_kinds_read_of_it() -> None:
    """Program satisfies ProgramView (each name it lists), and the kinds read nothing else of a program."""
    import ast
    from pathlib import Path

    from runner.routines.program import Program
    from runner.routines.program_view import ProgramView

    run = program_run({"y": "x @ w"}, {"y": ["w"]}, inputs=INPUTS, derivative="jacobian")
    assert isinstance(Program(run.scenario, run), ProgramView)
    listed = set(ProgramView.__annotations__) | {n for n in vars(ProgramView) if not n.startswith("_")}
    routines = Path(kinds.__file__).parent
    nodes = [node for name in ("derivative_kinds.py", "hessians.py")
             for node in ast.walk(ast.parse((routines / name).read_text()))]
    read = {node.attr for node in nodes if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == "program"}
    assert read and read <= listed, read - listed
