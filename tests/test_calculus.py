"""Nested tapes: higher-order derivatives and the Hessian, against calculus done by hand."""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runner.outputs import jsonable
from runner.routines import run_routine
from tests.conftest import CliRun, assert_passed, assert_snippets_reproduce

Load = Callable[..., Any]
LINSPACE = "+scenario.inputs.x.linspace={start: -2.0, stop: 2.0, num: 21}"


def _names(outcome: Any) -> set[str]:
    return {c.name for c in outcome.checks}


def _exp_sin(x: float) -> dict[str, float]:
    """d^n/dx^n e^x sin x, by hand: each derivative turns (a sin + b cos) into ((a - b) sin + (a + b) cos)."""
    e, s, c = np.exp(x), np.sin(x), np.cos(x)
    return {"dy/dx": e * (s + c), "d2y/dx2": 2 * e * c, "d3y/dx3": 2 * e * (c - s), "d4y/dx4": -4 * e * s}


def _snippet_output(snippet: str) -> dict[str, Any]:
    """Run a snippet in this process (TensorFlow is loaded already) and parse what it prints."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"snippet_{os.getpid()}.py"
    path.write_text(snippet)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(path), run_name="__main__")
    finally:
        path.unlink()
    return json.loads(out.getvalue())


# ---------------------------------------------------------------- higher_order


def test_x_cubed_at_1_to_the_fourth_order(load: Load) -> None:
    outcome = assert_passed(run_routine(load("scenario=higher_order")))
    assert {k: float(v) for k, v in outcome.gradients.items()} == {
        "dy/dx": 3.0, "d2y/dx2": 6.0, "d3y/dx3": 6.0, "d4y/dx4": 0.0}
    assert outcome.analytic == {"dy/dx": "3*x**2", "d2y/dx2": "6*x", "d3y/dx3": "6", "d4y/dx4": "0"}
    assert {"d4y/dx4 vs SymPy", "d4y/dx4 vs finite differences of the tape's d3y/dx3"} <= _names(outcome)
    (curve,) = outcome.figures
    assert curve.filename == "higher_order.png" and curve.x[0] == -1.0 and curve.x[-1] == 3.0
    assert list(curve.series) == ["y = x**3", "dy/dx", "d2y/dx2", "d3y/dx3", "d4y/dx4"]
    np.testing.assert_allclose(curve.series["d2y/dx2"], 6 * curve.x, atol=1e-5)
    # tf.pow's gradient p*x**(p-1) reaches 0*x**-1 at the fourth order: NaN at x = 0, a gap in the plot.
    assert np.isnan(curve.series["d4y/dx4"][curve.x == 0.0]).all()
    assert "x=0" in outcome.notes["d4y/dx4"] and "0*x**-1" in outcome.notes["d4y/dx4"]


def test_abs_to_the_third_order_is_checked_not_an_error(load: Load) -> None:
    # y = |x|*x: the derivatives are 2|x|, 2 sign(x), then 0 away from 0 (SymPy writes DiracDelta).
    outcome = assert_passed(run_routine(load(
        "scenario=higher_order", "scenario.function='abs(x)*x'", "scenario.inputs.x.value=-1.5",
        "scenario.order=3")))
    assert {k: float(v) for k, v in outcome.gradients.items()} == {
        "dy/dx": 3.0, "d2y/dx2": -2.0, "d3y/dx3": 0.0}
    assert "d3y/dx3 vs SymPy" in _names(outcome)


@pytest.mark.parametrize("mode", ["eager", "function"])
def test_a_constant_derivative_has_a_zero_derivative_not_none(load: Load, mode: str) -> None:
    # x*x*x is three multiplications: its third derivative, 6, is built from constants only.
    outcome = assert_passed(run_routine(load("scenario=higher_order", "scenario.function='x*x*x'",
                                             "scenario.order=5",
                                             "scenario.inputs.x.value=2", f"compile={mode}")))
    got = {k: float(v) for k, v in outcome.gradients.items()}
    assert got == {"dy/dx": 12.0, "d2y/dx2": 12.0, "d3y/dx3": 6.0, "d4y/dx4": 0.0, "d5y/dx5": 0.0}
    assert set(outcome.notes) == {"d4y/dx4", "d5y/dx5"}
    assert "returned None: d3y/dx3 no longer depends on x" in outcome.notes["d4y/dx4"]
    assert "UnconnectedGradients.ZERO" in outcome.notes["d5y/dx5"]


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_exp_sin_fourth_order_in_float64(load: Load, mode: str) -> None:
    outcome = assert_passed(run_routine(load("scenario=higher_order", "scenario.function='exp(x)*sin(x)'",
                                             "scenario.inputs.x.value=0.7", "dtype=float64",
                                             f"compile={mode}")))
    for label, want in _exp_sin(0.7).items():
        assert outcome.gradients[label] == pytest.approx(want, rel=1e-13), label
    if mode != "eager":
        assert "tape_repeat" in outcome.timings


def test_eighth_order_in_float32_passes_finite_differences_at_every_order(load: Load) -> None:
    outcome = assert_passed(run_routine(load("scenario=higher_order", "scenario.function='exp(x)*sin(x)'",
                                             "scenario.order=8", "plots=false")))
    assert len([n for n in _names(outcome) if "finite differences" in n]) == 8
    # Four derivatives of e^x sin x multiply it by -4, so the eighth multiplies it by 16.
    assert outcome.gradients["d8y/dx8"] == pytest.approx(16 * np.exp(1) * np.sin(1), rel=1e-5)


def test_a_linspace_gives_every_derivative_at_every_point(load: Load) -> None:
    outcome = assert_passed(run_routine(load("scenario=higher_order", "scenario.function='tanh(x)'",
                                             "scenario.order=3",
                                             "scenario.inputs.x.value=null", LINSPACE, "dtype=float64")))
    x = outcome.inputs["x"]
    t = np.tanh(x)
    sech2 = 1 - t**2
    np.testing.assert_allclose(outcome.gradients["dy/dx"], sech2, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(outcome.gradients["d2y/dx2"], -2 * t * sech2, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(outcome.gradients["d3y/dx3"], -2 * sech2 * (1 - 3 * t**2), rtol=1e-12,
                               atol=1e-14)
    (curve,) = outcome.figures
    np.testing.assert_array_equal(curve.x, x)
    assert curve.x.shape == (21,) and len(curve.series) == 4


def test_an_input_called_y_makes_the_target_f(load: Load) -> None:
    outcome = assert_passed(run_routine(load("scenario=higher_order", "scenario.function='y**4'",
                                             "scenario.order=2",
                                             "~scenario.inputs.x", "+scenario.inputs.y.value=0.5")))
    assert outcome.gradients["df/dy"] == pytest.approx(0.5) and outcome.gradients["d2f/dy2"] == 3.0


def test_float16_overflow_fails_its_checks_and_says_why(load: Load) -> None:
    outcome = run_routine(load("scenario=higher_order", "scenario.function='exp(x)'",
                               "scenario.inputs.x.value=12", "dtype=float16", "plots=false"))
    assert not outcome.passed
    failed = {c.name: c.detail for c in outcome.checks if not c.passed}
    assert "overflows beyond 65504" in failed["d3y/dx3 finite"]
    assert "largest magnitude 1.63e+05" in failed["y finite"]  # e**12


# ---------------------------------------------------------------- hessian

ROSENBROCK_G = np.array([-215.6, -88.0])
ROSENBROCK_H = np.array([[1330.0, 480.0], [480.0, 200.0]])


def _rosenbrock(x: float, y: float) -> float:
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def test_rosenbrock_at_its_classic_start(load: Load) -> None:
    outcome = assert_passed(run_routine(load("scenario=hessian")))
    np.testing.assert_allclose(outcome.gradients["df/dX"], ROSENBROCK_G, rtol=1e-6)
    np.testing.assert_allclose(outcome.gradients["d2f/dX2"], ROSENBROCK_H, rtol=1e-6)
    assert outcome.values["f"] == pytest.approx(24.2, rel=1e-6)
    low, high = outcome.values["eigenvalues"]
    assert low + high == pytest.approx(1530.0, rel=1e-6)  # the trace
    assert low * high == pytest.approx(35600.0, rel=1e-5)  # the determinant
    assert 0 < low < high and "positive definite" in outcome.notes["d2f/dX2"]
    step = np.linalg.solve(ROSENBROCK_H + 1e-6 * np.eye(2), -ROSENBROCK_G)
    np.testing.assert_allclose(outcome.values["newton_step"], step, rtol=1e-5)
    # H^-1 (-g) by Cramer's rule, det H = 35600; the damping moves it by about 1e-6 / 23.6.
    assert step == pytest.approx([880 / 35600, 13552 / 35600], rel=1e-6)
    assert outcome.values["f_after_step"] == pytest.approx(_rosenbrock(-1.2 + step[0], 1.0 + step[1]),
                                                            rel=1e-5)
    assert outcome.values["f_after_step"] == pytest.approx(4.7319, abs=1e-4)
    assert {"d2f/dX2 symmetric: H against H^T", "d2f/dX2 vs SymPy (sp.hessian)",
            "d2f/dX2 vs finite differences of the tape's df/dX", "df/dX vs finite differences",
            "Newton step vs NumPy float64 solve from SymPy's H and g"} <= _names(outcome)
    (heatmap,) = outcome.figures
    assert heatmap.labels == ["x", "y"] and heatmap.filename == "hessian.png"
    assert outcome.analytic["d2f/dX2"] == "[[1200*x**2 - 400*y + 2, -400*x], [-400*x, 200]]"


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_rosenbrock_in_float64(load: Load, mode: str) -> None:
    outcome = assert_passed(run_routine(load("scenario=hessian", "dtype=float64", f"compile={mode}")))
    np.testing.assert_allclose(outcome.gradients["df/dX"], ROSENBROCK_G, rtol=1e-13)
    np.testing.assert_allclose(outcome.gradients["d2f/dX2"], ROSENBROCK_H, rtol=1e-13)
    np.testing.assert_allclose(outcome.values["newton_step"],
                               np.linalg.solve(ROSENBROCK_H + 1e-6 * np.eye(2), -ROSENBROCK_G), rtol=1e-12)


@pytest.mark.parametrize(("dtype", "rtol"), [("float16", 2e-3), ("bfloat16", 2e-2)])
def test_rosenbrock_in_16_bits_solves_the_step_in_float32(load: Load, dtype: str, rtol: float) -> None:
    outcome = assert_passed(run_routine(load("scenario=hessian", f"dtype={dtype}")))
    np.testing.assert_allclose(outcome.gradients["d2f/dX2"], ROSENBROCK_H, rtol=rtol)
    assert outcome.values["newton_step"].dtype == np.float32
    assert f"solved in float32: tf.linalg.solve has no {dtype} kernel" in outcome.notes["df/dX"]


def test_float16_overflow_is_a_failed_check_not_a_crash(load: Load) -> None:
    # At x = -12, 100*(y - x**2)**2 is about 2e6, far past float16's largest number, 65504.
    outcome = run_routine(load("scenario=hessian", "dtype=float16", "scenario.inputs.x.value=-12"))
    assert not outcome.passed
    failed = {c.name: c.detail for c in outcome.checks if not c.passed}
    assert "float16 overflows beyond 65504" in failed["f finite"]
    assert "eigenvalues" not in outcome.values


def test_a_saddle_has_eigenvalues_of_both_signs(load: Load) -> None:
    outcome = assert_passed(run_routine(load("scenario=hessian", "scenario.function='x**2 - y**2'",
                                             "dtype=float64")))
    np.testing.assert_array_equal(outcome.gradients["d2f/dX2"], [[2.0, 0.0], [0.0, -2.0]])
    np.testing.assert_array_equal(outcome.values["eigenvalues"], [-2.0, 2.0])
    assert "saddle" in outcome.notes["d2f/dX2"]
    # A quadratic's Newton step lands on its stationary point, the origin.
    np.testing.assert_allclose(outcome.values["newton_step"], [1.2, -1.0], rtol=1e-5)


def test_three_inputs_by_hand(load: Load) -> None:
    outcome = assert_passed(run_routine(load("scenario=hessian", "scenario.function='x*y*z + sin(x*z)'",
                                             "+scenario.inputs.z.value=0.5", "dtype=float64")))
    x, y, z = -1.2, 1.0, 0.5
    s, c = np.sin(x * z), np.cos(x * z)
    want = [[-z * z * s, z, y + c - x * z * s],
            [z, 0.0, x],
            [y + c - x * z * s, x, -x * x * s]]
    np.testing.assert_allclose(outcome.gradients["d2f/dX2"], want, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(outcome.gradients["df/dX"], [y * z + z * c, x * z, x * y + x * c], rtol=1e-13)


def test_a_linear_function_needs_damping(load: Load) -> None:
    singular = run_routine(load("scenario=hessian", "scenario.function='x + y'", "scenario.damping=0"))
    (failed,) = [c for c in singular.checks if not c.passed]
    assert failed.name.startswith("Newton step") and "singular" in failed.detail
    np.testing.assert_array_equal(singular.gradients["d2f/dX2"], np.zeros((2, 2)))
    damped = assert_passed(run_routine(load("scenario=hessian", "scenario.function='x + y'",
                                            "dtype=float64")))
    np.testing.assert_allclose(damped.values["newton_step"], [-1e6, -1e6], rtol=1e-12)


# ---------------------------------------------------------------- snippets, in this process

#: Hessian inputs named like the snippet's own variables.
SNIPPET_NAMES = ("~scenario.inputs.x", "~scenario.inputs.y", "+scenario.inputs.g.value=1.0",
                 "+scenario.inputs.H.value=2.0", "+scenario.inputs.X.value=3.0",
                 "+scenario.inputs.step.value=0.5")


@pytest.mark.parametrize(
    "overrides",
    [
        ("scenario=higher_order", "scenario.function='x*x*x'", "scenario.order=5"),
        ("scenario=higher_order", "compile=xla", "scenario.function='exp(x)*sin(x)'"),
        ("scenario=higher_order", "scenario.function='tanh(x)'", "scenario.inputs.x.value=null", LINSPACE,
         "dtype=float64"),
        # inputs named like the snippet's own variables, which step aside
        ("scenario=higher_order", "scenario.function='order**2 + sin(order)'",
         "~scenario.inputs.x", "+scenario.inputs.order.value=0.3"),
        ("scenario=hessian", "compile=xla"),
        ("scenario=hessian", "dtype=bfloat16"),
        ("scenario=hessian", "scenario.function='g*H + X**2*step'", "dtype=float64", *SNIPPET_NAMES),
    ],
)
def test_snippets_print_the_same_numbers(load: Load, overrides: tuple[str, ...]) -> None:
    outcome = run_routine(load(*overrides, "checks.finite_differences=false", "plots=false"))
    assert _snippet_output(outcome.snippet) == jsonable(outcome.gradients)


def test_a_snippet_names_itself_around_the_inputs(load: Load) -> None:
    outcome = run_routine(load("scenario=hessian", "scenario.function='g*H + X**2*step'", *SNIPPET_NAMES,
                               "checks.finite_differences=false", "plots=false"))
    assert set(outcome.gradients) == {"dy/dX_", "d2y/dX_2"}
    assert "def step_(X_):" in outcome.snippet and "g, H, X, step = tf.unstack(X_)" in outcome.snippet


# ---------------------------------------------------------------- the command line

Cli = Callable[..., CliRun]


@pytest.mark.slow
def test_an_unseen_function_to_the_fourth_order_from_the_command_line(cli: Cli) -> None:
    run = cli("scenario=higher_order", "scenario.function=exp(x)*sin(x)", "scenario.order=4", "dtype=float64")
    results = run.ok()
    for label, want in _exp_sin(1.0).items():
        assert results["gradients"][label] == pytest.approx(want, rel=1e-13), label
    assert results["analytic"]["d4y/dx4"] == "-4*exp(x)*sin(x)"
    assert results["plots"] == ["higher_order.png"]
    assert_snippets_reproduce(run.run_dirs())


@pytest.mark.slow
def test_rosenbrock_hessian_from_the_command_line(cli: Cli) -> None:
    run = cli("scenario=hessian")
    results = run.ok()
    np.testing.assert_allclose(results["gradients"]["df/dX"], ROSENBROCK_G, rtol=1e-6)
    np.testing.assert_allclose(results["gradients"]["d2f/dX2"], ROSENBROCK_H, rtol=1e-6)
    assert results["inputs"] == {"x": pytest.approx(-1.2), "y": 1.0}
    assert results["plots"] == ["hessian.png"]
    assert "eigenvalues" in results["values"] and "newton_step" in results["values"]
    assert_snippets_reproduce(run.run_dirs())
