"""Plain TensorFlow: sigmoid and its derivative over N points, a JSON summary and a plot.

The baseline for the runner's sigmoid at 10**7 points. Usage: python plain_curve.py OUT_DIR N
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf


def main(out: Path, n: int) -> None:
    x = tf.Variable(tf.constant(np.linspace(-10.0, 10.0, n), tf.float32))
    with tf.GradientTape() as tape:
        y = tf.sigmoid(x)
    d = tape.gradient(y, x).numpy()
    out.mkdir(parents=True, exist_ok=True)
    summary = {"shape": list(d.shape), "min": float(d.min()), "max": float(d.max()), "mean": float(d.mean())}
    (out / "results.json").write_text(json.dumps({"dy/dx": summary}))
    from matplotlib.figure import Figure

    stride = max(1, n // 5000)
    fig = Figure(figsize=(7, 4.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(x.numpy()[::stride], y.numpy()[::stride], label="y")
    ax.plot(x.numpy()[::stride], d[::stride], label="dy/dx")
    ax.legend()
    fig.savefig(out / "sigmoid.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
