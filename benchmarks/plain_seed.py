"""The five seed scenarios by hand, in plain TensorFlow: the baseline the runner is measured against.

For each scenario it computes the same gradients, verifies them the same way (SymPy's
derivative or the NumPy closed form, and ``tf.test.compute_gradient``) and writes the
same kinds of file: a ``results.json`` and a ``report.md`` per scenario, and the
sigmoid PNG. ``--no-checks`` skips the verification, for the gradients-only figure.

Prints {"tf_import_s": ...}: what importing TensorFlow cost this process.

Usage: python benchmarks/plain_seed.py OUT_DIR [--no-checks] [--only basic]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from plain_tf import IMPORT_SECONDS, tf

CHECKS = "--no-checks" not in sys.argv
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None


def verify(grad, fn, arg, oracle) -> list[dict]:
    """The runner's two checks by hand: an oracle, and central differences."""
    if not CHECKS or grad is None:
        return []
    _, (numerical,) = tf.test.compute_gradient(fn, [arg], delta=1 / 1024)
    fd = numerical.sum(axis=0).reshape(np.shape(grad))
    return [{"name": name, "max_abs_err": float(np.max(np.abs(np.asarray(grad) - want)))}
            for name, want in (("analytic", oracle), ("finite differences", fd))]


def sympy_derivative(text: str, values: np.ndarray) -> np.ndarray | None:
    if not CHECKS:
        return None
    import sympy as sp

    x = sp.Symbol("x", real=True)
    f = {"x**2": x**2, "sigmoid(x)": 1 / (1 + sp.exp(-x)), "x**4": x**4}[text]
    return sp.lambdify([x], sp.diff(f, x), "numpy")(values.astype(np.float64))


def write(out: Path, name: str, gradients: dict, checks: list[dict]) -> None:
    run = out / name
    run.mkdir(parents=True, exist_ok=True)
    plain = {k: (None if v is None else np.asarray(v).tolist()) for k, v in gradients.items()}
    record = {"scenario": name, "status": "ok", "gradients": plain, "checks": checks}
    (run / "results.json").write_text(json.dumps(record, indent=2))
    rows = "\n".join(f"| {k} | {v} |" for k, v in plain.items())
    (run / "report.md").write_text(f"# {name}\n\n| gradient | value |\n|---|---|\n{rows}\n")


def main(out: Path) -> None:
    x = tf.Variable(3.0)
    with tf.GradientTape() as tape:
        y = x**2
    g = tape.gradient(y, x)
    write(out, "basic", {"dy/dx": g},
          verify(g, lambda t: t**2, tf.constant(3.0), sympy_derivative("x**2", np.array(3.0))))
    if ONLY == "basic":
        return

    c = tf.constant(3.0)
    with tf.GradientTape() as tape:
        y = c**2
    write(out, "watch", {"dy/dx": tape.gradient(y, c)}, [])

    xs = tf.Variable(tf.linspace(-10.0, 10.0, 201))
    with tf.GradientTape() as tape:
        y = tf.sigmoid(xs)
    d = tape.gradient(y, xs)
    write(out, "sigmoid", {"dy/dx": d},
          verify(d, tf.sigmoid, tf.constant(xs.numpy()), sympy_derivative("sigmoid(x)", xs.numpy())))
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(xs.numpy(), y.numpy(), label="y = sigmoid(x)", linewidth=2)
    ax.plot(xs.numpy(), d.numpy(), label="dy/dx", linewidth=2)
    ax.legend()
    fig.savefig(out / "sigmoid" / "sigmoid.png")

    rng = np.random.default_rng(0)
    xb_np = rng.standard_normal((4, 3))
    w_np, b_np = rng.standard_normal((3, 2)) / np.sqrt(3), 0.1 * rng.standard_normal(2)
    xb = tf.constant(xb_np, tf.float32)
    w, b = tf.Variable(w_np.astype(np.float32)), tf.Variable(b_np.astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(xb @ w + b))
    dw, db = tape.gradient(loss, [w, b])
    checks = []
    if CHECKS:
        dy = 2 * (xb_np @ w_np + b_np) / 8
        checks = verify(dw, lambda t: tf.reduce_mean(tf.square(xb @ t + b)), tf.constant(w), xb_np.T @ dy)
        checks += verify(db, lambda t: tf.reduce_mean(tf.square(xb @ w + t)), tf.constant(b), dy.sum(0))
    write(out, "linear", {"dloss/dW": dw, "dloss/db": db}, checks)

    x = tf.Variable(3.0)
    with tf.GradientTape(persistent=True) as tape:
        y = x**2
        z = y**2
    gy, gz = tape.gradient(y, x), tape.gradient(z, x)
    del tape
    three = tf.constant(3.0)
    checks = verify(gy, lambda t: t**2, three, sympy_derivative("x**2", np.array(3.0)))
    checks += verify(gz, lambda t: (t**2) ** 2, three, sympy_derivative("x**4", np.array(3.0)))
    write(out, "persistent", {"dy/dx": gy, "dz/dx": gz}, checks)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    print(json.dumps({"tf_import_s": IMPORT_SECONDS}))
