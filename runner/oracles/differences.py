"""Central differences in float64: every element nudged, one-sided where a kink sits in the step."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from runner.oracles.checks import compare
from runner.oracles.tolerance import Tolerance
from runner.result import Check


def float64_differences(fn: Callable[[np.ndarray], np.ndarray], point: Any, weight: Any,
                        delta: float) -> np.ndarray:
    """d sum(weight * fn(point)) / d point at every element, by central differences in float64.

    ``fn`` is a float64 forward pass (never TensorFlow's), so the differences share
    nothing with the tape. Two evaluations per element; each output is differenced
    before the weighted sum, so rounding stays at the scale of one output.
    """
    point = np.asarray(point, dtype=np.float64)
    grad = np.empty(point.shape)
    flat = grad.ravel()
    for i in range(point.size):
        step = np.zeros(point.size)
        step[i] = delta
        step = step.reshape(point.shape)
        flat[i] = float(np.sum(weight * (fn(point + step) - fn(point - step)))) / (2 * delta)
    return grad


def one_sided_differences(fn: Callable[[np.ndarray], np.ndarray], point: Any, weight: Any, delta: float,
                          elements: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The left and right derivatives of sum(weight * fn(point)) at the given flat ``elements``, by
    second-order one-sided differences in float64 (``(-3 f(x) + 4 f(x + h) - f(x + 2h)) / 2h`` and its
    mirror): where a function has a kink, the two differ and the central difference is neither."""
    point = np.asarray(point, dtype=np.float64)
    here = float(np.sum(weight * fn(point)))
    left, right = np.empty(len(elements)), np.empty(len(elements))
    for k, i in enumerate(elements):
        def at(steps: float, i: int = i) -> float:
            moved = point.copy()
            moved.ravel()[i] += steps * delta
            return float(np.sum(weight * fn(moved)))

        right[k] = (-3 * here + 4 * at(1) - at(2)) / (2 * delta)
        left[k] = (3 * here - 4 * at(-1) + at(-2)) / (2 * delta)
    return left, right


#: How a check's detail begins where it compared subgradients at kinks.
KINK_MARK = ("a kink", "kinks at ")


def compare_differences(name: str, got: Any, central: np.ndarray, tol: Tolerance,
                        sides: Callable[[Sequence[int]], tuple[np.ndarray, np.ndarray]]) -> Check:
    """``got`` against central differences, where a function is differentiable; at a kink (where the
    one-sided derivatives ``sides(elements)`` differ: relu or abs at 0, maximum at a tie), against
    the interval between them, where TensorFlow's subgradient must lie (relu'(0) = 0, |x|'(0) = 0).

    The central difference at a kink is the mean of the sides (0.5 for relu at 0), which no
    subgradient convention gives: only the elements that fail against it are looked at again.
    """
    check = compare(name, got, central, tol)
    if check.passed or check.max_abs_err is None:
        return check
    values = np.asarray(got, dtype=np.float64).reshape(-1)
    want = np.asarray(central, dtype=np.float64).reshape(-1).copy()
    with np.errstate(invalid="ignore"):
        failing = np.flatnonzero(~(np.abs(values - want) <= tol.atol + tol.rtol * np.abs(want)))
    left, right = sides(failing.tolist())
    kinks = ~np.isclose(left, right, rtol=tol.rtol, atol=tol.atol)
    if not kinks.any():
        return check
    at = failing[kinks]
    low, high = np.minimum(left, right)[kinks], np.maximum(left, right)[kinks]
    want[at] = np.clip(values[at], low, high)  # inside the interval: exactly right; outside: its nearest end
    found = compare(name, got, want.reshape(np.shape(got)), tol)
    where = [int(i) for i in np.unravel_index(at[0], np.shape(got))] if np.ndim(got) else None
    place = "" if where is None else f" at element {where}" if len(at) == 1 else f", first at element {where}"
    many = f"kinks at {len(at)} elements" if len(at) > 1 else "a kink"
    kink = (f"{many}: the one-sided derivatives differ{place} ({low[0]:.6g} and {high[0]:.6g}); "
            f"TensorFlow's subgradient {values[at[0]]:.6g} is checked to lie between them")
    worst = "" if found.vacuous else f"; {found.detail}"  # a kink's interval is not nothing checked
    return dataclasses.replace(found, detail=kink + worst, vacuous=False)


def nudged(fn: Callable[..., np.ndarray], delta: float) -> Callable[..., np.ndarray]:
    """What :func:`float64_differences` gives, for an elementwise ``fn(point, *others)``, in two
    evaluations: a function of ``(point, weight, *others)`` for
    :func:`runner.oracles.checks.blockwise`, with ``point``'s shape as its ``into``.

    Each output element then depends on exactly one element of ``point`` (broadcasting
    allowed): nudging every element at once changes each output by its own input's
    nudge alone, and summing each output's weighted difference back onto the element
    it came from gives that element's derivative, the number nudging it alone gives.
    """
    def change(point: np.ndarray, weight: np.ndarray, *others: np.ndarray) -> np.ndarray:
        return (fn(point + delta, *others) - fn(point - delta, *others)) / (2 * delta) * weight

    return change
