"""``mlp``: a multilayer perceptron's loss, and its gradient for every weight and bias.

This is what training does each step: one forward pass recorded on the tape, one
``tape.gradient(loss, params)``, and a gradient shaped like each parameter. The
oracle is backpropagation written out by hand in NumPy float64, the chain rule
applied layer by layer from the loss back to the input:

    delta_L = dloss/dy = 2 (y - targets) / size(y)
    dloss/dW_i = h_{i-1}^T delta_i,   dloss/db_i = column sums of delta_i
    delta_{i-1} = (delta_i W_i^T) * act'(z_{i-1})

where z_i = h_{i-1} W_i + b_i and h_i = act(z_i) (h_0 = x; no activation on the
last layer). The finite differences are taken in float64 whatever the run's
dtype, so they measure the tape's error rather than their own rounding.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Sequence

import numpy as np

from runner import expr, snippets
from runner.checks import compare, difference_check, finite
from runner.result import Curve, Outcome
from runner.routines.support import tf_dtype, timed_step
from runner.schema import MLPScenario, RunConfig
from runner.tfenv import tf

#: Each activation's TensorFlow op (a path under ``tf``) and its derivative in NumPy, as a function of z.
TF_PATHS = {"tanh": expr.TF_OPS["tanh"], "relu": expr.TF_OPS["relu"], "sigmoid": expr.TF_OPS["sigmoid"],
            "softplus": expr.TF_OPS["softplus"], "linear": "identity"}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


NUMPY: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(np.float64)),  # TF: relu'(0) = 0
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
    "softplus": (lambda z: np.logaddexp(0.0, z), _sigmoid),
    "linear": (lambda z: z, np.ones_like),
}


def labels(layers: Sequence[int]) -> list[str]:
    """dloss/dW1, dloss/db1, ..., in the order of the parameters."""
    return [f"dloss/d{kind}{i}" for i in range(1, len(layers)) for kind in "Wb"]


def make_data(scenario: MLPScenario, seed: int) -> dict[str, np.ndarray]:
    """Seeded x, targets, then per layer W_i (Glorot normal) and b_i (0.1 N(0, 1)), in that order."""
    rng = np.random.default_rng(seed)
    data = {"x": rng.standard_normal((scenario.batch, scenario.layers[0])),
            "targets": rng.standard_normal((scenario.batch, scenario.layers[-1]))}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(scenario.layers), start=1):
        data[f"W{i}"] = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / (fan_in + fan_out))
        data[f"b{i}"] = 0.1 * rng.standard_normal(fan_out)
    return data


def _params(data: dict[str, np.ndarray]) -> list[str]:
    return [k for k in data if k[0] in "Wb"]


def backprop(data: dict[str, np.ndarray], activation: str) -> dict[str, np.ndarray]:
    """Every dloss/dW_i and dloss/db_i by hand, in float64."""
    act, derivative = NUMPY[activation]
    names = _params(data)
    depth = len(names) // 2
    hs, zs = [data["x"]], []
    for i in range(1, depth + 1):
        zs.append(hs[-1] @ data[f"W{i}"] + data[f"b{i}"])
        hs.append(act(zs[-1]) if i < depth else zs[-1])
    residual = hs[-1] - data["targets"]
    delta = 2.0 * residual / residual.size
    grads: dict[str, np.ndarray] = {}
    for i in range(depth, 0, -1):
        grads[f"dloss/dW{i}"] = hs[i - 1].T @ delta
        grads[f"dloss/db{i}"] = delta.sum(axis=0)
        if i > 1:
            delta = (delta @ data[f"W{i}"].T) * derivative(zs[i - 2])
    return {label: grads[label] for label in (f"dloss/d{n}" for n in names)}


def loss_function(x: tf.Tensor, targets: tf.Tensor, activation: str) -> Callable[..., tf.Tensor]:
    """loss(W1, b1, W2, b2, ...) = mean((y - targets)**2) for the perceptron y(x)."""
    act = functools.reduce(getattr, TF_PATHS[activation].split("."), tf)

    def loss(*params: tf.Tensor) -> tf.Tensor:
        h = x
        for i in range(0, len(params), 2):
            h = tf.matmul(h, params[i]) + params[i + 1]
            if i < len(params) - 2:
                h = act(h)
        return tf.reduce_mean(tf.square(h - targets))

    return loss


def run(scenario: MLPScenario, run: RunConfig) -> Outcome:
    data = make_data(scenario, run.seed)
    tensors = {k: tf.constant(v, tf_dtype(run)) for k, v in data.items()}
    names = _params(data)
    grad_labels = labels(scenario.layers)
    loss_fn = loss_function(tensors["x"], tensors["targets"], scenario.activation)
    variables = [tf.Variable(tensors[n], name=n) for n in names]

    def step(*params: tf.Variable) -> tuple[tf.Tensor, list[tf.Tensor]]:
        with tf.GradientTape() as tape:
            loss = loss_fn(*params)
        return loss, tape.gradient(loss, list(params))

    outcome = Outcome(snippet=snippet(scenario, run.seed, run.dtype))
    (loss, grads), outcome.timings = timed_step(step, run, *variables)
    outcome.gradients = {label: g.numpy() for label, g in zip(grad_labels, grads, strict=True)}
    outcome.inputs = {k: v.numpy() for k, v in tensors.items()}
    outcome.values = {"loss": loss.numpy()}

    started = time.perf_counter()
    outcome.checks += [finite("loss finite", outcome.values["loss"]),
                       *(finite(f"{label} finite", g) for label, g in outcome.gradients.items())]
    tolerances = run.tolerances()
    used = {k: np.asarray(v, dtype=np.float64) for k, v in outcome.inputs.items()}  # as the dtype holds them
    depth = len(names) // 2
    for i in range(1, depth + 1):
        delta = "2 (y - targets) / n" if i == depth else f"(delta{i + 1} W{i + 1}^T) * act'(z{i})"
        outcome.analytic[f"dloss/dW{i}"] = f"h{i - 1}^T delta{i}, delta{i} = {delta}"
        outcome.analytic[f"dloss/db{i}"] = f"sum_batch(delta{i}), delta{i} = {delta}"
    if run.checks.analytic:
        for label, want in backprop(used, scenario.activation).items():
            outcome.checks.append(compare(f"{label} vs backprop", outcome.gradients[label], want,
                                          tolerances.analytic))
    if run.checks.finite_differences:
        wide = {k: tf.constant(v) for k, v in used.items()}  # float64, whatever the run's dtype
        wide_loss = loss_function(wide["x"], wide["targets"], scenario.activation)
        params = [wide[n] for n in names]
        for k, label in enumerate(grad_labels):
            def along(p: tf.Tensor, k: int = k) -> tf.Tensor:
                return wide_loss(*params[:k], p, *params[k + 1:])

            outcome.checks.append(difference_check(
                label, outcome.gradients[label], along, params[k], tolerances.finite_differences,
                tolerances.delta, run.checks.fd_max_elements, run.seed))
    outcome.timings["checks"] = time.perf_counter() - started
    outcome.figures.append(_norms(scenario, outcome))
    return outcome


def _norms(scenario: MLPScenario, outcome: Outcome) -> Curve:
    """How the gradient's size changes from the last layer back to the first."""
    layers = np.arange(1, len(scenario.layers))
    series = {f"|dloss/d{kind}|": np.array([np.linalg.norm(np.asarray(outcome.gradients[f"dloss/d{kind}{i}"],
                                                                        dtype=np.float64)) for i in layers])
              for kind in "Wb"}
    return Curve(f"{scenario.name}.png", f"gradient norm per layer ({scenario.activation})", "layer",
                 layers, series)


def snippet(scenario: MLPScenario, seed: int, dtype: str) -> str:
    """The routine as a script, drawing the same seeded data and weights."""
    return "\n".join([
        snippets.HEADER,
        f"rng = np.random.default_rng({seed})",
        f"x = tf.constant(rng.standard_normal(({scenario.batch}, {scenario.layers[0]})), tf.{dtype})",
        f"targets = tf.constant(rng.standard_normal(({scenario.batch}, {scenario.layers[-1]})), tf.{dtype})",
        "params = []  # W1, b1, W2, b2, ...: Glorot-normal weights, small biases",
        f"for fan_in, fan_out in zip({scenario.layers[:-1]!r}, {scenario.layers[1:]!r}):",
        "    W = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / (fan_in + fan_out))",
        "    b = 0.1 * rng.standard_normal(fan_out)",
        f"    params += [tf.Variable(tf.constant(W, tf.{dtype})), tf.Variable(tf.constant(b, tf.{dtype}))]",
        "",
        "with tf.GradientTape() as tape:",
        "    h = x",
        "    for i in range(0, len(params), 2):",
        "        h = tf.matmul(h, params[i]) + params[i + 1]",
        *(["        if i < len(params) - 2:  # no activation on the last layer",
           f"            h = tf.{TF_PATHS[scenario.activation]}(h)"]
          if scenario.activation != "linear" else []),
        "    loss = tf.reduce_mean(tf.square(h - targets))",
        'names = [f"dloss/d{kind}{i}" for i in range(1, len(params) // 2 + 1) for kind in "Wb"]',
        "gradients = dict(zip(names, tape.gradient(loss, params)))",
        snippets.FOOTER,
    ])
