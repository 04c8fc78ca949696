"""Calculus for ``higher_order``'s nested tapes: names, the SymPy oracle, the compiled snippet.

The routine labels second and higher derivatives the way calculus writes them
(``d2y/dx2``) and prints a standalone snippet whose own variable names must never
collide with an input's; the oracle benchmark evaluates SymPy's derivatives with
:func:`at_inputs` too.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from runner.oracles.symbolic import oracle
from runner.result import Check
from runner.tfenv import tf


def fresh(base: str, taken: Collection[str]) -> str:
    """``base``, with underscores appended until no name in ``taken`` has it."""
    while base in taken:
        base += "_"
    return base


def fresh_names(bases: Collection[str], taken: Collection[str]) -> list[str]:
    """A fresh name for each of ``bases``, distinct from ``taken`` and from each other."""
    names: list[str] = []
    for base in bases:
        names.append(fresh(base, {*taken, *names}))
    return names


def target_name(inputs: Collection[str]) -> str:
    """The differentiated output's name: y, or f when an input is called y (as a short-form program's)."""
    return "y" if "y" not in inputs else fresh("f", inputs)


def label(target: str, source: str, order: int) -> str:
    """dy/dx, d2y/dx2, d3y/dx3, ..."""
    return f"d{target}/d{source}" if order == 1 else f"d{order}{target}/d{source}{order}"


def at_inputs(symbolic: Any, symbols: Mapping[str, Any], inputs: Mapping[str, np.ndarray],
              shape: tuple[int, ...]) -> np.ndarray:
    """A SymPy derivative (a scalar or a matrix) in float64 at the inputs, with ``shape``.

    Differentiating abs(x) twice gives SymPy's DiracDelta at the kink; TensorFlow's
    gradient of sign(x) is 0 everywhere, and so is the delta away from 0: it is
    taken as 0, which NumPy can also evaluate.
    """
    import sympy as sp

    smooth = symbolic.replace(sp.DiracDelta, lambda *args: sp.S.Zero)
    return oracle(smooth, symbols, inputs, shape, shape)


#: Exact values within this fraction of a dtype's largest number: a non-finite result may be its overflow.
NEAR_OVERFLOW = 1e-3


def explain_range(check: Check, exact: np.ndarray, dtype: str) -> Check:
    """A failed finite check, with the reason when the exact values are finite: the dtype overflowed where
    they come near its largest number; far below it, TensorFlow's derivative graph met 0*inf itself."""
    if not check.passed and np.isfinite(exact).all():
        largest = float(np.max(np.abs(exact))) if np.size(exact) else 0.0
        limit = float(tf.as_dtype(dtype).max)
        if largest >= NEAR_OVERFLOW * limit:
            check.detail += (f"; the exact values are finite (largest magnitude {largest:.3g}), but {dtype} "
                             f"overflows beyond {limit:.5g}: this value, or one computed on the way to it, "
                             "became inf")
        else:
            check.detail += (f"; the exact values are finite (largest magnitude {largest:.3g}), far inside "
                             f"{dtype}'s range: TensorFlow's derivative graph itself met 0*inf or inf - inf "
                             "on the way (the note says where)")
    return check


def compile_lines(step: str, mode: str) -> list[str]:
    """The snippet's step compiled as the run's was, so XLA's rounding is reproduced too."""
    if mode == "eager":
        return []
    return [f"{step} = tf.function({step}, jit_compile={mode == 'xla'})  # compile={mode}"]
