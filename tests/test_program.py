"""The program routine in process: inputs, tape options, predicted Nones, both oracles, projections.

Expected numbers are the guide's (TensorFlow's autodiff guides) or derived here with NumPy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from runner.errors import ConfigError
from runner.oracles.differences import float64_differences
from runner.oracles.projections import projection_check
from runner.oracles.tolerance import Tolerance
from runner.routines import run_routine
from runner.scenarios.loading import memory_estimate
from tests.conftest import assert_passed
from tests.test_language import program_run, run_program


def test_dense_by_hand_matches_numpy(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=program")))
    x = np.array([[1.0, 2.0, 3.0]])
    limit = np.sqrt(6.0 / (3 + 2))  # glorot_uniform for a (3, 2) kernel
    w = np.random.default_rng([0, *b"w"]).uniform(-limit, limit, (3, 2))
    assert np.all(np.abs(outcome.inputs["w"]) <= limit)
    np.testing.assert_allclose(outcome.inputs["w"], w, rtol=1e-6)
    y = x @ w  # b is zeros
    np.testing.assert_allclose(outcome.values["loss"], np.mean(y**2), rtol=1e-5)
    np.testing.assert_allclose(outcome.gradients["dloss/dw"], x.T @ y, rtol=1e-5)  # d mean(y^2)/dy = y
    np.testing.assert_allclose(outcome.gradients["dloss/db"], y[0], rtol=1e-5)
    names = {c.name for c in outcome.checks}
    assert {"dloss/dw vs SymPy", "dloss/dw vs float64 central differences (every element)"} <= names


def test_the_same_program_compiled_gives_the_same_numbers(load: Callable[..., Any]) -> None:
    eager = run_routine(load("scenario=program"))
    graph = assert_passed(run_routine(load("scenario=program", "compile=function")))
    np.testing.assert_allclose(graph.gradients["dloss/dw"], eager.gradients["dloss/dw"], rtol=1e-6)
    cond = assert_passed(run_program({"y": "x**2 if x > 0 else -x"}, {"y": ["x"]},
                                     inputs={"x": {"value": 3.0}}, overrides=["compile=function"]))
    assert cond.gradients["dy/dx"] == 6.0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_programs_are_checked_and_compared_with_float64(load: Callable[..., Any], dtype: str) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/multiple_targets", f"dtype={dtype}")))
    assert outcome.gradients["dys/dx"] == pytest.approx(3.75, rel=1e-2)
    assert set(outcome.reference) == {"dy0/dx", "dy1/dx", "dys/dx", "dyd/dx"}  # the same job in float64


def test_gradient_with_respect_to_an_intermediate() -> None:
    """Guide: y = x*x, z = y*y at x = 3; dz/dy = 2y = 18."""
    outcome = assert_passed(run_program({"y": "x * x", "z": "y * y"}, {"z": ["y"]},
                                        inputs={"x": {"value": 3.0}}))
    assert outcome.gradients == {"dz/dy": 18.0}


def test_persistent_tape_answers_several_gradients() -> None:
    """Guide: x = [1, 3], y = x*x, z = y*y; dz/dx = 4x^3 = [4, 108], dy/dx = [2, 6]."""
    x = {"value": [1.0, 3.0], "kind": "constant", "watch": True}
    outcome = assert_passed(run_program({"y": "x * x", "z": "y * y"}, {"z": ["x"], "y": ["x"]},
                                        inputs={"x": x}, persistent=True))
    assert outcome.gradients["dz/dx"].tolist() == [4.0, 108.0]
    assert outcome.gradients["dy/dx"].tolist() == [2.0, 6.0]


def test_second_gradient_on_a_non_persistent_tape_is_the_expected_error() -> None:
    outcome = assert_passed(run_program({"y": "x * x", "z": "y * y"}, {"z": ["x"], "y": ["x"]},
                                        inputs={"x": {"value": 3.0}}))
    assert outcome.gradients == {"dz/dx": 108.0, "dy/dx": None}
    (check,) = [c for c in outcome.checks if "non-persistent" in c.name]
    assert check.passed and "non-persistent GradientTape can only be used to compute one set" in check.detail
    assert "persistent=true" in outcome.notes["dy/dx"]


def test_what_the_tape_watches() -> None:
    """Guide: a variable, a non-trainable variable and constants; y = x0**2 + x1**2 + x2**2 at 3."""
    inputs = {"x0": {"value": 3.0}, "x1": {"value": 3.0, "kind": "nontrainable"},
              "x2": {"value": 3.0, "kind": "constant"}, "x3": {"value": 3.0, "kind": "constant"}}
    outcome = assert_passed(run_program({"y": "x0**2 + x1**2 + x2**2"}, {"y": ["x0", "x1", "x2", "x3"]},
                                        inputs=inputs))
    assert outcome.gradients == {"dy/dx0": 6.0, "dy/dx1": None, "dy/dx2": None, "dy/dx3": None}
    assert "trainable=False" in outcome.notes["dy/dx1"]
    assert "tf.constant" in outcome.notes["dy/dx2"]
    assert "does not depend on x3" in outcome.notes["dy/dx3"]


def test_watch_accessed_variables_false() -> None:
    """Guide: x0 = 0 unwatched, x1 = 10 watched; y = sin(x0) + softplus(x1) -> None, sigmoid(10)."""
    outcome = assert_passed(run_program(
        {"y": "sin(x0) + softplus(x1)"}, {"y": ["x0", "x1"]}, watch_accessed_variables=False,
        inputs={"x0": {"value": 0.0}, "x1": {"value": 10.0, "watch": True}}))
    assert outcome.gradients["dy/dx0"] is None
    assert outcome.gradients["dy/dx1"] == pytest.approx(1 / (1 + np.exp(-10.0)), rel=1e-12)


def test_unconnected_zero_on_a_two_point_linspace() -> None:
    """Guide: z = y*y never reads x = [2, 2]; unconnected_gradients=zero gives [0, 0]."""
    outcome = assert_passed(run_program(
        {"z": "y * y"}, {"z": ["x", "y"]}, unconnected_gradients="zero",
        inputs={"x": {"linspace": {"start": 2, "stop": 2, "num": 2}}, "y": {"value": 3.0}}))
    assert outcome.gradients["dz/dx"].tolist() == [0.0, 0.0]
    assert outcome.gradients["dz/dy"] == 6.0
    assert "unconnected_gradients=zero" in outcome.notes["dz/dx"]


def test_output_gradients_weight_the_target() -> None:
    """x * [3, 4] at 2: the gradient of the sum is 7 (guide); weighted by [1, 0.5] it is 3 + 2 = 5."""
    plain = assert_passed(run_program({"y": "x * [3.0, 4.0]"}, {"y": ["x"]}, inputs={"x": {"value": 2.0}}))
    assert plain.gradients["dy/dx"] == 7.0
    weighted = assert_passed(run_program({"y": "x * [3.0, 4.0]"}, {"y": ["x"]}, inputs={"x": {"value": 2.0}},
                                         output_gradients={"y": [1.0, 0.5]}))
    assert weighted.gradients["dy/dx"] == 5.0


def test_large_sources_are_checked_by_random_projections() -> None:
    outcome = assert_passed(run_program(
        {"y": "reduce_sum(tanh(x @ w))"}, {"y": ["x", "w"]},
        inputs={"x": {"init": "normal", "shape": [40, 10]}, "w": {"init": "uniform", "shape": [10, 3]}}))
    names = [c.name for c in outcome.checks]
    assert "dy/dx vs float64 central differences (1 random projection v.(J u))" in names  # 400 > 256
    assert "dy/dw vs float64 central differences (every element)" in names  # 30 elements
    for label in ("dy/dx", "dy/dw"):  # in each gradient's note, which the report shows
        assert "SymPy check skipped" in outcome.notes[label] and "430 elements" in outcome.notes[label]
    x, w = outcome.inputs["x"].astype(np.float64), outcome.inputs["w"].astype(np.float64)
    want = (1 - np.tanh(x @ w) ** 2) @ w.T
    np.testing.assert_allclose(outcome.gradients["dy/dx"], want, rtol=1e-4, atol=1e-6)


def _tape_vjp(scale: float) -> Callable[[np.ndarray], np.ndarray]:
    """v -> v . d(x**3)/dx from a tape over tf.custom_gradient, its backward pass scaled by ``scale``."""
    from runner.tfenv import tf

    @tf.custom_gradient
    def cube(x: Any) -> Any:
        return x**3, lambda dy: dy * 3 * x**2 * scale

    x = tf.constant(np.linspace(-1.0, 1.5, 500), tf.float64)

    def vjp(v: np.ndarray) -> np.ndarray:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = cube(x)
        return tape.gradient(y, x, output_gradients=tf.constant(v, tf.float64)).numpy()
    return vjp


@pytest.mark.parametrize(("scale", "passes"), [(1.0, True), (1.01, False)])
def test_projections_catch_a_gradient_off_by_one_percent(scale: float, passes: bool) -> None:
    point = np.linspace(-1.0, 1.5, 500)
    vjp = _tape_vjp(scale)
    got = vjp(np.ones(500))
    check = projection_check("dy/dx", got, lambda p: p**3, vjp, point, np.ones(500),
                             Tolerance(rtol=1e-3, atol=1e-5), 1e-6, 4, seed=0)
    assert check.passed is passes
    assert "random projection" in check.name


def test_float64_differences_at_every_element() -> None:
    point = np.array([[0.5, -1.0], [2.0, 0.25]])
    grad = float64_differences(lambda p: np.sin(p) * p, point, np.ones((2, 2)), 1e-6)
    np.testing.assert_allclose(grad, np.cos(point) * point + np.sin(point), rtol=1e-8)


def test_memory_estimate_covers_programs() -> None:
    run = program_run({"y": "x @ x", "z": "reduce_sum(y)"},
                      inputs={"x": {"init": "ones", "shape": [1000, 1000]}}, overrides=["dtype=float32"])
    parts = memory_estimate(run)
    # Nodes: x (1e6), x (1e6), x @ x (1e6), y (1e6), reduce_sum (1); the input 1e6 besides.
    assert parts["tape"] == 2 * 4 * (4_000_001 + 1_000_000)
    with pytest.raises(ConfigError, match=r"limits\.memory_mb=64"):
        program_run({"y": "x @ x"}, inputs={"x": {"init": "ones", "shape": [3000, 3000]}},
                    overrides=["limits.memory_mb=64"])


@pytest.mark.parametrize(
    ("inputs", "targets", "options", "message"),
    [
        ({"x": {"init": "he_normal", "shape": [2]}}, {"y": "x"}, {}, "unknown initialiser 'he_normal'"),
        ({"x": {"init": "ones"}}, {"y": "x"}, {}, "an initialiser needs positive sizes"),
        ({"x": {"value": 1.0, "init": "ones", "shape": [2]}}, {"y": "x"}, {}, "exactly one of value"),
        ({"x": {"value": [[1.0, 2.0], [3.0]]}}, {"y": "x"}, {}, "rectangular"),
        ({"x": {"value": [1.0, "a"]}}, {"y": "x"}, {}, "is not a finite number"),
        ({"x": {"value": 1.0, "kind": "tensor"}}, {"y": "x"}, {}, "scenario.inputs.x.kind"),
        ({"x": {"value": 1.0}}, {"x": "x"}, {}, "already an input"),
        ({"x": {"value": 1.0}}, {"y": "z", "z": "x"}, {}, "unknown name 'z'"),
        ({"x": {"value": 1.0}}, {"y": "x", "z": "y"}, {"gradients": {"y": ["z"]}}, "neither an input nor"),
        ({"x": {"value": 1.0}}, {"y": "x"}, {"gradients": {"q": ["x"]}}, "no step named 'q'"),
        ({"x": {"value": [1.0, 2.0]}}, {"y": "x"},
         {"gradients": {"y": ["x"]}, "output_gradients": {"y": [1, 2, 3]}}, "does not broadcast to y's (2,)"),
        ({"x": {"value": 1.0}}, {"y": "x"}, {"unconnected_gradients": "zeros"}, "unconnected_gradients"),
    ],
)
def test_bad_programs_are_refused_in_one_line(inputs: dict[str, Any], targets: dict[str, str],
                                              options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        program_run(targets, inputs=inputs, **options)
    assert "\n" not in str(err.value)


def test_help_lists_programs_and_the_guide_scenarios() -> None:
    from pathlib import Path

    from runner.cli.help import help_text
    from runner.cli.main import CONFIG_DIR

    text = help_text(Path(CONFIG_DIR))
    guide = sorted(p.stem for p in (Path(CONFIG_DIR) / "scenario" / "guide").glob("*.yaml"))
    assert len(guide) == 36
    assert all(f"  guide/{name} " in text for name in guide)
    assert "experiment=tf_guide" in text and "  program " in text and "  tf_guide " in text


def test_each_routine_is_declared_once_by_its_schema() -> None:
    import dataclasses
    import importlib.util

    from runner.scenarios.schema import CASES, SCENARIO_SCHEMAS

    assert list(SCENARIO_SCHEMAS) == [
        "linear", "higher_order",
        "stop_gradient", "custom_gradient", "pitfalls", "control_flow", "program"]
    for name, schema in SCENARIO_SCHEMAS.items():
        fields = {f.name: f for f in dataclasses.fields(schema)}
        assert fields["routine"].default == name
        assert importlib.util.find_spec(f"runner.routines.{name}") is not None, name
        assert ("case" in fields) == (name in CASES), name
    assert CASES["control_flow"] == ("python_for", "while_loop")


def test_sympy_is_skipped_where_its_expressions_would_explode() -> None:
    """Six chained 6x6 matmuls: 36 symbols, but each element of the result sums 6^5 products."""
    chain = run_program({"y": "reduce_sum(x @ x @ x @ x @ x @ x)"}, {"y": ["x"]},
                        inputs={"x": {"init": "uniform", "shape": [6, 6]}})
    assert "would expand to about" in chain.notes["dy/dx"]
    assert_passed(chain)  # still checked, by float64 differences at every element
    small = run_program({"y": "reduce_sum(x @ x)"}, {"y": ["x"]},
                        inputs={"x": {"init": "uniform", "shape": [6, 6]}})
    assert "dy/dx" not in small.notes and any(c.name == "dy/dx vs SymPy" for c in small.checks)


def test_many_steps_that_share_earlier_steps_stay_fast() -> None:
    """Forty steps, each reading the two before it (a walk without memory would take 2^40 steps)."""
    targets = {"s0": "x", "s1": "x * 1"}
    targets.update({f"s{i}": f"s{i - 1} + s{i - 2}" for i in range(2, 40)})
    outcome = assert_passed(run_program(targets, {"s39": ["x"]}, inputs={"x": {"value": 1.0}},
                                        overrides=["checks.analytic=false"]))
    fib = [1, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])
    assert outcome.gradients["ds39/dx"] == fib[39]  # ds_i/dx is the i-th Fibonacci number
