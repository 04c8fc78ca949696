"""Structured-config schemas: what a run's config may say, as dataclasses in Hydra's ConfigStore.

Every YAML lists its schema first in its defaults, so Hydra itself refuses a misspelt
key or a wrong type at composition; each scenario kind's ``check`` says what Hydra
cannot (names, expressions, shapes), and :mod:`runner.scenarios.loading` runs them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from runner.errors import ConfigError
from runner.language import expr, syntax
from runner.oracles.tolerance import Tolerance
from runner.scenarios.fuzzing import FuzzConfig
from runner.scenarios.inputs import FLOAT_DTYPES, check_point_inputs
from runner.scenarios.programs import check_program, program_memory
from runner.scenarios.values import finite, parse_checked, with_differences

#: Float dtypes a run may use. Integers are refused: the tape never differentiates them.
DTYPES = FLOAT_DTYPES


#: How the tape step runs: as Python, traced into a tf.function, or compiled by XLA.
COMPILE_MODES = ("eager", "function", "xla")


class Loss(Enum):
    """The linear model's loss: ``mean(y**2)`` or ``mean((y - targets)**2)``."""

    mean_square = "mean_square"
    mse = "mse"


class Unconnected(Enum):
    """tape.gradient's unconnected_gradients: None (TensorFlow's default) or zeros."""

    none = "none"
    zero = "zero"


#: The routine registry, filled by :func:`routine` as each schema below is defined: routine name ->
#: its schema, and -> the cases a case-driven routine knows (its module implements exactly these).
#: The routine itself is ``run`` in ``runner/routines/<name>.py``, imported when a job needs it.
SCENARIO_SCHEMAS: dict[str, type[Scenario]] = {}


CASES: dict[str, tuple[str, ...]] = {}


RETIRED: dict[str, dict[str, str]] = {}  # routine -> case -> the scenario that replaces it


MAX_ORDER = 8


_Schema = TypeVar("_Schema", bound=type)


def routine(cases: tuple[str, ...] = (),
            retired: dict[str, str] | None = None) -> Callable[[_Schema], _Schema]:
    """Register a scenario schema, under the name its ``routine`` field defaults to, with its cases.

    The one place a routine is declared: its name (the field), its schema (the class,
    which also checks itself), its cases, and by that name its module and ``run``.
    ``retired`` maps a case the routine no longer runs to the scenario that runs it now.
    """
    def decorate(schema: _Schema) -> _Schema:
        name = schema.__dataclass_fields__["routine"].default
        SCENARIO_SCHEMAS[name] = schema
        if cases:
            CASES[name] = cases
        if retired:
            RETIRED[name] = retired
        return schema
    return decorate


@dataclass
class Scenario:
    name: str = MISSING
    routine: str = MISSING
    description: str = ""

    def check(self) -> None:
        """What Hydra's typing cannot check: names, expressions, shapes, ranges. One line per problem."""

    def memory(self, run: RunConfig, item: int) -> dict[str, int]:
        """Bytes a job of this kind holds at its peak, by part, from shapes alone (``item``: bytes per
        element in the run's dtype). The tape keeps every intermediate of the forward pass and the
        backward pass makes as many again; the finite differences hold float64 Jacobians. The
        case-driven routines work on a handful of scalars."""
        return with_differences({"tape": 2**20}, run, 0)


@routine()
@dataclass
class LinearScenario(Scenario):
    """y = xW + b with seeded data, and the loss's gradients for W and b."""

    routine: str = "linear"
    batch: int = 4
    in_features: int = 3
    out_features: int = 2
    loss: Loss = Loss.mean_square

    def check(self) -> None:
        for key in ("batch", "in_features", "out_features"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"scenario.{key} must be a positive integer, got {getattr(self, key)}")

    def memory(self, run: RunConfig, item: int) -> dict[str, int]:
        b, i, o = self.batch, self.in_features, self.out_features
        parts = {"tape": 2 * item * (3 * b * i + i * o + 4 * b * o + o)}
        return with_differences(parts, run, 2 * 8 * min(i * o + o, run.checks.fd_max_elements))


@routine()
@dataclass
class HigherOrderScenario(Scenario):
    """Nested tapes: the first ``order`` derivatives of a function of one input."""

    routine: str = "higher_order"
    function: str = MISSING
    inputs: dict[str, Any] = field(default_factory=dict)  # exactly one: name -> ProgramInput
    order: int = 4

    def check(self) -> None:
        check_point_inputs(self)
        if len(self.inputs) != 1:
            raise ConfigError("scenario.inputs: higher_order differentiates a function of one input")
        if not 1 <= self.order <= MAX_ORDER:
            raise ConfigError(f"scenario.order must be between 1 and {MAX_ORDER}, got {self.order}")
        parse_checked(self.function, self.inputs, "scenario.function")

    def memory(self, run: RunConfig, item: int) -> dict[str, int]:
        """Nested tapes multiply the tape; up to ``fd_max_elements`` a full numerical Jacobian, above it
        every element nudged at once (two nudged inputs, two evaluations, their difference, two copies)."""
        nodes = syntax.size(expr.parse(self.function, self.inputs))
        n = max((spec.linspace.num if spec.linspace else 1) for spec in self.inputs.values())
        parts = {"tape": 2 * item * n * (nodes + len(self.inputs)) * self.order,
                 "oracle": 8 * n * nodes * self.order}
        fd = (2 * 8 * n * n if n <= run.checks.fd_max_elements else 7 * 8 * n) * len(self.inputs)
        return with_differences(parts, run, fd)


@routine(cases=("stop_recording", "reset"), retired={"stop_gradient": "guide/stop_gradient"})
@dataclass
class StopGradientScenario(Scenario):
    """z = function(x) + hidden(x, y), with and without hiding the second part from the tape."""

    routine: str = "stop_gradient"
    function: str = "x*x"
    hidden: str = "y*y"
    x: float = 2.0
    y: float = 3.0
    case: str = "all"  # all | stop_recording | reset

    def check(self) -> None:
        parse_checked(self.function, ["x"], "scenario.function")
        parse_checked(self.hidden, ["x", "y"], "scenario.hidden")


@routine(cases=("log1pexp", "clip_by_norm"))
@dataclass
class CustomGradientScenario(Scenario):
    """tf.custom_gradient: a stable log(1 + e^x), and the guide's clip_gradients on v*v."""

    routine: str = "custom_gradient"
    points: list[float] = field(default_factory=lambda: [-100.0, -10.0, 0.0, 10.0, 100.0])
    v: float = 2.0
    clip_norm: float = 0.5
    case: str = "all"  # all | log1pexp | clip_by_norm

    def check(self) -> None:
        if (not self.points or not all(finite(p) for p in self.points) or not finite(self.v)
                or self.clip_norm <= 0):
            raise ConfigError("scenario.points and scenario.v must be finite numbers and scenario.clip_norm "
                              "positive")


@routine(cases=("variable_replaced", "numpy_detour", "integer_dtype", "stateful_op", "branch_not_taken",
                "sqrt_at_zero", "norm_at_zero", "where_nan", "where_nan_fixed", "no_gradient"))
@dataclass
class PitfallsScenario(Scenario):
    """The catalogue of why a gradient comes back None or NaN, or raises, one case or all."""

    routine: str = "pitfalls"
    case: str = "all"


@routine(cases=("python_for", "while_loop"), retired={"python_if": "guide/control_flow"})
@dataclass
class ControlFlowScenario(Scenario):
    """Python if/for and tf.while_loop inside the tape: the gradient follows the branch taken."""

    routine: str = "control_flow"
    x: float = 3.0
    steps: int = 3
    case: str = "all"  # all | python_for | while_loop

    def check(self) -> None:
        if not 0 <= self.steps <= 1000:
            raise ConfigError(f"scenario.steps must be between 0 and 1000, got {self.steps}")


@routine()
@dataclass
class ProgramScenario(Scenario):
    """A tensor program: named inputs of any shape, named steps in order on one tape, chosen gradients."""

    routine: str = "program"
    function: str | None = None  # the short form: a program whose one target is this expression
    target: str | None = None  # the function's target name: "y", or "f" when an input is called y
    closed_form: dict[str, str] = field(default_factory=dict)  # input -> the function's derivative, by hand
    closed_form_for: str | None = None  # the function closed_form differentiates; null: scenario.function
    inputs: dict[str, Any] = field(default_factory=dict)  # name -> ProgramInput
    # Steps evaluated before the tape opens (the guide's x2 = x2v + 1.0): plain tensors it does not
    # record unless ``watch`` names them, as tape.watch(x2) would.
    setup: dict[str, str] = field(default_factory=dict)  # name -> expression, in order
    watch: list[str] = field(default_factory=list)  # setup results the tape watches
    targets: dict[str, Any] = field(default_factory=dict)  # name -> expression or layer step, in order
    # Functions whose backward pass is written here (runner/scenarios/custom_specs.py), called as a step:
    # name -> {args: [y], value: <expression>, grads: {y: <expression over args, value, upstream>}}
    custom_gradients: dict[str, Any] = field(default_factory=dict)
    reset_after: str | None = None  # tape.reset() right after this step: its record and every watch gone
    # target -> sources: a list, or a dict as tape.gradient(loss, {'w': w, 'b': b}) takes (key -> source);
    # empty: the last target over every input
    gradients: dict[str, Any] = field(default_factory=dict)
    # More derivatives of the same tape, named (runner/scenarios/named_derivatives.py):
    # name -> {kind: gradient|jacobian|batch_jacobian, target: <step>, wrt: <source or list>}
    derivatives: dict[str, Any] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)  # steps after the tape, over derivatives too
    # Several tapes at once, in place of the one (the guide's tape0 and tape1): name -> {watch: [names],
    # persistent: bool}; each named derivative says which it is asked of (tape: <name>).
    tapes: dict[str, Any] = field(default_factory=dict)
    # The program run this many times (runner/routines/program_epochs.py); between epochs each input
    # named in rebind takes its expression's value as a plain tensor, as Python's x = x + 1 does.
    epochs: int = 1
    rebind: dict[str, str] = field(default_factory=dict)
    persistent: bool = False
    watch_accessed_variables: bool = True
    unconnected_gradients: Unconnected = Unconnected.none
    output_gradients: dict[str, Any] = field(default_factory=dict)  # target -> number or nested list
    # What the tape is asked for each entry of gradients (runner/scenarios/derivative_specs.py):
    # gradient | jacobian | batch_jacobian | hessian | hvp | jvp;
    # jacobian's path: true (pfor) | false (tf.while_loop) | both.
    derivative: str = "gradient"
    experimental_use_pfor: Any = True
    tangents: dict[str, Any] = field(default_factory=dict)  # jvp, hvp: source -> number or nested list
    newton_step: bool = False  # hessian: one step -solve(H + damping I, g) per source
    damping: float = 1e-6

    def target_name(self) -> str:
        """The short form's one target: ``target``, else "y" ("f" when an input is called y)."""
        if self.target is not None:
            return self.target
        return "f" if "y" in self.inputs else "y"

    def closed_form_applies(self) -> bool:
        """Whether the closed forms are checked: the function is still the one they were written for."""
        written_for = self.closed_form_for
        return self.function is not None and (written_for is None or (
            expr.parse(written_for, self.inputs) == expr.parse(self.function, self.inputs)))

    def plan(self) -> dict[str, list[str]]:
        """Target -> sources, in the order the tape is asked; by default (with no named ``derivatives``) the
        last target over every input."""
        if not self.gradients and self.derivatives:
            return {}
        return ({t: list(s.values()) if isinstance(s, dict) else list(s) for t, s in self.gradients.items()}
                or {list(self.targets)[-1]: list(self.inputs)})

    def source_keys(self, target: str) -> list[str] | None:
        """The keys of a target's sources given as a dict, in order; None where they are a list."""
        sources = self.gradients.get(target)
        return list(sources) if isinstance(sources, dict) else None

    def check(self) -> None:
        check_program(self)

    def memory(self, run: RunConfig, item: int) -> dict[str, int]:
        return program_memory(run, item)


@dataclass
class DtypeTolerances:
    analytic: Tolerance = field(default_factory=Tolerance)
    finite_differences: Tolerance = field(default_factory=Tolerance)
    delta: float = MISSING  # the finite-difference step
    # programs: the gradient against central differences computed in float64 (each element, or projections)
    float64_differences: Tolerance = field(default_factory=lambda: Tolerance(rtol=1e-3, atol=1e-5))
    # each step's value against the float64 forward pass (NumPy): the run's own rounding of a value
    forward: Tolerance = field(default_factory=lambda: Tolerance(rtol=1e-4, atol=1e-5))


@dataclass
class ChecksConfig:
    analytic: bool = True
    finite_differences: bool = True
    float64_reference: list[str] = field(default_factory=list)  # dtypes also run in float64, to compare
    fd_max_elements: int = MISSING  # above this many input elements, sample that many for differences
    symbolic_max_elements: int = 64  # programs: SymPy's oracle up to this many input elements in all
    saved_model: bool = False  # programs: saved, reloaded, differentiated again (routines/saved_model.py)
    projections: int = 1  # programs: random (u, v) pairs checked above fd_max_elements; a jvp's
    #                        dot-product test: this many seeded cotangents v at every size
    # programs: the derivative by TensorFlow's other routes too (runner/scenarios/route_specs.py):
    # default (the run's own) | all | a list of routes; each in every execution (eager, function, xla;
    # none given: the run's compile)
    modes: Any = "default"
    executions: list[str] = field(default_factory=list)
    tolerances: dict[str, DtypeTolerances] = field(default_factory=dict)


@dataclass
class Limits:
    """Bounds a shared or generated config cannot exceed (conf/config.yaml sets them)."""

    memory_mb: int = MISSING  # refuse a job whose tensors and Jacobians would need more
    time_s: float = MISSING  # stop a job that runs longer; 0 for no limit


@dataclass
class RunConfig:
    scenario: Any = MISSING
    seed: int = 0
    dtype: str = "float32"
    compile: str = "eager"
    timing_repeats: int = 1  # compiled steps run this many more times; tape_repeat is their median
    plots: bool = True
    report: bool = True
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    limits: Limits = field(default_factory=Limits)
    objective: str | None = None  # a gradient label or max_check_error: the number a sweeper optimises
    fuzz: FuzzConfig = field(default_factory=FuzzConfig)  # scenario=fuzz: which program to draw

    def tolerances(self) -> DtypeTolerances:
        return self.checks.tolerances[self.dtype]


def path_safe(name: Any) -> str:
    """``${path_safe:${scenario.name}}`` in the run directory: a name can never climb out of outputs/."""
    text = re.sub(r"[^A-Za-z0-9_.-]", "_", str(name)).lstrip(".")
    return text[:64] or "scenario"


def register_configs() -> None:
    """Put the schemas where the YAML defaults lists find them, and the resolver the paths use."""
    if not OmegaConf.has_resolver("path_safe"):
        OmegaConf.register_new_resolver("path_safe", path_safe)
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    for routine, schema in SCENARIO_SCHEMAS.items():
        cs.store(group="schema/scenario", name=routine, node=schema)
