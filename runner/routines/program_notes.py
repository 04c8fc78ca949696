"""What a program's run says about how it was written, where TensorFlow reads it otherwise than it looks.

A value written as whole numbers (TensorFlow's ``tf.constant(10)`` is int32), a list or
dict target (differentiated as the sum of its parts), a conditional traced into
``tf.cond`` (both branches recorded): each gets a note beside the number it explains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.scenarios.inputs import written_as_integers

if TYPE_CHECKING:
    from runner.routines.program import Program


def as_written(program: Program) -> dict[str, str]:
    """Notes on inputs and steps, by name: whole-number values, list and dict targets."""
    run, notes = program.run, {}
    for name, structure in program.structures.items():
        notes[name] = (f"{name} = {structure.code()} is handed to tape.gradient as it is, which "
                       "differentiates the sum of every part's elements; its value here is that sum")
    for name, spec in program.scenario.inputs.items():
        if written_as_integers(spec):
            notes[name] = (f"{name}'s value is written as whole numbers with no dtype: here it is "
                           f"{run.dtype}, the run's dtype, where TensorFlow's tf.constant({spec.value!r}) "
                           f"would be int32, which has no gradient (scenario.inputs.{name}.dtype=int32 "
                           "for that)")
    return notes


def traced_branch(program: Program, target: str, source: str) -> str:
    """Why a gradient is zeros rather than None: the source is read only in a branch not taken, which
    tf.cond (a conditional traced by AutoGraph) records all the same. '' otherwise."""
    if source not in program.reaches(target) - program.reaches(target, eagerly=True):
        return ""
    return (f"compile={program.run.compile}: AutoGraph made the conditional a tf.cond, which records both "
            f"branches, so {source}, read only in the branch not taken, gets zeros (run eagerly, Python's if "
            "records one branch and the gradient is None)")
