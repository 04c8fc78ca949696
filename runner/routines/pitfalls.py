"""``pitfalls``: the catalogue of why a gradient comes back None, NaN or inf.

None means the tape found no recorded path from the target to the source. The
path breaks when the source is not what the tape watched (a Variable replaced by
a Tensor, an integer), when a value leaves TensorFlow (a NumPy detour), when a
stateful op stands in the way (assign), or when the branch that used the source
never ran. NaN and inf are the opposite failure: the path exists but the chain
rule multiplies through a point where a derivative is infinite (sqrt at 0, the
norm at the zero vector), or through an untaken tf.where branch whose NaN still
flows backwards as 0 * NaN.

Each case runs the pitfall and, where there is one, its fix; the None/NaN/inf
is checked as the expected outcome, and the fixed gradients against SymPy and
finite differences. Two outcomes depend on the compile mode and are predicted
per mode: in a graph, tf.cond's untaken branch gets 0 instead of None; and
TensorFlow's own tf.sqrt gradient kernel guards against 0 * NaN while XLA's does
not, so the where trap is shown with x ** 0.5, which no mode guards. NumPy cannot
run inside tf.function, so numpy_detour always runs eagerly.
"""

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from runner.result import Outcome
from runner.routines.catalogue import (
    Arg,
    Call,
    expect,
    run_cases,
    selected,
    tensorflow_warnings,
    verify,
    verify_expression,
)
from runner.schema import PitfallsScenario, RunConfig
from runner.tfenv import tf

Found = dict[str, np.ndarray | None]


def variable_replaced(x: tf.Variable) -> dict[str, tf.Tensor | None]:
    x.assign(2.0)  # start from 2.0 on every call
    replaced = x + 1.0  # what `x = x + 1` leaves in x: a new Tensor, no longer the Variable
    with tf.GradientTape() as tape:
        y = replaced ** 2  # a Tensor is not watched automatically
    lost = tape.gradient(y, replaced)
    x.assign_add(1.0)  # the fix: x stays a Variable, now holding 3.0
    with tf.GradientTape() as tape:
        y = x ** 2
    return {"dy/dx (x = x + 1)": lost, "dy/dx (x.assign_add(1))": tape.gradient(y, x)}


def numpy_detour(x: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        y = tf.constant(np.square(x.numpy()))  # NumPy computes x**2 outside TensorFlow: a constant
    lost = tape.gradient(y, x)
    with tf.GradientTape() as tape:
        y = tf.square(x)  # the fix: stay in TensorFlow ops
    return {"dy/dx (through NumPy)": lost, "dy/dx (tf.square)": tape.gradient(y, x)}


def integer_dtype(n: tf.Tensor, x: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape() as tape:
        tape.watch(n)  # n is an int32 tensor: TensorFlow warns that it cannot watch it
        y = n * n
    lost = tape.gradient(y, n)
    with tf.GradientTape() as tape:
        y = x * x  # the fix: the same computation on a float
    return {"dy/dn (int32)": lost, "dy/dx (float)": tape.gradient(y, x)}


def stateful_op(x: tf.Variable, v: tf.Variable) -> dict[str, tf.Tensor | None]:
    with tf.GradientTape(persistent=True) as tape:
        v.assign(x ** 2)  # a stateful write has no gradient: the path from x ends here
        through_v = 2.0 * v
        direct = 2.0 * x ** 2  # the fix: use the value, not a variable written with it
    return {"dy/dx (through v.assign)": tape.gradient(through_v, x),
            "dy/dv (through v.assign)": tape.gradient(through_v, v),
            "dy/dx (direct)": tape.gradient(direct, x)}


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
    "numpy_detour": Call(numpy_detour, [Arg(3.0)], eager=True),
    "integer_dtype": Call(integer_dtype, [Arg(3, variable=False, dtype="int32"), Arg(3.0)]),
    "stateful_op": Call(stateful_op, [Arg(3.0), Arg(0.0)]),
    "branch_not_taken": Call(branch_not_taken, [Arg(3.0), Arg(2.0), Arg(5.0)]),
    "sqrt_at_zero": Call(sqrt_at_zero, [Arg(0.0)], values=["dy/dx (sqrt at 0)"]),
    "norm_at_zero": Call(norm_at_zero, [Arg([0.0, 0.0])], values=["dy/dx (norm at 0)"]),
    "where_nan": Call(where_nan, [Arg(-1.0)], values=["dy/dx (tf.where, x ** 0.5)"]),
    "where_nan_fixed": Call(where_nan_fixed, [Arg(-1.0)]),
}
#: Under XLA, tf.sqrt's gradient has no guard against 0 * NaN, so it too is NaN: a value, not a gradient.
XLA_NAN = "dy/dx (tf.where, tf.sqrt)"


def run(scenario: PitfallsScenario, run: RunConfig) -> Outcome:
    cases = selected("pitfalls", scenario.case)
    calls = [_call(CALLS[c], run) for c in cases]
    with tensorflow_warnings() as warnings:
        outcome, found = run_cases(run, calls)
    started = time.perf_counter()
    for case in cases:
        CHECKS[case](outcome, found, run, warnings)
    if "numpy_detour" in cases and run.compile != "eager":
        outcome.notes["dy/dx (through NumPy)"] += (
            f" This case ran eagerly although compile={run.compile}: inside tf.function a tensor has no "
            ".numpy() value to hand to NumPy.")
    outcome.timings["checks"] = time.perf_counter() - started
    return outcome


def _call(call: Call, run: RunConfig) -> Call:
    if call.fn is where_nan and run.compile == "xla":
        return Call(call.fn, call.args, values=[*call.values, XLA_NAN])
    return call


def _derivative(outcome: Outcome, label: str, got: Any, run: RunConfig, text: str, wrt: str,
                at: dict[str, float], note: str) -> None:
    """A gradient TensorFlow gets right: d(text)/d(wrt) at ``at``, by SymPy and finite differences."""
    outcome.notes[label] = note
    verify_expression(outcome, label, got, run, text, wrt, {k: np.float64(v) for k, v in at.items()})


def _variable_replaced(outcome: Outcome, found: Found, run: RunConfig, warnings: list[str]) -> None:
    expect(outcome, "dy/dx (x = x + 1)", found["dy/dx (x = x + 1)"], "None",
           "`x = x + 1` does not change the Variable: it makes a new Tensor and rebinds the name x to it. "
           "The tape watches trainable Variables automatically but not Tensors, so y = x**2 was not "
           "recorded and the gradient is None.")
    _derivative(outcome, "dy/dx (x.assign_add(1))", found["dy/dx (x.assign_add(1))"], run, "x**2", "x",
                {"x": 3.0}, "x.assign_add(1) updates the Variable in place, so x is still watched: "
                            "d(x**2)/dx = 2x = 6 at x = 3.")


def _numpy_detour(outcome: Outcome, found: Found, run: RunConfig, warnings: list[str]) -> None:
    expect(outcome, "dy/dx (through NumPy)", found["dy/dx (through NumPy)"], "None",
           "x.numpy() hands NumPy a plain array; NumPy's result came back as a new constant, so the "
           "tape saw no op connecting y to x and the gradient is None.")
    _derivative(outcome, "dy/dx (tf.square)", found["dy/dx (tf.square)"], run, "x**2", "x", {"x": 3.0},
                "tf.square is a TensorFlow op the tape records: d(x**2)/dx = 2x = 6 at x = 3.")


def _integer_dtype(outcome: Outcome, found: Found, run: RunConfig, warnings: list[str]) -> None:
    said = next((w for w in warnings if "watched" in w), None)
    expect(outcome, "dy/dn (int32)", found["dy/dn (int32)"], "None",
           "Gradients are defined only for floating-point (and complex) tensors: the tape refuses to "
           "watch the int32 tensor n, so the gradient is None" +
           (f". TensorFlow warned: \"{said}\"" if said else "") + ".")
    _derivative(outcome, "dy/dx (float)", found["dy/dx (float)"], run, "x*x", "x", {"x": 3.0},
                f"The same product on a {run.dtype} Variable is differentiable: d(x*x)/dx = 2x = 6 at x = 3.")


def _stateful_op(outcome: Outcome, found: Found, run: RunConfig, warnings: list[str]) -> None:
    expect(outcome, "dy/dx (through v.assign)", found["dy/dx (through v.assign)"], "None",
           "v.assign(x**2) is a stateful op with no gradient: it writes a value into v and the tape's "
           "path from x stops there. y = 2v reads v afresh, so y depends on v, not on x. Other "
           "stateful ops (assign_add, scatter updates) break the path the same way, and a random "
           "draw is a constant to the tape.")
    _derivative(outcome, "dy/dv (through v.assign)", found["dy/dv (through v.assign)"], run, "2*v", "v",
                {"v": 9.0}, "v is a watched Variable, so y = 2v still has a gradient for it: 2.")
    _derivative(outcome, "dy/dx (direct)", found["dy/dx (direct)"], run, "2*x**2", "x", {"x": 3.0},
                "Computing y = 2 x**2 from x directly keeps the path: dy/dx = 4x = 12 at x = 3.")


def _branch_not_taken(outcome: Outcome, found: Found, run: RunConfig, warnings: list[str]) -> None:
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


def _sqrt_at_zero(outcome: Outcome, found: Found, run: RunConfig, warnings: list[str]) -> None:
    label = "dy/dx (sqrt at 0)"
    outcome.analytic[label] = "d sqrt(x)/dx = 1/(2 sqrt(x)), +oo as x -> 0+"
    expect(outcome, label, found[label], "+inf",
           "d sqrt(x)/dx = 1/(2 sqrt(x)) is 1/0 = +inf at x = 0: sqrt has a vertical tangent there. "
           "An inf gradient becomes NaN as soon as the chain rule multiplies it by 0; "
           "use sqrt(x + eps) or keep x away from 0.")


def _norm_at_zero(outcome: Outcome, found: Found, run: RunConfig, warnings: list[str]) -> None:
    label = "dy/dx (norm at 0)"
    outcome.analytic[label] = "d||x||/dx = x / ||x||, 0/0 at x = 0"
    expect(outcome, label, found[label], "NaN",
           "The gradient of ||x|| is x / ||x||, which is 0/0 = NaN at the zero vector, where the norm "
           "has the tip of a cone and no single slope. Use sqrt(sum(x**2) + eps), or a double tf.where.")


def _where_nan(outcome: Outcome, found: Found, run: RunConfig, warnings: list[str]) -> None:
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


def _where_nan_fixed(outcome: Outcome, found: Found, run: RunConfig, warnings: list[str]) -> None:
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
    "where_nan_fixed": _where_nan_fixed,
}
