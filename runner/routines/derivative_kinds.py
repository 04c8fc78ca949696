"""A program's derivatives asked of the tape (gradients, Jacobians, batch Jacobians, Hessians, HVPs, JVPs),
each checked by runner/oracles/derivative_checks.py (all but gradients, which the program checks).

``derivative`` (runner/scenarios/derivative_specs.py) chooses what the tape is asked for each entry
of ``gradients``: ``tape.jacobian`` (pfor, its tf.while_loop, or both, timed apart
and checked to agree), ``tape.batch_jacobian``, the Hessian as the guide writes it
(an outer tape around the tape whose gradient it differentiates), a Hessian-vector
product forward over reverse (a ForwardAccumulator around the tape, pushing its tangent
through the tape's gradient), or a JVP from ``tf.autodiff.ForwardAccumulator``. None of
the checks uses TensorFlow's autodiff as the reference: each result is compared with
central differences of the program's float64 NumPy forward pass (every element up to
``checks.fd_max_elements``: the whole numerical Jacobian, or the Hessian's second
differences; above it random projections ``v . (J u)``, ``v . (H u)``). A JVP is also
checked against the tape's VJP by the dot-product test, and a Newton step against the step
solved from the float64 oracle. The scripts that reproduce them are
runner/routines/derivative_snippets.py's.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from runner.oracles.checks import compare
from runner.oracles.derivative_checks import (
    batch_jacobian_check,
    dot_product_check,
    hessian_check,
    hvp_check,
    jacobian_check,
    jvp_check,
    second_differences,
    weighted,
)
from runner.result import Check, Outcome
from runner.routines.hessians import curvature, newton
from runner.routines.program_view import ProgramView
from runner.routines.support import timed_step
from runner.scenarios import derivative_specs
from runner.scenarios.schema import Unconnected
from runner.tfenv import tf

Forward = Callable[[Mapping[str, Any], Any], dict[str, Any]]  # (tensors, the tape) -> every step's value


ZERO = tf.UnconnectedGradients.ZERO


label = derivative_specs.label  # d<target>/d<source>; a Hessian's d2<target>/d<source>2


def tangents(program: ProgramView) -> dict[str, np.ndarray]:
    """Each jvp or hvp source's tangent in float64: as the scenario gives it, else seeded N(0, 1) draws."""
    scenario = program.scenario
    out = {}
    for source in dict.fromkeys(s for sources in program.plan.values() for s in sources):
        if source in scenario.tangents:
            out[source] = derivative_specs.tangent_value(scenario.tangents[source], program.shapes[source])
        else:
            out[source] = np.random.default_rng(tangent_seed(program.run.seed, source)).standard_normal(
                program.shapes[source])
    return out


def tangent_seed(seed: int, source: str) -> list[int]:
    return [seed, *f"tangent {source}".encode()]


def _tape(program: ProgramView, persistent: bool | None = None) -> tf.GradientTape:
    scenario = program.scenario
    return tf.GradientTape(persistent=scenario.persistent if persistent is None else persistent,
                           watch_accessed_variables=scenario.watch_accessed_variables)


def _watched(program: ProgramView) -> list[str]:
    """The inputs (and setup results) the program's tape calls tape.watch on."""
    return [name for name, spec in program.scenario.inputs.items() if spec.watch]


def _watch(program: ProgramView, tape: tf.GradientTape, tensors: Mapping[str, Any]) -> None:
    for name in _watched(program):
        tape.watch(tensors[name])


def _tapes(program: ProgramView) -> dict[str, tuple[tf.GradientTape, list[str]]]:
    """The tapes the steps run under, each with the inputs it watches: the program's one, or each of
    ``scenario.tapes`` with its own watch list."""
    scenario = program.scenario
    if not scenario.tapes:
        return {"tape": (_tape(program), _watched(program))}
    return {name: (_tape(program, spec["persistent"]), spec["watch"])
            for name, spec in scenario.tapes.items()}


def _unconnected(program: ProgramView) -> tf.UnconnectedGradients:
    zero = program.scenario.unconnected_gradients is Unconnected.zero
    return ZERO if zero else tf.UnconnectedGradients.NONE


def tape_step(program: ProgramView, forward: Forward, refused: dict[str, str], use_pfor: bool = True,
              watched: list[Any] | None = None,
              ) -> Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]:
    """The program's step, asking the tape for the scenario's derivative kind, label -> tensor (or None);
    ``watched`` gets the tape's watched_variables() (as the step is traced, so in any compile mode)."""
    scenario, kind = program.scenario, program.scenario.derivative
    unconnected = _unconnected(program)
    if kind == "jvp":
        return _jvp_step(program, forward, unconnected)
    output_gradients = {t: tf.constant(program.weights[t], program.dtype) for t in scenario.output_gradients}
    if kind == "hvp":
        return _hvp_step(program, forward, unconnected, output_gradients, watched)
    hessian = kind == "hessian"

    def ask(tape: tf.GradientTape, kind: str, y: Any, wrt: list[Any], keys: list[str] | None = None,
            cotangent: Any = None) -> list[Any]:
        if kind == "jacobian":
            return tape.jacobian(y, wrt, unconnected_gradients=unconnected, experimental_use_pfor=use_pfor)
        if kind == "batch_jacobian":
            return [tape.batch_jacobian(y, w, unconnected_gradients=unconnected) for w in wrt]
        # tape.gradient(y, {'w': w, 'b': b}) where the sources are a dict, as the guide writes it
        got = tape.gradient(y, wrt if keys is None else dict(zip(keys, wrt, strict=True)),
                            output_gradients=cotangent, unconnected_gradients=unconnected)
        return got if keys is None else [got[k] for k in keys]

    @tf.autograph.experimental.do_not_convert  # plain Python building ops: nothing for AutoGraph to do
    def step(tensors: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        asked: dict[tuple[str, str], tuple[Any, Any]] = {}
        # A Hessian: the outer tape records the inner one's gradient, then differentiates it.
        with _tape(program, persistent=True) if hessian else contextlib.nullcontext() as outer:
            if hessian:
                _watch(program, outer, tensors)
            with contextlib.ExitStack() as stack:  # the program's one tape, or each of scenario.tapes
                opened = _tapes(program)
                tapes = {name: stack.enter_context(t) for name, (t, _) in opened.items()}
                for name, (_, names) in opened.items():
                    for n in names:
                        tapes[name].watch(tensors[n])
                tape = next(iter(tapes.values()))
                results = forward(tensors, tape)
            if watched is not None and not scenario.tapes:
                watched[:] = tape.watched_variables()
            for target, sources in program.plan.items():
                wrt = [program.source(s, tensors, results) for s in sources]  # a layer's variable too
                got: list[Any] = [None] * len(sources)
                try:
                    got = ask(tape, kind, program.differentiated(target, results), wrt,
                              scenario.source_keys(target), output_gradients.get(target))
                except RuntimeError as err:
                    if scenario.persistent or target == next(iter(program.plan)):  # a first call's: real
                        raise
                    refused[target] = str(err).splitlines()[0]
                except LookupError as err:  # an op on the way back has no registered gradient
                    refused[target] = f"LookupError: {str(err).splitlines()[0]}"
                asked.update({(target, s): (w, g) for s, w, g in zip(sources, wrt, got, strict=True)})
            named = {}  # scenario.derivatives, each of its own kind, after the gradients
            for derivative in program.derivatives:
                wrt = [program.source(s, tensors, results) for s in derivative.sources]
                got = ask(tapes[derivative.tape or "tape"], derivative.kind,
                          program.differentiated(derivative.target, results), wrt)
                named.update(zip(derivative.labels().values(), got, strict=True))
        found = {}
        for (target, source), (w, g) in asked.items():
            if hessian and g is not None:  # ZERO: a gradient that no longer reads the source has H = 0
                g = outer.jacobian(g, w, unconnected_gradients=ZERO)
            found[derivative_specs.label(kind, target, source)] = g
        return results, found | named

    return step


def _jvp_step(program: ProgramView, forward: Forward,
              unconnected: tf.UnconnectedGradients) -> Callable[..., Any]:
    """One forward pass per source under a ForwardAccumulator carrying its tangent; J u for each target."""
    given = {s: tf.constant(u, program.dtype) for s, u in tangents(program).items()}

    @tf.autograph.experimental.do_not_convert
    def step(tensors: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        jvps, results = {}, {}
        for source, u in given.items():
            with tf.autodiff.ForwardAccumulator(program.source(source, tensors, {}), u) as acc:
                results = forward(tensors, None)
            for target, sources in program.plan.items():
                if source in sources:
                    jvps[(target, source)] = acc.jvp(results[target], unconnected_gradients=unconnected)
        return results, {derivative_specs.label("jvp", t, s): jvps[(t, s)]
                         for t, sources in program.plan.items() for s in sources}

    return step


def _hvp_step(program: ProgramView, forward: Forward, unconnected: tf.UnconnectedGradients,
              output_gradients: dict[str, Any], watched: list[Any] | None) -> Callable[..., Any]:
    """H u forward over reverse, one source at a time: a ForwardAccumulator carrying u around a
    persistent tape (one gradient per target), and the accumulator's JVP of each gradient."""
    given = {s: tf.constant(u, program.dtype) for s, u in tangents(program).items()}

    @tf.autograph.experimental.do_not_convert
    def step(tensors: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        found, results = {}, {}
        for source, u in given.items():
            primal = program.source(source, tensors, {})
            with tf.autodiff.ForwardAccumulator(primal, u) as acc:
                with _tape(program, persistent=True) as tape:
                    _watch(program, tape, tensors)
                    results = forward(tensors, tape)
                for target, sources in program.plan.items():
                    if source in sources:
                        g = tape.gradient(program.differentiated(target, results), primal,
                                          output_gradients=output_gradients.get(target),
                                          unconnected_gradients=unconnected)
                        # ZERO: a gradient that no longer reads the source has H u = 0
                        hu = None if g is None else acc.jvp(g, unconnected_gradients=ZERO)
                        found[derivative_specs.label("hvp", target, source)] = hu
            if watched is not None:
                watched[:] = tape.watched_variables()
        return results, found

    return step


def run_tape(program: ProgramView, forward: Forward, tensors: dict[str, Any], refused: dict[str, str],
             watched: list[Any] | None = None,
             ) -> tuple[dict[str, Any], dict[str, Any], dict[str, float], dict[str, np.ndarray]]:
    """The step under the run's compile mode and timed: results, derivatives, timings, extra values.

    With ``experimental_use_pfor: both`` the while_loop's step runs and is timed after
    pfor's (``jacobian_while_loop``); its Jacobians go to the values, ``<label> (while_loop)``.
    """
    pfor = program.scenario.experimental_use_pfor
    step = tape_step(program, forward, refused, use_pfor=pfor is not False, watched=watched)
    (results, found), timings = timed_step(step, program.run, tensors)
    extra: dict[str, np.ndarray] = {}
    if pfor == "both":
        (_, loop), more = timed_step(tape_step(program, forward, {}, use_pfor=False), program.run, tensors)
        timings.update({f"jacobian_while_loop{k.removeprefix('tape')}": v for k, v in more.items()})
        extra = {f"{label} (while_loop)": g.numpy() for label, g in loop.items() if g is not None}
    return results, found, timings, extra


def why_none(program: ProgramView, target: str, source: str) -> str:
    """Why the result is None, or ''. A ForwardAccumulator watches its primal whatever the tape watches,
    so a JVP is None only where the target does not depend on the source."""
    if program.scenario.derivative == "jvp" and source in program.reaches(target):
        return ""
    return program.why_none(target, source)


def zeros(program: ProgramView, target: str, source: str) -> np.ndarray:
    """What unconnected_gradients=zero gives for an unconnected pair: zeros of the result's shape."""
    kind = program.scenario.derivative
    return np.zeros(derivative_specs.result_shape(kind, program.shapes[target], program.shapes[source]))


def check(program: ProgramView, outcome: Outcome, label: str, target: str, source: str,
          got: np.ndarray) -> list[Check]:
    """Every check of one result that is not a gradient; none uses TensorFlow's autodiff as reference."""
    scenario, run = program.scenario, program.run
    kind = scenario.derivative
    tol = run.tolerances().float64_differences
    delta, point = program.delta, program.point(source)
    fn, weight = program.forward_fn(target, source), program.weights[target]
    limit, count, seed = run.checks.fd_max_elements, run.checks.projections, run.seed
    differences = run.checks.finite_differences
    checks: list[Check] = []
    if kind == "jacobian":
        if differences:
            checks.append(jacobian_check(label, got, fn, point, tol, delta, limit, count, seed,
                                         program.across(target, source)))
        loop = outcome.values.get(f"{label} (while_loop)")
        if loop is not None:
            checks.append(compare(f"{label}: pfor = while_loop", got, loop, run.tolerances().analytic))
    elif kind == "batch_jacobian" and differences:
        checks.append(batch_jacobian_check(label, got, fn, point, tol, delta, limit, count, seed,
                                           program.across(target, source)))
    elif kind == "jvp":
        u = tangents(program)[source]
        outcome.values[f"{label} tangent"] = u
        if differences:
            checks.append(jvp_check(label, got, fn, point, u, tol, delta))
        checks.append(dot_product_check(label, got, program.vjp(target, source), u, seed, tol, count))
    elif kind == "hvp":
        u = tangents(program)[source]
        outcome.values[f"{label} tangent"] = u
        outcome.notes[label] = f"H u, u the value {label} tangent: forward over reverse"
        if differences:
            f = weighted(fn, weight)
            oracle = second_differences(f, point) if point.size <= limit else None
            checks.append(hvp_check(label, got, f, point, u, tol, oracle, count, seed))
    elif kind == "hessian":
        curvature(outcome, label, target, source, got)
        f = weighted(fn, weight)
        oracle = second_differences(f, point) if differences and point.size <= limit else None
        if differences:
            checks.append(hessian_check(label, got, f, point, tol, oracle, count, seed))
        if scenario.newton_step:
            started = time.perf_counter()
            checks += newton(program, outcome, label, target, source, got, oracle, delta)
            outcome.timings["newton_step"] = outcome.timings.get("newton_step", 0.0) + (
                time.perf_counter() - started)
    return checks


#: SymPy's Hessian is one derivative per pair of source elements, each lambdified: past this many
#: pairs it takes minutes (4,096, an 8 x 8 source, took six here), and second differences suffice.
SYMBOLIC_HESSIAN_MAX = 256


def symbolic_skipped(program: ProgramView) -> str:
    """Why SymPy does not check this program's derivatives ('' when it does)."""
    if program.scenario.derivative not in ("hessian", "hvp"):
        return ""
    pairs = max(math.prod(program.shapes[s]) ** 2 for sources in program.plan.values() for s in sources)
    if pairs <= SYMBOLIC_HESSIAN_MAX:
        return ""
    return (f"SymPy check skipped: a Hessian of {pairs} second derivatives, above {SYMBOLIC_HESSIAN_MAX} "
            "(the second differences check every element)")


def symbolic(program: ProgramView, out: np.ndarray, target: str, source: str,
             wrt: list[Any]) -> tuple[list[Any], tuple[int, ...]]:
    """SymPy's derivatives of a target's elements (an object array) with respect to the source's symbols
    ``wrt``, flat, as the scenario's derivative kind arranges them, and the result's shape."""
    import sympy as sp

    kind = program.scenario.derivative
    shape = derivative_specs.result_shape(kind, program.shapes[target], program.shapes[source])
    if kind in ("gradient", "hessian", "hvp"):
        total = np.sum(out * program.weights[target])
        if kind == "gradient":
            return [sp.diff(total, s) for s in wrt], shape
        firsts = [sp.diff(total, a) for a in wrt]
        if kind == "hvp":  # (H u)_a = sum over b of d2 total / da db * u_b
            u = tangents(program)[source].reshape(-1)
            return [sum(sp.diff(first, b) * float(c) for b, c in zip(wrt, u, strict=True))
                    for first in firsts], shape
        return [sp.diff(first, b) for first in firsts for b in wrt], shape
    if kind == "jacobian":
        return [sp.diff(o, s) for o in out.flat for s in wrt], shape
    if kind == "jvp":
        u = tangents(program)[source].reshape(-1)
        return [sum(sp.diff(o, s) * float(c) for s, c in zip(wrt, u, strict=True)) for o in out.flat], shape
    batch = out.shape[0]  # batch_jacobian: example b's elements against example b's symbols
    rows, columns = out.reshape(batch, -1), np.asarray(wrt, dtype=object).reshape(batch, -1)
    return [sp.diff(o, s) for b in range(batch) for o in rows[b] for s in columns[b]], shape
