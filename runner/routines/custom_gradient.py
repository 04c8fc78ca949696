"""``custom_gradient``: writing the backward pass yourself with ``@tf.custom_gradient``.

The tape's chain rule is only as good as the formula it differentiates.
``log(1 + e^x)`` overflows at large x (e^x is inf in float32 above x ~ 88.7),
and its chain-rule gradient becomes inf * 0 = NaN, although the true gradient,
sigmoid(x), is a tame 1.0 there. A custom gradient lets the forward pass use a
stable formula and hand the tape a stable derivative.

The same decorator can change the backward pass on purpose: an identity whose
gradient is clipped by norm keeps the forward values and bounds the update.
Finite differences see only the forward pass, so they check the raw gradient
and the stable log1pexp, never the clipped one; the clipped one is checked
against its closed form, its norm and its direction.
"""

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from runner.checks import compare, finite
from runner.result import Check, Outcome
from runner.routines.catalogue import Arg, Call, Raw, run_cases, selected, verify
from runner.schema import CustomGradientScenario, RunConfig
from runner.tfenv import tf

VECTOR_SIZE = 4
RAW_OVER_CLIP = 10.0  # the raw gradient's norm, in units of clip_norm


@tf.custom_gradient
def log1pexp(x: tf.Tensor) -> "tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]":
    e = tf.exp(-tf.abs(x))  # in (0, 1]: never overflows

    def grad(upstream: tf.Tensor) -> tf.Tensor:
        # 1 - 1/(1 + e^x) = sigmoid(x), written without e^x: 1/(1 + e^-x) for x >= 0, e^x/(1 + e^x) below
        return upstream * tf.where(x >= 0, 1 / (1 + e), e / (1 + e))

    return tf.nn.relu(x) + tf.math.log1p(e), grad  # max(x, 0) + log(1 + e^-|x|) = log(1 + e^x)


def plain_softplus(x: tf.Tensor) -> tf.Tensor:
    return tf.math.log(1 + tf.exp(x))  # e^x overflows to inf for large x


def clip_gradient_by_norm(clip_norm: float) -> "Callable[[tf.Tensor], tf.Tensor]":
    @tf.custom_gradient
    def clip(v: tf.Tensor) -> "tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]":
        def grad(upstream: tf.Tensor) -> tf.Tensor:
            return tf.clip_by_norm(upstream, clip_norm)  # rescaled to norm clip_norm if longer

        return tf.identity(v), grad  # forward: v unchanged

    return clip


def log1pexp_case(x: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape(persistent=True) as tape:
        plain = plain_softplus(x)
        stable = log1pexp(x)
    return {"y (plain)": plain, "y (log1pexp)": stable,
            "dy/dx (plain)": tape.gradient(plain, x), "dy/dx (log1pexp)": tape.gradient(stable, x)}


def clip_by_norm_case(v: tf.Variable, clip_norm: float) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape(persistent=True) as tape:
        raw = tf.reduce_sum(v ** 2)
        clipped = tf.reduce_sum(clip_gradient_by_norm(clip_norm)(v) ** 2)  # same value as raw
    return {"loss": raw, "dloss/dv (raw)": tape.gradient(raw, v),
            "dloss/dv (clipped)": tape.gradient(clipped, v)}


def run(scenario: CustomGradientScenario, run: RunConfig) -> Outcome:
    cases = selected("custom_gradient", scenario.case)
    x = Arg([float(p) for p in scenario.points])
    v = Arg(_vector(scenario.clip_norm, run.seed))
    overflow = _overflows(x.held(run.dtype), run.dtype)
    calls = {
        "log1pexp": Call(log1pexp_case, [x], values=["y (plain)", "y (log1pexp)",
                                                     *(["dy/dx (plain)"] if overflow.any() else [])]),
        "clip_by_norm": Call(clip_by_norm_case, [v, Raw(float(scenario.clip_norm), repr(scenario.clip_norm))],
                             values=["loss"]),
    }
    chosen = [calls[c] for c in cases]
    outcome, found = run_cases(run, chosen, helpers=[log1pexp, plain_softplus, clip_gradient_by_norm])

    started = time.perf_counter()
    if "log1pexp" in cases:
        _check_log1pexp(outcome, found, x.held(run.dtype), overflow, run)
    if "clip_by_norm" in cases:
        _check_clip(outcome, found, v.held(run.dtype), scenario.clip_norm, run)
    outcome.timings["checks"] = time.perf_counter() - started
    return outcome


def _vector(clip_norm: float, seed: int) -> list[float]:
    """A seeded direction, scaled so that the raw gradient 2v has norm RAW_OVER_CLIP * clip_norm."""
    u = np.random.default_rng(seed).standard_normal(VECTOR_SIZE)
    return (RAW_OVER_CLIP / 2 * clip_norm * u / np.linalg.norm(u)).tolist()


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
    outcome.values["loss"] = found["loss"]
    raw, clipped = found["dloss/dv (raw)"], found["dloss/dv (clipped)"]
    want_raw = 2 * v
    norm = float(np.linalg.norm(want_raw))
    outcome.analytic["dloss/dv (raw)"] = "2v"
    outcome.analytic["dloss/dv (clipped)"] = "2v * clip_norm / ||2v|| (as ||2v|| > clip_norm)"
    outcome.notes["dloss/dv (raw)"] = (
        f"loss = sum(v**2), so the gradient is 2v; v was chosen so that its norm is {norm:.6g}, "
        f"{RAW_OVER_CLIP:g} times clip_norm.")
    outcome.notes["dloss/dv (clipped)"] = (
        "The forward pass is the identity, so the loss is unchanged, but the custom backward pass "
        f"rescales the incoming gradient 2v to norm clip_norm = {clip_norm:g}: the same direction, "
        f"{RAW_OVER_CLIP:g} times shorter. Finite differences see only the forward pass, so they would "
        "give the raw gradient: this one is checked against its closed form instead.")
    verify(outcome, "dloss/dv (raw)", raw, want_raw, run, oracle_name="closed form 2v",
           fd=(lambda t: tf.reduce_sum(t ** 2), v))
    verify(outcome, "dloss/dv (clipped)", clipped, want_raw * clip_norm / norm, run,
           oracle_name="closed form 2v * clip_norm / ||2v||")
    if run.checks.analytic:
        tolerance = run.tolerances().analytic
        raw64, clipped64 = (np.asarray(g, dtype=np.float64) for g in (raw, clipped))
        length = np.linalg.norm(clipped64)
        outcome.checks.append(compare("||dloss/dv (clipped)|| equals clip_norm", length, clip_norm,
                                      tolerance))
        outcome.checks.append(compare("dloss/dv (clipped) points the same way as dloss/dv (raw)",
                                      clipped64 / length, raw64 / np.linalg.norm(raw64), tolerance))


def _at(x: np.ndarray, g: Any) -> str:
    return ", ".join(f"{g_i:.6g} at x = {x_i:g}" for x_i, g_i in zip(x, np.asarray(g, dtype=np.float64),
                                                                   strict=True))
