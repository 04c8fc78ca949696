"""Why the tape gives None for a gradient, predicted from the program alone (and then checked).

Read in order: a setup result or an unrecorded step stands in the way; an integer dtype;
a layer's variable the layer does not watch; no path (the source read only in a
condition, a branch not taken, inside stop_gradient or numpy(), or not at all); an
intermediate computed from nothing watched; an input the tape does not watch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.language import syntax
from runner.result import Check
from runner.routines import program_setup
from runner.routines.program_steps import AssignStep, UnrecordedStep
from runner.scenarios.inputs import ProgramKind

if TYPE_CHECKING:
    from runner.routines.program import Program

#: How TensorFlow's warning for tape.watch on an integer tensor begins (it logs the first five per process).
WATCH_WARNING = "The dtype of the watched tensor must be floating (e.g. tf.float32), got"


def why_none(program: Program, target: str, source: str) -> str:
    """Why tape.gradient(target, source) is None, or '' when it is a gradient."""
    if before_tape := program_setup.why_none(program, target, source):
        return before_tape
    if isinstance(step := program.trees.get(source), UnrecordedStep):
        return (f"{source} {_unkept(program, step)}, so the tape keeps no record of it and has nothing to "
                "differentiate with respect to")
    unseen = [n for n, t in program.trees.items() if isinstance(t, UnrecordedStep)
              and n in program.reaches(target) | {target} and source not in program.reaches(target)
              and source in _mentioned(program, t.expression)]
    if unseen:
        return (f"{target} reads {source} only through {', '.join(unseen)}, which "
                f"{_unkept(program, program.trees[unseen[0]])}, so the tape has no path between them")
    updates = [t for t in program.trees.values() if isinstance(t, AssignStep) and source not in
               program.reaches(target) and t.variable in program.reaches(target) and source in
               syntax.names(t.increment)]
    if updates:
        variable = updates[0].variable
        return (f"{target} reads {source} only through {variable}.assign_add(...), a stateful op with no "
                f"gradient: {target} reads {variable} afresh, and the path back stops there")
    dtype = program.dtypes.get(source, program.dtype)
    if not dtype.is_floating:
        return (f"{source} is {dtype.name}, and the tape records floating-point tensors only "
                f"(tape.watch on it logs TensorFlow's warning \"{WATCH_WARNING} tf.{dtype.name}\"), so "
                "there is no gradient")
    if "." in source and source.partition(".")[0] in program.reaches(target) | {target}:
        return program.layers[source.partition(".")[0]].why_none(source)
    if source not in program.reaches(target):
        if source in _mentioned(program, program.trees[target]):
            return (f"{target} reads {source} only in a condition, in a branch not taken or inside "
                    "stop_gradient or numpy(), which carry no gradient, so the tape has no path between "
                    "them")
        return f"{target} does not depend on {source}, so the tape has no path between them"
    if source in program.trees:
        inputs = {n for n in program.reaches(source, conditions=True)
                  if n in program.scenario.inputs or "." in n}  # "." : a layer's variable
        if any(program.watched(n) for n in inputs):
            return ""
        return f"{source} was computed from nothing the tape watched, so nothing after it was recorded"
    if program.watched(source):
        return ""
    spec = program.scenario.inputs[source]
    if not program.scenario.watch_accessed_variables and spec.kind is ProgramKind.variable:
        return (f"watch_accessed_variables=false and tape.watch({source}) was not called, so the tape "
                f"ignored the variable {source}")
    what = {ProgramKind.constant: "a tf.constant",
            ProgramKind.nontrainable: "a tf.Variable(trainable=False)"}[spec.kind]
    tape = program.tape  # the program's one, or one of scenario.tapes
    one = tape == "tape"
    fix = f"set scenario.inputs.{source}.watch=true" if one else f"add it to scenario.tapes.{tape}.watch"
    return (f"{source} is {what} and {tape}.watch({source}) was not called, so {'the tape' if one else tape} "
            f"did not record it ({fix})")


def _mentioned(program: Program, tree: object) -> set[str]:
    """Every name an expression mentions, and those the steps it mentions mention, and so on."""
    found = syntax.names(tree) if isinstance(tree, syntax.Expr) else tree.gradient_names()  # type: ignore[attr-defined]
    for name in [n for n in found if n in program.trees]:
        if name not in program.mentions:
            program.mentions[name] = _mentioned(program, program.trees[name])
        found = found | program.mentions[name]
    return found


def _unkept(program: Program, step: UnrecordedStep) -> str:
    """How a step's record was not kept, as a predicate."""
    if step.paused:
        return "was computed under tape.stop_recording() (recorded: false)"
    return f"was thrown out by tape.reset() (reset_after: {program.scenario.reset_after})"


def ungraded(program: Program, target: str) -> set[str]:
    """The functions with no registered gradient that tape.gradient(target, ...) meets on its way back
    (in the target's step or a step it reaches, with some source's gradient flowing): TensorFlow then
    raises LookupError for the whole call."""
    steps = [s for s in (target, *program.reaches(target)) if isinstance(program.trees.get(s), syntax.Expr)]
    found = set().union(*(syntax.ungraded(program.trees[s]) for s in steps))
    return found if found and any(not why_none(program, target, s) for s in program.plan[target]) else set()


def lookup_checks(program: Program, raised: dict[str, str]) -> list[Check]:
    """Each target whose gradient() meets an op with no registered gradient raised LookupError, and no
    other did."""
    checks = []
    for target in program.plan:
        meets = ungraded(program, target)
        if meets or target in raised:
            ops = ", ".join(sorted(meets)) or "no op"
            name = f"d{target}: gradient() raises LookupError ({ops} has no registered gradient)"
            detail = raised.get(target, "TensorFlow raised no LookupError")
            checks.append(Check(name, bool(meets) and target in raised, None, None, detail))
    return checks
