"""Programs through the real CLI: the guide's examples as one sweep, quoting, shape errors, user configs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import CliRun, assert_snippets_reproduce

pytestmark = pytest.mark.slow

#: The guide's numbers (TensorFlow's autodiff guides), per scenario: label -> value (None: null).
GUIDE: dict[str, dict[str, Any]] = {
    "guide_basic": {"dy/dx": 6.0},
    "guide_watched": {"dy/dx0": 6.0, "dy/dx1": None, "dy/dx2": None, "dy/dx3": None},
    "guide_watch_constant": {"dy/dx": 6.0},
    "guide_watch_accessed": {"dys/dx0": None, "dys/dx1": 0.9999546},
    "guide_intermediate": {"dz/dy": 18.0},
    "guide_persistent": {"dz/dx": [4.0, 108.0], "dy/dx": [2.0, 6.0]},
    "guide_non_persistent": {"dz/dx": 108.0, "dy/dx": None},
    "guide_multiple_targets": {"dy0/dx": 4.0, "dy1/dx": -0.25, "dys/dx": 3.75, "dyd/dx": 3.75},
    "guide_vector_target": {"dy/dx": 7.0},
    "guide_control_flow": {"dresult/dv0": 1.0, "dresult/dv1": None, "dresult/dx": None},
    "guide_unconnected": {"dz/dx": None, "dz/dy": 6.0},
    "guide_unconnected_zero": {"dz/dx": [0.0, 0.0]},
    "guide_two_tapes": {"dys_dx0": 1.0, "dys_dx1": 0.25},
    "guide_stop_gradient": {"dz/dx": 4.0, "dz/dy": None},
    "guide_stop_recording": {"dz/dx": 4.0, "dz/dy": None},
    "guide_reset": {"dz/dx": 4.0, "dz/dy": None},
    "guide_clip_gradients": {"doutput/dv": 2.0},
    "guide_saved_model": {"doutput/dv": 2.0},
    "guide_nested_tapes": {"ddy_dx/dx": 6.0},
    "guide_variable_replaced": {"dy/dx (epoch 0)": 1.0, "dy/dx (epoch 1)": None},
    "guide_numpy_detour": {"dy/dx": None},
    "guide_integer_dtype": {"dy/dx": None},
    "guide_stateful_op": {"dy/dx0": None, "dy/dx1": 6.0},
}
#: The shapes of the advanced guide's tensor results: Jacobians, a batch Jacobian, a Hessian, a gradient's
#: gradient.
GUIDE_SHAPES: dict[tuple[str, str], tuple[int, ...]] = {
    ("guide_jacobian_scalar_source", "dy/ddelta"): (201,),
    ("guide_jacobian_matrix", "dy/dy.kernel"): (7, 10, 5, 10),
    ("guide_hessian", "d2loss/dh.kernel2"): (5, 8, 5, 8),
    ("guide_batch_jacobian", "dy/dx"): (7, 6, 5),
    ("guide_batch_norm", "dy/dx"): (7, 6, 7, 5),
    ("guide_input_gradient", "dg1_mag/dy.kernel"): (5, 10),
    ("guide_input_gradient", "dg1_mag/dy.bias"): (10,),
    ("guide_gradient_vs_jacobian", "j"): (7, 10, 5, 10),
    ("guide_batch_jacobian_vs_jacobian", "jb"): (7, 6, 5),
}


def _results(run: CliRun) -> dict[str, dict[str, Any]]:
    return {r["scenario"]: r for r in (json.loads((d / "results.json").read_text()) for d in run.run_dirs())}


def test_tf_guide_experiment_reproduces_the_guides_numbers(cli: Callable[..., CliRun]) -> None:
    run = cli("experiment=tf_guide", timeout=900)
    assert run.returncode == 0, run.stderr
    results = _results(run)
    assert len(results) == 36
    assert all(r["status"] == "ok" and all(c["passed"] for c in r["checks"]) for r in results.values())
    for name, expected in GUIDE.items():
        for label, want in expected.items():
            got = results[name]["gradients"][label]
            assert (got is None) if want is None else np.allclose(got, want, rtol=1e-6), (name, label, got)
    for (name, label), shape in GUIDE_SHAPES.items():
        assert np.shape(results[name]["gradients"][label]) == shape, (name, label)
    assert np.shape(results["guide_hessian"]["values"]["d2loss/dh.kernel2 Newton step"]) == (5, 8)
    # A float32 eigenvalue of about -1e-8 is a 0 in that precision: semi-definite, not a saddle.
    assert "positive semi-definite" in results["guide_hessian"]["notes"]["d2loss/dh.kernel2"]
    batch_norm = np.array(results["guide_batch_norm"]["gradients"]["dy/dx"])  # examples coupled: b != c
    assert np.abs(batch_norm[0, :, 1, :]).max() > 1e-3 and np.abs(batch_norm[6, :, 2, :]).max() > 1e-3
    non_persistent = results["guide_non_persistent"]
    (refusal,) = [c for c in non_persistent["checks"] if "non-persistent" in c["name"]]
    assert "can only be used to compute one set of gradients" in refusal["detail"]
    no_gradient = results["guide_no_gradient"]
    assert no_gradient["gradients"] == {"dnew_image/dimage": None, "dnew_image/ddelta": None}
    (lookup,) = [c for c in no_gradient["checks"] if "LookupError" in c["name"]]
    assert lookup["detail"] == "LookupError: gradient registry has no entry for: AdjustContrastv2"
    sigmoid = results["guide_sigmoid"]["gradients"]["dy/dx"]
    assert len(sigmoid) == 201 and sigmoid[100] == 0.25 and max(sigmoid) == 0.25
    (sigmoid_dir,) = [d for d in run.run_dirs() if d.name.endswith("guide_sigmoid")]
    # An elementwise program: SymPy with one symbol per input, at any size (the report shows its derivative).
    assert "exp(-x)/(1 + exp(-x))**2" in (sigmoid_dir / "report.md").read_text()
    layer = results["guide_layer"]
    x, w = np.array(layer["inputs"]["x"]), np.array(layer["inputs"]["w"])
    assert np.array(layer["gradients"]["dloss/dw"]).shape == (3, 2)
    keras = results["guide_keras_layer"]["gradients"]  # the guide's Dense(2, activation='relu')
    assert np.shape(keras["dloss/dy.kernel"]) == (3, 2) and np.shape(keras["dloss/dy.bias"]) == (2,)
    np.testing.assert_allclose(layer["gradients"]["dloss/db"], (x @ w)[0], rtol=1e-5)  # b is zeros
    as_dict = results["guide_dict_sources"]  # the same layer, its sources handed over as a dict
    np.testing.assert_allclose(as_dict["gradients"]["dloss/db"], (x @ w)[0], rtol=1e-5)
    assert results["guide_nested_tapes"]["values"]["dy_dx"] == 3.0  # the inner tape's gradient, a step
    # TensorFlow's own warnings go to each job's log, not the console (the notes say what they mean).
    assert "[tensorflow]" not in run.stdout + run.stderr
    (int_dir,) = [d for d in run.run_dirs() if d.name.endswith("guide_integer_dtype")]
    assert "[tensorflow][WARNING] - The dtype of the watched tensor must be floating" in (
        int_dir / "tape-runner.log").read_text()
    # The guide's own assertions: the gradient is the summed Jacobian, the batch Jacobian its blocks.
    assert results["guide_gradient_vs_jacobian"]["values"]["delta"] < 1e-3
    assert results["guide_batch_jacobian_vs_jacobian"]["values"]["error"] < 1e-3
    assert_snippets_reproduce(run.run_dirs())


def test_a_sweep_over_expressions_with_commas_spaces_and_matmul(cli: Callable[..., CliRun]) -> None:
    run = cli("-m", "scenario=program", "scenario.targets.y=x @ w + b",
              "scenario.targets.loss=reduce_mean(y**2),reduce_sum(where(y > 0, y, 0.1 * y)**2)")
    assert run.returncode == 0, run.stderr
    results = sorted((json.loads((d / "results.json").read_text()) for d in run.run_dirs()),
                     key=lambda r: r["job"]["num"])
    assert [r["status"] for r in results] == ["ok", "ok"]
    x, w = np.array(results[0]["inputs"]["x"]), np.array(results[0]["inputs"]["w"])
    y = x @ w
    np.testing.assert_allclose(results[0]["values"]["loss"], np.mean(y**2), rtol=1e-5)
    leaky = np.where(y > 0, y, 0.1 * y)
    np.testing.assert_allclose(results[1]["values"]["loss"], np.sum(leaky**2), rtol=1e-5)
    np.testing.assert_allclose(results[1]["gradients"]["dloss/db"], (2 * leaky * np.where(y > 0, 1, 0.1))[0],
                               rtol=1e-5)


def test_shape_error_exits_1_in_one_line(cli: Callable[..., CliRun]) -> None:
    run = cli("scenario=program", "scenario.inputs.w.shape=[2, 2]")
    assert run.returncode == 1
    assert "scenario.targets.y: x @ w cannot multiply shapes (1, 3) and (2, 2)" in run.stdout + run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert run.results["status"] == "error"


def test_users_own_scenarios_outside_the_checkout(cli: Callable[..., CliRun], tmp_path: Path) -> None:
    mine = tmp_path / "my_scenarios" / "scenario"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text(
        "defaults:\n  - /schema/scenario/program@_here_\n  - _self_\n"
        "name: mine\ninputs:\n  x: {value: [1.0, 2.0]}\n"
        "targets:\n  y: reduce_sum(x**3)\ngradients:\n  y: [x]\n")
    run = cli("--config-dir", str(tmp_path / "my_scenarios"), "scenario=mine")
    assert run.ok()["gradients"] == {"dy/dx": [3.0, 12.0]}


def test_the_unconnected_crash_now_gives_zeros_or_none(cli: Callable[..., CliRun]) -> None:
    words = ["scenario=unconnected", "scenario.inputs.x.value=null",
             "+scenario.inputs.x.linspace={start: 2, stop: 2, num: 2}", "scenario.inputs.y.value=3"]
    assert cli(*words).ok()["gradients"] == {"dz/dx": [0.0, 0.0], "dz/dy": 6.0}
    none = cli(*words, "scenario.unconnected_gradients=none").ok()
    assert none["gradients"] == {"dz/dx": None, "dz/dy": 6.0}
