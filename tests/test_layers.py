"""Keras layers as program steps: each allowlisted layer's gradients against float64 differences,
the refusals, weights fixed by the seed, projections at a million weights, Keras kept out otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from omegaconf import OmegaConf

from runner import layers
from runner.routines import program
from runner.schema import RunConfig, load_run
from tests.conftest import assert_passed

SCENARIO = "defaults:\n  - /schema/scenario/program@_here_\n  - _self_\n"

#: One step per allowlisted layer: (input shape, input kind, the step, sources beyond its variables).
LAYERS: dict[str, tuple[list[int], dict[str, Any], list[str]]] = {
    "Dense": ([3, 4], {"layer": "Dense", "input": "x", "args": {"units": 3, "activation": "tanh"}}, ["x"]),
    "Conv1D": ([2, 6, 3], {"layer": "Conv1D", "input": "x", "args": {"filters": 2, "kernel_size": 3}}, ["x"]),
    "Conv2D": ([1, 5, 5, 2], {"layer": "Conv2D", "input": "x",
                              "args": {"filters": 2, "kernel_size": [2, 2], "padding": "same"}}, ["x"]),
    "BatchNormalization": ([6, 3], {"layer": "BatchNormalization", "input": "x", "training": True}, ["x"]),
    "LayerNormalization": ([3, 4], {"layer": "LayerNormalization", "input": "x"}, ["x"]),
    "Embedding": ([2, 3], {"layer": "Embedding", "input": "x", "args": {"input_dim": 5, "output_dim": 3}}, []),
    "Flatten": ([2, 3, 2], {"layer": "Flatten", "input": "x"}, ["x"]),
    "Dropout": ([3, 4], {"layer": "Dropout", "input": "x", "args": {"rate": 0.5}, "training": False}, ["x"]),
    "Activation": ([3, 4], {"layer": "Activation", "input": "x", "args": {"activation": "sigmoid"}}, ["x"]),
    "ReLU": ([3, 4], {"layer": "ReLU", "input": "x"}, ["x"]),
    "LeakyReLU": ([3, 4], {"layer": "LeakyReLU", "input": "x", "args": {"negative_slope": 0.2}}, ["x"]),
    "ELU": ([3, 4], {"layer": "ELU", "input": "x"}, ["x"]),
    "PReLU": ([3, 4], {"layer": "PReLU", "input": "x", "args": {"alpha_initializer": "ones"}}, ["x"]),
    "Softmax": ([3, 4], {"layer": "Softmax", "input": "x"}, ["x"]),
}


@pytest.fixture
def program_run(compose_config: Callable[..., Any]) -> Callable[..., RunConfig]:
    """program_run(scenario dict fields, overrides...) -> a validated run of a program with those fields."""
    def make(fields: dict[str, Any], *overrides: str) -> RunConfig:
        values = OmegaConf.to_container(compose_config("scenario=layers", *overrides), resolve=True)
        assert isinstance(values, dict)
        values["scenario"].update(fields)
        return load_run(values)
    return make


def _one(name: str, dtype_input: str = "normal") -> dict[str, Any]:
    shape, step, sources = LAYERS[name]
    x: dict[str, Any] = {"init": dtype_input, "shape": shape}
    if name == "Embedding":  # integer indices, as a value
        x = {"value": [[0.0, 4.0, 2.0], [1.0, 1.0, 3.0]], "kind": "constant"}
    return {"inputs": {"x": x}, "targets": {"h": step, "loss": "reduce_sum(sin(h) * h)"}, "gradients": {}}


@pytest.mark.parametrize("name", layers.ALLOWED)
def test_each_allowlisted_layer_against_float64_differences(name: str, program_run: Callable[..., RunConfig]
                                                            ) -> None:
    fields = _one(name)
    run = program_run(fields, "dtype=float64")
    variables = [k for k in program.program_shapes(run.scenario) if k.startswith("h.")]
    sources = [*LAYERS[name][2], *variables]
    run.scenario.gradients = {"loss": sources}
    outcome = assert_passed(program.run(run.scenario, run))
    for source in sources:
        label = f"dloss/d{source}"
        if source.endswith(("moving_mean", "moving_variance")):  # non-trainable: None, and said why
            assert outcome.gradients[label] is None and "non-trainable" in outcome.notes[label]
            continue
        (check,) = [c for c in outcome.checks if c.name.startswith(f"{label} vs float64 central differences")]
        assert check.max_abs_err is not None and check.max_abs_err < 1e-6, check
