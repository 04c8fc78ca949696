"""checks.modes: a derivative taken again by every route TensorFlow offers, each held to the run's and to
float64 differences, so a route that disagrees fails by name (runner/routines/routes.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runner.errors import ConfigError
from runner.outputs import console
from runner.result import Outcome
from tests.planted import planted
from tests.test_language import run_program

ROOT = Path(__file__).resolve().parent.parent
X = [0.3, -1.2, 2.0]
WATCHED = {"x": {"value": X, "kind": "constant", "watch": True}}
EVERY = ["checks.modes=all", "checks.executions=[eager,function]"]


def _route_checks(outcome: Outcome) -> dict[str, bool]:
    return {c.name: c.passed for c in outcome.checks if " [" in c.name}


def _first_order_only_forward_is_wrong(op: Any, grad: Any) -> Any:
    """The gradient's value unchanged, its derivative with respect to the incoming gradient 1% off.

    Reverse mode reads the value; forward mode builds its JVP by differentiating the backward function
    with respect to the incoming gradient, so only forward mode (and what differentiates the gradient
    again) sees the 1%."""
    from runner.tfenv import tf

    return grad + 0.01 * (grad - tf.stop_gradient(grad))


@pytest.mark.slow  # XLA compiles each route: seconds
def test_every_route_agrees_on_an_honest_hessian_in_every_execution() -> None:
    """sum(sin(x) x) has the diagonal Hessian 2 cos x - x sin x, by all four nestings in eager, tf.function
    and XLA: 11 routes beyond the run's own, each against the run's and against second differences."""
    outcome = run_program({"y": "reduce_sum(sin(x) * x)"}, {"y": ["x"]}, inputs=WATCHED, derivative="hessian",
                          overrides=["checks.modes=all", "checks.executions=[eager,function,xla]"])
    x = np.array(X)
    hessian = np.diag(2 * np.cos(x) - x * np.sin(x))
    np.testing.assert_allclose(outcome.gradients["d2y/dx2"], hessian, rtol=1e-12)
    routes = _route_checks(outcome)
    assert len(routes) == (4 * 3 - 1) * 2 and all(routes.values()), routes
    assert "d2y/dx2 [forward-over-forward, xla] vs float64 second differences" in routes
    assert "d2y/dx2 [reverse-over-reverse, eager] vs reverse-over-reverse, eager" not in routes  # the run's
    assert outcome.passed and "routes" in outcome.timings
    (line,) = console.lines(outcome)
    assert line.endswith("✓ SymPy  ✓ float64 central second differences  ✓ 11 other routes")


def test_a_large_source_is_read_along_seeded_projections() -> None:
    """20 elements, above the 16 whose every basis direction is taken: checks.projections directions."""
    x = np.linspace(-2.0, 2.0, 20)
    outcome = run_program({"y": "reduce_sum(tanh(x) * x)"}, {"y": ["x"]},
                          inputs={"x": {"value": x.tolist(), "kind": "constant", "watch": True}},
                          overrides=["checks.modes=all", "checks.projections=3"])
    forward = [c for c in outcome.checks if c.name == "dy/dx [forward, eager] vs float64 differences"]
    assert outcome.passed and len(forward) == 1
    assert forward[0].detail.startswith(("worst element [0]", "worst element [1]", "worst element [2]"))


def test_forward_mode_that_disagrees_fails_by_name_and_the_oracle_sides_with_reverse() -> None:
    with planted("Sin", _first_order_only_forward_is_wrong):
        outcome = run_program({"y": "reduce_sum(sin(x) * x)"}, {"y": ["x"]}, inputs=WATCHED, overrides=EVERY)
    failed = sorted(name for name, passed in _route_checks(outcome).items() if not passed)
    assert failed == ["dy/dx [forward, eager] vs float64 differences",
                      "dy/dx [forward, eager] vs reverse, eager",
                      "dy/dx [forward, function] vs float64 differences",
                      "dy/dx [forward, function] vs reverse, eager"]
    # the run's own reverse gradient is right: d(sin(x) x)/dx = sin x + x cos x, by differences too
    assert next(c for c in outcome.checks if c.name.startswith("dy/dx vs float64 central")).passed
    np.testing.assert_allclose(outcome.gradients["dy/dx"], np.sin(X) + np.array(X) * np.cos(X), rtol=1e-12)


def test_a_second_derivative_the_routes_compute_differently_fails_naming_the_routes() -> None:
    """The same plant, one order up: the nestings that push a tangent forward through the gradient
    (forward-over-reverse, forward-over-forward) give another Hessian than those that differentiate it
    backward, and each route's check names it."""
    with planted("Sin", _first_order_only_forward_is_wrong):
        outcome = run_program({"y": "reduce_sum(sin(x) * x)"}, {"y": ["x"]}, inputs=WATCHED,
                              derivative="hessian", overrides=EVERY)
    routes = _route_checks(outcome)
    assert not routes["d2y/dx2 [forward-over-reverse, eager] vs reverse-over-reverse, eager"]
    assert not routes["d2y/dx2 [forward-over-forward, function] vs reverse-over-reverse, eager"]
    assert routes["d2y/dx2 [reverse-over-forward, eager] vs reverse-over-reverse, eager"]
    assert not outcome.passed


def test_nested_forward_accumulators_over_a_variable_raise_in_eager_only() -> None:
    """What the cross-examination found in TensorFlow 2.21: forward-over-forward over a tf.Variable raises
    "Internal error: Tried to take gradients (or similar) of a variable without handle data" in eager
    mode; under tf.function it gives the right Hessian. A route that raises fails by name."""
    outcome = run_program({"y": "reduce_sum(sin(x) * x)"}, {"y": ["x"]}, inputs={"x": {"value": X}},
                          derivative="hessian",
                          overrides=["checks.modes=[forward-over-forward]",
                                     "checks.executions=[eager,function]"])
    (raised,) = [c for c in outcome.checks if c.name == "d2y/dx2 [forward-over-forward, eager] ran"]
    assert not raised.passed
    assert "ValueError: Internal error: Tried to take gradients (or similar) of a variable" in raised.detail
    routes = _route_checks(outcome)
    assert routes["d2y/dx2 [forward-over-forward, function] vs float64 second differences"]
    (line,) = console.lines(outcome)
    assert line.endswith("  ✗ [forward-over-forward, eager]")


def test_no_tangent_through_stop_gradient_is_a_zero_not_a_finding() -> None:
    """Forward mode carries no tangent through stop_gradient (its JVP there is None, TensorFlow's
    convention); every route asks with unconnected_gradients=ZERO, so d(sum(stop_gradient(x) x))/dx = x
    by both routes, in both executions."""
    outcome = run_program({"y": "reduce_sum(stop_gradient(x) * x)"}, {"y": ["x"]}, inputs=WATCHED,
                          overrides=EVERY)
    assert outcome.passed and len(_route_checks(outcome)) == 6 and all(_route_checks(outcome).values())
    np.testing.assert_allclose(outcome.gradients["dy/dx"], X)


@pytest.mark.parametrize(("options", "overrides", "message"), [
    ({}, ["checks.modes=[sideways]"], "checks.modes: 'sideways' is not a route of derivative=gradient "
                                      "(reverse, forward)"),
    ({}, ["checks.modes=all", "checks.executions=[eager,turbo]"], "checks.executions: unknown 'turbo'"),
    ({"derivative": "jacobian"}, ["checks.modes=all"],
     "checks.modes: routes cross-examine derivative=gradient or hessian, not jacobian"),
    ({"targets": {"z": "x * 2", "y": "reduce_sum(z)"}, "gradients": {"y": ["z"]}}, ["checks.modes=all"],
     "checks.modes: scenario.gradients.y: forward mode pushes a tangent in at an input or a layer's "
     "variable; 'z' is a step"),
    ({"tapes": {"t0": {"watch": ["x"]}}, "gradients": {}, "derivatives": {"d": {"target": "y", "wrt": "x"}},
      "inputs": {"x": {"value": X}}},
     ["checks.modes=all"],
     "checks.modes: routes take a program of one tape's steps; scenario.tapes is more than that"),
])
def test_what_the_routes_cannot_take_is_refused_in_one_line(options: dict[str, Any], overrides: list[str],
                                                             message: str) -> None:
    targets = options.pop("targets", {"y": "reduce_sum(x * x)"})
    gradients = options.pop("gradients", {"y": ["x"]})
    inputs = options.pop("inputs", WATCHED)
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[")):
        run_program(targets, gradients, inputs=inputs, overrides=overrides, **options)


@pytest.mark.slow
def test_the_cross_examination_of_the_shipped_programs(tmp_path: Path) -> None:
    """conf/experiment/cross_examine.yaml's command, as its comment writes it: every job ok but the three
    TensorFlow's findings fail (docs/checks.md), each by the one route and execution that raised."""
    assert "#   tape-runner experiment=cross_examine" in (ROOT / "conf" / "experiment" / "cross_examine.yaml"
                                                         ).read_text()
    command = [sys.executable, "-m", "runner", "experiment=cross_examine", "plots=false"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 2, done.stderr[-2000:]  # a check failed
    records = {p.parent.name.split("_", 1)[1]: json.loads(p.read_text())
               for p in tmp_path.glob("outputs/multirun/*/*/*/results.json")}
    assert len(records) == 28
    failed = {name: [c for c in record["checks"] if not c["passed"]] for name, record in records.items()
              if record["status"] != "ok"}
    raised = "TensorFlow raised ValueError"
    found = {name: [(c["name"], c["detail"].split(":")[0]) for c in bad] for name, bad in failed.items()}
    assert found == {
        "hessian": [("d2f/dX2 [forward-over-forward, eager] ran", raised)],
        "guide_hessian": [("d2loss/dh.kernel2 [forward-over-forward, eager] ran", raised)],
        "guide_control_flow": [("dresult/dv0 [forward, xla] ran", "TensorFlow raised InvalidArgumentError")],
    }
    assert all(record["status"] == "ok" for name, record in records.items() if name not in failed)
    # every other route and execution of the three agreed with the run and with the oracle
    assert sum(len([c for c in r["checks"] if " [" in c["name"]]) for r in records.values()) > 300
