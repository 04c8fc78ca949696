"""The oracles of an elementwise program: one SymPy symbol per input, and derivatives written by hand.

When every step acts element by element (arithmetic, the one-argument functions,
``where``, ``maximum``, ``minimum``, ``clip_by_value``, ``square``; no matmul,
reduction, list, subscript or conditional), each element of a target is one and
the same expression of the inputs' elements at its position. SymPy then needs one
symbol per input, not one per element: the derivative, made a NumPy function once
per expression (:func:`runner.oracles.symbolic.lambdified`), is evaluated over whole
arrays however large, weighted by the target's cotangent and summed down to the
source's shape where the source was broadcast. So a curve of any length keeps its
SymPy check, and a warm run of a scalar scenario builds nothing of SymPy it built
before: what the seed's scenarios (``function:``) need to stay fast. For the same
reason central differences nudge every element of a large source at once.

Each of these oracles is elementwise in the inputs, so over a large target it is
evaluated block by block of the target's leading axis, in threads, and each block
compared as it is made (:func:`runner.oracles.checks.compare_blockwise`): a block's
temporaries stay in cache where whole arrays would allocate 80 MB per operation
over 10^7 points, and every CPU works.

A closed form (``closed_form: {x: sigmoid(x)*(1 - sigmoid(x))}``) is a derivative
of the same kind written by hand, evaluated in float64 at the inputs (through
SymPy's NumPy printer, so a subterm it repeats is computed once). It belongs to
the function it was written for (``closed_form_for``): once
``scenario.function`` is another, it is dropped with a note.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from runner.language import backends, expr, syntax
from runner.oracles.checks import compare_blockwise, fits
from runner.oracles.differences import nudged
from runner.oracles.symbolic import lambdified
from runner.oracles.tolerance import Tolerance
from runner.result import Check, Outcome
from runner.scenarios import sympy_cost

if TYPE_CHECKING:
    from runner.routines.program import Program

Checker = Callable[[str, str, str, np.ndarray], None]  # (label, target, source, got) -> a check appended


def elementwise(trees: Mapping[str, syntax.Expr]) -> bool:
    """Whether every step acts element by element, so that one symbol per input suffices."""
    return all(syntax.elementwise(tree) for tree in trees.values())


def too_large(program: Program) -> str:
    """Why SymPy should not build these derivatives (too many expression nodes), or ''."""
    nodes = sympy_cost.oracle_nodes(program.trees, len(program.scenario.inputs), 1)
    if nodes <= sympy_cost.MAX_ORACLE_NODES:
        return ""
    return (f"SymPy check skipped: its derivatives would be about {nodes:,.0f} expression nodes, above "
            f"{sympy_cost.MAX_ORACLE_NODES:,}")


def symbolic_check(program: Program, outcome: Outcome) -> Checker:
    """SymPy's derivative of each target in each source, one symbol per input, checked over whole arrays."""
    trees, names = tuple(program.trees.items()), tuple(program.scenario.inputs)
    tolerance = program.run.tolerances().analytic

    def check(label: str, target: str, source: str, got: np.ndarray) -> None:
        derivative, symbols = _derivative(trees, names, target, source)
        at = [program.held[n] if n in program.held else program.forward[n] for n in symbols]
        outcome.analytic[label] = str(derivative)
        outcome.checks.append(_weighted_check(program, f"{label} vs SymPy", got,
                                              lambdified(derivative, symbols), at, target, source, tolerance))

    return check


@functools.lru_cache(maxsize=256)
def _derivative(trees: tuple[tuple[str, syntax.Expr], ...], names: tuple[str, ...], target: str,
                source: str) -> tuple[Any, dict[str, Any]]:
    """d target / d source over one symbol per input (and one for the source, if it is a step); built
    once per program and pair."""
    import sympy as sp

    sympy = backends.SymPyBackend()
    symbols = sympy.symbols(names if source in names else (*names, source))
    values = {n: symbols[n] for n in names}
    for name, tree in trees:
        values[name] = symbols[name] if name == source else syntax.evaluate(tree, values, sympy)
        if name == target:
            break
    return sp.diff(values[target], symbols[source]), symbols


def _weighted_check(program: Program, name: str, got: np.ndarray, fn: Callable[..., Any],
                    at: list[np.ndarray], target: str, source: str, tol: Tolerance) -> Check:
    """``got`` against a derivative ``fn`` (elementwise in the values ``at``) weighted by the target's
    cotangent and summed down to the source's shape, as the tape's gradient is: block by block."""
    return compare_blockwise(name, got, lambda weight, *values: fn(*values) * weight,
                             [program.weights[target], *at], program.shapes[target], program.shapes[source],
                             tol, splits(program, target))


def splits(program: Program, target: str) -> bool:
    """Whether the target's oracles may go block by block: every input and every step evaluated up to
    it broadcasts to its shape (a step it does not read may be larger)."""
    shape = program.shapes[target]
    steps = list(program.trees)
    return all(fits(program.shapes[n], shape) for n in [*program.held, *steps[:steps.index(target) + 1]])


def difference_check(program: Program, label: str, target: str, source: str, got: np.ndarray) -> Check:
    """Central differences at every element of a source in two evaluations, however large."""
    others = [n for n in program.held if n != source]

    def fn(point: np.ndarray, *values: np.ndarray) -> np.ndarray:
        return program.evaluate({**dict(zip(others, values, strict=True)), source: point}, target)

    point = program.point(source)
    return compare_blockwise(
        f"{label} vs float64 central differences (all {np.size(point)} elements, nudged together)", got,
        nudged(fn, program.delta), [point, program.weights[target], *(program.held[n] for n in others)],
        program.shapes[target], np.shape(point), program.run.tolerances().float64_differences,
        splits(program, target))


def value_check(program: Program, target: str, got: np.ndarray, tol: Tolerance) -> Check:
    """A target's value against the program evaluated in float64 NumPy, block by block."""
    names = list(program.held)

    def fn(*values: np.ndarray) -> np.ndarray:
        return program.evaluate(dict(zip(names, values, strict=True)), target)

    shape = program.shapes[target]
    return compare_blockwise(f"{target} vs float64 forward pass", got, fn, [program.held[n] for n in names],
                             shape, shape, tol, splits(program, target))


def check_closed_forms(program: Program, outcome: Outcome) -> None:
    """Compare with the derivatives the config states by hand; an analytic check, off with SymPy's."""
    scenario, run = program.scenario, program.run
    if not run.checks.analytic or not scenario.closed_form:
        return
    target = scenario.target_name()
    if not scenario.closed_form_applies():
        for name, text in scenario.closed_form.items():
            label = f"d{target}/d{name}"
            note = (f"closed form {text} not checked: it was written for {scenario.closed_form_for}, not "
                    f"{scenario.function}; SymPy and finite differences check this function")
            outcome.notes[label] = "; ".join(filter(None, [outcome.notes.get(label), note]))
        return
    names = tuple(scenario.inputs)
    for name, text in scenario.closed_form.items():
        label = f"d{target}/d{name}"
        got = outcome.gradients.get(label)
        if got is None:
            continue
        form, symbols = _closed_form(text, names)
        outcome.checks.append(_weighted_check(program, f"{label} vs closed form {text}", got,
                                              lambdified(form, symbols), [program.held[n] for n in names],
                                              target, name, run.tolerances().analytic))


@functools.lru_cache(maxsize=256)
def _closed_form(text: str, names: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    """A closed form as one SymPy expression over one symbol per input, so that NumPy evaluates its
    shared subterms once (the sigmoid of ``sigmoid(x)*(1 - sigmoid(x))``); built once per text."""
    sympy = backends.SymPyBackend()
    symbols = sympy.symbols(names)
    return syntax.evaluate(expr.parse(text, names), symbols, sympy), symbols
