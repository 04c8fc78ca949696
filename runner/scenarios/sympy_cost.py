"""How much SymPy will build for an expression's derivatives, estimated before SymPy starts.

The oracle differentiates each expression symbolically, up to the eighth order in
``higher_order``. Its cost is not the expression's length: the n-th derivative of a
product of m factors has C(n+m-1, m-1) Leibniz terms, each a product of m
derivatives, and every function call multiplies again by the chain rule. Eight
functions multiplied together, differentiated eight times, are 63 characters and
half a minute of ``sympy.diff``. So a job is refused unless the estimated size of
what SymPy builds (:func:`derivative_sizes`, in expression nodes, summed over every
derivative the routine takes) stays under ``MAX_ORACLE_NODES``; the message gives
the estimate. The estimate follows the rules SymPy applies, without SymPy's
simplifications, so it is an upper bound for most expressions.
"""

from __future__ import annotations

from collections.abc import Mapping

from runner.errors import ConfigError
from runner.language import syntax

#: The largest oracle accepted, in expression nodes (SECURITY.md gives the time it can take).
MAX_ORACLE_NODES = 12_000
_CAP = 1e18  # sizes are summed as floats and capped: only whether they pass the bound matters

Sizes = list[float]  # sizes[k]: nodes in the k-th derivative, k = 0 .. order


def _leibniz(left: Sizes, right: Sizes, order: int) -> Sizes:
    """Sizes of the derivatives of a product: the k-th is k+1 products of a derivative of each side."""
    return [min(_CAP, sum(left[j] + right[k - j] + 1 for j in range(k + 1))) for k in range(order + 1)]


def _chain(inner: Sizes, order: int, outer: int = 2) -> Sizes:
    """Sizes of the derivatives of f(a): (f(a))' = f'(a) * a', differentiated again by Leibniz.

    ``outer`` is the size of f's own form; each derivative of f adds a node or so to it.
    """
    # level[j][k]: the k-th derivative of f^(j)(a), for j + k <= order.
    level = [[0.0] * (order + 1) for _ in range(order + 1)]
    for j in range(order + 1):
        level[j][0] = inner[0] + outer + j
    shifted = [*inner[1:], inner[-1]]  # the derivatives of a', from a'
    for k in range(1, order + 1):
        for j in range(order + 1 - k):
            level[j][k] = min(_CAP, sum(level[j + 1][i] + shifted[k - 1 - i] + 1 for i in range(k)))
    return [level[0][k] for k in range(order + 1)]


def _constant(tree: syntax.Expr) -> bool:
    """Whether ``tree`` reads no name but pi and e, whatever kinds of node it holds."""
    if isinstance(tree, syntax.Name):
        return tree.id in syntax.CONSTANTS
    return all(_constant(part) for part in syntax.children(tree))


def derivative_sizes(tree: syntax.Expr, order: int, known: Mapping[str, Sizes] | None = None) -> Sizes:
    """Estimated nodes in each derivative of ``tree``, of orders 0 to ``order``, in any one input.

    ``known`` gives the sizes of names that stand for earlier expressions (a persistent
    tape's targets read the ones before them), which SymPy substitutes in.
    """
    known = known or {}
    constant = [1.0] * (order + 1)
    if _constant(tree):  # as it is, then zero
        return [float(syntax.size(tree)), *constant[1:]]
    match tree:
        case syntax.Num():
            return constant
        case syntax.Name(id=name):
            return list(known.get(name, constant))
        case syntax.Neg(arg=arg):
            return [size + 1 for size in derivative_sizes(arg, order, known)]
        case syntax.BinOp(op="+" | "-", left=left, right=right):
            sides = derivative_sizes(left, order, known), derivative_sizes(right, order, known)
            return [a + b + 1 for a, b in zip(*sides, strict=True)]
        case syntax.BinOp(op="*", left=left, right=right):
            sides = derivative_sizes(left, order, known), derivative_sizes(right, order, known)
            return _leibniz(*sides, order)
        case syntax.BinOp(op="/", left=left, right=right):  # a * b**-1
            reciprocal = _chain(derivative_sizes(right, order, known), order, outer=3)
            return _leibniz(derivative_sizes(left, order, known), reciprocal, order)
        case syntax.BinOp(op="**", left=syntax.Name(id=name), right=right) if (
                not syntax.names(right) and name not in known):
            return [3.0] * (order + 1)  # each derivative of x**c is one term, c*(c-1)*...*x**(c-k)
        case syntax.BinOp(op="**", left=left, right=right) if not syntax.names(right):
            return _chain(derivative_sizes(left, order, known), order, outer=3)
        case syntax.BinOp(op="**", left=left, right=right):  # exp(b * log(a))
            product = _leibniz(_chain(derivative_sizes(left, order, known), order),
                               derivative_sizes(right, order, known), order)
            return _chain(product, order)
        case syntax.Call(arg=arg):
            return _chain(derivative_sizes(arg, order, known), order)
    # Any other node: as costly as the product of its parts.
    first, *rest = [derivative_sizes(part, order, known) for part in syntax.children(tree)] or [constant]
    for sizes in rest:
        first = _leibniz(first, sizes, order)
    return first


def oracle_nodes(trees: Mapping[str, syntax.Expr], inputs: int, order: int) -> float:
    """Nodes SymPy builds for every derivative up to ``order`` of each tree, in each of ``inputs`` inputs.

    Trees are in order, and each may read the names of those before it.
    """
    known: dict[str, Sizes] = {}
    total = 0.0
    for name, tree in trees.items():
        known[name] = derivative_sizes(tree, order, known)
        total += sum(known[name][1:]) * inputs ** min(order, 2)  # mixed second derivatives: inputs**2
    return total


def check_oracle(trees: Mapping[str, syntax.Expr], inputs: int, order: int, where: str) -> None:
    """Refuse a job whose symbolic derivatives would exceed :data:`MAX_ORACLE_NODES`, with the estimate."""
    nodes = oracle_nodes(trees, inputs, order)
    if nodes > MAX_ORACLE_NODES:
        derivatives = "derivative" if order == 1 else f"derivatives up to order {order}"
        raise ConfigError(
            f"{where}: SymPy's {derivatives} would be about {nodes:,.0f} expression nodes, above the "
            f"limit of {MAX_ORACLE_NODES:,}; use a shorter expression or a lower order")
