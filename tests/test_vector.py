"""Vector-valued scenarios: tape.jacobian and forward mode as programs.

jacobian and forward_mode differentiate F(x, y, z) = (x*y*z, sin(x) + y**2 - exp(z)),
whose Jacobian [[y*z, x*z, x*y], [cos(x), 2y, -exp(z)]] the tests evaluate themselves:
tape.jacobian(F, [x, y, z]) and one JVP per input with tangent 1 both give its columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from runner.oracles.derivative_checks import dot_product_check
from runner.oracles.tolerance import Tolerance
from runner.routines import run_routine
from runner.scenarios.loading import load_run
from tests.conftest import CliRun, assert_passed, assert_snippets_reproduce

Cli = Callable[..., CliRun]
SOURCES = ("x", "y", "z")


X, Y, Z = 1.0, 2.0, 0.5
AT_DEFAULT = np.array([[Y * Z, X * Z, X * Y], [math.cos(X), 2 * Y, -math.exp(Z)]])  # dF/dX
F_AT_DEFAULT = [X * Y * Z, math.sin(X) + Y**2 - math.exp(Z)]


def _columns(gradients: dict[str, Any]) -> np.ndarray:
    """dF/dx, dF/dy, dF/dz side by side: the Jacobian, shape (outputs, 3)."""
    return np.stack([np.asarray(gradients[f"dF/d{s}"], dtype=np.float64) for s in SOURCES], axis=-1)


# ---------------------------------------------------------------- jacobian

@pytest.mark.slow
def test_cli_jacobian_both_paths_and_its_snippet(cli: Cli) -> None:
    run = cli("scenario=jacobian")
    results = run.ok()
    assert results["scenario"] == "jacobian"
    assert list(results["gradients"]) == ["dF/dx", "dF/dy", "dF/dz"]
    np.testing.assert_allclose(_columns(results["gradients"]), AT_DEFAULT, rtol=1e-6, atol=1e-7)
    assert results["gradients"]["dF/dx"][1] == pytest.approx(math.cos(1.0), rel=1e-6)
    np.testing.assert_allclose(results["values"]["F"], F_AT_DEFAULT, rtol=1e-6)
    for source in SOURCES:  # the tf.while_loop's Jacobian is pfor's
        assert results["values"][f"dF/d{source} (while_loop)"] == results["gradients"][f"dF/d{source}"]
    names = {c["name"] for c in results["checks"]}
    assert {"dF/dx vs SymPy", "dF/dy vs float64 central differences (every element)",
            "dF/dz: pfor = while_loop"} <= names
    assert results["analytic"]["dF/dz"] == "dF/dz = [x*y, -exp(z)]"
    assert {"tape", "jacobian_while_loop"} <= set(results["timings"])
    assert_snippets_reproduce(run.run_dirs())


@pytest.mark.parametrize("compile_mode", ["function", "xla"])
def test_jacobian_compiled_in_float64(load: Callable[..., Any], compile_mode: str) -> None:
    outcome = assert_passed(run_routine(load("scenario=jacobian", "dtype=float64",
                                             f"compile={compile_mode}")))
    np.testing.assert_allclose(_columns(outcome.gradients), AT_DEFAULT, rtol=1e-14)
    assert {"tape_repeat", "jacobian_while_loop_repeat"} <= set(outcome.timings)


def test_jacobian_in_float16_under_xla(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=jacobian", "dtype=float16", "compile=xla")))
    assert outcome.gradients["dF/dx"].dtype == np.float16
    np.testing.assert_allclose(_columns(outcome.gradients), AT_DEFAULT, rtol=2e-3)


def test_a_third_output_is_a_third_row(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load(
        "scenario=jacobian", "dtype=float64",
        "scenario.targets.F='stack([x*y*z, sin(x) + y**2 - exp(z), x**2 - z])'")))
    want = np.vstack([AT_DEFAULT, [2 * X, 0, -1]])  # d(x**2 - z) = (2x, 0, -1)
    np.testing.assert_allclose(_columns(outcome.gradients), want, rtol=1e-14)


def test_a_source_f_does_not_read_has_a_zero_column_when_asked(load: Callable[..., Any]) -> None:
    none = assert_passed(run_routine(load("scenario=jacobian", "scenario.targets.F='stack([3, x**2])'")))
    assert none.gradients["dF/dy"] is None and "F does not depend on y" in none.notes["dF/dy"]
    np.testing.assert_allclose(none.gradients["dF/dx"], [0.0, 2.0])
    zero = assert_passed(run_routine(load("scenario=jacobian", "scenario.targets.F='stack([3, x**2])'",
                                          "scenario.unconnected_gradients=zero")))
    assert zero.gradients["dF/dz"].tolist() == [0.0, 0.0]


# ---------------------------------------------------------------- forward_mode

@pytest.mark.slow
def test_cli_forward_mode_columns_dot_product_test_and_snippet(cli: Cli) -> None:
    run = cli("scenario=forward_mode", "dtype=float64", "checks.projections=5")
    results = run.ok()
    assert list(results["gradients"]) == ["dF/dx", "dF/dy", "dF/dz"]
    np.testing.assert_allclose(_columns(results["gradients"]), AT_DEFAULT, rtol=1e-14)
    np.testing.assert_allclose(results["values"]["F"], F_AT_DEFAULT, rtol=1e-15)
    assert all(results["values"][f"dF/d{s} tangent"] == 1.0 for s in SOURCES)
    checks = {c["name"]: c for c in results["checks"]}
    for source in SOURCES:
        assert f"dF/d{source} vs SymPy" in checks
        assert f"dF/d{source} vs float64 directional central difference (every element)" in checks
        dot = checks[f"dF/d{source}: dot-product test v.(J u) = u.(J^T v) with the tape's VJP"]
        assert dot["max_abs_err"] < 1e-12  # in float64 the two modes agree to rounding
        assert dot["detail"].endswith("(the worst of 5 seeded cotangents v)")
    assert_snippets_reproduce(run.run_dirs())


def test_tangents_scale_the_columns(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=forward_mode", "dtype=float64",
                                             "scenario.tangents.x=0.5", "scenario.tangents.y=-1")))
    np.testing.assert_allclose(_columns(outcome.gradients), AT_DEFAULT * [0.5, -1, 1], rtol=1e-14)


def test_the_dot_product_test_takes_the_worst_of_its_cotangents_and_catches_a_wrong_vjp() -> None:
    u = np.array([0.3, -1.2, 0.7])
    got = AT_DEFAULT @ u  # J u
    tol = Tolerance(rtol=1e-12, atol=0.0)
    right = dot_product_check("dF/dX", got, lambda v: v @ AT_DEFAULT, u, 0, tol, count=3)
    assert right.passed and right.detail.endswith("(the worst of 3 seeded cotangents v)")
    wrong = dot_product_check("dF/dX", got, lambda v: 1.01 * (v @ AT_DEFAULT), u, 0, tol, count=3)
    rng = np.random.default_rng([0, *b"cotangent"])
    gaps = [abs(0.01 * float(v @ got)) for v in (rng.standard_normal(2) for _ in range(3))]
    assert not wrong.passed and wrong.max_abs_err == pytest.approx(max(gaps), rel=1e-9)


@pytest.mark.parametrize("compile_mode", ["function", "xla"])
def test_forward_mode_compiled_in_float64(load: Callable[..., Any], compile_mode: str) -> None:
    outcome = assert_passed(run_routine(load("scenario=forward_mode", "dtype=float64",
                                             f"compile={compile_mode}")))
    np.testing.assert_allclose(_columns(outcome.gradients), AT_DEFAULT, rtol=1e-14)


def test_forward_mode_in_float16(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=forward_mode", "dtype=float16", "compile=function")))
    assert outcome.gradients["dF/dx"].dtype == np.float16
    np.testing.assert_allclose(_columns(outcome.gradients), AT_DEFAULT, rtol=2e-3)


def test_an_infinite_partial_fails_every_check_that_sees_it(load: Callable[..., Any]) -> None:
    # d sqrt(x - 1)/dx is infinite at x = 1; the dot-product test multiplies it by v.
    outcome = run_routine(load("scenario=forward_mode", "scenario.targets.F='stack([sqrt(x - 1), y])'"))
    assert not outcome.passed
    assert outcome.gradients["dF/dx"][0] == np.inf and outcome.gradients["dF/dy"].tolist() == [0.0, 1.0]
    failed = {c.name for c in outcome.checks if not c.passed}
    assert {"dF/dx finite", "dF/dx: dot-product test v.(J u) = u.(J^T v) with the tape's VJP"} <= failed
    assert not {n for n in failed if n.startswith("dF/dy")}


# ---------------------------------------------------------------- configs the former routines saved

#: scenario=jacobian and scenario=forward_mode as a run saved them (.hydra/config.yaml) while each was a
#: routine of its own, word for word but for the descriptions.
OLD_JACOBIAN = {"name": "jacobian", "routine": "jacobian", "description": "The Jacobian of F.",
                "inputs": {"x": {"value": 1.0}, "y": {"value": 2.0}, "z": {"value": 0.5}},
                "outputs": {"f": "x*y*z", "g": "sin(x) + y**2 - exp(z)"}, "batch": 8}
OLD_FORWARD_MODE = {**OLD_JACOBIAN, "name": "forward_mode", "routine": "forward_mode",
                    "description": "JVPs against VJPs.", "probes": 4}
OLD_SCENARIOS = {"jacobian": OLD_JACOBIAN, "forward_mode": OLD_FORWARD_MODE}


@pytest.mark.parametrize("routine", OLD_SCENARIOS)
def test_a_config_saved_by_the_former_routine_runs_as_its_program(
        compose_config: Callable[..., Any], routine: str) -> None:
    saved = OmegaConf.to_container(compose_config(), enum_to_str=True)
    saved["scenario"] = OLD_SCENARIOS[routine]
    saved["dtype"] = "float64"
    run = load_run(saved)
    scenario = run.scenario
    assert scenario.routine == "program" and scenario.name == routine
    assert scenario.targets == {"f": "x*y*z", "g": "sin(x) + y**2 - exp(z)", "F": "stack([f, g])"}
    assert scenario.plan() == {"F": ["x", "y", "z"]}
    assert scenario.derivative == {"jacobian": "jacobian", "forward_mode": "jvp"}[routine]
    outcome = assert_passed(run_routine(run))
    np.testing.assert_allclose(_columns(outcome.gradients), AT_DEFAULT, rtol=1e-14)
    assert outcome.values["f"] == 1.0 and outcome.values["g"] == pytest.approx(F_AT_DEFAULT[1], rel=1e-15)
    if routine == "jacobian":  # both paths, as the routine timed them
        assert "jacobian_while_loop" in outcome.timings


def test_a_former_routines_input_called_f_keeps_its_name(compose_config: Callable[..., Any]) -> None:
    saved = OmegaConf.to_container(compose_config(), enum_to_str=True)
    saved["scenario"] = {**OLD_JACOBIAN, "inputs": {"F": {"value": 2.0}}, "outputs": {"f": "F**2", "c": "3"}}
    scenario = load_run(saved).scenario
    assert scenario.targets == {"f": "F**2", "c": "3", "F1": "stack([f, c])"}
    assert scenario.plan() == {"F1": ["F"]}
    outcome = assert_passed(run_routine(load_run(saved)))
    np.testing.assert_allclose(outcome.gradients["dF1/dF"], [4.0, 0.0])
