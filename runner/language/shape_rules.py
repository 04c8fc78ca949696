"""Every node's shape, known from the config alone, before any tensor exists."""

from __future__ import annotations

import math
from collections.abc import Mapping

from runner.errors import ConfigError
from runner.language.syntax import (
    Array,
    BinOp,
    Call,
    Compare,
    Expr,
    Func,
    IfExp,
    Index,
    IndexItem,
    Name,
    Neg,
    Num,
    children,
)

MAX_RANK = 64  # dimensions of one tensor: NumPy's own limit, so every oracle can hold it


class ShapeError(ConfigError):
    """Two shapes an operation cannot combine, found before any tensor exists."""


def infer_shape(expr: Expr, shapes: Mapping[str, tuple[int, ...]], sizes: list[int] | None = None
                ) -> tuple[int, ...]:
    """The shape of ``expr`` given its names' shapes, by TensorFlow's rules, without computing anything.

    Raises :class:`ShapeError` naming the operation and the shapes it cannot combine.
    ``sizes``, when given, collects the element count of every node (one tensor each).
    """
    kids = [infer_shape(child, shapes, sizes) for child in children(expr)]
    match expr:
        case Num():
            shape: tuple[int, ...] = ()
        case Name(id=i):
            shape = tuple(shapes.get(i, ()))
        case Array(shape=literal):
            shape = literal
        case Neg() | Call():
            shape = kids[0]
        case BinOp(op="@"):
            shape = _matmul_shape(expr, *kids)
        case BinOp() | Compare():
            shape = broadcast(expr, kids)
        case IfExp():
            if kids[0]:
                raise ShapeError(f"{_show(expr)}: a conditional needs a scalar condition, got {kids[0]}")
            if kids[1] != kids[2]:
                raise ShapeError(f"{_show(expr)}: both branches need one shape, got {kids[1]} and {kids[2]}")
            shape = kids[1]
        case Index(index=index):
            shape = _index_shape(expr, kids[0], index)
        case Func():
            shape = _function_shape(expr, kids)
    check_shape(_show(expr), shape)
    if sizes is not None:
        sizes.append(math.prod(shape))
    return shape


def check_shape(what: str, shape: tuple[int, ...]) -> None:
    """Refuse a shape no oracle can hold (more than :data:`MAX_RANK` dimensions, NumPy's limit) or one
    with no elements (an empty slice: nothing to differentiate, and ops such as softmax fail on it)."""
    if len(shape) > MAX_RANK:
        raise ShapeError(f"{what} has {len(shape)} dimensions; the limit is {MAX_RANK} (NumPy's)")
    if 0 in shape:
        raise ShapeError(f"{what} has shape {shape}: an empty tensor, with nothing to differentiate")


def _show(expr: Expr) -> str:
    text = str(expr)
    return text[1:-1] if text.startswith("(") and text.endswith(")") else text


def broadcast(expr: Expr, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    rank = max(map(len, shapes))
    padded = [(1,) * (rank - len(s)) + s for s in shapes]
    out = []
    for dims in zip(*padded, strict=True):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            listed = " and ".join(str(s) for s in shapes)
            raise ShapeError(f"{_show(expr)} cannot broadcast shapes {listed}")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _matmul_shape(expr: Expr, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
        why = " (matmul needs two or more axes on each side)" if min(len(a), len(b)) < 2 else ""
        raise ShapeError(f"{_show(expr)} cannot multiply shapes {a} and {b}{why}")
    batch = broadcast(expr, [a[:-2], b[:-2]]) if a[:-2] or b[:-2] else ()
    return (*batch, a[-2], b[-1])


def _axes(expr: Expr, shape: tuple[int, ...], axis: int | tuple[int, ...] | None) -> tuple[int, ...]:
    """Axes made non-negative; every axis when ``axis`` is None."""
    if axis is None:
        return tuple(range(len(shape)))
    found = []
    for a in (axis,) if isinstance(axis, int) else axis:
        if not -len(shape) <= a < len(shape):
            raise ShapeError(f"{_show(expr)}: axis {a} is out of range for shape {shape}")
        found.append(a % len(shape))
    if len(set(found)) != len(found):
        raise ShapeError(f"{_show(expr)}: axis {axis} repeats an axis")
    return tuple(found)


def _index_shape(expr: Expr, shape: tuple[int, ...], index: tuple[IndexItem, ...]) -> tuple[int, ...]:
    if len(index) > len(shape):
        raise ShapeError(f"{_show(expr)}: {len(index)} indices for shape {shape}")
    out = []
    for item, size in zip(index, shape, strict=False):
        if isinstance(item, int):
            if not -size <= item < size:
                raise ShapeError(f"{_show(expr)}: index {item} is out of range for shape {shape}")
        else:
            out.append(len(range(*slice(*item).indices(size))))
    return (*out, *shape[len(index):])


def _function_shape(expr: Func, kids: list[tuple[int, ...]]) -> tuple[int, ...]:
    fn, opts = expr.fn, dict(expr.options)
    if fn == "matmul":
        return _matmul_shape(expr, *kids)
    if fn.startswith("reduce_") or fn == "norm":
        shape = kids[0]
        axes = _axes(expr, shape, opts.get("axis"))
        if fn == "norm" and len(axes) > 2 and "axis" in opts:
            raise ShapeError(f"{_show(expr)}: norm takes one axis or a pair of axes")
        if opts.get("keepdims"):
            return tuple(1 if i in axes else d for i, d in enumerate(shape))
        return tuple(d for i, d in enumerate(shape) if i not in axes)
    if fn in ("where", "maximum", "minimum", "square", "stop_gradient", "numpy"):
        return broadcast(expr, kids)
    if fn == "clip_by_value":
        if broadcast(expr, kids) != kids[0]:
            raise ShapeError(f"{_show(expr)}: the bounds' shapes {kids[1]} and {kids[2]} must broadcast "
                             f"to the tensor's {kids[0]}")
        return kids[0]
    if fn == "softmax":
        _axes(expr, kids[0], opts.get("axis", -1))
        return kids[0]
    if fn == "adjust_contrast":
        if len(kids[0]) < 3 or kids[1] != ():
            raise ShapeError(f"{_show(expr)}: images have at least 3 axes (height, width, channels) and the "
                             f"contrast factor is a scalar, got {kids[0]} and {kids[1]}")
        return kids[0]
    if fn == "clip_by_norm":
        _axes(expr, kids[0], opts.get("axes"))
        return kids[0]
    if fn == "transpose":
        perm = opts.get("perm", tuple(reversed(range(len(kids[0])))))
        if sorted(perm) != list(range(len(kids[0]))):
            raise ShapeError(f"{_show(expr)}: perm {list(perm)} does not permute the axes of {kids[0]}")
        return tuple(kids[0][p] for p in perm)
    if fn == "reshape":
        return _reshape(expr, kids[0], opts["shape"])
    if fn == "einsum":
        return _einsum_shape(expr, opts["equation"], kids)
    axis = opts.get("axis", 0)
    first = kids[0]
    if fn == "stack":
        if any(k != first for k in kids):
            raise ShapeError(f"{_show(expr)}: stack needs one shape, got {' and '.join(map(str, kids))}")
        (a,) = _axes(expr, (*first, 1), axis)
        return (*first[:a], len(kids), *first[a:])
    (a,) = _axes(expr, first, axis)  # concat
    if any(len(k) != len(first) or k[:a] + k[a + 1:] != first[:a] + first[a + 1:] for k in kids):
        raise ShapeError(f"{_show(expr)} cannot join shapes {' and '.join(map(str, kids))} along axis {axis}")
    return (*first[:a], sum(k[a] for k in kids), *first[a + 1:])


def _reshape(expr: Expr, shape: tuple[int, ...], target: tuple[int, ...]) -> tuple[int, ...]:
    size = math.prod(shape)
    unknown = [i for i, d in enumerate(target) if d == -1]
    if len(unknown) > 1 or any(d < -1 for d in target):
        raise ShapeError(f"{_show(expr)}: shape {list(target)} may hold one -1 and sizes >= 0")
    known = math.prod(d for d in target if d != -1)
    if unknown and known and size % known == 0:
        return tuple(size // known if d == -1 else d for d in target)
    if unknown or known != size:
        raise ShapeError(f"{_show(expr)} cannot reshape {shape} ({size} elements) into {list(target)}")
    return tuple(target)


def _einsum_shape(expr: Func, equation: str, kids: list[tuple[int, ...]]) -> tuple[int, ...]:
    """Each operand's letters name its axes; a letter is one length wherever it appears."""
    inputs, output = equation.split("->")
    operands = inputs.split(",")
    if len(operands) != len(kids):
        raise ShapeError(f"{_show(expr)}: the equation has {len(operands)} operand(s), given {len(kids)}")
    sizes: dict[str, int] = {}
    for letters, shape in zip(operands, kids, strict=True):
        if len(letters) != len(shape):
            raise ShapeError(f"{_show(expr)}: {letters!r} names {len(letters)} axes of a tensor of shape "
                             f"{shape}")
        for letter, size in zip(letters, shape, strict=True):
            if sizes.setdefault(letter, size) != size:
                raise ShapeError(f"{_show(expr)}: {letter!r} is {sizes[letter]} long in one place and {size} "
                                 "in another")
    return tuple(sizes[letter] for letter in output)
