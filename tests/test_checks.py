"""The comparisons every oracle's verdict goes through (runner/oracles/: checks, differences, projections;
and the routines' own-dtype differences, runner/routines/tf_differences.py), against numbers written by hand.

Fast and without TensorFlow's autodiff: these are the tests ``make mutation`` runs against mutants of
the module, so each asserts a verdict, a number or a place that a small change to the code would move.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pytest

from runner.oracles import checks, differences, projections
from runner.oracles.checks import compare, compare_blockwise
from runner.oracles.differences import compare_differences
from runner.oracles.projections import projection_check
from runner.oracles.tolerance import Tolerance
from runner.result import Check
from runner.routines import tf_differences

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
    got = differences.float64_differences(np.sin, point, weight, 1e-6)
    np.testing.assert_allclose(got, weight * np.cos(point), rtol=1e-9)


def test_one_sided_differences_tell_a_kink_from_a_smooth_point() -> None:
    point = np.array([0.0, 1.0])
    left, right = differences.one_sided_differences(np.abs, point, 1.0, 1e-6, [0, 1])
    np.testing.assert_allclose(left, [-1.0, 1.0], atol=1e-8)
    np.testing.assert_allclose(right, [1.0, 1.0], atol=1e-8)


def _relu_sides(point: np.ndarray) -> Any:
    return lambda elements: differences.one_sided_differences(lambda p: np.maximum(p, 0.0), point, 1.0, 1e-6,
                                                         elements)


def test_at_a_kink_a_subgradient_between_the_sides_passes() -> None:
    point = np.array([0.0, 2.0])  # relu: a kink at 0, slope 1 at 2
    central = differences.float64_differences(lambda p: np.maximum(p, 0.0), point, 1.0, 1e-6)
    assert central[0] == pytest.approx(0.5)  # the mean of the sides, which no convention gives
    check = compare_differences("g", np.array([0.0, 1.0]), central, TOL, _relu_sides(point))
    assert check.passed and not check.vacuous
    assert check.detail == ("a kink: the one-sided derivatives differ at element [0] (0 and 1); "
                            "TensorFlow's subgradient 0 is checked to lie between them; worst element [0]: "
                            "got 0.0, want 0.0 (error 0 <= 1e-06)")


def test_at_a_kink_a_value_outside_the_sides_fails_and_a_smooth_error_still_fails() -> None:
    point = np.array([0.0, 2.0])
    central = differences.float64_differences(lambda p: np.maximum(p, 0.0), point, 1.0, 1e-6)
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
    u = projections.directions(np.random.default_rng(0), (4,), size)
    plain = np.random.default_rng(0).uniform(-1.0, 1.0, 4)
    np.testing.assert_allclose(u, plain * np.array([1.0, 100.0, 1000.0, 1000.0]))  # floored at 1e-3 of 1
    np.testing.assert_array_equal(projections.directions(np.random.default_rng(0), (4,)), plain)


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
    assert projections.dot([[1.0, 2.0]], [[3.0, 4.0]]) == 11.0
    assert checks.fits((3, 1), (2, 3, 4)) and not checks.fits((2, 4), (2, 3, 4)) and checks.fits((), (5,))


def test_nudged_gives_each_elements_derivative_in_two_evaluations() -> None:
    point = np.array([0.1, 0.5, 2.0])
    change = differences.nudged(lambda p, k: np.sin(p) * k, 1e-6)
    np.testing.assert_allclose(change(point, np.ones(3), np.array(2.0)), 2 * np.cos(point), rtol=1e-8)
    assert math.isclose(float(projections.projections(1).split()[0]), 1.0)


# ------------------------------------------------------------------ whole verdicts, field by field


def test_whole_verdicts_of_compare() -> None:
    assert compare("g", [], [], TOL) == Check("g", True, 0.0, 1e-6, "nothing to compare", vacuous=True)
    assert compare("g", np.zeros((2, 3)), np.zeros((3, 2)), TOL) == Check(
        "g", False, None, None, "shape (2, 3) != expected (3, 2)")
    assert compare("g", [np.nan], [np.inf], TOL) == Check(
        "g", False, None, None, "NaN or Inf in the got and expected values")
    assert compare("g", 2.5, 2.0, TOL) == Check("g", False, 0.5, 1e-6 + 2e-3,
                                                "worst element: got 2.5, want 2.0 (error 0.5 > 0.002)")
    assert compare("g", [2.0, 3.0], [2.0, 3.0], TOL) == Check(
        "g", True, 0.0, 1e-6 + 2e-3, "worst element [0]: got 2.0, want 2.0 (error 0 <= 0.002)")


def test_compare_widens_16_bit_and_integer_values() -> None:
    import ml_dtypes

    half = np.asarray([1.0, 2.5, -3.0], dtype=ml_dtypes.bfloat16)
    assert compare("g", half, [1.0, 2.5, -3.0], TOL).passed
    assert compare("g", np.array([1, 2]), np.array([1, 3]), TOL).max_abs_err == 1.0
    assert compare("g", [1.0, 2.0], np.array([1, 2]), TOL).passed  # an integer want, widened too


def test_an_element_exactly_at_its_bound_passes() -> None:
    tol = Tolerance(rtol=0.5, atol=0.25)  # powers of two: the bound is exact in floats
    assert compare("g", [3.0], [2.0], Tolerance(rtol=0.5, atol=0.0)).passed  # |1| <= 0.5 * 2
    assert not compare("g", [3.25], [2.0], Tolerance(rtol=0.5, atol=0.0)).passed
    assert compare("g", [2.25], [2.0], Tolerance(rtol=0.0, atol=0.25)).passed
    assert compare("g", [-1.0], [0.0], Tolerance(rtol=0.0, atol=1.0)).passed and tol.rtol == 0.5


def test_whole_verdicts_of_recorded_and_finite() -> None:
    assert checks.recorded("dy/dx", None, "why") == Check("dy/dx recorded", True, None, None,
                                                          "expected None, got None")
    assert checks.recorded("dy/dx", np.ones(1), "why") == Check("dy/dx recorded", False, None, None,
                                                                "expected None, got a gradient")
    assert checks.recorded("dy/dx", np.ones(1), "") == Check("dy/dx recorded", True, None, None,
                                                             "expected a gradient, got a gradient")
    assert checks.recorded("dy/dx", None, "") == Check("dy/dx recorded", False, None, None,
                                                       "expected a gradient, got None")
    assert checks.finite("y finite", [1.0, 2.0]) == Check("y finite", True, None, None, "")
    assert checks.finite("y finite", [np.nan]) == Check("y finite", False, None, None,
                                                        "1 of 1 values are NaN or Inf")
    import ml_dtypes

    assert not checks.finite("y", np.asarray([np.inf, 1.0], dtype=ml_dtypes.bfloat16)).passed


def test_whole_verdicts_of_a_projection() -> None:
    point = np.array([0.5, -0.25])
    right = 2 * point  # d sum(x**2) / dx
    calls: list[Any] = []

    def vjp(v: np.ndarray) -> np.ndarray:
        calls.append(v)
        return v * 2 * point

    def square(x: np.ndarray) -> np.ndarray:
        return x**2

    one = projection_check("g", right, square, vjp, point, 1.0, TOL, 1e-6, 3, 0)  # a scalar: no VJP needed
    assert one.name == "g vs float64 central differences (3 random projections v.(J u))" and one.passed
    assert calls == [] and one.max_abs_err is not None and one.max_abs_err < 1e-8 and one.detail == ""
    weight = np.array([1.0, 1.0])  # a vector target: each pair after the first takes its own cotangent

    def each(x: np.ndarray) -> np.ndarray:
        return x**2

    many = projection_check("g", right, each, vjp, point, weight, TOL, 1e-6, 3, 0)
    assert many.passed and len(calls) == 2 and all(np.shape(v) == (2,) for v in calls)
    assert not np.allclose(calls[0], weight)  # random cotangents, not the run's own
    wrong = projection_check("g", 1.5 * right, square, vjp, point, 1.0, TOL, 1e-6, 1, 0)
    assert not wrong.passed and wrong.max_abs_err is not None and wrong.tol is not None
    assert wrong.max_abs_err > wrong.tol
    numeric = wrong.max_abs_err / 0.5  # the tape's side is 1.5x the difference: the error is half of it
    assert wrong.tol == pytest.approx(1e-6 + 1e-3 * numeric)
    nan = projection_check("g", right, lambda x: x * np.nan, vjp, point, 1.0, TOL, 1e-6, 2, 0)
    assert nan == Check("g vs float64 central differences (2 random projections v.(J u))", False, None, None,
                        "NaN or Inf in a projection")
    shortcut = projection_check("g", right, square, vjp, point, 1.0, TOL, 1e-6, 1, 0,
                                across=lambda s: 4 * point * s)  # (x+s)**2 - (x-s)**2 = 4 x s
    assert shortcut.passed
    assert not projection_check("g", right, square, vjp, point, 1.0, TOL, 1e-6, 1, 0,
                                across=lambda s: 5 * point * s).passed  # and it is the shortcut read


def test_projections_are_named_by_their_count() -> None:
    assert projections.projections(1) == "1 random projection v.(J u)"
    assert projections.projections(4) == "4 random projections v.(J u)"
    assert projections.projections(2, "<v, J u>") == "2 random projections <v, J u>"


def test_directions_without_a_gradient_to_weigh_by() -> None:
    plain = np.random.default_rng(3).uniform(-1.0, 1.0, (2, 2))
    zero = projections.directions(np.random.default_rng(3), (2, 2), np.zeros((2, 2)))
    np.testing.assert_array_equal(zero, plain)  # all zero: nothing to weigh by, the plain direction
    nan = projections.directions(np.random.default_rng(3), (2, 2), np.array([[np.nan, 1.0], [1.0, 1.0]]))
    assert np.isfinite(nan).all()


def test_compare_differences_names_every_kink() -> None:
    point = np.array([0.0, 1.0, 0.0])
    central = differences.float64_differences(lambda p: np.maximum(p, 0.0), point, 1.0, 1e-6)
    check = compare_differences("g", np.array([0.25, 1.0, 1.0]), central, TOL, _relu_sides(point))
    assert check == Check("g", True, check.max_abs_err, 1e-6 + 1e-3 * 0.25, check.detail)
    assert check.max_abs_err is not None and check.max_abs_err < 1e-8  # rounding: the differences' own
    assert check.detail == ("kinks at 2 elements: the one-sided derivatives differ, first at element [0] "
                            "(0 and 1); TensorFlow's subgradient 0.25 is checked to lie between them; worst "
                            "element [0]: got 0.25, want 0.25 (error 0 <= 0.00025)")
    passing = compare("g", [1.0], [1.0], TOL)
    assert compare_differences("g", [1.0], np.array([1.0]), TOL, lambda e: pytest.fail("no sides")) == passing
    nan = compare_differences("g", [np.nan], np.array([1.0]), TOL, lambda e: pytest.fail("no sides"))
    assert nan.detail == "NaN or Inf in the got values"


def test_one_sided_differences_are_second_order() -> None:
    # exp: the second-order one-sided differences are within h**2 of e^x; first-order ones are within h
    left, right = differences.one_sided_differences(np.exp, np.array([0.0, 0.5]), 2.0, 1e-3, [1])
    assert right[0] == pytest.approx(2 * np.exp(0.5), rel=1e-6)
    assert left[0] == pytest.approx(2 * np.exp(0.5), rel=1e-6)


# ------------------------------------------------------------------ blocks


def test_in_blocks_cuts_the_range_in_order() -> None:
    assert checks.in_blocks(lambda a, b: (a, b), 10, 3) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert checks.in_blocks(lambda a, b: (a, b), 2, 5) == [(0, 2)]
    assert checks.in_blocks(lambda a, b: (a, b), 0, 4) == [(0, 0)]
    assert checks._cpus() == len(os.sched_getaffinity(0))


def _recording(seen: list[int]) -> Any:
    def fn(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        seen.append(np.shape(x)[0])
        return np.sin(x) * w
    return fn


def test_blockwise_evaluates_block_by_block_and_sums_what_is_broadcast() -> None:
    rows = checks.THREADED_ELEMENTS // 8 + 1
    x = np.linspace(-2, 2, rows * 8).reshape(rows, 8)
    w = np.linspace(1, 2, 8)  # broadcast along the rows
    seen: list[int] = []
    along = checks.blockwise(_recording(seen), [x, w], (rows, 8), (rows, 8))
    np.testing.assert_allclose(along, np.sin(x) * w)
    assert len(seen) > 1 and max(seen) <= checks.BLOCK_ELEMENTS // 8  # never the whole at once
    seen.clear()
    summed = checks.blockwise(_recording(seen), [x, w], (rows, 8), (8,))  # down to w's shape
    np.testing.assert_allclose(summed, (np.sin(x) * w).sum(axis=0))
    assert len(seen) > 1
    seen.clear()
    whole = checks.blockwise(_recording(seen), [x, w], (rows, 8), (rows, 8), split=False)
    np.testing.assert_allclose(whole, np.sin(x) * w)
    assert seen == [rows]  # asked not to split: one evaluation
    seen.clear()
    small = checks.blockwise(_recording(seen), [x[:4], w], (4, 8), (4, 8))
    np.testing.assert_allclose(small, np.sin(x[:4]) * w)
    assert seen == [4]


def test_compare_blockwise_compares_each_block_as_it_is_made() -> None:
    rows = checks.THREADED_ELEMENTS // 8 + 1
    x = np.linspace(-2, 2, rows * 8).reshape(rows, 8)
    w = np.ones(8)
    seen: list[int] = []
    right = np.sin(x)
    check = compare_blockwise("g", right, _recording(seen), [x, w], (rows, 8), (rows, 8), TOL)
    assert check.passed and len(seen) > 1 and max(seen) < rows
    assert check == compare("g", right, np.sin(x), TOL)
    wrong = right.copy()
    wrong[0, 0] = np.nan
    assert compare_blockwise("g", wrong, _recording([]), [x, w], (rows, 8), (rows, 8), TOL).detail == (
        "NaN or Inf in the got values")
    zeros = np.zeros((rows, 8))
    vacuous = compare_blockwise("g", zeros, lambda a, b: a * 0.0, [x, w], (rows, 8), (rows, 8), TOL)
    assert vacuous.vacuous and vacuous.passed


def test_fits_unbroadcast_and_dot_by_hand() -> None:
    assert checks.fits((8,), (3, 8)) and checks.fits((1, 8), (3, 8)) and not checks.fits((3, 8, 1), (3, 8))
    assert not checks.fits((2,), (3,))
    values = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(checks.unbroadcast(values, (1, 3)), [[3.0, 5.0, 7.0]])
    np.testing.assert_array_equal(checks.unbroadcast(values, (2, 1)), [[3.0], [12.0]])
    np.testing.assert_array_equal(checks.unbroadcast(values, (2, 3)), values)
    assert projections.dot(np.array([1, 2], dtype=np.int8), np.array([3, 4])) == 11.0  # widened
    assert projections.dot(np.full(3, 100, dtype=np.int8), np.full(3, 100, dtype=np.int8)) == 30000.0


# ------------------------------------------------------------------ TensorFlow's forward ops, differenced


def test_difference_check_every_element_and_a_sample() -> None:
    from runner.tfenv import tf

    x = np.linspace(-1, 1, 6)
    check = tf_differences.difference_check("g", np.cos(x), tf.sin, x, TOL, 1e-6, 8, 0)
    assert check.name == "g vs float64 central differences (every element)" and check.passed
    assert not tf_differences.difference_check("g", 1.01 * np.cos(x), tf.sin, x, TOL, 1e-6, 8, 0).passed
    big = np.linspace(-1, 1, 40)
    sampled = tf_differences.difference_check("g", np.cos(big), tf.sin, big, TOL, 1e-6, 8, 0)
    assert sampled.name == "g vs float64 central differences (8 of 40 elements)" and sampled.passed
    wrong = np.cos(big)
    wrong[::2] *= -1  # half the elements: a sample of 8 holds some of them
    assert not tf_differences.difference_check("g", wrong, tf.sin, big, TOL, 1e-6, 8, 0).passed


def test_sampled_differences_are_seeded_sorted_and_right() -> None:
    from runner.tfenv import tf

    x = np.linspace(-1, 1, 50)
    picks, values = tf_differences.sampled_differences(tf.sin, tf.constant(x), 1e-6, 5, 7)
    again, _ = tf_differences.sampled_differences(tf.sin, tf.constant(x), 1e-6, 5, 7)
    np.testing.assert_array_equal(picks, again)
    assert len(set(picks.tolist())) == 5 and list(picks) == sorted(picks)
    np.testing.assert_allclose(values, np.cos(x[picks]), rtol=1e-8)


def test_finite_differences_of_each_argument() -> None:
    from runner.tfenv import tf

    a, b = tf.constant([0.5, 1.0], tf.float64), tf.constant([[2.0], [3.0]], tf.float64)
    da, db = tf_differences.finite_differences(lambda u, v: u * v, [a, b], 1e-6)  # d sum(u v), broadcast
    np.testing.assert_allclose(da, [5.0, 5.0], rtol=1e-8)
    np.testing.assert_allclose(db, [[1.5], [1.5]], rtol=1e-8)


# ------------------------------------------------------------------ edges the mutants found


def test_the_largest_error_and_the_worst_element_can_sit_in_different_blocks() -> None:
    size = checks.THREADED_ELEMENTS + 5
    want = np.ones(size)
    want[0] = 1000.0  # a large element: its 0.5 error is within its own bound (1.000001)
    got = want.copy()
    got[0] += 0.5
    got[size - 1] = 1.002  # past 1's bound, in the last block
    check = compare("g", got, want, TOL)
    assert check.max_abs_err == pytest.approx(0.5) and check.detail.startswith(f"worst element [{size - 1}]")


def test_compare_blockwise_outside_its_blocks_is_compare() -> None:
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    w = np.ones(4)
    for got in (np.sin(x), np.sin(x).astype(np.float32)):
        found = compare_blockwise("g", got, lambda a, b: np.sin(a) * b, [x, w], (3, 4), (3, 4), TOL)
        assert found == compare("g", got, np.sin(x), TOL)
    mismatched = compare_blockwise("g", np.zeros((4, 3)), lambda a, b: a * b, [x, w], (3, 4), (3, 4), TOL)
    assert mismatched == Check("g", False, None, None, "shape (4, 3) != expected (3, 4)")
    rows = checks.THREADED_ELEMENTS // 4 + 1
    big = np.linspace(-1, 1, rows * 4).reshape(rows, 4)
    integers = np.zeros((rows, 4), dtype=np.int64)  # not float: compared whole, still right
    zero = compare_blockwise("g", integers, lambda a, b: a * 0 * b, [big, w], (rows, 4), (rows, 4), TOL)
    assert zero.vacuous
    nan = np.sin(big)
    nan[-1, -1] = np.nan
    found = compare_blockwise("g", nan, lambda a, b: np.sin(a) * b, [big, w], (rows, 4), (rows, 4), TOL)
    assert found == Check("g", False, None, None, "NaN or Inf in the got values")


def test_blocks_keep_a_broadcast_row_whole_and_sum_into_a_kept_axis() -> None:
    rows = checks.THREADED_ELEMENTS // 8 + 1
    x = np.linspace(-2, 2, rows * 8).reshape(rows, 8)
    row = np.linspace(1, 2, 8).reshape(1, 8)  # same rank as the target, broadcast along its rows: never cut
    np.testing.assert_allclose(checks.blockwise(lambda a, b: a * b, [x, row], (rows, 8), (rows, 8)), x * row)
    kept = checks.blockwise(lambda a, b: a * b, [x, row], (rows, 8), (1, 8))  # summed into a kept axis
    np.testing.assert_allclose(kept, (x * row).sum(axis=0, keepdims=True))


def test_differences_at_integer_points_are_taken_in_floats() -> None:
    grad = differences.float64_differences(lambda p: p**2, np.array([1, 2]), 1.0, 1e-6)
    np.testing.assert_allclose(grad, [2.0, 4.0], rtol=1e-8)
    left, right = differences.one_sided_differences(lambda p: p**2, np.array([1, 2]), 1.0, 1e-6, [0, 1])
    np.testing.assert_allclose(left, [2.0, 4.0], rtol=1e-6)
    np.testing.assert_allclose(right, [2.0, 4.0], rtol=1e-6)
    point = np.array([3, -1])
    check = projection_check("g", 2.0 * point, lambda p: p**2, lambda v: pytest.fail("scalar"), point, 1,
                             TOL, 1e-6, 2, 0)
    assert check.passed


def test_a_projection_is_seeded() -> None:
    point = np.random.default_rng(2).uniform(-1, 1, 50)
    first, again = (projection_check("g", 1.001 * np.cos(point), np.sin, lambda v: v, point, np.ones(50), TOL,
                                     1e-6, 1, 5) for _ in range(2))
    assert first == again
    other = projection_check("g", 1.001 * np.cos(point), np.sin, lambda v: v, point, np.ones(50), TOL, 1e-6,
                             1, 6)
    assert other.max_abs_err != first.max_abs_err  # another seed, another direction


def test_sampling_counts_and_seeds() -> None:
    from runner.tfenv import tf

    x = np.linspace(-1, 1, 40)
    every = tf_differences.difference_check("g", np.cos(x), tf.sin, x, TOL, 1e-6, 40, 0)
    assert every.name == "g vs float64 central differences (every element)"  # 40 of 40: each alone
    budget = tf_differences.SAMPLED_ELEMENT_BUDGET
    try:
        y = np.linspace(-1, 1, 41)
        tf_differences.SAMPLED_ELEMENT_BUDGET = 1000  # 1000 // 41 = 24 samples, within 16 and max_elements
        name = tf_differences.difference_check("g", np.cos(y), tf.sin, y, TOL, 1e-6, 30, 0).name
        assert name == "g vs float64 central differences (24 of 41 elements)"
        tf_differences.SAMPLED_ELEMENT_BUDGET = 100  # 100 // 41 = 2: never under 16
        floor = tf_differences.difference_check("g", np.cos(y), tf.sin, y, TOL, 1e-6, 30, 0).name
        assert floor == "g vs float64 central differences (16 of 41 elements)"
    finally:
        tf_differences.SAMPLED_ELEMENT_BUDGET = budget
    picks, _ = tf_differences.sampled_differences(tf.sin, tf.constant(x), 1e-6, 36, 3)  # never twice
    assert len(set(picks.tolist())) == 36
    wrong = np.cos(x)
    picked = tf_differences.sampled_differences(tf.sin, tf.constant(x), 1e-6, 16, 0)[0]
    unpicked = sorted(set(range(40)) - set(picked.tolist()))
    wrong[unpicked] *= -1  # wrong only where seed 0 does not look: the sample passes, as sampling must
    assert tf_differences.difference_check("g", wrong, tf.sin, x, TOL, 1e-6, 16, 0).passed  # its 16 of 40


def test_finite_differences_take_the_step_given() -> None:
    from runner.tfenv import tf

    x = tf.constant([0.1, 0.3], tf.float64)
    (grad,) = tf_differences.finite_differences(lambda t: tf.exp(10 * t), [x], 1e-6)  # h**2 f''' / 6 ~ 2e-11
    np.testing.assert_allclose(grad, 10 * np.exp(10 * x.numpy()), rtol=1e-8)  # TensorFlow's 1/1024: 2e-5


def test_the_weight_multiplies_a_nudged_difference() -> None:
    change = differences.nudged(lambda p: np.sin(p), 1e-6)
    np.testing.assert_allclose(change(np.array([0.5]), np.array([3.0])), [3 * np.cos(0.5)], rtol=1e-8)


def test_directions_read_a_nan_as_nothing_and_floor_relative_to_the_largest() -> None:
    size = np.array([4.0, np.nan, 1e-6, -2.0])
    u = projections.directions(np.random.default_rng(0), (4,), size)
    plain = np.random.default_rng(0).uniform(-1.0, 1.0, 4)
    np.testing.assert_allclose(u, plain * np.array([1.0, 1000.0, 1000.0, 2.0]))  # NaN: 0; floor 4e-3
    assert projections.directions(np.random.default_rng(0), (0,), np.zeros(0)).shape == (0,)
    below_one = projections.directions(np.random.default_rng(0), (4,), np.array([0.5, np.inf, 1e-6, -0.25]))
    np.testing.assert_allclose(below_one, plain * np.array([1.0, 1000.0, 1000.0, 2.0]))  # Inf: 0; floor 5e-4
    scale = np.array([3.0, 1.0])
    projections.directions(np.random.default_rng(0), (2,), scale)
    np.testing.assert_array_equal(scale, [3.0, 1.0])  # the gradient itself untouched


def test_unbroadcast_to_all_ones() -> None:
    values = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(checks.unbroadcast(values, (1, 1)), [[15.0]])
    assert checks.unbroadcast(np.arange(3), (3,)).dtype == np.float64


def _sides_of(fn: Any, point: np.ndarray) -> Any:
    return lambda elements: differences.one_sided_differences(fn, point, 1.0, 1e-6, elements)


def test_a_kinks_interval_holds_values_of_either_sign_and_bounds_both_ends() -> None:
    point = np.array([0.0])
    v_shape = lambda p: np.maximum(2 * p, -p)  # noqa: E731  sides -1 and 2 at 0; central 0.5
    central = differences.float64_differences(v_shape, point, 1.0, 1e-6)
    assert central[0] == pytest.approx(0.5)
    assert compare_differences("g", [-0.5], central, TOL, _sides_of(v_shape, point)).passed  # inside [-1, 2]
    relu = np.array([0.0])
    central = differences.float64_differences(lambda p: np.maximum(p, 0.0), relu, 1.0, 1e-6)
    below = compare_differences("g", [-0.2], central, TOL, _relu_sides(relu))
    assert not below.passed and below.max_abs_err == pytest.approx(0.2, abs=1e-6)  # below the low end
    shallow = np.array([0.0])
    slight = lambda p: 0.02 * np.maximum(p, 0.0)  # noqa: E731  sides 0 and 0.02: a kink of small slopes
    central = differences.float64_differences(slight, shallow, 1.0, 1e-6)
    assert compare_differences("g", [0.0], central, TOL, _sides_of(slight, shallow)).passed


def test_a_scalar_kinks_detail_and_an_all_zero_kink() -> None:
    point = np.array(0.0)
    central = differences.float64_differences(lambda p: np.maximum(p, 0.0), point, 1.0, 1e-6)
    check = compare_differences("g", np.array(0.0), central, TOL, _relu_sides(point))
    assert check == Check("g", True, 0.0, 1e-6, "a kink: the one-sided derivatives differ (0 and 1); "
                          "TensorFlow's subgradient 0 is checked to lie between them", vacuous=False)


def test_a_projections_ratio_past_one_fails() -> None:
    point = np.random.default_rng(8).uniform(-1, 1, 30)
    right = 3 * np.cos(3 * point)

    def fn(p: np.ndarray) -> np.ndarray:
        return np.sin(3 * p)

    tol = Tolerance(rtol=1e-3, atol=0.0)
    assert not projection_check("g", 1.0015 * right, fn, lambda v: v, point, 1.0, tol, 1e-7, 1, 0).passed
    assert projection_check("g", 1.0005 * right, fn, lambda v: v, point, 1.0, tol, 1e-7, 1, 0).passed


def test_the_difference_step_is_the_one_given() -> None:
    from runner.tfenv import tf

    x = np.array([0.1, 0.3])
    exact = 10 * np.exp(10 * x)
    tight = Tolerance(rtol=1e-8, atol=0.0)  # the default step (1/1024) would be 2e-5 off
    assert tf_differences.difference_check("g", exact, lambda t: tf.exp(10 * t), x, tight, 1e-6, 8, 0).passed


def test_compare_blockwise_honours_split_false() -> None:
    rows = checks.THREADED_ELEMENTS // 4 + 1
    x = np.linspace(-1, 1, rows * 4).reshape(rows, 4)

    def centred(a: np.ndarray) -> np.ndarray:  # reads every row: not to be cut into blocks
        return a - a.mean(axis=0)

    right = x - x.mean(axis=0)
    assert compare_blockwise("g", right, centred, [x], (rows, 4), (rows, 4), TOL, split=False).passed


def test_a_weighted_projection_steps_no_element_further_than_delta() -> None:
    # f = x0 + 0.001 |x1| at (1, 0.01): the small gradient weighs x1 up to 1000 times, and a step of
    # 1000 * delta (about 1) along it would straddle the kink at 0 and be 2% off; delta itself does not
    point = np.array([1.0, 0.01])

    def fn(p: np.ndarray) -> np.ndarray:
        return p[0] + 1e-3 * np.abs(p[1])

    tight = Tolerance(rtol=1e-9, atol=1e-12)
    for seed in range(5):
        check = projection_check("g", np.array([1.0, 1e-3]), fn, lambda v: v, point, 1.0, tight, 2**-10, 1,
                                 seed)
        assert check.passed, check.detail


def test_a_projection_of_an_empty_source_compares_nothing_and_passes() -> None:
    check = projection_check("g", np.zeros(0), np.sum, lambda v: v, np.zeros(0), 1.0, TOL, 1e-3, 1, 0)
    assert check.passed and check.max_abs_err == 0.0
