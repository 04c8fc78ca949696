"""Config composition and validation, through Hydra's compose API (no TensorFlow)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from runner.errors import ConfigError
from runner.scenarios.inputs import ProgramKind
from runner.scenarios.loading import load_run
from runner.scenarios.schema import LinearScenario, ProgramScenario
from tests.conftest import SEED_SCENARIOS


@pytest.mark.parametrize("name", SEED_SCENARIOS)
def test_every_shipped_scenario_composes_and_validates(load: Callable[..., Any], name: str) -> None:
    run = load(f"scenario={name}")
    assert run.scenario.name == name
    assert run.scenario.description.strip(), "every scenario explains itself"
    assert run.dtype == "float32" and run.plots and run.report


def test_defaults(load: Callable[..., Any]) -> None:
    run = load()
    assert isinstance(run.scenario, ProgramScenario)
    assert run.scenario.function == "x**2"
    assert run.scenario.targets == {"y": "x**2"}  # the short form's one target
    assert run.scenario.plan() == {"y": ["x"]}
    assert run.scenario.inputs["x"].value == 3.0
    assert run.scenario.inputs["x"].kind is ProgramKind.variable
    assert isinstance(load("scenario=linear").scenario, LinearScenario)
    persistent = load("scenario=persistent").scenario
    assert isinstance(persistent, ProgramScenario) and persistent.function is None
    assert persistent.plan() == {"y": ["x"], "z": ["x"]}


def test_issue_spelling_of_overrides(load: Callable[..., Any]) -> None:
    run = load("scenario.inputs.x.value=1.3", "scenario.inputs.x.kind=constant",
               "scenario.inputs.x.watch=true", "scenario.function='x**3*cos(x)'")
    x = run.scenario.inputs["x"]
    assert (x.value, x.kind, x.watch) == (1.3, ProgramKind.constant, True)
    assert run.scenario.function == "x**3*cos(x)"
    assert load("scenario=sigmoid", "scenario.inputs.x.linspace.num=501").scenario.inputs[
        "x"].linspace.num == 501


def test_inputs_can_be_added_from_the_command_line(load: Callable[..., Any]) -> None:
    run = load("+scenario.inputs.y.value=2", "scenario.function='x*y + sin(x)'")
    assert run.scenario.inputs["y"].value == 2.0
    assert run.scenario.target_name() == "f"  # "y" is taken by the input
    assert run.scenario.plan() == {"f": ["x", "y"]}  # the function over every input, the new one too


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        (["scenario.inputs.x.valeu=3"], ConfigCompositionException),
        (["scenario.batch=3"], ConfigCompositionException),  # not a key of the program schema
        (["scenario=linear", "scenario.batch=three"], ConfigCompositionException),
        (["seed=abc"], ConfigCompositionException),
        (["plots=maybe"], ConfigCompositionException),
    ],
)
def test_hydra_refuses_misspelt_and_mistyped_keys(
    compose_config: Callable[..., Any], overrides: list[str], error: type
) -> None:
    with pytest.raises(error):
        compose_config(*overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["+scenario.foo=1"], "scenario.foo: Key 'foo' not in 'ProgramScenario'"),
        (["+seedd=1"], "seedd: Key 'seedd' not in 'RunConfig'"),
        (["+scenario.inputs.x.valeu=1"], "scenario.inputs.x.valeu: Key 'valeu' not in 'ProgramInput'"),
        (["scenario.inputs.x.kind=foo"], "scenario.inputs.x.kind: Invalid value 'foo'"),
        (["scenario.inputs.x.value=abc"], "scenario.inputs.x.value: 'abc' is not a finite number"),
        (["scenario.inputs.x.value=inf"], "scenario.inputs.x.value: inf is not a finite number"),
        (["scenario.inputs.x.value=nan"], "is not a finite number"),
        (["scenario.inputs.x.value=null"], "give exactly one of value, linspace or init"),
        (["scenario=sigmoid", "scenario.inputs.x.linspace.num=0"], "num must be positive"),
        (["scenario=sigmoid", "scenario.inputs.x.linspace.num=-5"], "num must be positive"),
        (["scenario=sigmoid", "scenario.inputs.x.linspace.stop=inf"], "start and stop finite"),
        (["scenario=sigmoid", "+scenario.inputs.y.linspace={start:0,stop:1,num:3}",
          "scenario.function='x*y'"],
         "scenario.function: x * y cannot broadcast shapes (201,) and (3,)"),
        (["scenario=linear", "scenario.batch=0"], "scenario.batch must be a positive integer"),
        (["scenario=linear", "scenario.out_features=-2"], "scenario.out_features must be a positive"),
        (["dtype=int32"], "integer type: GradientTape does not differentiate integer tensors"),
        (["dtype=float8"], "unknown dtype 'float8'"),
        (["scenario.function='foo(x)'"], "scenario.function: unknown function 'foo'"),
        (["scenario.function='x*z'"], "scenario.function: unknown name 'z'"),
        (["scenario.function='x +'"], "scenario.function: syntax error"),
        (["scenario.function='x.__class__'"], "attribute access"),
        (["+scenario.inputs.sin.value=1"], "'sin' is reserved"),
        (["scenario.target=x"], "also an input name"),
        (["scenario.routine=linear"], "Key 'function' not in 'LinearScenario'"),
        (["scenario.routine=nope"], "unknown routine 'nope'"),
        (["scenario=persistent", "+scenario.targets.w=q"], "scenario.targets.w: unknown name 'q'"),
        (["scenario=persistent", "+scenario.targets.x=y"], "scenario.targets.x: the name is already an"),
        (["scenario=persistent", "+scenario.function=x"], "scenario.function and scenario.targets: give one"),
        (["scenario=persistent", "scenario.target=z"], "scenario.target belongs to the short form"),
        (["scenario=sigmoid", "+scenario.closed_form.w=x"], "scenario.closed_form.w: no input named 'w'"),
        (["scenario=sigmoid", "scenario.closed_form.x='reduce_sum(x)'"],
         "scenario.closed_form.x: a closed form is a derivative at each point, so it must be elementwise; "
         "'reduce_sum(x)' is not"),
        (["scenario=sigmoid", "scenario.closed_form_for=null", "scenario.function='reduce_sum(sigmoid(x))'"],
         "so the function must be elementwise; 'reduce_sum(sigmoid(x))' is not"),
        # higher_order's one input: the programs' input spec, a number or a linspace only
        (["scenario=higher_order", "scenario.inputs.x.value=[1.0,2.0]"],
         "scenario.inputs.x.value: [1.0, 2.0] is not a finite number"),
        (["scenario=higher_order", "scenario.inputs.x.value='3'"], "scenario.inputs.x.value: '3' is not a"),
        (["scenario=higher_order", "scenario.inputs.x.value=nan"], "scenario.inputs.x.value: nan is not a"),
        (["scenario=higher_order", "scenario.inputs.x.value=null", "+scenario.inputs.x.init=normal",
          "+scenario.inputs.x.shape=[2]"], "scenario.inputs.x.init: this routine takes a value or a"),
        (["scenario=higher_order", "+scenario.inputs.x.linspace={start: 0, stop: 1, num: 3}"],
         "scenario.inputs.x: give exactly one of value, linspace or init"),
    ],
)
def test_load_run_refuses_with_a_one_line_reason(
    compose_config: Callable[..., Any], overrides: list[str], message: str
) -> None:
    try:
        cfg = compose_config(*overrides)
    except (ConfigCompositionException, ConfigKeyError, ValidationError) as err:
        pytest.fail(f"Hydra refused {overrides} itself: {err}")
    with pytest.raises(ConfigError) as caught:
        load_run(cfg)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_saved_config_without_schema_types_loads_the_same(compose_config: Callable[..., Any]) -> None:
    composed = compose_config("scenario=sigmoid", "scenario.inputs.x.linspace.num=11")
    saved = OmegaConf.create(OmegaConf.to_yaml(composed))  # what .hydra/config.yaml holds
    assert OmegaConf.get_type(saved.scenario) is dict
    assert load_run(saved) == load_run(composed)


def test_empty_targets_are_refused(compose_config: Callable[..., Any]) -> None:
    saved = OmegaConf.to_container(compose_config("scenario=persistent"))
    saved["scenario"]["targets"] = {}
    with pytest.raises(ConfigError, match="at least one step"):
        load_run(saved)


#: Scenarios as a run saved them (``.hydra/config.yaml``) while gradient, persistent and unconnected were
#: routines of their own, word for word.
OLD_SCENARIOS = {
    "gradient": {"name": "sigmoid", "routine": "gradient", "description": "sigmoid", "function": "sigmoid(x)",
                 "inputs": {"x": {"value": None, "linspace": {"start": -10.0, "stop": 10.0, "num": 201},
                                  "kind": "variable", "watch": False}},
                 "target": None, "watch_accessed_variables": True,
                 "closed_form": {"x": "sigmoid(x)*(1 - sigmoid(x))"}, "closed_form_for": "sigmoid(x)"},
    "persistent": {"name": "persistent", "routine": "persistent", "description": "",
                   "inputs": {"x": {"value": 3.0, "kind": "variable", "watch": False}},
                   "targets": {"y": "x**2", "z": "y**2"}, "persistent": False,
                   "watch_accessed_variables": True},
    "unconnected": {"name": "unconnected", "routine": "unconnected", "description": "", "function": "y**2",
                    "inputs": {"x": {"value": 1.0, "kind": "variable", "watch": False},
                               "y": {"value": 3.0, "kind": "constant", "watch": True}}},
}


@pytest.mark.parametrize("routine", OLD_SCENARIOS)
def test_a_config_saved_by_a_former_routine_loads_as_its_program(
        compose_config: Callable[..., Any], routine: str) -> None:
    saved = OmegaConf.to_container(compose_config())
    saved["scenario"] = OLD_SCENARIOS[routine]
    scenario = load_run(saved).scenario
    assert isinstance(scenario, ProgramScenario) and scenario.routine == "program"
    if routine == "gradient":
        assert scenario.targets == {"y": "sigmoid(x)"} and scenario.plan() == {"y": ["x"]}
        assert scenario.inputs["x"].linspace.num == 201 and scenario.closed_form_applies()
    if routine == "persistent":  # every target with respect to every input, in order
        assert scenario.targets == {"y": "x**2", "z": "y**2"} and not scenario.persistent
        assert scenario.plan() == {"y": ["x"], "z": ["x"]}
    if routine == "unconnected":
        assert scenario.targets == {"z": "y**2"} and scenario.plan() == {"z": ["x", "y"]}
        assert scenario.inputs["y"].kind is ProgramKind.constant and scenario.inputs["y"].watch
        saved["scenario"] = {**OLD_SCENARIOS[routine], "function": "z**2",
                             "inputs": {"z": {"value": 1.0, "kind": "variable", "watch": False}}}
        assert load_run(saved).scenario.targets == {"z1": "z**2"}  # as the routine named it


@pytest.mark.parametrize("overrides", [
    ["scenario=sigmoid"], ["scenario=program"], ["scenario=higher_order"], ["scenario=linear"],
    ["scenario=program", "scenario.inputs.x.value=[[1.0, 2.0, 3.0]]"],
])
def test_inputs_and_values_set_apart_type_as_the_whole_does(
        compose_config: Callable[..., Any], overrides: list[str]) -> None:
    """A slider's new value reuses the merged rest of its scenario: nothing inside those fields is typed."""
    from runner.scenarios.inputs import ProgramInput
    from runner.scenarios.schema import SCENARIO_SCHEMAS
    from runner.scenarios.values import typed, typed_apart

    scenario = OmegaConf.to_container(compose_config(*overrides), enum_to_str=True)["scenario"]
    schema = SCENARIO_SCHEMAS[scenario["routine"]]
    assert typed_apart(schema, scenario, "scenario", "inputs") == typed(schema, scenario, "scenario")
    for name, node in scenario.get("inputs", {}).items():
        assert typed_apart(ProgramInput, node, name, "value") == typed(ProgramInput, node, name)


def test_inputs_that_are_no_mapping_are_refused_in_one_line(compose_config: Callable[..., Any]) -> None:
    saved = OmegaConf.to_container(compose_config())
    saved["scenario"]["inputs"] = [3.0]
    with pytest.raises(ConfigError, match=r"^scenario: Cannot merge DictConfig with ListConfig") as caught:
        load_run(saved)
    assert "\n" not in str(caught.value)


def test_each_scenario_kind_estimates_its_own_memory(load: Callable[..., Any]) -> None:
    """Worked by hand from the formulas in each kind's ``memory`` (float32: 4 bytes an element)."""
    from runner.scenarios.loading import memory_estimate

    # linear, batch 4, in 3, out 2: twice over x (4x3, three times), W (3x2), y (4x2, four times) and b (2);
    # the differences: a float64 Jacobian column per element of W and b, 2 * 8 * (6 + 2)
    assert memory_estimate(load("scenario=linear")) == {"tape": 608, "finite differences": 128}
    assert memory_estimate(load("scenario=linear", "checks.finite_differences=false")) == {"tape": 608}
    assert memory_estimate(load("scenario=pitfalls")) == {"tape": 2**20, "finite differences": 0}
    # higher_order of x**2 (3 nodes) at one point, order 2: 2*4*1*(3+1)*2 and 8*1*3*2; fd 2*8*1*1
    got = memory_estimate(load("scenario=higher_order", "scenario.function='x**2'", "scenario.order=2",
                               "scenario.inputs.x.value=1.5"))
    assert got == {"tape": 64, "oracle": 48, "finite differences": 16}
