"""Custom gradients written in a config (``custom_gradients:``): the tape follows their ``grads``, and an
oracle that differentiates nothing with TensorFlow checks it did, caught out by planted mistakes.

Expected numbers are the guide's (clip_gradients: 2.0, not 4.0) or worked out here with NumPy.
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

CLIP = {"clip_gradients": {"args": ["y"], "value": "y", "grads": {"y": "clip_by_norm(upstream, 0.5)"}}}


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_the_guides_clip_gradients_gives_2_where_the_program_as_written_gives_4(
        load: Callable[..., Any], mode: str) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/clip_gradients", f"compile={mode}")))
    assert outcome.gradients == {"doutput/dv": 2.0}  # the incoming 1.0 clipped to 0.5, times 2v = 4
    assert outcome.values["doutput/dv (as written)"] == pytest.approx(4.0, rel=1e-8)
    assert any(c.name == "doutput/dv vs float64 differences through clip_gradients's grads" and c.passed
               for c in outcome.checks)
    assert "@tf.custom_gradient\ndef clip_gradients(y):" in outcome.snippet


def test_a_backward_pass_that_passes_upstream_on_gives_the_plain_gradient(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/clip_gradients",
                                             "scenario.custom_gradients.clip_gradients.grads.y=upstream")))
    assert outcome.gradients == {"doutput/dv": 4.0}


def test_log1pexp_is_sigmoid_at_every_point_even_where_e_to_the_x_overflows(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=log1pexp", "dtype=float64")))
    x = np.array([-100.0, -10.0, 0.0, 10.0, 100.0])
    np.testing.assert_allclose(outcome.gradients["dy/dx"], 1 / (1 + np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(outcome.values["y"], np.logaddexp(0.0, x), rtol=1e-12)
    as_float32 = assert_passed(run_routine(load("scenario=log1pexp")))
    assert as_float32.gradients["dy/dx"][-1] == 1.0  # e^100 is inf in float32; this never forms it


def test_a_custom_gradient_of_two_arguments_with_paths_around_it() -> None:
    # z = f(a, b) + a*b, f's value a*b, its grads (2*upstream*b, upstream*a) on purpose not a*b's own:
    # at a = 3, b = 5: dz/da = 2*5 + 5 = 15, dz/db = 3 + 3 = 6 (the plain program would give 10 and 6).
    spec = {"f": {"args": ["p", "q"], "value": "p * q",
                  "grads": {"p": "2 * upstream * q", "q": "upstream * p"}}}
    outcome = assert_passed(run_program(
        {"c": "f(a, b)", "z": "c + a * b"}, {"z": ["a", "b"]},
        inputs={"a": {"value": 3.0}, "b": {"value": 5.0}}, custom_gradients=spec))
    assert outcome.gradients == {"dz/da": 15.0, "dz/db": 6.0}


@pytest.mark.parametrize("plant", ["clip_by_norm", "custom_gradient"])
def test_planted_mistakes_in_tensorflow_are_caught(monkeypatch: pytest.MonkeyPatch, load: Callable[..., Any],
                                                   plant: str) -> None:
    if plant == "clip_by_norm":  # clips to twice the norm asked: the tape says 4.0, the oracle 2.0
        real = tf.clip_by_norm
        monkeypatch.setattr(tf, "clip_by_norm", lambda t, clip_norm, **kw: real(t, 2 * clip_norm, **kw))
    else:  # ignores the backward pass it is given: the tape differentiates the value, 4.0
        monkeypatch.setattr(tf, "custom_gradient", lambda f: lambda *xs: f(*xs)[0])
    outcome = run_routine(load("scenario=guide/clip_gradients"))
    assert outcome.gradients == {"doutput/dv": 4.0}
    (failed,) = [c for c in outcome.checks if not c.passed]
    assert failed.name == "doutput/dv vs float64 differences through clip_gradients's grads"


@pytest.mark.parametrize(("definitions", "targets", "options", "message"), [
    ({"f": {"args": ["y"], "value": "y", "grads": {}}}, {"z": "f(x)"}, {},
     "scenario.custom_gradients.f.grads: give one expression per argument (y)"),
    ({"f": {"args": ["upstream"], "value": "upstream", "grads": {"upstream": "1"}}}, {"z": "f(x)"}, {},
     "scenario.custom_gradients.f.args: 'upstream' is what grads calls the incoming gradient"),
    ({"f": {"args": ["y"], "value": "y", "grads": {"y": "q"}}}, {"z": "f(x)"}, {},
     "scenario.custom_gradients.f.grads.y: unknown name 'q'"),
    ({"x": {"args": ["y"], "value": "y", "grads": {"y": "upstream"}}}, {"z": "x"}, {},
     "scenario.custom_gradients.x: the name is already an input or a step"),
    (CLIP, {"z": "clip_gradients(x, w)"}, {},
     "scenario.targets.z: clip_gradients takes 1 argument(s) (y), got 2"),
    (CLIP, {"z": "clip_gradients(x)"}, {"derivative": "jacobian"},
     "scenario.targets.z: a custom gradient is followed by tape.gradient only"),
    (CLIP, {"a": "clip_gradients(x)", "b": "a * 2", "z": "clip_gradients(b)"}, {},
     "scenario.targets.z: its arguments are computed from a, another custom gradient's step"),
    ({"f": {"args": ["y"], "value": "reduce_sum(y)", "grads": {"y": "upstream"}}}, {"z": "f(x)"}, {},
     "scenario.targets.z: f's grads.y has shape (), its argument y (2, 3)"),
])
def test_custom_gradient_mistakes_are_one_line_errors(definitions: dict[str, Any], targets: dict[str, str],
                                                      options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        run_program(targets, {"z": ["x"]}, custom_gradients=definitions, **options)
    assert str(err.value).startswith(message), str(err.value)


def _loaded_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """tf.saved_model.load as a new process runs it: none of this process's custom gradients registered
    (each tf.custom_gradient registers its backward pass as CustomGradient-<id>), so only what the
    SavedModel carries can differentiate it."""
    from tensorflow.python.framework import ops

    registry, real = ops._gradient_registry._registry, tf.saved_model.load

    def load(path: str) -> Any:
        for key in [k for k in registry if k.startswith("CustomGradient-")]:
            monkeypatch.delitem(registry, key)  # back at the test's end
        return real(path)
    monkeypatch.setattr(tf.saved_model, "load", load)


def test_a_custom_gradient_survives_the_saved_model_round_trip_as_in_the_guide(
        load: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    _loaded_afresh(monkeypatch)
    outcome = assert_passed(run_routine(load("scenario=guide/saved_model")))
    assert outcome.gradients == {"doutput/dv": 2.0}
    (trip,) = [c for c in outcome.checks if c.name == "doutput/dv vs the SavedModel round trip"]
    assert trip.passed and trip.max_abs_err == 0.0


def test_a_saved_model_that_drops_the_backward_pass_is_caught(load: Callable[..., Any],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tf.saved_model.SaveOptions
    monkeypatch.setattr(tf.saved_model, "SaveOptions",  # the custom gradients left out of the SavedModel
                        lambda **kwargs: plain(experimental_custom_gradients=False))
    _loaded_afresh(monkeypatch)
    outcome = run_routine(load("scenario=guide/saved_model"))
    (failed,) = [c for c in outcome.checks if not c.passed]
    assert failed.name == "doutput/dv vs the SavedModel round trip"
    assert failed.detail.startswith("the reloaded program raised LookupError: No gradient defined for "
                                    "operation'IdentityN'"), failed.detail


def test_a_layers_variables_make_the_round_trip(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=guide/keras_layer", "checks.saved_model=true")))
    trips = sorted(c.name for c in outcome.checks if "SavedModel" in c.name)
    assert trips == ["dloss/dy.bias vs the SavedModel round trip",
                     "dloss/dy.kernel vs the SavedModel round trip"]


@pytest.mark.parametrize(("overrides", "message"), [
    (["scenario=guide/numpy_detour", "checks.saved_model=true"],
     "checks.saved_model: this program cannot make the round trip: numpy() needs an eager tensor"),
    (["scenario=higher_order", "checks.saved_model=true"],
     "checks.saved_model: the round trip saves a program; scenario higher_order is a higher_order routine"),
])
def test_a_program_the_round_trip_cannot_carry_is_a_one_line_error(
        load: Callable[..., Any], overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        run_routine(load(*overrides))
    assert str(err.value).startswith(message), str(err.value)
