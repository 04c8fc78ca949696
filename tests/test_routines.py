"""The seed's scenarios in-process (programs, and the linear routine): their numbers, the watch rules,
the oracles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from runner.routines import run_routine
from runner.routines.linear import make_data
from tests.conftest import assert_passed, linear_loss_gradients

EVERY_ELEMENT = "float64 central differences (every element)"


def test_basic_gradient_of_x_squared_at_3(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load()))
    assert outcome.gradients["dy/dx"] == pytest.approx(6.0)
    assert outcome.analytic["dy/dx"] == "2*x"
    names = [c.name for c in outcome.checks]
    assert "dy/dx vs SymPy" in names and f"dy/dx vs {EVERY_ELEMENT}" in names


@pytest.mark.parametrize(
    ("kind", "watch", "auto", "expected"),
    [
        ("variable", False, True, 6.0),
        ("variable", True, True, 6.0),
        ("variable", False, False, None),  # neither watched nor auto-watched
        ("variable", True, False, 6.0),
        ("constant", False, True, None),
        ("constant", True, True, 6.0),
        ("constant", False, False, None),
        ("constant", True, False, 6.0),
    ],
)
def test_what_the_tape_watches(
    load: Callable[..., Any], kind: str, watch: bool, auto: bool, expected: float | None
) -> None:
    outcome = assert_passed(run_routine(load(
        "scenario=watch", f"scenario.inputs.x.kind={kind}", f"scenario.inputs.x.watch={watch}",
        f"scenario.watch_accessed_variables={auto}")))
    got = outcome.gradients["dy/dx"]
    if expected is None:
        assert got is None
        assert "tape.watch(x) was not called" in outcome.notes["dy/dx"]
    else:
        assert got == pytest.approx(expected)


def test_unconnected_input_has_no_gradient(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("+scenario.inputs.w.value=1", "scenario.function='x**2'")))
    assert outcome.gradients["dy/dw"] is None
    assert "does not depend on w" in outcome.notes["dy/dw"]


def test_sigmoid_derivative_is_a_bell_peaking_at_a_quarter(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=sigmoid")))
    x, d = outcome.inputs["x"], outcome.gradients["dy/dx"]
    assert x.shape == d.shape == (201,)
    assert d.max() == pytest.approx(0.25, abs=1e-6)
    assert x[d.argmax()] == pytest.approx(0.0, abs=1e-6)
    sig = 1 / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(d, sig * (1 - sig), atol=1e-6)
    assert any("closed form" in c.name for c in outcome.checks)
    (curve,) = outcome.figures
    assert curve.filename == "sigmoid.png" and len(curve.series) == 2


@pytest.mark.parametrize("loss", ["mean_square", "mse"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_gradients_equal_the_gradient_of_the_loss(
        load: Callable[..., Any], loss: str, dtype: str) -> None:
    run = load("scenario=linear", f"scenario.loss={loss}", f"dtype={dtype}",
               "scenario.batch=5", "scenario.in_features=4", "scenario.out_features=3")
    outcome = assert_passed(run_routine(run))
    assert outcome.gradients["dloss/dW"].shape == (4, 3)
    assert outcome.gradients["dloss/db"].shape == (3,)
    data = make_data(run.scenario, run.seed)
    want = linear_loss_gradients({k: v.astype(dtype).astype(np.float64) for k, v in data.items()})
    tol = 1e-5 if dtype == "float32" else 1e-10
    for label in ("dloss/dW", "dloss/db"):
        np.testing.assert_allclose(outcome.gradients[label], want[label], rtol=tol, atol=tol)
    assert ("targets" in outcome.inputs) == (loss == "mse")


def test_linear_is_seeded(load: Callable[..., Any]) -> None:
    first = run_routine(load("scenario=linear", "seed=7"))
    again = run_routine(load("scenario=linear", "seed=7"))
    other = run_routine(load("scenario=linear", "seed=8"))
    np.testing.assert_array_equal(first.gradients["dloss/dW"], again.gradients["dloss/dW"])
    assert not np.array_equal(first.gradients["dloss/dW"], other.gradients["dloss/dW"])


def test_persistent_tape_gives_several_gradients(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=persistent")))
    assert outcome.gradients["dy/dx"] == pytest.approx(6.0)
    assert outcome.gradients["dz/dx"] == pytest.approx(108.0)
    assert outcome.analytic["dz/dx"] == "4*x**3"


def test_non_persistent_tape_raises_on_the_second_call_as_expected(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=persistent", "scenario.persistent=false")))
    assert outcome.gradients["dy/dx"] == pytest.approx(6.0)
    assert outcome.gradients["dz/dx"] is None
    assert "RuntimeError" in outcome.notes["dz/dx"]
    (refusal,) = [c for c in outcome.checks if "raises RuntimeError" in c.name]
    assert refusal.passed
    assert refusal.name == "dz: second gradient() on a non-persistent tape raises RuntimeError"
    assert refusal.detail.startswith("TensorFlow said: A non-persistent GradientTape can only be used to")


@pytest.mark.parametrize(("overrides", "expected"), [
    ([], {"dz/dx": 0.0, "dz/dy": 6.0}),
    (["scenario.unconnected_gradients=none"], {"dz/dx": None, "dz/dy": 6.0}),
    (["scenario.unconnected_gradients=none", "scenario.inputs.y.kind=constant"],
     {"dz/dx": None, "dz/dy": None}),  # read, but unwatched
    (["scenario.inputs.y.kind=constant"], {"dz/dx": 0.0, "dz/dy": 0.0}),
    (["scenario.function='y**2 + sin(x)'"], {"dz/dx": float(np.cos(1.0)), "dz/dy": 6.0}),
    # The crash, the guide's unconnected_gradients=ZERO example: zeros shaped like x; None with none.
    (["scenario.inputs.x.value=null", "+scenario.inputs.x.linspace={start: 2, stop: 2, num: 2}",
      "scenario.inputs.y.value=3"], {"dz/dx": [0.0, 0.0], "dz/dy": 6.0}),
    (["scenario.inputs.x.value=null", "+scenario.inputs.x.linspace={start: 2, stop: 2, num: 2}",
      "scenario.inputs.y.value=3", "scenario.unconnected_gradients=none"],
     {"dz/dx": None, "dz/dy": 6.0}),
])
def test_unconnected_gives_none_or_zeros(
        load: Callable[..., Any], overrides: list[str], expected: dict[str, Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=unconnected", *overrides)))
    for label, want in expected.items():
        got = outcome.gradients[label]
        if want is None:
            assert got is None, label
        else:
            assert np.shape(got) == np.shape(want) and np.allclose(got, want, rtol=1e-6), (label, got)
    if "y**2 + sin(x)" not in str(overrides):  # None or zeros, the note says why
        assert outcome.notes["dz/dx"].startswith("z does not depend on x, so the tape has no path")


def test_a_wrong_gradient_fails_its_check(load: Callable[..., Any]) -> None:
    # sqrt at 0: TensorFlow's gradient is inf, and inf never passes a check.
    outcome = run_routine(load("scenario.function='sqrt(x)'", "scenario.inputs.x.value=0"))
    assert not outcome.passed
    failed = [c for c in outcome.checks if not c.passed]
    assert failed and all("NaN or Inf" in c.detail for c in failed)


@pytest.mark.parametrize(
    ("function", "value", "derivative"),
    [
        ("x**3*cos(x)", 1.3, lambda x: 3 * x**2 * np.cos(x) - x**3 * np.sin(x)),
        ("softplus(x) + relu(x)", -0.5, lambda x: 1 / (1 + np.exp(-x))),
        ("abs(x) * tanh(x)", -2.0, lambda x: -np.tanh(x) + abs(x) * (1 - np.tanh(x) ** 2)),
        ("log1p(x**2) / sqrt(1 + x**2)", 0.7,
         lambda x: 2 * x / (1 + x**2) ** 1.5 - x * np.log1p(x**2) / (1 + x**2) ** 1.5),
    ],
)
def test_unseen_functions_in_float64(
    load: Callable[..., Any], function: str, value: float, derivative: Callable[[float], float]
) -> None:
    outcome = assert_passed(run_routine(load(f"scenario.function='{function}'",
                                             f"scenario.inputs.x.value={value}",
                                             "dtype=float64")))
    assert outcome.gradients["dy/dx"] == pytest.approx(derivative(value), rel=1e-12)


def test_nudging_every_element_together_equals_nudging_each_alone() -> None:
    """What lets an elementwise check cover every element of a large input in two evaluations."""
    from runner.oracles.checks import blockwise
    from runner.oracles.differences import float64_differences, nudged

    y = np.array([[0.5, -1.0, 2.0, 3.0]])  # broadcast: each x[i] feeds a row of outputs

    def fn(t: np.ndarray) -> np.ndarray:
        return np.sin(t) * y + t**3

    x = np.array([[0.1], [-0.7], [1.3]])
    weight = np.array([[1.0, 2.0, 0.5, -1.0]])
    together = blockwise(nudged(fn, 1e-6), [x, weight], (3, 4), x.shape)
    alone = float64_differences(fn, x, weight, 1e-6)
    assert together.shape == (3, 1)
    np.testing.assert_allclose(together, alone, rtol=1e-8)
    np.testing.assert_allclose(together, -3.5 * np.cos(x) + 7.5 * x**2, rtol=1e-7)  # sum(w y), 3 sum(w)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Blocks of 16 elements from 64 elements on: the path a curve of millions of points takes, on
    arrays small enough to check by hand. Returns the shapes the blocked functions were given."""
    from runner.oracles import checks

    monkeypatch.setattr(checks, "THREADED_ELEMENTS", 64)
    monkeypatch.setattr(checks, "BLOCK_ELEMENTS", 16)
    seen: list[tuple[int, ...]] = []
    part = checks._Blocks.part
    monkeypatch.setattr(checks._Blocks, "part", lambda self, start, stop: (
        seen.append((start, stop)), part(self, start, stop))[1])
    return seen


def test_blocks_cut_what_spans_the_leading_axis_and_sum_what_is_broadcast(
        small_blocks: list[tuple[int, ...]]) -> None:
    from runner.oracles.checks import blockwise

    x = np.linspace(-2.0, 2.0, 80).reshape(40, 2)  # 8 rows a block: cut
    b = np.array([0.5, -1.5])  # broadcast along the rows: whole to every block
    c = np.full((1, 2), 3.0)

    def fn(x: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.sin(x) * b + c

    want = np.sin(x) * b + c
    np.testing.assert_array_equal(blockwise(fn, [x, b, c], (40, 2), (40, 2)), want)
    assert sorted(small_blocks) == [(0, 8), (8, 16), (16, 24), (24, 32), (32, 40)]
    np.testing.assert_allclose(blockwise(fn, [x, b, c], (40, 2), (2,)), want.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(blockwise(fn, [x, b, c], (40, 2), (1, 2)), want.sum(axis=0, keepdims=True),
                               rtol=1e-12)
    np.testing.assert_allclose(blockwise(fn, [x, b, c], (40, 2), ()), want.sum(), rtol=1e-12)
    assert len(small_blocks) == 20
    big = np.ones((3, 40, 2))  # does not broadcast to (40, 2): one evaluation over whole arrays
    np.testing.assert_array_equal(blockwise(lambda t: t.sum(axis=0), [big], (40, 2), (40, 2)), 3 * big[0])
    np.testing.assert_array_equal(blockwise(fn, [x, b, c], (40, 2), (40, 2), split=False), want)
    assert len(small_blocks) == 20


def test_a_wrong_element_in_any_block_fails(small_blocks: list[tuple[int, ...]]) -> None:
    from runner.oracles.checks import compare_blockwise
    from runner.oracles.tolerance import Tolerance

    x = np.linspace(-3.0, 3.0, 1000)
    right, tol = -np.sin(x), Tolerance(rtol=1e-6, atol=1e-9)
    assert compare_blockwise("cos'", right, np.cos, [x], (1000,), (1000,), tol).passed is False
    check = compare_blockwise("cos", np.cos(x), np.cos, [x], (1000,), (1000,), tol)
    assert check.passed and check.max_abs_err == 0.0 and len(small_blocks) == 2 * 63
    for index in (0, 517, 999):
        wrong = np.cos(x)
        wrong[index] += 1e-3
        check = compare_blockwise("cos", wrong, np.cos, [x], (1000,), (1000,), tol)
        assert not check.passed and check.max_abs_err == pytest.approx(1e-3, rel=1e-9)
    wrong[600] = np.nan
    check = compare_blockwise("cos", wrong, np.cos, [x], (1000,), (1000,), tol)
    assert not check.passed and check.detail == "NaN or Inf in the got values"


def test_a_wrong_derivative_fails_every_elementwise_oracle_through_the_blocks(
        load: Callable[..., Any], small_blocks: list[tuple[int, ...]]) -> None:
    """SymPy, the closed form and the nudged differences, each over blocks of 16 points, on 1000."""
    from runner.result import Outcome
    from runner.routines import pointwise
    from runner.routines.program import Program

    program = Program((run := load("scenario=sigmoid", "scenario.inputs.x.linspace.num=1000")).scenario, run)
    s = 1 / (1 + np.exp(-program.held["x"]))
    for wrong_at in (None, 0, 517, 999):
        got = (s * (1 - s)).astype(np.float32)
        if wrong_at is not None:
            got[wrong_at] += 1e-3
        outcome = Outcome(gradients={"dy/dx": got})
        pointwise.symbolic_check(program, outcome)("dy/dx", "y", "x", got)
        pointwise.check_closed_forms(program, outcome)
        outcome.checks.append(pointwise.difference_check(program, "dy/dx", "y", "x", got))
        assert [c.name for c in outcome.checks] == [
            "dy/dx vs SymPy", "dy/dx vs closed form sigmoid(x)*(1 - sigmoid(x))",
            "dy/dx vs float64 central differences (all 1000 elements, nudged together)"]
        assert [c.passed for c in outcome.checks] == [wrong_at is None] * 3
    assert len(small_blocks) == 4 * 3 * 63


def test_a_broadcast_source_is_summed_over_the_blocks(
        load: Callable[..., Any], small_blocks: list[tuple[int, ...]]) -> None:
    """dy/dk for a scalar k read at every point: each block's share, summed."""
    outcome = assert_passed(run_routine(load(
        "scenario=sigmoid", "scenario.function='sigmoid(k*x)'", "scenario.inputs.x.linspace.num=1000",
        "scenario.inputs.x.linspace.start=-2", "+scenario.inputs.k.value=1.5", "dtype=float64",
        "checks.fd_max_elements=0")))  # k too: nudged, each block its share of dy/dk
    x = np.linspace(-2.0, 10.0, 1000)
    s = 1 / (1 + np.exp(-1.5 * x))
    np.testing.assert_allclose(outcome.gradients["dy/dk"], np.sum(x * s * (1 - s)), rtol=1e-12)
    np.testing.assert_allclose(outcome.gradients["dy/dx"], 1.5 * s * (1 - s), rtol=1e-9, atol=1e-15)
    names = [c.name for c in outcome.checks]
    assert "dy/dk vs SymPy" in names
    assert "dy/dk vs float64 central differences (all 1 elements, nudged together)" in names
    assert small_blocks


def test_large_curves_are_checked_at_every_element(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load(
        "scenario=sigmoid", "scenario.inputs.x.linspace.num=3000", "checks.fd_max_elements=100")))
    (check,) = [c for c in outcome.checks if "central differences" in c.name]
    assert check.name == "dy/dx vs float64 central differences (all 3000 elements, nudged together)"
    assert "dy/dx vs SymPy" in [c.name for c in outcome.checks]  # one symbol for x, at any size
    assert 0 < check.max_abs_err <= check.tol


def test_analytic_checks_off_means_the_closed_form_too(load: Callable[..., Any]) -> None:
    outcome = assert_passed(run_routine(load("scenario=sigmoid", "checks.analytic=false")))
    names = [c.name for c in outcome.checks]
    assert not [n for n in names if "closed form" in n or "SymPy" in n]
    assert f"dy/dx vs {EVERY_ELEMENT}" in names


def test_one_wrong_element_among_a_million_fails_the_elementwise_check() -> None:
    from runner.oracles.checks import THREADED_ELEMENTS, compare_blockwise
    from runner.oracles.differences import nudged
    from runner.oracles.tolerance import Tolerance

    x = np.linspace(-3.0, 3.0, 1_100_000)  # past THREADED_ELEMENTS: blocks, in threads
    assert x.size > THREADED_ELEMENTS
    right = np.cos(x)
    wrong = right.copy()
    wrong[1_023_457] += 1e-3  # a sample of a few dozen elements would almost surely miss it
    tol = Tolerance(rtol=1e-6, atol=1e-8)
    arrays = [x, np.ones(x.shape)]
    passed = compare_blockwise("dy/dx", right, nudged(np.sin, 1e-6), arrays, x.shape, x.shape, tol)
    failed = compare_blockwise("dy/dx", wrong, nudged(np.sin, 1e-6), arrays, x.shape, x.shape, tol)
    assert passed.passed and not failed.passed
    assert failed.max_abs_err == pytest.approx(1e-3, rel=1e-3)



SIGMOID_FORM = "dy/dx vs closed form sigmoid(x)*(1 - sigmoid(x))"


@pytest.mark.parametrize(("overrides", "closed_form"), [
    (["scenario=sigmoid"], SIGMOID_FORM),
    (["scenario=sigmoid", "scenario.function='sigmoid( x )'"], SIGMOID_FORM),
    (["experiment=softplus_family"], "dy/dx vs closed form sigmoid(k*x)"),
    (["scenario=sigmoid", "scenario.function='exp(x)'"], None),
])
def test_a_closed_form_is_checked_only_for_its_own_function(
    load: Callable[..., Any], overrides: list[str], closed_form: str | None
) -> None:
    outcome = assert_passed(run_routine(load(*overrides)))
    names = [c.name for c in outcome.checks]
    assert "dy/dx vs SymPy" in names and f"dy/dx vs {EVERY_ELEMENT}" in names
    if closed_form is None:
        assert not [n for n in names if "closed form" in n]
        assert outcome.notes["dy/dx"].startswith("closed form sigmoid(x)*(1 - sigmoid(x)) not checked")
    else:
        assert closed_form in names and "dy/dx" not in outcome.notes


def test_the_short_form_speaks_the_whole_tensor_language(load: Callable[..., Any]) -> None:
    """A reduction is no elementwise function: SymPy then takes one symbol per element (201 > 64: skipped),
    the float64 differences every element, and the closed form, written for sigmoid(x), is dropped."""
    run = load("scenario=sigmoid", "scenario.function='reduce_sum(sigmoid(x))'")
    outcome = assert_passed(run_routine(run))
    x = outcome.inputs["x"].astype(np.float64)
    np.testing.assert_allclose(outcome.gradients["dy/dx"], np.exp(-x) / (1 + np.exp(-x)) ** 2, atol=1e-7)
    assert outcome.values["y"].shape == ()
    assert f"dy/dx vs {EVERY_ELEMENT}" in [c.name for c in outcome.checks]
    assert "SymPy check skipped" in outcome.notes["dy/dx"] and "closed form" in outcome.notes["dy/dx"]


def test_sympy_is_skipped_with_a_note_where_its_derivative_is_too_large(load: Callable[..., Any]) -> None:
    """59 factors: SymPy's derivative would pass sympy_cost's bound; the differences still check it."""
    function = "*".join(f"sin(cos({i}*x))" for i in range(1, 60))
    outcome = assert_passed(run_routine(load(f"scenario.function='{function}'",
                                             "scenario.inputs.x.value=0.01", "dtype=float64")))
    note = outcome.notes["dy/dx"]
    assert note.startswith("SymPy check skipped: its derivatives would be about") and "above 12,000" in note
    assert not [c for c in outcome.checks if "SymPy" in c.name]
    assert f"dy/dx vs {EVERY_ELEMENT}" in [c.name for c in outcome.checks]
