"""``checks.saved_model``: the program saved as a SavedModel, reloaded, and its gradients taken again.

As the guide does with ``clip_gradients``: the program's steps become a ``tf.function``
of its inputs on a ``tf.Module`` (which tracks the layers' variables), saved with
``SaveOptions(experimental_custom_gradients=True)`` so a custom gradient's backward
pass travels with it, then loaded back with ``tf.saved_model.load``. A fresh tape
watches what the run's tape watched and calls the loaded function; each gradient
must equal the run's own. A custom gradient saved without its backward pass, or a
function that does not survive serialisation, shows as a failed check here.
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, Any

import numpy as np

from runner.errors import ConfigError
from runner.oracles.checks import compare
from runner.result import Check, Outcome
from runner.routines.program_steps import AssignStep, UnrecordedStep, evaluate_steps
from runner.scenarios.derivative_specs import label
from runner.tfenv import tf

if TYPE_CHECKING:
    from runner.routines.program import Program

#: What the round trip cannot carry: (does the program have it, why not).
_REFUSED = {
    "derivative": "it takes gradients (derivative=gradient), as the guide's round trip does",
    "tapes": "it runs on the program's one tape",
    "epochs": "it saves one epoch's program",
}


def refusal(program: Program) -> str:
    """Why this program cannot make the round trip, or ''."""
    scenario = program.scenario
    if scenario.derivative != "gradient" or scenario.derivatives:
        return _REFUSED["derivative"]
    if scenario.tapes:
        return _REFUSED["tapes"]
    if scenario.epochs > 1:
        return _REFUSED["epochs"]
    if any(isinstance(t, UnrecordedStep | AssignStep) for t in program.trees.values()):
        return ("its steps record on the run's tape (recorded: false, reset_after, assign_add), which a "
                "saved function cannot reach")
    if any("numpy(" in str(t) for t in program.trees.values()):
        return "numpy() needs an eager tensor, which a saved function never has"
    return ""


def round_trip(program: Program, outcome: Outcome) -> list[Check]:
    """Each gradient the run found, again through the saved and reloaded program."""
    if reason := refusal(program):
        raise ConfigError(f"checks.saved_model: this program cannot make the round trip: {reason}")
    scenario = program.scenario
    names = list(scenario.inputs)
    backend = program.backend()
    module = tf.Module()
    module.weights = [w.value for step in program.layers.values() for w in step.variables.values()]
    signature = [tf.TensorSpec(program.shapes[n], program.dtypes.get(n, program.dtype), name=n)
                 for n in names]

    def call(*args: Any) -> dict[str, Any]:
        return evaluate_steps(program.trees, dict(zip(names, args, strict=True)), backend)

    module.call = tf.function(call, input_signature=signature)
    with tempfile.TemporaryDirectory(prefix="tape-runner-saved-model-") as where:
        options = tf.saved_model.SaveOptions(experimental_custom_gradients=True)
        tf.saved_model.save(module, where, options=options)
        loaded = tf.saved_model.load(where)
    restored = dict(zip((n for step in program.layers.values() for n in step.variables), loaded.weights,
                        strict=True))  # h.kernel -> the reloaded variable
    tensors = {n: tf.constant(program.values[n]) for n in names}
    asked = [(label("gradient", t, s), t, s) for t, sources in program.plan.items() for s in sources
             if outcome.gradients.get(label("gradient", t, s)) is not None  # None: nothing to compare
             and (s in tensors or s in restored)]  # a step's result is inside the saved function
    title = "{} vs the SavedModel round trip".format
    try:
        accessed = scenario.watch_accessed_variables
        with tf.GradientTape(persistent=True, watch_accessed_variables=accessed) as tape:
            for name in names:
                if program.watched(name):
                    tape.watch(tensors[name])
            results = loaded.call(*(tensors[n] for n in names))
        found = {name: tape.gradient(program.differentiated(target, results), {**tensors, **restored}[source])
                 for name, target, source in asked}
    except LookupError as err:  # a custom gradient saved without its backward pass, loaded afresh
        said = f"the reloaded program raised LookupError: {str(err).splitlines()[0]}"
        return [Check(title(name), False, None, None, said) for name, _, _ in asked]
    tolerance = program.run.tolerances().analytic
    return [Check(title(name), False, None, None, "the reloaded program gave None") if got is None
            else compare(title(name), np.asarray(outcome.gradients[name]), tf.convert_to_tensor(got).numpy(),
                         tolerance) for name, got in found.items()]
