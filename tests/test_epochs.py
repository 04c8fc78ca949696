"""``epochs:`` and ``rebind:``: a program run several times, its inputs rebound between epochs as Python's
``x = x + 1`` rebinds a name (or updated in place with ``assign_add``), as in the guide's pitfall.

Expected numbers are the guide's, or worked out by hand here.
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


@pytest.mark.parametrize("mode", ["eager", "function"])
def test_a_variable_rebound_to_a_tensor_gets_none_in_the_next_epoch(load: Callable[..., Any],
                                                                    mode: str) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/variable_replaced", f"compile={mode}")))
    assert outcome.gradients == {"dy/dx (epoch 0)": 1.0, "dy/dx (epoch 1)": None}  # the guide's 1.0, None
    assert outcome.inputs["x"] == 2.0 and outcome.inputs["x (epoch 1)"] == 3.0
    assert outcome.values == {"y (epoch 0)": 3.0, "y (epoch 1)": 4.0}
    note = outcome.notes["dy/dx (epoch 1)"]
    assert note.startswith("x was rebound after epoch 0 (x = x + 1): a new tensor"), note
    assert "for epoch in range(2):" in outcome.snippet and "    x = (x + tf.constant(1" in outcome.snippet
    assert not outcome.unchecked


def test_a_variable_updated_in_place_keeps_its_gradient(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/variable_replaced",
                                             "scenario.rebind.x='assign_add(x, 1)'")))
    assert outcome.gradients == {"dy/dx (epoch 0)": 1.0, "dy/dx (epoch 1)": 1.0}
    assert outcome.values == {"y (epoch 0)": 3.0, "y (epoch 1)": 4.0}
    assert "    x.assign_add(tf.constant(1, tf.float32))" in outcome.snippet


def test_a_watched_tensor_rebound_is_watched_again_in_each_epoch() -> None:
    outcome = assert_passed(run_program(
        {"y": "reduce_sum(x**2)"}, {"y": ["x"]}, inputs={"x": {"value": [1.0, -2.0], "kind": "constant",
                                                          "watch": True}},
        epochs=3, rebind={"x": "x * 2"}))
    for epoch, x in enumerate(([1.0, -2.0], [2.0, -4.0], [4.0, -8.0])):
        np.testing.assert_array_equal(outcome.gradients[f"dy/dx (epoch {epoch})"], 2 * np.array(x))
    np.testing.assert_array_equal(outcome.inputs["x (epoch 2)"], [4.0, -8.0])


@pytest.mark.parametrize(("options", "message"), [
    ({"epochs": 0}, "scenario.epochs: 0 is not a whole number from 1 to 100"),
    ({"rebind": {"x": "x + 1"}}, "scenario.rebind takes effect between epochs: give scenario.epochs=2"),
    ({"epochs": 2, "rebind": {"q": "x + 1"}}, "scenario.rebind.q: 'q' is not an input (inputs: x, w)"),
    ({"epochs": 2, "rebind": {"x": "reduce_sum(x)"}},
     "scenario.rebind.x: reduce_sum(x) has shape (), not x's (2, 3)"),
    ({"epochs": 2, "rebind": {"x": "x + q"}}, "scenario.rebind.x: unknown name 'q'"),
    ({"epochs": 2, "rebind": {"x": "assign_add(w, 1)"}},
     "scenario.rebind.x: assign_add updates the variable in place: write assign_add(x, ...)"),
])
def test_epoch_mistakes_are_one_line_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        run_program({"y": "reduce_sum(x)"}, {"y": ["x"]}, **options)
    assert str(err.value).startswith(message), str(err.value)
