"""What a program says the way the guide writes it: steps before the tape (``setup:``), inputs of their
own dtype, sources given as a dict, targets that are lists or dicts.

Expected numbers are the guide's (TensorFlow's autodiff guides) or worked out by hand here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from runner.errors import ConfigError
from runner.routines import run_routine
from tests.conftest import assert_passed
from tests.test_language import run_program


def test_a_tensor_made_before_the_tape_is_not_watched_as_in_the_guide(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/watched")))
    assert outcome.gradients == {"dy/dx0": 6.0, "dy/dx1": None, "dy/dx2": None, "dy/dx3": None}
    assert "scenario.setup, before the tape opened" in outcome.notes["dy/dx2"]
    assert outcome.inputs["x2"] == 3.0  # 2.0 + 1.0, computed by TensorFlow before the tape
    assert "x2 = (x2_variable + tf.constant(1.0, tf.float32))" in outcome.snippet
    watched = assert_passed(run_routine(load("scenario=guide/watched", "scenario.watch=[x2]")))
    assert watched.gradients["dy/dx2"] == 6.0  # 2 * x2 at 3, once tape.watch(x2)
    assert "    tape.watch(x2)" in watched.snippet


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_setup_steps_read_inputs_and_each_other_and_the_tape_sees_none_of_them(mode: str) -> None:
    outcome = assert_passed(run_program(
        {"y": "a**3 + w"}, {"y": ["a", "v", "w"]}, inputs={"v": {"value": 1.0}, "w": {"value": 5.0}},
        setup={"u": "2 * v", "a": "u + 1"}, watch=["a"], overrides=[f"compile={mode}"]))
    assert outcome.gradients["dy/da"] == 27.0  # 3 a**2 at a = 2*1 + 1 = 3
    assert outcome.gradients["dy/dw"] == 1.0 and outcome.gradients["dy/dv"] is None
    assert "reads v only through a, computed in scenario.setup" in outcome.notes["dy/dv"]
    assert any(c.name == "a vs float64 forward pass (setup, before the tape)" and c.passed
               for c in outcome.checks)


@pytest.mark.parametrize(("setup", "watch", "message"), [
    ({"x": "w + 1"}, [], "scenario.setup.x: the name is already an input"),
    ({"a": "b + 1", "b": "w"}, [], "scenario.setup.a: unknown name 'b'"),
    ({"a": "w + 1"}, ["w"], "scenario.watch: 'w' is not a setup step; an input is watched with "
                            "scenario.inputs.w.watch=true"),
    ({"a": "w + 1"}, ["q"], "scenario.watch: 'q' is not a setup step (setup steps: a)"),
    ({"y": "w + 1"}, [], "scenario.targets.y: the name is already an input or a setup step"),
])
def test_setup_mistakes_are_one_line_errors(setup: dict[str, str], watch: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        run_program({"y": "x * w"}, {"y": ["x"]}, setup=setup, watch=watch)
    assert str(err.value).startswith(message), str(err.value)


def test_an_int32_input_gets_none_with_tensorflows_warning_in_the_note(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/integer_dtype")))
    assert outcome.gradients == {"dy/dx": None} and outcome.values["y"] == 100
    assert outcome.values["y"].dtype == np.int32
    assert ("The dtype of the watched tensor must be floating (e.g. tf.float32), got tf.int32"
            in outcome.notes["dy/dx"])
    assert "x = tf.constant(np.asarray(10, dtype=np.float64), tf.int32)" in outcome.snippet
    as_float = assert_passed(run_routine(load("scenario=guide/integer_dtype",
                                              "scenario.inputs.x.dtype=float32")))
    assert as_float.gradients["dy/dx"] == 20.0  # 2x at 10


def test_a_value_written_as_a_whole_number_says_what_tensorflow_would_make_of_it(
        load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/basic", "scenario.inputs.x.value=10")))
    assert outcome.gradients["dy/dx"] == 20.0
    assert "tf.constant(10) would be int32" in outcome.notes["x"]
    assert "x" not in run_routine(load("scenario=guide/basic")).notes  # 3.0: a float, nothing to say


def test_an_input_of_another_float_dtype_computes_its_steps_in_it() -> None:
    outcome = assert_passed(run_program({"y": "x * 0.1"}, {"y": ["x"]}, inputs={"x": {"value": 1.0,
                                        "dtype": "float64"}}, overrides=["dtype=float32"]))
    assert outcome.values["y"].dtype == np.float64 and outcome.values["y"] == 0.1  # 0.1 in float64, exact
    assert outcome.gradients["dy/dx"].dtype == np.float64


@pytest.mark.parametrize(("targets", "inputs", "message"), [
    ({"y": "x / 2"}, {}, "scenario.targets.y: the operator / on int32"),
    ({"y": "x * 2.5"}, {}, "scenario.targets.y: the number 2.5 on int32"),
    ({"y": "sin(x)"}, {}, "scenario.targets.y: sin(x) on int32"),
    ({"y": "x * w"}, {"w": {"value": 1.0}}, "scenario.targets.y: reads w (the run's dtype), x (int32); "
                                             "TensorFlow does not mix dtypes"),
])
def test_integer_steps_refuse_what_tensorflow_would_refuse_or_turn_into_floats(
        targets: dict[str, str], inputs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        run_program(targets, {"y": ["x"]}, inputs={"x": {"value": 10, "dtype": "int32"}, **inputs})
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize(("spec", "message"), [
    ({"value": 2.5, "dtype": "int32"}, "scenario.inputs.x: an int32 input takes a value of whole numbers"),
    ({"linspace": {"start": 0, "stop": 1, "num": 3}, "dtype": "int64"}, "scenario.inputs.x: an int64 input"),
    ({"value": 1, "dtype": "int8"}, "scenario.inputs.x.dtype: unknown dtype 'int8'"),
])
def test_input_dtype_mistakes_are_one_line_errors(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        run_program({"y": "x * x"}, {"y": ["x"]}, inputs={"x": spec})
    assert str(err.value).startswith(message), str(err.value)


def test_sources_given_as_a_dict_are_asked_of_the_tape_as_a_dict(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/dict_sources")))
    x, w = np.array([[1.0, 2.0, 3.0]]), outcome.inputs["w"].astype(np.float64)
    y = x @ w  # b is zeros; loss = mean(y**2) over 2 elements, so dloss/dy = y
    np.testing.assert_allclose(outcome.gradients["dloss/dw"], x.T @ y, rtol=1e-5)
    np.testing.assert_allclose(outcome.gradients["dloss/db"], y[0], rtol=1e-5)
    assert "tape.gradient(loss, {'w': w, 'b': b}" in outcome.snippet
    with pytest.raises(ConfigError, match=r"scenario.gradients.y: give the sources as a list of names"):
        run_program({"y": "x @ w"}, {"y": {"a": 1.0}})  # type: ignore[dict-item]


def test_list_and_dict_targets_are_differentiated_as_their_sum(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/multiple_targets")))
    assert outcome.gradients == {"dy0/dx": 4.0, "dy1/dx": -0.25, "dys/dx": 3.75, "dyd/dx": 3.75}
    assert outcome.values["ys"] == 4.5  # x**2 + 1/x at 2: the sum the tape differentiates
    assert "    ys = [y0, y1]" in outcome.snippet and "tape.gradient(ys, [x]" in outcome.snippet
    assert "    yd = {'y0': y0, 'y1': y1}" in outcome.snippet


def test_a_list_target_may_hold_tensors_of_different_shapes() -> None:
    # a = x (2,), b = 3 x[0] (): the sum's gradient is [1 + 3, 1]; stack() could not hold them.
    outcome = assert_passed(run_program({"a": "x", "b": "3 * x[0]", "ab": "[a, b]"}, {"ab": ["x"]},
                                        inputs={"x": {"value": [1.0, 2.0]}}))
    np.testing.assert_array_equal(outcome.gradients["dab/dx"], [4.0, 1.0])


@pytest.mark.parametrize(("targets", "options", "message"), [
    ({"y": "x", "ys": "[y, q]"}, {}, "scenario.targets.ys: 'q' is neither an input nor a step before ys"),
    ({"y": "x", "ys": "[y, y]"}, {}, "scenario.targets.ys: a step appears twice"),
    ({"y": "x", "ys": "[y]", "z": "ys * 2"}, {}, "scenario.targets.z: reads ys, a list or dict target"),
    ({"y": "x", "ys": "[y]"}, {"derivative": "jacobian"}, "scenario.targets.ys: a list or dict target is "
                                                          "differentiated by tape.gradient only"),
])
def test_structured_target_mistakes_are_one_line_errors(targets: dict[str, str], options: dict[str, Any],
                                                        message: str) -> None:
    with pytest.raises(ConfigError) as err:
        run_program(targets, {"ys": ["x"]}, **options)
    assert str(err.value).startswith(message), str(err.value)


def test_the_summary_shows_tensorflows_error_where_a_gradient_was_refused(load: Callable[..., Any]) -> None:
    from runner.outputs.glance import gradient_cell

    refused = assert_passed(run_routine(load("scenario=guide/non_persistent")))
    unconnected = assert_passed(run_routine(load("scenario=guide/unconnected")))
    cell = gradient_cell({"gradients": refused.gradients, "notes": refused.notes}, "dy/dx")
    assert cell.text == "RuntimeError" and "non-persistent" in cell.title
    plain = gradient_cell({"gradients": unconnected.gradients, "notes": unconnected.notes}, "dz/dx")
    assert plain.text == "None"


def test_the_scalar_source_jacobian_is_plotted_over_x_as_the_guide_plots_it(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/jacobian_scalar_source")))
    (curve,) = outcome.figures
    x = curve.x
    sigmoid = 1 / (1 + np.exp(-x))  # delta = 0: dy/ddelta = sigmoid'(x)
    np.testing.assert_allclose(curve.series["dy/ddelta"], sigmoid * (1 - sigmoid), atol=1e-6)


def test_a_layers_trainable_variables_are_its_sources_as_in_the_guide() -> None:
    inputs = {"x": {"value": [[1.0, 2.0], [3.0, 5.0]], "kind": "constant"},
              "w2": {"value": [[1.0, 2.0], [3.0, -1.0]], "kind": "constant"}}
    outcome = assert_passed(run_program(
        {"h": {"layer": "BatchNormalization", "input": "x", "training": True}, "loss": "reduce_sum(h * w2)"},
        {"loss": "h.trainable_variables"}, inputs=inputs))
    # gamma and beta, not the moving mean and variance Keras keeps untrainable; dloss/dbeta sums w2's rows
    assert list(outcome.gradients) == ["dloss/dh.gamma", "dloss/dh.beta"]
    np.testing.assert_allclose(outcome.gradients["dloss/dh.beta"], [4.0, 1.0], rtol=1e-6)


def test_trainable_variables_of_a_step_that_is_no_layer_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError) as err:
        run_program({"y": "x * 2"}, {"y": ["x.trainable_variables"]})
    assert str(err.value) == "scenario.gradients.y: 'x.trainable_variables': 'x' is no layer step"
