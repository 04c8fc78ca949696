"""The catalogue of blocked gradients: stop_gradient, custom_gradient, pitfalls, control_flow.

Each expected number is the mathematics (f' of x**2 at 3 is 6, sigmoid(100) is 1,
...), and each None, NaN or inf is the documented TensorFlow behaviour the case teaches.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runner.routines import run_routine
from runner.scenarios.schema import CASES
from tests.conftest import assert_passed

Load = Callable[..., Any]
NAN, INF = "NaN", "+inf"


def _explained(outcome: Any) -> Any:
    """Passed; no NaN or inf in gradients (a lesson lives in values); every gradient explained."""
    assert_passed(outcome)
    for label, g in outcome.gradients.items():  # a NaN or inf lesson lives in values, never here
        assert g is None or np.isfinite(np.asarray(g, dtype=np.float64)).all(), label
    for label in [*outcome.gradients, *(k for k in outcome.values if k.startswith("d"))]:
        assert outcome.notes.get(label), f"{label} has no note"
    return outcome


def _sigmoid(x: Any) -> np.ndarray:
    return 1 / (1 + np.exp(-np.asarray(x, dtype=np.float64)))


# stop_gradient ---------------------------------------------------------------------------------


@pytest.mark.parametrize("compile_mode", ["eager", "function"])
def test_hiding_y_squared_leaves_dz_dx_and_no_path_to_y(load: Load, compile_mode: str) -> None:
    outcome = _explained(run_routine(load("scenario=stop_gradient", f"compile={compile_mode}")))
    # z = x*x + y*y at x = 2, y = 3: dz/dx = 2x = 4; dz/dy = 2y = 6 unless y*y is hidden
    assert outcome.gradients == {"dz/dx (without)": 4.0, "dz/dy (without)": 6.0,
                                 "dz/dx (stop_recording)": 4.0, "dz/dy (stop_recording)": None,
                                 "dz/dx (reset)": 4.0, "dz/dy (reset)": None}
    assert {k: float(v) for k, v in outcome.values.items()} == {
        "z (without)": 13.0, "z (stop_recording)": 13.0, "z (reset)": 13.0}
    assert outcome.analytic["dz/dx (reset)"] == "d(x*x)/dx = 2*x"
    assert outcome.analytic["dz/dy (without)"] == "d((x*x) + (y*y))/dy = 2*y"
    assert "tape.reset()" in outcome.notes["dz/dx (reset)"]
    assert any(c.name == "dz/dy (stop_recording) is None (expected)" and c.passed for c in outcome.checks)


@pytest.mark.parametrize("case", CASES["stop_gradient"])
def test_each_stop_gradient_case_alone(load: Load, case: str) -> None:
    """The documented overrides: z = sin(x) + sin(x) with the second copy hidden halves dz/dx."""
    outcome = _explained(run_routine(load("scenario=stop_gradient", f"scenario.case={case}",
                                          "scenario.function='sin(x)'", "scenario.hidden='sin(x)'",
                                          "scenario.x=0.5", "dtype=float64")))
    assert set(outcome.gradients) == {"dz/dx (without)", "dz/dy (without)", f"dz/dx ({case})",
                                      f"dz/dy ({case})"}
    assert outcome.gradients["dz/dx (without)"] == pytest.approx(2 * math.cos(0.5), rel=1e-12)
    assert outcome.gradients[f"dz/dx ({case})"] == pytest.approx(math.cos(0.5), rel=1e-12)
    assert outcome.gradients["dz/dy (without)"] is None and outcome.gradients[f"dz/dy ({case})"] is None
    names = {c.name for c in outcome.checks}
    assert f"dz/dx ({case}) vs float64 central differences (every element)" in names


def test_stop_gradient_of_a_constant_function_is_none(load: Load) -> None:
    outcome = _explained(run_routine(load("scenario=stop_gradient", "scenario.function=2.0")))
    assert outcome.gradients["dz/dx (reset)"] is None and outcome.gradients["dz/dx (without)"] is None
    assert "does not read x" in outcome.notes["dz/dx (reset)"]


def test_cases_a_program_now_runs_name_the_scenario_that_replaces_them(load: Load) -> None:
    from runner.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^scenario.case: 'stop_gradient' is a tensor program now: use "
                                          r"scenario=guide/stop_gradient$"):
        load("scenario=stop_gradient", "scenario.case=stop_gradient")
    with pytest.raises(ConfigError, match=r"^scenario.case: 'python_if' is a tensor program now: use "
                                          r"scenario=guide/control_flow$"):
        load("scenario=control_flow", "scenario.case=python_if")


# custom_gradient -------------------------------------------------------------------------------


def test_plain_softplus_gradient_is_nan_at_100_in_float32(load: Load) -> None:
    outcome = _explained(run_routine(load("scenario=custom_gradient", "scenario.case=log1pexp")))
    x = [-100.0, -10.0, 0.0, 10.0, 100.0]
    np.testing.assert_allclose(outcome.gradients["dy/dx (log1pexp)"], _sigmoid(x), rtol=1e-6, atol=1e-7)
    assert outcome.gradients["dy/dx (log1pexp)"][-1] == 1.0
    assert set(outcome.gradients) == {"dy/dx (log1pexp)"}  # the NaN is a value, not a gradient
    plain = outcome.values["dy/dx (plain)"]
    assert np.isnan(plain[-1]) and np.isfinite(plain[:-1]).all()
    np.testing.assert_allclose(plain[:-1], _sigmoid(x[:-1]), rtol=1e-6, atol=1e-7)
    assert np.isinf(outcome.values["y (plain)"][-1]) and outcome.values["y (log1pexp)"][-1] == 100.0
    (expected,) = [c for c in outcome.checks if c.name.endswith("(expected)")]
    assert "x = 100" in expected.name and "float32" in expected.name
    assert "inf * 0 is NaN" in outcome.notes["dy/dx (plain)"]


def test_plain_softplus_is_fine_in_float64_below_709(load: Load) -> None:
    outcome = _explained(run_routine(load("scenario=custom_gradient", "scenario.case=log1pexp",
                                          "dtype=float64",
                                          "compile=function")))
    x = [-100.0, -10.0, 0.0, 10.0, 100.0]
    for label in ("dy/dx (plain)", "dy/dx (log1pexp)"):
        np.testing.assert_allclose(outcome.gradients[label], _sigmoid(x), rtol=1e-12, atol=1e-300)
    assert "709.8" in outcome.notes["dy/dx (plain)"]


@pytest.mark.parametrize(("dtype", "compile_mode"), [("float32", "eager"), ("float64", "function")])
def test_clip_gradients_of_v_squared_at_2(load: Load, dtype: str, compile_mode: str) -> None:
    outcome = _explained(run_routine(load("scenario=custom_gradient", "scenario.case=clip_by_norm",
                                          f"dtype={dtype}", f"compile={compile_mode}")))
    # the guide: v = 2, dy = 1 clipped to 0.5, times d(v*v)/dv = 4
    assert outcome.gradients == {"doutput/dv (raw)": 4.0, "doutput/dv (clipped)": 2.0}
    assert float(outcome.values["output"]) == 4.0
    assert "dy = 1" in outcome.notes["doutput/dv (clipped)"]


@pytest.mark.parametrize(("v", "clip_norm", "clipped"), [(-3.0, 0.25, -1.5), (1.5, 2.0, 3.0)])
def test_clip_gradients_scales_by_clip_norm_only_below_1(load: Load, v: float, clip_norm: float,
                                                         clipped: float) -> None:
    outcome = _explained(run_routine(load("scenario=custom_gradient", "scenario.case=clip_by_norm",
                                          f"scenario.v={v}", f"scenario.clip_norm={clip_norm}")))
    assert outcome.gradients == {"doutput/dv (raw)": 2 * v, "doutput/dv (clipped)": clipped}


# pitfalls --------------------------------------------------------------------------------------

PITFALLS: dict[str, dict[str, Any]] = {  # label -> what TensorFlow returns, eagerly
    "variable_replaced": {"dy/dx (epoch 0, x = x + 1)": 1.0, "dy/dx (epoch 1, x = x + 1)": None,
                          "dy/dx (epoch 0, x.assign_add(1))": 1.0, "dy/dx (epoch 1, x.assign_add(1))": 1.0},
    "numpy_detour": {"dy/dx (through NumPy)": None, "dy/dx (tf.reduce_mean)": [[0.5, 1.0], [1.5, 2.0]]},
    "integer_dtype": {"dy/dx (int32)": None, "dy/dx (float)": 20.0},  # 2x at 10
    "stateful_op": {"dy/dx0 (through x1.assign_add)": None, "dy/dx1 (through x1.assign_add)": 6.0,
                    "dy/dx0 (direct)": 6.0},  # 2 x1 with x1 = 0 + 3; 2 (x1 + x0) at x1 = 0, x0 = 3
    "branch_not_taken": {"dy/da (branch taken)": 3.0, "dy/db (branch not taken)": None,
                         "dy/dx (tf.cond)": 2.0},  # y = a*x with x = 3, a = 2
    "sqrt_at_zero": {"dy/dx (sqrt at 0)": INF},  # 1/(2 sqrt(0))
    "norm_at_zero": {"dy/dx (norm at 0)": [NAN, NAN]},  # 0/0
    "where_nan": {"dy/dx (tf.where, x ** 0.5)": NAN, "dy/dx (tf.where, tf.sqrt)": 0.0},
    "where_nan_fixed": {"dy/dx (double tf.where, x ** 0.5)": 0.0, "dy/dx (double tf.where, tf.sqrt)": 0.0},
    "no_gradient": {"new_image": [[[0.5, 0.0, 0.0]]]},  # no gradient at all: TensorFlow raised LookupError
}


def _matches(got: Any, want: Any) -> bool:
    if want is None:
        return got is None
    array = np.asarray(got, dtype=np.float64)
    if isinstance(want, list):
        return all(_matches(g, w) for g, w in zip(array, want, strict=True))
    return {NAN: bool(np.isnan(array)), INF: bool(np.isposinf(array))}.get(want, array == want)


def _lesson(want: Any) -> bool:
    """A NaN or inf the case teaches (a value, never a gradient), or a list of them."""
    return want in (NAN, INF) or (isinstance(want, list) and all(_lesson(w) for w in want))


def _pitfall_results(outcome: Any) -> dict[str, Any]:
    return {**outcome.gradients, **outcome.values}


@pytest.mark.parametrize("case", CASES["pitfalls"])
def test_each_pitfall_alone(load: Load, case: str) -> None:
    outcome = _explained(run_routine(load("scenario=pitfalls", f"scenario.case={case}")))
    found = _pitfall_results(outcome)
    assert set(found) == set(PITFALLS[case])
    for label, want in PITFALLS[case].items():
        assert _matches(found[label], want), (label, found[label])
        if _lesson(want):
            assert label in outcome.values and label not in outcome.gradients
            expected = NAN if isinstance(want, list) else want
            assert any(c.name == f"{label} is {expected} (expected)" and c.passed for c in outcome.checks)
        if want is None:
            assert any(c.name == f"{label} is None (expected)" and c.passed for c in outcome.checks)


def test_integer_pitfall_records_tensorflows_warning(load: Load) -> None:
    outcome = _explained(run_routine(load("scenario=pitfalls", "scenario.case=integer_dtype")))
    assert "must be floating" in outcome.notes["dy/dx (int32)"]


@pytest.mark.parametrize("compile_mode", ["eager", "function"])
def test_an_op_with_no_gradient_raises_lookup_error_recorded_with_tensorflows_message(
        load: Load, compile_mode: str) -> None:
    outcome = _explained(run_routine(load("scenario=pitfalls", "scenario.case=no_gradient",
                                          f"compile={compile_mode}")))
    assert outcome.gradients == {}
    (raised,) = [c for c in outcome.checks if "LookupError" in c.name]
    assert raised.name == "tape.gradient(new_image, [image, delta]) raises LookupError (expected)"
    assert raised.passed
    assert raised.detail == "LookupError: gradient registry has no entry for: AdjustContrastv2"
    assert raised.detail in outcome.notes["new_image"]
    assert ("ran eagerly" in outcome.notes["new_image"]) == (
        compile_mode == "function")


def test_an_op_with_no_gradient_fails_its_check_once_tensorflow_returns_one(load: Load) -> None:
    from tensorflow.python.framework import ops

    from runner.tfenv import tf

    tf.RegisterGradient("AdjustContrastv2")(lambda op, grad: [grad, tf.reduce_sum(grad)])
    try:
        outcome = run_routine(load("scenario=pitfalls", "scenario.case=no_gradient"))
    finally:
        ops._gradient_registry._registry.pop("AdjustContrastv2")
    assert set(outcome.gradients) == {"dnew_image/dimage", "dnew_image/ddelta"}
    (raised,) = [c for c in outcome.checks if "LookupError" in c.name]
    assert not raised.passed and not outcome.passed
    assert raised.detail == "TensorFlow returned gradients: dnew_image/dimage, dnew_image/ddelta"


def test_all_pitfalls_under_tf_function_in_float64(load: Load) -> None:
    outcome = _explained(run_routine(load("scenario=pitfalls", "dtype=float64", "compile=function")))
    found = _pitfall_results(outcome)
    graph = {**{k: v for case in PITFALLS.values() for k, v in case.items()},
             "dy/db (branch not taken)": 0.0}  # tf.cond in a graph: both branches exist, zero, not None
    assert set(found) == set(graph)
    for label, want in graph.items():
        assert _matches(found[label], want), (label, found[label])
    assert "compile=function" in outcome.notes["dy/db (branch not taken)"]
    assert "ran eagerly" in outcome.notes["dy/dx (through NumPy)"]
    assert "numpy_detour tape_repeat" not in outcome.timings and "where_nan tape_repeat" in outcome.timings


def test_where_nan_under_xla_poisons_tf_sqrt_too(load: Load) -> None:
    outcome = _explained(run_routine(load("scenario=pitfalls", "scenario.case=where_nan", "compile=xla")))
    assert outcome.gradients == {}
    assert np.isnan(outcome.values["dy/dx (tf.where, tf.sqrt)"])
    assert np.isnan(outcome.values["dy/dx (tf.where, x ** 0.5)"])


# control_flow ----------------------------------------------------------------------------------

CONTROL_FLOW = {"dy/dx (python_for)": 108.0, "dy/dx (while_loop)": 108.0}  # 4x**3 at 3


@pytest.mark.parametrize("case", CASES["control_flow"])
def test_each_control_flow_case_alone(load: Load, case: str) -> None:
    outcome = _explained(run_routine(load("scenario=control_flow", f"scenario.case={case}")))
    assert outcome.gradients == {k: v for k, v in CONTROL_FLOW.items() if case in k}


def test_control_flow_in_float64_under_tf_function(load: Load) -> None:
    x, steps = -1.5, 5
    outcome = _explained(run_routine(load("scenario=control_flow", f"scenario.x={x}",
                                          f"scenario.steps={steps}",
                                          "dtype=float64", "compile=function")))
    for label in ("dy/dx (python_for)", "dy/dx (while_loop)"):
        assert outcome.gradients[label] == pytest.approx((steps + 1) * x**steps, rel=1e-12)
    assert outcome.analytic["dy/dx (python_for)"] == "d(x**6)/dx = 6*x**5"


def test_control_flow_with_no_steps(load: Load) -> None:
    outcome = _explained(run_routine(load("scenario=control_flow", "scenario.x=0", "scenario.steps=0")))
    assert {k: float(v) for k, v in outcome.gradients.items()} == {
        "dy/dx (python_for)": 1.0, "dy/dx (while_loop)": 1.0}  # y = x


# the CLI and the snippets ------------------------------------------------------------------------

SCENARIOS = ("stop_gradient", "custom_gradient", "pitfalls", "control_flow")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The four scenarios as one CLI multirun (one TensorFlow start-up): scenario -> run directory."""
    cwd = tmp_path_factory.mktemp("catalogue")
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run([sys.executable, "-m", "runner", "-m", f"scenario={','.join(SCENARIOS)}"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    dirs = {json.loads(p.read_text())["scenario"]: p.parent for p in cwd.glob("outputs/**/results.json")}
    assert set(dirs) == set(SCENARIOS)
    return dirs


CLI_GRADIENTS: dict[str, dict[str, Any]] = {
    "stop_gradient": {"dz/dx (without)": 4.0, "dz/dy (without)": 6.0, "dz/dx (stop_recording)": 4.0,
                      "dz/dy (stop_recording)": None, "dz/dx (reset)": 4.0, "dz/dy (reset)": None},
    "pitfalls": {k: v for case in PITFALLS.values() for k, v in case.items()
                 if k.startswith("d") and not _lesson(v)},  # new_image is a value
    "control_flow": CONTROL_FLOW,
}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_cli_run_is_ok(sweep: dict[str, Path], scenario: str) -> None:
    results = json.loads((sweep[scenario] / "results.json").read_text())
    assert results["status"] == "ok" and all(c["passed"] for c in results["checks"])
    # The file is the record's snippet; test_reports runs every shipped scenario's and compares its output.
    assert results["snippet"] and (sweep[scenario] / "snippet.py").read_text() == results["snippet"]
    if scenario == "custom_gradient":
        x = [-100.0, -10.0, 0.0, 10.0, 100.0]
        np.testing.assert_allclose(results["gradients"]["dy/dx (log1pexp)"], _sigmoid(x), atol=1e-7)
        assert results["values"]["dy/dx (plain)"][-1] == "NaN"
        assert results["gradients"]["doutput/dv (clipped)"] == 2.0
    else:
        assert results["gradients"] == CLI_GRADIENTS[scenario]
    if scenario == "stop_gradient":  # the report says what was differentiated, and what hidden
        assert "z = x*x + y*y  # y*y: hidden from the tape, except in (without)" in (
            sweep[scenario] / "report.md").read_text()
    if scenario == "pitfalls":
        assert results["values"]["dy/dx (sqrt at 0)"] == "Infinity"
        assert results["values"]["dy/dx (norm at 0)"] == ["NaN", "NaN"]

