"""Structured-config schemas: what a run's config may say, checked before any TensorFlow work.

The dataclasses are stored in Hydra's ConfigStore; every YAML lists its schema
first in its defaults, so Hydra itself refuses a misspelt key or a wrong type at
composition. :func:`load_run` then checks what Hydra cannot: keys added with a
``+`` override, each input against :class:`InputSpec`, the expressions, names
and shapes. It also accepts a config saved in a run's ``.hydra/config.yaml``,
which has lost its schema types, by merging it into them again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from runner import expr
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


@dataclass
class Scenario:
    name: str = MISSING
    routine: str = MISSING
    description: str = ""


@dataclass
class GradientScenario(Scenario):
    """One function of named inputs on one tape: basic, watch and sigmoid."""

    routine: str = "gradient"
    function: str = MISSING
    inputs: dict[str, Any] = field(default_factory=dict)  # name -> InputSpec
    target: str | None = None  # the output's name in labels; "y" unless an input is called y
    watch_accessed_variables: bool = True
    closed_form: dict[str, str] = field(default_factory=dict)  # input -> expected derivative

    def target_name(self) -> str:
        if self.target is not None:
            return self.target
        return "f" if "y" in self.inputs else "y"


@dataclass
class LinearScenario(Scenario):
    """y = xW + b with seeded data, and the loss's gradients for W and b."""

    routine: str = "linear"
    batch: int = 4
    in_features: int = 3
    out_features: int = 2
    loss: Loss = Loss.mean_square


@dataclass
class PersistentScenario(Scenario):
    """Several named targets on one tape, each differentiated in turn."""

    routine: str = "persistent"
    inputs: dict[str, Any] = field(default_factory=dict)  # name -> InputSpec
    targets: dict[str, str] = field(default_factory=dict)  # name -> expression, in order
    persistent: bool = True
    watch_accessed_variables: bool = True


SCENARIO_SCHEMAS: dict[str, type[Scenario]] = {
    "gradient": GradientScenario,
    "linear": LinearScenario,
    "persistent": PersistentScenario,
}


@dataclass
class Tolerance:
    """A check passes when max|got - want| <= atol + rtol * max|want|."""

    rtol: float = MISSING
    atol: float = MISSING


@dataclass
class DtypeTolerances:
    analytic: Tolerance = field(default_factory=Tolerance)
    finite_differences: Tolerance = field(default_factory=Tolerance)
    delta: float = MISSING  # the finite-difference step


@dataclass
class ChecksConfig:
    analytic: bool = True
    finite_differences: bool = True
    float64_reference: bool = True  # below float64, also run in float64 and report the difference
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
    plots: bool = True
    report: bool = True
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    limits: Limits = field(default_factory=Limits)

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


def _typed(schema: type, node: Any, where: str) -> Any:
    """Merge ``node`` into ``schema`` and build the dataclass, or say in one line what is wrong."""
    try:
        if isinstance(node, DictConfig):  # drop its own typing, which would admit +added keys
            node = OmegaConf.to_container(node, resolve=True, enum_to_str=True)
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = ".".join(part for part in (where, err.full_key) if part)
        reason = str(err.msg).splitlines()[0] if err.msg else type(err).__name__
        raise ConfigError(f"{key}: {reason}") from None


def load_run(cfg: DictConfig | dict[str, Any]) -> RunConfig:
    """Validate a composed (or saved) config and return it as typed dataclasses."""
    node = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    scenario_node = node.get("scenario")
    if not isinstance(scenario_node, DictConfig):
        raise ConfigError("no scenario chosen: pass scenario=<name>")
    routine = scenario_node.get("routine")
    if routine not in SCENARIO_SCHEMAS:
        raise ConfigError(
            f"scenario.routine: unknown routine {routine!r} (known: {', '.join(SCENARIO_SCHEMAS)})"
        )
    run: RunConfig = _typed(RunConfig, node, "")
    run.scenario = _typed(SCENARIO_SCHEMAS[routine], scenario_node, "scenario")
    _check_dtype(run)
    _check_scenario(run.scenario)
    _check_memory(run)
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
    if isinstance(scenario, GradientScenario):
        _check_inputs(scenario)
        target = scenario.target_name()
        _check_name(target, "scenario.target")
        if target in scenario.inputs:
            raise ConfigError(f"scenario.target {target!r} is also an input name; choose another")
        _parse(scenario.function, scenario.inputs, "scenario.function")
        for name, text in scenario.closed_form.items():
            if name not in scenario.inputs:
                raise ConfigError(f"scenario.closed_form.{name}: no input named {name!r}")
            _parse(text, scenario.inputs, f"scenario.closed_form.{name}")
    elif isinstance(scenario, PersistentScenario):
        _check_inputs(scenario)
        if not scenario.targets:
            raise ConfigError("scenario.targets: give at least one target, e.g. {y: x**2}")
        known = set(scenario.inputs)
        for name, text in scenario.targets.items():
            _check_name(name, f"scenario.targets.{name}")
            if name in known:
                raise ConfigError(f"scenario.targets.{name}: the name is already an input or target")
            _parse(text, known, f"scenario.targets.{name}")
            known.add(name)
    elif isinstance(scenario, LinearScenario):
        for key in ("batch", "in_features", "out_features"):
            if getattr(scenario, key) <= 0:
                raise ConfigError(f"scenario.{key} must be a positive integer, got {getattr(scenario, key)}")


def _parse(text: str, names: Any, where: str) -> None:
    try:
        expr.parse(text, names)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _check_name(name: str, where: str) -> None:
    if not _IDENTIFIER.match(name):
        raise ConfigError(f"{where}: {name!r} is not a valid name (letters, digits, _; a letter first)")
    if name in expr.RESERVED:
        raise ConfigError(f"{where}: {name!r} is reserved for a function or constant")
    if name in _SNIPPET_NAMES:
        raise ConfigError(f"{where}: {name!r} is reserved (the report's TensorFlow snippet uses it)")


def _check_inputs(scenario: GradientScenario | PersistentScenario) -> None:
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


def _input_size(scenario: GradientScenario | PersistentScenario) -> int:
    return max((spec.linspace.num if spec.linspace else 1) for spec in scenario.inputs.values())


def memory_estimate(run: RunConfig) -> dict[str, int]:
    """Bytes a job will hold at its peak, by part, from shapes alone (nothing is allocated).

    The tape keeps every intermediate of the forward pass and the backward pass makes
    as many again; the finite-difference check builds a numerical and a theoretical
    Jacobian (target size x input size) in float64.
    """
    item = {"float64": 8, "float32": 4}.get(run.dtype, 2)
    scenario = run.scenario
    if isinstance(scenario, LinearScenario):
        b, i, o = scenario.batch, scenario.in_features, scenario.out_features
        parts = {"tape": 2 * item * (3 * b * i + i * o + 4 * b * o + o)}
        fd = 2 * 8 * (i * o + o)
    else:
        texts = [scenario.function] if isinstance(scenario, GradientScenario) else list(
            scenario.targets.values())
        names = [*scenario.inputs, *getattr(scenario, "targets", {})]
        nodes = sum(expr.size(expr.parse(text, names)) for text in texts)
        n = _input_size(scenario)
        parts = {"tape": 2 * item * n * (nodes + len(scenario.inputs)), "oracle": 8 * n * nodes}
        fd = 2 * 8 * n * n * len(scenario.inputs) * len(texts)
    if run.checks.finite_differences:
        parts["finite differences"] = fd
    return parts


def _check_memory(run: RunConfig) -> None:
    parts = memory_estimate(run)
    need = sum(parts.values())
    if need > run.limits.memory_mb * 2**20:
        detail = ", ".join(f"{k} {v / 2**20:,.0f} MiB" for k, v in parts.items())
        raise ConfigError(
            f"this job would need about {need / 2**20:,.0f} MiB ({detail}), above "
            f"limits.memory_mb={run.limits.memory_mb}; shrink the inputs, turn off "
            "checks.finite_differences, or raise the limit")
