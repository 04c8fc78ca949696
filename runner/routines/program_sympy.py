"""SymPy's check of a program's derivatives, and the notes that say why it did not run.

SymPy builds each target over one symbol per input element and differentiates it; that is
exact but can explode, so the check runs only while the inputs are small and the
expressions' terms stay bounded (an elementwise program takes one symbol per input, at
any size: :mod:`runner.routines.pointwise`). Otherwise a note says why, and the float64
differences check every element.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from runner.language import shape_rules, syntax
from runner.language.arrays import SymPyArrays
from runner.oracles.checks import compare
from runner.result import Outcome
from runner.routines import derivative_kinds as kinds
from runner.routines import pointwise
from runner.routines.custom_steps import CustomStep
from runner.routines.program_steps import evaluate_steps

if TYPE_CHECKING:
    from runner.routines.program import Program


def skipped(outcome: Outcome, reason: str) -> Callable[..., None]:
    """In place of SymPy's check: say in each gradient's note (and so in the report) why it was skipped."""
    def note(label: str, target: str, source: str, got: np.ndarray) -> None:
        outcome.notes[label] = "; ".join(filter(None, [outcome.notes.get(label), reason]))
    return note


def sympy_check(program: Program, outcome: Outcome) -> Callable[..., None] | None:
    """SymPy's check of one gradient; a note instead where the expressions would be too large; None if off."""
    run = program.run
    if not run.checks.analytic:
        return None
    if program.gradient_steps:
        return skipped(outcome, "SymPy check skipped: a gradient step's value comes from an inner tape; "
                                 "nested float64 differences check it")
    if any(isinstance(t, CustomStep) for t in program.trees.values()):
        return skipped(outcome, "SymPy check skipped: the tape follows the custom gradients' grads, not the "
                                 "derivative of the program as written; float64 differences through their "
                                 "grads check it")
    if program.layers:
        return skipped(outcome, "SymPy check skipped: the program has Keras layers, which have no symbolic "
                                 "form here; float64 differences through their float64 twins check it")
    # One symbol per input, whatever the sizes: for gradients (the other kinds take one per element).
    if program.scenario.derivative == "gradient" and pointwise.elementwise(program.trees):
        reason = pointwise.too_large(program)
        return skipped(outcome, reason) if reason else pointwise.symbolic_check(program, outcome)
    count = sum(np.size(v) for v in program.held.values())
    count += sum(int(np.prod(program.shapes[s])) for sources in program.plan.values() for s in sources
                 if s in program.trees)
    if count > run.checks.symbolic_max_elements:
        limit = run.checks.symbolic_max_elements
        return skipped(outcome, f"SymPy check skipped: the inputs and intermediate sources hold {count} "
                                 f"elements, above checks.symbolic_max_elements={limit}")
    if reason := kinds.symbolic_skipped(program):
        return skipped(outcome, reason)
    terms = max(_symbolic_terms(program, program.trees[t], {}) * math.prod(program.shapes[t])
                for t in program.plan)
    if terms > SYMBOLIC_MAX_TERMS:
        return skipped(outcome, f"SymPy check skipped: the targets would expand to about {terms:.2g} terms, "
                                 f"above {SYMBOLIC_MAX_TERMS:,} (matmuls and reductions multiply them)")
    import sympy as sp

    sym = SymPyArrays(program.branches, program.frozen)
    env = {n: sym.input_symbols(n, program.shapes[n]) for n in program.scenario.inputs}

    def check(label: str, target: str, source: str, got: np.ndarray) -> None:
        override = {} if source in env else {source: sym.input_symbols(source, program.shapes[source])}
        out = evaluate_steps(program.trees, env, sym, override, target)[target]
        wrt = list((override or env)[source].flat)
        derivatives, shape = kinds.symbolic(program, sym.asarray(out), target, source, wrt)
        symbols = [s for arrays in (env, override) for a in arrays.values() for s in a.flat]
        fn = sp.lambdify(symbols, derivatives, "numpy", cse=True, dummify=True)
        points = [*(program.held[n] for n in env), *(program.forward[n] for n in override)]
        # One-element arrays, not scalars: NumPy's select (SymPy's Piecewise) wants array conditions.
        args = [np.array([x]) for p in points for x in np.asarray(p, dtype=np.float64).flat]
        with np.errstate(all="ignore"):
            found = fn(*args)
        want = np.array([np.asarray(d, dtype=np.float64).reshape(-1)[0] for d in found]).reshape(shape)
        what = f"d/d{source} of sum({target})" if program.scenario.derivative == "gradient" else label
        text = f"{what} = {derivatives[0] if len(derivatives) == 1 else derivatives}"
        outcome.analytic[label] = text if len(text) <= 2000 else text[:1997] + "..."
        outcome.checks.append(compare(f"{label} vs SymPy", got, want, run.tolerances().analytic))

    return check


#: Above this many terms in all, SymPy's expressions (and their derivatives) would take minutes.
SYMBOLIC_MAX_TERMS = 200_000


#: Besides reduce_*: each element reads a whole axis.
REDUCING = ("norm", "softmax", "clip_by_norm", "adjust_contrast")


def _symbolic_terms(program: Program, node: syntax.Expr, memo: dict[str, int]) -> int:
    """Roughly how many terms one element of ``node`` has as a SymPy expression over the input symbols.

    Each element of a matmul or a reduction sums (or, for max and min, compares) the
    elements it reduces, so the count multiplies by their number; elementwise ops add.
    """
    if not isinstance(node, syntax.Expr):  # a step not recorded: a constant to SymPy
        return 1
    kids = [_symbolic_terms(program, child, memo) for child in syntax.children(node)]
    match node:
        case syntax.Name(id=name) if name in program.trees:
            if name not in memo:
                memo[name] = _symbolic_terms(program, program.trees[name], memo)
            return memo[name]
        case syntax.BinOp(op="@") | syntax.Func(fn="matmul"):
            inner = shape_rules.infer_shape(node.left if isinstance(node, syntax.BinOp) else node.args[0],
                                     program.shapes)[-1]
            return inner * sum(kids)
        case syntax.Func(fn=fn, args=args, options=options) if fn.startswith("reduce_") or fn in REDUCING:
            shape = shape_rules.infer_shape(args[0], program.shapes)
            axis = dict(options).get("axis", -1 if fn == "softmax" else None)
            axes = range(len(shape)) if axis is None else [axis] if isinstance(axis, int) else axis
            count = math.prod(shape[a] for a in axes)
            return (count * count if fn in ("reduce_max", "reduce_min") else count) * kids[0] + 1
        case syntax.Func(fn="einsum", args=args, options=options):  # sums products over the dropped letters
            inputs, output = dict(options)["equation"].split("->")
            shapes = [shape_rules.infer_shape(arg, program.shapes) for arg in args]
            sizes = {letter: size for letters, shape in zip(inputs.split(","), shapes, strict=True)
                     for letter, size in zip(letters, shape, strict=True)}
            return math.prod(n for letter, n in sizes.items() if letter not in output) * math.prod(kids) + 1
        case syntax.Func(fn="maximum" | "minimum" | "clip_by_value"):
            return 2 * sum(kids)
        case syntax.Func(fn="transpose" | "reshape" | "concat" | "stack") | syntax.Index() | syntax.IfExp():
            return max(kids)
    return sum(kids) + 1
