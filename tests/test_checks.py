"""The comparisons every oracle's verdict goes through (runner/checks.py), against numbers written by hand.

Fast and without TensorFlow's autodiff: these are the tests ``make mutation`` runs against mutants of
the module, so each asserts a verdict, a number or a place that a small change to the code would move.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from runner import checks
from runner.checks import compare, compare_blockwise, compare_differences, projection_check
from runner.schema import Tolerance

TOL = Tolerance(rtol=1e-3, atol=1e-6)


# ------------------------------------------------------------------ compare: per element


def test_an_element_is_held_to_its_own_scale() -> None:
    # 2e-6 against -2e-6: a sign flip on an element a million times smaller than its neighbour. Against the
    # largest |want| (3.0) the bound would be 3e-3 and it would pass; against its own, 1e-6 + 2e-9.
    check = compare("g", [1.0, 2e-6, 3.0], [1.0, -2e-6, 3.0], TOL)
    assert not check.passed
    assert check.max_abs_err == pytest.approx(4e-6) and check.tol == pytest.approx(1e-6 + 1e-3 * 2e-6)
    assert check.detail == "worst element [1]: got 2e-06, want -2e-06 (error 4e-06 > 1e-06)"


def test_the_bound_is_atol_plus_rtol_times_that_element() -> None:
    want = np.array([[100.0, 1.0], [0.5, 0.0]])
    bound = 1e-6 + 1e-3 * np.abs(want)
    inside = compare("g", want + 0.99 * bound, want, TOL)
    assert inside.passed
    assert inside.max_abs_err == pytest.approx(0.99 * bound.max())  # the largest error: at 100
    outside = want.copy()
    outside[1, 0] += 1.01 * bound[1, 0]  # just past its own bound, far inside 100's
    check = compare("g", outside, want, TOL)
    assert not check.passed and check.detail.startswith("worst element [1, 0]: got 0.500506")
    assert check.tol == pytest.approx(bound[1, 0])


def test_the_worst_element_is_the_one_furthest_past_its_bound() -> None:
    want = np.array([1000.0, 1.0, 1.0])
    got = np.array([1000.5, 1.002, 1.0])  # 0.5 is within 1000's bound (1.000001); 0.002 is past 1's
    check = compare("g", got, want, TOL)
    assert not check.passed and check.detail.startswith("worst element [1]")
    assert check.max_abs_err == pytest.approx(0.5)  # the largest error is still reported as such


def test_a_failure_names_where_and_by_how_much() -> None:
    check = compare("dy/dx vs SymPy", [1.0101], [1.0], Tolerance(rtol=1e-5, atol=0.0))
    assert check.failure() == ("dy/dx vs SymPy: worst element [0]: got 1.0101, want 1.0 "
                               "(error 0.01 > 1e-05)")


def test_nan_or_inf_never_passes_and_names_its_side() -> None:
    assert compare("g", [np.nan, 1.0], [1.0, 1.0], TOL).detail == "NaN or Inf in the got values"
    assert compare("g", [1.0, 1.0], [1.0, np.inf], TOL).detail == "NaN or Inf in the expected values"
    assert not compare("g", [np.inf], [np.inf], TOL).passed


def test_shapes_must_agree() -> None:
    check = compare("g", np.zeros((2, 3)), np.zeros((3, 2)), TOL)
    assert not check.passed and check.detail == "shape (2, 3) != expected (3, 2)"


def test_a_check_of_zeros_against_zeros_is_vacuous() -> None:
    check = compare("g", np.zeros((2, 3)), np.zeros((2, 3)), TOL)
    assert check.passed and check.vacuous and check.detail.startswith("vacuous")
    assert not compare("g", [0.0, 1e-9], [0.0, 0.0], TOL).vacuous  # a difference, however small, is not
    assert not compare("g", [1.0], [1.0], TOL).vacuous


def test_blocks_report_the_global_worst_element() -> None:
    """Past THREADED_ELEMENTS the comparison goes block by block: the index is the whole array's."""
    size = checks.THREADED_ELEMENTS + 5
    want = np.ones(size)
    got = want.copy()
    got[size - 3] = 1.5  # in the last block
    check = compare("g", got, want, TOL)
    assert not check.passed and check.detail.startswith(f"worst element [{size - 3}]")
    assert check.max_abs_err == pytest.approx(0.5)


def test_compare_blockwise_finds_a_wrong_row_in_any_block() -> None:
    rows = checks.THREADED_ELEMENTS // 4 + 3
    x = np.linspace(-1, 1, rows * 4).reshape(rows, 4)
    want = 3 * x**2
    got = want.copy()
    got[rows - 2, 1] *= -1.0  # a sign flip near the end
    check = compare_blockwise("g", got, lambda a: 3 * a**2, [x], (rows, 4), (rows, 4), TOL)
    assert not check.passed and check.detail.startswith(f"worst element [{rows - 2}, 1]")
    assert compare_blockwise("g", want, lambda a: 3 * a**2, [x], (rows, 4), (rows, 4), TOL).passed


# ------------------------------------------------------------------ differences and kinks


def test_float64_differences_of_a_weighted_sum() -> None:
    point = np.array([[0.3, -1.2], [0.7, 2.0]])
    weight = np.array([[1.0, 2.0], [-1.0, 0.5]])
    got = checks.float64_differences(np.sin, point, weight, 1e-6)
    np.testing.assert_allclose(got, weight * np.cos(point), rtol=1e-9)


def test_one_sided_differences_tell_a_kink_from_a_smooth_point() -> None:
    point = np.array([0.0, 1.0])
    left, right = checks.one_sided_differences(np.abs, point, 1.0, 1e-6, [0, 1])
    np.testing.assert_allclose(left, [-1.0, 1.0], atol=1e-8)
    np.testing.assert_allclose(right, [1.0, 1.0], atol=1e-8)


def _relu_sides(point: np.ndarray) -> Any:
    return lambda elements: checks.one_sided_differences(lambda p: np.maximum(p, 0.0), point, 1.0, 1e-6,
                                                         elements)


def test_at_a_kink_a_subgradient_between_the_sides_passes() -> None:
    point = np.array([0.0, 2.0])  # relu: a kink at 0, slope 1 at 2
    central = checks.float64_differences(lambda p: np.maximum(p, 0.0), point, 1.0, 1e-6)
    assert central[0] == pytest.approx(0.5)  # the mean of the sides, which no convention gives
    check = compare_differences("g", np.array([0.0, 1.0]), central, TOL, _relu_sides(point))
    assert check.passed and check.detail.startswith("a kink: the one-sided derivatives differ")
    assert "first at element [0]" in check.detail and not check.vacuous


def test_at_a_kink_a_value_outside_the_sides_fails_and_a_smooth_error_still_fails() -> None:
    point = np.array([0.0, 2.0])
    central = checks.float64_differences(lambda p: np.maximum(p, 0.0), point, 1.0, 1e-6)
    outside = compare_differences("g", np.array([1.2, 1.0]), central, TOL, _relu_sides(point))
    assert not outside.passed and outside.max_abs_err == pytest.approx(0.2, abs=1e-6)
    smooth = compare_differences("g", np.array([0.0, 1.01]), central, TOL, _relu_sides(point))
    assert not smooth.passed and "worst element [1]" in smooth.detail


# ------------------------------------------------------------------ projections


SCALES = np.where(np.arange(600) % 3 == 0, 1e-3, 1.0)  # a third of the elements a thousand times smaller


def _sin_scaled(x: np.ndarray) -> np.ndarray:
    return np.sin(x) * SCALES


def _projection(got: np.ndarray, seed: int = 0) -> Any:
    point = np.random.default_rng(1).uniform(-1, 1, 600)
    return projection_check("g", got, _sin_scaled, lambda v: pytest.fail("a scalar needs no VJP"), point,
                            np.ones(600), Tolerance(rtol=1e-3, atol=1e-5), 1e-6, 1, seed)


def _right() -> np.ndarray:
    return np.cos(np.random.default_rng(1).uniform(-1, 1, 600)) * SCALES


def test_a_right_gradient_passes_its_projection() -> None:
    check = _projection(_right())
    assert check.passed and check.name == "g vs float64 central differences (1 random projection v.(J u))"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projections_see_sign_flips_permutations_and_small_elements(seed: int) -> None:
    right = _right()
    flipped = right * np.where(np.arange(600) % 2, -1.0, 1.0)
    permuted = np.roll(right, 1)
    small = np.where(SCALES < 1, -right, right)  # only the elements a thousand times smaller, negated
    for wrong in (flipped, permuted, small):
        assert not _projection(wrong, seed).passed


def test_directions_weigh_each_element_by_the_gradients_size() -> None:
    size = np.array([1.0, 1e-2, 1e-6, 0.0])
    u = checks.directions(np.random.default_rng(0), (4,), size)
    plain = np.random.default_rng(0).uniform(-1.0, 1.0, 4)
    divided = plain / np.array([1.0, 1e-2, 1e-3, 1e-3])  # floored at 1e-3 of the largest
    mass = np.sum(np.abs(plain) * size) / np.sum(np.abs(divided) * size)  # the plain direction's sum |u g|
    np.testing.assert_allclose(u, divided * mass)
    assert np.sum(np.abs(u) * size) == pytest.approx(np.sum(np.abs(plain) * size))
    np.testing.assert_array_equal(checks.directions(np.random.default_rng(0), (4,)), plain)


# ------------------------------------------------------------------ the rest


def test_finite_counts_what_is_not() -> None:
    check = checks.finite("y", [1.0, np.nan, np.inf, 2.0])
    assert not check.passed and check.detail == "2 of 4 values are NaN or Inf"
    assert checks.finite("y", [1.0]).passed


def test_recorded_passes_exactly_when_none_is_predicted() -> None:
    assert checks.recorded("g", None, "not watched").passed
    assert not checks.recorded("g", np.ones(2), "not watched").passed
    assert checks.recorded("g", np.ones(2), "").passed
    assert not checks.recorded("g", None, "").passed


def test_unbroadcast_sums_down_to_a_broadcast_inputs_shape() -> None:
    values = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(checks.unbroadcast(values, (3, 1)), values.sum(axis=0).sum(axis=1,
                                                                                                keepdims=True))
    np.testing.assert_array_equal(checks.unbroadcast(values, ()), values.sum())


def test_dot_and_fits() -> None:
    assert checks.dot([[1.0, 2.0]], [[3.0, 4.0]]) == 11.0
    assert checks.fits((3, 1), (2, 3, 4)) and not checks.fits((2, 4), (2, 3, 4)) and checks.fits((), (5,))


def test_nudged_gives_each_elements_derivative_in_two_evaluations() -> None:
    point = np.array([0.1, 0.5, 2.0])
    change = checks.nudged(lambda p, k: np.sin(p) * k, 1e-6)
    np.testing.assert_allclose(change(point, np.ones(3), np.array(2.0)), 2 * np.cos(point), rtol=1e-8)
    assert math.isclose(float(checks.projections(1).split()[0]), 1.0)
