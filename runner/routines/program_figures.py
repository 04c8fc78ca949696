"""A program's figures: its steps and gradients over its first linspace input, and its small Hessians."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from runner.result import Curve, Figure, Outcome, axis_label
from runner.routines import hessians

if TYPE_CHECKING:
    from runner.routines.program import Program


def figures(program: Program, outcome: Outcome) -> list[Figure]:
    """The curve (where an input is a linspace), then a heatmap of each small Hessian."""
    curve = _curve(program, outcome)
    found: list[Figure] = [] if curve is None else [curve]
    return found + hessians.heatmaps(program, outcome, len(outcome.figures) + len(found))


def _curve(program: Program, outcome: Outcome) -> Curve | None:
    """Each step and its gradient against the first linspace input, where they share its shape."""
    scenario = program.scenario
    axis = next((n for n, spec in scenario.inputs.items() if spec.linspace is not None), None)
    if axis is None:
        return None
    shape = program.shapes[axis]
    series = {f"{t} = {scenario.targets[t]}": outcome.values[t]
              for t in program.trees if program.shapes[t] == shape}
    series.update({label: g for label, g in outcome.gradients.items()  # dy/ddelta over x too, as the guide
                   if g is not None and np.shape(g) == shape})
    if not series:
        return None
    title = f"{scenario.name}: steps and gradients"
    if scenario.function is not None:  # the short form, titled as its one function
        title = f"{scenario.function} and its derivative"
    gradients = tuple(label for label in series if label in outcome.gradients)
    return Curve(f"{scenario.name}.png", title, axis, outcome.inputs[axis], series,
                 y_label=axis_label(list(series)), peaks=gradients)
