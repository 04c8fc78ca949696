"""The heart of tape-runner: named targets over named inputs, one GradientTape.

``gradient`` (one target) and ``persistent`` (several) both end up here. The
forward pass is the expression language evaluated on TensorFlow tensors; each
gradient is then checked three ways:

* did the tape see the input? The flags predict it (a Variable is watched when
  ``watch_accessed_variables``; anything is watched after ``tape.watch``), and a
  target that never reads an input has no gradient for it;
* against SymPy's derivative of the same expression, evaluated in float64;
* against central finite differences.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from runner import expr, snippets
from runner.checks import compare, difference_check, finite, recorded, unbroadcast
from runner.result import Check, Outcome
from runner.routines.support import check_dtype, tf_dtype, timed_step
from runner.schema import InputSpec, Kind, RunConfig
from runner.tfenv import tf

NON_PERSISTENT = (
    "a non-persistent tape frees its record after the first gradient() call, so TensorFlow "
    "raised RuntimeError here; set scenario.persistent=true to take several gradients"
)
#: How TensorFlow's RuntimeError for a second gradient() on a non-persistent tape begins.
SECOND_CALL_REFUSED = "A non-persistent GradientTape can only be used to compute one set of gradients"


@tf.autograph.experimental.do_not_convert  # plain Python building ops: nothing for AutoGraph to do
def _evaluate_targets(
    targets: Mapping[str, expr.Expr], env: Mapping[str, Any], backend: Any
) -> dict[str, Any]:
    """Evaluate targets in order; each may read the inputs and the targets before it."""
    values = dict(env)
    for name, tree in targets.items():
        values[name] = expr.evaluate(tree, values, backend)
    return {name: values[name] for name in targets}


def reads(targets: Mapping[str, expr.Expr], target: str) -> set[str]:
    """The names a target depends on, following earlier targets through to the inputs."""
    found: set[str] = set()
    for name in expr.names(targets[target]):
        found |= {name} | (reads(targets, name) if name in targets else set())
    return found


def numeric(symbols: list[Any], symbolic: Any) -> Callable[..., Any]:
    """A NumPy function of ``symbols`` computing ``symbolic``: SymPy's lambdify, on renamed symbols.

    lambdify prints the expression as Python source and runs it with ``exec``, in a namespace
    that maps NumPy's names (sign, greater, select, ...) and also each symbol's own name to
    the symbol. An input called ``sign`` would shadow the function the source calls, so the
    symbols are first replaced with Dummy symbols, which print as ``_Dummy_<n>``: the source
    holds only those names, NumPy's function names and numbers, never a name from a config.
    """
    import sympy as sp

    fresh = [sp.Dummy(real=True) for _ in symbols]
    renamed = symbolic.xreplace(dict(zip(symbols, fresh, strict=True)))
    return sp.lambdify(fresh, renamed, "numpy", cse=True)  # cse: shared subterms computed once


def oracle(
    symbolic: Any,
    symbols: Mapping[str, Any],
    inputs: Mapping[str, np.ndarray],
    out_shape: tuple[int, ...],
    in_shape: tuple[int, ...],
) -> np.ndarray:
    """Evaluate a SymPy derivative in float64 at the inputs' values, shaped like the gradient.

    The tape differentiates the sum of the target, so the pointwise derivative is
    broadcast to the target's shape and then summed down to the input's.
    """
    try:
        fn = _lambdified(tuple(symbols.values()), symbolic)
    except TypeError:  # a mutable SymPy matrix (the Jacobian routines') cannot be a cache key
        fn = numeric(list(symbols.values()), symbolic)
    with np.errstate(all="ignore"):
        pointwise = fn(*(np.asarray(inputs[n], dtype=np.float64) for n in symbols))
    return unbroadcast(np.broadcast_to(pointwise, out_shape), in_shape)


@functools.lru_cache(maxsize=1024)
def _lambdified(symbols: tuple[Any, ...], symbolic: Any) -> Any:
    """SymPy's expression as a NumPy function: it depends only on the expression, so built once."""
    return numeric(list(symbols), symbolic)


@functools.lru_cache(maxsize=256)
def _symbolic(targets: tuple[tuple[str, expr.Expr], ...], names: tuple[str, ...]) -> tuple[dict, dict]:
    """The inputs' SymPy symbols and the targets over them, built once per set of expressions."""
    sympy = expr.SymPyBackend()
    symbols = sympy.symbols(names)
    return symbols, _evaluate_targets(dict(targets), symbols, sympy)


@functools.lru_cache(maxsize=1024)
def _derivative(symbolic: Any, symbol: Any) -> Any:
    """SymPy's exact derivative (the oracle), computed once per expression and input."""
    import sympy as sp

    return sp.diff(symbolic, symbol)


def why_none(name: str, spec: InputSpec, watch_accessed: bool, target: str, connected: bool) -> str:
    """The reason TensorFlow returns None for d target / d name, or '' if it should not."""
    if not connected:
        return f"{target} does not depend on {name}, so the tape has no path between them"
    if spec.watch:
        return ""
    if spec.kind is Kind.constant:
        return (f"{name} is a tf.constant and tape.watch({name}) was not called, so the tape "
                f"did not record it (set scenario.inputs.{name}.watch=true)")
    if not watch_accessed:
        return (f"watch_accessed_variables=false and tape.watch({name}) was not called, so the "
                f"tape ignored the variable {name}")
    return ""


def differentiate(
    inputs: Mapping[str, InputSpec],
    sources: Mapping[str, str],
    *,
    persistent: bool,
    watch_accessed_variables: bool,
    run: RunConfig,
) -> Outcome:
    """Record ``sources`` (target name -> expression) on one tape and differentiate each."""
    dtype = tf_dtype(run)
    names = list(inputs)
    targets: dict[str, expr.Expr] = {}
    for name, text in sources.items():
        targets[name] = expr.parse(text, [*names, *targets])
    backend = expr.TensorFlowBackend(dtype)
    outcome = Outcome(snippet=snippets.tape(
        inputs, sources, persistent=persistent,
        watch_accessed_variables=watch_accessed_variables, dtype=run.dtype))

    values = {n: tf.constant(spec.array(), dtype) for n, spec in inputs.items()}
    tensors = {
        n: tf.Variable(values[n], name=n) if spec.kind is Kind.variable else values[n]
        for n, spec in inputs.items()
    }
    refused: list[str] = []  # targets a non-persistent tape refused: Python state, set at trace time
    errors: list[str] = []

    def step(tensors: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        with tf.GradientTape(
            persistent=persistent, watch_accessed_variables=watch_accessed_variables
        ) as tape:
            for n, spec in inputs.items():
                if spec.watch:
                    tape.watch(tensors[n])
            results = _evaluate_targets(targets, tensors, backend)
        grads: dict[str, Any] = {}
        for target, value in results.items():
            found = None
            if refused:
                refused.append(target)
            else:
                try:
                    found = tape.gradient(value, [tensors[n] for n in names])
                except RuntimeError as err:
                    if persistent or not grads:  # only a second call may be refused
                        raise
                    refused.append(target)
                    errors.append(str(err).splitlines()[0])
            grads.update({f"d{target}/d{n}": g for n, g in zip(names, found or [None] * len(names),
                                                              strict=True)})
        del tape
        return results, grads

    (results, grads), outcome.timings = timed_step(step, run, tensors)
    for label, g in grads.items():
        outcome.gradients[label] = None if g is None else tf.convert_to_tensor(g).numpy()
    if refused:
        outcome.checks.append(Check(
            f"d{refused[0]}: second gradient() on a non-persistent tape raises RuntimeError",
            errors[0].startswith(SECOND_CALL_REFUSED), None, None,
            f"TensorFlow said: {errors[0]}" if errors[0].startswith(SECOND_CALL_REFUSED) else
            f"expected {SECOND_CALL_REFUSED!r}, TensorFlow said: {errors[0]}"))
        outcome.notes.update({f"d{t}/d{n}": NON_PERSISTENT for t in refused for n in names})
    outcome.inputs = {n: v.numpy() for n, v in values.items()}
    outcome.values = {t: np.asarray(v) for t, v in results.items()}

    started = time.perf_counter()
    _check(outcome, inputs, targets, values, watch_accessed_variables, run, set(refused))
    outcome.timings["checks"] = time.perf_counter() - started
    return outcome


def _check(
    outcome: Outcome,
    inputs: Mapping[str, InputSpec],
    targets: dict[str, expr.Expr],
    values: Mapping[str, Any],
    watch_accessed: bool,
    run: RunConfig,
    refused: set[str],
) -> None:
    tolerances = run.tolerances()
    fd_backend = expr.TensorFlowBackend(check_dtype(run))
    names = list(inputs)
    symbols, symbolic = _symbolic(tuple(targets.items()), tuple(names))
    for target in targets:
        outcome.checks.append(finite(f"{target} finite", outcome.values[target]))
        out_shape = outcome.values[target].shape
        depends = reads(targets, target)
        for n in names:
            label = f"d{target}/d{n}"
            got = outcome.gradients[label]
            if target in refused:
                continue
            reason = why_none(n, inputs[n], watch_accessed, target, n in depends)
            outcome.checks.append(recorded(label, got, reason))
            if got is None:
                outcome.notes[label] = reason or "TensorFlow returned None"
                continue
            outcome.checks.append(finite(f"{label} finite", got))
            derivative = _derivative(symbolic[target], symbols[n])
            outcome.analytic[label] = str(derivative)
            if run.checks.analytic:
                want = oracle(derivative, symbols, outcome.inputs, out_shape, got.shape)
                outcome.checks.append(compare(f"{label} vs SymPy", got, want, tolerances.analytic))
            if run.checks.finite_differences:
                fixed = {k: tf.cast(v, fd_backend.dtype) for k, v in values.items() if k != n}
                # Every expression is elementwise, so large inputs are checked at every element.
                outcome.checks.append(difference_check(
                    label, got,
                    lambda t, n=n, fixed=fixed, target=target: _evaluate_targets(
                        targets, {**fixed, n: t}, fd_backend)[target],
                    tf.cast(values[n], fd_backend.dtype), tolerances.finite_differences,
                    tolerances.delta, run.checks.fd_max_elements, run.seed, elementwise=True))
