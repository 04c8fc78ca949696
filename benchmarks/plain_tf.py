"""TensorFlow for the baselines, imported the way the runner imports it (runner/tfenv.py).

The runner keeps Keras out of TensorFlow's import (about 1.5 s per process); the
baselines do the same, so every ratio compares the work around TensorFlow and
not that saving. ``IMPORT_SECONDS`` is what the import cost this process.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_started = time.perf_counter()
_deferred = "keras" not in sys.modules
if _deferred:
    sys.modules["keras"] = None  # type: ignore[assignment]
import tensorflow as tf  # noqa: E402

if _deferred:
    del sys.modules["keras"]
IMPORT_SECONDS = time.perf_counter() - _started

__all__ = ["IMPORT_SECONDS", "tf"]
