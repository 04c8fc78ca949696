"""Finite differences of the run's own TensorFlow function, in its own dtype: the routines' second opinion.

The float64 oracles (:mod:`runner.oracles`) evaluate NumPy; these nudge the tape's own
forward function, through ``tf.test.compute_gradient`` or one element at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from runner.oracles.checks import compare
from runner.oracles.tolerance import Tolerance
from runner.result import Check
from runner.tfenv import tf

SAMPLED_ELEMENT_BUDGET = 2**28  # elements evaluated by one sampled finite-difference check, at most


def finite_differences(
    fn: Callable[..., Any], args: Sequence[Any], delta: float
) -> list[np.ndarray]:
    """d sum(fn(*args)) / d arg for each arg, by central differences.

    ``tf.test.compute_gradient`` perturbs each input element by +-delta and returns
    the numerical Jacobian, shape (target size, arg size). Summing its rows gives
    the gradient of the target's sum, which is what ``tape.gradient`` returns for a
    non-scalar target; differencing each output before summing keeps float32's
    rounding error at the scale of one output, not of their sum.
    """
    tensors = [tf.convert_to_tensor(a) for a in args]
    _, numerical = tf.test.compute_gradient(fn, tensors, delta=delta)
    return [np.asarray(j).sum(axis=0).reshape(t.shape)
            for j, t in zip(numerical, tensors, strict=True)]  # pragma: no mutate (one Jacobian per argument)


def sampled_differences(
    fn: Callable[[Any], Any], arg: Any, delta: float, count: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of sum(fn(arg)) for ``count`` seeded random elements of ``arg``.

    For inputs too large to perturb one element at a time, a sample answers the
    same question at a cost proportionate to ``count``. Each output is differenced
    before summing, so the rounding error stays at the scale of one output.
    Returns the flat indices sampled and the derivative at each.
    """
    tensor = tf.convert_to_tensor(arg)
    flat = tf.reshape(tensor, [-1])
    picks = np.sort(np.random.default_rng(seed).choice(int(flat.shape[0]), size=count, replace=False))
    values = []
    for index in picks:
        nudge = tf.scatter_nd([[int(index)]], tf.constant([delta], tensor.dtype), flat.shape)
        plus = fn(tf.reshape(flat + nudge, tensor.shape))
        minus = fn(tf.reshape(flat - nudge, tensor.shape))
        values.append(float(tf.reduce_sum(plus - minus)) / (2 * delta))
    return picks, np.asarray(values)


def difference_check(
    label: str, got: Any, fn: Callable[[Any], Any], arg: Any, tol: Tolerance, delta: float,
    max_elements: int, seed: int,
) -> Check:
    """``got`` = d sum(fn(arg)) / d arg, against central differences of ``fn`` (TensorFlow's forward
    ops, never its autodiff) evaluated in float64: every element, or a sample.

    Up to ``max_elements`` each element is perturbed alone (``tf.test.compute_gradient``);
    above it, a seeded sample of elements.
    """
    arg = tf.cast(tf.convert_to_tensor(arg), tf.float64)
    size = int(np.size(got))
    if size <= max_elements:
        (fd,) = finite_differences(fn, [arg], delta)
        return compare(f"{label} vs float64 central differences (every element)", got, fd, tol)
    # Each sampled element costs two evaluations over the whole input: past a few million
    # elements, take fewer samples (never under 16) so the check stays proportionate.
    count = min(max_elements, max(16, SAMPLED_ELEMENT_BUDGET // size))
    picks, fd = sampled_differences(fn, arg, delta, count, seed)
    sampled = np.ravel(got)[picks]
    return compare(f"{label} vs float64 central differences ({count} of {size} elements)", sampled, fd, tol)
