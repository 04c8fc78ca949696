"""``linear``: y = xW + b, a loss, and its gradients for W and b.

The data and weights come from NumPy's seeded generator, so a config and a seed
name them exactly. Both oracles are float64 NumPy, independent of TensorFlow: central
differences of the loss, and the closed form, derived by hand:

    r = y (mean_square) or y - targets (mse),  n = batch * out_features
    dloss/dy = 2 r / n,   dloss/dW = x^T dloss/dy,   dloss/db = sum over the batch of dloss/dy
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from runner.oracles.checks import compare, finite
from runner.oracles.differences import float64_differences
from runner.oracles.projections import projection_check
from runner.result import Check, Outcome
from runner.routines import snippets
from runner.routines.support import float64_delta, tf_dtype, timed_step
from runner.scenarios.schema import LinearScenario, Loss, RunConfig
from runner.tfenv import tf


def make_data(scenario: LinearScenario, seed: int) -> dict[str, np.ndarray]:
    """Seeded x, W (scaled by 1/sqrt(in_features)), b and, for mse, targets."""
    rng = np.random.default_rng(seed)
    batch, n_in, n_out = scenario.batch, scenario.in_features, scenario.out_features
    data = {
        "x": rng.standard_normal((batch, n_in)),
        "W": rng.standard_normal((n_in, n_out)) / np.sqrt(n_in),
        "b": 0.1 * rng.standard_normal(n_out),
    }
    if scenario.loss is Loss.mse:
        data["targets"] = rng.standard_normal((batch, n_out))
    return data


def closed_form(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """dloss/dW and dloss/db by hand, in float64."""
    y = data["x"] @ data["W"] + data["b"]
    residual = y - data["targets"] if "targets" in data else y
    dy = 2.0 * residual / residual.size
    return {"dloss/dW": data["x"].T @ dy, "dloss/db": dy.sum(axis=0)}


def loss_function(x: tf.Tensor, targets: tf.Tensor | None) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    def loss(w: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        y = tf.matmul(x, w) + b
        residual = y if targets is None else y - targets
        return tf.reduce_mean(tf.square(residual))

    return loss


def run(scenario: LinearScenario, run: RunConfig) -> Outcome:
    data = make_data(scenario, run.seed)
    tensors = {k: tf.constant(v, tf_dtype(run)) for k, v in data.items()}
    loss_fn = loss_function(tensors["x"], tensors.get("targets"))
    w_var = tf.Variable(tensors["W"], name="W")
    b_var = tf.Variable(tensors["b"], name="b")

    def step(w: tf.Variable, b: tf.Variable) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            loss = loss_fn(w, b)
        d_w, d_b = tape.gradient(loss, [w, b])
        return loss, d_w, d_b

    outcome = Outcome(snippet=snippets.linear(scenario, run.seed, run.dtype))
    (loss, d_w, d_b), outcome.timings = timed_step(step, run, w_var, b_var)
    outcome.gradients = {"dloss/dW": d_w.numpy(), "dloss/db": d_b.numpy()}
    outcome.inputs = {k: v.numpy() for k, v in tensors.items()}
    outcome.values = {"loss": loss.numpy()}

    started = time.perf_counter()
    outcome.checks += [finite("loss finite", outcome.values["loss"]),
                       *(finite(f"{label} finite", g) for label, g in outcome.gradients.items())]
    tolerances = run.tolerances()
    used = {k: v.astype(np.float64) for k, v in outcome.inputs.items()}
    for label, want in closed_form(used).items():
        outcome.analytic[label] = "x^T (2 r / n)" if label.endswith("W") else "sum_batch(2 r / n)"
        if run.checks.analytic:
            outcome.checks.append(compare(f"{label} vs closed form", outcome.gradients[label],
                                          want, tolerances.analytic))
    outcome.checks.append(compare("loss vs float64 forward pass", outcome.values["loss"],
                                  _loss(used)(used["W"], used["b"]), tolerances.forward))
    if run.checks.finite_differences:
        outcome.checks += _difference_checks(outcome, used, run)
    outcome.timings["checks"] = time.perf_counter() - started
    return outcome


def _difference_checks(outcome: Outcome, data: dict[str, np.ndarray], run: RunConfig) -> list[Check]:
    """Each gradient against central differences of the loss computed in float64 NumPy (never
    TensorFlow), at the values the run held: every element up to ``checks.fd_max_elements``, above it
    random projections. The loss is quadratic in W and b, so a difference is exact up to rounding."""
    loss = _loss(data)
    tol = run.tolerances().float64_differences
    delta = float64_delta(run)
    found = []
    for label, fn, point in (("dloss/dW", lambda w: loss(w, data["b"]), data["W"]),
                             ("dloss/db", lambda b: loss(data["W"], b), data["b"])):
        got = outcome.gradients[label]
        if np.size(point) <= run.checks.fd_max_elements:
            want = float64_differences(fn, point, 1.0, delta)
            found.append(compare(f"{label} vs float64 central differences (every element)", got, want, tol))
        else:  # a scalar loss: every projection checks the reported gradient, no further VJP is needed
            found.append(projection_check(label, got, fn, _no_vjp, point, 1.0, tol, delta,
                                          run.checks.projections, run.seed))
    return found


def _loss(data: dict[str, np.ndarray]) -> Callable[[np.ndarray, np.ndarray], float]:
    """The loss as a float64 NumPy function of W and b, the data held."""
    def loss(w: np.ndarray, b: np.ndarray) -> float:
        y = data["x"] @ w + b
        return float(np.mean((y - data["targets"] if "targets" in data else y) ** 2))

    return loss


def _no_vjp(v: np.ndarray) -> np.ndarray:
    raise AssertionError("a scalar loss's projections use the reported gradient")
