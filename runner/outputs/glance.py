"""The sweep summary's table, shaped to be read at a glance (summary.md and summary.html).

summary.csv and summary.json keep every override and every number for tools; the
table a person reads shows each swept key in its own column under a short name
(``x.kind`` for ``scenario.inputs.x.kind``), says the overrides every job shares once
above the table, and writes each gradient as what it is: a number, a tensor as its
shape and range, a None as ``None`` with the tape's reason on hover, and nothing at
all where a job has no such gradient.
"""

from __future__ import annotations

import re
from typing import Any

from runner.outputs import report

_PREFIXES = ("scenario.inputs.", "scenario.")  # dropped from column names where that stays unique
NONE_REASON = "the tape returned None for this gradient"


#: How a note says a gradient is missing because TensorFlow raised (the non-persistent tape's second call).
RAISED = re.compile(r"TensorFlow raised (\w+Error)")


def short_names(keys: list[str]) -> dict[str, str]:
    """Override key -> column name: the key without its common prefixes, unless two would collide."""
    def short(key: str) -> str:
        for prefix in _PREFIXES:
            if key.startswith(prefix) and len(key) > len(prefix):
                return key[len(prefix):]
        return key

    names = {key: short(key) for key in keys}
    shorts = list(names.values())
    return {key: name if shorts.count(name) == 1 else key for key, name in names.items()}


def constant_overrides(parameters: list[dict[str, str]], swept: list[str]) -> list[str]:
    """``key=value`` for the overrides that every job has, with the same value."""
    if not parameters:
        return []
    first = parameters[0]
    return [f"{key}={value}" for key, value in first.items()
            if key not in swept and all(p.get(key) == value for p in parameters)]


def gradient_labels(records: list[dict[str, Any]]) -> list[str]:
    """Every gradient label of every job, scalar or not, first seen first."""
    return list(dict.fromkeys(label for r in records for label in (r.get("gradients") or {})))


def gradient_cell(record: dict[str, Any] | None, label: str) -> Any:
    """One job's gradient ``label`` as the table shows it."""
    gradients = (record or {}).get("gradients") or {}
    if label not in gradients:
        return ""
    value = gradients[label]
    if value is None:
        reason = str(((record or {}).get("notes") or {}).get(label) or NONE_REASON)
        raised = RAISED.search(reason)  # no gradient because TensorFlow raised: say so, not None
        return report.Hover(raised.group(1) if raised else "None", reason)
    if isinstance(value, dict) and "shape" in value:  # an array too large to list, summarised
        return tensor_text(value["shape"], value.get("min"), value.get("max"))
    if isinstance(value, list):
        return _listed_tensor(value)
    return number_text(value) if isinstance(value, float) else report.value_text(value)


def number_text(value: float) -> str:
    """A gradient to seven significant digits, float32's precision (summary.csv keeps every digit): 6.0,
    0.9999546, 4.539787e-05."""
    text = f"{value:.7g}"
    return text if any(c in text for c in ".eni") else f"{text}.0"


#: What each column of a summary's table means, in the order a table shows them.
COLUMNS = {
    "job": "the job's number in the sweep",
    "status": "ok (every check passed), check_failed, unverified (no oracle checked a gradient) or error",
    "checks": "how many checks ran and how many failed",
    "vs float64": "the largest absolute error of a gradient against float64 central differences (each "
                  "element, or random projections), the oracle that runs at any size",
    "message": "why a job failed or errored",
    "report": "the job's report (its checks, notes, inputs and plots)",
    "plot": "the job's first plot; the report shows them all",
}


def legend(columns: set[str]) -> str:
    """The meaning of the summary's columns that are present; the rest are swept keys and gradients."""
    said = [f"{name}: {text}" for name, text in COLUMNS.items() if name in columns]
    return ("; ".join(said) + ". Other columns: each swept override (its short name), then each gradient "
            "label: a number to seven significant digits, a tensor as (shape) in [min, max], None with the "
            "tape's reason on hover, empty where the job has no such gradient. summary.csv and summary.json "
            "keep every digit.")


def _listed_tensor(value: list[Any]) -> str:
    """A gradient results.json holds as a nested list, by its shape and range."""
    import numpy as np

    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return report.value_text(value)
    if array.size == 0:
        return tensor_text(list(array.shape), None, None)
    return tensor_text(list(array.shape), float(np.nanmin(array)), float(np.nanmax(array)))


def tensor_text(shape: list[int], low: Any, high: Any) -> str:
    """``(201,) in [4.54e-05, 0.25]``: a tensor's shape and range."""
    dims = "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    if low is None or high is None:
        return dims
    return f"{dims} in [{_number(low)}, {_number(high)}]"


def _number(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, int | float) else str(value)
