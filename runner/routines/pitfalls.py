"""``pitfalls``: the catalogue of why a gradient comes back None, NaN or inf.

None means the tape found no recorded path from the target to the source. The
path breaks when the source is not what the tape watched (a Variable replaced by
a Tensor, an integer), when a value leaves TensorFlow (a NumPy detour), when a
stateful op stands in the way (assign_add), or when the branch that used the source
never ran. NaN and inf are the opposite failure: the path exists but the chain
rule multiplies through a point where a derivative is infinite (sqrt at 0, the
norm at the zero vector), or through an untaken tf.where branch whose NaN still
flows backwards as 0 * NaN. And where an op has no registered gradient
(tf.image.adjust_contrast), the path exists but cannot be followed: tape.gradient
raises LookupError, recorded with TensorFlow's message as the expected outcome.

Each case runs the pitfall (as TensorFlow's autodiff guide writes it, where the
guide has it) and, where there is one, its fix; the None/NaN/inf/error is checked
as the expected outcome, and the fixed gradients against SymPy and finite
differences. Two outcomes depend on the compile mode and are predicted
per mode: in a graph, tf.cond's untaken branch gets 0 instead of None; and
TensorFlow's own tf.sqrt gradient kernel guards against 0 * NaN while XLA's does
not, so the where trap is shown with x ** 0.5, which no mode guards. NumPy cannot
run inside tf.function, so numpy_detour always runs eagerly, and so does
no_gradient, which hands its error back in a Python list.
"""

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from runner.result import Check, Outcome
from runner.routines.catalogue import (
    Arg,
    Call,
    Raw,
    expect,
    run_cases,
    selected,
    tensorflow_warnings,
    verify,
    verify_expression,
)
from runner.scenarios.schema import PitfallsScenario, RunConfig
from runner.tfenv import tf

Found = dict[str, np.ndarray | None]


def variable_replaced(x: tf.Variable) -> dict[str, tf.Tensor | None]:
    x.assign(2.0)  # start from 2.0 on every call
    variable, found = x, {}
    for epoch in range(2):
        with tf.GradientTape() as tape:
            y = x + 1
        found[f"dy/dx (epoch {epoch}, x = x + 1)"] = tape.gradient(y, x)
        x = x + 1  # a new Tensor named x: the Variable is left behind, and a Tensor is not watched
    x = variable
    x.assign(2.0)
    for epoch in range(2):
        with tf.GradientTape() as tape:
            y = x + 1
        found[f"dy/dx (epoch {epoch}, x.assign_add(1))"] = tape.gradient(y, x)
        x.assign_add(1)  # the fix: x stays the Variable, updated in place
    return found


def numpy_detour(x: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        x2 = x ** 2
        y = np.mean(x2, axis=0)  # NumPy computes this step outside TensorFlow
        y = tf.reduce_mean(y, axis=0)  # which converts NumPy's array to a constant tensor
    lost = tape.gradient(y, x)
    with tf.GradientTape() as tape:
        x2 = x ** 2
        y = tf.reduce_mean(tf.reduce_mean(x2, axis=0), axis=0)  # the fix: stay in TensorFlow ops
    return {"dy/dx (through NumPy)": lost, "dy/dx (tf.reduce_mean)": tape.gradient(y, x)}


def integer_dtype(x: tf.Tensor, x_float: tf.Tensor) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as g:
        g.watch(x)  # x is an int32 tensor: TensorFlow warns that it cannot watch it
        y = x * x
    lost = g.gradient(y, x)
    with tf.GradientTape() as g:
        g.watch(x_float)
        y = x_float * x_float  # the fix: the same computation on a float
    return {"dy/dx (int32)": lost, "dy/dx (float)": g.gradient(y, x_float)}


def stateful_op(x0: tf.Variable, x1: tf.Variable) -> dict[str, tf.Tensor | None]:
    x1.assign(0.0)  # start from 0.0 on every call
    with tf.GradientTape(persistent=True) as tape:
        direct = (x1 + x0) ** 2  # the fix: use the values, with no stateful op in the way
        x1.assign_add(x0)  # update x1 = x1 + x0: a stateful op has no gradient
        y = x1 ** 2  # y = (x1 + x0)**2 in value, but the tape starts recording from x1
    return {"dy/dx0 (through x1.assign_add)": tape.gradient(y, x0),
            "dy/dx1 (through x1.assign_add)": tape.gradient(y, x1),
            "dy/dx0 (direct)": tape.gradient(direct, x0)}


def no_gradient(image: tf.Variable, delta: tf.Variable, raised: list[str]) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        new_image = tf.image.adjust_contrast(image, delta)
    try:
        dimage, ddelta = tape.gradient(new_image, [image, delta])
    except LookupError as err:  # no gradient is registered for the op: an error, not None
        raised.append(f"{type(err).__name__}: {err}")
        return {"new_image": new_image}
    return {"new_image": new_image, "dnew_image/dimage": dimage, "dnew_image/ddelta": ddelta}


def branch_not_taken(x: tf.Variable, a: tf.Variable, b: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        y = tf.cond(x > 0, lambda: a * x, lambda: b * x)  # x > 0: only a * x runs
    dy_da, dy_db, dy_dx = tape.gradient(y, [a, b, x])
    return {"dy/da (branch taken)": dy_da, "dy/db (branch not taken)": dy_db, "dy/dx (tf.cond)": dy_dx}


def sqrt_at_zero(x: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        y = tf.sqrt(x)  # x = 0
    return {"dy/dx (sqrt at 0)": tape.gradient(y, x)}


def norm_at_zero(x: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        y = tf.norm(x)  # x = (0, 0): the gradient x / ||x|| is 0 / 0
    return {"dy/dx (norm at 0)": tape.gradient(y, x)}


def where_nan(x: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape(persistent=True) as tape:
        # y = sqrt(x) for x > 0, else 0; at x = -1 the branch not taken is sqrt(-1) = NaN
        y_pow = tf.where(x > 0, x ** 0.5, 0.0)
        y_sqrt = tf.where(x > 0, tf.sqrt(x), 0.0)
    return {"dy/dx (tf.where, x ** 0.5)": tape.gradient(y_pow, x),
            "dy/dx (tf.where, tf.sqrt)": tape.gradient(y_sqrt, x)}


def where_nan_fixed(x: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape(persistent=True) as tape:
        safe = tf.where(x > 0, x, 1.0)  # the double-where fix: the untaken branch sees 1, not x
        y_pow = tf.where(x > 0, safe ** 0.5, 0.0)
        y_sqrt = tf.where(x > 0, tf.sqrt(safe), 0.0)
    return {"dy/dx (double tf.where, x ** 0.5)": tape.gradient(y_pow, x),
            "dy/dx (double tf.where, tf.sqrt)": tape.gradient(y_sqrt, x)}


CALLS: dict[str, Call] = {
    "variable_replaced": Call(variable_replaced, [Arg(2.0)]),
    "numpy_detour": Call(numpy_detour, [Arg([[1.0, 2.0], [3.0, 4.0]])], eager=True),
    "integer_dtype": Call(integer_dtype, [Arg(10, variable=False, dtype="int32"), Arg(10.0, variable=False)]),
    "stateful_op": Call(stateful_op, [Arg(3.0), Arg(0.0)]),
    "branch_not_taken": Call(branch_not_taken, [Arg(3.0), Arg(2.0), Arg(5.0)]),
    "sqrt_at_zero": Call(sqrt_at_zero, [Arg(0.0)], values=["dy/dx (sqrt at 0)"]),
    "norm_at_zero": Call(norm_at_zero, [Arg([0.0, 0.0])], values=["dy/dx (norm at 0)"]),
    "where_nan": Call(where_nan, [Arg(-1.0)], values=["dy/dx (tf.where, x ** 0.5)"]),
    "where_nan_fixed": Call(where_nan_fixed, [Arg(-1.0)]),
}
#: The expected error's label: the call that raises it.
NO_GRADIENT = "tape.gradient(new_image, [image, delta])"
#: Under XLA, tf.sqrt's gradient has no guard against 0 * NaN, so it too is NaN: a value, not a gradient.
XLA_NAN = "dy/dx (tf.where, tf.sqrt)"


def run(scenario: PitfallsScenario, run: RunConfig) -> Outcome:
    cases = selected("pitfalls", scenario.case)
    raised: list[str] = []  # the errors the cases caught, as "LookupError: message"
    calls = [_call(c, run, raised) for c in cases]
    with tensorflow_warnings() as warnings:
        outcome, found = run_cases(run, calls)
    started = time.perf_counter()
    for case in cases:
        CHECKS[case](outcome, found, run, [*warnings, *raised])
    if run.compile != "eager":
        if "numpy_detour" in cases:
            outcome.notes["dy/dx (through NumPy)"] += (
                f" This case ran eagerly although compile={run.compile}: inside tf.function a tensor has no "
                ".numpy() value to hand to NumPy.")
        if "no_gradient" in cases:
            outcome.notes["new_image"] += (
                f" This case ran eagerly, as the guide runs it, although compile={run.compile}: it hands the "
                "error back in a Python list, which tf.function does not let a function modify. Traced by "
                "tf.function, tape.gradient raises the same LookupError while tracing.")
    outcome.timings["checks"] = time.perf_counter() - started
    return outcome


def _call(case: str, run: RunConfig, raised: list[str]) -> Call:
    if case == "no_gradient":
        # float32 whatever the run's dtype, as in the guide: AdjustContrastv2 takes its factor in float32
        image, delta = Arg([[[0.5, 0.0, 0.0]]], dtype="float32"), Arg(0.1, dtype="float32")
        return Call(no_gradient, [image, delta, Raw(raised, "[]")],
                    values=["new_image"], eager=True)
    call = CALLS[case]
    if call.fn is where_nan and run.compile == "xla":
        return Call(call.fn, call.args, values=[*call.values, XLA_NAN])
    return call


def _derivative(outcome: Outcome, label: str, got: Any, run: RunConfig, text: str, wrt: str,
                at: dict[str, float], note: str) -> None:
    """A gradient TensorFlow gets right: d(text)/d(wrt) at ``at``, by SymPy and finite differences."""
    outcome.notes[label] = note
    verify_expression(outcome, label, got, run, text, wrt, {k: np.float64(v) for k, v in at.items()})


def _variable_replaced(outcome: Outcome, found: Found, run: RunConfig, told: list[str]) -> None:
    for epoch, at in ((0, 2.0), (1, 3.0)):
        _derivative(outcome, f"dy/dx (epoch {epoch}, x.assign_add(1))",
                    found[f"dy/dx (epoch {epoch}, x.assign_add(1))"], run, "x + 1", "x", {"x": at},
                    f"x.assign_add(1) updates the Variable in place, so in epoch {epoch} x is still the "
                    f"watched Variable (holding {at:g}): d(x + 1)/dx = 1.")
    _derivative(outcome, "dy/dx (epoch 0, x = x + 1)", found["dy/dx (epoch 0, x = x + 1)"], run, "x + 1",
                "x", {"x": 2.0}, "In the first epoch x is still the Variable, watched automatically: "
                                 "d(x + 1)/dx = 1.")
    expect(outcome, "dy/dx (epoch 1, x = x + 1)", found["dy/dx (epoch 1, x = x + 1)"], "None",
           "`x = x + 1` at the end of the first epoch did not change the Variable: it made a new Tensor "
           "and rebound the name x to it. The tape watches trainable Variables automatically but not "
           "Tensors, so in the second epoch y = x + 1 was not recorded and the gradient is None. "
           "The fix is x.assign_add(1).")


def _numpy_detour(outcome: Outcome, found: Found, run: RunConfig, told: list[str]) -> None:
    expect(outcome, "dy/dx (through NumPy)", found["dy/dx (through NumPy)"], "None",
           "np.mean took x**2 out of TensorFlow: NumPy returned a plain array, and tf.reduce_mean "
           "converted it to a new constant tensor, so the tape saw no op connecting y to x and the "
           "gradient is None.")
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    label = "dy/dx (tf.reduce_mean)"
    outcome.notes[label] = ("With tf.reduce_mean in place of np.mean every step is a TensorFlow op the "
                            "tape records: y is the mean of the four x**2, so dy/dx = 2x / 4 = x / 2.")
    outcome.analytic[label] = "x / 2"
    verify(outcome, label, found[label], x / 2, run, oracle_name="closed form x / 2",
           fd=(lambda t: tf.reduce_mean(t ** 2), x))


def _integer_dtype(outcome: Outcome, found: Found, run: RunConfig, told: list[str]) -> None:
    said = next((w for w in told if "watched" in w), None)
    expect(outcome, "dy/dx (int32)", found["dy/dx (int32)"], "None",
           "Gradients are defined only for floating-point (and complex) tensors: the tape refuses to "
           "watch the int32 tensor x, so the gradient is None" +
           (f". TensorFlow warned: \"{said}\"" if said else "") + ".")
    _derivative(outcome, "dy/dx (float)", found["dy/dx (float)"], run, "x*x", "x", {"x": 10.0},
                f"The same product on a watched {run.dtype} tensor is differentiable: "
                "d(x*x)/dx = 2x = 20 at x = 10.")


def _stateful_op(outcome: Outcome, found: Found, run: RunConfig, told: list[str]) -> None:
    expect(outcome, "dy/dx0 (through x1.assign_add)", found["dy/dx0 (through x1.assign_add)"], "None",
           "x1.assign_add(x0) is a stateful op with no gradient: it writes x1 + x0 into x1 and the tape's "
           "path from x0 stops there. y = x1**2 reads x1 afresh, so y depends on x1, not on x0, although "
           "in value y = (x1 + x0)**2. Other stateful ops (assign, scatter updates) break the path the "
           "same way, and a random draw is a constant to the tape.")
    _derivative(outcome, "dy/dx1 (through x1.assign_add)", found["dy/dx1 (through x1.assign_add)"], run,
                "x1**2", "x1", {"x1": 3.0},
                "x1 is a watched Variable, now holding 0 + 3 = 3, so y = x1**2 has a gradient for it: "
                "2 x1 = 6.")
    _derivative(outcome, "dy/dx0 (direct)", found["dy/dx0 (direct)"], run, "(x1 + x0)**2", "x0",
                {"x0": 3.0, "x1": 0.0},
                "Computing (x1 + x0)**2 from the values, before the update, keeps the path: "
                "dy/dx0 = 2 (x1 + x0) = 6 at x0 = 3, x1 = 0.")


def _no_gradient(outcome: Outcome, found: Found, run: RunConfig, told: list[str]) -> None:
    error = next((m for m in told if m.startswith("LookupError: ")), None)
    outcome.values["new_image"] = found["new_image"]
    outcome.notes["new_image"] = (  # the report shows notes beside values and gradients
        f"The image, adjusted. Then {NO_GRADIENT}: tf.image.adjust_contrast runs the op "
        "AdjustContrastv2, for which TensorFlow registers no gradient function. Backpropagating "
        "through it is not a None (that means no path): the path exists, but the tape cannot take a "
        "step along it, so tape.gradient raises LookupError." +
        (f" TensorFlow said: \"{error}\"" if error else ""))
    gradients = {label: g for label, g in found.items() if label.startswith("dnew_image/")}
    for label, got in gradients.items():
        outcome.gradients[label] = got
        outcome.notes[label] = "TensorFlow returned this gradient where it used to raise LookupError."
    outcome.checks.append(Check(f"{NO_GRADIENT} raises LookupError (expected)", error is not None, None, None,
                                error or f"TensorFlow returned gradients: {', '.join(gradients)}"))


def _branch_not_taken(outcome: Outcome, found: Found, run: RunConfig, told: list[str]) -> None:
    at = {"x": 3.0, "a": 2.0, "b": 5.0}
    _derivative(outcome, "dy/da (branch taken)", found["dy/da (branch taken)"], run, "a*x", "a", at,
                "x = 3 > 0, so tf.cond ran a * x: dy/da = x = 3.")
    _derivative(outcome, "dy/dx (tf.cond)", found["dy/dx (tf.cond)"], run, "a*x", "x", at,
                "The gradient for x follows the branch taken, a * x: dy/dx = a = 2. The condition x > 0 "
                "itself contributes nothing: a comparison has no gradient.")
    label = "dy/db (branch not taken)"
    if run.compile == "eager":
        expect(outcome, label, found[label], "None",
               "Eagerly, tf.cond (like a Python if) runs only the branch taken, so b * x was never "
               "computed or recorded and the tape has no path to b: None.")
    else:
        _derivative(outcome, label, found[label], run, "a*x", "b", at,
                    f"Under compile={run.compile}, tf.cond builds both branches into the graph, so b is "
                    "connected through the cond op; its gradient through the branch not taken is 0 rather "
                    "than the None eager execution gives.")


def _sqrt_at_zero(outcome: Outcome, found: Found, run: RunConfig, told: list[str]) -> None:
    label = "dy/dx (sqrt at 0)"
    outcome.analytic[label] = "d sqrt(x)/dx = 1/(2 sqrt(x)), +oo as x -> 0+"
    expect(outcome, label, found[label], "+inf",
           "d sqrt(x)/dx = 1/(2 sqrt(x)) is 1/0 = +inf at x = 0: sqrt has a vertical tangent there. "
           "An inf gradient becomes NaN as soon as the chain rule multiplies it by 0; "
           "use sqrt(x + eps) or keep x away from 0.")


def _norm_at_zero(outcome: Outcome, found: Found, run: RunConfig, told: list[str]) -> None:
    label = "dy/dx (norm at 0)"
    outcome.analytic[label] = "d||x||/dx = x / ||x||, 0/0 at x = 0"
    expect(outcome, label, found[label], "NaN",
           "The gradient of ||x|| is x / ||x||, which is 0/0 = NaN at the zero vector, where the norm "
           "has the tip of a cone and no single slope. Use sqrt(sum(x**2) + eps), or a double tf.where.")


def _where_nan(outcome: Outcome, found: Found, run: RunConfig, told: list[str]) -> None:
    label = "dy/dx (tf.where, x ** 0.5)"
    outcome.analytic[label] = "0 (y = 0 near x = -1)"
    expect(outcome, label, found[label], "NaN",
           "At x = -1, tf.where picks 0 but still computes x ** 0.5 = NaN. Backwards, tf.where sends "
           "a zero gradient into the untaken branch, and the chain rule multiplies that 0 by the "
           "branch's derivative 0.5 * x**-0.5 = NaN: 0 * NaN = NaN, although the true derivative is 0.")
    if run.compile == "xla":
        expect(outcome, XLA_NAN, found[XLA_NAN], "NaN",
               "The same trap with tf.sqrt: under XLA its gradient is computed as 0 * 0.5 / sqrt(-1) = NaN.")
        return
    outcome.notes[XLA_NAN] = (
        "With tf.sqrt this TensorFlow returns 0: its Sqrt gradient kernel skips the multiplication "
        "when the incoming gradient is exactly 0, sidestepping 0 * NaN. Do not rely on it: under "
        "compile=xla the same code gives NaN, and most ops (x ** 0.5, log, division) have no such guard.")
    verify(outcome, XLA_NAN, found[XLA_NAN], 0.0, run, oracle_name="closed form 0",
           fd=(_masked_sqrt, -1.0))


def _where_nan_fixed(outcome: Outcome, found: Found, run: RunConfig, told: list[str]) -> None:
    for label in ("dy/dx (double tf.where, x ** 0.5)", "dy/dx (double tf.where, tf.sqrt)"):
        outcome.notes[label] = (
            "The double where: the inner tf.where replaces x by a harmless 1 wherever the outer one "
            "will discard the branch, so the untaken branch's derivative is finite and 0 * finite = 0, "
            "the true derivative of y (which is 0 near x = -1).")
        outcome.analytic[label] = "0 (y = 0 near x = -1)"
        verify(outcome, label, found[label], 0.0, run, oracle_name="closed form 0", fd=(_masked_sqrt, -1.0))


def _masked_sqrt(x: tf.Tensor) -> tf.Tensor:
    """The function every where case means: sqrt(x) for x > 0, else 0 (for finite differences)."""
    return tf.where(x > 0, tf.sqrt(x), 0.0)


CHECKS: dict[str, Callable[[Outcome, Found, RunConfig, list[str]], None]] = {
    "variable_replaced": _variable_replaced, "numpy_detour": _numpy_detour,
    "integer_dtype": _integer_dtype, "stateful_op": _stateful_op, "branch_not_taken": _branch_not_taken,
    "sqrt_at_zero": _sqrt_at_zero, "norm_at_zero": _norm_at_zero, "where_nan": _where_nan,
    "where_nan_fixed": _where_nan_fixed, "no_gradient": _no_gradient,
}
