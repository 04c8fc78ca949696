"""The standalone script of a program whose derivative is not a plain gradient.

Plain TensorFlow, without tape-runner, printing the same results: ``tape.jacobian``,
``tape.batch_jacobian``, nested tapes for a Hessian, a ForwardAccumulator per source for
JVPs, and one around a persistent tape for Hessian-vector products. The program's own
inputs and steps (:mod:`runner.routines.program_snippet`) go around these lines.
"""

from __future__ import annotations

from runner.routines import derivative_kinds as kinds
from runner.routines import layer_steps, snippets
from runner.routines.program_view import ProgramView
from runner.scenarios import derivative_specs
from runner.scenarios.schema import Unconnected


def snippet(program: ProgramView, inputs: list[str], steps: list[str]) -> str:
    """Plain TensorFlow printing the same results: tape.jacobian, tape.batch_jacobian, nested tapes for a
    Hessian, a ForwardAccumulator per source for JVPs. ``inputs`` and ``steps`` are the program's own
    lines (the steps indented for one block)."""
    scenario, run = program.scenario, program.run
    kind, dtype = scenario.derivative, run.dtype
    mode = "ZERO" if scenario.unconnected_gradients is Unconnected.zero else "NONE"
    unconnected = f"unconnected_gradients=tf.UnconnectedGradients.{mode}"
    watched = [n for n, spec in scenario.inputs.items() if spec.watch]
    tape = [f"with tf.GradientTape(persistent={scenario.persistent}, "
            f"watch_accessed_variables={scenario.watch_accessed_variables}) as tape:",
            *(f"    tape.watch({n})" for n in watched), *steps]
    lines = [snippets.HEADER, *inputs, "", "gradients = {}"]
    refusal = "except RuntimeError:  # a non-persistent tape answers only its first gradient() call"
    if kind == "jvp":
        for source, code in _tangent_code(program).items():
            primal = layer_steps.code_source(source)  # an input, or a layer's variable
            lines += ["", f"with tf.autodiff.ForwardAccumulator({primal}, tf.constant({code}, "
                          f"tf.{dtype})) as acc:", *steps]
            lines += [f'gradients["{derivative_specs.label(kind, t, source)}"] = acc.jvp({t}, {unconnected})'
                      for t, sources in program.plan.items() if source in sources]
        return "\n".join([*lines, snippets.FOOTER])
    if kind == "hvp":
        return "\n".join([*lines, *_hvp(program, steps, unconnected), snippets.FOOTER])
    if kind == "hessian":
        lines += ["_gradients = {}  # label -> (the inner tape's gradient, its source)",
                  f"with tf.GradientTape(persistent=True, watch_accessed_variables="
                  f"{scenario.watch_accessed_variables}) as outer:  # records the gradient below",
                  *(f"    outer.watch({n})" for n in watched), *(f"    {line}" for line in tape)]
        for target, sources in program.plan.items():
            og = (f", output_gradients=tf.constant({program.weights[target].tolist()!r}, tf.{dtype})"
                  if target in scenario.output_gradients else "")
            labels = [derivative_specs.label(kind, target, s) for s in sources]
            wrt = ", ".join(map(layer_steps.code_source, sources))  # a layer's variable: _weights['h.kernel']
            lines += ["    try:",
                      f"        _grads = tape.gradient({target}, [{wrt}]{og}, {unconnected})",
                      f"    {refusal}",
                      f"        _grads = [None] * {len(sources)}",
                      f"    _gradients.update(zip({labels!r}, zip(_grads, [{wrt}])))"]
        lines += ["for _label, (_g, _source) in _gradients.items():  # the Jacobian of each gradient",
                  "    gradients[_label] = None if _g is None else outer.jacobian(",
                  "        _g, _source, unconnected_gradients=tf.UnconnectedGradients.ZERO)"]
        return "\n".join([*lines, snippets.FOOTER])
    lines += tape
    pfor = scenario.experimental_use_pfor is not False
    for target, sources in program.plan.items():
        labels = [derivative_specs.label(kind, target, s) for s in sources]
        wrt = ", ".join(map(layer_steps.code_source, sources))
        ask = (f"tape.jacobian({target}, [{wrt}], {unconnected}, experimental_use_pfor={pfor})"
               if kind == "jacobian" else
               f"[tape.batch_jacobian({target}, _s, {unconnected}) for _s in [{wrt}]]")
        lines += ["try:", f"    _grads = {ask}", refusal, f"    _grads = [None] * {len(sources)}",
                  f"gradients.update(zip({labels!r}, _grads))"]
    if scenario.experimental_use_pfor == "both":
        lines.append("# experimental_use_pfor=False (a tf.while_loop, on a persistent tape) gives the same "
                     "Jacobians, row by row")
    return "\n".join([*lines, snippets.FOOTER])


def _tangent_code(program: ProgramView) -> dict[str, str]:
    """Each source's tangent as code: the scenario's numbers, or the seeded draw the run made."""
    given, run = kinds.tangents(program), program.run
    return {source: (f"np.asarray({u.tolist()!r})" if source in program.scenario.tangents else
                     f"np.random.default_rng({kinds.tangent_seed(run.seed, source)!r}).standard_normal("
                     f"{program.shapes[source]!r})") for source, u in given.items()}


def _hvp(program: ProgramView, steps: list[str], unconnected: str) -> list[str]:
    """Per source: the accumulator carrying u, around a persistent tape; the JVP of each gradient."""
    scenario, dtype = program.scenario, program.run.dtype
    lines = []
    for source, code in _tangent_code(program).items():
        primal = layer_steps.code_source(source)
        lines += ["", f"with tf.autodiff.ForwardAccumulator({primal}, tf.constant({code}, "
                      f"tf.{dtype})) as acc:",
                  f"    with tf.GradientTape(persistent=True, watch_accessed_variables="
                  f"{scenario.watch_accessed_variables}) as tape:",
                  *(f"        tape.watch({n})" for n, spec in scenario.inputs.items() if spec.watch),
                  *(f"    {line}" for line in steps)]
        for target, sources in program.plan.items():
            if source in sources:
                og = (f", output_gradients=tf.constant({program.weights[target].tolist()!r}, tf.{dtype})"
                      if target in scenario.output_gradients else "")
                label = derivative_specs.label("hvp", target, source)
                lines += [f"    _g = tape.gradient({target}, {primal}{og}, {unconnected})",
                          f'    gradients["{label}"] = None if _g is None else acc.jvp(',
                          "        _g, unconnected_gradients=tf.UnconnectedGradients.ZERO)"]
    return lines
