"""Standalone TensorFlow programs that reproduce a run's gradients.

Each report carries one: plain ``tf.GradientTape`` code with no import of the
runner, which prints the gradients as JSON. It builds the same ops in the same
order from the same values, so it prints the numbers in ``results.json``.
"""

from __future__ import annotations

from runner.scenarios.inputs import ProgramInput
from runner.scenarios.schema import LinearScenario, Loss

HEADER = """\
import json
import os

import numpy as np

# TensorFlow's C++ start-up lines (CUDA probes where there is no GPU) bypass Python's logging:
# file descriptor 2 goes to /dev/null while TensorFlow starts and finds its devices.
_stderr = os.dup(2)
os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
try:
    import tensorflow as tf

    tf.config.list_physical_devices()
finally:
    os.dup2(_stderr, 2)

tf.config.experimental.enable_op_determinism()
"""

FOOTER = """\

def plain(value):
    \"\"\"NaN and infinities as results.json writes them.\"\"\"
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and (value != value or abs(value) == float("inf")):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    return value


print(json.dumps({k: None if g is None else plain(g.numpy().tolist()) for k, g in gradients.items()}))
"""


def value_code(spec: ProgramInput) -> str:
    if spec.linspace is not None:
        lin = spec.linspace
        return f"np.linspace({lin.start!r}, {lin.stop!r}, {lin.num})"
    return repr(spec.value)


def linear(scenario: LinearScenario, seed: int, dtype: str) -> str:
    """The linear routine as a script, drawing the same seeded data."""
    mse = scenario.loss is Loss.mse
    return "\n".join([
        HEADER,
        f"rng = np.random.default_rng({seed})",
        f"x = tf.constant(rng.standard_normal(({scenario.batch}, {scenario.in_features})), tf.{dtype})",
        f"W = tf.Variable(tf.constant(rng.standard_normal(({scenario.in_features}, "
        f"{scenario.out_features})) / np.sqrt({scenario.in_features}), tf.{dtype}))",
        f"b = tf.Variable(tf.constant(0.1 * rng.standard_normal({scenario.out_features}), tf.{dtype}))",
        *([f"targets = tf.constant(rng.standard_normal(({scenario.batch}, "
           f"{scenario.out_features})), tf.{dtype})"] if mse else []),
        "",
        "with tf.GradientTape() as tape:",
        "    y = tf.matmul(x, W) + b",
        f"    loss = tf.reduce_mean(tf.square({'y - targets' if mse else 'y'}))",
        "dW, db = tape.gradient(loss, [W, b])",
        'gradients = {"dloss/dW": dW, "dloss/db": db}',
        FOOTER,
    ])
