"""What a program's derivative kinds and Hessian extras read of it: the Protocol :class:`ProgramView`.

:class:`runner.routines.program.Program` satisfies it. ``derivative_kinds.py`` and
``hessians.py`` take a ``ProgramView``, so they read only these names and need nothing
else of ``program.py`` (which imports them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from runner.scenarios.named_derivatives import Derivative
from runner.scenarios.schema import ProgramScenario, RunConfig

Fn = Callable[[np.ndarray], np.ndarray]


@runtime_checkable
class ProgramView(Protocol):
    """A validated program: its config, shapes and plan, and its float64 and tape functions."""

    scenario: ProgramScenario
    run: RunConfig
    dtype: Any  # the run's tf.DType
    shapes: dict[str, tuple[int, ...]]  # every input's, step's and layer variable's
    plan: dict[str, list[str]]  # target -> sources, in the order the tape is asked
    derivatives: list[Derivative]  # scenario.derivatives, asked after the plan
    tape: str  # the tape's name, as the snippet and the notes call it
    weights: dict[str, np.ndarray]  # each target's cotangent: output_gradients, or ones
    delta: float  # the float64 central differences' step

    def point(self, source: str) -> np.ndarray:
        """A source's value in float64, where the oracles differentiate."""
        ...

    def reaches(self, name: str, *, conditions: bool = False, eagerly: bool = False) -> set[str]:
        """What a step's gradient can flow back to."""
        ...

    def why_none(self, target: str, source: str) -> str:
        """Why tape.gradient(target, source) is None, or ''."""
        ...

    def forward_fn(self, target: str, source: str) -> Fn:
        """The target as a float64 NumPy function of the source."""
        ...

    def across(self, target: str, source: str) -> Fn | None:
        """A layer variable's difference, s -> target(source + s) - target(source - s); None otherwise."""
        ...

    def vjp(self, target: str, source: str) -> Fn:
        """The tape's vector-Jacobian product, on a fresh tape."""
        ...

    def differentiated(self, target: str, results: Mapping[str, Any]) -> Any:
        """What tape.gradient is given as the target (a list or dict target's structure)."""
        ...

    def source(self, name: str, tensors: Mapping[str, Any], results: Mapping[str, Any]) -> Any:
        """What the tape differentiates with respect to."""
        ...
