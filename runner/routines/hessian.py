"""``hessian``: the matrix of second derivatives, as the Jacobian of the gradient.

The inputs are stacked into one vector X. An inner tape gives the gradient
g = df/dX, a vector; an outer tape, open while the inner one takes it, records
how g was computed, and ``outer.jacobian(g, X)`` differentiates every component
of g: the n x n Hessian, one reverse pass per row (vectorised by pfor). Mixed
partials of a smooth f commute, so H must come out symmetric.

What H is for: its eigenvalues say whether X sits in a bowl (all positive), on a
ridge or at a saddle, and the Newton step solve(H + damping I, -g) jumps to the
minimum of f's quadratic model. TensorFlow has no float16 or bfloat16 kernel for
``tf.linalg.solve``, so 16-bit runs solve in float32.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from runner import expr, snippets
from runner.checks import compare, finite, finite_differences
from runner.result import Check, Heatmap, Outcome
from runner.routines.calculus import (
    at_inputs,
    compile_lines,
    explain_range,
    fresh,
    fresh_names,
    label,
    target_name,
)
from runner.routines.support import check_dtype, tf_dtype, timed_step
from runner.schema import HessianScenario, RunConfig, Tolerance
from runner.tfenv import tf

ZERO = tf.UnconnectedGradients.ZERO
Function = Callable[[tf.Tensor], tf.Tensor]


def _function(tree: expr.Expr, names: list[str], dtype: tf.DType) -> Function:
    """f of the stacked vector: unstack it into the named inputs, then evaluate."""
    backend = expr.TensorFlowBackend(dtype)
    return lambda point: expr.evaluate(tree, dict(zip(names, tf.unstack(point), strict=True)), backend)


def value_and_gradient(fn: Function, point: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """f and df/dX from one tape (0 where f does not depend on an input, not None)."""
    with tf.GradientTape() as tape:
        tape.watch(point)
        value = fn(point)
    return value, tape.gradient(value, point, unconnected_gradients=ZERO)


def run(scenario: HessianScenario, run: RunConfig) -> Outcome:
    names = list(scenario.inputs)
    target = target_name(names)
    vector = fresh("X", [*names, target])
    g_label, h_label = label(target, vector, 1), label(target, vector, 2)
    tree = expr.parse(scenario.function, names)
    fn = _function(tree, names, tf_dtype(run))

    @tf.autograph.experimental.do_not_convert  # no tensor-dependent Python control flow to convert
    def step(point: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as outer:
            outer.watch(point)
            value, gradient = value_and_gradient(fn, point)
        return value, gradient, outer.jacobian(gradient, point, unconnected_gradients=ZERO)

    point = tf.constant([spec.value for spec in scenario.inputs.values()], tf_dtype(run))
    outcome = Outcome(snippet=snippet(scenario, names, target, vector, (g_label, h_label), run))
    (value, gradient, hessian), outcome.timings = timed_step(step, run, point)
    outcome.gradients = {g_label: gradient.numpy(), h_label: hessian.numpy()}
    outcome.inputs = dict(zip(names, point.numpy(), strict=True))
    outcome.values = {target: value.numpy()}
    h64 = hessian.numpy().astype(np.float64)
    if np.isfinite(h64).all():
        outcome.values["eigenvalues"] = np.linalg.eigvalsh(h64)
        outcome.notes[h_label] = _curvature(outcome.values["eigenvalues"], target)

    started = time.perf_counter()
    newton = _newton_step(outcome, fn, point, gradient, hessian, scenario.damping, target, run)
    outcome.timings["newton_step"] = time.perf_counter() - started
    if newton is not None:
        solved = "" if newton.dtype == run.dtype else (
            f" (solved in {newton.dtype}: tf.linalg.solve has no {run.dtype} kernel)")
        outcome.notes[g_label] = (
            f"One Newton step, solve(H + {scenario.damping:g} I, -g) = {np.array2string(newton, precision=6)}"
            f"{solved}, takes {target} from {float(value):.6g} to "
            f"{float(outcome.values[f'{target}_after_step']):.6g}.")
    started = time.perf_counter()
    _check(outcome, tree, names, target, point, (g_label, h_label), newton, scenario.damping, run)
    outcome.timings["checks"] = time.perf_counter() - started
    outcome.figures.append(Heatmap(f"{scenario.name}.png", f"Hessian of {scenario.function}",
                                   names, h64))
    return outcome


def _curvature(eigenvalues: np.ndarray, target: str) -> str:
    """What the eigenvalues of H say about the shape of f around X."""
    low, high = float(eigenvalues.min()), float(eigenvalues.max())
    if low > 0:
        kind = f"positive definite: {target} curves up in every direction, and the Newton step goes downhill"
    elif high < 0:
        kind = f"negative definite: {target} curves down in every direction (near a maximum)"
    elif low < 0 < high:
        kind = f"indefinite: {target} curves up along some directions and down along others (a saddle)"
    else:
        kind = f"singular: {target} is flat to second order along some direction"
    return f"eigenvalues from {low:.6g} to {high:.6g}; {kind}."


def _newton_step(outcome: Outcome, fn: Function, point: tf.Tensor, gradient: tf.Tensor,
                 hessian: tf.Tensor, damping: float, target: str, run: RunConfig) -> np.ndarray | None:
    """solve(H + damping I, -g) in TensorFlow, and f before and after the step; None if singular."""
    dtype = check_dtype(run)  # tf.linalg.solve has no 16-bit kernels; float32 and float64 are kept
    matrix = tf.cast(hessian, dtype) + tf.constant(damping, dtype) * tf.eye(hessian.shape[0], dtype=dtype)
    try:
        step = tf.linalg.solve(matrix, -tf.cast(gradient, dtype)[:, None])[:, 0]
    except tf.errors.InvalidArgumentError:  # "Input matrix is not invertible."
        return None
    after = fn(point + tf.cast(step, point.dtype))
    outcome.values["newton_step"] = step.numpy()
    outcome.values[f"{target}_after_step"] = after.numpy()
    return step.numpy()


def _check(outcome: Outcome, tree: expr.Expr, names: list[str], target: str, point: tf.Tensor,
           labels: tuple[str, str], newton: np.ndarray | None, damping: float, run: RunConfig) -> None:
    import sympy as sp

    g_label, h_label = labels
    tolerances = run.tolerances()
    sympy = expr.SymPyBackend()
    symbols = sympy.symbols(names)
    symbolic = expr.evaluate(tree, symbols, sympy)
    variables = list(symbols.values())
    exact_g = [sp.diff(symbolic, v) for v in variables]
    exact_h = sp.hessian(symbolic, variables)
    outcome.analytic[g_label] = str(exact_g)
    outcome.analytic[h_label] = str(exact_h.tolist())
    got_g, got_h = outcome.gradients[g_label], outcome.gradients[h_label]
    want_f = at_inputs(symbolic, symbols, outcome.inputs, ())
    want_g = at_inputs(sp.Matrix(exact_g), symbols, outcome.inputs, (len(names), 1))[:, 0]
    want_h = at_inputs(exact_h, symbols, outcome.inputs, got_h.shape)
    outcome.checks += [
        explain_range(finite(f"{label} finite", got), want, run.dtype)
        for label, got, want in ((target, outcome.values[target], want_f), (g_label, got_g, want_g),
                                 (h_label, got_h, want_h))]
    outcome.checks.append(
        compare(f"{h_label} symmetric: H against H^T", got_h, got_h.T, tolerances.analytic))
    if run.checks.analytic:
        outcome.checks += [compare(f"{g_label} vs SymPy", got_g, want_g, tolerances.analytic),
                           compare(f"{h_label} vs SymPy (sp.hessian)", got_h, want_h, tolerances.analytic),
                           _check_newton(newton, want_h, want_g, damping, tolerances.analytic)]
    if run.checks.finite_differences:
        wide_fn = _function(tree, names, check_dtype(run))
        wide = tf.cast(point, check_dtype(run))
        (fd_g,) = finite_differences(wide_fn, [wide], tolerances.delta)
        # Row i of H is the gradient of g_i: difference the tape's gradient, one component at a time.
        fd_h = np.stack([finite_differences(lambda p, i=i: value_and_gradient(wide_fn, p)[1][i], [wide],
                                            tolerances.delta)[0] for i in range(len(names))])
        outcome.checks += [
            compare(f"{g_label} vs finite differences", got_g, fd_g, tolerances.finite_differences),
            compare(f"{h_label} vs finite differences of the tape's {g_label}", got_h, fd_h,
                    tolerances.finite_differences)]


def _check_newton(newton: np.ndarray | None, hessian: np.ndarray, gradient: np.ndarray, damping: float,
                  tol: Tolerance) -> Check:
    """The step against NumPy's solve from SymPy's H and g, in float64.

    A solve magnifies relative errors in H and g by up to the condition number of
    H + damping I, so the tolerance is scaled by it.
    """
    name = "Newton step vs NumPy float64 solve from SymPy's H and g"
    matrix = hessian + damping * np.eye(len(gradient))
    if newton is None:
        return Check(name, False, None, None, "H + damping*I is singular in TensorFlow's solve; "
                                               "raise scenario.damping")
    try:
        want = np.linalg.solve(matrix, -gradient)
        cond = float(np.linalg.cond(matrix))
    except np.linalg.LinAlgError as err:
        return Check(name, False, None, None, f"SymPy's H + damping*I is singular ({err}); "
                                               "raise scenario.damping")
    check = compare(name, newton, want, Tolerance(rtol=tol.rtol * cond, atol=tol.atol * cond))
    scaled = f"tolerance scaled by cond(H + damping I) = {cond:.3g}"
    check.detail = f"{check.detail}; {scaled}" if check.detail else scaled
    return check


def snippet(scenario: HessianScenario, names: list[str], target: str, vector: str,
            labels: tuple[str, str], run: RunConfig) -> str:
    """The two tapes as a plain script, printing the same gradient and Hessian."""
    step, outer, gradient, hessian = fresh_names(("step", "outer", "g", "H"), [*names, target, vector])
    unpacked = ", ".join(names) + ("," if len(names) == 1 else "")
    known = {n: expr.Code(n) for n in names}
    code = expr.evaluate(expr.parse(scenario.function, names), known, expr.CodeBackend(run.dtype))
    values = [spec.value for spec in scenario.inputs.values()]
    zero = "unconnected_gradients=tf.UnconnectedGradients.ZERO"
    return "\n".join([
        snippets.HEADER,
        f"{vector} = tf.constant({values!r}, tf.{run.dtype})  # {', '.join(names)}",
        "",
        "",
        f"def {step}({vector}):",
        f"    with tf.GradientTape() as {outer}:",
        f"        {outer}.watch({vector})",
        "        with tf.GradientTape() as tape:",
        f"            tape.watch({vector})",
        f"            {unpacked} = tf.unstack({vector})",
        f"            {target} = {code}  # {scenario.function}",
        f"        {gradient} = tape.gradient({target}, {vector}, {zero})",
        f"    {hessian} = {outer}.jacobian({gradient}, {vector}, {zero})",
        f"    return {target}, {gradient}, {hessian}",
        "",
        "",
        *compile_lines(step, run.compile),
        f"_, {gradient}, {hessian} = {step}({vector})",
        f'gradients = {{"{labels[0]}": {gradient}, "{labels[1]}": {hessian}}}',
        snippets.FOOTER,
    ])
