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


with _stderr_silenced():
    import tensorflow as tf

    # Probing devices here keeps the one-time CUDA messages inside the silenced block.
    DEVICES = [d.name for d in tf.config.list_physical_devices()]
    tf.config.experimental.enable_op_determinism()


def seed(value: int) -> None:
    """Seed TensorFlow's global generator, so a job's random ops repeat exactly."""
    tf.random.set_seed(value)


__all__ = ["DEVICES", "seed", "tf"]
