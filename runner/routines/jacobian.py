"""``jacobian``: every partial derivative of F: R^n -> R^m at once, and at many points.

``tape.gradient(F, X)`` would return the gradient of sum(F), mixing the outputs;
``tape.jacobian`` keeps them apart, one row per output. It needs one backward pass
per output: pfor ("parallel for", the default) vectorises them into a single
pass, while ``experimental_use_pfor=False`` runs them one by one in a
``tf.while_loop``, slower but usable where pfor has no converter for an op.
``batch_jacobian`` serves the common case where example b's outputs depend only
on example b's inputs: it returns the (batch, m, n) per-example Jacobians and
never builds the (batch, m, batch, n) block of zeros ``jacobian`` would.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from runner import snippets
from runner.checks import compare, finite
from runner.result import Outcome
from runner.routines.support import tf_dtype, timed_step
from runner.routines.vector import ZERO, VectorFunction, input_values, oracles, verify_jacobian
from runner.schema import JacobianScenario, RunConfig
from runner.tfenv import tf

LABEL = "dF/dX"
BATCH_LABEL = "dF/dX (batch)"
NOISE = 0.1  # the batch's points are X + NOISE * N(0, 1), drawn from default_rng(seed)


def batch_points(vf: VectorFunction, batch: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return vf.point + NOISE * rng.standard_normal((batch, vf.shape[1]))


def _named(name: str, timings: dict[str, float]) -> dict[str, float]:
    """timed_step's timings under ``name``: the first call (which traces, outside eager) and the repeat."""
    named = {name: timings["tape"]}
    if "tape_repeat" in timings:
        named[f"{name}_repeat"] = timings["tape_repeat"]
    return named


def run(scenario: JacobianScenario, run: RunConfig) -> Outcome:
    vf = VectorFunction(scenario)
    dtype = tf_dtype(run)
    F = vf.tensorflow(dtype)
    X = tf.constant(vf.point, dtype)

    def jacobian_step(use_pfor: bool) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
        def step(X: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            # Eagerly, the while_loop calls tape.gradient once per output row: the tape must persist.
            with tf.GradientTape(persistent=not use_pfor) as tape:
                tape.watch(X)
                Y = F(X)
            return Y, tape.jacobian(Y, X, unconnected_gradients=ZERO, experimental_use_pfor=use_pfor)

        return step

    def batch_step(points: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(points)
            Y = F(points)
        return Y, tape.batch_jacobian(Y, points, unconnected_gradients=ZERO)

    outcome = Outcome(snippet=snippet(vf, scenario.batch, run))
    (Y, J), timings = timed_step(jacobian_step(True), run, X)
    outcome.timings = _named("jacobian_pfor", timings)
    (_, J_loop), timings = timed_step(jacobian_step(False), run, X)
    outcome.timings.update(_named("jacobian_while_loop", timings))
    outcome.gradients[LABEL] = J.numpy()
    outcome.inputs = input_values(vf, X)
    outcome.values = {**dict(zip(vf.outputs, Y.numpy(), strict=True)), "dF/dX (while_loop)": J_loop.numpy()}
    outcome.analytic[LABEL] = str(vf.symbolic)
    outcome.notes[LABEL] = (
        f"row i is the gradient of output i ({', '.join(vf.outputs)}), column j the derivative along "
        f"input j ({', '.join(vf.names)}); computed with pfor and again with a tf.while_loop "
        "(experimental_use_pfor=False), timed as jacobian_pfor and jacobian_while_loop")
    points = None
    if scenario.batch:
        points = tf.constant(batch_points(vf, scenario.batch, run.seed), dtype)
        (Y_batch, J_batch), timings = timed_step(batch_step, run, points)
        outcome.timings.update(_named("batch_jacobian", timings))
        outcome.gradients[BATCH_LABEL] = J_batch.numpy()
        outcome.inputs["X (batch)"] = points.numpy()
        outcome.values["F (batch)"] = Y_batch.numpy()
        outcome.analytic[BATCH_LABEL] = f"{vf.symbolic} at each point"
        outcome.notes[BATCH_LABEL] = (
            f"tape.batch_jacobian at {scenario.batch} points X + {NOISE} * N(0, 1) drawn from "
            f"np.random.default_rng({run.seed}); entry b is the Jacobian at point b")

    started = time.perf_counter()
    outcome.checks.append(finite("F finite", Y))
    point = np.asarray(X, dtype=np.float64)  # the point as the run's dtype holds it
    want, numerical = oracles(vf, point, run)
    verify_jacobian(outcome, LABEL, outcome.gradients[LABEL], want, numerical, run)
    outcome.checks.append(compare(f"{LABEL}: pfor = while_loop", outcome.gradients[LABEL],
                                  outcome.values["dF/dX (while_loop)"], run.tolerances().analytic))
    if points is not None:
        outcome.checks.append(finite("F (batch) finite", outcome.values["F (batch)"]))
        want = vf.jacobian_at(np.asarray(points, dtype=np.float64))
        verify_jacobian(outcome, BATCH_LABEL, outcome.gradients[BATCH_LABEL], want, None, run)
    outcome.timings["checks"] = time.perf_counter() - started
    return outcome


def snippet(vf: VectorFunction, batch: int, run: RunConfig) -> str:
    """The routine as a script: the same F, tape.jacobian, and batch_jacobian at the same points."""
    lines = [
        vf.snippet_head(run.dtype),
        "with tf.GradientTape() as tape:",
        "    tape.watch(X)",
        "    Y = F(X)",
        "# experimental_use_pfor=False gives the same matrix, one row at a time in a tf.while_loop",
        f'gradients = {{"{LABEL}": tape.jacobian(Y, X, unconnected_gradients=tf.UnconnectedGradients.ZERO)}}',
    ]
    if batch:
        lines += [
            "",
            f"rng = np.random.default_rng({run.seed})",
            f"points = tf.constant(np.array({vf.point.tolist()!r}) + {NOISE!r} * "
            f"rng.standard_normal(({batch}, {vf.shape[1]})), tf.{run.dtype})",
            "with tf.GradientTape() as tape:",
            "    tape.watch(points)",
            "    Y = F(points)",
            f'gradients["{BATCH_LABEL}"] = tape.batch_jacobian(',
            "    Y, points, unconnected_gradients=tf.UnconnectedGradients.ZERO)",
        ]
    return "\n".join([*lines, snippets.FOOTER])
