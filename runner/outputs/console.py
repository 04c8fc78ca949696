"""What a single run prints when it is done: each derivative's value and the oracles that checked it.

``tape-runner`` alone prints ``dy/dx = 6.0  ✓ SymPy  ✓ float64 differences``: a number
as the run computed it (an array by its shape and range, or in full when it is short),
a None with the reason it was predicted, and a mark per check of that derivative
(``✗`` for one that failed, whose detail the warning line gives). The report and
results.json hold everything; this is the glance a newcomer expects at the prompt.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runner.outputs import glance
from runner.result import Check, Outcome

#: Arrays up to this many elements are printed whole; larger ones by shape and range.
INLINE = 6

#: More derivatives than this: the first ones, then how many more results.json holds.
SHOWN = 12

def lines(outcome: Outcome) -> list[str]:
    """One line per derivative, in the run's order."""
    labels = list(outcome.gradients)
    found = [_line(label, outcome) for label in labels[:SHOWN]]
    if len(labels) > SHOWN:
        found.append(f"... and {len(labels) - SHOWN} more in results.json")
    return found


def rows(outcome: Outcome) -> list[tuple[str, str, str]]:
    """(derivative, its value, the checks of it) for every derivative, in the run's order: the table a
    notebook shows."""
    return [row(label, outcome) for label in outcome.gradients]


def row(label: str, outcome: Outcome) -> tuple[str, str, str]:
    """A derivative's label, its value as printed (a None with its reason), and one mark per check."""
    value = outcome.gradients[label]
    marks = "  ".join([*(_mark(c, label) for c in outcome.checks if _about(c, label, value is None)),
                       *_routes(outcome, label)])
    if value is None:
        reason = outcome.notes.get(label, "")
        return label, "None" + (f" ({reason})" if reason else ""), marks
    return label, _shown(np.asarray(value)), marks or "(not checked)"


def _line(label: str, outcome: Outcome) -> str:
    label, value, checks = row(label, outcome)
    return f"{label} = {value}" + (f"  {checks}" if checks else "")


def _routes(outcome: Outcome, label: str) -> list[str]:
    """checks.modes' other routes to the derivative, as one mark: how many agreed, or which did not."""
    routes: dict[str, bool] = {}
    for check in outcome.checks:
        if check.name.startswith(f"{label} ["):
            route = check.name[len(label) + 1:].split("]")[0] + "]"
            routes[route] = routes.get(route, True) and check.passed
    failed = [route for route, passed in routes.items() if not passed]
    if failed:
        return [f"✗ {' '.join(failed)}"]
    return [f"✓ {len(routes)} other route{'s' * (len(routes) != 1)}"] if routes else []


def _about(check: Check, label: str, none: bool) -> bool:
    """A check of this derivative by an oracle (or the prediction of its None), not its finiteness."""
    named = check.name.startswith((f"{label} vs ", f"{label}: "))
    return named or (none and check.name == f"{label} recorded")


def _mark(check: Check, label: str) -> str:
    what = check.name[len(label):].lstrip(": ").removeprefix("vs ").split(" (")[0]
    what = {"recorded": "None predicted" if check.passed else "recorded"}.get(what, what)
    return f"{'✓' if check.passed else '✗'} {what.replace('central differences', 'differences')}"


def _shown(value: np.ndarray) -> str:
    """A short value whole; a longer one by shape and range, as the sweep's summary shows it."""
    if value.size <= INLINE:
        return _number(value.item()) if value.ndim == 0 else _listed(value.tolist())
    finite = value[np.isfinite(value)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (None, None)
    return glance.tensor_text(list(value.shape), low, high) + ("" if finite.size else ", none finite")


def _listed(values: Any) -> str:
    if isinstance(values, list):
        return "[" + ", ".join(map(_listed, values)) + "]"
    return _number(values)


def _number(x: Any) -> str:
    return glance.number_text(float(x))
