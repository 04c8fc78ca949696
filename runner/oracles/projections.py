"""Random projections ``v . (J u)``: a derivative checked at any size by one difference per pair."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from runner.oracles.tolerance import Tolerance
from runner.result import Check


def projections(count: int, of: str = "v.(J u)") -> str:
    """How a check names its random projections: ``4 random projections v.(J u)``."""
    return f"{count} random projection{'' if count == 1 else 's'} {of}"


def directions(rng: np.random.Generator, shape: tuple[int, ...], scale: Any = None) -> np.ndarray:
    """A random direction: uniform on [-1, 1) in every element. Any continuous law serves the check
    (a wrong gradient is orthogonal to it with probability 0), and this one draws ~4x faster than
    a normal, which matters at a million elements per source.

    With ``scale`` (the reported gradient), each element is multiplied by the largest magnitude over
    its own (floored at :data:`SCALE_FLOOR` of the largest): every element then weighs alike in
    ``u . g``, so an error in the small ones (a sign flipped where the gradient is 1e-3 of its
    largest) moves the projection as much as one in the large ones would, and no element weighs
    less than in the plain direction, so the projection keeps its size against ``atol``. Four
    passes over the elements, in place.
    """
    u = rng.uniform(-1.0, 1.0, shape)
    if scale is None:
        return u
    size = np.abs(scale, dtype=np.float64)
    top = float(np.max(size, initial=0.0))
    if not math.isfinite(top):  # a NaN or Inf in the gradient: those elements weigh as nothing
        np.nan_to_num(size, copy=False, nan=0.0, posinf=0.0)
        top = float(size.max())
    if top <= 0:
        return u
    np.maximum(size, SCALE_FLOOR * top, out=size)  # each element's own size, floored
    np.divide(top, size, out=size)  # its weight: 1 at the largest, up to 1 / SCALE_FLOOR below
    u *= size
    return u


#: How far below a gradient's largest element a projection still weighs each element by its own size.
SCALE_FLOOR = 1e-3


def dot(a: Any, b: Any) -> float:
    """The sum of ``a * b`` over every element, in float64 on one thread: BLAS's threaded dot product
    (``np.vdot``) stalls for milliseconds at a million elements when other threads hold the cores."""
    a, b = np.broadcast_arrays(a, b)
    return float(np.einsum(_SUM_OF_PRODUCTS, np.ravel(a), np.ravel(b), dtype=np.float64))


_SUM_OF_PRODUCTS = "i,i->"  # einsum's subscripts for dot()


def projection_check(
    label: str, got: Any, fn: Callable[[np.ndarray], np.ndarray], vjp: Callable[[np.ndarray], Any],
    point: Any, weight: Any, tol: Tolerance, delta: float, count: int, seed: int,
    across: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Check:
    """Random projections, as PyTorch's ``gradcheck(fast_mode=True)``: ``v . (J u)`` two ways.

    For seeded random directions u (shaped like the source) and cotangents v (like
    the target), the tape's side is ``u . vjp(v)`` (one vector-Jacobian product)
    and the other is the float64 central difference of ``v . fn`` along u. The
    first pair uses the run's own cotangent ``weight`` and its reported gradient
    ``got``, so the number in results.json is itself checked. A scalar target has
    no other cotangent (every v is a multiple of ``weight``), so there every pair
    checks ``got`` along its own u and no further VJP is needed: two forward passes
    a pair. Passes when every pair agrees within ``atol + rtol * |difference|``;
    reports the pair furthest from its bound. ``across``, when given, maps a step s
    to ``fn(point + s) - fn(point - s)`` by a cheaper route than two calls of ``fn``.
    Each u weighs every element by the reported gradient's own size there
    (:func:`directions`), so a sign flipped or elements swapped anywhere, small
    elements included, move the projection; the difference along it steps
    ``delta / max |u|`` so that no element moves further than ``delta``, as in the
    per-element differences (a weight of 1000 would otherwise step an element
    across a kink or out of a sigmoid's linear range).
    """
    point = np.asarray(point, dtype=np.float64)
    scalar = np.size(weight) == 1
    count = max(1, count)
    rng = np.random.default_rng(seed)
    worst: tuple[float, float, float] | None = None  # (err / bound, err, bound)
    for k in range(count):
        u = directions(rng, point.shape, got)
        first = k == 0 or scalar
        v = np.asarray(weight) if first else rng.standard_normal(np.shape(weight))
        tape_side = dot(u, np.asarray(got if first else vjp(v), dtype=np.float64))
        reach = max(1.0, float(u.max(initial=0.0)), -float(u.min(initial=0.0)))
        with np.errstate(all="ignore"):  # pragma: no mutate (warnings only: NaN is reported below)
            step = (delta / reach) * u  # no element moves further than delta
            change = across(step) if across is not None else fn(point + step) - fn(point - step)
            numeric = dot(v, change) * reach / (2 * delta)
        err, bound = abs(tape_side - numeric), tol.atol + tol.rtol * abs(numeric)
        if not (math.isfinite(err) and math.isfinite(numeric)):
            worst = (math.inf, math.nan, bound)
            break
        if worst is None or err / bound > worst[0]:
            worst = (err / bound, err, bound)
    assert worst is not None
    name = f"{label} vs float64 central differences ({projections(count)})"
    if not math.isfinite(worst[0]):
        return Check(name, False, None, None, "NaN or Inf in a projection")
    return Check(name, worst[0] <= 1.0, worst[1], worst[2])
