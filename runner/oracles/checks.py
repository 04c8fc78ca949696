"""Verification: every gradient against an oracle and against finite differences.

A check passes when ``max|got - want| <= atol + rtol * max|want|`` and both sides
are finite; NaN or Inf never passes. Tolerances come from the config, per dtype.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from runner.oracles.tolerance import Tolerance
from runner.result import Check
from runner.tfenv import tf

T = TypeVar("T")

#: Elements a block of work holds: its temporaries stay in the CPU's cache.
BLOCK_ELEMENTS = 1 << 16
#: From this many elements on, large elementwise work goes block by block in threads.
THREADED_ELEMENTS = 1 << 20


def in_blocks(fn: Callable[[int, int], T], count: int, per_block: int) -> list[T]:
    """``fn(start, stop)`` over ``range(count)`` cut into blocks of ``per_block``, in order.

    One thread per CPU: NumPy releases the GIL inside its loops, so blocks of float64
    work run in parallel, and each block's temporaries stay in cache where a whole-array
    expression would allocate (and fault in) an array per operation. ``fn`` runs in a
    worker thread, where NumPy's error state is the default: it sets its own.
    """
    starts = range(0, count, max(1, per_block))  # pragma: no mutate (blocks of any size: the same sums)
    if len(starts) <= 1:  # pragma: no mutate (one block in a pool: the same result, slower)
        return [fn(0, count)]
    pool = ThreadPoolExecutor(_cpus())  # pragma: no mutate (any number of threads: the same result)
    try:
        return list(pool.map(lambda start: fn(start, min(start + per_block, count)), starts))
    finally:  # a job's time limit raising here: the blocks not started never start
        pool.shutdown(cancel_futures=True)  # pragma: no mutate (only a timeout's unstarted blocks differ)


def _cpus() -> int:
    """The CPUs this process may run on: its affinity where the system has one (Linux), else all."""
    if hasattr(os, "sched_getaffinity"):  # pragma: no mutate (a thread count: any gives the same results)
        return len(os.sched_getaffinity(0))  # pragma: no mutate
    return os.cpu_count() or 1  # pragma: no mutate


def compare(name: str, got: Any, want: Any, tol: Tolerance) -> Check:
    """Compare two arrays of the same shape under ``tol``, element by element.

    An element passes when ``|got - want| <= atol + rtol * |want|`` for that element (NumPy's
    ``isclose``), so a small element is held to its own scale, not to the largest's; both
    sides must be finite. The check reports the largest error and the worst element (the
    one furthest past its own bound, or nearest to it): where it is, and both values. A
    check whose elements are all exactly 0 on both sides is ``vacuous``: it verified nothing.
    """
    got = np.asarray(got)  # bfloat16 too: NumPy's ufuncs take it (ml_dtypes), and float64 comes out
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return Check(name, False, None, None, f"shape {got.shape} != expected {want.shape}")
    if not got.size:
        return Check(name, True, 0.0, tol.atol, "nothing to compare", vacuous=True)
    flat_got, flat_want = got.ravel(), want.ravel()
    per_block = BLOCK_ELEMENTS if got.size >= THREADED_ELEMENTS else got.size  # pragma: no mutate (speed)
    worst = _Worst.of(in_blocks(lambda start, stop: _Worst.block(flat_got[start:stop], flat_want[start:stop],
                                                                 tol, start), got.size, per_block))
    return worst.check(name, got, want)


@dataclass(frozen=True)
class _Worst:
    """The worst element of a comparison (furthest past its own bound), and the largest error."""

    largest: float  # max |got - want|; NaN when either side holds a NaN or Inf
    excess: float  # the worst element's |got - want| - bound
    index: int  # its flat index
    error: float
    bound: float
    got: float
    want: float

    @staticmethod
    def block(got: np.ndarray, want: np.ndarray, tol: Tolerance, start: int) -> _Worst:
        """One block's worst element; ``start`` is the block's first flat index."""
        with np.errstate(invalid="ignore", over="ignore"):  # pragma: no mutate (warnings: NaN is check()'s)
            diff = np.subtract(got, want, dtype=np.float64)
            np.abs(diff, out=diff)
            largest = float(np.max(diff))
            relative = np.abs(want)
            relative *= tol.rtol
            np.subtract(diff, relative, out=relative)  # each element's error past rtol * |want|: atol apart
        i = int(np.argmax(relative))  # a NaN, where there is one
        return _Worst(largest, float(relative[i]) - tol.atol, start + i, float(diff[i]),
                      tol.atol + tol.rtol * abs(float(want[i])), float(got[i]), float(want[i]))

    @staticmethod
    def of(blocks: list[_Worst]) -> _Worst:
        """The worst over blocks; a NaN anywhere stays NaN (np.max, not max)."""
        largest = float(np.max([b.largest for b in blocks]))
        worst = blocks[int(np.argmax([b.excess for b in blocks]))]
        return dataclasses.replace(worst, largest=largest)

    def check(self, name: str, got: np.ndarray, want: np.ndarray) -> Check:
        if not math.isfinite(self.largest):
            bad = [side for side, a in (("got", got), ("expected", want)) if not np.isfinite(a).all()]
            return Check(name, False, None, None, f"NaN or Inf in the {' and '.join(bad)} values")
        where = [int(i) for i in np.unravel_index(self.index, got.shape)]  # a scalar's: none
        at = f"[{', '.join(map(str, where))}]" if where else ""
        passed = self.excess <= 0
        detail = (f"worst element{' ' + at if at else ''}: got {self.got!r}, want {self.want!r} "
                  f"(error {self.error:.2g} {'<=' if passed else '>'} {self.bound:.2g})")
        vacuous = self.largest == 0 and not np.any(want)  # equal everywhere, and zero everywhere
        if vacuous:
            detail = "vacuous: every compared element is 0 on both sides"
        return Check(name, passed, self.largest, self.bound, detail, vacuous=vacuous)


def recorded(label: str, got: Any, reason: str) -> Check:
    """None exactly when predicted: ``reason`` says why the tape cannot give this gradient ('' if it can)."""
    expected = "None" if reason else "a gradient"
    return Check(f"{label} recorded", (got is None) == bool(reason), None, None,
                 f"expected {expected}, got {'None' if got is None else 'a gradient'}")


SAMPLED_ELEMENT_BUDGET = 2**28  # elements evaluated by one sampled finite-difference check, at most


def finite(name: str, values: Any) -> Check:
    """NaN or Inf anywhere in a target or a gradient fails the run, whatever else is checked."""
    array = np.asarray(values)  # bfloat16 too: NumPy's isfinite takes it (ml_dtypes)
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    return Check(name, bad == 0, None, None, f"{bad} of {array.size} values are NaN or Inf" if bad else "")


def finite_differences(
    fn: Callable[..., Any], args: Sequence[Any], delta: float
) -> list[np.ndarray]:
    """d sum(fn(*args)) / d arg for each arg, by central differences.

    ``tf.test.compute_gradient`` perturbs each input element by +-delta and returns
    the numerical Jacobian, shape (target size, arg size). Summing its rows gives
    the gradient of the target's sum, which is what ``tape.gradient`` returns for a
    non-scalar target; differencing each output before summing keeps float32's
    rounding error at the scale of one output, not of their sum.
    """
    tensors = [tf.convert_to_tensor(a) for a in args]
    _, numerical = tf.test.compute_gradient(fn, tensors, delta=delta)
    return [np.asarray(j).sum(axis=0).reshape(t.shape)
            for j, t in zip(numerical, tensors, strict=True)]  # pragma: no mutate (one Jacobian per argument)


def sampled_differences(
    fn: Callable[[Any], Any], arg: Any, delta: float, count: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of sum(fn(arg)) for ``count`` seeded random elements of ``arg``.

    For inputs too large to perturb one element at a time, a sample answers the
    same question at a cost proportionate to ``count``. Each output is differenced
    before summing, so the rounding error stays at the scale of one output.
    Returns the flat indices sampled and the derivative at each.
    """
    tensor = tf.convert_to_tensor(arg)
    flat = tf.reshape(tensor, [-1])
    picks = np.sort(np.random.default_rng(seed).choice(int(flat.shape[0]), size=count, replace=False))
    values = []
    for index in picks:
        nudge = tf.scatter_nd([[int(index)]], tf.constant([delta], tensor.dtype), flat.shape)
        plus = fn(tf.reshape(flat + nudge, tensor.shape))
        minus = fn(tf.reshape(flat - nudge, tensor.shape))
        values.append(float(tf.reduce_sum(plus - minus)) / (2 * delta))
    return picks, np.asarray(values)


def difference_check(
    label: str, got: Any, fn: Callable[[Any], Any], arg: Any, tol: Tolerance, delta: float,
    max_elements: int, seed: int,
) -> Check:
    """``got`` = d sum(fn(arg)) / d arg, against central differences of ``fn`` (TensorFlow's forward
    ops, never its autodiff) evaluated in float64: every element, or a sample.

    Up to ``max_elements`` each element is perturbed alone (``tf.test.compute_gradient``);
    above it, a seeded sample of elements.
    """
    arg = tf.cast(tf.convert_to_tensor(arg), tf.float64)
    size = int(np.size(got))
    if size <= max_elements:
        (fd,) = finite_differences(fn, [arg], delta)
        return compare(f"{label} vs float64 central differences (every element)", got, fd, tol)
    # Each sampled element costs two evaluations over the whole input: past a few million
    # elements, take fewer samples (never under 16) so the check stays proportionate.
    count = min(max_elements, max(16, SAMPLED_ELEMENT_BUDGET // size))
    picks, fd = sampled_differences(fn, arg, delta, count, seed)
    sampled = np.ravel(got)[picks]
    return compare(f"{label} vs float64 central differences ({count} of {size} elements)", sampled, fd, tol)


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
    evaluations: a function of ``(point, weight, *others)`` for :func:`blockwise`, with ``point``'s
    shape as its ``into``.

    Each output element then depends on exactly one element of ``point`` (broadcasting
    allowed): nudging every element at once changes each output by its own input's
    nudge alone, and summing each output's weighted difference back onto the element
    it came from gives that element's derivative, the number nudging it alone gives.
    """
    def change(point: np.ndarray, weight: np.ndarray, *others: np.ndarray) -> np.ndarray:
        return (fn(point + delta, *others) - fn(point - delta, *others)) / (2 * delta) * weight

    return change


def blockwise(fn: Callable[..., Any], arrays: Sequence[np.ndarray], out_shape: tuple[int, ...],
              into: tuple[int, ...], split: bool = True) -> np.ndarray:
    """``fn(*arrays)``, broadcast to ``out_shape`` and summed down to ``into`` (:func:`unbroadcast`),
    for an elementwise ``fn``: each element of its result reads only the arrays' elements at
    its position (broadcasting allowed).

    So from :data:`THREADED_ELEMENTS` on, ``out_shape``'s leading axis is cut into blocks
    evaluated apart, in threads (:func:`in_blocks`): an array spanning that axis is cut
    with it, any other (broadcast along it) goes whole to every block. Where an array
    does not broadcast to ``out_shape``, or ``split`` is false (``fn`` computes something
    that does not), it is one evaluation over whole arrays. The same numbers either way,
    but for the order of the sums where ``into`` is broadcast along the leading axis.
    """
    blocks = _Blocks.plan(fn, arrays, out_shape, into, split)
    if blocks is None:
        with np.errstate(all="ignore"):  # pragma: no mutate (warnings only: NaN is compare()'s)
            return unbroadcast(np.broadcast_to(fn(*arrays), out_shape), into)
    if not blocks.along:
        return np.sum(blocks.run(blocks.part), axis=0)  # each block's part is into-shaped
    result = np.empty(into)

    def store(start: int, stop: int) -> None:
        result[start:stop] = blocks.part(start, stop)

    blocks.run(store)
    return result


def compare_blockwise(name: str, got: Any, fn: Callable[..., Any], arrays: Sequence[np.ndarray],
                      out_shape: tuple[int, ...], into: tuple[int, ...], tol: Tolerance,
                      split: bool = True) -> Check:
    """``compare(name, got, blockwise(fn, arrays, out_shape, into, split), tol)``, with each block of the
    expected values compared as soon as it is made, where the blocks are ``into``'s own: the expected
    array never exists whole, and nothing is read twice."""
    got = np.asarray(got)
    blocks = _Blocks.plan(fn, arrays, out_shape, into, split)  # pragma: no mutate (memory: see compare)
    if blocks is None or not blocks.along or got.shape != into or got.dtype.kind != "f":  # pragma: no mutate
        return compare(name, got, blockwise(fn, arrays, out_shape, into, split), tol)
    row = math.prod(into[1:])
    flat = got.reshape(got.shape[0], -1)  # pragma: no mutate (rows: any negative is the rest)
    worst = _Worst.of(blocks.run(lambda start, stop: _Worst.block(
        flat[start:stop].ravel(), blocks.part(start, stop).ravel(), tol, start * row)))
    if not math.isfinite(worst.largest):  # which side holds the NaN or Inf: compare says, from whole arrays
        return compare(name, got, blockwise(fn, arrays, out_shape, into, split), tol)
    return worst.check(name, got, got)  # finite: want is got where it matters (all equal, or not vacuous)


@dataclass(frozen=True)
class _Blocks:
    """How :func:`blockwise` cuts its work: ``part(start, stop)`` is rows start:stop of the result."""

    fn: Callable[..., Any]
    arrays: Sequence[np.ndarray]
    cut: tuple[bool, ...]  # which arrays span the leading axis (cut with it) and which go whole
    out_shape: tuple[int, ...]
    into: tuple[int, ...]
    along: bool  # into spans the leading axis: each block is its own rows of the result, else summed

    @classmethod
    def plan(cls, fn: Callable[..., Any], arrays: Sequence[np.ndarray], out_shape: tuple[int, ...],
             into: tuple[int, ...], split: bool) -> _Blocks | None:
        """The blocks, or None where the work is one evaluation over whole arrays."""
        if not (split and math.prod(out_shape) >= THREADED_ELEMENTS and out_shape[0] > 1  # pragma: no mutate
                and all(fits(np.shape(a), out_shape) for a in arrays)):  # (blocks or whole: the same numbers)
            return None
        cut = tuple(np.ndim(a) == len(out_shape) and np.shape(a)[0] == out_shape[0] for a in arrays)
        along = len(into) == len(out_shape) and into[0] == out_shape[0]
        return cls(fn, arrays, cut, out_shape, into, along)

    def part(self, start: int, stop: int) -> np.ndarray:
        values = [a[start:stop] if c else a
                  for a, c in zip(self.arrays, self.cut, strict=True)]  # pragma: no mutate (equal lengths)
        with np.errstate(all="ignore"):  # pragma: no mutate (warnings only)
            value = np.broadcast_to(self.fn(*values), (stop - start, *self.out_shape[1:]))
        return unbroadcast(value, (stop - start, *self.into[1:]) if self.along else self.into)

    def run(self, work: Callable[[int, int], T]) -> list[T]:
        return in_blocks(work, self.out_shape[0],
                         max(1, BLOCK_ELEMENTS // math.prod(self.out_shape[1:])))  # pragma: no mutate (speed)


def fits(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` broadcasts to ``out_shape`` (without growing it)."""
    last = range(1, len(shape) + 1)  # shape's axes, from the last
    return len(shape) <= len(out_shape) and all(shape[-k] in (1, out_shape[-k]) for k in last)


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


def unbroadcast(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``values`` down to ``shape``: the gradient of a sum w.r.t. a broadcast input."""
    values = np.asarray(values, dtype=np.float64)
    while values.ndim > len(shape):
        values = values.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and values.shape[axis] != 1:
            values = values.sum(axis=axis, keepdims=True)
    return values.reshape(shape)  # and says so, where values had another shape
