"""``program``: any computation a TensorFlow user writes inside a tape, as data.

Named inputs of any shape (values, linspaces or seeded initialisers; variables,
non-trainable variables or constants), then named steps evaluated in order inside
one ``tf.GradientTape``, then the gradients asked for: each target with respect to
inputs or earlier steps (an intermediate result, as in the guide's ``dz/dy``).

Before the tape runs, the program is evaluated once in float64 NumPy: that fixes
which branch each conditional takes (as Python's ``if`` would), so the tape, SymPy
and the finite differences all follow the same branch. Each gradient is then
checked without TensorFlow's autodiff:

* whether the tape saw it at all (None predicted from what is watched and what
  each step reads, or zeros under ``unconnected_gradients=zero``);
* against SymPy, one symbol per input element, while the inputs are small
  (``checks.symbolic_max_elements``); an elementwise program needs one symbol per
  input, at any size (:mod:`runner.routines.pointwise`), and may state closed forms;
* against central differences in float64 at every element up to
  ``checks.fd_max_elements``, and above it random projections ``v . (J u)``.

``derivative`` asks the tape for Jacobians, batch Jacobians, Hessians or JVPs
instead: :mod:`runner.routines.derivative_kinds` asks for them and checks them.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from runner.language import backends, expr, syntax
from runner.language.arrays import NumPyBackend
from runner.result import Outcome
from runner.routines import (
    custom_steps,
    derivative_snippets,
    layer_steps,
    pointwise,
    program_after,
    program_checks,
    program_epochs,
    program_figures,
    program_notes,
    program_setup,
    program_snippet,
    routes,
)
from runner.routines import derivative_kinds as kinds
from runner.routines.program_steps import AssignStep, UnrecordedStep, evaluate_steps
from runner.routines.program_why import why_none
from runner.routines.support import float64_delta, tf_dtype
from runner.scenarios import (
    custom_specs,
    gradient_steps,
    named_derivatives,
    recording,
    route_specs,
    structured,
)
from runner.scenarios.inputs import ProgramInput, ProgramKind
from runner.scenarios.programs import program_shapes, step_dtypes, written
from runner.scenarios.schema import ProgramScenario, RunConfig
from runner.tfenv import tf


class Program:
    """A validated program, parsed, with its values in float64 and every branch decided."""

    def __init__(self, scenario: ProgramScenario, run: RunConfig) -> None:
        self.run, self.dtype = run, tf_dtype(run)
        self.dtypes = {n: tf.as_dtype(d) for n, d in step_dtypes(scenario).items()}  # where not the run's
        self.branches: dict[syntax.IfExp, bool] = {}  # each conditional's branch, decided before the tape
        self.frozen: dict[syntax.Func, Any] = {}  # each stop_gradient's value: a constant for the oracles
        self.plan = scenario.plan()
        self.tape = "tape"  # the tape's name in the snippet and the notes (a view's: one of scenario.tapes)
        self.shapes = program_shapes(scenario)
        self.setup = program_setup.parse(scenario)  # each a leaf from here on, as the tape sees it
        self.values = {n: self.constant(spec, n) for n, spec in scenario.inputs.items()}
        self.scenario = scenario = program_setup.as_inputs(scenario, self.setup, self.values, self.backend())
        self.values.update({n: self.constant(scenario.inputs[n], n) for n in self.setup})
        self.layers = layer_steps.build(scenario.targets, self.shapes, run.seed, run.dtype,
                                   scenario.watch_accessed_variables)
        self.gradient_steps = gradient_steps.build(scenario.targets)
        self.trees: dict[str, Any] = {}  # name -> parsed expression, a built layer Step or a GradientStep
        steps = list(scenario.targets)
        reset_before = steps[:steps.index(scenario.reset_after) + 1] if scenario.reset_after else []
        for name, text in scenario.targets.items():
            built = self.layers.get(name) or self.gradient_steps.get(name)
            known = [*scenario.inputs, *self.trees]
            if (call := custom_specs.call(text, scenario.custom_gradients)) is not None:
                built = custom_steps.CustomStep(name, call, scenario.custom_gradients[call.fn], known,
                                                written(scenario, text))
            elif recording.unrecorded(text):
                held = expr.parse(written(scenario, text), known)
                built = UnrecordedStep(expr.parse(text["expression"], known), held)
            elif (update := recording.assignment(text)) is not None:
                built = AssignStep(update[0], expr.parse(update[1], known),
                                   expr.parse(f"stop_gradient({update[1]})", known))
            elif name in reset_before:  # recorded, then thrown out by tape.reset()
                built = UnrecordedStep(expr.parse(text, known), expr.parse(f"stop_gradient({text})", known),
                                       paused=False, reset=name == scenario.reset_after)
            self.trees[name] = built or expr.parse(written(scenario, text), known)
        self.structures = {n: found for n, t in scenario.targets.items() if (found := structured.parse(t))}
        self.derivatives = named_derivatives.parse(scenario)  # asked after the plan, each of its own kind
        readable = [*scenario.inputs, *self.trees, *(d.name for d in self.derivatives)]
        self.after = {n: expr.parse(text, [*readable, *scenario.after]) for n, text in scenario.after.items()}
        # The values as the run holds them (rounded to its dtype), in float64 for the oracles.
        self.held = {n: np.asarray(v.numpy(), dtype=np.float64) for n, v in self.values.items()}  # exact
        for step in self.layers.values():  # each layer's variables, as the oracles nudge them
            self.held.update(step.held)
        if not pointwise.elementwise(self.trees):  # an elementwise program has neither: its forward waits
            self.forward  # noqa: B018  (evaluating it decides every conditional and stop_gradient)
        self._reaches: dict[tuple[str, bool, bool], set[str]] = {}
        self.mentions: dict[str, set[str]] = {}  # step -> every name it mentions, why_none's memo
        self.weights = {  # the cotangent each target is differentiated with: output_gradients, or ones
            t: np.broadcast_to(np.asarray(scenario.output_gradients.get(t, 1.0), dtype=np.float64),
                               self.shapes[t]) for t in self.plan}
        self.delta = float64_delta(run)
        if self.gradient_steps:  # differences of nested differences: the inner ones' rounding (eps / their
            self.delta = max(self.delta, gradient_steps.INNER_DELTA)  # step) is divided by this step too

    def constant(self, spec: ProgramInput, name: str) -> Any:
        """An input's (or a setup result's) tensor, in its own dtype."""
        return tf.constant(spec.array(self.run.seed, name), self.dtypes.get(name, self.dtype))

    def asked(self, derivative: named_derivatives.Derivative) -> Program:
        """The program as if ``derivative`` were its one entry of ``gradients`` and its kind the program's
        ``derivative``: what its kind's checks read. Asked of one of ``scenario.tapes``, as if that tape,
        with what it watches, were the program's one."""
        view = copy.copy(self)
        scenario = self.scenario
        one: dict[str, Any] = {}
        if derivative.tape is not None:
            tape = scenario.tapes[derivative.tape]
            inputs = {n: dataclasses.replace(spec, watch=n in tape["watch"])
                      for n, spec in scenario.inputs.items()}
            one = {"persistent": tape["persistent"], "tapes": {}, "inputs": inputs}
        view.scenario = dataclasses.replace(
            scenario, derivative=derivative.kind, output_gradients={}, derivatives={}, after={},
            gradients={derivative.target: list(derivative.sources)}, **one)
        view.plan, view.derivatives, view.after = view.scenario.plan(), [], {}
        view.tape = derivative.tape or self.tape
        view.weights = {derivative.target: np.ones(self.shapes[derivative.target])}
        return view

    def backend(self) -> backends.TensorFlowBackend:
        """TensorFlow's ops as the tape records them: each step in its dtype, each branch as decided."""
        return backends.TensorFlowBackend(self.dtype, self.branches, self.dtypes)

    def code(self) -> backends.CodeBackend:
        """The snippet's source for the same ops, each step in its dtype."""
        return backends.CodeBackend(self.run.dtype, {n: d.name for n, d in self.dtypes.items()})

    @functools.cached_property
    def forward(self) -> dict[str, Any]:
        """Every step's value in float64 NumPy at the held values. Evaluated first (before the tape, as
        __init__ does unless the program is elementwise) it decides each conditional's branch and each
        stop_gradient's value, which every later evaluation keeps."""
        numpy = NumPyBackend(self.branches, self.frozen)
        values = evaluate_steps(self.trees, self.held, numpy)
        self.branches.update(numpy.branches)
        self.frozen.update(numpy.frozen)
        return values

    def point(self, source: str) -> np.ndarray:
        """Where the oracles differentiate: a source's value in float64 (an input's or a layer
        variable's held value, or a step's value from the float64 forward pass)."""
        value = self.forward[source] if source in self.trees else self.held[source]
        return np.asarray(value, dtype=np.float64)

    def taken(self, node: syntax.IfExp) -> bool:
        return self.branches[node]

    def reaches(self, name: str, *, conditions: bool = False, eagerly: bool = False) -> set[str]:
        """Inputs and steps a step's gradient can flow back to (or, with ``conditions``, that it read):
        through the branch taken, or (traced, unless ``eagerly``) through both, as tf.cond records them.

        Memoised: steps that each read the two before them would otherwise cost 2^n walks.
        """
        key = (name, conditions, eagerly)
        if key not in self._reaches:
            found: set[str] = set()
            tree = self.trees[name]
            built = not isinstance(tree, syntax.Expr)  # a layer, gradient or custom gradient step
            for used in (tree.gradient_names() if built
                         else syntax.gradient_names(tree, self.taken, conditions=conditions,
                                                    both=not eagerly and self.run.compile != "eager")):
                found |= {used} | (self.reaches(used, conditions=conditions, eagerly=eagerly)
                                   if used in self.trees else set())
            self._reaches[key] = found
        return self._reaches[key]

    def watched(self, name: str) -> bool:
        if "." in name:  # a layer's variable
            return not self.layers[name.partition(".")[0]].why_none(name)
        spec: ProgramInput = self.scenario.inputs[name]
        watch = spec.watch and not self.scenario.reset_after  # tape.reset() forgets every tape.watch
        return watch or (spec.kind is ProgramKind.variable and self.scenario.watch_accessed_variables)

    def why_none(self, target: str, source: str) -> str:
        """Why tape.gradient(target, source) is None, or '' when it is a gradient."""
        return why_none(self, target, source)

    def forward_fn(self, target: str, source: str) -> Callable[[np.ndarray], np.ndarray]:
        """The target as a float64 NumPy function of the source, everything else held, branches fixed."""
        return lambda point: self.evaluate({**self.held, source: point}, target)

    def evaluate(self, values: Mapping[str, np.ndarray], target: str) -> np.ndarray:
        """The target in float64 NumPy from ``values``: the inputs (and layer variables), and any step
        given in place of its own value; branches and stop_gradient values as the forward pass fixed them."""
        env = {n: v for n, v in values.items() if n not in self.trees}
        override = {n: v for n, v in values.items() if n in self.trees}
        backend = NumPyBackend(self.branches, self.frozen)
        return evaluate_steps(self.trees, env, backend, override, target)[target]

    def across(self, target: str, source: str) -> Callable[[np.ndarray], np.ndarray] | None:
        """For a layer's variable: a step s -> target(source + s) - target(source - s) in float64, the
        layer nudging itself (:meth:`layer_steps.Step.nudged`) and every step before it taken from the
        forward pass, which a nudge of that variable cannot change. None for any other source."""
        if "." not in source:
            return None
        name = source.partition(".")[0]
        before = {n: self.forward[n] for n in list(self.trees)[:list(self.trees).index(name)]}
        values = {**self.held, **self.forward}

        def difference(step: np.ndarray) -> np.ndarray:
            plus, minus = (evaluate_steps(self.trees, self.held, NumPyBackend(self.branches, self.frozen),
                                          {**before, name: out}, target)[target]
                           for out in self.layers[name].nudged(source, step, values))
            return plus - minus
        return difference

    def vjp(self, target: str, source: str) -> Callable[[np.ndarray], np.ndarray]:
        """The tape's vector-Jacobian product v -> v . d target / d source, on a fresh tape."""
        backend = self.backend()

        def fn(v: np.ndarray) -> np.ndarray:
            tensors = dict(self.values)
            with tf.GradientTape() as tape:
                tape.watch(list(tensors.values()))
                results = evaluate_steps(self.trees, tensors, backend.on(tape), upto=target)
            grad = tape.gradient(results[target], self.source(source, tensors, results),
                                 output_gradients=tf.constant(v, self.dtype),
                                 unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return np.asarray(tf.cast(tf.convert_to_tensor(grad), tf.float64).numpy())
        return fn

    def differentiated(self, target: str, results: Mapping[str, Any]) -> Any:
        """What tape.gradient is given as the target: its tensor, or the list or dict a structure holds."""
        structure = self.structures.get(target)
        return results[target] if structure is None else structure.build(dict(results))

    def source(self, name: str, tensors: Mapping[str, Any], results: Mapping[str, Any]) -> Any:
        """What the tape differentiates with respect to: an input, a step's result or a layer's variable."""
        if "." in name:
            return self.layers[name.partition(".")[0]].variables[name].value  # the tf.Variable itself
        return tensors[name] if name in tensors else results[name]


def _tensor(spec: ProgramInput, value: Any, name: str) -> Any:
    if spec.kind is ProgramKind.constant:
        return value
    return tf.Variable(value, name=name, trainable=spec.kind is ProgramKind.variable)


def run(scenario: ProgramScenario, run: RunConfig) -> Outcome:
    if scenario.epochs > 1:
        return program_epochs.run(scenario, run, _once)
    return _once(scenario, run)


def _once(scenario: ProgramScenario, run: RunConfig) -> Outcome:
    program = Program(scenario, run)
    scenario = program.scenario  # with each setup result as one more input
    backend = program.backend()
    tensors = {n: _tensor(spec, program.values[n], n) for n, spec in scenario.inputs.items()
               if n not in program.setup}
    tensors.update(program_setup.evaluate(program.setup, tensors, backend))  # before the tape opens
    refused: dict[str, str] = {}  # target -> TensorFlow's message; Python state, set at trace time
    gradient = scenario.derivative == "gradient"
    outcome = Outcome(snippet=program_snippet.snippet(program) if gradient else derivative_snippets.snippet(
        program, program_snippet.inputs(program), program_snippet.steps(program)))
    # The tape step, for every derivative kind (runner/routines/derivative_kinds.py), compiled and timed.
    watched: list[Any] = []  # tape.watched_variables(), as the tape step ran
    updated = [t.variable for t in program.trees.values() if isinstance(t, AssignStep)]

    def forward(t: dict[str, Any], tape: Any) -> dict[str, Any]:
        for name in updated:  # every run of the step starts from the inputs' values
            t[name].assign(program.values[name])
        return evaluate_steps(program.trees, t, backend.on(tape))

    results, found, outcome.timings, extra = kinds.run_tape(program, forward, tensors, refused, watched)
    if scenario.derivative != "jvp":  # a ForwardAccumulator has no tape
        names = {id(v): n for n, v in tensors.items()} | {
            id(var.value): name for step in program.layers.values() for name, var in step.variables.items()}
        outcome.watched_variables = [names.get(id(v), v.name.removesuffix(":0")) for v in watched]
    outcome.inputs = {n: v.numpy() for n, v in program.values.items()}
    outcome.notes.update(program_notes.as_written(program))
    # Each layer's weights as drawn (h.kernel), so results.json holds every number a derivative reads.
    outcome.inputs.update({n: v for n, v in program.held.items() if "." in n})
    outcome.values = {t: v.numpy() for t, v in results.items()} | extra
    outcome.gradients = {k: None if g is None else tf.convert_to_tensor(g).numpy() for k, g in found.items()}
    outcome.values.update(program_after.evaluate(program, {**tensors, **results, **found}))
    started = time.perf_counter()
    program_checks.check(program, outcome, refused)
    outcome.timings["checks"] = time.perf_counter() - started
    if run.checks.modes != route_specs.DEFAULT:  # TensorFlow's other routes to the same derivatives
        started = time.perf_counter()
        routes.cross_examine(program, forward, tensors, outcome)
        outcome.timings["routes"] = time.perf_counter() - started
    outcome.figures += program_figures.figures(program, outcome)
    return outcome
