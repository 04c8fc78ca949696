"""What a tape does beside recording, said in a program: steps it does not record (``recorded: false``,
``tape.stop_recording()``) and values that leave it through NumPy (``numpy(...)``).

Each expected answer is the guide's, or TensorFlow's own from the same code written below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from runner.errors import ConfigError
from runner.routines import run_routine
from runner.tfenv import tf
from tests.conftest import assert_passed
from tests.test_language import run_program


@pytest.mark.parametrize("mode", ["eager", "function"])
def test_a_step_under_stop_recording_is_invisible_to_the_tape(load: Callable[..., Any], mode: str) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/stop_recording", f"compile={mode}")))
    assert outcome.gradients == {"dz/dx": 4.0, "dz/dy": None}
    assert "only through y_sq, which was computed under tape.stop_recording()" in outcome.notes["dz/dy"]
    assert "with tape.stop_recording():\n" in outcome.snippet and "    y_sq = (y * y)" in outcome.snippet
    recorded = assert_passed(run_routine(load("scenario=guide/stop_recording", f"compile={mode}",
                                              "scenario.targets.y_sq.recorded=true")))
    assert recorded.gradients == {"dz/dx": 4.0, "dz/dy": 6.0}


def test_the_tape_cannot_differentiate_with_respect_to_a_step_it_did_not_record() -> None:
    x = tf.Variable(3.0)
    with tf.GradientTape(persistent=True) as tape:
        with tape.stop_recording():
            u = x * x
        z = u * 2.0
    assert tape.gradient(z, u) is None  # TensorFlow's own answer, which the program must give
    outcome = assert_passed(run_program(
        {"u": {"expression": "x * x", "recorded": False}, "z": "u * 2.0"}, {"z": ["u", "x"]},
        inputs={"x": {"value": 3.0}}))
    assert outcome.gradients == {"dz/du": None, "dz/dx": None}
    assert "computed under tape.stop_recording()" in outcome.notes["dz/du"]


@pytest.mark.parametrize(("step", "options", "message"), [
    ({"expression": "x * x", "recorded": False, "watch": True}, {},
     "scenario.targets.u: unknown key 'watch'"),
    ({"expression": "x * x", "recorded": "no"}, {},
     "scenario.targets.u: expression is a string and recorded"),
    ({"expression": "x * x", "recorded": False}, {"derivative": "hessian"},
     "scenario.targets.u: recorded: false pauses the program's one tape"),
])
def test_unrecorded_step_mistakes_are_one_line_errors(step: dict[str, Any], options: dict[str, Any],
                                                      message: str) -> None:
    with pytest.raises(ConfigError) as err:
        run_program({"u": step, "z": "u * 2.0"}, {"z": ["x"]}, inputs={"x": {"value": 3.0}}, **options)
    assert str(err.value).startswith(message), str(err.value)


def test_a_numpy_detour_gives_none_as_in_the_guide(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/numpy_detour")))
    assert outcome.gradients == {"dy/dx": None}
    np.testing.assert_array_equal(outcome.values["y_np"], [5.0, 10.0])  # column means of x**2
    assert "inside stop_gradient or numpy()" in outcome.notes["dy/dx"]
    assert "y_np = tf.constant(np.asarray(tf.reduce_mean(x2, axis=0)))" in outcome.snippet
    kept = assert_passed(run_routine(load("scenario=guide/numpy_detour",
                                          "scenario.targets.y_np='reduce_mean(x2, axis=0)'")))
    np.testing.assert_allclose(kept.gradients["dy/dx"], [[0.5, 1.0], [1.5, 2.0]])  # x / 2


def test_a_numpy_detour_traced_into_a_tf_function_is_refused_as_tensorflow_refuses_it(
        load: Callable[..., Any]) -> None:
    with pytest.raises(ConfigError, match=r"numpy\(\): a NumPy detour needs an eager tensor"):
        run_routine(load("scenario=guide/numpy_detour", "compile=function"))


def test_a_saved_record_with_these_steps_is_read_back_and_a_malformed_one_refused() -> None:
    from runner.outputs.records import Rejected, validate

    steps = {"u": {"expression": "x * x", "recorded": False}, "ys": ["a", "b"], "z": "u * 2.0"}
    record = {"status": "ok", "config": {"scenario": {"targets": steps}}}
    assert validate(record) is record
    with pytest.raises(Rejected, match=r"config.scenario.targets.u.recorded: expected true or false"):
        validate({"config": {"scenario": {"targets": {"u": {"expression": "x", "recorded": "no"}}}}})


@pytest.mark.parametrize(("scenario", "overrides", "want"), [
    ("guide/watched", [], ["x0"]),  # the guide prints ['x0:0']: x1 is not trainable, x2 and x3 tensors
    ("guide/watch_accessed", [], ["x1"]),  # watch_accessed_variables=False: only tape.watch(x1)
    ("guide/keras_layer", [], ["y.kernel", "y.bias"]),
    ("guide/basic", ["scenario.watch_accessed_variables=false"], []),
    ("guide/watched", ["compile=function"], ["x0"]),
])
def test_the_tapes_watched_variables_are_recorded_by_name(load: Callable[..., Any], scenario: str,
                                                         overrides: list[str], want: list[str]) -> None:
    outcome = run_routine(load(f"scenario={scenario}", *overrides))
    assert outcome.watched_variables == want


@pytest.mark.parametrize("mode", ["eager", "function"])
def test_reset_throws_out_the_record_so_far_as_in_the_guide(load: Callable[..., Any], mode: str) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/reset", f"compile={mode}")))
    assert outcome.gradients == {"dz/dx": 4.0, "dz/dy": None}
    assert "thrown out by tape.reset() (reset_after: y_sq)" in outcome.notes["dz/dy"]
    assert "tape.reset()" in outcome.snippet
    kept = assert_passed(run_routine(load("scenario=guide/reset", f"compile={mode}",
                                          "scenario.reset_after=null")))
    assert kept.gradients == {"dz/dx": 4.0, "dz/dy": 6.0}


def test_reset_forgets_every_tape_watch_as_tensorflow_does() -> None:
    c = tf.constant(2.0)
    with tf.GradientTape() as tape:
        tape.watch(c)
        _ = c * 1.0
        tape.reset()
        z = c * c
    assert tape.gradient(z, c) is None  # TensorFlow's own answer, which the program must give
    outcome = assert_passed(run_program({"a": "c * 1.0", "z": "c * c"}, {"z": ["c"]},
                                        inputs={"c": {"value": 2.0, "kind": "constant", "watch": True}},
                                        reset_after="a"))
    assert outcome.gradients == {"dz/dc": None}


@pytest.mark.parametrize(("targets", "reset", "options", "message"), [
    ({"a": "x * 1.0", "z": "x * x"}, "q", {}, "scenario.reset_after: 'q' is not a step (steps: a, z)"),
    ({"a": {"expression": "x", "recorded": False}, "z": "x * x"}, "a", {},
     "scenario.reset_after: the steps up to the reset are expressions"),
    ({"a": "x * 1.0", "z": "x * x"}, "a", {"derivative": "hessian"},
     "scenario.reset_after: tape.reset() resets the program's one tape"),
])
def test_reset_mistakes_are_one_line_errors(targets: dict[str, Any], reset: str, options: dict[str, Any],
                                            message: str) -> None:
    with pytest.raises(ConfigError) as err:
        run_program(targets, {"z": ["x"]}, inputs={"x": {"value": 3.0}}, reset_after=reset, **options)
    assert str(err.value).startswith(message), str(err.value)


def test_an_op_with_no_registered_gradient_raises_lookup_error_as_expected(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/no_gradient")))
    assert outcome.gradients == {"dnew_image/dimage": None, "dnew_image/ddelta": None}
    (lookup,) = [c for c in outcome.checks if "LookupError" in c.name]
    assert lookup.detail == "LookupError: gradient registry has no entry for: AdjustContrastv2"
    # Its forward value, (x - mean) * 0.1 + mean over a 1x1 image: the image itself.
    np.testing.assert_allclose(outcome.values["new_image"], [[[0.5, 0.0, 0.0]]])


def test_a_gradient_planted_for_adjust_contrast_is_caught(load: Callable[..., Any]) -> None:
    """TensorFlow's registry given a gradient for AdjustContrastv2: no LookupError, and the check says so."""
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry  # planted, then restored
    registry["AdjustContrastv2"] = {"type": lambda op, grad: [grad, None], "location": []}
    try:
        outcome = run_routine(load("scenario=guide/no_gradient"))
    finally:
        del registry["AdjustContrastv2"]
    (lookup,) = [c for c in outcome.checks if "LookupError" in c.name]
    assert not lookup.passed and lookup.detail == "TensorFlow raised no LookupError"


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_assign_add_breaks_the_path_as_in_the_guide(load: Callable[..., Any], mode: str) -> None:
    # timing_repeats: the step runs several times, and each run starts from x1 = 0 again
    outcome = assert_passed(run_routine(load("scenario=guide/stateful_op", f"compile={mode}",
                                             "timing_repeats=3")))
    assert outcome.gradients == {"dy/dx0": None, "dy/dx1": 6.0}  # x1 now holds 0 + 3: 2 * 3
    assert outcome.values["y"] == 9.0
    assert "only through x1.assign_add(...), a stateful op" in outcome.notes["dy/dx0"]
    assert "update = x1.assign_add(x0)" in outcome.snippet


@pytest.mark.parametrize(("targets", "message"), [
    ({"u": "assign_add(c, x)", "y": "c * 2.0"}, "scenario.targets.u: assign_add updates a variable input; "
                                                  "'c' is not one"),
    ({"u": "assign_add(x, [1.0, 2.0])", "y": "x * 2.0"}, "scenario.targets.u: assign_add would change x's"),
    ({"u": "assign_add(x + 1.0, x)", "y": "x * 2.0"}, "assign_add(variable, value): a variable's name"),
])
def test_assign_add_mistakes_are_one_line_errors(targets: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        run_program(targets, {"y": ["x"]},
                    inputs={"x": {"value": 3.0}, "c": {"value": 1.0, "kind": "constant"}})
    assert str(err.value).startswith(message), str(err.value)
