"""Property: for random expressions, the tape's gradients equal SymPy's derivatives."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from runner import expr
from runner.routines import run_routine
from runner.schema import load_run

# Functions defined and smooth on the whole real line, so any point is fair.
SMOOTH = ("sin", "cos", "tanh", "sigmoid", "softplus", "atan")

leaves = st.sampled_from(["x", "y", "x", "y", "2", "0.5", "pi"])


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(st.sampled_from(SMOOTH), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(children, st.sampled_from(["+", "-", "*"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(children, children).map(lambda t: f"({t[0]}) / (2 + cos({t[1]}))"),
        st.tuples(children, st.sampled_from(["2", "3"])).map(lambda t: f"({t[0]})**{t[1]}"),
        children.map(lambda c: f"-({c})"),
    )


expressions = st.recursive(leaves, _extend, max_leaves=8)
points = st.floats(min_value=-2.0, max_value=2.0, allow_nan=False, allow_infinity=False)


@pytest.fixture(scope="module")
def base_config() -> dict[str, Any]:
    from hydra import compose, initialize_config_dir

    from runner.app import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["+scenario.inputs.y.value=0", "dtype=float64",
                                                       "checks.finite_differences=false"])
    return OmegaConf.to_container(cfg)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(function=expressions, x=points, y=points)
def test_tape_gradients_equal_sympy(base_config: dict[str, Any], function: str, x: float, y: float) -> None:
    config = {**base_config, "scenario": {**base_config["scenario"], "function": function}}
    config["scenario"]["inputs"] = {"x": {"value": x}, "y": {"value": y}}
    outcome = run_routine(load_run(config))

    backend = expr.SymPyBackend()
    symbols = backend.symbols(["x", "y"])
    f = expr.evaluate(expr.parse(function, ["x", "y"]), symbols, backend)
    reads = expr.names(expr.parse(function, ["x", "y"]))
    for name in ("x", "y"):
        got = outcome.gradients[f"df/d{name}"]
        if name not in reads:
            assert got is None
            continue
        want = float(sp.diff(f, symbols[name]).subs({symbols["x"]: x, symbols["y"]: y}).evalf())
        assert np.isclose(got, want, rtol=1e-9, atol=1e-9), (function, name, got, want)
    assert outcome.passed, [c for c in outcome.checks if not c.passed]


