"""Vector-valued routines: tape.jacobian, and forward mode against reverse mode.

The default F(x, y, z) = (x*y*z, sin(x) + y**2 - exp(z)) has the Jacobian
[[y*z, x*z, x*y], [cos(x), 2y, -exp(z)]], which the tests evaluate themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from runner.routines import run_routine
from tests.conftest import CliRun, assert_passed, assert_snippets_reproduce

Cli = Callable[..., CliRun]


def _jacobian(x: Any, y: Any, z: Any) -> np.ndarray:
    """dF/dX of the default F, at one point or at arrays of points: shape (..., 2, 3)."""
    x, y, z = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (x, y, z)))
    rows = [[y * z, x * z, x * y], [np.cos(x), 2 * y, -np.exp(z)]]
    return np.moveaxis(np.array(rows), (0, 1), (-2, -1))


AT_DEFAULT = _jacobian(1.0, 2.0, 0.5)  # [[1, 0.5, 2], [cos 1, 4, -exp 0.5]]


# ---------------------------------------------------------------- jacobian

def test_jacobian_of_the_default_function(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=jacobian")))
    np.testing.assert_allclose(outcome.gradients["dF/dX"], AT_DEFAULT, rtol=1e-6, atol=1e-7)
    assert outcome.gradients["dF/dX"][1, 0] == pytest.approx(np.cos(1.0), rel=1e-6)
    assert outcome.values["f"] == pytest.approx(1.0)
    assert outcome.values["g"] == pytest.approx(np.sin(1.0) + 4 - np.exp(0.5), rel=1e-6)
    np.testing.assert_array_equal(outcome.values["dF/dX (while_loop)"], outcome.gradients["dF/dX"])
    assert outcome.analytic["dF/dX"] == "Matrix([[y*z, x*z, x*y], [cos(x), 2*y, -exp(z)]])"
    names = {c.name for c in outcome.checks}
    assert {"dF/dX vs SymPy", "dF/dX vs finite differences", "dF/dX: pfor = while_loop",
            "dF/dX (batch) vs SymPy"} <= names
    assert {"jacobian_pfor", "jacobian_while_loop", "batch_jacobian"} <= set(outcome.timings)


def test_batch_jacobian_at_every_seeded_point(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=jacobian", "scenario.batch=5", "dtype=float64")))
    points = outcome.inputs["X (batch)"]
    assert points.shape == (5, 3)
    offsets = points - [1.0, 2.0, 0.5]
    assert 0 < np.abs(offsets).max() < 1  # X plus small seeded noise
    got = outcome.gradients["dF/dX (batch)"]
    assert got.shape == (5, 2, 3)
    np.testing.assert_allclose(got, _jacobian(*points.T), rtol=1e-13)
    assert outcome.values["F (batch)"][:, 0] == pytest.approx(points.prod(axis=1), rel=1e-13)
    other = run_routine(load("scenario=jacobian", "scenario.batch=5", "dtype=float64", "seed=1"))
    assert not np.array_equal(other.inputs["X (batch)"], points)
    np.testing.assert_array_equal(other.gradients["dF/dX"], outcome.gradients["dF/dX"])


@pytest.mark.parametrize("compile_mode", ["function", "xla"])
def test_jacobian_compiled_in_float64(load: Callable[..., Any], compile_mode: str) -> None:
    outcome = assert_passed(run_routine(load("scenario=jacobian", "dtype=float64",
                                             f"compile={compile_mode}")))
    np.testing.assert_allclose(outcome.gradients["dF/dX"], AT_DEFAULT, rtol=1e-14)
    assert {"jacobian_pfor_repeat", "jacobian_while_loop_repeat", "batch_jacobian_repeat"} <= set(
        outcome.timings)


def test_jacobian_without_a_batch(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=jacobian", "scenario.batch=0")))
    assert set(outcome.gradients) == {"dF/dX"}
    assert "batch_jacobian" not in outcome.timings and "X (batch)" not in outcome.inputs


def test_jacobian_in_float16_under_xla(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=jacobian", "dtype=float16", "compile=xla")))
    assert outcome.gradients["dF/dX"].dtype == np.float16
    np.testing.assert_allclose(outcome.gradients["dF/dX"], AT_DEFAULT, rtol=2e-3)


def test_an_output_that_reads_no_input_has_a_zero_row(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=jacobian", "+scenario.outputs.h=x**2",
                                             "scenario.outputs.f=3",
                                             "dtype=float64")))
    want = np.array([[0, 0, 0], AT_DEFAULT[1], [2, 0, 0]])
    np.testing.assert_allclose(outcome.gradients["dF/dX"], want, rtol=1e-14)
    np.testing.assert_array_equal(outcome.gradients["dF/dX (batch)"][:, 0], 0)


# ---------------------------------------------------------------- forward_mode

def test_forward_and_reverse_mode_build_the_same_jacobian(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=forward_mode")))
    for label in ("dF/dX (forward)", "dF/dX (reverse)"):
        np.testing.assert_allclose(outcome.gradients[label], AT_DEFAULT, rtol=1e-6, atol=1e-7)
    names = {c.name for c in outcome.checks}
    assert {"dF/dX (forward) vs SymPy", "dF/dX (reverse) vs finite differences",
            "dF/dX: forward = reverse"} <= names


def test_the_dot_product_test(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=forward_mode", "scenario.probes=7", "dtype=float64")))
    values = outcome.values
    u, v = values["probe u"], values["probe v"]
    assert u.shape == (7, 3) and v.shape == (7, 2)
    np.testing.assert_allclose(values["J u"], u @ AT_DEFAULT.T, rtol=1e-13)
    np.testing.assert_allclose(values["J^T v"], v @ AT_DEFAULT, rtol=1e-13)
    exact = np.einsum("ki,ij,kj->k", v, AT_DEFAULT, u)  # v^T J u
    np.testing.assert_allclose(values["<u, J^T v>"], exact, rtol=1e-13)
    np.testing.assert_allclose(values["<J u, v>"], exact, rtol=1e-13)
    assert values["|<u, J^T v> - <J u, v>|"].max() < 1e-13
    probes = [c for c in outcome.checks if c.name.startswith("dot-product test")]
    assert len(probes) == 7 and all(c.max_abs_err <= c.tol < 1e-8 for c in probes)


@pytest.mark.parametrize("compile_mode", ["function", "xla"])
def test_forward_mode_compiled_in_float64(load: Callable[..., Any], compile_mode: str) -> None:
    outcome = assert_passed(run_routine(load("scenario=forward_mode", "dtype=float64",
                                             f"compile={compile_mode}")))
    np.testing.assert_allclose(outcome.gradients["dF/dX (forward)"], AT_DEFAULT, rtol=1e-14)
    np.testing.assert_allclose(outcome.gradients["dF/dX (reverse)"], AT_DEFAULT, rtol=1e-14)


def test_forward_mode_in_float16(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=forward_mode", "dtype=float16", "compile=function")))
    np.testing.assert_allclose(outcome.gradients["dF/dX (forward)"], AT_DEFAULT, rtol=2e-3)


def test_an_infinite_partial_fails_every_check_that_sees_it(load: Callable[..., Any]) -> None:
    # d sqrt(x - 1)/dx is infinite at x = 1; forward mode multiplies it by the zero
    # x-component of e_y and e_z, and inf * 0 is NaN. Neither may pass.
    outcome = run_routine(load("scenario=forward_mode", "scenario.outputs.f='sqrt(x - 1)'"))
    assert not outcome.passed
    forward = outcome.gradients["dF/dX (forward)"]
    assert forward[0, 0] == np.inf and np.isnan(forward[0, 1:]).all()
    assert outcome.gradients["dF/dX (reverse)"][0, 0] == np.inf
    failed = {c.name for c in outcome.checks if not c.passed}
    assert {"dF/dX (forward) finite", "dF/dX (reverse) finite", "dot-product test 0: <u, J^T v> = <J u, v>"
            } <= failed


# ---------------------------------------------------------------- the CLI and the snippets

@pytest.mark.slow
def test_cli_jacobian_and_its_snippet(cli: Cli) -> None:
    run = cli("scenario=jacobian")
    results = run.ok()
    np.testing.assert_allclose(results["gradients"]["dF/dX"], AT_DEFAULT, rtol=1e-6, atol=1e-7)
    points = np.array(results["inputs"]["X (batch)"])
    assert points.shape == (8, 3)
    np.testing.assert_allclose(results["gradients"]["dF/dX (batch)"], _jacobian(*points.T), rtol=1e-5)
    assert {"jacobian_pfor", "jacobian_while_loop"} <= set(results["timings"])
    assert_snippets_reproduce(run.run_dirs())


@pytest.mark.slow
def test_cli_forward_mode_and_its_snippet(cli: Cli) -> None:
    run = cli("scenario=forward_mode", "dtype=float64")
    results = run.ok()
    for label in ("dF/dX (forward)", "dF/dX (reverse)"):
        np.testing.assert_allclose(results["gradients"][label], AT_DEFAULT, rtol=1e-14)
    assert len(results["values"]["<u, J^T v>"]) == 4
    np.testing.assert_allclose(results["values"]["<u, J^T v>"], results["values"]["<J u, v>"], rtol=1e-13)
    assert_snippets_reproduce(run.run_dirs())
