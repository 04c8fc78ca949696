"""What a single run prints at the prompt: each derivative, its value, and the marks of its checks."""

from __future__ import annotations

import numpy as np

from runner.outputs import console
from runner.result import Check, Outcome


def _check(name: str, passed: bool = True) -> Check:
    return Check(name, passed, 0.0, 1e-5)


def test_a_scalar_an_array_a_short_list_and_a_none_each_get_one_line() -> None:
    outcome = Outcome(
        gradients={"dy/dx": np.float32(6.0), "dz/dx": np.array([4.0, 108.0]),
                   "ds/dx": np.linspace(-1.0, 2.0, 301), "dy/dw": None},
        notes={"dy/dw": "y does not depend on w, so the tape has no path between them"},
        checks=[_check("dy/dx recorded"), _check("dy/dx finite"), _check("dy/dx vs SymPy"),
                _check("dy/dx vs float64 central differences (every element)"),
                _check("dz/dx vs float64 central differences (every element)", passed=False),
                _check("ds/dx vs closed form 2*x"), _check("dy/dw recorded")])
    assert console.lines(outcome) == [
        "dy/dx = 6.0  ✓ SymPy  ✓ float64 differences",
        "dz/dx = [4.0, 108.0]  ✗ float64 differences",
        "ds/dx = (301,) in [-1, 2]  ✓ closed form 2*x",
        "dy/dw = None (y does not depend on w, so the tape has no path between them)  ✓ None predicted",
    ]


def test_a_derivative_no_oracle_checked_says_so_and_a_long_run_says_how_many_more() -> None:
    outcome = Outcome(gradients={f"dy/dx{i}": np.float64(i + 0.5) for i in range(14)})
    shown = console.lines(outcome)
    assert shown[0] == "dy/dx0 = 0.5  (not checked)"
    assert len(shown) == 13 and shown[-1] == "... and 2 more in results.json"


def test_non_finite_elements_are_left_out_of_the_range() -> None:
    value = np.array([np.inf, 1.0, 2.0, np.nan, 3.0, -4.0, 5.0])
    shown = console.lines(Outcome(gradients={"g": value}))
    assert shown == ["g = (7,) in [-4, 5]  (not checked)"]
