"""Every entry of the op registry (runner/language/ops.py): its TensorFlow, NumPy, SymPy and plain-float
implementations agree at random points, on non-square shapes; the language knows exactly these."""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pytest
import sympy as sp

from runner.language import ops, syntax
from runner.tfenv import tf

SHAPE = (3, 4)  # non-square: a transposed operand or a swapped axis would not go unnoticed


def _sympy_values(make: Any, *arrays: np.ndarray) -> np.ndarray:
    """SymPy's implementation at each element (evaluated at 30 digits, then to float64)."""
    flat = [a.reshape(-1) for a in np.broadcast_arrays(*arrays)]
    found = [float(sp.N(make(*(sp.Float(float(v), 30) for v in values)), 30))
             for values in zip(*flat, strict=True)]
    return np.array(found).reshape(np.broadcast_shapes(*(a.shape for a in arrays)))


def test_the_language_calls_exactly_the_registered_functions() -> None:
    assert tuple(ops.FUNCTIONS) == syntax.FUNCTIONS
    assert set(ops.OPERATORS) == {"+", "-", "*", "/", "**", "@"}
    assert set(ops.COMPARISONS) == {"<", "<=", ">", ">=", "==", "!="}


@pytest.mark.parametrize("name", list(ops.FUNCTIONS))
def test_a_functions_four_implementations_agree(name: str) -> None:
    entry = ops.FUNCTIONS[name]
    low, high = entry.domain
    x = np.random.default_rng(zlib.crc32(name.encode())).uniform(low, high, SHAPE)
    got = {
        "tensorflow": _path(entry.tensorflow)(tf.constant(x, tf.float64)).numpy(),
        "numpy": entry.numpy(np, x),
        "sympy": _sympy_values(lambda v: entry.sympy(sp, v), x),
        "floats": np.vectorize(entry.floats)(x),
    }
    for backend, values in got.items():
        assert values.shape == SHAPE, backend
        np.testing.assert_allclose(values, got["sympy"], rtol=1e-13, atol=1e-15, err_msg=f"{name}: {backend}")


def _path(path: str) -> Any:
    """The TensorFlow function a registry entry names, as the runner and its snippets find it."""
    found: Any = tf
    for part in path.split("."):
        found = getattr(found, part)
    return found


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**"])
def test_an_elementwise_operators_implementations_agree(op: str) -> None:
    entry = ops.OPERATORS[op]
    rng = np.random.default_rng(zlib.crc32(op.encode()))
    a = rng.uniform(0.5, 2.0, SHAPE)  # positive bases: a real power
    b = rng.uniform(0.5, 3.0, SHAPE[1:])  # broadcast along the rows: operand order matters
    got = {
        "tensorflow": entry.tensorflow(tf, tf.constant(a), tf.constant(b)).numpy(),
        "numpy": entry.numpy(np, a, b),
        "sympy": _sympy_values(entry.sympy, a, b),
        "floats": np.vectorize(entry.floats)(a, b),
    }
    swapped = _sympy_values(entry.sympy, np.broadcast_to(b, SHAPE), a)
    for backend, values in got.items():
        np.testing.assert_allclose(values, got["sympy"], rtol=1e-13, err_msg=f"{op}: {backend}")
    if op != "+" and op != "*":  # and each would tell its operands apart
        assert not np.allclose(swapped, got["sympy"])


def test_matmul_implementations_agree_on_non_square_operands() -> None:
    entry = ops.OPERATORS["@"]
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    want = np.array([[sum(a[i, k] * b[k, j] for k in range(4)) for j in range(2)]  # by hand
                     for i in range(3)])
    got = {
        "tensorflow": entry.tensorflow(tf, tf.constant(a), tf.constant(b)).numpy(),
        "numpy": entry.numpy(np, a, b),
        "sympy": np.asarray(entry.sympy(np.vectorize(sp.Float, otypes=[object])(a),
                                        np.vectorize(sp.Float, otypes=[object])(b)), dtype=np.float64),
    }
    for backend, values in got.items():
        assert values.shape == (3, 2), backend
        np.testing.assert_allclose(values, want, rtol=1e-12, err_msg=backend)


@pytest.mark.parametrize("op", list(ops.COMPARISONS))
def test_a_comparisons_implementations_agree_ties_included(op: str) -> None:
    tensorflow, numpy, sympy = ops.COMPARISONS[op]
    a = np.array([[-2.0, 0.0, 1.0, 2.0], [0.5, -1.0, 3.0, 0.0], [1.0, 1.0, -2.0, 4.0]])
    b = np.array([[-2.0, 1.0, 0.0, 2.0], [0.5, 0.0, 3.0, -1.0], [2.0, 1.0, -3.0, 4.0]])  # ties and both ways
    want = np.array([[{"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y, "==": x == y, "!=": x != y}[op]
                      for x, y in zip(ra, rb, strict=True)] for ra, rb in zip(a, b, strict=True)])
    assert (a == b).any() and (a != b).any()
    np.testing.assert_array_equal(getattr(tf.math, tensorflow)(a, b).numpy(), want)
    np.testing.assert_array_equal(getattr(np, numpy)(a, b), want)
    relation = getattr(sp, sympy)
    exact = np.vectorize(lambda x, y: bool(relation(sp.Float(x), sp.Float(y))))(a, b)
    np.testing.assert_array_equal(exact, want)


def test_the_float_implementations_never_overflow_early() -> None:
    assert ops.FUNCTIONS["sigmoid"].floats(-1000.0) == 0.0 and ops.FUNCTIONS["sigmoid"].floats(1000.0) == 1.0
    assert ops.FUNCTIONS["softplus"].floats(1000.0) == 1000.0
    assert ops.FUNCTIONS["softplus"].floats(-1000.0) == pytest.approx(math.exp(-1000.0), abs=1e-300)
