"""The routes TensorFlow offers to one derivative, as data: their names, and which programs they take.

``checks.modes`` cross-examines a program's derivative: besides the run's own route, the
same derivative is taken by every other route TensorFlow has to it, in every execution of
``checks.executions``, and each is held to the run's result and to float64 differences.
A first derivative has two routes, ``reverse`` (GradientTape) and ``forward``
(ForwardAccumulator); a second derivative the four nestings of them. This module holds no
TensorFlow: a config is vetted with it before any job starts. The routes themselves are
runner/routines/routes.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError

if TYPE_CHECKING:
    from runner.scenarios.schema import RunConfig

#: The routes of each derivative order; the first of each is the one a run takes itself.
ROUTES = {
    "gradient": ("reverse", "forward"),
    "hessian": ("reverse-over-reverse", "forward-over-reverse", "reverse-over-forward",
                "forward-over-forward"),
}
EXECUTIONS = ("eager", "function", "xla")
#: ``checks.modes``' two words: the run's own route alone (today's cost), or every route of its order.
DEFAULT, ALL = "default", "all"


def routes(modes: Any, derivative: str) -> list[str]:
    """The routes ``checks.modes`` asks of a ``derivative``: none beyond the run's own for ``default``."""
    if modes == DEFAULT:
        return []
    return list(ROUTES[derivative]) if modes == ALL else list(modes)


def executions(run: RunConfig) -> list[str]:
    """Where each route runs: ``checks.executions``, else the run's own ``compile``."""
    return list(run.checks.executions or [run.compile])


def check(run: RunConfig, program: bool) -> None:
    """``checks.modes`` and ``checks.executions`` against each other and the scenario; one line each."""
    modes, chosen = run.checks.modes, run.checks.executions or []
    for execution in chosen:
        if execution not in EXECUTIONS:
            raise ConfigError(f"checks.executions: unknown {execution!r} (known: {', '.join(EXECUTIONS)})")
    if modes == DEFAULT:
        return
    if not program:
        raise ConfigError(f"checks.modes: routes cross-examine a program's derivatives; scenario "
                          f"{run.scenario.name} is a {run.scenario.routine} routine")
    scenario = run.scenario
    if scenario.derivative not in ROUTES:
        raise ConfigError(f"checks.modes: routes cross-examine derivative=gradient or hessian, not "
                          f"{scenario.derivative}")
    known = ROUTES[scenario.derivative]
    if modes != ALL:
        if isinstance(modes, str) or not modes:
            raise ConfigError(f"checks.modes: {modes!r} is not default, all or a list of routes "
                              f"({', '.join(known)})")
        for route in modes:
            if route not in known:
                raise ConfigError(f"checks.modes: {route!r} is not a route of "
                                  f"derivative={scenario.derivative} ({', '.join(known)})")
    _check_program(scenario)


def _check_program(scenario: Any) -> None:
    """What every route can take: one tape, expressions and Keras layers, inputs or layer variables as
    sources (a tangent enters there)."""
    features = {"tapes": scenario.tapes, "derivatives": scenario.derivatives, "custom_gradients":
                scenario.custom_gradients, "reset_after": scenario.reset_after, "after": scenario.after}
    for key, value in features.items():
        if value:
            raise ConfigError(f"checks.modes: routes take a program of one tape's steps; scenario.{key} "
                              "is more than that")
    if scenario.epochs > 1:
        raise ConfigError("checks.modes: routes take one pass of the program, not scenario.epochs > 1")
    for name, entry in scenario.targets.items():
        if isinstance(entry, Mapping) and "layer" not in entry:
            raise ConfigError(f"checks.modes: routes take steps written as expressions and Keras layers; "
                              f"scenario.targets.{name} is a {{{', '.join(entry)}}} step")
        if not isinstance(entry, str | Mapping):
            raise ConfigError(f"checks.modes: scenario.targets.{name} is a list or dict target; routes "
                              "differentiate one tensor")
    for target, sources in scenario.plan().items():
        for source in sources:
            if source not in scenario.inputs and "." not in source:
                raise ConfigError(f"checks.modes: scenario.gradients.{target}: forward mode pushes a tangent "
                                  f"in at an input or a layer's variable; {source!r} is a step")
