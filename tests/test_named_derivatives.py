"""``derivatives:``, ``after:`` and ``tapes:``: several derivatives of one tape, named, steps over them,
and several tapes at once, each watching its own inputs.

Expected numbers are worked out by hand in NumPy here (or are the guide's own assertions); a wrong
gradient planted in TensorFlow's registry shows what the guide's comparison cannot see.
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
from tests.planted import planted, scaled
from tests.test_language import W, X, run_program


def test_the_gradient_is_the_jacobian_summed_as_in_the_guide(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/gradient_vs_jacobian")))
    j, g = outcome.gradients["j"], outcome.gradients["g"]
    assert j.shape == (7, 10, 5, 10) and g.shape == (5, 10)
    np.testing.assert_allclose(outcome.values["j_sum"], j.sum(axis=(0, 1)), rtol=1e-6, atol=1e-6)
    assert outcome.values["delta"] < 1e-5  # the guide asserts < 1e-3
    assert outcome.values["delta"] == pytest.approx(np.abs(g - j.sum(axis=(0, 1))).max(), abs=1e-6)
    checked = {c.name for c in outcome.checks}
    assert {"j vs float64 central differences (every element)", "g vs float64 central differences "
            "(every element)", "delta vs float64 (over the tape's derivatives)"} <= checked
    assert "j = tape.jacobian(y, _weights['y.kernel']" in outcome.snippet
    assert "delta = tf.reduce_max(tf.abs((g - j_sum)))" in outcome.snippet


def test_einsum_picks_the_batch_jacobians_blocks_out_of_the_jacobian(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/batch_jacobian_vs_jacobian")))
    j, jb = outcome.gradients["j"], outcome.gradients["jb"]
    blocks = np.stack([j[b, :, b, :] for b in range(7)])  # example b's outputs against its own inputs
    np.testing.assert_array_equal(outcome.values["j_select"], blocks)
    np.testing.assert_allclose(outcome.values["j_sum"], blocks, atol=1e-7)  # every other block is 0
    np.testing.assert_allclose(jb, blocks, atol=1e-6)
    assert outcome.values["error"] < 1e-6


def test_a_wrong_gradient_both_routes_share_is_caught_where_the_guides_comparison_passes(
        load: Callable[..., Any]) -> None:
    with planted("Elu", scaled(1.01)):
        outcome = run_routine(load("scenario=guide/batch_jacobian_vs_jacobian"))
    assert outcome.values["error"] < 1e-3  # the guide's own assertion holds: both routes are wrong alike
    failed = {c.name for c in outcome.checks if not c.passed}
    assert failed == {"j vs float64 central differences (every element)",
                      "jb vs float64 central differences (every element; other examples' blocks zero)"}


def test_named_derivatives_beside_gradients_with_a_list_of_sources() -> None:
    outcome = assert_passed(run_program(
        {"y": "einsum('ij,jk->ik', x, w)"}, {"y": ["w"]}, persistent=True,
        derivatives={"jac": {"kind": "jacobian", "target": "y", "wrt": ["x", "w"]},
                     "gx": {"target": "y", "wrt": "x"}},
        after={"total": "reduce_sum(gx) * 2"}))
    ones = np.ones((2, 2))
    np.testing.assert_allclose(outcome.gradients["dy/dw"], X.T @ ones)
    np.testing.assert_allclose(outcome.gradients["gx"], ones @ W.T)
    by_x = np.zeros((2, 2, 2, 3))  # dy[i, j]/dx[k, l] = W[l, j] where i == k
    by_w = np.zeros((2, 2, 3, 2))  # dy[i, j]/dw[k, l] = X[i, k] where j == l
    for i in range(2):
        for j in range(2):
            by_x[i, j, i, :] = W[:, j]
            by_w[i, j, :, j] = X[i, :]
    np.testing.assert_allclose(outcome.gradients["jac[x]"], by_x)
    np.testing.assert_allclose(outcome.gradients["jac[w]"], by_w)
    assert outcome.values["total"] == pytest.approx(2 * (ones @ W.T).sum())


def test_a_planted_einsum_gradient_is_caught_in_a_named_gradient() -> None:
    with planted("Einsum", scaled(1.01)):
        outcome = run_program({"y": "einsum('ij,jk->ik', x, w)"},
                              derivatives={"gx": {"target": "y", "wrt": "x"}})
    assert [c.name for c in outcome.checks if not c.passed] == [
        "gx vs SymPy", "gx vs float64 central differences (every element)"]


def test_an_after_step_computed_wrongly_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tf, "einsum", lambda equation, *ops: tf.linalg.einsum(equation, *ops) * 1.01)
    outcome = run_program({"y": "x * 2"}, persistent=True,
                          derivatives={"j": {"kind": "jacobian", "target": "y", "wrt": "x"}},
                          after={"d": "einsum('ijij->ij', j)"})
    assert [c.name for c in outcome.checks if not c.passed] == [
        "d vs float64 (over the tape's derivatives)"]


def test_an_after_step_over_a_none_says_so() -> None:
    outcome = run_program({"y": "x * 2", "z": "w * 3"}, persistent=True,
                          derivatives={"g": {"target": "z", "wrt": "x"}}, after={"s": "reduce_sum(g)"})
    assert outcome.gradients["g"] is None
    (failed,) = [c for c in outcome.checks if not c.passed]
    assert failed.name == "s computed" and failed.detail == "reads g, which TensorFlow returned as None"


@pytest.mark.parametrize(("options", "message"), [
    ({"derivatives": {"h": {"kind": "hessian", "target": "y", "wrt": "x"}}},
     "scenario.derivatives.h: kind 'hessian' is not one of gradient, jacobian, batch_jacobian (a Hessian "
     "or a JVP is the program's own derivative: scenario.derivative=hessian)"),
    ({"derivatives": {"g": {"target": "q", "wrt": "x"}}}, "scenario.derivatives.g: no step named 'q'"),
    ({"derivatives": {"g": {"target": "y", "wrt": "q"}}},
     "scenario.derivatives.g: 'q' is neither an input nor a step before y"),
    ({"derivatives": {"g": {"target": "y", "wrt": ["x", "x"]}}},
     "scenario.derivatives.g: wrt is a source's name or a list of distinct names"),
    ({"derivatives": {"g": {"target": "y"}}}, "scenario.derivatives.g: give {kind: gradient|jacobian|"),
    ({"derivatives": {"x": {"target": "y", "wrt": "w"}}},
     "scenario.derivatives.x: the name is already an input or a step"),
    ({"derivatives": {"g": {"target": "y", "wrt": "x"}}, "gradients": {"y": ["w"]}, "persistent": False},
     "scenario.derivatives: 2 calls on one tape need a persistent tape"),
    ({"after": {"s": "y * 2"}}, "scenario.after: its steps read named derivatives"),
    ({"derivatives": {"g": {"target": "y", "wrt": "x"}}, "after": {"y": "g * 2"}},
     "scenario.after.y: the name is already an input, a step or a derivative"),
    ({"derivatives": {"g": {"target": "y", "wrt": ["x"]}}, "after": {"s": "g * 2"}},
     "scenario.after.s: reads g, a list of derivatives"),
    ({"derivatives": {"g": {"target": "y", "wrt": "x"}}, "after": {"s": "g @ w2"}},
     "scenario.after.s: g @ w2 cannot multiply shapes (2, 3) and (2, 2)"),
    ({"derivatives": {"g": {"kind": "batch_jacobian", "target": "y", "wrt": "w"}}},
     "scenario.derivatives.g: batch_jacobian needs y (2, 2) and w (3, 2) to share"),
    ({"derivatives": {"g": {"target": "y", "wrt": "x"}}, "derivative": "jacobian"},
     "scenario.derivatives: each entry names its own kind; scenario.derivative stays gradient"),
])
def test_named_derivative_mistakes_are_one_line_errors(options: dict[str, Any], message: str) -> None:
    inputs = {"x": {"value": X.tolist()}, "w": {"value": W.tolist()}, "w2": {"init": "ones", "shape": [2, 2]}}
    with pytest.raises(ConfigError) as err:
        run_program({"y": "x @ w"}, inputs=inputs, **{"persistent": True, **options})
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_two_tapes_each_see_only_what_they_watch(load: Callable[..., Any], mode: str) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/two_tapes", f"compile={mode}")))
    assert outcome.gradients == {"dys_dx0": 1.0, "dys_dx1": 0.25}  # cos(0), sigmoid(0) * (1 - sigmoid(0))
    crossed = assert_passed(run_routine(load("scenario=guide/two_tapes", f"compile={mode}",
                                             "scenario.derivatives.dys_dx0.tape=tape1",
                                             "scenario.derivatives.dys_dx1.tape=tape0")))
    assert crossed.gradients == {"dys_dx0": None, "dys_dx1": None}  # each asked of the other's tape
    assert crossed.notes["dys_dx0"] == ("x0 is a tf.constant and tape1.watch(x0) was not called, so tape1 "
                                        "did not record it (add it to scenario.tapes.tape1.watch)")
    assert "as tape0, tf.GradientTape(persistent=False, watch_accessed_variables=True) as tape1:" in (
        outcome.snippet)


def test_a_tape_asked_twice_must_be_persistent() -> None:
    derivatives = {"a": {"target": "y", "wrt": "x", "tape": "t"},
                   "b": {"target": "y", "wrt": "w", "tape": "t"}}
    with pytest.raises(ConfigError, match=r"scenario.tapes.t: 2 derivatives are asked of it, so it must be "
                                          r"persistent \(scenario.tapes.t.persistent=true\)"):
        run_program({"y": "reduce_sum(x * 2) + reduce_sum(w)"}, tapes={"t": {"watch": ["x"]}},
                    derivatives=derivatives)
    outcome = assert_passed(run_program({"y": "reduce_sum(x * 2) + reduce_sum(w)"}, derivatives=derivatives,
                                        tapes={"t": {"watch": ["x", "w"], "persistent": True}}))
    np.testing.assert_array_equal(outcome.gradients["a"], np.full((2, 3), 2.0))
    np.testing.assert_array_equal(outcome.gradients["b"], np.ones((3, 2)))


@pytest.mark.parametrize(("options", "message"), [
    ({"gradients": {"y": ["x"]}}, "scenario.gradients: not with scenario.tapes; name each derivative"),
    ({"inputs": {"x": {"value": 1.0, "watch": True}}},
     "scenario.inputs.x.watch: with scenario.tapes, each tape's watch names what it watches"),
    ({"tapes": {"t0": {"watch": ["q"]}}},
     "scenario.tapes.t0.watch: 'q' is neither an input nor a setup step"),
    ({"tapes": {"t0": {"watched": ["x"]}}}, "scenario.tapes.t0: give {watch: [<input or setup step>, ...]"),
    ({"tapes": {"y": {"watch": ["x"]}}}, "scenario.tapes.y: the name is already an input or a step"),
    ({"derivatives": {"g": {"target": "y", "wrt": "x", "tape": "t9"}}},
     "scenario.derivatives.g: no tape named 't9' in scenario.tapes (tapes: t0, t1)"),
    ({"derivatives": {"g": {"target": "y", "wrt": "x"}}},
     "scenario.derivatives.g: say which tape it is asked of (tape: t0 or t1)"),
    ({"targets": {"y": {"expression": "x * 2", "recorded": False}}},
     "scenario.tapes: gradient steps, custom gradients and steps written with recorded: false"),
    ({"derivatives": {}}, "scenario.tapes: ask each tape for its derivatives in scenario.derivatives"),
])
def test_several_tapes_mistakes_are_one_line_errors(options: dict[str, Any], message: str) -> None:
    given = {"inputs": {"x": {"value": 1.0}}, "targets": {"y": "x * 2"},
             "tapes": {"t0": {"watch": ["x"]}, "t1": {}},
             "derivatives": {"g": {"target": "y", "wrt": "x", "tape": "t0"}}, **options}
    with pytest.raises(ConfigError) as err:
        run_program(given.pop("targets"), **given)
    assert str(err.value).startswith(message), str(err.value)
