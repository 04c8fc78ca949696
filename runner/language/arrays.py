"""The tensor language evaluated on NumPy arrays: the oracles of a program.

Two backends share one implementation of every function of several arguments,
written once over NumPy's structural operations (matmul, sums, transposes,
reshapes, joins and subscripts work on float arrays and on object arrays alike):

* :class:`NumPyBackend`, float64 arrays: central finite differences and random
  projections, and the one place a conditional's branch is decided before the
  tape runs (so the tape, the differences and SymPy all follow the same branch);
* :class:`SymPyArrays`, NumPy object arrays of SymPy expressions, one symbol per
  input element: the exact derivative of every element.

Neither uses TensorFlow, so neither can share a mistake with its autodiff. Where
TensorFlow's gradient picks a side at a tie (``maximum``, ``clip_by_value``) the
expressions here pick the same side.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from runner.language import backends, ops, syntax


def _axes(ndim: int, axis: int | tuple[int, ...] | None) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))


class _Arrays(abc.ABC):
    """What both NumPy backends share: structure, composites, and the branches taken."""

    def __init__(self, branches: Mapping[syntax.IfExp, bool] | None = None,
                 frozen: Mapping[syntax.Func, Any] | None = None) -> None:
        self.branches: dict[syntax.IfExp, bool] = dict(branches or {})
        self.frozen: dict[syntax.Func, Any] = dict(frozen or {})  # stop_gradient -> its value at the point

    # Supplied by each backend.
    @abc.abstractmethod
    def asarray(self, value: Any) -> np.ndarray:
        ...

    @abc.abstractmethod
    def call(self, fn: str, arg: Any) -> Any:
        ...

    @abc.abstractmethod
    def compare(self, op: str, left: Any, right: Any) -> Any:
        ...

    @abc.abstractmethod
    def _where(self, cond: Any, a: Any, b: Any) -> Any:
        ...

    @abc.abstractmethod
    def _extreme(self, x: Any, axis: Any, keepdims: bool, largest: bool) -> Any:
        ...

    # The evaluator's entry points.
    def choose(self, node: syntax.IfExp, test: Callable[[], Any], body: Callable[[], Any],
               orelse: Callable[[], Any]) -> Any:
        """The branch decided the first time this conditional is evaluated, then always that one."""
        if node not in self.branches:
            self.branches[node] = bool(np.asarray(test()).item())
        return body() if self.branches[node] else orelse()

    def stop(self, node: syntax.Func, value: Callable[[], Any]) -> Any:
        """``stop_gradient``: its value where it was first evaluated, a constant thereafter."""
        if node not in self.frozen:
            self.frozen[node] = np.asarray(value(), dtype=np.float64)
        return self.array(self.frozen[node].tolist())

    def subscript(self, value: Any, index: tuple[syntax.IndexItem, ...]) -> Any:
        return self.asarray(value)[tuple(i if isinstance(i, int) else slice(*i) for i in index)]

    def apply(self, fn: str, args: list[Any], options: dict[str, Any]) -> Any:
        if syntax.SIGNATURES[fn].listed:
            return getattr(self, f"_{fn}")([self.asarray(a) for a in args], **options)
        if syntax.SIGNATURES[fn].leading:
            return getattr(self, f"_{fn}")(*options.values(), *args)
        return getattr(self, f"_{fn}")(*args, **options)

    # Structure: the same NumPy calls for floats and for SymPy expressions.
    def _matmul(self, a: Any, b: Any) -> Any:
        return np.matmul(self.asarray(a), self.asarray(b))

    def _reduce_sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return np.sum(self.asarray(x), axis=axis, keepdims=keepdims)

    def _reduce_prod(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return np.prod(self.asarray(x), axis=axis, keepdims=keepdims)

    def _reduce_mean(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        x = self.asarray(x)
        count = int(np.prod([x.shape[a] for a in _axes(x.ndim, axis)]))
        return self._reduce_sum(x, axis, keepdims) / count

    def _reduce_max(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self._extreme(self.asarray(x), axis, keepdims, largest=True)

    def _reduce_min(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self._extreme(self.asarray(x), axis, keepdims, largest=False)

    def _reduce_logsumexp(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self.call("log", self._reduce_sum(self.call("exp", self.asarray(x)), axis, keepdims))

    def _transpose(self, x: Any, perm: tuple[int, ...] | None = None) -> Any:
        return np.transpose(self.asarray(x), perm)

    def _reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        return np.reshape(self.asarray(x), shape)

    def _einsum(self, equation: str, *operands: Any) -> Any:
        return np.einsum(equation, *map(self.asarray, operands))

    def _concat(self, values: list[Any], axis: int) -> Any:
        return np.concatenate(values, axis=axis)

    def _stack(self, values: list[Any], axis: int = 0) -> Any:
        return np.stack(values, axis=axis)

    # Composites, with TensorFlow's choice at ties: maximum's gradient goes to x where x >= y.
    def _maximum(self, a: Any, b: Any) -> Any:
        return self._where(self.compare(">=", a, b), a, b)

    def _minimum(self, a: Any, b: Any) -> Any:
        return self._where(self.compare("<=", a, b), a, b)

    def _clip_by_value(self, t: Any, low: Any, high: Any) -> Any:
        shape = np.shape(self.asarray(t))
        return np.broadcast_to(self.asarray(self._minimum(self._maximum(t, low), high)), shape)

    def _square(self, x: Any) -> Any:
        return self.asarray(x) * self.asarray(x)

    def _softmax(self, x: Any, axis: int = -1) -> Any:
        e = self.call("exp", self.asarray(x))
        return e / self._reduce_sum(e, axis, keepdims=True)

    def _norm(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self.call("sqrt", self.asarray(self._reduce_sum(self._square(x), axis, keepdims)))

    def _adjust_contrast(self, images: Any, factor: Any) -> Any:
        """(x - mean) * factor + mean, the mean over each image's height and width, channel by channel."""
        images = self.asarray(images)
        mean = self._reduce_mean(images, (-3, -2), keepdims=True)
        return (images - mean) * self.asarray(factor) + mean

    def _clip_by_norm(self, t: Any, clip_norm: float, axes: Any = None) -> Any:
        """t rescaled to norm ``clip_norm`` (over ``axes``) where its norm is larger, else t."""
        t = self.asarray(t)
        norm = self._norm(t, axes, keepdims=True)
        return t * clip_norm / self.asarray(self._maximum(norm, self.number(clip_norm)))




class NumPyBackend(_Arrays):
    """float64 NumPy: the forward pass that finite differences and projections difference."""

    @staticmethod
    def number(value: float) -> np.ndarray:
        return np.asarray(value, dtype=np.float64)

    @staticmethod
    def array(values: list[Any]) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)

    @staticmethod
    def asarray(value: Any) -> np.ndarray:
        return np.asarray(value, dtype=np.float64)

    def call(self, fn: str, arg: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(ops.FUNCTIONS[fn].numpy(np, self.asarray(arg)))

    @staticmethod
    def binary(op: str, left: Any, right: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(ops.OPERATORS[op].numpy(np, np.asarray(left), np.asarray(right)))

    @staticmethod
    def compare(op: str, left: Any, right: Any) -> np.ndarray:
        return np.asarray(getattr(np, ops.COMPARISONS[op][1])(np.asarray(left), np.asarray(right)))

    def _where(self, cond: Any, a: Any, b: Any) -> np.ndarray:
        return np.where(cond, self.asarray(a), self.asarray(b))

    def _extreme(self, x: Any, axis: Any, keepdims: bool, largest: bool) -> np.ndarray:
        return (np.max if largest else np.min)(x, axis=axis, keepdims=keepdims)

    def _reduce_logsumexp(self, x: Any, axis: Any = None, keepdims: bool = False) -> np.ndarray:
        x = self.asarray(x)
        top = np.max(x, axis=axis, keepdims=True)
        total = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
        return total if keepdims else np.squeeze(total, axis=_axes(x.ndim, axis))

    def _softmax(self, x: Any, axis: int = -1) -> np.ndarray:
        x = self.asarray(x)
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)


class SymPyArrays(_Arrays, backends.SymPyBackend):
    """NumPy object arrays of SymPy expressions: every element's exact derivative is the oracle."""

    def __init__(self, branches: Mapping[syntax.IfExp, bool],
                 frozen: Mapping[syntax.Func, Any] | None = None) -> None:
        backends.SymPyBackend.__init__(self)
        _Arrays.__init__(self, branches, frozen)

    @staticmethod
    def asarray(value: Any) -> np.ndarray:
        return value if isinstance(value, np.ndarray) else np.asarray(value, dtype=object)

    def array(self, values: list[Any]) -> np.ndarray:
        return np.vectorize(self._sp.Float, otypes=[object])(np.asarray(values, dtype=np.float64))

    def call(self, fn: str, arg: Any) -> Any:
        return backends.SymPyBackend.call(self, fn, self.asarray(arg))

    def binary(self, op: str, left: Any, right: Any) -> Any:
        """Through NumPy, never SymPy's own operators (which would turn the array into a SymPy array);
        a power element by element, through the oracle's bound on what SymPy folds."""
        if op == "**":
            return np.frompyfunc(self.power, 2, 1)(self.asarray(left), self.asarray(right))
        return ops.OPERATORS[op].sympy(self.asarray(left), self.asarray(right))

    def compare(self, op: str, left: Any, right: Any) -> np.ndarray:
        relation = functools.partial(backends.SymPyBackend.compare, self, op)
        return np.vectorize(relation, otypes=[object])(self.asarray(left), self.asarray(right))

    def _where(self, cond: Any, a: Any, b: Any) -> np.ndarray:
        piece = self._sp.Piecewise
        return np.vectorize(lambda c, x, y: piece((x, c), (y, True)), otypes=[object])(
            self.asarray(cond), self.asarray(a), self.asarray(b))

    def _extreme(self, x: Any, axis: Any, keepdims: bool, largest: bool) -> np.ndarray:
        """The largest (smallest) of the reduced elements, row by row: sum of item * [item wins].

        Not SymPy's Max, nor a chain of Piecewise: their derivatives lambdify into
        conditions NumPy cannot select on. Here each condition compares two elements.
        The first of tied elements wins, where TensorFlow splits the gradient between
        them; ties aside, the derivative is the same.
        """
        sp = self._sp

        def pick(*items: Any) -> Any:
            total = 0
            for i, item in enumerate(items):
                beats = [(item > o if largest else item < o) for o in items[:i]]
                beats += [(item >= o if largest else item <= o) for o in items[i + 1:]]
                total += item * sp.Piecewise((1, sp.And(*beats)), (0, True))
            return total

        axes = _axes(x.ndim, axis)
        moved = np.moveaxis(x, axes, range(x.ndim - len(axes), x.ndim))
        rows = moved.reshape(*moved.shape[: x.ndim - len(axes)], -1)
        out = np.empty(rows.shape[:-1], dtype=object)
        for index in np.ndindex(out.shape):
            out[index] = pick(*rows[index])
        return np.expand_dims(out, axes) if keepdims else out

    def input_symbols(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """One real symbol per element, named like ``w[0, 1]``; a scalar's by its name alone."""
        if not shape:
            return np.asarray(self._sp.Symbol(name, real=True), dtype=object)
        flat = [self._sp.Symbol(f"{name}[{', '.join(map(str, i))}]", real=True) for i in np.ndindex(shape)]
        return np.asarray(flat, dtype=object).reshape(shape)

