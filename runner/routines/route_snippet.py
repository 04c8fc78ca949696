"""A finding's reproducer: plain TensorFlow printing a program's derivative by each route named.

A fuzzing campaign's finding (runner/jobs/findings.py) ships this beside its scenario: the
program's inputs and steps as its run's snippet writes them
(:mod:`runner.routines.program_snippet`), then the routes' own functions, copied from
:mod:`runner.routines.routes` as they ran, each run in each execution, printing its numbers
along every basis direction of the source as JSON. No import of the runner, so the script
goes into a bug report as it is: the route that disagrees, or raises, is there to see.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import numpy as np

from runner.routines import program_snippet, routes, snippets
from runner.scenarios import derivative_specs

if TYPE_CHECKING:
    from runner.routines.program import Program


def snippet(program: Program, chosen: list[str], executions: list[str]) -> str:
    """The script: every derivative of the program's plan by each of ``chosen`` in each of ``executions``."""
    run, kind = program.run, program.scenario.derivative
    steps = program_snippet.steps(program)
    lines = ["from __future__ import annotations  # the routes' annotations stay text", "",
             "import contextlib", snippets.HEADER, *program_snippet.inputs(program), "", "",
             "def forward():", '    """Every step, recorded by whichever tapes and accumulators are open."""',
             *steps, f"    return {{{', '.join(f'{t!r}: {t}' for t in program.plan)}}}", "", "",
             "ZERO = tf.UnconnectedGradients.ZERO", "", ""]
    helpers = [routes.watching, routes.read_along, *(routes.ROUTINES[route] for route in chosen)]
    for function in dict.fromkeys(helpers):
        lines += [inspect.getsource(function), ""]
    lines += ["ROUTES = {" + ", ".join(f"{r!r}: {routes.ROUTINES[r].__name__}" for r in chosen) + "}", "", "",
              "def along(route, execution, x, target, weight, given):",
              '    """One route\'s numbers in one execution, as runner/routines/routes.py takes them."""',
              "    def routed():",
              "        return ROUTES[route](x, lambda: tf.reduce_sum(weight * forward()[target]), given)",
              "    if execution != 'eager':",
              "        routed = tf.function(routed, jit_compile=execution == 'xla', autograph=False)",
              "    return np.array(routed(), dtype=np.float64).tolist()", "", "",
              "found = {}"]
    for target, sources in program.plan.items():
        weight = f"tf.constant({program.weights[target].tolist()!r}, tf.{run.dtype})"
        for source in sources:
            shape = program.shapes[source]
            basis = [row.reshape(shape).tolist() for row in np.eye(int(np.prod(shape)))]
            lines += [f"basis = [tf.constant(e, tf.{run.dtype}) for e in {basis!r}]",
                      "given = [(u, basis) for u in basis]  # every direction u, read along every v"]
            label = derivative_specs.label(kind, target, source)
            lines += [f"x, target, weight = {source}, {target!r}, {weight}",
                      f"for execution in {executions!r}:", "    for route in ROUTES:",
                      f"        key = f'{label} [{{route}}, {{execution}}]'", "        try:",
                      "            found[key] = along(route, execution, x, target, weight, given)",
                      "        except Exception as err:  # the finding may be that the route raises",
                      "            found[key] = f'raised {type(err).__name__}: {str(err).splitlines()[0]}'"]
    lines += ["", "print('{')  # JSON, one route a line",
              "print(',\\n'.join(f' {json.dumps(k)}: {json.dumps(v)}' for k, v in found.items()))",
              "print('}')"]
    return "\n".join(lines) + "\n"
