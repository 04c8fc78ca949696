"""Nested tapes: higher-order derivatives and the Hessian (a program), against calculus done by hand."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from runner.outputs.files import jsonable
from runner.routines import run_routine
from runner.scenarios.loading import load_run
from runner.scenarios.schema import ProgramScenario
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
    assert {"d4y/dx4 vs SymPy", "d4y/dx4 vs float64 central differences of SymPy's d3y/dx3",
            "y vs float64 forward pass"} <= _names(outcome)
    (curve,) = outcome.figures
    assert curve.filename == "higher_order.png" and curve.x[0] == -1.0 and curve.x[-1] == 3.0
    assert list(curve.series) == ["y = x**3", "dy/dx", "d2y/dx2", "d3y/dx3", "d4y/dx4"]
    np.testing.assert_allclose(curve.series["d2y/dx2"], 6 * curve.x, atol=1e-5)
    # tf.pow's gradient p*x**(p-1) reaches 0*x**-1 at the fourth order: NaN at x = 0, a gap in the plot.
    assert np.isnan(curve.series["d4y/dx4"][curve.x == 0.0]).all()
    assert "x=0" in outcome.notes["d4y/dx4"] and "multiplies 0 by 0**-1 = inf" in outcome.notes["d4y/dx4"]


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


def test_eighth_order_in_float32_passes_float64_differences_at_every_order(load: Load) -> None:
    outcome = assert_passed(run_routine(load("scenario=higher_order", "scenario.function='exp(x)*sin(x)'",
                                             "scenario.order=8", "plots=false")))
    assert len([n for n in _names(outcome) if "vs float64 central differences of SymPy" in n]) == 8
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


def test_a_nan_far_inside_the_range_is_blamed_on_the_derivative_graph_not_overflow(load: Load) -> None:
    outcome = run_routine(load("scenario=higher_order", "scenario.inputs.x.value=null",
                               "+scenario.inputs.x.linspace={start: -1, stop: 1, num: 5}", "plots=true"))
    failed = {c.name: c.detail for c in outcome.checks if not c.passed}
    assert "d4y/dx4 finite" in failed and "overflows" not in failed["d4y/dx4 finite"]
    assert ("largest magnitude 0), far inside float32's range: TensorFlow's derivative graph itself met "
            "0*inf") in failed["d4y/dx4 finite"]  # x**3's fourth derivative is 0 everywhere
    assert outcome.notes["d4y/dx4"].endswith("multiplies 0 by 0**-1 = inf at 0.")
    assert np.isnan(outcome.gradients["d4y/dx4"][2]) and outcome.gradients["d4y/dx4"][0] == 0.0  # x = 0, -1


# ---------------------------------------------------------------- hessian (a program over one vector X)

def _rosenbrock(x: Any, y: Any) -> Any:
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _rosenbrock_g(x: float, y: float) -> np.ndarray:
    """(df/dx, df/dy), by hand."""
    return np.array([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)])


def _rosenbrock_h(x: float, y: float) -> np.ndarray:
    """d2f/dx2 = 2 - 400 (y - x**2) + 800 x**2, d2f/dxdy = -400 x, d2f/dy2 = 200."""
    return np.array([[2 - 400 * (y - x**2) + 800 * x**2, -400 * x], [-400 * x, 200.0]])


ROSENBROCK_G = np.array([-215.6, -88.0])
ROSENBROCK_H = np.array([[1330.0, 480.0], [480.0, 200.0]])
H, G, STEP = "d2f/dX2", "df/dX", "d2f/dX2 Newton step"


def test_the_hand_derivatives_are_the_numbers_in_the_scenario() -> None:
    np.testing.assert_allclose(_rosenbrock_g(-1.2, 1.0), ROSENBROCK_G, rtol=1e-14)
    np.testing.assert_allclose(_rosenbrock_h(-1.2, 1.0), ROSENBROCK_H, rtol=1e-14)
    assert _rosenbrock(-1.2, 1.0) == pytest.approx(24.2, rel=1e-14)


def test_rosenbrock_at_its_classic_start(load: Load) -> None:
    outcome = assert_passed(run_routine(load("scenario=hessian")))
    assert list(outcome.gradients) == [H]  # the cross term included: one (2, 2) Hessian
    np.testing.assert_allclose(outcome.gradients[H], ROSENBROCK_H, rtol=1e-6)
    np.testing.assert_allclose(outcome.values[G], ROSENBROCK_G, rtol=1e-6)
    assert outcome.values["f"] == pytest.approx(24.2, rel=1e-6)
    low, high = outcome.values[f"{H} eigenvalues"]
    assert low + high == pytest.approx(1530.0, rel=1e-6)  # the trace
    assert low * high == pytest.approx(35600.0, rel=1e-5)  # the determinant
    assert 0 < low < high and "positive definite" in outcome.notes[H]
    step = outcome.values[STEP]
    # H^-1 (-g) by Cramer's rule, det H = 35600; the damping moves it by about 1e-6 / 23.6.
    np.testing.assert_allclose(step, [880 / 35600, 13552 / 35600], rtol=1e-5)
    x, y = np.array([-1.2, 1.0]) + step
    assert (x, y) == (pytest.approx(-1.1753, abs=1e-4), pytest.approx(1.3807, abs=1e-4))
    assert _rosenbrock(x, y) == pytest.approx(4.7319, abs=1e-3)
    took = re.search(r"takes sum\(f\) from (\S+) to (\S+)$", outcome.notes[H])
    assert took and float(took[1]) == pytest.approx(24.2, rel=1e-5)
    assert float(took[2]) == pytest.approx(_rosenbrock(x, y), rel=1e-4)
    assert {f"{H} vs SymPy", f"{H} vs float64 central second differences (every element)",
            f"{G} (the Newton step's g) vs float64 central differences (every element)",
            f"{STEP} vs float64 solve from second and first differences"} <= _names(outcome)
    (heatmap,) = outcome.figures
    assert heatmap.labels == ["X[0]", "X[1]"] and heatmap.filename == "hessian.png"
    np.testing.assert_allclose(heatmap.values, ROSENBROCK_H, rtol=1e-6)


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_rosenbrock_in_float64(load: Load, mode: str) -> None:
    outcome = assert_passed(run_routine(load("scenario=hessian", "dtype=float64", f"compile={mode}")))
    np.testing.assert_allclose(outcome.gradients[H], ROSENBROCK_H, rtol=1e-13)
    np.testing.assert_allclose(outcome.values[G], ROSENBROCK_G, rtol=1e-13)
    np.testing.assert_allclose(outcome.values[STEP],
                               np.linalg.solve(ROSENBROCK_H + 1e-6 * np.eye(2), -ROSENBROCK_G), rtol=1e-12)


@pytest.mark.parametrize(("dtype", "rtol"), [("float16", 2e-3), ("bfloat16", 2e-2)])
def test_rosenbrock_in_16_bits_solves_the_step_in_float32(load: Load, dtype: str, rtol: float) -> None:
    outcome = assert_passed(run_routine(load("scenario=hessian", f"dtype={dtype}")))
    x, y = np.asarray(outcome.inputs["X"], dtype=np.float64)  # -1.2 as the dtype holds it
    np.testing.assert_allclose(outcome.gradients[H], _rosenbrock_h(x, y), rtol=rtol)
    assert outcome.values[STEP].dtype == np.float32
    assert f"solved in float32: tf.linalg.solve has no {dtype} kernel" in outcome.notes[H]


def test_float16_overflow_is_a_failed_check_not_a_crash(load: Load) -> None:
    # At x = -12, 100*(y - x**2)**2 is about 2e6, far past float16's largest number, 65504.
    outcome = run_routine(load("scenario=hessian", "dtype=float16", "scenario.inputs.X.value=[-12,1]"))
    assert not outcome.passed
    failed = {c.name for c in outcome.checks if not c.passed}
    assert {"f finite", f"{H} finite"} <= failed
    assert f"{H} eigenvalues" not in outcome.values


def test_a_saddle_has_eigenvalues_of_both_signs(load: Load) -> None:
    outcome = assert_passed(run_routine(load("scenario=hessian", "scenario.function='X[0]**2 - X[1]**2'",
                                             "dtype=float64")))
    np.testing.assert_array_equal(outcome.gradients[H], [[2.0, 0.0], [0.0, -2.0]])
    np.testing.assert_array_equal(outcome.values[f"{H} eigenvalues"], [-2.0, 2.0])
    assert "saddle" in outcome.notes[H]
    # A quadratic's Newton step lands on its stationary point, the origin.
    np.testing.assert_allclose(outcome.values[STEP], [1.2, -1.0], rtol=1e-5)


def test_three_elements_by_hand(load: Load) -> None:
    outcome = assert_passed(run_routine(load(
        "scenario=hessian", "scenario.function='X[0]*X[1]*X[2] + sin(X[0]*X[2])'",
        "scenario.inputs.X.value=[-1.2,1,0.5]", "dtype=float64")))
    x, y, z = -1.2, 1.0, 0.5
    s, c = np.sin(x * z), np.cos(x * z)
    want = [[-z * z * s, z, y + c - x * z * s],
            [z, 0.0, x],
            [y + c - x * z * s, x, -x * x * s]]
    np.testing.assert_allclose(outcome.gradients[H], want, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(outcome.values[G], [y * z + z * c, x * z, x * y + x * c], rtol=1e-13)
    (heatmap,) = outcome.figures
    assert heatmap.labels == ["X[0]", "X[1]", "X[2]"]


def test_each_small_hessian_has_its_eigenvalues_newton_step_and_heatmap(load: Load) -> None:
    # f = X0 X1 z**2 at X = (-1.2, 1), z = 0.5: the short form takes f's Hessian w.r.t. each input.
    outcome = assert_passed(run_routine(load("scenario=hessian", "scenario.function='X[0]*X[1]*z**2'",
                                             "+scenario.inputs.z.value=0.5", "dtype=float64")))
    assert list(outcome.gradients) == [H, "d2f/dz2"]
    np.testing.assert_allclose(outcome.gradients[H], [[0.0, 0.25], [0.25, 0.0]], rtol=1e-14)
    assert outcome.gradients["d2f/dz2"] == pytest.approx(2 * -1.2 * 1.0, rel=1e-14)
    np.testing.assert_allclose(outcome.values[f"{H} eigenvalues"], [-0.25, 0.25], rtol=1e-14)
    assert "negative definite" in outcome.notes["d2f/dz2"] and "saddle" in outcome.notes[H]
    np.testing.assert_allclose(outcome.values[G], [1.0 * 0.25, -1.2 * 0.25], rtol=1e-14)
    assert outcome.values["df/dz"] == pytest.approx(2 * -1.2 * 1.0 * 0.5, rel=1e-14)
    np.testing.assert_allclose(outcome.values[STEP], [1.2, -1.0], rtol=1e-5)  # to the stationary X = 0
    assert outcome.values["d2f/dz2 Newton step"] == pytest.approx(-0.5, rel=1e-5)  # to z = 0
    assert [(h.filename, h.labels) for h in outcome.figures] == [
        ("hessian.png", ["X[0]", "X[1]"]), ("hessian_2.png", ["z"])]


def test_a_linear_function_needs_damping(load: Load) -> None:
    singular = run_routine(load("scenario=hessian", "scenario.function='X[0] + X[1]'", "scenario.damping=0"))
    (failed,) = [c for c in singular.checks if not c.passed]
    assert failed.name == f"{STEP} vs float64 solve from second and first differences"
    assert "singular" in failed.detail
    np.testing.assert_array_equal(singular.gradients[H], np.zeros((2, 2)))
    damped = assert_passed(run_routine(load("scenario=hessian", "scenario.function='X[0] + X[1]'",
                                            "dtype=float64")))
    np.testing.assert_allclose(damped.values[STEP], [-1e6, -1e6], rtol=1e-12)


#: A run's scenario saved while ``hessian`` was a routine of its own (.hydra/config.yaml), word for word.
OLD_HESSIAN = {"name": "hessian", "routine": "hessian", "description": "Rosenbrock's Hessian.",
               "function": "(1 - x)**2 + 100*(y - x**2)**2",
               "inputs": {"x": {"value": -1.2, "linspace": None, "kind": "variable", "watch": False},
                          "y": {"value": 1.0, "linspace": None, "kind": "variable", "watch": False}},
               "damping": 1e-6}


def test_a_config_saved_by_the_hessian_routine_runs_as_its_program(compose_config: Load) -> None:
    saved = OmegaConf.to_container(compose_config("dtype=float64"))
    saved["scenario"] = OLD_HESSIAN
    run = load_run(saved)
    assert isinstance(run.scenario, ProgramScenario)
    # The routine stacked x, y into X and called its target f, because an input was called y.
    assert run.scenario.targets == {"x": "X[0]", "y": "X[1]", "f": "(1 - x)**2 + 100*(y - x**2)**2"}
    assert run.scenario.plan() == {"f": ["X"]} and run.scenario.derivative == "hessian"
    outcome = assert_passed(run_routine(run))
    np.testing.assert_allclose(outcome.gradients[H], ROSENBROCK_H, rtol=1e-13)
    np.testing.assert_allclose(outcome.values[G], ROSENBROCK_G, rtol=1e-13)
    # Inputs named as the routine's own names were: the target y, the vector X_ when X was taken.
    saved["scenario"] = {**OLD_HESSIAN, "function": "a*X**2",
                         "inputs": {"a": {"value": 3.0}, "X": {"value": 2.0}}}
    scenario = load_run(saved).scenario
    assert scenario.targets == {"a": "X_[0]", "X": "X_[1]", "y": "a*X**2"}
    assert scenario.plan() == {"y": ["X_"]}
    outcome = assert_passed(run_routine(load_run(saved)))
    np.testing.assert_allclose(outcome.gradients["d2y/dX_2"], [[0.0, 4.0], [4.0, 6.0]], rtol=1e-13)


# ---------------------------------------------------------------- snippets, in this process

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
    ],
)
def test_snippets_print_the_same_numbers(load: Load, overrides: tuple[str, ...]) -> None:
    outcome = run_routine(load(*overrides, "checks.finite_differences=false", "plots=false"))
    assert _snippet_output(outcome.snippet) == jsonable(outcome.gradients)


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
    x, y = results["inputs"]["X"]
    assert (x, y) == (pytest.approx(-1.2), 1.0)
    np.testing.assert_allclose(results["gradients"][H], _rosenbrock_h(x, y), rtol=1e-6)
    np.testing.assert_allclose(results["values"][G], _rosenbrock_g(x, y), rtol=1e-6)
    step = results["values"][STEP]
    np.testing.assert_allclose(step, np.linalg.solve(ROSENBROCK_H, -ROSENBROCK_G), rtol=1e-5)
    assert _rosenbrock(x + step[0], y + step[1]) == pytest.approx(4.7319, abs=1e-3)
    assert np.prod(results["values"][f"{H} eigenvalues"]) == pytest.approx(35600.0, rel=1e-5)
    assert results["plots"] == ["hessian.png"]
    assert (run.run_dirs()[0] / "hessian.png").read_bytes()[:4] == b"\x89PNG"
    report = (run.run_dirs()[0] / "report.md").read_text()
    assert "\nf = (1 - X[0])**2 + 100*(X[1] - X[0]**2)**2\n" in report  # the target, not "2f"
    assert_snippets_reproduce(run.run_dirs())


@pytest.mark.slow
def test_the_hessian_examples_from_the_command_line(cli: Cli) -> None:
    """The scenario's commented commands: the minimum, where g = 0, and a saddle."""
    minimum = cli("scenario=hessian", "scenario.inputs.X.value=[1,1]", "dtype=float64").ok()
    np.testing.assert_array_equal(minimum["values"][G], [0.0, 0.0])
    np.testing.assert_allclose(minimum["gradients"][H], _rosenbrock_h(1.0, 1.0), rtol=1e-14)
    saddle = cli("scenario=hessian", "scenario.function=X[0]**2 - X[1]**2").ok()
    assert saddle["values"][f"{H} eigenvalues"] == [-2.0, 2.0]
    assert "a saddle" in saddle["notes"][H]


@pytest.mark.parametrize(("diagonal", "dtype", "shape"), [
    ([2.0, -1e-9], np.float32, "positive semi-definite"),  # -1e-9: float32's rounding of a 0
    ([2.0, -1e-3], np.float32, "indefinite"),
    ([2.0, -1e-9], np.float64, "indefinite"),  # float64 resolves it: 8 * 2 * 2.2e-16 * 2 is 7e-15
    ([-2.0, 1e-9], np.float32, "negative semi-definite"),
    ([2.0, 1.0], np.float32, "positive definite"),
    ([0.0, 0.0], np.float32, "zero"),  # the tolerance is relative: any non-zero scale has a sign
])
def test_a_hessians_shape_is_decided_within_its_precision(diagonal: list[float], dtype: Any,
                                                         shape: str) -> None:
    from runner.result import Outcome
    from runner.routines.hessians import curvature

    outcome = Outcome()
    curvature(outcome, "H", "f", "x", np.diag(diagonal).astype(dtype))
    assert f", {shape}" in outcome.notes["H"], outcome.notes["H"]
