"""A program run for several epochs (``epochs:``), its inputs rebound between them (``rebind:``).

The guide's pitfall: ``x = tf.Variable(2.0)``, then in each epoch a tape over
``y = x + 1`` and ``x = x + 1`` after it. The second epoch's x is a new Tensor, not the
Variable: the tape does not watch it and dy/dx is None (``x.assign_add(1)`` keeps the
Variable). Each epoch here is the program run and checked in full; a rebound input
enters the next epoch as what Python's rebinding makes of it, a plain tensor holding
TensorFlow's value. Every label, check, value and note carries ``(epoch k)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from runner.language import expr, syntax
from runner.language.backends import TensorFlowBackend
from runner.result import Outcome
from runner.routines.support import tf_dtype
from runner.scenarios import recording
from runner.scenarios.inputs import ProgramKind
from runner.scenarios.schema import ProgramScenario, RunConfig
from runner.tfenv import tf

Once = Callable[[ProgramScenario, RunConfig], Outcome]


def run(scenario: ProgramScenario, config: RunConfig, once: Once) -> Outcome:
    """Every epoch's outcome in one, epoch 0's snippet looping over them all."""
    merged = Outcome()
    rebound: dict[str, int] = {}  # input -> the epoch it was first rebound after
    for epoch in range(scenario.epochs):
        outcome = once(scenario, config)
        _merge(merged, outcome, epoch, _explained(scenario, outcome, rebound, epoch))
        if epoch == 0:
            merged.snippet, merged.watched_variables = outcome.snippet, outcome.watched_variables
        scenario = _rebind(scenario, outcome, config)
        rebound.update({n: epoch for n in scenario.rebind if n not in rebound})
    return merged


def _rebind(scenario: ProgramScenario, outcome: Outcome, config: RunConfig) -> ProgramScenario:
    """The next epoch's inputs: each rebound one the value TensorFlow computes from this epoch's, as a
    plain tensor (a tf.Variable rebound in Python is a Variable no more)."""
    dtypes = {n: tf.as_dtype(s.dtype) for n, s in scenario.inputs.items() if s.dtype is not None}
    backend = TensorFlowBackend(tf_dtype(config), {}, dtypes)
    env = {n: tf.constant(v, dtypes.get(n, tf_dtype(config))) for n, v in outcome.inputs.items()
           if n in scenario.inputs}
    inputs = dict(scenario.inputs)
    for name, text in scenario.rebind.items():
        update = recording.assignment(text)  # assign_add(x, 1): the variable updated in place, kept
        value = syntax.evaluate(expr.parse(recording.assigned_as_written(text), list(env)), env,
                                backend.for_step(name)).numpy()
        kind = inputs[name].kind if update else ProgramKind.constant
        inputs[name] = dataclasses.replace(inputs[name], value=value.tolist(), linspace=None, init=None,
                                           shape=None, kind=kind)
    return dataclasses.replace(scenario, inputs=inputs)


def _explained(scenario: ProgramScenario, outcome: Outcome, rebound: dict[str, int],
               epoch: int) -> dict[str, str]:
    """Notes for the Nones a rebinding made: each source rebound in an earlier epoch."""
    notes = {}
    for label, got in outcome.gradients.items():
        source = label.rpartition("/d")[2]
        if got is None and source in rebound and not recording.assignment(scenario.rebind[source]):
            notes[label] = (f"{source} was rebound after epoch {rebound[source]} ({source} = "
                            f"{scenario.rebind[source]}): a new tensor, which the tape in epoch {epoch} did "
                            "not watch (a tf.Variable updated in place, with assign_add, stays watched)")
    return notes


def _merge(merged: Outcome, outcome: Outcome, epoch: int, notes: dict[str, str]) -> None:
    def tag(label: str) -> str:
        return f"{label} (epoch {epoch})"

    merged.gradients.update({tag(k): v for k, v in outcome.gradients.items()})
    merged.values.update({tag(k): v for k, v in outcome.values.items()})
    merged.inputs.update(outcome.inputs if epoch == 0 else {tag(k): v for k, v in outcome.inputs.items()})
    merged.notes.update({tag(k): v for k, v in {**outcome.notes, **notes}.items()})
    merged.analytic.update({tag(k): v for k, v in outcome.analytic.items()})
    labels = sorted([*outcome.gradients, *outcome.values], key=len, reverse=True)

    def tag_check(name: str) -> str:  # "<label> vs <oracle>" stays so: "<label> (epoch k) vs <oracle>"
        label = next((k for k in labels if name == k or name.startswith(f"{k} ")), None)
        return tag(name) if label is None else tag(label) + name[len(label):]

    merged.checks += [dataclasses.replace(c, name=tag_check(c.name)) for c in outcome.checks]
    merged.timings.update({k if epoch == 0 else tag(k): v for k, v in outcome.timings.items()})
    merged.figures += [dataclasses.replace(f, filename=f"epoch{epoch}_{f.filename}") for f in outcome.figures]
