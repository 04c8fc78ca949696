"""``custom_gradient``: writing the backward pass yourself with ``@tf.custom_gradient``.

The tape's chain rule is only as good as the formula it differentiates.
``log(1 + e^x)`` overflows at large x (e^x is inf in float32 above x ~ 88.7),
and its chain-rule gradient becomes inf * 0 = NaN, although the true gradient,
sigmoid(x), is a tame 1.0 there. A custom gradient lets the forward pass use a
stable formula and hand the tape a stable derivative.

The same decorator can change the backward pass on purpose, as the advanced
autodiff guide's ``clip_gradients`` does: an identity whose backward pass clips
the incoming gradient dy by norm, applied to v*v at v = 2. The incoming dy = 1 is
clipped to 0.5 and the chain rule goes on through v*v: 0.5 * 2v = 2.0, where the
raw gradient is 4.0. Finite differences see only the forward pass, so they check
the raw gradient and the stable log1pexp, never the clipped one; the clipped one
is checked against its closed form min(1, clip_norm) * 2v.
"""

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from runner.oracles.checks import compare, finite
from runner.result import Check, Outcome
from runner.routines.catalogue import Arg, Call, Raw, run_cases, selected, verify
from runner.scenarios.schema import CustomGradientScenario, RunConfig
from runner.tfenv import tf


@tf.custom_gradient
def log1pexp(x: tf.Tensor) -> "tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]":
    e = tf.exp(-tf.abs(x))  # in (0, 1]: never overflows

    def grad(upstream: tf.Tensor) -> tf.Tensor:
        # 1 - 1/(1 + e^x) = sigmoid(x), written without e^x: 1/(1 + e^-x) for x >= 0, e^x/(1 + e^x) below
        return upstream * tf.where(x >= 0, 1 / (1 + e), e / (1 + e))

    return tf.nn.relu(x) + tf.math.log1p(e), grad  # max(x, 0) + log(1 + e^-|x|) = log(1 + e^x)


def plain_softplus(x: tf.Tensor) -> tf.Tensor:
    return tf.math.log(1 + tf.exp(x))  # e^x overflows to inf for large x


def clip_gradients_by_norm(clip_norm: float) -> "Callable[[tf.Tensor], tf.Tensor]":
    @tf.custom_gradient
    def clip_gradients(y: tf.Tensor) -> "tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]":
        def backward(dy: tf.Tensor) -> tf.Tensor:
            return tf.clip_by_norm(dy, clip_norm)  # rescaled to norm clip_norm if longer

        return y, backward  # forward: y unchanged

    return clip_gradients


def log1pexp_case(x: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape(persistent=True) as tape:
        plain = plain_softplus(x)
        stable = log1pexp(x)
    return {"y (plain)": plain, "y (log1pexp)": stable,
            "dy/dx (plain)": tape.gradient(plain, x), "dy/dx (log1pexp)": tape.gradient(stable, x)}


def clip_by_norm_case(v: tf.Variable, clip_norm: float) -> dict[str, tf.Tensor | None]:
    clip_gradients = clip_gradients_by_norm(clip_norm)
    with tf.GradientTape(persistent=True) as t:
        raw = v * v
        output = clip_gradients(v * v)  # the same value; its backward pass clips the incoming gradient
    return {"output": output, "doutput/dv (raw)": t.gradient(raw, v),
            "doutput/dv (clipped)": t.gradient(output, v)}


def run(scenario: CustomGradientScenario, run: RunConfig) -> Outcome:
    cases = selected("custom_gradient", scenario.case)
    x = Arg([float(p) for p in scenario.points])
    v = Arg(float(scenario.v))
    overflow = _overflows(x.held(run.dtype), run.dtype)
    calls = {
        "log1pexp": Call(log1pexp_case, [x], values=["y (plain)", "y (log1pexp)",
                                                     *(["dy/dx (plain)"] if overflow.any() else [])]),
        "clip_by_norm": Call(clip_by_norm_case, [v, Raw(float(scenario.clip_norm), repr(scenario.clip_norm))],
                             values=["output"]),
    }
    chosen = [calls[c] for c in cases]
    outcome, found = run_cases(run, chosen, helpers=[log1pexp, plain_softplus, clip_gradients_by_norm])

    started = time.perf_counter()
    if "log1pexp" in cases:
        _check_log1pexp(outcome, found, x.held(run.dtype), overflow, run)
    if "clip_by_norm" in cases:
        _check_clip(outcome, found, v.held(run.dtype), scenario.clip_norm, run)
    outcome.timings["checks"] = time.perf_counter() - started
    return outcome


def _overflows(x: np.ndarray, dtype: str) -> np.ndarray:
    """Where e^x exceeds the dtype's largest number, so the plain formula meets inf."""
    with np.errstate(over="ignore"):
        return np.exp(x) > float(tf.as_dtype(dtype).max)


def _check_log1pexp(outcome: Outcome, found: dict[str, Any], x: np.ndarray, overflow: np.ndarray,
                    run: RunConfig) -> None:
    outcome.inputs["x"] = x
    sigmoid = 1 / (1 + np.exp(-x))
    limit = float(np.log(float(tf.as_dtype(run.dtype).max)))
    outcome.analytic["dy/dx (log1pexp)"] = outcome.analytic["dy/dx (plain)"] = "sigmoid(x) = 1/(1 + e^-x)"
    stable, plain = found["y (log1pexp)"], found["y (plain)"]
    outcome.values.update({"y (log1pexp)": stable, "y (plain)": plain})
    outcome.checks.append(finite("y (log1pexp) finite", stable))
    outcome.checks.append(compare("y (log1pexp) vs closed form log(1 + e^x)", stable, np.logaddexp(0, x),
                                  run.tolerances().analytic))
    outcome.notes["dy/dx (log1pexp)"] = (
        "log1pexp computes log(1 + e^x) as max(x, 0) + log1p(e^-|x|), which never forms e^x, and "
        "@tf.custom_gradient hands the tape its derivative sigmoid(x) in the same stable form, so the "
        f"gradient is finite everywhere: {_at(x, found['dy/dx (log1pexp)'])}.")
    verify(outcome, "dy/dx (log1pexp)", found["dy/dx (log1pexp)"], sigmoid, run,
           oracle_name="closed form sigmoid(x)", fd=(log1pexp, x))
    label, got = "dy/dx (plain)", found["dy/dx (plain)"]
    if not overflow.any():
        outcome.notes[label] = (
            f"e^x stays below the largest {run.dtype} (it overflows only above x = {limit:.4g}) at every "
            "point, so here the plain formula's chain-rule gradient e^x/(1 + e^x) is fine and equals "
            "sigmoid(x).")
        verify(outcome, label, got, sigmoid, run, oracle_name="closed form sigmoid(x)",
               fd=(plain_softplus, x))
        return
    where = ", ".join(f"{p:g}" for p in x[overflow])
    outcome.values[label] = got
    outcome.notes[label] = (
        f"At x = {where}, e^x overflows {run.dtype} (above x = {limit:.4g}) to inf, so y (plain) is inf and "
        "the chain rule multiplies e^x = inf by d log(u)/du = 1/(1 + inf) = 0: inf * 0 is NaN. "
        "Where e^x fits, the plain gradient equals sigmoid(x); the true gradient at the overflow is 1.0.")
    nan = np.isnan(np.asarray(got, dtype=np.float64))
    outcome.checks.append(Check(
        f"{label} is NaN exactly where e^x overflows {run.dtype} (x = {where}) (expected)",
        bool(np.array_equal(nan, overflow)), None, None, f"NaN at x = {', '.join(f'{p:g}' for p in x[nan])}"))
    if run.checks.analytic and not overflow.all():
        outcome.checks.append(compare(f"{label} vs closed form sigmoid(x) where e^x fits", got[~overflow],
                                      sigmoid[~overflow], run.tolerances().analytic))


def _check_clip(outcome: Outcome, found: dict[str, Any], v: np.ndarray, clip_norm: float,
                run: RunConfig) -> None:
    outcome.inputs["v"] = v
    outcome.values["output"] = found["output"]
    outcome.checks.append(compare("output equals v*v: the forward pass is unchanged", found["output"], v * v,
                                  run.tolerances().analytic))
    scale, at = min(1.0, clip_norm), float(v)  # the incoming dy = 1, clipped to norm clip_norm
    outcome.analytic["doutput/dv (raw)"] = "2v"
    outcome.analytic["doutput/dv (clipped)"] = f"clip_by_norm(1, {clip_norm:g}) * 2v = {scale:g} * 2v"
    outcome.notes["doutput/dv (raw)"] = (
        f"Without the custom gradient, d(v*v)/dv = 2v = {2 * at:g} at v = {at:g}.")
    outcome.notes["doutput/dv (clipped)"] = (
        "The forward pass is the identity, so output = v*v, but the custom backward pass receives the "
        f"incoming gradient dy = 1 and hands back tf.clip_by_norm(dy, {clip_norm:g}) = {scale:g}; the chain "
        f"rule then multiplies it by d(v*v)/dv = 2v: {scale:g} * {2 * at:g} = {scale * 2 * at:g}. (The "
        "backward pass clips dy, the gradient arriving at output, not the gradient for v.) Finite "
        "differences see only the forward pass, so they would give the raw gradient: this one is checked "
        "against its closed form instead.")
    verify(outcome, "doutput/dv (raw)", found["doutput/dv (raw)"], 2 * v, run, oracle_name="closed form 2v",
           fd=(lambda t: t * t, v))
    verify(outcome, "doutput/dv (clipped)", found["doutput/dv (clipped)"], scale * 2 * v, run,
           oracle_name=f"closed form {scale:g} * 2v")


def _at(x: np.ndarray, g: Any) -> str:
    return ", ".join(f"{g_i:.6g} at x = {x_i:g}" for x_i, g_i in zip(x, np.asarray(g, dtype=np.float64),
                                                                   strict=True))
