"""TensorFlow, imported once, quietly and deterministically.

Every module that needs TensorFlow imports ``tf`` from here, so its start-up
chatter (CUDA probes on machines without a GPU, oneDNN notices) stays off the
console and op determinism is on before the first op runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: TensorFlow's C++ start-up logs bypass Python."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _keras_deferred() -> Iterator[None]:
    """Keep Keras out of TensorFlow's import.

    With Keras installed (TensorFlow's wheel depends on it), ``import tensorflow``
    loads Keras eagerly, and Keras loads Matplotlib: about 1.5 s and 50 MB per
    process that no routine uses. A ``None`` entry in ``sys.modules`` makes that
    optional import fail at once, which TensorFlow tolerates; removing the entry
    afterwards leaves ``tf.keras`` and ``import keras`` working on first use.
    """
    blocked = "keras" not in sys.modules
    if blocked:
        sys.modules["keras"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if blocked:
            del sys.modules["keras"]


with _stderr_silenced(), _keras_deferred():
    import tensorflow as tf

    # Probing devices here keeps the one-time CUDA messages inside the silenced block.
    DEVICES = [d.name for d in tf.config.list_physical_devices()]
    tf.config.experimental.enable_op_determinism()
    # The eager context is made by the first op. Make it here, before any job's time limit runs:
    # a limit firing inside that first op would leave it half made for every later job.
    tf.constant(0.0)


def seed(value: int) -> None:
    """Seed TensorFlow's global generator, so a job's random ops repeat exactly."""
    tf.random.set_seed(value)


__all__ = ["DEVICES", "seed", "tf"]
