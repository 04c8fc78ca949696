"""What the catalogue routines share: cases, their checks, and their snippets.

The catalogue (stop_gradient, custom_gradient, unconnected, pitfalls, control_flow)
is about gradients that come back other than a learner expects: halved, clipped,
None, zero, NaN or inf. Each case is a module-level function of plain TensorFlow
that returns ``{label: tensor or None}``. The routine runs it through
``timed_step``, and the report's snippet quotes the very same function with
``inspect.getsource``, so the code a reader runs is the code the run ran.

A number a case gets right is checked like any gradient (finite, SymPy or a
closed form, finite differences). A None, NaN or inf that *is* the lesson is
checked as an expectation: that check passes when TensorFlow did exactly what the
note says it does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from runner.language import backends, expr, syntax
from runner.oracles.checks import compare, finite
from runner.oracles.symbolic import oracle
from runner.result import Check, Outcome
from runner.routines import snippets
from runner.routines.support import float64_delta, timed_step
from runner.routines.tf_differences import difference_check
from runner.scenarios.schema import CASES, RunConfig
from runner.tfenv import tf

Case = Callable[..., dict[str, Any]]
COMPILED = {"eager": "{}", "function": "tf.function({})", "xla": "tf.function({}, jit_compile=True)"}


def selected(routine: str, case: str) -> tuple[str, ...]:
    """The cases a run asks for: every known case for ``all``, else the one named."""
    return CASES[routine] if case == "all" else (case,)


@dataclass(frozen=True)
class Arg:
    """A tensor a case takes: its value, Variable or constant, and dtype (None: the run's)."""

    value: float | list[float] | int
    variable: bool = True
    dtype: str | None = None

    def code(self, dtype: str) -> str:
        tensor = f"tf.constant({self.value!r}, tf.{self.dtype or dtype})"
        return f"tf.Variable({tensor})" if self.variable else tensor

    def build(self, dtype: str) -> Any:
        tensor = tf.constant(self.value, tf.as_dtype(self.dtype or dtype))
        return tf.Variable(tensor) if self.variable else tensor

    def held(self, dtype: str) -> np.ndarray:
        """The value as the run holds it (rounded to its dtype), in float64 for the oracles."""
        return np.asarray(tf.cast(tf.constant(self.value, tf.as_dtype(self.dtype or dtype)),
                                  tf.float64).numpy())


@dataclass(frozen=True)
class Raw:
    """A plain Python argument, and the source that stands for it in the snippet."""

    value: Any
    code: str


@dataclass
class Call:
    """One case: its function, its arguments, and the labels results.json keeps as values."""

    fn: Case
    args: Sequence[Arg | Raw]
    values: Sequence[str] = ()  # NaN/inf lessons and forward values: not gradients
    eager: bool = False  # cannot run under tf.function, whatever the run's compile mode


def run_case(outcome: Outcome, call: Call, run: RunConfig) -> dict[str, np.ndarray | None]:
    """Run one case under the run's compile mode (or eagerly) and time it under its name."""
    mode = dataclasses.replace(run, compile="eager") if call.eager else run
    args = [a.build(run.dtype) if isinstance(a, Arg) else a.value for a in call.args]
    found, timings = timed_step(call.fn, mode, *args)
    outcome.timings.update({f"{call.fn.__name__} {phase}": t for phase, t in timings.items()})
    return {label: None if g is None else np.asarray(tf.convert_to_tensor(g).numpy())
            for label, g in found.items()}


def run_cases(run: RunConfig, calls: Sequence[Call], helpers: Sequence[Callable[..., Any]] = (),
              setup: Sequence[str] = ()) -> tuple[Outcome, dict[str, np.ndarray | None]]:
    """Every chosen case, in order: the outcome (with its snippet) and what each label came back as."""
    outcome = Outcome(snippet=snippet(run, calls, helpers=helpers, setup=setup))
    found: dict[str, np.ndarray | None] = {}
    for call in calls:
        found.update(run_case(outcome, call, run))
    return outcome, found


def verify(outcome: Outcome, label: str, got: np.ndarray | None, want: Any, run: RunConfig, *,
           oracle_name: str = "SymPy",
           fd: tuple[Callable[[Any], Any], Any] | None = None) -> None:
    """A gradient TensorFlow should get right: finite, equal to ``want``, and to finite differences.

    ``fd`` is ``(function, point)``: the forward function whose central differences
    should equal ``got``, run in float64; None where differencing the forward pass would
    not give this gradient (a custom backward pass, say).
    """
    outcome.gradients[label] = got
    if got is None:
        outcome.checks.append(Check(f"{label} is a gradient", False, None, None, "TensorFlow returned None"))
        return
    tolerances = run.tolerances()
    outcome.checks.append(finite(f"{label} finite", got))
    if run.checks.analytic:
        outcome.checks.append(compare(f"{label} vs {oracle_name}", got, want, tolerances.analytic))
    if fd is not None and run.checks.finite_differences:
        fn, point = fd
        outcome.checks.append(difference_check(
            label, got, fn, tf.constant(point, tf.float64), tolerances.float64_differences,
            float64_delta(run), run.checks.fd_max_elements, run.seed))


def verify_expression(outcome: Outcome, label: str, got: np.ndarray | None, run: RunConfig, text: str,
                      wrt: str, at: Mapping[str, np.ndarray], out_shape: tuple[int, ...] = ()) -> None:
    """Verify ``got`` as d(text)/d(wrt) at ``at``: SymPy's derivative, and the text's differences."""
    import sympy as sp

    tree = expr.parse(text, at)
    sympy = backends.SymPyBackend()
    symbols = sympy.symbols(at)
    derivative = sp.diff(syntax.evaluate(tree, symbols, sympy), symbols[wrt])
    outcome.analytic[label] = f"d({text})/d{wrt} = {derivative}"
    want = oracle(derivative, symbols, at, out_shape, np.shape(got))
    backend = backends.TensorFlowBackend(tf.float64)  # the differences' forward pass, in float64
    fixed = {n: tf.constant(v, backend.dtype) for n, v in at.items() if n != wrt}
    verify(outcome, label, got, want, run,
           fd=(lambda t: syntax.evaluate(tree, {**fixed, wrt: t}, backend), at[wrt]))


def expect(outcome: Outcome, label: str, got: np.ndarray | None, expected: str, note: str) -> None:
    """Record a None, NaN or +inf that is the lesson, and check TensorFlow produced exactly that.

    A None stays in gradients (as null); a NaN or inf goes to values, never gradients.
    """
    outcome.notes[label] = note
    if expected == "None":
        outcome.gradients[label] = got
        passed, seen = got is None, "None" if got is None else "a gradient"
    else:
        outcome.values[label] = got
        values = np.asarray(np.nan if got is None else got, dtype=np.float64)
        test = {"NaN": np.isnan, "+inf": np.isposinf}[expected]
        passed, seen = bool(got is not None and test(values).all()), str(values.tolist())
    outcome.checks.append(Check(f"{label} is {expected} (expected)", passed, None, None,
                                f"TensorFlow returned {seen}"))


@contextlib.contextmanager
def tensorflow_warnings() -> Iterator[list[str]]:
    """Collect the warnings TensorFlow logs while the block runs."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = tf.get_logger()
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def source(fn: Callable[..., Any]) -> str:
    return inspect.getsource(inspect.unwrap(fn)).rstrip() + "\n"


def compiled(run: RunConfig, name: str) -> str:
    """Source that calls ``name`` the way the run did: as it is, or through tf.function."""
    return COMPILED[run.compile].format(name)


def snippet(run: RunConfig, calls: Sequence[Call], helpers: Sequence[Callable[..., Any]] = (),
            setup: Sequence[str] = ()) -> str:
    """A standalone script: the helpers' and cases' own source, ``setup``, then each case in turn.

    Each argument is bound to its parameter's name just before the call. Under
    compile=function or xla a case is wrapped in ``tf.function`` as the run wrapped
    it, so the script reproduces graph-mode answers too (zeros where eager gives None).
    """
    functions = list(dict.fromkeys([*helpers, *(c.fn for c in calls)]))
    blocks = [*(source(fn) for fn in functions), *setup]
    lines = [snippets.HEADER, *(f"\n{block.strip()}\n" for block in blocks), "\ngradients = {}"]
    for call in calls:
        params = list(inspect.signature(call.fn).parameters)
        lines.append("")
        for param, arg in zip(params, call.args, strict=True):
            code = arg.code(run.dtype) if isinstance(arg, Arg) else arg.code
            if code != param:
                lines.append(f"{param} = {code}")
        fn = call.fn.__name__ if call.eager else compiled(run, call.fn.__name__)
        lines.append(f"found = {fn}({', '.join(params)})" + "  # always eagerly" * call.eager)
        if call.values:
            lines.append(f"for label in {list(call.values)!r}:  # results.json keeps these as values")
            lines.append("    found.pop(label)")
        lines.append("gradients.update(found)")
    lines += ["", snippets.FOOTER]
    return "\n".join(lines)
