"""``unconnected``: a target that does not read a source.

``tape.gradient(z, x)`` answers None when nothing the tape recorded leads from x
to z: z never read x, or the tape never watched it. None means "no path", which
is not the same as "the derivative is 0": a None silently skips a variable in an
optimizer update and breaks code that adds gradients together.
``unconnected_gradients=tf.UnconnectedGradients.ZERO`` asks for zeros shaped like
the source instead, for code that wants a tensor either way; it changes nothing
for a connected source, whose gradient is checked against SymPy and finite
differences as usual.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from runner import expr, snippets
from runner.checks import finite
from runner.result import Outcome
from runner.routines.catalogue import compiled, expect, verify, verify_expression
from runner.routines.support import tf_dtype, timed_step
from runner.routines.tape import why_none
from runner.schema import InputSpec, Kind, RunConfig, UnconnectedScenario
from runner.tfenv import tf


def target_name(inputs: Mapping[str, InputSpec]) -> str:
    """z, unless an input is called z (then z1, z2, ...)."""
    candidates = itertools.chain(["z"], (f"z{i}" for i in itertools.count(1)))
    return next(n for n in candidates if n not in inputs)


def run(scenario: UnconnectedScenario, run: RunConfig) -> Outcome:
    dtype = tf_dtype(run)
    target = target_name(scenario.inputs)
    names = list(scenario.inputs)
    tree = expr.parse(scenario.function, names)
    reads = expr.names(tree)
    reasons = {n: why_none(n, spec, True, target, n in reads) for n, spec in scenario.inputs.items()}
    labels = {n: [f"d{target}/d{n} (NONE)", f"d{target}/d{n} (ZERO)"] if reasons[n] else [f"d{target}/d{n}"]
              for n in names}
    backend = expr.TensorFlowBackend(dtype)
    values = {n: tf.constant(spec.array(), dtype) for n, spec in scenario.inputs.items()}
    tensors = {n: tf.Variable(values[n], name=n) if spec.kind is Kind.variable else values[n]
               for n, spec in scenario.inputs.items()}

    def step(tensors: dict[str, Any]) -> dict[str, Any]:
        with tf.GradientTape(persistent=True) as tape:
            for n, spec in scenario.inputs.items():
                if spec.watch:
                    tape.watch(tensors[n])
            z = expr.evaluate(tree, tensors, backend)
        sources = [tensors[n] for n in names]
        none = tape.gradient(z, sources)
        zero = tape.gradient(z, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        found = {target: z}
        for n, g, g0 in zip(names, none, zero, strict=True):
            found.update(zip(labels[n], [g, g0], strict=False))
        return found

    outcome = Outcome(snippet=_snippet(scenario, target, labels, run))
    found, outcome.timings = timed_step(step, run, tensors)
    found = {k: None if g is None else tf.convert_to_tensor(g).numpy() for k, g in found.items()}

    started = time.perf_counter()
    outcome.inputs = {n: v.numpy() for n, v in values.items()}
    at = {n: np.asarray(v, dtype=np.float64) for n, v in outcome.inputs.items()}
    value = outcome.values[target] = found[target]
    outcome.checks.append(finite(f"{target} finite", value))
    for n in names:
        if not reasons[n]:
            (label,) = labels[n]
            outcome.notes[label] = (
                f"{target} reads {n}, so the tape has a path and the gradient follows the recorded ops; "
                "unconnected_gradients=ZERO would return the same, as it only affects unconnected sources.")
            verify_expression(outcome, label, found[label], run, scenario.function, n, at, np.shape(value))
            continue
        none, zero = labels[n]
        expect(outcome, none, found[none], "None",
               f"TensorFlow returned None because {reasons[n]}. None (the default, "
               "unconnected_gradients=NONE) means 'no recorded path', not 'zero derivative': an "
               "optimizer skips such a variable, and arithmetic on the None fails.")
        if n in reads:  # read but unwatched: zero is what the tape saw, not the derivative
            outcome.notes[zero] = (
                f"unconnected_gradients=ZERO turns the None into zeros shaped like {n}, but {target} does "
                f"read {n}: its true derivative is not zero; the zero only says the tape did not watch {n}.")
            outcome.analytic[zero] = f"zeros of shape {np.shape(at[n])}"
            verify(outcome, zero, found[zero], np.zeros(np.shape(at[n])), run,
                   oracle_name=f"zeros of {n}'s shape")
        else:
            outcome.notes[zero] = (
                f"unconnected_gradients=ZERO turns the None into zeros shaped like {n}; as {target} does "
                f"not depend on {n} at all, zero is also its true derivative.")
            # Shaped like n, which may be larger than the target that never read it.
            verify_expression(outcome, zero, found[zero], run, scenario.function, n, at,
                              np.broadcast_shapes(np.shape(value), np.shape(at[n])))
    outcome.timings["checks"] = time.perf_counter() - started
    return outcome


def _snippet(scenario: UnconnectedScenario, target: str, labels: dict[str, list[str]],
             run: RunConfig) -> str:
    names = list(scenario.inputs)
    code = expr.evaluate(expr.parse(scenario.function, names), {n: expr.Code(n) for n in names},
                         expr.CodeBackend(run.dtype))
    inputs = []
    for n, spec in scenario.inputs.items():
        tensor = f"tf.constant({spec.array().tolist()!r}, tf.{run.dtype})"
        inputs.append(f"{n} = tf.Variable({tensor})" if spec.kind is Kind.variable else f"{n} = {tensor}")
    entries = [f'"{target}": {target}']
    for i, n in enumerate(names):
        entries += [f'"{label}": {source}[{i}]' for label, source in zip(labels[n], ("_none", "_zero"),
                                                                         strict=False)]
    args = ", ".join(names)
    body = "\n".join([
        f"def _step({args}):",
        "    with tf.GradientTape(persistent=True) as tape:",
        *(f"        tape.watch({n})" for n, spec in scenario.inputs.items() if spec.watch),
        f"        {target} = {code}  # {scenario.function}",
        f"    _none = tape.gradient({target}, [{args}])",
        f"    _zero = tape.gradient({target}, [{args}], unconnected_gradients=tf.UnconnectedGradients.ZERO)",
        f"    return {{{', '.join(entries)}}}",
    ])
    return "\n".join([snippets.HEADER, *inputs, "", "", body, "", "",
                      f"gradients = {compiled(run, '_step')}({args})",
                      f'gradients.pop("{target}")  # results.json keeps it under values', "",
                      snippets.FOOTER])
