"""SymPy's derivatives as NumPy functions: the analytic oracle the routines share.

A derivative depends only on its expression, so each is made a NumPy function
once per process (:func:`oracle` caches it) and then evaluated in float64 at
whatever inputs a run holds, however many elements they have.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from runner.oracles.checks import unbroadcast


def numeric(symbols: list[Any], symbolic: Any) -> Callable[..., Any]:
    """A NumPy function of ``symbols`` computing ``symbolic``: SymPy's lambdify, on renamed symbols.

    lambdify prints the expression as Python source and runs it with ``exec``, in a namespace
    that maps NumPy's names (sign, greater, select, ...) and also each symbol's own name to
    the symbol. An input called ``sign`` would shadow the function the source calls, so the
    symbols are first replaced with Dummy symbols, which print as ``_Dummy_<n>``: the source
    holds only those names, NumPy's function names and numbers, never a name from a config.
    """
    import sympy as sp

    fresh = [sp.Dummy(real=True) for _ in symbols]  # pragma: no mutate (printing ignores assumptions)
    renamed = symbolic.xreplace(dict(zip(symbols, fresh, strict=True)))  # pragma: no mutate (equal lengths)
    # cse: shared subterms computed once; NumPy is lambdify's own default where it is installed
    return sp.lambdify(fresh, renamed, "numpy", cse=True)  # pragma: no mutate (speed, or the default)


def oracle(
    symbolic: Any,
    symbols: Mapping[str, Any],
    inputs: Mapping[str, np.ndarray],
    out_shape: tuple[int, ...],
    in_shape: tuple[int, ...],
    weight: Any = 1.0,
) -> np.ndarray:
    """Evaluate a SymPy derivative in float64 at the inputs' values, shaped like the gradient.

    The tape differentiates the sum of the target (each element times ``weight``, its
    output_gradients), so the pointwise derivative is broadcast to the target's shape,
    weighted and then summed down to the input's.
    """
    fn = lambdified(symbolic, symbols)
    with np.errstate(all="ignore"):  # pragma: no mutate (warnings only: NaN is the checks' to report)
        pointwise = fn(*(np.asarray(inputs[n], dtype=np.float64) for n in symbols))
    return unbroadcast(np.broadcast_to(pointwise, out_shape) * weight, in_shape)


def lambdified(symbolic: Any, symbols: Mapping[str, Any]) -> Callable[..., Any]:
    """SymPy's expression as a NumPy function of ``symbols``' values, in their order; built once per
    expression."""
    try:
        return _lambdified(tuple(symbols.values()), symbolic)
    except TypeError:  # a mutable SymPy matrix (the Jacobian routines') cannot be a cache key
        return numeric(list(symbols.values()), symbolic)


@functools.lru_cache(maxsize=1024)
def _lambdified(symbols: tuple[Any, ...], symbolic: Any) -> Any:
    """SymPy's expression as a NumPy function: it depends only on the expression, so built once."""
    return numeric(list(symbols), symbolic)
