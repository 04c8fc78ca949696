"""A program's derivatives asked of the tape (gradients, Jacobians, batch Jacobians, Hessians, JVPs);
all but gradients checked here too.

``derivative`` (runner/scenarios/derivative_specs.py) chooses what the tape is asked for each entry
of ``gradients``: ``tape.jacobian`` (pfor, its tf.while_loop, or both, timed apart
and checked to agree), ``tape.batch_jacobian``, the Hessian as the guide writes it
(an outer tape around the tape whose gradient it differentiates), or a JVP from
``tf.autodiff.ForwardAccumulator``. None of the checks uses TensorFlow's autodiff as
the reference: each result is compared with central differences of the program's
float64 NumPy forward pass (every element up to ``checks.fd_max_elements``: the whole
numerical Jacobian, or the Hessian's second differences; above it random projections
``v . (J u)``, ``v . (H u)``). A JVP is also checked against the tape's VJP by the
dot-product test, and a Newton step against the step solved from the float64 oracle.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from runner.oracles.checks import compare, directions, float64_differences, projection_check, projections
from runner.oracles.tolerance import Tolerance
from runner.result import Check, Heatmap, Outcome
from runner.routines import snippets
from runner.routines.support import check_dtype, timed_step
from runner.scenarios import derivative_specs, layers
from runner.scenarios.schema import Unconnected
from runner.tfenv import tf

Forward = Callable[[Mapping[str, Any]], dict[str, Any]]  # tensors -> every step's value, on open tapes
Fn = Callable[[np.ndarray], np.ndarray]
ZERO = tf.UnconnectedGradients.ZERO
#: The Hessian's second differences step about eps^(1/4): their truncation error (delta^2) and
#: rounding error (eps / delta^2) then both sit near 1e-8 of the function's scale.
SECOND_DELTA = 1e-4
EPS = float(np.finfo(np.float64).eps)
label = derivative_specs.label  # d<target>/d<source>; a Hessian's d2<target>/d<source>2


def tangents(program: Any) -> dict[str, np.ndarray]:
    """Each jvp source's tangent in float64: as the scenario gives it, else seeded N(0, 1) draws."""
    scenario = program.scenario
    out = {}
    for source in dict.fromkeys(s for sources in program.plan.values() for s in sources):
        if source in scenario.tangents:
            out[source] = derivative_specs.tangent_value(scenario.tangents[source], program.shapes[source])
        else:
            out[source] = np.random.default_rng(_tangent_seed(program.run.seed, source)).standard_normal(
                program.shapes[source])
    return out


def _tangent_seed(seed: int, source: str) -> list[int]:
    return [seed, *f"tangent {source}".encode()]


def _tape(program: Any, persistent: bool | None = None) -> tf.GradientTape:
    scenario = program.scenario
    return tf.GradientTape(persistent=scenario.persistent if persistent is None else persistent,
                           watch_accessed_variables=scenario.watch_accessed_variables)


def _watch(program: Any, tape: tf.GradientTape, tensors: Mapping[str, Any]) -> None:
    for name, spec in program.scenario.inputs.items():
        if spec.watch:
            tape.watch(tensors[name])


def _unconnected(program: Any) -> tf.UnconnectedGradients:
    zero = program.scenario.unconnected_gradients is Unconnected.zero
    return ZERO if zero else tf.UnconnectedGradients.NONE


def tape_step(program: Any, forward: Forward, refused: dict[str, str],
              use_pfor: bool = True) -> Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]:
    """The program's step, asking the tape for the scenario's derivative kind, label -> tensor (or None)."""
    scenario, kind = program.scenario, program.scenario.derivative
    unconnected = _unconnected(program)
    if kind == "jvp":
        return _jvp_step(program, forward, unconnected)
    output_gradients = {t: tf.constant(program.weights[t], program.dtype) for t in scenario.output_gradients}
    hessian = kind == "hessian"

    def ask(tape: tf.GradientTape, target: str, y: Any, wrt: list[Any]) -> list[Any]:
        if kind == "jacobian":
            return tape.jacobian(y, wrt, unconnected_gradients=unconnected, experimental_use_pfor=use_pfor)
        if kind == "batch_jacobian":
            return [tape.batch_jacobian(y, w, unconnected_gradients=unconnected) for w in wrt]
        return tape.gradient(y, wrt, output_gradients=output_gradients.get(target),
                             unconnected_gradients=unconnected)

    @tf.autograph.experimental.do_not_convert  # plain Python building ops: nothing for AutoGraph to do
    def step(tensors: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        asked: dict[tuple[str, str], tuple[Any, Any]] = {}
        # A Hessian: the outer tape records the inner one's gradient, then differentiates it.
        with _tape(program, persistent=True) if hessian else contextlib.nullcontext() as outer:
            if hessian:
                _watch(program, outer, tensors)
            with _tape(program) as tape:
                _watch(program, tape, tensors)
                results = forward(tensors)
            for target, sources in program.plan.items():
                wrt = [program.source(s, tensors, results) for s in sources]  # a layer's variable too
                got: list[Any] = [None] * len(sources)
                try:
                    got = ask(tape, target, results[target], wrt)
                except RuntimeError as err:
                    if scenario.persistent or target == next(iter(program.plan)):  # a first call's: real
                        raise
                    refused[target] = str(err).splitlines()[0]
                asked.update({(target, s): (w, g) for s, w, g in zip(sources, wrt, got, strict=True)})
        found = {}
        for (target, source), (w, g) in asked.items():
            if hessian and g is not None:  # ZERO: a gradient that no longer reads the source has H = 0
                g = outer.jacobian(g, w, unconnected_gradients=ZERO)
            found[derivative_specs.label(kind, target, source)] = g
        return results, found

    return step


def _jvp_step(program: Any, forward: Forward, unconnected: tf.UnconnectedGradients) -> Callable[..., Any]:
    """One forward pass per source under a ForwardAccumulator carrying its tangent; J u for each target."""
    given = {s: tf.constant(u, program.dtype) for s, u in tangents(program).items()}

    @tf.autograph.experimental.do_not_convert
    def step(tensors: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        jvps, results = {}, {}
        for source, u in given.items():
            with tf.autodiff.ForwardAccumulator(program.source(source, tensors, {}), u) as acc:
                results = forward(tensors)
            for target, sources in program.plan.items():
                if source in sources:
                    jvps[(target, source)] = acc.jvp(results[target], unconnected_gradients=unconnected)
        return results, {derivative_specs.label("jvp", t, s): jvps[(t, s)]
                         for t, sources in program.plan.items() for s in sources}

    return step


def run_tape(program: Any, forward: Forward, tensors: dict[str, Any], refused: dict[str, str],
             ) -> tuple[dict[str, Any], dict[str, Any], dict[str, float], dict[str, np.ndarray]]:
    """The step under the run's compile mode and timed: results, derivatives, timings, extra values.

    With ``experimental_use_pfor: both`` the while_loop's step runs and is timed after
    pfor's (``jacobian_while_loop``); its Jacobians go to the values, ``<label> (while_loop)``.
    """
    pfor = program.scenario.experimental_use_pfor
    step = tape_step(program, forward, refused, use_pfor=pfor is not False)
    (results, found), timings = timed_step(step, program.run, tensors)
    extra: dict[str, np.ndarray] = {}
    if pfor == "both":
        (_, loop), more = timed_step(tape_step(program, forward, {}, use_pfor=False), program.run, tensors)
        timings.update({f"jacobian_while_loop{k.removeprefix('tape')}": v for k, v in more.items()})
        extra = {f"{label} (while_loop)": g.numpy() for label, g in loop.items() if g is not None}
    return results, found, timings, extra


def why_none(program: Any, target: str, source: str) -> str:
    """Why the result is None, or ''. A ForwardAccumulator watches its primal whatever the tape watches,
    so a JVP is None only where the target does not depend on the source."""
    if program.scenario.derivative == "jvp" and source in program.reaches(target):
        return ""
    return program.why_none(target, source)


def zeros(program: Any, target: str, source: str) -> np.ndarray:
    """What unconnected_gradients=zero gives for an unconnected pair: zeros of the result's shape."""
    kind = program.scenario.derivative
    return np.zeros(derivative_specs.result_shape(kind, program.shapes[target], program.shapes[source]))


def check(program: Any, outcome: Outcome, label: str, target: str, source: str,
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


#: A Hessian's eigenvalues are reported up to this many source elements, its heatmap up to HEATMAP_MAX.
CURVATURE_MAX = 256
HEATMAP_MAX = 16


def curvature(outcome: Outcome, label: str, target: str, source: str, got: np.ndarray) -> None:
    """A small Hessian's eigenvalues, as an (n, n) matrix over the flattened source, in the values, and in
    the note what they say of the target around the source: a bowl, a ridge or a saddle."""
    n = math.isqrt(np.size(got))  # a Hessian is shaped like its source twice
    if n > CURVATURE_MAX:
        return
    matrix = np.asarray(got, dtype=np.float64).reshape(n, n)
    if not np.isfinite(matrix).all():
        return
    eigenvalues = np.linalg.eigvalsh((matrix + matrix.T) / 2)
    outcome.values[f"{label} eigenvalues"] = eigenvalues
    low, high = float(eigenvalues[0]), float(eigenvalues[-1])
    where = f"sum({target}) curves"
    if low > 0:
        shape = f"positive definite: {where} up in every direction of {source}"
    elif high < 0:
        shape = f"negative definite: {where} down in every direction of {source} (near a maximum)"
    elif low < 0 < high:
        shape = f"indefinite: {where} up along some directions of {source} and down along others (a saddle)"
    else:
        shape = f"singular: sum({target}) is flat to second order along some direction of {source}"
    outcome.notes[label] = "; ".join(filter(None, [outcome.notes.get(label),
                                                   f"eigenvalues from {low:.6g} to {high:.6g}, {shape}"]))


def heatmaps(program: Any, outcome: Outcome, taken: int) -> list[Heatmap]:
    """Each Hessian of a source of at most HEATMAP_MAX elements, drawn cell by cell with its rows and
    columns named by element. ``taken`` figures come first; the first figure is named after the scenario."""
    scenario, found = program.scenario, []
    if scenario.derivative != "hessian":
        return []
    for target, sources in program.plan.items():
        for source in sources:
            label = derivative_specs.label("hessian", target, source)
            got, shape = outcome.gradients.get(label), program.shapes[source]
            n = math.prod(shape)
            if got is None or n > HEATMAP_MAX:
                continue
            names = [f"{source}[{', '.join(map(str, i))}]" for i in np.ndindex(shape)] if shape else [source]
            text = scenario.targets[target]
            count = taken + len(found)
            found.append(Heatmap(f"{scenario.name}_{count + 1}.png" if count else f"{scenario.name}.png",
                                 f"{label}: the Hessian of {text if isinstance(text, str) else target}",
                                 names, np.asarray(got, dtype=np.float64).reshape(n, n)))
    return found


#: SymPy's Hessian is one derivative per pair of source elements, each lambdified: past this many
#: pairs it takes minutes (4,096, an 8 x 8 source, took six here), and second differences suffice.
SYMBOLIC_HESSIAN_MAX = 256


def symbolic_skipped(program: Any) -> str:
    """Why SymPy does not check this program's derivatives ('' when it does)."""
    if program.scenario.derivative != "hessian":
        return ""
    pairs = max(math.prod(program.shapes[s]) ** 2 for sources in program.plan.values() for s in sources)
    if pairs <= SYMBOLIC_HESSIAN_MAX:
        return ""
    return (f"SymPy check skipped: a Hessian of {pairs} second derivatives, above {SYMBOLIC_HESSIAN_MAX} "
            "(the second differences check every element)")


def symbolic(program: Any, out: np.ndarray, target: str, source: str,
             wrt: list[Any]) -> tuple[list[Any], tuple[int, ...]]:
    """SymPy's derivatives of a target's elements (an object array) with respect to the source's symbols
    ``wrt``, flat, as the scenario's derivative kind arranges them, and the result's shape."""
    import sympy as sp

    kind = program.scenario.derivative
    shape = derivative_specs.result_shape(kind, program.shapes[target], program.shapes[source])
    if kind in ("gradient", "hessian"):
        total = np.sum(out * program.weights[target])
        if kind == "gradient":
            return [sp.diff(total, s) for s in wrt], shape
        return [sp.diff(first, b) for first in (sp.diff(total, a) for a in wrt) for b in wrt], shape
    if kind == "jacobian":
        return [sp.diff(o, s) for o in out.flat for s in wrt], shape
    if kind == "jvp":
        u = tangents(program)[source].reshape(-1)
        return [sum(sp.diff(o, s) * float(c) for s, c in zip(wrt, u, strict=True)) for o in out.flat], shape
    batch = out.shape[0]  # batch_jacobian: example b's elements against example b's symbols
    rows, columns = out.reshape(batch, -1), np.asarray(wrt, dtype=object).reshape(batch, -1)
    return [sp.diff(o, s) for b in range(batch) for o in rows[b] for s in columns[b]], shape


def weighted(fn: Fn, weight: Any) -> Callable[[np.ndarray], float]:
    """The scalar a gradient differentiates: sum(weight * fn), weight the target's cotangent."""
    return lambda point: float(np.sum(weight * fn(point)))


def numerical_jacobian(fn: Fn, point: np.ndarray, delta: float) -> np.ndarray:
    """d fn / d point at every element by central differences in float64: shape fn's + point's."""
    point = np.asarray(point, dtype=np.float64)
    columns = []
    for i in range(point.size):
        step = np.zeros(point.size)
        step[i] = delta
        step = step.reshape(point.shape)
        columns.append((np.asarray(fn(point + step)) - np.asarray(fn(point - step))) / (2 * delta))
    stacked = np.stack(columns, axis=-1)
    return stacked.reshape(stacked.shape[:-1] + point.shape)


def jacobian_check(label: str, got: Any, fn: Fn, point: np.ndarray, tol: Tolerance, delta: float,
                   max_elements: int, count: int, seed: int, across: Fn | None = None) -> Check:
    """The whole Jacobian against the numerical one, or above ``max_elements`` source elements
    random projections ``v . (J u)``: the tape's J applied to u against the difference along u
    (``across``: a cheaper route to it, :func:`runner.oracles.checks.projection_check`)."""
    point = np.asarray(point, dtype=np.float64)
    if point.size <= max_elements:
        return compare(f"{label} vs float64 central differences (every element)", got,
                       numerical_jacobian(fn, point, delta), tol)
    axes = np.ndim(got) - point.ndim

    def vjp(v: np.ndarray) -> np.ndarray:
        return np.tensordot(v, np.asarray(got), axes=axes)

    ones = np.ones(np.shape(got)[:axes])
    return projection_check(label, vjp(ones), fn, vjp, point, ones, tol, delta, count, seed, across)


def batch_jacobian_check(label: str, got: Any, fn: Fn, point: np.ndarray, tol: Tolerance, delta: float,
                         max_elements: int, count: int, seed: int, across: Fn | None = None) -> Check:
    """Example b's Jacobian against the numerical Jacobian's block (b, b), and every other block
    against zero (batch_jacobian assumes the examples independent); above ``max_elements``,
    projections ``v . (J u)`` with J the block-diagonal map the batch Jacobian stands for."""
    point = np.asarray(point, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    batch, rest = point.shape[0], point.ndim - 1
    target_rest = got.ndim - 1 - rest
    if point.size <= max_elements:
        full = numerical_jacobian(fn, point, delta)  # (batch, *target, batch, *source)
        blocks = np.zeros(full.shape)
        for b in range(batch):
            blocks[(b, *[slice(None)] * target_rest, b)] = got[b]
        return compare(f"{label} vs float64 central differences (every element; other examples' blocks "
                       "zero)", blocks, full, tol)
    per = got.reshape(batch, -1, math.prod(point.shape[1:]))

    def vjp(v: np.ndarray) -> np.ndarray:
        return np.einsum("bt,bts->bs", v.reshape(batch, -1), per).reshape(point.shape)

    ones = np.ones(got.shape[: 1 + target_rest])
    return projection_check(label, vjp(ones), fn, vjp, point, ones, tol, delta, count, seed, across)


def _second(f: Callable[[np.ndarray], float], point: np.ndarray, u: np.ndarray, v: np.ndarray) -> float:
    """v . H u by the four-point second difference along u and v (steps SECOND_DELTA)."""
    du, dv = SECOND_DELTA * u, SECOND_DELTA * v
    return (f(point + du + dv) - f(point + du - dv) - f(point - du + dv) + f(point - du - dv)) / (
        4 * SECOND_DELTA**2)


def second_differences(f: Callable[[np.ndarray], float], point: np.ndarray) -> np.ndarray:
    """Every element of f's Hessian by second differences in float64: shape point's twice."""
    point = np.asarray(point, dtype=np.float64)
    n = point.size
    basis = np.eye(n).reshape(n, *point.shape)
    hessian = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            hessian[i, j] = hessian[j, i] = _second(f, point, basis[i], basis[j])
    return hessian.reshape(point.shape + point.shape)


def _rounding(f: Callable[[np.ndarray], float], point: np.ndarray) -> float:
    """What rounding alone can put in a second difference: four evaluations' eps over delta^2."""
    return 16 * EPS * max(1.0, abs(f(point))) / SECOND_DELTA**2


def hessian_check(label: str, got: Any, f: Callable[[np.ndarray], float], point: np.ndarray, tol: Tolerance,
                  oracle: np.ndarray | None, count: int, seed: int) -> Check:
    """The Hessian against second differences of the float64 forward pass: every element (``oracle``),
    or random projections ``v . (H u)`` against the second difference along u and v. The tolerance
    adds what rounding does to a second difference (16 eps |f| / delta^2), named in the detail."""
    point = np.asarray(point, dtype=np.float64)
    slack = _rounding(f, point)
    detail = f"tolerance includes {slack:.2g} for rounding in the second differences (step {SECOND_DELTA:g})"
    if oracle is not None:
        check = compare(f"{label} vs float64 central second differences (every element)", got, oracle,
                        Tolerance(rtol=tol.rtol, atol=tol.atol + slack))
        check.detail = "; ".join(filter(None, [check.detail, detail]))
        return check
    rng = np.random.default_rng(seed)
    matrix = np.asarray(got, dtype=np.float64).reshape(point.size, point.size)
    name = f"{label} vs float64 second differences ({projections(max(1, count), 'v.(H u)')})"
    worst: tuple[float, float, float] | None = None  # (err / bound, err, bound)
    for _ in range(max(1, count)):
        u, v = directions(rng, point.shape), directions(rng, point.shape)
        tape_side = float(v.reshape(-1) @ matrix @ u.reshape(-1))
        numeric = _second(f, point, u, v)
        err = abs(tape_side - numeric)
        bound = tol.atol + slack * float(np.linalg.norm(u) * np.linalg.norm(v)) + tol.rtol * abs(numeric)
        if not (math.isfinite(err) and math.isfinite(numeric)):
            return Check(name, False, None, None, "NaN or Inf in a projection")
        if worst is None or err / bound > worst[0]:
            worst = (err / bound, err, bound)
    assert worst is not None
    return Check(name, worst[0] <= 1.0, worst[1], worst[2], detail)


def jvp_check(label: str, got: Any, fn: Fn, point: np.ndarray, tangent: np.ndarray, tol: Tolerance,
              delta: float) -> Check:
    """J u against the float64 central difference along u, at every element of the target (two passes)."""
    point = np.asarray(point, dtype=np.float64)
    want = (np.asarray(fn(point + delta * tangent)) - np.asarray(fn(point - delta * tangent))) / (2 * delta)
    return compare(f"{label} vs float64 directional central difference (every element)", got, want, tol)


def dot_product_check(label: str, got: Any, vjp: Callable[[np.ndarray], np.ndarray], tangent: np.ndarray,
                      seed: int, tol: Tolerance, count: int = 1) -> Check:
    """Forward mode against reverse: v . (J u) from the JVP equals u . (J^T v) from the tape's VJP, for
    ``count`` seeded cotangents v (the worst reported), within rounding of the sums' magnitudes."""
    rng = np.random.default_rng([seed, *b"cotangent"])
    name = f"{label}: dot-product test v.(J u) = u.(J^T v) with the tape's VJP"
    worst: tuple[float, float, float, str] | None = None  # (err / bound, err, bound, detail)
    for _ in range(max(1, count)):
        v = rng.standard_normal(np.shape(got))
        back = np.asarray(vjp(v), dtype=np.float64)
        terms = (v * np.asarray(got, dtype=np.float64), tangent * back)
        left, right = (float(np.sum(t)) for t in terms)
        bound = tol.atol + tol.rtol * max(float(np.sum(np.abs(t))) for t in terms)
        err = abs(left - right)
        if not math.isfinite(err):
            return Check(name, False, None, None, "NaN or Inf in a product")
        excess = err / bound if bound else (math.inf if err else 0.0)
        if worst is None or excess > worst[0]:
            worst = (excess, err, bound, f"v.(J u) = {left:.9g}, u.(J^T v) = {right:.9g}")
    assert worst is not None
    of = f" (the worst of {count} seeded cotangents v)" if count > 1 else ""
    return Check(name, worst[1] <= worst[2], worst[1], worst[2], worst[3] + of)


def newton(program: Any, outcome: Outcome, label: str, target: str, source: str, hessian: np.ndarray,
           oracle: np.ndarray | None, delta: float) -> list[Check]:
    """One Newton step -solve(H + damping I, g) in TensorFlow, shaped like the source, and its check
    against the step NumPy solves from the float64 oracle's H and g (second and first differences).
    The tape's g it solves with is recorded too (``d<target>/d<source>``), checked against the first
    differences."""
    scenario, run = program.scenario, program.run
    point = program.point(source)
    n, name = point.size, f"{label} Newton step vs float64 solve from second and first differences"
    weight = program.weights[target]
    gradient = program.vjp(target, source)(weight)  # the tape's gradient, on a fresh tape
    g_label = derivative_specs.label("gradient", target, source)
    outcome.values[g_label] = gradient.reshape(point.shape)
    checks: list[Check] = []
    tol = run.tolerances().float64_differences
    if oracle is not None:
        grad64 = float64_differences(program.forward_fn(target, source), point, weight, delta)
        checks.append(compare(f"{g_label} (the Newton step's g) vs float64 central differences "
                              "(every element)", gradient.reshape(point.shape), grad64, tol))
    dtype = check_dtype(run)  # tf.linalg.solve has no 16-bit kernels
    matrix = tf.reshape(tf.cast(hessian, dtype), (n, n)) + scenario.damping * tf.eye(n, dtype=dtype)
    try:
        step = tf.linalg.solve(matrix, -tf.reshape(tf.constant(gradient, dtype), (n, 1))).numpy()
    except tf.errors.InvalidArgumentError:  # "Input matrix is not invertible."
        return [*checks, Check(name, False, None, None, "H + damping*I is singular in TensorFlow's solve; "
                                                        "raise scenario.damping")]
    step = step.reshape(point.shape)
    outcome.values[f"{label} Newton step"] = step
    f = weighted(program.forward_fn(target, source), weight)
    solved = "" if dtype == program.dtype else (
        f" (solved in {dtype.name}: tf.linalg.solve has no {program.dtype.name} kernel)")
    outcome.notes[label] = "; ".join(filter(None, [outcome.notes.get(label), (
        f"one Newton step -solve(H + {scenario.damping:g} I, g){solved} on {source} takes sum({target}) "
        f"from {f(point):.6g} to {f(point + step):.6g}")]))
    if oracle is None:
        return checks
    matrix64 = oracle.reshape(n, n) + scenario.damping * np.eye(n)
    try:
        want = np.linalg.solve(matrix64, -grad64.reshape(n)).reshape(point.shape)
        cond = float(np.linalg.cond(matrix64))
    except np.linalg.LinAlgError as err:
        return [*checks, Check(name, False, None, None, f"the oracle's H + damping*I is singular ({err}); "
                                                        "raise scenario.damping")]
    check = compare(name, step, want, Tolerance(rtol=tol.rtol * cond, atol=tol.atol * cond))
    scaled = f"tolerance scaled by cond(H + damping I) = {cond:.3g}"
    check.detail = "; ".join(filter(None, [check.detail, scaled]))
    return [*checks, check]


def snippet(program: Any, inputs: list[str], steps: list[str]) -> str:
    """Plain TensorFlow printing the same results: tape.jacobian, tape.batch_jacobian, nested tapes for a
    Hessian, a ForwardAccumulator per source for JVPs. ``inputs`` and ``steps`` are the program's own
    lines (the steps indented for one block)."""
    scenario, run = program.scenario, program.run
    kind, dtype = scenario.derivative, run.dtype
    mode = "ZERO" if scenario.unconnected_gradients is Unconnected.zero else "NONE"
    unconnected = f"unconnected_gradients=tf.UnconnectedGradients.{mode}"
    watched = [n for n, spec in scenario.inputs.items() if spec.watch]
    tape = [f"with tf.GradientTape(persistent={scenario.persistent}, "
            f"watch_accessed_variables={scenario.watch_accessed_variables}) as tape:",
            *(f"    tape.watch({n})" for n in watched), *steps]
    lines = [snippets.HEADER, *inputs, "", "gradients = {}"]
    refusal = "except RuntimeError:  # a non-persistent tape answers only its first gradient() call"
    if kind == "jvp":
        given = tangents(program)
        for source in given:
            code = (f"np.asarray({given[source].tolist()!r})" if source in scenario.tangents else
                    f"np.random.default_rng({_tangent_seed(run.seed, source)!r}).standard_normal("
                    f"{program.shapes[source]!r})")
            primal = layers.code_source(source)  # an input, or a layer's variable
            lines += ["", f"with tf.autodiff.ForwardAccumulator({primal}, tf.constant({code}, "
                          f"tf.{dtype})) as acc:", *steps]
            lines += [f'gradients["{derivative_specs.label(kind, t, source)}"] = acc.jvp({t}, {unconnected})'
                      for t, sources in program.plan.items() if source in sources]
        return "\n".join([*lines, snippets.FOOTER])
    if kind == "hessian":
        lines += ["_gradients = {}  # label -> (the inner tape's gradient, its source)",
                  f"with tf.GradientTape(persistent=True, watch_accessed_variables="
                  f"{scenario.watch_accessed_variables}) as outer:  # records the gradient below",
                  *(f"    outer.watch({n})" for n in watched), *(f"    {line}" for line in tape)]
        for target, sources in program.plan.items():
            og = (f", output_gradients=tf.constant({program.weights[target].tolist()!r}, tf.{dtype})"
                  if target in scenario.output_gradients else "")
            labels = [derivative_specs.label(kind, target, s) for s in sources]
            wrt = ", ".join(map(layers.code_source, sources))  # a layer's variable: _weights['h.kernel']
            lines += ["    try:",
                      f"        _grads = tape.gradient({target}, [{wrt}]{og}, {unconnected})",
                      f"    {refusal}",
                      f"        _grads = [None] * {len(sources)}",
                      f"    _gradients.update(zip({labels!r}, zip(_grads, [{wrt}])))"]
        lines += ["for _label, (_g, _source) in _gradients.items():  # the Jacobian of each gradient",
                  "    gradients[_label] = None if _g is None else outer.jacobian(",
                  "        _g, _source, unconnected_gradients=tf.UnconnectedGradients.ZERO)"]
        return "\n".join([*lines, snippets.FOOTER])
    lines += tape
    pfor = scenario.experimental_use_pfor is not False
    for target, sources in program.plan.items():
        labels = [derivative_specs.label(kind, target, s) for s in sources]
        wrt = ", ".join(map(layers.code_source, sources))
        ask = (f"tape.jacobian({target}, [{wrt}], {unconnected}, experimental_use_pfor={pfor})"
               if kind == "jacobian" else
               f"[tape.batch_jacobian({target}, _s, {unconnected}) for _s in [{wrt}]]")
        lines += ["try:", f"    _grads = {ask}", refusal, f"    _grads = [None] * {len(sources)}",
                  f"gradients.update(zip({labels!r}, _grads))"]
    if scenario.experimental_use_pfor == "both":
        lines.append("# experimental_use_pfor=False (a tf.while_loop, on a persistent tape) gives the same "
                     "Jacobians, row by row")
    return "\n".join([*lines, snippets.FOOTER])
