"""A program's config checked as a whole: its short form, inputs, steps, gradients and every shape,
before any TensorFlow; and the memory its job will hold at its peak."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError
from runner.language import expr, shape_rules, syntax
from runner.language.syntax import short
from runner.scenarios import (
    custom_specs,
    derivative_specs,
    gradient_steps,
    layers,
    named_derivatives,
    recording,
    structured,
)
from runner.scenarios.inputs import INTEGER_DTYPES, ProgramKind, check_input
from runner.scenarios.values import (
    check_name,
    check_new_expression,
    nested_shape,
    parse_checked,
    with_differences,
)

if TYPE_CHECKING:
    from runner.scenarios.schema import ProgramScenario, RunConfig


def program_shapes(scenario: ProgramScenario) -> dict[str, tuple[int, ...]]:
    """Every input's and target's shape, from the config alone."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, spec in scenario.inputs.items():
        if spec.linspace is not None:
            shapes[name] = (spec.linspace.num,)
        elif spec.init is not None:
            shapes[name] = tuple(spec.shape or ())
        else:
            shapes[name] = nested_shape(spec.value, f"scenario.inputs.{name}.value")
        shape_rules.check_shape(f"scenario.inputs.{name}", shapes[name])
    for name, text in scenario.setup.items():
        if name not in shapes:  # a program's own copy holds each setup result as an input too
            shapes[name] = _inferred(f"scenario.setup.{name}", text, shapes)
    for name, text in scenario.targets.items():
        if gradient_steps.is_gradient_step(text):  # shaped like what it differentiates against
            shapes[name] = shapes[text["wrt"]]
            continue
        if layers.is_step(text):
            shapes.update(layers.shapes(name, text, shapes))
            continue
        shapes[name] = _inferred(_step_key(scenario, name), written(scenario, text), shapes)
    return shapes


def written(scenario: ProgramScenario, entry: Any) -> Any:
    """A step's entry as the expression it computes: a custom gradient's call as its value, a list or
    dict target as the sum the tape differentiates; a layer or gradient step as it is."""
    entry = recording.assigned_as_written(recording.as_written(entry))
    entry = custom_specs.as_written(entry, scenario.custom_gradients)
    return structured.expression(entry)


def _inferred(where: str, text: str, shapes: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    try:
        return shape_rules.infer_shape(expr.parse(text, shapes), shapes)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _step_key(scenario: ProgramScenario, name: str) -> str:
    """The key a step was written under: ``scenario.function`` for the short form's one target."""
    return "scenario.function" if scenario.function is not None else f"scenario.targets.{name}"


def _short_form(scenario: ProgramScenario) -> None:
    """``function:`` as the program it stands for: one target, named by ``target_name``.

    Its closed forms are derivatives by hand, point by point, so they need an
    elementwise function; they are checked (or dropped) at run time.
    """
    if scenario.function is None:
        for key in ("target", "closed_form", "closed_form_for"):
            if getattr(scenario, key):
                raise ConfigError(f"scenario.{key} belongs to the short form: give scenario.function too")
        return
    if scenario.targets:
        raise ConfigError("scenario.function and scenario.targets: give one (function is the short form of a "
                          "program whose one target is the function)")
    target = scenario.target_name()
    check_name(target, "scenario.target")
    if target in scenario.inputs:
        raise ConfigError(f"scenario.target {target!r} is also an input name; choose another")
    parse_checked(written(scenario, scenario.function), [*scenario.inputs, *scenario.setup],
                  "scenario.function", tensors=True)
    if scenario.closed_form_for is not None:
        parse_checked(scenario.closed_form_for, scenario.inputs, "scenario.closed_form_for", tensors=True)
    for name, text in scenario.closed_form.items():
        where = f"scenario.closed_form.{name}"
        if name not in scenario.inputs:
            raise ConfigError(f"{where}: no input named {name!r}")
        parse_checked(text, scenario.inputs, where, tensors=True)
        if not syntax.elementwise(expr.parse(text, scenario.inputs)):
            raise ConfigError(f"{where}: a closed form is a derivative at each point, so it must be "
                              f"elementwise; {text!r} is not")
    if scenario.closed_form and scenario.closed_form_applies() and not syntax.elementwise(
            expr.parse(scenario.function, scenario.inputs)):
        raise ConfigError(f"scenario.closed_form: a closed form is a derivative at each point, so the "
                          f"function must be elementwise; {scenario.function!r} is not")
    scenario.targets = {target: scenario.function}


def check_program(scenario: ProgramScenario) -> None:
    """Inputs, steps, gradients and options of a program, with every shape, before any TensorFlow."""
    scenario.custom_gradients = custom_specs.check(scenario.custom_gradients,
                                                   [*scenario.inputs, *scenario.setup, *scenario.targets])
    _short_form(scenario)
    if not scenario.inputs:
        raise ConfigError("scenario.inputs: give at least one input, e.g. scenario.inputs.x.value=3")
    checked = {name: check_input(name, node) for name, node in scenario.inputs.items()}
    scenario.inputs = checked
    known = _check_setup(scenario)
    if not scenario.targets:
        raise ConfigError("scenario.targets: give at least one step, e.g. {y: x**2}")
    for name in scenario.targets:
        check_name(name, f"scenario.targets.{name}")
        if name in known:
            raise ConfigError(f"scenario.targets.{name}: the name is already an input or a setup step")
    for name, text in scenario.targets.items():  # each step reads inputs and earlier steps only
        if gradient_steps.is_gradient_step(text):
            gradient_steps.check(name, text, known, [*scenario.inputs, *scenario.setup], scenario.derivative)
        elif (found := structured.parse(text)) is not None:
            _check_structure(scenario, name, found, known)
        elif (call := custom_specs.call(text, scenario.custom_gradients)) is not None:
            _check_custom_call(scenario, name, call, known)
        elif (update := recording.assignment(text)) is not None:
            _check_assignment(scenario, name, update, known)
        elif recording.is_step(text):
            recording.check(text, _step_key(scenario, name), scenario.derivative,
                            any(map(gradient_steps.is_gradient_step, scenario.targets.values())))
            parse_checked(text["expression"], known, _step_key(scenario, name), tensors=True)
        elif not layers.is_step(text):
            parse_checked(text, known, _step_key(scenario, name), tensors=True)
        known.append(name)
    named_derivatives.check_tapes(scenario, known)
    shapes = program_shapes(scenario)
    for target, given in scenario.gradients.items():  # layer.trainable_variables, as the layer's variables
        where = f"scenario.gradients.{target}"
        scenario.gradients[target] = layers.expand(scenario.targets, given, shapes, where)
    for name, entry in scenario.derivatives.items():
        if isinstance(entry, dict) and "wrt" in entry:
            where = f"scenario.derivatives.{name}"
            entry["wrt"] = layers.expand(scenario.targets, entry["wrt"], shapes, where)
    for target, given in scenario.gradients.items():
        if target not in scenario.targets:
            raise ConfigError(f"scenario.gradients.{target}: no step named {target!r}")
        if not given or not isinstance(given, list | dict) or not all(
                isinstance(s, str) for s in (given.values() if isinstance(given, dict) else given)):
            raise ConfigError(f"scenario.gradients.{target}: give the sources as a list of names, e.g. [x], "
                              "or a dict, e.g. {w: w, b: b}")
        sources = scenario.plan()[target]
        if len(set(sources)) < len(sources):
            raise ConfigError(f"scenario.gradients.{target}: a source is named twice")
        for source in sources:
            _check_source(scenario, f"scenario.gradients.{target}", target, source, shapes)
    for target, value in scenario.output_gradients.items():
        where = f"scenario.output_gradients.{target}"
        if target not in scenario.plan():
            raise ConfigError(f"{where}: {target!r} is not a target in scenario.gradients")
        given = nested_shape(value, where)
        try:
            fits = shape_rules.broadcast(syntax.Name(target), [given, shapes[target]]) == shapes[target]
        except ConfigError:
            fits = False
        if not fits:
            raise ConfigError(f"{where}: shape {given} does not broadcast to {target}'s {shapes[target]}")
    derivative_specs.check(scenario, shapes)
    def source_check(where: str, target: str, source: str) -> None:
        _check_source(scenario, where, target, source, shapes)

    named_derivatives.check(scenario, shapes, {*known, *scenario.custom_gradients}, source_check,
                            step_dtypes(scenario))
    recording.check_reset(scenario.reset_after, scenario.targets, scenario.derivative)
    _check_epochs(scenario, shapes)
    for name, text in scenario.targets.items():
        if (update := recording.assignment(text)) is not None and shapes[name] != shapes[update[0]]:
            raise ConfigError(f"{_step_key(scenario, name)}: assign_add would change {update[0]}'s shape "
                              f"{shapes[update[0]]} to {shapes[name]}")
        if (call := custom_specs.call(text, scenario.custom_gradients)) is not None:
            custom_specs.check_grads_shapes(call, scenario.custom_gradients[call.fn], shapes,
                                            _step_key(scenario, name))


#: More epochs than this is a loop to write elsewhere: each epoch is a whole run with its checks.
MAX_EPOCHS = 100


def _check_epochs(scenario: ProgramScenario, shapes: dict[str, tuple[int, ...]]) -> None:
    """``epochs`` a count; ``rebind`` each input's next value, over the inputs, its shape and dtype kept."""
    if isinstance(scenario.epochs, bool) or not 1 <= scenario.epochs <= MAX_EPOCHS:
        raise ConfigError(f"scenario.epochs: {scenario.epochs!r} is not a whole number from 1 to "
                          f"{MAX_EPOCHS}")
    if scenario.rebind and scenario.epochs < 2:
        raise ConfigError("scenario.rebind takes effect between epochs: give scenario.epochs=2 or more")
    dtypes = step_dtypes(scenario)
    for name, text in scenario.rebind.items():
        where = f"scenario.rebind.{name}"
        if name not in scenario.inputs or name in scenario.setup:
            raise ConfigError(f"{where}: {name!r} is not an input (inputs: {', '.join(scenario.inputs)})")
        if not isinstance(text, str):
            raise ConfigError(f"{where}: give an expression over the inputs, e.g. {name} + 1")
        if (update := recording.assignment(text)) is not None and (
                update[0] != name or scenario.inputs[name].kind is ProgramKind.constant):
            raise ConfigError(f"{where}: assign_add updates the variable in place: write assign_add({name}, "
                              "...) for a variable input")
        text = recording.assigned_as_written(text)
        parse_checked(text, list(scenario.inputs), where, tensors=True)
        shape = _inferred(where, text, shapes)
        if shape != shapes[name]:
            raise ConfigError(f"{where}: {short(text, 40)} has shape {shape}, not {name}'s {shapes[name]}")
        read = {dtypes.get(n) for n in syntax.names(expr.parse(text, scenario.inputs))}
        if read != {dtypes.get(name)}:
            raise ConfigError(f"{where}: reads inputs of another dtype than {name}'s; give them one dtype")


def _check_source(scenario: ProgramScenario, where: str, target: str, source: str,
                  shapes: dict[str, tuple[int, ...]]) -> None:
    """A source the target can be differentiated against: an input, a setup step, a step before it, or a
    layer's variable (``<step>.<variable>``)."""
    order = list(scenario.targets)
    if "." in source:
        layers.check_source(scenario.targets, target, source, shapes, where)
    elif source not in scenario.inputs and source not in scenario.setup and (
            source not in scenario.targets or order.index(source) >= order.index(target)):
        raise ConfigError(f"{where}: {source!r} is neither an input nor a step before {target} (nor a setup "
                          "step)")


def _check_assignment(scenario: ProgramScenario, name: str, update: tuple[str, str],
                      known: list[str]) -> None:
    """``assign_add(x1, x0)``: x1 a variable input, the value over earlier names, on one tape."""
    where = _step_key(scenario, name)
    variable, value = update
    spec = scenario.inputs.get(variable)
    if spec is None or spec.kind is ProgramKind.constant:
        raise ConfigError(f"{where}: assign_add updates a variable input; {variable!r} is not one")
    parse_checked(value, known, where, tensors=True)
    if scenario.derivative not in ("gradient", "jacobian", "batch_jacobian"):
        raise ConfigError(f"{where}: assign_add takes gradients, Jacobians or batch Jacobians "
                          f"(not {scenario.derivative})")


def _check_custom_call(scenario: ProgramScenario, name: str, call: custom_specs.Call,
                       known: list[str]) -> None:
    """A custom gradient's call: its arguments, and what its oracle can follow: gradients only, no
    gradient steps, and no custom gradient's arguments computed from another's result."""
    where = _step_key(scenario, name)
    custom_specs.check_call(call, scenario.custom_gradients[call.fn], known, where)
    steps = scenario.targets.values()
    if scenario.derivative != "gradient" or any(map(gradient_steps.is_gradient_step, steps)):
        raise ConfigError(f"{where}: a custom gradient is followed by tape.gradient only "
                          "(derivative=gradient, no gradient steps)")
    below, todo = set(), list(custom_specs.reads(call, known))
    while todo:  # every step the arguments are computed from
        step = todo.pop()
        if step in scenario.targets and step not in below:
            below.add(step)
            todo += syntax.names(expr.parse(written(scenario, scenario.targets[step]), known))
    inner = [s for s in below if custom_specs.call(scenario.targets[s], scenario.custom_gradients)]
    if inner:
        raise ConfigError(f"{where}: its arguments are computed from {inner[0]}, another custom gradient's "
                          "step; give each custom gradient arguments of its own")


RUN_DTYPE = "the run's dtype"


#: What a step over integers may do: TensorFlow computes it in their dtype, and has no gradient for it.
_INTEGER_OPS = ("+", "-", "*", "**")


def step_dtypes(scenario: ProgramScenario) -> dict[str, str]:
    """Every input's, setup step's and step's dtype where it is not the run's: an input's own, and a
    step's that of the names it reads, which must agree (TensorFlow casts nothing by itself)."""
    dtypes = {n: spec.dtype for n, spec in scenario.inputs.items() if spec.dtype is not None}
    steps = {**{n: (f"scenario.setup.{n}", t) for n, t in scenario.setup.items()},
             **{n: (_step_key(scenario, n), t) for n, t in scenario.targets.items()}}
    for name, (where, entry) in steps.items():
        text = written(scenario, entry)
        if not isinstance(text, str):  # a layer or gradient step: in the run's dtype
            read = {v for k, v in text.items() if k in ("input", "gradient", "wrt") and v in dtypes}
            if read:
                raise ConfigError(f"{where}: reads {', '.join(sorted(read))}, not in the run's dtype; a "
                                  "layer or gradient step runs in the run's dtype")
            continue
        read = syntax.names(expr.parse(text, [*scenario.inputs, *steps]))
        found = {dtypes.get(n) for n in read}
        if len(found) > 1:
            said = ", ".join(f"{n} ({dtypes.get(n, RUN_DTYPE)})" for n in sorted(read))
            raise ConfigError(f"{where}: reads {said}; TensorFlow does not mix dtypes in one op, so give "
                              "them one dtype")
        dtype = found.pop() if found else None
        if dtype is None:
            continue
        dtypes[name] = dtype
        if dtype in INTEGER_DTYPES and (
                bad := _not_integer(expr.parse(text, [*scenario.inputs, *steps]))):
            raise ConfigError(f"{where}: {bad} on {dtype}: a step over integers takes whole numbers, "
                              f"{', '.join(_INTEGER_OPS)} and subscripts only (its gradient is None anyway)")
    return dtypes


def _not_integer(tree: syntax.Expr) -> str:
    """What in an integer step TensorFlow would refuse or turn into floats, or ''."""
    if isinstance(tree, syntax.Num) and tree.value != int(tree.value):
        return f"the number {tree.value!r}"
    if isinstance(tree, syntax.BinOp) and tree.op not in _INTEGER_OPS:
        return f"the operator {tree.op}"
    if not isinstance(tree, syntax.Num | syntax.Name | syntax.Neg | syntax.BinOp | syntax.Index):
        return f"{short(str(tree), 30)}"
    return next(filter(None, map(_not_integer, syntax.children(tree))), "")


def _check_structure(scenario: ProgramScenario, name: str, found: structured.Structure,
                     known: list[str]) -> None:
    """A list or dict target: its parts known; only ever differentiated, and only by tape.gradient."""
    where = _step_key(scenario, name)
    structured.check(name, found, known, where)
    if scenario.derivative != "gradient":
        raise ConfigError(f"{where}: a list or dict target is differentiated by tape.gradient only "
                          f"(derivative=gradient, not {scenario.derivative})")
    if name in scenario.output_gradients:
        raise ConfigError(f"scenario.output_gradients.{name}: a list or dict target takes none")
    later = list(scenario.targets)[list(scenario.targets).index(name) + 1:]
    for step in later:
        text = scenario.targets[step]
        if isinstance(text, str) and structured.parse(text) is None and name in syntax.names(
                expr.parse(text, [*known, *scenario.targets])):
            raise ConfigError(f"scenario.targets.{step}: reads {name}, a list or dict target, which is "
                              "only differentiated (its parts are the steps to read)")
    for target, sources in scenario.plan().items():
        if name in sources:
            raise ConfigError(f"scenario.gradients.{target}: {name} is a list or dict target, not a source")


def _check_setup(scenario: ProgramScenario) -> list[str]:
    """The steps before the tape: expressions over the inputs and earlier setup steps; and ``watch``,
    which names setup results only. Returns every name a target may read before its own steps."""
    known = list(scenario.inputs)
    for name, text in scenario.setup.items():
        where = f"scenario.setup.{name}"
        check_new_expression(name, text, where, known, taken_as="an input or an earlier setup step",
                             otherwise="a setup step is an expression (layers and gradient steps run on the "
                                       "tape, in scenario.targets)")
        parse_checked(text, known, where, tensors=True)
        known.append(name)
    for name in scenario.watch:
        if name not in scenario.setup:
            hint = (f"; an input is watched with scenario.inputs.{name}.watch=true" if name in scenario.inputs
                    else f" (setup steps: {', '.join(scenario.setup) or 'none'})")
            raise ConfigError(f"scenario.watch: {name!r} is not a setup step{hint}")
    return known


def program_memory(run: RunConfig, item: int) -> dict[str, int]:
    """A program's peak: every node's tensor on the tape and as many in the backward pass; NumPy's
    float64 copies for the differences (both nudged evaluations and the forward pass)."""
    scenario = run.scenario
    shapes = program_shapes(scenario)
    sizes: list[int] = []
    for text in scenario.setup.values():
        shape_rules.infer_shape(expr.parse(text, shapes), shapes, sizes)
    for name, text in scenario.targets.items():
        if gradient_steps.is_gradient_step(text):  # the gradient, and as much again in its backward pass
            sizes += [2 * math.prod(shapes[name])]
        elif layers.is_step(text):
            sizes += layers.memory(shapes, name)
        else:
            shape_rules.infer_shape(expr.parse(written(scenario, text), shapes), shapes, sizes)
    inputs = sum(math.prod(shapes[n]) for n in scenario.inputs)
    nodes = sum(sizes)
    parts = {"tape": 2 * item * (nodes + inputs), "oracle": 3 * 8 * (nodes + inputs)}
    checked = run.checks.finite_differences
    return (with_differences(parts, run, 2 * 8 * (nodes + inputs))
            | derivative_specs.memory(scenario, shapes, item, checked)
            | named_derivatives.memory(scenario, shapes, item, checked))
