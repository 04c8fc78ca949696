"""What every routine shares: the run's dtype, and its tape step compiled and timed.

``compile=eager`` runs the step as Python; ``function`` traces it once into a
``tf.function`` graph; ``xla`` also compiles that graph with XLA
(``jit_compile=True``). Outside eager, the first call includes tracing (and XLA
compilation), so the step is called twice and both times are recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from runner.schema import RunConfig
from runner.tfenv import tf


def tf_dtype(run: RunConfig) -> tf.DType:
    return tf.as_dtype(run.dtype)


def check_dtype(run: RunConfig) -> tf.DType:
    """The dtype finite differences are computed in: 16-bit floats are too coarse for them."""
    return tf.float64 if run.dtype == "float64" else tf.float32


def compiled(step: Callable[..., Any], run: RunConfig) -> Callable[..., Any]:
    if run.compile == "eager":
        return step
    return tf.function(step, jit_compile=run.compile == "xla")


def timed_step(step: Callable[..., Any], run: RunConfig, *args: Any) -> tuple[Any, dict[str, float]]:
    """Run ``step`` under the run's compile mode; its result and timings (seconds)."""
    fn = compiled(step, run)
    started = time.perf_counter()
    result = fn(*args)
    timings = {"tape": time.perf_counter() - started}
    if run.compile != "eager":
        started = time.perf_counter()
        result = fn(*args)
        timings["tape_repeat"] = time.perf_counter() - started
    return result, timings
