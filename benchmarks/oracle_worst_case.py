"""How long the slowest accepted expression of at most 200 characters keeps the SymPy oracle busy.

The oracle bound (runner/scenarios/sympy_cost.py) refuses expressions by the estimated size of their
derivatives. This measures what it lets through: expressions of one input up to 200
characters, structured families (products of calls, nested calls, products of nested
calls, powers with variable exponents, abs/relu) and seeded random ones, each at the
highest derivative order the bound accepts (1 to 8, as higher_order allows). The ones
closest to the bound are timed doing what a routine does: every derivative up to that
order, each lambdified and evaluated at 1,000 points. Prints one line per timing and the
slowest last, in CPU seconds (what the oracle costs, whatever else shares the machine) and
wall seconds. Run: ``.venv/bin/python benchmarks/oracle_worst_case.py [candidates] [timed]``.
"""

from __future__ import annotations

import random
import signal
import sys
import time
from typing import Any

import numpy as np

from runner.errors import ConfigError
from runner.language import backends, expr, syntax
from runner.scenarios import sympy_cost

FUNCTIONS = syntax.FUNCTIONS
MAX_CHARS = 200
TIMEOUT_S = 300


def _random(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.2:
        return rng.choice(["x", "x", "x", "2", "0.5", "pi"])
    kind = rng.random()
    if kind < 0.45:
        return f"{rng.choice(FUNCTIONS)}({_random(rng, depth - 1)})"
    if kind < 0.85:
        return f"({_random(rng, depth - 1)}{rng.choice('*+-/')}{_random(rng, depth - 1)})"
    return f"({_random(rng, depth - 1)})**{rng.choice(['2', '3', 'x', '0.5', '(-1)'])}"


def candidates(rng: random.Random, count: int) -> list[str]:
    smooth = [f for f in FUNCTIONS if f not in ("abs", "relu")]
    pairs = list(zip(smooth * 2, reversed(smooth * 2), strict=True))
    found = set()
    for k in range(2, 29):
        found.add("*".join(f"{f}(x)" for f in (smooth * 3)[:k]))
        found.add("".join(f"{f}(" for f in (smooth * 3)[:k]) + "x" + ")" * k)
        found.add("*".join(f"{f}({g}(x))" for f, g in pairs[:k]))
        found.add("*".join(f"{f}(x)**x" for f in (smooth * 3)[:k]))
        found.add("*".join(f"{f}(x)" for f in (["abs", "relu", "sin"] * 10)[:k]))
        found.add("+".join(f"{f}(x)*{g}(x)" for f, g in pairs[1:k + 1]))
    while len(found) < count:
        found.add(_random(rng, rng.randint(3, 9)))
    return [text for text in found if len(text) <= MAX_CHARS]


def accepted_order(text: str) -> tuple[int, float] | None:
    """The highest order (1..8) the bounds accept for ``text``, and its estimate; None if refused."""
    try:
        tree = expr.parse(text, ["x"])
    except ConfigError:
        return None
    best = None
    for order in range(1, 9):
        nodes = sympy_cost.oracle_nodes({"y": tree}, 1, order)
        if nodes > sympy_cost.MAX_ORACLE_NODES:
            break
        best = (order, nodes)
    return best


def _expire(signum: int, frame: Any) -> None:
    raise TimeoutError


def oracle_seconds(text: str, order: int) -> tuple[float, float]:
    """Every derivative up to ``order``, each lambdified and evaluated at 1,000 points, as routines do."""
    import sympy as sp

    from runner.routines.nested_tapes import at_inputs

    backend = backends.SymPyBackend()
    symbols = backend.symbols(["x"])
    started, cpu = time.perf_counter(), time.process_time()
    derivatives = [syntax.evaluate(expr.parse(text, ["x"]), symbols, backend)]
    for _ in range(order):
        derivatives.append(sp.diff(derivatives[-1], symbols["x"]))
    points = np.linspace(0.1, 2.0, 1000)
    for derivative in derivatives[1:]:  # as higher_order evaluates them (DiracDelta taken as 0)
        at_inputs(derivative, symbols, {"x": points}, points.shape)
    return time.process_time() - cpu, time.perf_counter() - started


def main(count: int = 3000, timed: int = 40) -> None:
    rng = random.Random(0)
    scored = []
    for text in candidates(rng, count):
        found = accepted_order(text)
        if found is not None:
            scored.append((found[1], found[0], text))
    scored.sort(reverse=True)
    signal.signal(signal.SIGALRM, _expire)
    worst = (0.0, 0.0, "", 0, 0.0)
    for nodes, order, text in scored[:timed]:
        signal.alarm(TIMEOUT_S)
        try:
            seconds, wall = oracle_seconds(text, order)
        except TimeoutError:
            seconds = wall = float(TIMEOUT_S)
        except Exception as err:  # the oracle cannot evaluate it: not a timing, but worth knowing
            print(f"  fails ({type(err).__name__}) at order {order}: {text}", flush=True)
            continue
        finally:
            signal.alarm(0)
        print(f"{seconds:7.2f} s CPU {wall:7.2f} s wall  order {order}  estimate {nodes:8,.0f}  "
              f"{len(text):3d} chars  {text}", flush=True)
        worst = max(worst, (seconds, wall, text, order, nodes))
    print(f"slowest: {worst[0]:.2f} s CPU ({worst[1]:.2f} s wall) at order {worst[3]} "
          f"(estimate {worst[4]:,.0f} nodes): {worst[2]}")


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:]))
