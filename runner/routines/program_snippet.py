"""The standalone TensorFlow program a program's report carries: the same inputs, steps and gradients.

Plain ``tf.GradientTape`` code with no import of the runner (:mod:`runner.routines.snippets`
gives its header and footer); Jacobians, Hessians and JVPs write their own
(:func:`runner.routines.derivative_snippets.snippet`) around these inputs and steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.language import backends, expr, syntax
from runner.routines import custom_steps, layer_steps, program_setup, snippets
from runner.routines.program_steps import AssignStep, UnrecordedStep
from runner.routines.program_why import ungraded
from runner.scenarios import gradient_steps, recording
from runner.scenarios.inputs import ProgramKind
from runner.scenarios.schema import Unconnected

if TYPE_CHECKING:
    from runner.routines.program import Program


def snippet(program: Program) -> str:
    """Plain TensorFlow printing the same gradients: run eagerly, or traced into a tf.function as the
    run's ``compile`` was (where AutoGraph turns a conditional on a tensor into tf.cond, as in the run)."""
    scenario, run = program.scenario, program.run
    lines = tapes(program)
    lines += steps(program)
    mode = "ZERO" if scenario.unconnected_gradients is Unconnected.zero else "NONE"
    lines.append("\ngradients = {}")
    for target, sources in program.plan.items():
        og = (f", output_gradients=tf.constant({program.weights[target].tolist()!r}, tf.{run.dtype})"
              if target in scenario.output_gradients else "")
        keys = scenario.source_keys(target)
        codes = [layer_steps.code_source(s) for s in sources]
        wrt = (f"[{', '.join(codes)}]" if keys is None
               else "{" + ", ".join(f"{k!r}: {c}" for k, c in zip(keys, codes, strict=True)) + "}")
        lines += [
            "try:",
            f"    _grads = tape.gradient({target}, {wrt}{og}, "
            f"unconnected_gradients=tf.UnconnectedGradients.{mode})",
            *([f"    _grads = [_grads[k] for k in {keys!r}]"] if keys is not None else []),
            "except RuntimeError:  # a non-persistent tape answers only its first gradient() call",
            f"    _grads = [None] * {len(sources)}",
            *(["except LookupError:  # an op on the way back has no registered gradient",
               f"    _grads = [None] * {len(sources)}"] if ungraded(program, target) else []),
            *(["_grads = [g if g is None else tf.convert_to_tensor(g) for g in _grads]  # Embedding's "
               "IndexedSlices"] if program.layers else []),
            f"gradients.update(zip({[f'd{target}/d{s}' for s in sources]!r}, _grads))",
        ]
    lines += named(program, f"unconnected_gradients=tf.UnconnectedGradients.{mode}")
    body = compiled(lines, run.compile)
    return "\n".join([snippets.HEADER, *inputs(program), *(epochs(program, body) if scenario.epochs > 1
                                                           else body), snippets.FOOTER])


def epochs(program: Program, body: list[str]) -> list[str]:
    """The tape's block and its gradients in a loop over the epochs, each epoch's labelled (epoch k), and
    the inputs rebound after it, as Python's ``x = x + 1``."""
    scenario = program.scenario
    text = "\n".join(body)
    for old, new in (("gradients = tape_step()", "_found = tape_step()"), ("gradients = {}", "_found = {}"),
                     ("gradients.update(", "_found.update("), ("gradients[", "_found["),
                     ("return gradients", "return _found")):
        text = text.replace(old, new)
    backend, known = program.code(), {n: backends.Code(n) for n in scenario.inputs}
    rebound = []
    for name, given in scenario.rebind.items():
        update = recording.assignment(given)  # in place, or Python's rebinding
        code = syntax.evaluate(expr.parse(update[1] if update else given, list(known)), known,
                               backend.for_step(name))
        rebound.append(f"{name}.assign_add({code})  # {given}" if update else f"{name} = {code}  # {given}")
    return ["\ngradients = {}", f"for epoch in range({scenario.epochs}):",
            *(f"    {line}" if line else "" for line in text.strip("\n").splitlines()),
            "    gradients.update({f'{k} (epoch {epoch})': g for k, g in _found.items()})",
            *(f"    {line}" for line in rebound)]


def tapes(program: Program) -> list[str]:
    """The tape's ``with`` line and its watches; or every tape of ``scenario.tapes``, opened together."""
    scenario = program.scenario
    given = scenario.tapes or {"tape": {"persistent": scenario.persistent, "watch": [
        n for n, spec in scenario.inputs.items() if spec.watch]}}
    accessed = scenario.watch_accessed_variables
    opened = ", ".join(f"tf.GradientTape(persistent={spec['persistent']}, "
                       f"watch_accessed_variables={accessed}) as {name}" for name, spec in given.items())
    return [f"\nwith {opened}:", *(f"    {name}.watch({n})" for name, spec in given.items()
                                     for n in spec["watch"])]


def named(program: Program, unconnected: str) -> list[str]:
    """``derivatives:`` asked of the same tape, each by its name, then the ``after:`` steps over them."""
    lines = []
    for d in program.derivatives:
        codes = [layer_steps.code_source(s) for s in d.sources]
        wrt = f"[{', '.join(codes)}]" if d.listed else codes[0]
        tape = d.tape or "tape"
        call = (f"[{tape}.batch_jacobian({d.target}, _s, {unconnected}) for _s in {wrt}]" if d.listed
                and d.kind == "batch_jacobian" else f"{tape}.{d.kind}({d.target}, {wrt}, {unconnected})")
        lines.append(f"{d.name} = {call}")
        lines.append(f"gradients.update(zip({list(d.labels().values())!r}, {d.name}))" if d.listed
                     else f"gradients[{d.name!r}] = {d.name}")
    backend = program.code()
    names = [*program.scenario.inputs, *program.trees, *(d.name for d in program.derivatives)]
    known = {n: backends.Code(n) for n in names}
    for name, tree in program.after.items():
        lines.append(f"{name} = {syntax.evaluate(tree, known, backend)}  # {program.scenario.after[name]}")
        known[name] = backends.Code(name)
    return lines


def compiled(lines: list[str], mode: str) -> list[str]:
    """The tape's block and its gradients as they ran: as they are eagerly, else inside a tf.function
    (with XLA for ``xla``) that returns the gradients."""
    if mode == "eager":
        return lines
    options = "jit_compile=True" if mode == "xla" else ""
    body = "\n".join(lines).strip("\n").splitlines()
    return [f"\n\n@tf.function({options})  # compile={mode}: AutoGraph turns an if on a tensor into tf.cond",
            "def tape_step():", *(f"    {line}" if line else "" for line in body), "    return gradients",
            "\n\ngradients = tape_step()"]


def inputs(program: Program) -> list[str]:
    """Each input as the snippet makes it: a tf.constant, or a tf.Variable holding one."""
    scenario, run = program.scenario, program.run
    lines = []
    for n, spec in scenario.inputs.items():
        if n in program.setup:  # made from the inputs below, before the tape opens
            continue
        tensor = f"tf.constant({spec.code(run.seed, n)}, tf.{spec.dtype or run.dtype})"
        if spec.kind is ProgramKind.constant:
            lines.append(f"{n} = {tensor}")
        else:
            lines.append(f"{n} = tf.Variable({tensor}, trainable={spec.kind is ProgramKind.variable})")
    lines += program_setup.snippet_lines(program)
    for step in custom_steps.customs(program).values():  # each custom gradient's function, once
        if f"def {step.fn}(" not in "\n".join(lines):
            lines += step.definition_code(program.code())
    if program.layers:
        lines += layer_steps.snippet_setup(program.layers)
    return lines


def steps(program: Program) -> list[str]:
    """Each step in order, indented to sit inside the tape's block."""
    backend = program.code()
    known = {n: backends.Code(n) for n in program.scenario.inputs}
    lines, texts = [], program.scenario.targets
    for name, tree in program.trees.items():
        code = (tree.call_code() if isinstance(tree, layer_steps.Step | gradient_steps.GradientStep)
                else tree.call_code(backend, known) if isinstance(tree, custom_steps.CustomStep)
                else program.structures[name].code() if name in program.structures
                else syntax.evaluate(tree.expression, known, backend.for_step(name))
                if isinstance(tree, UnrecordedStep)
                else f"{tree.variable}.assign_add({syntax.evaluate(tree.increment, known, backend)})"
                if isinstance(tree, AssignStep)
                else syntax.evaluate(tree, known, backend.for_step(name)))
        line = f"    {name} = {code}  # {texts[name]}"
        if isinstance(tree, UnrecordedStep) and tree.paused:  # recorded: false
            line = f"    with tape.stop_recording():\n        {name} = {code}  # {texts[name]['expression']}"
        if isinstance(tree, UnrecordedStep) and tree.reset:
            line += "\n    tape.reset()  # reset_after: the record so far, and every tape.watch, thrown out"
        lines.append((name, line))
        known[name] = backends.Code(name)
    if program.gradient_steps:  # nested in their inner tapes
        return gradient_steps.snippet(program.gradient_steps, lines, program.scenario.inputs)
    return [line for _, line in lines]
