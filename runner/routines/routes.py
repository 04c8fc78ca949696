"""Cross-examination: a program's derivative taken again by every route TensorFlow offers to it.

``checks.modes`` (runner/scenarios/route_specs.py) names the routes. A first derivative
of T = sum(w * y) with respect to a source x is ``reverse`` (``tape.gradient``) or
``forward`` (``ForwardAccumulator(x, u).jvp(T)``, one pass per direction u). A second
derivative is one of four nestings: the outer route differentiates what the inner one
gave. Each route gives the same numbers: the derivative along directions, ``g . u`` or
``v . (H u)``, for every basis direction of a small source (the whole derivative) or for
``checks.projections`` seeded random ones of a large source. Each route runs in every
execution of ``checks.executions`` (eager, ``tf.function``, XLA), and each is held to the
run's own result and to float64 differences of the program's NumPy forward pass, so a
route that disagrees where the oracle sides with the others fails by name. Every route
asks TensorFlow with ``unconnected_gradients=ZERO``: a None for a zero (forward mode's
convention for ``tf.sign``) is not a finding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from runner.oracles.checks import compare
from runner.oracles.derivative_checks import rounding, second_difference, weighted
from runner.oracles.projections import directions
from runner.oracles.tolerance import Tolerance
from runner.result import Check, Outcome
from runner.routines.program_view import ProgramView
from runner.scenarios import derivative_specs, route_specs
from runner.tfenv import tf

Forward = Callable[[Mapping[str, Any], Any], dict[str, Any]]
ZERO = tf.UnconnectedGradients.ZERO

#: Up to this many elements a source's every basis direction is taken (a forward-over-forward Hessian
#: is one pass per pair: 256 here); above it, ``checks.projections`` seeded random directions.
BASIS_MAX = 16


def cross_examine(program: ProgramView, forward: Forward, tensors: dict[str, Any], outcome: Outcome) -> None:
    """Every route other than the run's own, in every execution, for every derivative of the plan."""
    kind = program.scenario.derivative
    chosen = route_specs.routes(program.run.checks.modes, kind)
    own, runs_in = route_specs.ROUTES[kind][0], program.run.compile
    for target, sources in program.plan.items():
        for source in sources:
            label = derivative_specs.label(kind, target, source)
            got = outcome.gradients.get(label)
            if got is None:  # None is predicted and checked already; there is nothing to cross-examine
                continue
            pairs = _directions(program, source)
            reference = _along(kind, np.asarray(got, dtype=np.float64), pairs)
            oracle, tol = _oracle(program, kind, target, source, pairs)
            for execution in route_specs.executions(program.run):
                for route in chosen:
                    if (route, execution) == (own, runs_in):
                        continue
                    name = f"{label} [{route}, {execution}]"
                    try:
                        values = _run(program, forward, tensors, target, source, route, execution, pairs)
                    except (LookupError, ValueError, NotImplementedError, tf.errors.OpError) as err:
                        outcome.checks.append(Check(f"{name} ran", False, None, None,
                                                    f"TensorFlow raised {type(err).__name__}: "
                                                    f"{str(err).splitlines()[0]}"))
                        continue
                    outcome.checks.append(compare(f"{name} vs {own}, {runs_in}", values, reference,
                                                  program.run.tolerances().float64_differences))
                    outcome.checks.append(compare(f"{name} vs float64 {'second ' * (kind == 'hessian')}"
                                                  "differences", values, oracle, tol))


Pairs = list[tuple[np.ndarray, list[np.ndarray]]]  # each direction u with the directions v it is read along


def _directions(program: ProgramView, source: str) -> Pairs:
    """Every basis direction (and, for a Hessian, every basis v for each), or seeded random pairs."""
    shape = program.shapes[source]
    size = int(np.prod(shape))
    if size <= BASIS_MAX:
        basis = [row.reshape(shape) for row in np.eye(size)]
        return [(u, basis) for u in basis]
    rng = np.random.default_rng([program.run.seed, *f"routes {source}".encode()])
    count = max(1, program.run.checks.projections)
    return [(directions(rng, shape), [directions(rng, shape)]) for _ in range(count)]


def _along(kind: str, derivative: np.ndarray, pairs: Pairs) -> np.ndarray:
    """The run's derivative along the directions: g . u for each u, or v . (H u) for each u and v."""
    if kind == "gradient":
        return np.array([float(np.sum(derivative * u)) for u, _ in pairs])
    size = pairs[0][0].size
    matrix = derivative.reshape(size, size)
    return np.array([[float(v.reshape(-1) @ matrix @ u.reshape(-1)) for v in vs] for u, vs in pairs])


def _oracle(program: ProgramView, kind: str, target: str, source: str,
            pairs: Pairs) -> tuple[np.ndarray, Tolerance]:
    """The same numbers by float64 differences of the NumPy forward pass, never TensorFlow: the central
    difference along u, or the second difference along u and v (its rounding added to the tolerance)."""
    f = weighted(program.forward_fn(target, source), program.weights[target])
    point, delta = program.point(source), program.delta
    tol = program.run.tolerances().float64_differences
    if kind == "gradient":
        return np.array([(f(point + delta * u) - f(point - delta * u)) / (2 * delta) for u, _ in pairs]), tol
    slack, _ = rounding(f, point)
    biggest = max(float(np.linalg.norm(u) * np.linalg.norm(v)) for u, vs in pairs for v in vs)
    values = np.array([[second_difference(f, point, u, v) for v in vs] for u, vs in pairs])
    return values, Tolerance(rtol=tol.rtol, atol=tol.atol + slack * biggest)


def _run(program: ProgramView, forward: Forward, tensors: dict[str, Any], target: str, source: str,
         route: str, execution: str, pairs: Pairs) -> np.ndarray:
    """One route's numbers in one execution, as float64."""
    dtype = program.dtype
    given = [(tf.constant(u, dtype), [tf.constant(v, dtype) for v in vs]) for u, vs in pairs]
    weight = tf.constant(program.weights[target], dtype)
    x = program.source(source, tensors, {})

    def total() -> Any:
        return tf.reduce_sum(weight * forward(tensors, None)[target])

    @tf.autograph.experimental.do_not_convert
    def routed() -> list[Any]:
        return ROUTINES[route](x, total, given)

    if execution != "eager":
        routed = tf.function(routed, jit_compile=execution == "xla", autograph=False)
    found = routed()
    if route in route_specs.ROUTES["gradient"]:
        return np.array([float(value) for value in found])
    return np.array([[float(value) for value in row] for row in found])


Total = Callable[[], Any]
Given = list[tuple[Any, list[Any]]]


@contextlib.contextmanager
def watching(x: Any) -> Iterator[tf.GradientTape]:
    """A persistent tape watching ``x``."""
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        yield tape


def _reverse(x: Any, total: Total, given: Given) -> list[Any]:
    with watching(x) as tape:
        y = total()
    g = tape.gradient(y, x, unconnected_gradients=ZERO)
    return [tf.reduce_sum(g * u) for u, _ in given]


def _forward(x: Any, total: Total, given: Given) -> list[Any]:
    found = []
    for u, _ in given:
        with tf.autodiff.ForwardAccumulator(x, u) as acc:
            y = total()
        found.append(acc.jvp(y, unconnected_gradients=ZERO))
    return found


def read_along(hu: Any, vs: list[Any]) -> list[Any]:
    """``v . (H u)`` for each v."""
    return [tf.reduce_sum(v * hu) for v in vs]


def _reverse_over_reverse(x: Any, total: Total, given: Given) -> list[list[Any]]:
    with watching(x) as outer:
        with watching(x) as inner:
            y = total()
        g = inner.gradient(y, x, unconnected_gradients=ZERO)
        along = [tf.reduce_sum(g * u) for u, _ in given]
    return [read_along(outer.gradient(a, x, unconnected_gradients=ZERO), vs)
            for a, (_, vs) in zip(along, given, strict=True)]


def _forward_over_reverse(x: Any, total: Total, given: Given) -> list[list[Any]]:
    found = []
    for u, vs in given:
        with tf.autodiff.ForwardAccumulator(x, u) as acc:
            with watching(x) as tape:
                y = total()
            g = tape.gradient(y, x, unconnected_gradients=ZERO)
        found.append(read_along(acc.jvp(g, unconnected_gradients=ZERO), vs))
    return found


def _reverse_over_forward(x: Any, total: Total, given: Given) -> list[list[Any]]:
    found = []
    for u, vs in given:
        with watching(x) as tape:
            with tf.autodiff.ForwardAccumulator(x, u) as acc:
                y = total()
            along = acc.jvp(y, unconnected_gradients=ZERO)
        found.append(read_along(tape.gradient(along, x, unconnected_gradients=ZERO), vs))
    return found


def _forward_over_forward(x: Any, total: Total, given: Given) -> list[list[Any]]:
    found = []
    for u, vs in given:
        row = []
        for v in vs:
            with tf.autodiff.ForwardAccumulator(x, v) as outer:
                with tf.autodiff.ForwardAccumulator(x, u) as inner:
                    y = total()
                along = inner.jvp(y, unconnected_gradients=ZERO)
            row.append(outer.jvp(along, unconnected_gradients=ZERO))
        found.append(row)
    return found


#: Each route by name: (the source, T as a function, the directions) -> its numbers along them.
ROUTINES: dict[str, Callable[[Any, Total, Given], list[Any]]] = {
    "reverse": _reverse, "forward": _forward,
    "reverse-over-reverse": _reverse_over_reverse, "forward-over-reverse": _forward_over_reverse,
    "reverse-over-forward": _reverse_over_forward, "forward-over-forward": _forward_over_forward,
}
