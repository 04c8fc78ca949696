"""``forward_mode``: the Jacobian column by column (JVPs) and row by row (VJPs).

Reverse mode, the GradientTape, pulls a vector v back through the recorded ops
and returns the vector-Jacobian product J^T v: one pass per output, which is why
it wins for a scalar loss. Forward mode, ``tf.autodiff.ForwardAccumulator``,
pushes a tangent u forward alongside the values and returns the Jacobian-vector
product J u: one pass per input, so it wins when inputs are few and outputs many.
Basis vectors recover all of J either way. The two modes compute one linear map
and its transpose, so <u, J^T v> = <J u, v> for every u and v: the dot-product
test checks each against the other with no oracle at all.
"""

from __future__ import annotations

import time

import numpy as np

from runner import snippets
from runner.checks import compare, finite
from runner.result import Check, Outcome
from runner.routines.support import tf_dtype, timed_step
from runner.routines.vector import ZERO, VectorFunction, input_values, oracles, verify_jacobian
from runner.schema import ForwardModeScenario, RunConfig
from runner.tfenv import tf

FORWARD = "dF/dX (forward)"
REVERSE = "dF/dX (reverse)"


def probes(vf: VectorFunction, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random tangents u (count, n) and cotangents v (count, m)."""
    rng = np.random.default_rng(seed)
    m, n = vf.shape
    return rng.standard_normal((count, n)), rng.standard_normal((count, m))


def run(scenario: ForwardModeScenario, run: RunConfig) -> Outcome:
    vf = VectorFunction(scenario)
    m, n = vf.shape
    dtype = tf_dtype(run)
    F = vf.tensorflow(dtype)
    X = tf.constant(vf.point, dtype)
    U, V = (tf.constant(a, dtype) for a in probes(vf, scenario.probes, run.seed))

    def step(X: tf.Tensor, U: tf.Tensor, V: tf.Tensor) -> tuple[tf.Tensor, ...]:
        def jvp(u: tf.Tensor) -> tf.Tensor:  # J u: one forward pass, carrying the tangent u
            with tf.autodiff.ForwardAccumulator(X, u) as acc:
                Y = F(X)
            return acc.jvp(Y, unconnected_gradients=ZERO)

        with tf.GradientTape(persistent=True) as tape:  # one recording serves every VJP
            tape.watch(X)
            Y = F(X)

        def vjp(v: tf.Tensor) -> tf.Tensor:  # J^T v: one backward pass, seeded with v
            return tape.gradient(Y, X, output_gradients=v, unconnected_gradients=ZERO)

        forward = tf.stack([jvp(u) for u in tf.unstack(tf.eye(n, dtype=dtype))], axis=1)
        reverse = tf.stack([vjp(v) for v in tf.unstack(tf.eye(m, dtype=dtype))], axis=0)
        return (Y, forward, reverse, tf.stack([jvp(u) for u in tf.unstack(U)]),
                tf.stack([vjp(v) for v in tf.unstack(V)]))

    outcome = Outcome(snippet=snippet(vf, run.dtype))
    (Y, forward, reverse, Ju, JTv), outcome.timings = timed_step(step, run, X, U, V)
    outcome.gradients = {FORWARD: forward.numpy(), REVERSE: reverse.numpy()}
    outcome.inputs = input_values(vf, X)
    outcome.values = dict(zip(vf.outputs, Y.numpy(), strict=True))
    outcome.analytic = {FORWARD: str(vf.symbolic), REVERSE: str(vf.symbolic)}
    outcome.notes = {
        FORWARD: f"column j is the JVP J e_j from a ForwardAccumulator with tangent e_j ({n} forward passes)",
        REVERSE: f"row i is the VJP e_i^T J from tape.gradient(F, X, output_gradients=e_i) "
                 f"({m} backward passes over one persistent tape)",
    }

    started = time.perf_counter()
    outcome.checks.append(finite("F finite", Y))
    want, numerical = oracles(vf, np.asarray(X, dtype=np.float64), run)
    for label in (FORWARD, REVERSE):
        verify_jacobian(outcome, label, outcome.gradients[label], want, numerical, run)
    outcome.checks.append(compare("dF/dX: forward = reverse", outcome.gradients[FORWARD],
                                  outcome.gradients[REVERSE], run.tolerances().analytic))
    _dot_product_test(outcome, *(np.asarray(a, dtype=np.float64) for a in (U, V, Ju, JTv)),
                      float(np.linalg.norm(want)), run)
    outcome.timings["checks"] = time.perf_counter() - started
    return outcome


def _dot_product_test(
    outcome: Outcome, u: np.ndarray, v: np.ndarray, ju: np.ndarray, jtv: np.ndarray, norm_j: float,
    run: RunConfig,
) -> None:
    """<u, J^T v> = <J u, v> for each probe, within rounding of |u| |v| |J|."""
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, which fails its check below
        left = np.sum(u * jtv, axis=1)
        right = np.sum(ju * v, axis=1)
        gaps = np.abs(left - right)
    outcome.values.update({"probe u": u, "probe v": v, "J u": ju, "J^T v": jtv, "<u, J^T v>": left,
                           "<J u, v>": right, "|<u, J^T v> - <J u, v>|": gaps})
    tol = run.tolerances().analytic
    for k, gap in enumerate(gaps):
        bound = tol.atol + tol.rtol * float(np.linalg.norm(u[k]) * np.linalg.norm(v[k])) * norm_j
        ok = bool(np.isfinite(gap) and np.isfinite(bound))
        outcome.checks.append(Check(
            f"dot-product test {k}: <u, J^T v> = <J u, v>", ok and gap <= bound,
            float(gap) if ok else None, bound if ok else None,
            f"<u, J^T v> = {left[k]:.9g}, <J u, v> = {right[k]:.9g}" if ok
            else "NaN or Inf in a product or in |J|"))


def snippet(vf: VectorFunction, dtype: str) -> str:
    """The routine as a script: J from JVPs of the basis vectors, and from VJPs."""
    m, n = vf.shape
    zero = "unconnected_gradients=tf.UnconnectedGradients.ZERO"
    return "\n".join([
        vf.snippet_head(dtype),
        "columns = []  # J e_j, one forward pass each",
        f"for u in tf.unstack(tf.eye({n}, dtype=tf.{dtype})):",
        "    with tf.autodiff.ForwardAccumulator(X, u) as acc:",
        "        Y = F(X)",
        f"    columns.append(acc.jvp(Y, {zero}))",
        "",
        "with tf.GradientTape(persistent=True) as tape:",
        "    tape.watch(X)",
        "    Y = F(X)",
        f"rows = [tape.gradient(Y, X, output_gradients=v, {zero})  # e_i^T J, one backward pass each",
        f"        for v in tf.unstack(tf.eye({m}, dtype=tf.{dtype}))]",
        f'gradients = {{"{FORWARD}": tf.stack(columns, axis=1), "{REVERSE}": tf.stack(rows, axis=0)}}',
        snippets.FOOTER,
    ])
