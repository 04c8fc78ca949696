"""Property: for random expressions, the tape's gradients equal their derivatives.

The expected derivative is computed without the runner's parser, SymPy or TensorFlow:
Python reads the test's own generated text into mpmath numbers, and mpmath
differentiates numerically at 40 significant digits.
"""

from __future__ import annotations

import re
from typing import Any

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from runner.routines import run_routine
from runner.scenarios.loading import load_run

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

    from runner.cli.main import CONFIG_DIR

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

    reads = set(re.findall(r"[a-z]+", function)) & {"x", "y"}
    for name in ("x", "y"):
        got = outcome.gradients[f"df/d{name}"]
        if name not in reads:
            assert got is None
            continue
        want = _derivative(function, name, x, y)
        assert np.isclose(got, want, rtol=1e-9, atol=1e-9), (function, name, got, want)
    assert outcome.passed, [c for c in outcome.checks if not c.passed]


MPMATH = {"sin": mpmath.sin, "cos": mpmath.cos, "tanh": mpmath.tanh, "atan": mpmath.atan, "pi": mpmath.pi,
          "sigmoid": lambda a: 1 / (1 + mpmath.exp(-a)), "softplus": lambda a: mpmath.log(1 + mpmath.exp(a))}


def _derivative(function: str, name: str, x: float, y: float) -> float:
    """d function / d name at (x, y), by mpmath; the text is this test's own, built from SMOOTH and leaves."""
    code = compile(function, "<generated>", "eval")

    def f(t: Any) -> Any:
        point = {"x": mpmath.mpf(x), "y": mpmath.mpf(y), name: t}
        return eval(code, {"__builtins__": {}}, {**MPMATH, **point})

    with mpmath.workdps(40):
        return float(mpmath.diff(f, mpmath.mpf(x if name == "x" else y)))
