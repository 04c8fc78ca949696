"""What every routine shares: the run's dtype, and its tape step compiled and timed.

``compile=eager`` runs the step as Python; ``function`` traces it once into a
``tf.function`` graph; ``xla`` also compiles that graph with XLA
(``jit_compile=True``). Outside eager, the first call includes tracing (and XLA
compilation), so the step is called twice and both times are recorded.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from runner.scenarios.schema import RunConfig
from runner.tfenv import tf


def tf_dtype(run: RunConfig) -> tf.DType:
    return tf.as_dtype(run.dtype)


def check_dtype(run: RunConfig) -> tf.DType:
    """The dtype finite differences are computed in: 16-bit floats are too coarse for them."""
    return tf.float64 if run.dtype == "float64" else tf.float32


def float64_delta(run: RunConfig) -> float:
    """The step of every float64 central difference, whatever the run's dtype: float64's own."""
    tolerances = run.checks.tolerances
    return tolerances["float64"].delta if "float64" in tolerances else 1e-6


def compiled(step: Callable[..., Any], run: RunConfig) -> Callable[..., Any]:
    if run.compile == "eager":
        return step
    return tf.function(step, jit_compile=run.compile == "xla")


def timed_step(step: Callable[..., Any], run: RunConfig, *args: Any) -> tuple[Any, dict[str, float]]:
    """Run ``step`` under the run's compile mode; its result and timings (seconds).

    ``tape`` is the first call. Compiled steps then run ``timing_repeats`` more times
    and ``tape_repeat`` is the median of those: the cost once tracing is paid, with
    ``tape_repeat_min`` and ``tape_repeat_max`` beside it when there are several.
    """
    fn = compiled(step, run)
    started = time.perf_counter()
    result = fn(*args)
    timings = {"tape": time.perf_counter() - started}
    if run.compile != "eager":
        repeats = []
        for _ in range(max(1, run.timing_repeats)):
            started = time.perf_counter()
            result = fn(*args)
            repeats.append(time.perf_counter() - started)
        timings["tape_repeat"] = statistics.median(repeats)
        if len(repeats) > 1:
            timings.update(tape_repeat_min=min(repeats), tape_repeat_max=max(repeats))
    return result, timings
