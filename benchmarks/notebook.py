"""Warm calls of the Python API against hand-written notebook cells, in one process.

A notebook imports TensorFlow once and then expects every cell to answer at
once, so what counts is a warm call: after one call of each kind has loaded
TensorFlow, SymPy and Matplotlib, each item alternates a ``runner.run(...)``
with a hand-written cell that computes the same thing the same way (the tape,
SymPy's derivative evaluated at the inputs, ``tf.test.compute_gradient``, the
comparisons, a JSON of the gradients; for sigmoid also the figure, rendered to
PNG as Jupyter's inline backend does). The cell builds its SymPy derivative on
every call, as a cell re-run does; the runner keeps what depends only on the
expression. Prints one JSON object for benchmarks/run.py.

Usage: python benchmarks/notebook.py CALLS
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from plain_tf import tf  # noqa: E402

from runner import run  # noqa: E402

DELTA = 1 / 1024  # conf/checks/default.yaml's float32 delta


def _close(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    return bool(np.all(np.isfinite(got)) and np.max(np.abs(got - want)) <= atol + rtol * np.max(np.abs(want)))


def cell(function: str, x: np.ndarray) -> dict[str, Any]:
    """y = function(x) on a tape, checked against SymPy and central differences, as JSON."""
    import sympy as sp

    symbol = sp.Symbol("x", real=True)
    expression = {"x**2": symbol**2, "sigmoid(x)": 1 / (1 + sp.exp(-symbol))}[function]
    tf_fn = {"x**2": lambda t: t**2, "sigmoid(x)": tf.sigmoid}[function]
    variable = tf.Variable(tf.constant(x, tf.float32))
    with tf.GradientTape() as tape:
        y = tf_fn(variable)
    grad = tape.gradient(y, variable).numpy()
    want = np.broadcast_to(sp.lambdify([symbol], sp.diff(expression, symbol), "numpy")(x), x.shape)
    _, (numerical,) = tf.test.compute_gradient(lambda t: tf_fn(t), [tf.constant(x, tf.float64)], delta=DELTA)
    fd = numerical.sum(axis=0).reshape(x.shape)
    checks = [_close(grad, want, 1e-5, 1e-6), _close(grad, fd, 1e-2, 1e-2)]
    return {"gradient": grad.tolist(), "values": y.numpy().tolist(), "checks": checks}


def figure_png(x: np.ndarray, values: list[float], grad: list[float]) -> bytes:
    """The function and its derivative, rendered to PNG (what Jupyter displays)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=110)
    ax = fig.add_subplot()
    ax.plot(x, values, label="y = sigmoid(x)")
    ax.plot(x, grad, label="dy/dx")
    ax.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def sigmoid_cell() -> str:
    x = np.linspace(-10.0, 10.0, 201)
    found = cell("sigmoid(x)", x)
    png = figure_png(x, found["values"], found["gradient"])
    return json.dumps(found) + str(len(png))


def alternate(calls: int, runner: Callable[[int], Any], hand: Callable[[int], Any]) -> dict[str, list[float]]:
    """Warm both up, then time them call by call, alternating."""
    runner(-1)
    hand(-1)
    times: dict[str, list[float]] = {"runner": [], "cell": []}
    for i in range(calls):
        for name, fn in (("runner", runner), ("cell", hand)):
            started = time.perf_counter()
            fn(i)
            times[name].append(time.perf_counter() - started)
    return times


def main() -> None:
    calls = int(sys.argv[1])
    x3 = np.asarray(3.0)
    found = {
        "basic": alternate(calls, lambda i: run("basic"),
                           lambda i: json.dumps(cell("x**2", x3))),
        "slider": alternate(calls, lambda i: run("basic", overrides=[f"scenario.inputs.x.value={1 + i / 8}"]),
                            lambda i: json.dumps(cell("x**2", np.asarray(1 + i / 8)))),
        "sigmoid": alternate(calls, lambda i: run("sigmoid")._repr_html_(), lambda i: sigmoid_cell()),
    }
    print(json.dumps(found))


if __name__ == "__main__":
    main()
