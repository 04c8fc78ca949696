"""What a routine hands back: plain data, with no TensorFlow in it.

Routines fill an :class:`Outcome`; ``runner.outputs.files`` and ``runner.outputs.report``
turn it into files without knowing which routine made it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: NumPy loads with the routines, not at start-up
    import numpy as np


@dataclass
class Check:
    """One verification of one derivative (or value): passed iff every compared element is within its own
    tolerance and both sides are finite."""

    name: str
    passed: bool
    max_abs_err: float | None  # the largest |got - want| over the elements compared
    tol: float | None  # the tolerance of the worst element (the one furthest past its bound, or nearest)
    detail: str = ""  # the worst element (where, got, want), or why there is no number
    vacuous: bool = False  # every compared element is exactly 0 on both sides: it verified nothing

    def failure(self) -> str:
        """Why it failed: ``dy/dx vs SymPy: worst element [3]: got 1.0101, want 1 (error 0.0101 > 0.001)``."""
        if self.detail:
            return f"{self.name}: {self.detail}"
        if self.max_abs_err is None or self.tol is None:
            return self.name
        return f"{self.name}: max error {self.max_abs_err:.2g} > tolerance {self.tol:.2g}"


def unchecked(labels: Iterable[str], check_names: Iterable[str]) -> list[str]:
    """The derivatives no oracle compared: a check named ``<label> vs <oracle>`` verifies ``<label>``
    (SymPy, a closed form, float64 differences: never TensorFlow's own autodiff)."""
    names = list(check_names)
    return [label for label in labels if not any(name.startswith(f"{label} vs ") for name in names)]


def judge(passed: Iterable[bool], labels: Iterable[str], check_names: Iterable[str]) -> str:
    """A job's status from its checks: ``check_failed`` if any failed, else ``unverified`` if some reported
    derivative (``labels``: those with a value) was compared with no oracle, else ``ok``."""
    if not all(passed):
        return "check_failed"
    return "unverified" if unchecked(labels, check_names) else "ok"


@dataclass
class Curve:
    """Series sharing one x axis, drawn as one PNG."""

    filename: str
    title: str
    x_label: str
    x: np.ndarray
    series: dict[str, np.ndarray]
    markers: bool = False  # mark each point: the values were sampled there (a sweep), not a dense curve
    y_label: str = "value"
    peaks: tuple[str, ...] = ()  # series whose largest value is marked and written on the plot


@dataclass
class Heatmap:
    """A matrix drawn cell by cell, rows and columns named by ``labels``."""

    filename: str
    title: str
    labels: list[str]
    values: np.ndarray


Figure = Curve | Heatmap


def axis_label(series: list[str]) -> str:
    """A y axis named after what it plots, ``y, dy/dx``; ``value`` for more than three series."""
    names = [label.split(" = ")[0] for label in series]
    return ", ".join(names) if len(names) <= 3 else "value"


@dataclass
class Outcome:
    gradients: dict[str, np.ndarray | None] = field(default_factory=dict)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # label -> why it is what it is
    analytic: dict[str, str] = field(default_factory=dict)  # label -> the oracle, as text
    figures: list[Figure] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    snippet: str = ""  # standalone TensorFlow code that prints the same gradients
    reference: dict[str, float] = field(default_factory=dict)  # label -> max |g - g in float64|
    watched_variables: list[str] | None = None  # a program's tape.watched_variables(), by name

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def reported(self) -> list[str]:
        """The labels of the derivatives that have a value (not None)."""
        return [label for label, value in self.gradients.items() if value is not None]

    @property
    def unchecked(self) -> list[str]:
        """Derivatives with a value that no oracle compared (see :func:`unchecked`)."""
        return unchecked(self.reported, [c.name for c in self.checks])

    @property
    def status(self) -> str:
        """``ok``, ``unverified`` or ``check_failed`` (see :func:`judge`)."""
        return judge([c.passed for c in self.checks], self.reported, [c.name for c in self.checks])
