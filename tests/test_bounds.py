"""Bounds that bound work before it is done: layer weights from their arguments, constants SymPy folds,
the time limit from any thread, and what a received folder may make the reports read."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest

from runner.errors import ConfigError
from runner.language import backends, expr, shape_rules
from runner.scenarios.schema import RunConfig
from tests.test_security import without_backends

Load = Callable[..., RunConfig]


@pytest.mark.parametrize(("overrides", "weights"), [
    # Dense(20000) on 20000 features: 20000 * 20001 weights, 1.5 GiB in float32
    (["scenario=layers", "scenario.inputs.x.shape=[1,20000]", "scenario.targets.h.args.units=20000",
      "limits.memory_mb=100"], "400,020,000"),
    # Embedding(5,000,000 x 40): 200 million weights
    (["scenario=layers", "+scenario.targets.h.args.input_dim=5000000",
      "+scenario.targets.h.args.output_dim=40", "scenario.targets.h.layer=Embedding",
      "~scenario.targets.h.args.units", "~scenario.targets.h.args.activation", "limits.memory_mb=50"],
     "200,000,000"),
    # Conv2D with 512 filters of 64 x 64 over 300 channels: 512 * (4096 * 300 + 1)
    (["scenario=layers", "scenario.inputs.x.shape=[1,70,70,300]", "scenario.targets.h.layer=Conv2D",
      "~scenario.targets.h.args.units", "+scenario.targets.h.args.filters=512",
      "+scenario.targets.h.args.kernel_size=[64,64]", "limits.memory_mb=2000"], "629,146,112"),
])
def test_a_layer_too_large_is_refused_from_its_arguments_before_tensorflow_is_imported(
        load: Load, overrides: list[str], weights: str) -> None:
    with without_backends(), pytest.raises(ConfigError, match=f"holds about {weights} weights") as refused:
        load(*overrides)
    assert "refused before it is built" in str(refused.value) and "\n" not in str(refused.value)


def test_a_layer_within_the_limit_is_still_built(load: Load) -> None:
    run = load("scenario=layers", "limits.memory_mb=100")  # Dense(10) and Dense(5) on 8 features
    assert run.scenario.targets["h"]["args"]["units"] == 10


@pytest.mark.parametrize(("layer", "args", "shape", "at_least"), [
    ("Dense", {"units": 7}, (4, 3), 7 * 4),
    ("Conv1D", {"filters": 5, "kernel_size": 3}, (2, 10, 4), 5 * (3 * 4 + 1)),
    ("Conv2D", {"filters": 2, "kernel_size": [3, 2]}, (1, 8, 8, 6), 2 * (6 * 6 + 1)),
    ("Embedding", {"input_dim": 100, "output_dim": 8}, (5,), 800),
    ("BatchNormalization", {}, (4, 6), 4 * 6),
    ("PReLU", {}, (4, 6), 6),
])
def test_the_estimate_covers_what_keras_builds(layer: str, args: dict[str, Any], shape: tuple[int, ...],
                                               at_least: int) -> None:
    from runner.scenarios import layers
    from runner.tfenv import tf

    built = getattr(tf.keras.layers, layer)(**args)
    built.build(shape)
    held = sum(math.prod(w.shape) for w in built.weights)
    assert held == at_least
    assert layers.weight_elements(layer, args, shape) >= held


@pytest.mark.parametrize(("text", "reason"), [
    ("(x-x+9)**((x-x+9)**(x-x+9))", "is 3.8742e+08 once SymPy folds it"),  # 9**387420489, exactly
    ("x**(x-x+9)**(x-x+9)", "is 3.8742e+08 once SymPy folds it"),  # x**387420489
    ("x**(x/x*1001)", "is 1001 once SymPy folds it"),
    ("2**(maximum(x-x+9, 1)**(x-x+9))", "is 3.8742e+08 once SymPy folds it"),
    ("1/((x-x+9)**((x-x+9)**(x-x+9)))", "is 3.8742e+08 once SymPy folds it"),
    ("2**((x-x+10)**(x-x+400))", "overflows a float"),
    ("((x-x+10**30)**(x-x+1000))**(x-x+1000)", "overflows a float before it is raised"),
    ("(x**(x-x+100))**(x-x+20)", "to the power 2000 once SymPy folds"),
    ("((2)**100)**(-501)", "is about 10^-15,082"),  # a tiny float (0.0), but 15,082 exact digits to SymPy
])
def test_constants_sympy_would_fold_are_bounded_as_constants(text: str, reason: str) -> None:
    with without_backends(), pytest.raises(ConfigError, match=re.escape(reason)):
        expr.parse(text, ["x"])


@pytest.mark.parametrize("text", ["x**2 + 3*x", "x - x + 9", "(x-x+2)**(x-x+10)", "x**(y - x)",
                                  "x**(sin(x)**2 + cos(x)**2 + 999)", "exp(x)**1000", "((x)**3)**(-300)"])
def test_what_folds_within_the_bounds_is_accepted(text: str) -> None:
    with without_backends():
        expr.parse(text, ["x", "y"])


def test_an_underflow_is_not_mistaken_for_a_folded_zero() -> None:
    # (x**3)**(-501) is about 1e-298 at x = 1.58 and 5e-12 at 1.02: tiny, never the same; x**-1503 folded
    with pytest.raises(ConfigError, match="to the power 1503"):
        expr.parse("((x)**3)**(-501)", ["x"])


def test_the_oracle_refuses_what_the_parser_cannot_see_fold() -> None:
    """An exponent folded from a tensor (a sum over 64 elements) reaches SymPy's backend, which bounds it."""
    import sympy as sp

    backend = backends.SymPyBackend()
    x = sp.Symbol("x")
    assert backend.power(x, sp.Integer(3)) == x**3
    with pytest.raises(ConfigError, match="to the power 1280 once SymPy folds it"):
        backend.power(x, sp.Integer(64) * 20)
    with pytest.raises(ConfigError, match=r"about 10\^600 \(beyond any float's range\)"):
        backend.power(sp.Integer(10**30), sp.Integer(20))
    assert backend.power(sp.Integer(10), sp.Integer(300)) == sp.Integer(10**300)
    assert backend.power(sp.Integer(8), sp.Integer(-501)) == sp.Rational(1, 8**501)  # tiny, 453 digits: fine
    with pytest.raises(ConfigError, match="452,448 digits"):  # (8**-501)**1000: tiny, but 1000 x 452.4 digits
        backend.power(sp.Rational(1, 8**501), sp.Integer(1000))


def test_a_program_whose_exponent_folds_from_a_tensor_is_refused_by_its_oracle() -> None:
    from tests.test_language import run_program

    # The parser cannot see reduce_sum(x - x + 20) fold (a sum over x's 64 elements: 1280); SymPy can.
    with pytest.raises(ConfigError, match="to the power 1280 once SymPy folds it"):
        run_program({"f": "reduce_sum(x**reduce_sum(x - x + 20))"}, {"f": ["x"]},
                    inputs={"x": {"value": [0.99] * 64}})


@pytest.mark.parametrize(("text", "shape", "reason"), [
    ("reshape(x, [" + ",".join(["1"] * 65) + "])", (1,), "has 65 dimensions; the limit is 64"),
    ("softmax(x[2:])", (2,), "x[2:] has shape (0,): an empty tensor"),
    ("reduce_sum(x[:, 1:1])", (2, 3), "has shape (2, 0): an empty tensor"),
])
def test_shapes_no_oracle_can_hold_are_refused_before_the_run(text: str, shape: tuple[int, ...],
                                                               reason: str) -> None:
    with without_backends(), pytest.raises(ConfigError, match=re.escape(reason)):
        shape_rules.infer_shape(expr.parse(text, ["x"]), {"x": shape})


def test_an_input_of_65_dimensions_is_refused(load: Load) -> None:
    with pytest.raises(ConfigError, match=r"scenario\.inputs\.x has 65 dimensions; the limit is 64"):
        load("scenario=layers", f"scenario.inputs.x.shape=[{','.join(['1'] * 65)}]")


@pytest.mark.parametrize(("literal", "refused"), [
    ("0x" + "f" * 29, True),  # 35 decimal digits in 31 characters
    ("0X" + "A" * 26, True),  # 32 decimal digits
    ("0x" + "f" * 24, False),  # 29 decimal digits
    ("9" * 30, False),
])
def test_the_digit_bound_counts_a_literal_s_value_not_its_spelling(literal: str, refused: bool) -> None:
    with without_backends():
        if refused:
            with pytest.raises(ConfigError, match="has more than 30 decimal digits"):
                expr.parse(literal, ["x"])
        else:
            assert len(str(int(literal, 0))) <= 30 and expr.parse(literal, ["x"])
