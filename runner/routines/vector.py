"""What ``jacobian`` and ``forward_mode`` share: one function F: R^n -> R^m and its oracles.

The scenario's scalar inputs, in order, are the components of one vector X, and
its outputs, in order, the components of F(X). Giving the tape a single source
and a single target is what makes the Jacobian one (m, n) matrix rather than a
grid of scalar gradients: row i is the gradient of output i, column j the
derivative along input j. SymPy's ``Matrix.jacobian`` of the same expressions is
the analytic oracle, and ``tf.test.compute_gradient`` the numerical one: it
returns the whole finite-difference Jacobian, one column per perturbed input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from runner import expr, snippets
from runner.checks import compare, finite
from runner.result import Outcome
from runner.routines.support import check_dtype
from runner.routines.tape import numeric
from runner.schema import RunConfig, VectorScenario
from runner.tfenv import tf

ZERO = tf.UnconnectedGradients.ZERO  # an output that reads no input has a zero row, not None


class VectorFunction:
    """F(X) from a scenario's named scalar inputs and output expressions."""

    def __init__(self, scenario: VectorScenario) -> None:
        import sympy as sp

        self.names = list(scenario.inputs)
        self.outputs = dict(scenario.outputs)
        self.trees = {name: expr.parse(text, self.names) for name, text in self.outputs.items()}
        self.point = np.array([spec.value for spec in scenario.inputs.values()], dtype=np.float64)
        sympy = expr.SymPyBackend()
        self.symbols = list(sympy.symbols(self.names).values())
        env = dict(zip(self.names, self.symbols, strict=True))
        rows = [expr.evaluate(tree, env, sympy) for tree in self.trees.values()]
        self.symbolic = sp.Matrix(rows).jacobian(sp.Matrix(self.symbols))
        self._entries = [[numeric(self.symbols, entry) for entry in row]
                         for row in self.symbolic.tolist()]

    @property
    def shape(self) -> tuple[int, int]:
        """(m, n): outputs by inputs, the Jacobian's shape."""
        return len(self.outputs), len(self.names)

    def tensorflow(self, dtype: tf.DType) -> Callable[[tf.Tensor], tf.Tensor]:
        """F on tensors: X of shape (..., n) to F(X) of shape (..., m)."""
        backend = expr.TensorFlowBackend(dtype)
        constant = [not expr.names(tree) for tree in self.trees.values()]

        # Plain Python building ops: AutoGraph has no control flow to convert here, and
        # would warn that it cannot convert expr.evaluate's match statement.
        @tf.autograph.experimental.do_not_convert
        def F(X: tf.Tensor) -> tf.Tensor:
            env = dict(zip(self.names, tf.unstack(X, axis=-1), strict=True))
            rows = [expr.evaluate(tree, env, backend) for tree in self.trees.values()]
            return tf.stack([tf.broadcast_to(row, tf.shape(X)[:-1]) if fixed else row
                             for row, fixed in zip(rows, constant, strict=True)], axis=-1)

        return F

    def jacobian_at(self, points: np.ndarray) -> np.ndarray:
        """SymPy's Jacobian in float64 at X of shape (..., n): shape (..., m, n)."""
        points = np.asarray(points, dtype=np.float64)
        with np.errstate(all="ignore"):
            cells = [[np.broadcast_to(fn(*np.moveaxis(points, -1, 0)), points.shape[:-1])
                      for fn in row] for row in self._entries]
        return np.moveaxis(np.asarray(cells, dtype=np.float64), (0, 1), (-2, -1))

    def numerical_jacobian(self, point: np.ndarray, run: RunConfig) -> np.ndarray:
        """Central differences of every output along every input: shape (m, n)."""
        dtype = check_dtype(run)
        _, (numerical,) = tf.test.compute_gradient(
            self.tensorflow(dtype), [tf.constant(point, dtype)], delta=run.tolerances().delta)
        return np.asarray(numerical, dtype=np.float64)

    def code(self, dtype: str) -> str:
        """``def F(X)`` as source, building the same ops in the same order."""
        backend = expr.CodeBackend(dtype)
        env = {name: expr.Code(name) for name in self.names}
        lines = ["def F(X):", f"    [{', '.join(self.names)}] = tf.unstack(X, axis=-1)",
                 "    return tf.stack(["]
        for (name, text), tree in zip(self.outputs.items(), self.trees.values(), strict=True):
            code = expr.evaluate(tree, env, backend)
            if not expr.names(tree):
                code = f"tf.broadcast_to({code}, tf.shape(X)[:-1])"
            lines.append(f"        {code},  # {name}: {text}")
        lines.append("    ], axis=-1)")
        return "\n".join(lines)

    def snippet_head(self, dtype: str) -> str:
        """The header, X at the scenario's point, and F: what every vector snippet starts with."""
        return "\n".join([snippets.HEADER, f"X = tf.constant({self.point.tolist()!r}, tf.{dtype})",
                          "", "", self.code(dtype), "", ""])


def verify_jacobian(
    outcome: Outcome, label: str, got: np.ndarray, want: np.ndarray, numerical: np.ndarray | None,
    run: RunConfig,
) -> None:
    """finite, against SymPy and (when given) against finite differences, under the run's tolerances."""
    outcome.checks.append(finite(f"{label} finite", got))
    if run.checks.analytic:
        outcome.checks.append(compare(f"{label} vs SymPy", got, want, run.tolerances().analytic))
    if numerical is not None:
        outcome.checks.append(compare(f"{label} vs finite differences", got, numerical,
                                      run.tolerances().finite_differences))


def oracles(vf: VectorFunction, point: np.ndarray, run: RunConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """SymPy's Jacobian at ``point`` and, if the run checks them, the finite differences there."""
    numerical = vf.numerical_jacobian(point, run) if run.checks.finite_differences else None
    return vf.jacobian_at(point), numerical


def input_values(vf: VectorFunction, X: Any) -> dict[str, np.ndarray]:
    """Each named input as the run's dtype holds it."""
    return dict(zip(vf.names, np.asarray(X), strict=True))
