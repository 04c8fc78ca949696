"""Jacobians, batch Jacobians, Hessians, HVPs and JVPs against float64 differences of the forward pass.

Each compares what the tape gave with central differences of a float64 NumPy function
(every element up to a size, the whole numerical Jacobian or the Hessian's second
differences; above it random projections ``v . (J u)``, ``v . (H u)``); a JVP also
against the tape's VJP by the dot-product test. None of them sees TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from runner.oracles.checks import compare
from runner.oracles.projections import directions, projection_check, projections
from runner.oracles.tolerance import Tolerance
from runner.result import Check

Fn = Callable[[np.ndarray], np.ndarray]


#: The Hessian's second differences step about eps^(1/4): their truncation error (delta^2) and
#: rounding error (eps / delta^2) then both sit near 1e-8 of the function's scale.
SECOND_DELTA = 1e-4


EPS = float(np.finfo(np.float64).eps)


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
    (``across``: a cheaper route to it, :func:`runner.oracles.projections.projection_check`)."""
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


def second_difference(f: Callable[[np.ndarray], float], point: np.ndarray, u: np.ndarray,
                      v: np.ndarray) -> float:
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
            hessian[i, j] = hessian[j, i] = second_difference(f, point, basis[i], basis[j])
    return hessian.reshape(point.shape + point.shape)


def rounding(f: Callable[[np.ndarray], float], point: np.ndarray) -> tuple[float, str]:
    """What rounding alone can put in a second difference (four evaluations' eps over delta^2), and the
    words a check's detail says it in."""
    slack = 16 * EPS * max(1.0, abs(f(point))) / SECOND_DELTA**2
    return slack, (f"tolerance includes {slack:.2g} for rounding in the second differences "
                   f"(step {SECOND_DELTA:g})")


def hessian_check(label: str, got: Any, f: Callable[[np.ndarray], float], point: np.ndarray, tol: Tolerance,
                  oracle: np.ndarray | None, count: int, seed: int) -> Check:
    """The Hessian against second differences of the float64 forward pass: every element (``oracle``),
    or random projections ``v . (H u)`` against the second difference along u and v. The tolerance
    adds what rounding does to a second difference (16 eps |f| / delta^2), named in the detail."""
    point = np.asarray(point, dtype=np.float64)
    slack, detail = rounding(f, point)
    if oracle is not None:
        check = compare(f"{label} vs float64 central second differences (every element)", got, oracle,
                        Tolerance(rtol=tol.rtol, atol=tol.atol + slack))
        check.detail = "; ".join(filter(None, [check.detail, detail]))
        return check
    matrix = np.asarray(got, dtype=np.float64).reshape(point.size, point.size)
    name = f"{label} vs float64 second differences ({projections(max(1, count), 'v.(H u)')})"
    return _second_projections(name, detail, f, point, tol, slack, count, seed,
                               lambda u, v: float(v.reshape(-1) @ matrix @ u.reshape(-1)))


def hvp_check(label: str, got: Any, f: Callable[[np.ndarray], float], point: np.ndarray,
              tangent: np.ndarray, tol: Tolerance, oracle: np.ndarray | None, count: int, seed: int) -> Check:
    """H u against second differences of the float64 forward pass: the whole Hessian (``oracle``) times
    u at every element, or random projections ``v . (H u)`` against the second difference along u
    and v. Rounding's share (16 eps |f| / delta^2 per element of H) counts once per unit of |u|."""
    point, u = np.asarray(point, dtype=np.float64), np.asarray(tangent, dtype=np.float64)
    slack, detail = rounding(f, point)
    if oracle is not None:
        want = (oracle.reshape(point.size, point.size) @ u.reshape(-1)).reshape(point.shape)
        check = compare(f"{label} vs float64 central second differences times u (every element)", got, want,
                        Tolerance(rtol=tol.rtol, atol=tol.atol + slack * float(np.abs(u).sum())))
        check.detail = "; ".join(filter(None, [check.detail, detail]))
        return check
    flat = np.asarray(got, dtype=np.float64).reshape(-1)
    name = f"{label} vs float64 second differences ({projections(max(1, count), 'v.(H u)')}, u given)"
    return _second_projections(name, detail, f, point, tol, slack, count, seed,
                               lambda _, v: float(v.reshape(-1) @ flat), fixed=u)


def _second_projections(name: str, detail: str, f: Callable[[np.ndarray], float], point: np.ndarray,
                        tol: Tolerance, slack: float, count: int, seed: int,
                        tape_side: Callable[[np.ndarray, np.ndarray], float],
                        fixed: np.ndarray | None = None) -> Check:
    """The worst of ``count`` seeded projections v . (H u), the tape's against the four-point second
    difference; u seeded too unless ``fixed``."""
    rng = np.random.default_rng(seed)
    worst: tuple[float, float, float] | None = None  # (err / bound, err, bound)
    for _ in range(max(1, count)):
        u = directions(rng, point.shape) if fixed is None else fixed
        v = directions(rng, point.shape)
        numeric = second_difference(f, point, u, v)
        err = abs(tape_side(u, v) - numeric)
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
