"""Structured-config schemas: what a run's config may say, checked before any TensorFlow work.

The dataclasses are stored in Hydra's ConfigStore; every YAML lists its schema
first in its defaults, so Hydra itself refuses a misspelt key or a wrong type at
composition. :func:`load_run` then checks what Hydra cannot: keys added with a
``+`` override, each input against :class:`InputSpec`, the expressions, names
and shapes. It also accepts a config saved in a run's ``.hydra/config.yaml``,
which has lost its schema types, by merging it into them again.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import json
import keyword
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from runner import expr, gradient_steps, layers
from runner.errors import ConfigError

#: Float dtypes a run may use. Integers are refused: the tape never differentiates them.
DTYPES = ("float16", "bfloat16", "float32", "float64")
#: How the tape step runs: as Python, traced into a tf.function, or compiled by XLA.
COMPILE_MODES = ("eager", "function", "xla")
_INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
#: A scenario's name becomes part of its run directory and plot file: no separators, no dots first.
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
#: Names the standalone snippet in each report uses for itself.
_SNIPPET_NAMES = frozenset({"tf", "np", "json", "tape", "gradients"})


class Kind(Enum):
    """How an input enters the tape: a trainable ``tf.Variable`` or a ``tf.constant``."""

    variable = "variable"
    constant = "constant"


class Loss(Enum):
    """The linear model's loss: ``mean(y**2)`` or ``mean((y - targets)**2)``."""

    mean_square = "mean_square"
    mse = "mse"


@dataclass
class Linspace:
    start: float = MISSING
    stop: float = MISSING
    num: int = MISSING


@dataclass
class InputSpec:
    """One named input: a number (``value``) or evenly spaced points (``linspace``)."""

    value: float | None = None
    linspace: Linspace | None = None
    kind: Kind = Kind.variable
    watch: bool = False  # call tape.watch() on it

    def array(self) -> Any:
        """The input's values in float64, before casting to the run's dtype."""
        import numpy as np

        if self.linspace is not None:
            return np.linspace(self.linspace.start, self.linspace.stop, self.linspace.num)
        return np.asarray(self.value, dtype=np.float64)


class ProgramKind(Enum):
    """How a program's input enters the tape; only a trainable variable is watched without being asked."""

    variable = "variable"
    nontrainable = "nontrainable"  # tf.Variable(trainable=False)
    constant = "constant"


class Unconnected(Enum):
    """tape.gradient's unconnected_gradients: None (TensorFlow's default) or zeros."""

    none = "none"
    zero = "zero"


#: A program input's initialisers, as TensorFlow's own functions draw them (normal: N(0, 1); uniform:
#: U[0, 1); glorot_uniform: U(-l, l) with l = sqrt(6 / (fan_in + fan_out))), seeded by the run's seed.
INITIALISERS = ("zeros", "ones", "normal", "uniform", "glorot_uniform")


@dataclass
class ProgramInput:
    """One named input of a program: a number or nested list, a linspace, or an initialiser and shape."""

    value: Any = None  # a number, or nested lists of numbers (any shape)
    linspace: Linspace | None = None
    init: str | None = None  # one of INITIALISERS, with shape
    shape: list[int] | None = None
    kind: ProgramKind = ProgramKind.variable
    watch: bool = False  # call tape.watch() on it

    def array(self, seed: int, name: str) -> Any:
        """The input's values in float64; an initialiser draws from a generator seeded by (seed, name)."""
        import numpy as np

        if self.linspace is not None:
            return np.linspace(self.linspace.start, self.linspace.stop, self.linspace.num)
        if self.init is None:
            return np.asarray(self.value, dtype=np.float64)
        shape = tuple(self.shape or ())
        rng = np.random.default_rng([seed, *name.encode()])
        if self.init in ("zeros", "ones"):
            return np.full(shape, float(self.init == "ones"))
        if self.init == "normal":
            return rng.standard_normal(shape)
        if self.init == "uniform":
            return rng.uniform(0.0, 1.0, shape)
        fan_in, fan_out = _fans(shape)
        limit = (6.0 / (fan_in + fan_out)) ** 0.5
        return rng.uniform(-limit, limit, shape)

    def code(self, seed: int, name: str) -> str:
        """NumPy source drawing the same float64 values as :meth:`array`, for the report's snippet."""
        if self.linspace is not None:
            lin = self.linspace
            return f"np.linspace({lin.start!r}, {lin.stop!r}, {lin.num})"
        if self.init is None:
            return f"np.asarray({self.value!r}, dtype=np.float64)"
        shape = tuple(self.shape or ())
        rng = f"np.random.default_rng({[seed, *name.encode()]!r})"
        if self.init in ("zeros", "ones"):
            return f"np.full({shape!r}, {float(self.init == 'ones')!r})"
        if self.init == "normal":
            return f"{rng}.standard_normal({shape!r})"
        if self.init == "uniform":
            return f"{rng}.uniform(0.0, 1.0, {shape!r})"
        limit = (6.0 / sum(_fans(shape))) ** 0.5
        return f"{rng}.uniform({-limit!r}, {limit!r}, {shape!r})"


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras's fans: a matrix's rows and columns; a kernel's channels times its receptive field."""
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    field_size = 1
    for size in shape[:-2]:
        field_size *= size
    return shape[-2] * field_size, shape[-1] * field_size


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


@routine()
@dataclass
class HigherOrderScenario(Scenario):
    """Nested tapes: the first ``order`` derivatives of a function of one input."""

    routine: str = "higher_order"
    function: str = MISSING
    inputs: dict[str, Any] = field(default_factory=dict)  # exactly one: name -> InputSpec
    order: int = 4

    def check(self) -> None:
        _check_inputs(self)
        if len(self.inputs) != 1:
            raise ConfigError("scenario.inputs: higher_order differentiates a function of one input")
        if not 1 <= self.order <= MAX_ORDER:
            raise ConfigError(f"scenario.order must be between 1 and {MAX_ORDER}, got {self.order}")
        _parse(self.function, self.inputs, "scenario.function")


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
        _parse(self.function, ["x"], "scenario.function")
        _parse(self.hidden, ["x", "y"], "scenario.hidden")


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
        if (not self.points or not all(_finite(p) for p in self.points) or not _finite(self.v)
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
    targets: dict[str, Any] = field(default_factory=dict)  # name -> expression or layer step, in order
    gradients: dict[str, list[str]] = field(default_factory=dict)  # target -> sources; empty: last target
    persistent: bool = False
    watch_accessed_variables: bool = True
    unconnected_gradients: Unconnected = Unconnected.none
    output_gradients: dict[str, Any] = field(default_factory=dict)  # target -> number or nested list
    # What the tape is asked for each entry of gradients (runner/derivatives.py): gradient | jacobian |
    # batch_jacobian | hessian | jvp; jacobian's path: true (pfor) | false (tf.while_loop) | both.
    derivative: str = "gradient"
    experimental_use_pfor: Any = True
    tangents: dict[str, Any] = field(default_factory=dict)  # jvp: source -> number or nested list
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
        """Target -> sources, in the order the tape is asked; by default the last target over every input."""
        return dict(self.gradients) or {list(self.targets)[-1]: list(self.inputs)}

    def check(self) -> None:
        check_program(self)


@dataclass
class Tolerance:
    """An element passes when |got - want| <= atol + rtol * |want| (for that element); a check when all do."""

    rtol: float = MISSING
    atol: float = MISSING


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
    projections: int = 1  # programs: random (u, v) pairs checked above fd_max_elements; a jvp's
    #                        dot-product test: this many seeded cotangents v at every size
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


def _typed(schema: type, values: dict[str, Any], where: str) -> Any:
    """Merge plain ``values`` into ``schema`` and build the dataclass, or say in one line what is wrong.

    Plain values, not the composed node: the node carries its own typing, which
    would admit keys added with ``+``. A sweep's jobs mostly repeat the same values
    (every job's tolerances, say), and merging into a schema is slow, so each
    distinct set of values is merged once per process and each caller gets a copy.
    """
    return copy.deepcopy(_typed_once(schema, json.dumps(values), where))


def _typed_apart(schema: type, values: Any, where: str, key: str) -> Any:
    """:func:`_typed`, with ``key`` (a field typed ``Any``, or a dict of ``Any`` by name) set afterwards.

    Merging checks nothing inside such a field, so leaving it out changes no result; a
    slider's calls, which differ only in an input's value, then reuse the merged rest.
    """
    part = values.get(key) if isinstance(values, dict) else None
    field_ = next((f for f in dataclasses.fields(schema) if f.name == key), None)
    if part is None or field_ is None or (field_.default_factory is dict and not (
            isinstance(part, dict) and all(isinstance(k, str) for k in part))):
        return _typed(schema, values, where)  # nothing to set apart, or what only the merge refuses
    typed = _typed(schema, {k: v for k, v in values.items() if k != key}, where)
    setattr(typed, key, copy.deepcopy(part))
    return typed


@functools.lru_cache(maxsize=256)
def _typed_once(schema: type, values: str, where: str) -> Any:
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), json.loads(values)))
    except OmegaConfBaseException as err:
        key = ".".join(part for part in (where, err.full_key) if part)
        reason = str(err.msg).splitlines()[0] if err.msg else type(err).__name__
        raise ConfigError(f"{key}: {reason}") from None


def _as_program(scenario: dict[str, Any]) -> dict[str, Any]:
    """A scenario saved (in a run's .hydra/config.yaml) by a routine a program replaced, as that program."""
    translate = _FORMER_ROUTINES.get(scenario.get("routine"))
    return scenario if translate is None else {**translate(scenario), "routine": "program"}


def _fresh(name: str, taken: list[str]) -> str:
    """``name``, or name1, name2, ... when an input or step is called that: as the former routines named."""
    names = itertools.chain([name], (f"{name}{i}" for i in itertools.count(1)))
    return next(n for n in names if n not in taken)


def _from_persistent(scenario: dict[str, Any]) -> dict[str, Any]:
    """``persistent`` took every target with respect to every input."""
    inputs = list(scenario.get("inputs") or {})
    return {**scenario, "gradients": {target: inputs for target in scenario.get("targets") or {}}}


def _from_unconnected(scenario: dict[str, Any]) -> dict[str, Any]:
    """``unconnected``'s function was the target z (z1, z2, ... when an input was called z)."""
    return {**scenario, "target": _fresh("z", list(scenario.get("inputs") or {}))}


def _vector(scenario: dict[str, Any]) -> dict[str, Any]:
    """``jacobian``'s and ``forward_mode``'s F: each output a step, then F stacking them, over the scalar
    inputs (which the routines watched whatever their kind) with zeros where F reads no input."""
    inputs = {name: {"value": spec.get("value")} for name, spec in (scenario.get("inputs") or {}).items()}
    outputs = dict(scenario.get("outputs") or {})
    target = _fresh("F", [*inputs, *outputs])
    stacked = f"stack([{', '.join(outputs)}])"
    return {**_renamed(scenario), "inputs": inputs, "targets": {**outputs, target: stacked},
            "gradients": {target: list(inputs)}, "unconnected_gradients": "zero"}


def _from_jacobian(scenario: dict[str, Any]) -> dict[str, Any]:
    """``jacobian``: tape.jacobian both ways (pfor and tf.while_loop); its batch_jacobian is not kept."""
    return {**_vector(scenario), "derivative": "jacobian", "experimental_use_pfor": "both",
            "persistent": True}


def _from_forward_mode(scenario: dict[str, Any]) -> dict[str, Any]:
    """``forward_mode``: a JVP with tangent 1 along each input, a column of the Jacobian. Its probes are
    not kept: the dot-product test takes checks.projections cotangents."""
    program = _vector(scenario)
    return {**program, "derivative": "jvp", "tangents": dict.fromkeys(program["inputs"], 1.0)}




def _from_hessian(scenario: dict[str, Any]) -> dict[str, Any]:
    """``hessian`` stacked its scalar inputs, in order, into one vector (X; X_ when a name was taken)
    and took its function's Hessian with respect to it (the target y; f when an input was called y),
    then one Newton step. The program makes that vector its one input and each old input a step
    reading an element of it, so the Hessian's label (d2f/dX2) and numbers are the routine's; its
    gradient (df/dX) is now the Newton step's g, among the values."""
    names = list(scenario.get("inputs") or {})
    target = "y" if "y" not in names else "f"
    while target in names:
        target += "_"
    vector = "X"
    while vector in (*names, target):
        vector += "_"
    values = [(spec or {}).get("value") for spec in (scenario.get("inputs") or {}).values()]
    steps = {n: f"{vector}[{i}]" for i, n in enumerate(names)}
    return {**_renamed(scenario), "inputs": {vector: {"value": values}},
            "targets": {**steps, target: scenario.get("function")}, "gradients": {target: [vector]},
            "derivative": "hessian", "newton_step": True, "damping": scenario.get("damping", 1e-6)}


def _from_mlp(scenario: dict[str, Any]) -> dict[str, Any]:
    """``mlp``'s layer sizes, activation and batch as the steps it ran: h_i = act(h_{i-1} @ Wi + bi),
    no activation on the last layer (y), loss = reduce_mean((y - t)**2), gradients for every Wi, bi.

    Its numbers are not the routine's: it drew x, the targets, Glorot-normal weights and
    0.1 N(0, 1) biases from one NumPy generator; the program draws each input from its own
    seeded initialiser (x and t N(0, 1), glorot_uniform weights, zero biases).
    """
    sizes = list(scenario.get("layers") or [])
    activation, batch = scenario.get("activation", "tanh"), scenario.get("batch", 8)
    inputs: dict[str, Any] = {
        "x": {"init": "normal", "shape": [batch, *sizes[:1]], "kind": "constant"},
        "t": {"init": "normal", "shape": [batch, *sizes[-1:]], "kind": "constant"}}
    targets, before, depth = {}, "x", len(sizes) - 1
    for i in range(1, depth + 1):
        inputs[f"W{i}"] = {"init": "glorot_uniform", "shape": sizes[i - 1:i + 1]}
        inputs[f"b{i}"] = {"init": "zeros", "shape": [sizes[i]]}
        step = "y" if i == depth else f"h{i}"
        affine = f"{before} @ W{i} + b{i}"
        targets[step] = affine if step == "y" or activation == "linear" else f"{activation}({affine})"
        before = step
    targets["loss"] = "reduce_mean((y - t)**2)"
    return {**_renamed(scenario), "inputs": inputs, "targets": targets,
            "gradients": {"loss": [f"{kind}{i}" for i in range(1, depth + 1) for kind in "Wb"]}}


def _renamed(scenario: dict[str, Any]) -> dict[str, Any]:
    """A former routine's name and description, on a program."""
    return {"name": scenario.get("name"), "description": scenario.get("description", "")}


#: Routines that programs replaced -> how a config they saved reads as the program (``gradient`` was
#: already the short form).
_FORMER_ROUTINES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "gradient": dict, "persistent": _from_persistent, "unconnected": _from_unconnected,
    "jacobian": _from_jacobian, "forward_mode": _from_forward_mode, "hessian": _from_hessian,
    "mlp": _from_mlp,
}


def load_run(cfg: DictConfig | dict[str, Any]) -> RunConfig:
    """Validate a composed (or saved) config and return it as typed dataclasses."""
    run = typed_run(cfg)
    _check_dtype(run)
    with layers.weight_budget(run.limits.memory_mb * 2**20):  # before any layer is built to learn its shape
        _check_scenario(run.scenario)
    _check_memory(run)
    _check_oracle(run)
    return run


def typed_run(cfg: DictConfig | dict[str, Any]) -> RunConfig:
    """A composed (or saved) config as typed dataclasses: every key and type as the schemas say, nothing
    built (its names, expressions and shapes are :func:`load_run`'s to check)."""
    node = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    try:
        values = OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{err.full_key}: {str(err.msg).splitlines()[0]}") from None
    scenario = values.pop("scenario", None)
    if not isinstance(scenario, dict):
        raise ConfigError("no scenario chosen: pass scenario=<name>")
    scenario = _as_program(scenario)
    routine = scenario.get("routine")
    if routine not in SCENARIO_SCHEMAS:
        raise ConfigError(
            f"scenario.routine: unknown routine {routine!r} (known: {', '.join(SCENARIO_SCHEMAS)})"
        )
    run: RunConfig = _typed(RunConfig, {**values, "scenario": None}, "")
    run.scenario = _typed_apart(SCENARIO_SCHEMAS[routine], scenario, "scenario", "inputs")
    return run


def _check_dtype(run: RunConfig) -> None:
    if run.dtype in _INTEGER_DTYPES:
        raise ConfigError(
            f"dtype {run.dtype} is an integer type: GradientTape does not differentiate integer "
            f"tensors (their gradient would be None); use one of {', '.join(DTYPES)}"
        )
    if run.dtype not in DTYPES:
        raise ConfigError(f"dtype: unknown dtype {run.dtype!r} (known: {', '.join(DTYPES)})")
    if run.dtype not in run.checks.tolerances:
        raise ConfigError(f"checks.tolerances has no entry for dtype {run.dtype}")
    if run.compile not in COMPILE_MODES:
        raise ConfigError(f"compile: unknown mode {run.compile!r} (known: {', '.join(COMPILE_MODES)})")


def _check_scenario(scenario: Scenario) -> None:
    if not _FILE_NAME.match(scenario.name):
        raise ConfigError(f"scenario.name: {scenario.name!r} must be letters, digits, '_', '.' or '-' "
                          "(it names the run directory), at most 64, not starting with '.'")
    if scenario.routine in CASES:
        known = CASES[scenario.routine]
        case = scenario.case  # every case-driven schema has one
        if case in RETIRED.get(scenario.routine, {}):
            raise ConfigError(f"scenario.case: {case!r} is a tensor program now: use "
                              f"scenario={RETIRED[scenario.routine][case]}")
        if case != "all" and case not in known:
            raise ConfigError(f"scenario.case: unknown case {case!r} (known: all, {', '.join(known)})")
    scenario.check()

def _parse(text: str, names: Any, where: str, *, tensors: bool = False) -> None:
    """Parse to vet; only a program (``tensors``) may use more than the elementwise language."""
    try:
        tree = expr.parse(text, names)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    if not tensors and not expr.elementwise(tree):
        raise ConfigError(f"{where}: {text!r} uses the tensor language (matmul, reductions, where, lists, "
                          "subscripts, conditionals), which only scenario=program runs; this routine's "
                          "expressions are elementwise")


def _require_values(inputs: dict[str, InputSpec]) -> None:
    for name, spec in inputs.items():
        if spec.linspace is not None:
            raise ConfigError(f"scenario.inputs.{name}: this routine takes a value, not a linspace")


def _check_name(name: str, where: str) -> None:
    if not _IDENTIFIER.match(name) or keyword.iskeyword(name):
        raise ConfigError(f"{where}: {name!r} is not a valid name (letters, digits, _; a letter first)")
    if name in expr.RESERVED:
        raise ConfigError(f"{where}: {name!r} is reserved for a function or constant")
    if name in _SNIPPET_NAMES:
        raise ConfigError(f"{where}: {name!r} is reserved (the report's TensorFlow snippet uses it)")


def _check_inputs(scenario: Any) -> None:
    if not scenario.inputs:
        raise ConfigError("scenario.inputs: give at least one input, e.g. scenario.inputs.x.value=3")
    typed: dict[str, InputSpec] = {}
    sizes: set[int] = set()
    for name, node in scenario.inputs.items():
        where = f"scenario.inputs.{name}"
        _check_name(name, where)
        spec: InputSpec = _typed(InputSpec, node, where)
        if (spec.value is None) == (spec.linspace is None):
            raise ConfigError(f"{where}: give exactly one of value or linspace")
        if spec.value is not None and not _finite(spec.value):
            raise ConfigError(f"{where}.value: {spec.value} is not a finite number")
        if spec.linspace is not None:
            lin = spec.linspace
            if lin.num <= 0:
                raise ConfigError(f"{where}.linspace.num must be positive, got {lin.num}")
            if not (_finite(lin.start) and _finite(lin.stop)):
                raise ConfigError(f"{where}.linspace: start and stop must be finite numbers")
            sizes.add(lin.num)
        typed[name] = spec
    if len(sizes) > 1:
        raise ConfigError(f"scenario.inputs: linspace inputs must share one num, got {sorted(sizes)}")
    scenario.inputs = typed


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


def _expressions(scenario: Scenario) -> list[str]:
    value = getattr(scenario, "function", None)
    return [value] if value else []


def _nested_shape(value: Any, where: str) -> tuple[int, ...]:
    """The shape of a number or rectangular nested list of finite numbers, or a one-line error."""
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where}: an empty list has no values")
        shapes = {_nested_shape(v, where) for v in value}
        if len(shapes) > 1:
            raise ConfigError(f"{where}: nested lists must be rectangular (every row the same length)")
        return (len(value), *shapes.pop())
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        raise ConfigError(f"{where}: {value!r} is not a finite number")
    return ()


def program_shapes(scenario: ProgramScenario) -> dict[str, tuple[int, ...]]:
    """Every input's and target's shape, from the config alone."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, spec in scenario.inputs.items():
        if spec.linspace is not None:
            shapes[name] = (spec.linspace.num,)
        elif spec.init is not None:
            shapes[name] = tuple(spec.shape or ())
        else:
            shapes[name] = _nested_shape(spec.value, f"scenario.inputs.{name}.value")
        expr.check_shape(f"scenario.inputs.{name}", shapes[name])
    for name, text in scenario.targets.items():
        if gradient_steps.is_gradient_step(text):  # shaped like what it differentiates against
            shapes[name] = shapes[text["wrt"]]
            continue
        if layers.is_step(text):
            shapes.update(layers.shapes(name, text, shapes))
            continue
        try:
            shapes[name] = expr.infer_shape(expr.parse(text, shapes), shapes)
        except ConfigError as err:
            raise ConfigError(f"{_step_key(scenario, name)}: {err}") from None
    return shapes


def _step_key(scenario: ProgramScenario, name: str) -> str:
    """The key a step was written under: ``scenario.function`` for the short form's one target."""
    return "scenario.function" if scenario.function is not None else f"scenario.targets.{name}"


def _short_form(scenario: ProgramScenario) -> None:
    """``function:`` as the program it stands for: one target, named by ``target_name``.

    Its closed forms are derivatives by hand, point by point, so they need an
    elementwise function; they are checked (or dropped) at run time.
    """
    if scenario.function is None:
        for key in ("target", "closed_form", "closed_form_for"):
            if getattr(scenario, key):
                raise ConfigError(f"scenario.{key} belongs to the short form: give scenario.function too")
        return
    if scenario.targets:
        raise ConfigError("scenario.function and scenario.targets: give one (function is the short form of a "
                          "program whose one target is the function)")
    target = scenario.target_name()
    _check_name(target, "scenario.target")
    if target in scenario.inputs:
        raise ConfigError(f"scenario.target {target!r} is also an input name; choose another")
    _parse(scenario.function, scenario.inputs, "scenario.function", tensors=True)
    if scenario.closed_form_for is not None:
        _parse(scenario.closed_form_for, scenario.inputs, "scenario.closed_form_for", tensors=True)
    for name, text in scenario.closed_form.items():
        where = f"scenario.closed_form.{name}"
        if name not in scenario.inputs:
            raise ConfigError(f"{where}: no input named {name!r}")
        _parse(text, scenario.inputs, where, tensors=True)
        if not expr.elementwise(expr.parse(text, scenario.inputs)):
            raise ConfigError(f"{where}: a closed form is a derivative at each point, so it must be "
                              f"elementwise; {text!r} is not")
    if scenario.closed_form and scenario.closed_form_applies() and not expr.elementwise(
            expr.parse(scenario.function, scenario.inputs)):
        raise ConfigError(f"scenario.closed_form: a closed form is a derivative at each point, so the "
                          f"function must be elementwise; {scenario.function!r} is not")
    scenario.targets = {target: scenario.function}


def check_program(scenario: ProgramScenario) -> None:
    """Inputs, steps, gradients and options of a program, with every shape, before any TensorFlow."""
    _short_form(scenario)
    if not scenario.inputs:
        raise ConfigError("scenario.inputs: give at least one input, e.g. scenario.inputs.x.value=3")
    typed: dict[str, ProgramInput] = {}
    for name, node in scenario.inputs.items():
        where = f"scenario.inputs.{name}"
        _check_name(name, where)
        spec: ProgramInput = _typed_apart(ProgramInput, node, where, "value")
        if sum(x is not None for x in (spec.value, spec.linspace, spec.init)) != 1:
            raise ConfigError(f"{where}: give exactly one of value, linspace or init (with shape)")
        if spec.init is not None:
            if spec.init not in INITIALISERS:
                raise ConfigError(f"{where}.init: unknown initialiser {spec.init!r} "
                                  f"(known: {', '.join(INITIALISERS)})")
            if spec.shape is None or any(d <= 0 for d in spec.shape):
                raise ConfigError(f"{where}.shape: an initialiser needs positive sizes, e.g. [3, 2]")
        elif spec.shape is not None:
            raise ConfigError(f"{where}.shape: only an initialiser takes a shape (a value has its own)")
        if spec.linspace is not None and (spec.linspace.num <= 0 or not (
                _finite(spec.linspace.start) and _finite(spec.linspace.stop))):
            raise ConfigError(f"{where}.linspace: num must be positive, start and stop finite")
        typed[name] = spec
    scenario.inputs = typed
    if not scenario.targets:
        raise ConfigError("scenario.targets: give at least one step, e.g. {y: x**2}")
    for name in scenario.targets:
        _check_name(name, f"scenario.targets.{name}")
        if name in scenario.inputs:
            raise ConfigError(f"scenario.targets.{name}: the name is already an input")
    known = list(scenario.inputs)
    for name, text in scenario.targets.items():  # each step reads inputs and earlier steps only
        if gradient_steps.is_gradient_step(text):
            gradient_steps.check(name, text, known, scenario.inputs, scenario.derivative)
        elif not layers.is_step(text):
            _parse(text, known, _step_key(scenario, name), tensors=True)
        known.append(name)
    shapes = program_shapes(scenario)
    order = list(scenario.targets)
    for target, sources in scenario.gradients.items():
        if target not in scenario.targets:
            raise ConfigError(f"scenario.gradients.{target}: no step named {target!r}")
        if not sources:
            raise ConfigError(f"scenario.gradients.{target}: give the sources, e.g. [x]")
        for source in sources:
            if "." in source:
                layers.check_source(scenario.targets, target, source, shapes)
            elif source not in scenario.inputs and (
                    source not in scenario.targets or order.index(source) >= order.index(target)):
                raise ConfigError(f"scenario.gradients.{target}: {source!r} is neither an input nor a step "
                                  f"before {target}")
    for target, value in scenario.output_gradients.items():
        where = f"scenario.output_gradients.{target}"
        if target not in scenario.plan():
            raise ConfigError(f"{where}: {target!r} is not a target in scenario.gradients")
        given = _nested_shape(value, where)
        try:
            fits = expr._broadcast(expr.Name(target), [given, shapes[target]]) == shapes[target]
        except ConfigError:
            fits = False
        if not fits:
            raise ConfigError(f"{where}: shape {given} does not broadcast to {target}'s {shapes[target]}")
    from runner import derivatives

    derivatives.check(scenario, shapes)


def _program_memory(run: RunConfig, item: int) -> dict[str, int]:
    """A program's peak: every node's tensor on the tape and as many in the backward pass; NumPy's
    float64 copies for the differences (both nudged evaluations and the forward pass)."""
    scenario = run.scenario
    shapes = program_shapes(scenario)
    sizes: list[int] = []
    for name, text in scenario.targets.items():
        if gradient_steps.is_gradient_step(text):  # the gradient, and as much again in its backward pass
            sizes += [2 * math.prod(shapes[name])]
        elif layers.is_step(text):
            sizes += layers.memory(shapes, name)
        else:
            expr.infer_shape(expr.parse(text, shapes), shapes, sizes)
    inputs = sum(math.prod(shapes[n]) for n in scenario.inputs)
    nodes = sum(sizes)
    parts = {"tape": 2 * item * (nodes + inputs), "oracle": 3 * 8 * (nodes + inputs)}
    if run.checks.finite_differences:
        parts["finite differences"] = 2 * 8 * (nodes + inputs)
    from runner import derivatives

    return parts | derivatives.memory(scenario, shapes, item, run.checks.finite_differences)


def memory_estimate(run: RunConfig) -> dict[str, int]:
    """Bytes a job will hold at its peak, by part, from shapes alone (nothing is allocated).

    The tape keeps every intermediate of the forward pass and the backward pass makes
    as many again; the finite-difference check builds a numerical and a theoretical
    Jacobian (target size x input size) in float64. Nested tapes multiply the tape.
    """
    item = {"float64": 8, "float32": 4}.get(run.dtype, 2)
    limit = run.checks.fd_max_elements  # larger inputs: every element at once, or a sample
    scenario = run.scenario
    parts: dict[str, int] = {}
    if isinstance(scenario, ProgramScenario):
        return _program_memory(run, item)
    if isinstance(scenario, LinearScenario):
        b, i, o = scenario.batch, scenario.in_features, scenario.out_features
        parts["tape"] = 2 * item * (3 * b * i + i * o + 4 * b * o + o)
        fd = 2 * 8 * min(i * o + o, limit)
    elif (texts := _expressions(scenario)) and hasattr(scenario, "inputs"):
        nodes = sum(expr.size(expr.parse(text, scenario.inputs)) for text in texts)
        n = max((spec.linspace.num if spec.linspace else 1) for spec in scenario.inputs.values())
        depth = getattr(scenario, "order", 1)
        parts["tape"] = 2 * item * n * (nodes + len(scenario.inputs)) * depth
        parts["oracle"] = 8 * n * nodes * depth
        # A full numerical Jacobian up to the limit. Above it every element is nudged at once:
        # the two nudged inputs, the two evaluations, their difference and two float64 copies.
        fd = (2 * 8 * n * n if n <= limit else 7 * 8 * n) * len(scenario.inputs) * len(texts)
    else:  # the case-driven routines work on a handful of scalars
        parts["tape"], fd = 2**20, 0
    if run.checks.finite_differences:
        parts["finite differences"] = fd
    return parts


def _check_oracle(run: RunConfig) -> None:
    """Refuse, before SymPy starts, a job whose symbolic derivatives would be too large to build."""
    from runner import work

    scenario = run.scenario
    texts = _expressions(scenario)
    # A program bounds its own oracle: SymPy is skipped, with a note, past a count of terms.
    if not texts or not hasattr(scenario, "inputs") or isinstance(scenario, ProgramScenario):
        return
    trees = {f"#{i}": expr.parse(text, scenario.inputs) for i, text in enumerate(texts)}
    order = getattr(scenario, "order", 1)
    work.check_oracle(trees, len(scenario.inputs), order, "scenario.function")


def _check_memory(run: RunConfig) -> None:
    parts = memory_estimate(run)
    need = sum(parts.values())
    if need > run.limits.memory_mb * 2**20:
        detail = ", ".join(f"{k} {v / 2**20:,.0f} MiB" for k, v in parts.items())
        raise ConfigError(
            f"this job would need about {need / 2**20:,.0f} MiB ({detail}), above "
            f"limits.memory_mb={run.limits.memory_mb}; shrink the inputs, turn off "
            "checks.finite_differences, or raise the limit")
