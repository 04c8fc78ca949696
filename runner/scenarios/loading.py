"""A composed or saved config, typed by the schema and checked whole, before any TensorFlow work.

:func:`load_run` checks what Hydra cannot: keys added with a ``+`` override, each
input, the expressions, names and shapes, the memory the job will hold and the size
of SymPy's derivatives. It also accepts a config saved in a run's ``.hydra/config.yaml``,
which has lost its schema types (and may name a routine that is a program now).
"""

from __future__ import annotations

import re
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from runner.errors import ConfigError
from runner.language import expr
from runner.scenarios import fuzzing, layers, route_specs
from runner.scenarios.legacy import as_program
from runner.scenarios.schema import (
    CASES,
    COMPILE_MODES,
    DTYPES,
    RETIRED,
    SCENARIO_SCHEMAS,
    ProgramScenario,
    RunConfig,
    Scenario,
)
from runner.scenarios.values import typed, typed_apart

_INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


#: A scenario's name becomes part of its run directory and plot file: no separators, no dots first.
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")


def load_run(cfg: DictConfig | dict[str, Any]) -> RunConfig:
    """Validate a composed (or saved) config and return it as typed dataclasses."""
    run = typed_run(cfg)
    _check_dtype(run)
    with layers.weight_budget(run.limits.memory_mb * 2**20):  # before any layer is built to learn its shape
        _check_scenario(run.scenario)
    _check_memory(run)
    _check_oracle(run)
    route_specs.check(run, isinstance(run.scenario, ProgramScenario))
    if run.checks.saved_model and not isinstance(run.scenario, ProgramScenario):
        raise ConfigError(f"checks.saved_model: the round trip saves a program; scenario {run.scenario.name} "
                          f"is a {run.scenario.routine} routine")
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
    scenario = as_program(scenario)
    if scenario.get("routine") == fuzzing.ROUTINE:  # a program drawn from the campaign's seed
        scenario = fuzzing.program(values.get("fuzz") or {}, scenario)
    routine = scenario.get("routine")
    if routine not in SCENARIO_SCHEMAS:
        raise ConfigError(
            f"scenario.routine: unknown routine {routine!r} (known: {', '.join(SCENARIO_SCHEMAS)})"
        )
    run: RunConfig = typed(RunConfig, {**values, "scenario": None}, "")
    run.scenario = typed_apart(SCENARIO_SCHEMAS[routine], scenario, "scenario", "inputs")
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


def _expressions(scenario: Scenario) -> list[str]:
    value = getattr(scenario, "function", None)
    return [value] if value else []


def memory_estimate(run: RunConfig) -> dict[str, int]:
    """Bytes a job will hold at its peak, by part, from shapes alone (nothing is allocated): each
    scenario kind's own estimate (:meth:`runner.scenarios.schema.Scenario.memory`)."""
    return run.scenario.memory(run, {"float64": 8, "float32": 4}.get(run.dtype, 2))


def _check_oracle(run: RunConfig) -> None:
    """Refuse, before SymPy starts, a job whose symbolic derivatives would be too large to build."""
    from runner.scenarios import sympy_cost

    scenario = run.scenario
    texts = _expressions(scenario)
    # A program bounds its own oracle: SymPy is skipped, with a note, past a count of terms.
    if not texts or not hasattr(scenario, "inputs") or isinstance(scenario, ProgramScenario):
        return
    trees = {f"#{i}": expr.parse(text, scenario.inputs) for i, text in enumerate(texts)}
    order = getattr(scenario, "order", 1)
    sympy_cost.check_oracle(trees, len(scenario.inputs), order, "scenario.function")


def _check_memory(run: RunConfig) -> None:
    parts = memory_estimate(run)
    need = sum(parts.values())
    if need > run.limits.memory_mb * 2**20:
        detail = ", ".join(f"{k} {v / 2**20:,.0f} MiB" for k, v in parts.items())
        raise ConfigError(
            f"this job would need about {need / 2**20:,.0f} MiB ({detail}), above "
            f"limits.memory_mb={run.limits.memory_mb}; shrink the inputs, turn off "
            "checks.finite_differences, or raise the limit")
