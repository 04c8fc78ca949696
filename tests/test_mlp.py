"""The ``mlp`` scenario, a program: a tanh perceptron's gradient for every weight and bias.

The oracle is backpropagation written out here in NumPy float64 from the values the run
held, the chain rule layer by layer from the loss back to the input, sharing no code
with the runner:

    delta_L = dloss/dy = 2 (y - t) / size(y)
    dloss/dW_i = h_{i-1}^T delta_i,   dloss/db_i = column sums of delta_i
    delta_{i-1} = (delta_i W_i^T) * act'(z_{i-1})
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from runner.routines import run_routine
from runner.scenarios.loading import load_run
from runner.scenarios.schema import ProgramScenario
from tests.conftest import CliRun, assert_passed, assert_snippets_reproduce

Load = Callable[..., Any]
Cli = Callable[..., CliRun]
LABELS = ["dloss/dW1", "dloss/db1", "dloss/dW2", "dloss/db2", "dloss/dW3", "dloss/db3"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


#: Each activation and its derivative, as functions of the pre-activation z.
ACTIVATIONS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(np.float64)),  # TensorFlow: relu'(0) = 0
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
    "softplus": (lambda z: np.logaddexp(0.0, z), _sigmoid),
    "linear": (lambda z: z, np.ones_like),
}


def backprop(held: dict[str, Any], activation: str = "tanh") -> tuple[float, dict[str, np.ndarray]]:
    """The loss and every dloss/dW_i, dloss/db_i by hand, from the inputs x, t, W1, b1, ... as held."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in held.items()}
    act, derivative = ACTIVATIONS[activation]
    depth = sum(k.startswith("W") for k in p)
    hs, zs = [p["x"]], []
    for i in range(1, depth + 1):
        zs.append(hs[-1] @ p[f"W{i}"] + p[f"b{i}"])
        hs.append(act(zs[-1]) if i < depth else zs[-1])  # no activation on the last layer
    residual = hs[-1] - p["t"]
    delta = 2.0 * residual / residual.size
    grads = {}
    for i in range(depth, 0, -1):
        grads[f"dloss/dW{i}"] = hs[i - 1].T @ delta
        grads[f"dloss/db{i}"] = delta.sum(axis=0)
        if i > 1:
            delta = (delta @ p[f"W{i}"].T) * derivative(zs[i - 2])
    return float(np.mean(residual**2)), grads


def _activation(name: str) -> tuple[str, str]:
    """The overrides that make both hidden layers use ``name`` (linear: none)."""
    wrap = (lambda a: a) if name == "linear" else (lambda a: f"{name}({a})")
    return (f"scenario.targets.h1='{wrap('x @ W1 + b1')}'", f"scenario.targets.h2='{wrap('h1 @ W2 + b2')}'")


def _assert_backprop(outcome: Any, activation: str, rtol: float) -> None:
    loss, want = backprop(outcome.inputs, activation)
    assert outcome.values["loss"] == pytest.approx(loss, rel=rtol)
    for label, grad in want.items():
        np.testing.assert_allclose(outcome.gradients[label], grad, rtol=rtol, atol=rtol * np.abs(grad).max(),
                                   err_msg=label)


def test_the_oracle_is_backprop_not_a_restatement() -> None:
    """The hand-written backprop against complex-step derivatives (exact to rounding) of its own loss."""
    rng = np.random.default_rng(7)
    held = {"x": rng.standard_normal((5, 3)), "t": rng.standard_normal((5, 2)),
            "W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal(4),
            "W2": rng.standard_normal((4, 2)), "b2": rng.standard_normal(2)}
    _, grads = backprop(held)

    def loss(values: dict[str, Any]) -> Any:
        return np.mean((np.tanh(values["x"] @ values["W1"] + values["b1"]) @ values["W2"] + values["b2"]
                        - values["t"]) ** 2)

    for name in ("W1", "b1", "W2", "b2"):
        complex_step = np.zeros(held[name].shape)
        for index in np.ndindex(held[name].shape):
            bumped = held[name].astype(np.complex128)
            bumped[index] += 1e-30j
            complex_step[index] = loss({**held, name: bumped}).imag / 1e-30
        np.testing.assert_allclose(grads[f"dloss/d{name}"], complex_step, rtol=1e-12, atol=1e-15)


def test_mlp_shapes_labels_and_seeded_data(load: Load) -> None:
    outcome = assert_passed(run_routine(load("scenario=mlp")))
    assert list(outcome.gradients) == LABELS
    shapes = {"W1": (4, 16), "b1": (16,), "W2": (16, 16), "b2": (16,), "W3": (16, 1), "b3": (1,)}
    for name, shape in shapes.items():
        assert outcome.inputs[name].shape == outcome.gradients[f"dloss/d{name}"].shape == shape
    assert outcome.inputs["x"].shape == (8, 4) and outcome.inputs["t"].shape == (8, 1)
    # glorot_uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)) = sqrt(6/32) for W2; zero biases.
    limit = np.sqrt(6 / 32)
    assert 0.5 * limit < np.abs(outcome.inputs["W2"]).max() <= limit
    assert not np.any(outcome.inputs["b1"]) and not np.any(outcome.inputs["b3"])
    _assert_backprop(outcome, "tanh", 1e-5)
    names = {c.name for c in outcome.checks}
    assert {f"{label} vs float64 central differences (every element)" for label in LABELS} <= names
    assert "SymPy check skipped" in outcome.notes["dloss/dW1"]  # 409 input elements, above 64
    assert outcome.figures == []
    again = run_routine(load("scenario=mlp"))
    np.testing.assert_array_equal(again.gradients["dloss/dW1"], outcome.gradients["dloss/dW1"])
    other = run_routine(load("scenario=mlp", "seed=1"))
    assert not np.array_equal(other.inputs["x"], outcome.inputs["x"])


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "softplus", "linear"])
def test_mlp_gradients_equal_backprop_in_float64(load: Load, activation: str) -> None:
    outcome = assert_passed(run_routine(load("scenario=mlp", *_activation(activation), "dtype=float64",
                                             "scenario.inputs.x.shape=[6,4]",
                                             "scenario.inputs.t.shape=[6,1]")))
    assert outcome.inputs["x"].shape == (6, 4)
    _assert_backprop(outcome, activation, 1e-12)


@pytest.mark.parametrize(("dtype", "compile_mode", "rtol"),
                         [("float32", "function", 1e-4), ("float32", "xla", 1e-4), ("float16", "xla", 5e-2)])
def test_mlp_compiled(load: Load, dtype: str, compile_mode: str, rtol: float) -> None:
    outcome = assert_passed(run_routine(load("scenario=mlp", f"dtype={dtype}", f"compile={compile_mode}")))
    for label in LABELS:
        assert outcome.gradients[label].dtype == np.dtype(dtype)
    _assert_backprop(outcome, "tanh", rtol)


def test_a_wider_layer_is_checked_by_projections(load: Load) -> None:
    outcome = assert_passed(run_routine(load(
        "scenario=mlp", "scenario.inputs.W1.shape=[4,32]", "scenario.inputs.b1.shape=[32]",
        "scenario.inputs.W2.shape=[32,16]", "dtype=float64")))
    assert outcome.gradients["dloss/dW2"].shape == (32, 16)  # 512 elements, above fd_max_elements=256
    names = {c.name for c in outcome.checks}
    assert any(n.startswith("dloss/dW2 vs") and "projection" in n for n in names), names
    _assert_backprop(outcome, "tanh", 1e-12)


#: Scenarios as a run saved them (.hydra/config.yaml) while ``mlp`` was a routine of its own, word for word.
OLD_MLP = {"name": "mlp", "routine": "mlp", "description": "A multilayer perceptron.",
           "layers": [4, 16, 16, 1], "activation": "tanh", "batch": 8}


def test_a_config_saved_by_the_mlp_routine_runs_as_its_program(compose_config: Load, load: Load) -> None:
    saved = OmegaConf.to_container(compose_config("dtype=float64"))
    saved["scenario"] = OLD_MLP
    run = load_run(saved)
    assert isinstance(run.scenario, ProgramScenario)
    assert run.scenario.targets == {"h1": "tanh(x @ W1 + b1)", "h2": "tanh(h1 @ W2 + b2)",
                                    "y": "h2 @ W3 + b3", "loss": "reduce_mean((y - t)**2)"}
    assert run.scenario.plan() == {"loss": ["W1", "b1", "W2", "b2", "W3", "b3"]}
    # The same program as the shipped scenario: the same draws, so the same numbers.
    shipped = run_routine(load("scenario=mlp", "dtype=float64"))
    outcome = assert_passed(run_routine(run))
    for label in LABELS:
        np.testing.assert_array_equal(outcome.gradients[label], shipped.gradients[label])
    _assert_backprop(outcome, "tanh", 1e-12)
    # One layer and no activation: the linear model y = x @ W1 + b1.
    saved["scenario"] = {**OLD_MLP, "layers": [3, 2], "activation": "linear", "batch": 5}
    run = load_run(saved)
    assert run.scenario.targets == {"y": "x @ W1 + b1", "loss": "reduce_mean((y - t)**2)"}
    outcome = assert_passed(run_routine(run))
    assert outcome.inputs["x"].shape == (5, 3) and outcome.inputs["t"].shape == (5, 2)
    _assert_backprop(outcome, "linear", 1e-12)
    saved["scenario"] = {**OLD_MLP, "layers": [3, 5, 2], "activation": "relu"}
    assert load_run(saved).scenario.targets["h1"] == "relu(x @ W1 + b1)"


@pytest.mark.slow
def test_cli_mlp_and_its_snippet(cli: Cli) -> None:
    run = cli("scenario=mlp")
    results = run.ok()
    assert list(results["gradients"]) == LABELS
    loss, want = backprop(results["inputs"])
    assert results["values"]["loss"] == pytest.approx(loss, rel=1e-5)
    for label, grad in want.items():
        np.testing.assert_allclose(results["gradients"][label], grad, rtol=1e-4,
                                   atol=1e-4 * np.abs(grad).max(), err_msg=label)
    assert results["plots"] == []
    assert_snippets_reproduce(run.run_dirs())


@pytest.mark.slow
def test_cli_mlp_relu_on_a_batch_of_64(cli: Cli) -> None:
    """The scenario's first commented command."""
    results = cli("scenario=mlp", "scenario.targets.h1=relu(x @ W1 + b1)",
                  "scenario.targets.h2=relu(h1 @ W2 + b2)", "scenario.inputs.x.shape=[64,4]",
                  "scenario.inputs.t.shape=[64,1]").ok()
    assert np.shape(results["inputs"]["x"]) == (64, 4)
    _, want = backprop(results["inputs"], "relu")
    for label, grad in want.items():
        np.testing.assert_allclose(results["gradients"][label], grad, rtol=1e-4,
                                   atol=1e-4 * np.abs(grad).max(), err_msg=label)
