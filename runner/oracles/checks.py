"""Verification: a derivative against its oracle, element by element, and the blocks that keep it fast.

A check passes when every element has ``|got - want| <= atol + rtol * |want|`` and both
sides are finite; NaN or Inf never passes. Tolerances come from the config, per dtype.
Nothing in this package imports TensorFlow, the scenario model or the expression
language: an oracle shares no code with what it checks.
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


def finite(name: str, values: Any) -> Check:
    """NaN or Inf anywhere in a target or a gradient fails the run, whatever else is checked."""
    array = np.asarray(values)  # bfloat16 too: NumPy's isfinite takes it (ml_dtypes)
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    return Check(name, bad == 0, None, None, f"{bad} of {array.size} values are NaN or Inf" if bad else "")


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


def unbroadcast(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``values`` down to ``shape``: the gradient of a sum w.r.t. a broadcast input."""
    values = np.asarray(values, dtype=np.float64)
    while values.ndim > len(shape):
        values = values.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and values.shape[axis] != 1:
            values = values.sum(axis=axis, keepdims=True)
    return values.reshape(shape)  # and says so, where values had another shape
