"""A program's config checked as a whole: its short form, inputs, steps, gradients and every shape,
before any TensorFlow; and the memory its job will hold at its peak."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from runner.errors import ConfigError
from runner.language import expr, shape_rules, syntax
from runner.scenarios import derivative_specs, gradient_steps, layers
from runner.scenarios.inputs import check_input
from runner.scenarios.values import check_name, nested_shape, parse_checked, with_differences

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
    for name, text in scenario.targets.items():
        if gradient_steps.is_gradient_step(text):  # shaped like what it differentiates against
            shapes[name] = shapes[text["wrt"]]
            continue
        if layers.is_step(text):
            shapes.update(layers.shapes(name, text, shapes))
            continue
        try:
            shapes[name] = shape_rules.infer_shape(expr.parse(text, shapes), shapes)
        except ConfigError as err:
            raise ConfigError(f"{_step_key(scenario, name)}: {err}") from None
    return shapes


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
    parse_checked(scenario.function, scenario.inputs, "scenario.function", tensors=True)
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
    _short_form(scenario)
    if not scenario.inputs:
        raise ConfigError("scenario.inputs: give at least one input, e.g. scenario.inputs.x.value=3")
    checked = {name: check_input(name, node) for name, node in scenario.inputs.items()}
    scenario.inputs = checked
    if not scenario.targets:
        raise ConfigError("scenario.targets: give at least one step, e.g. {y: x**2}")
    for name in scenario.targets:
        check_name(name, f"scenario.targets.{name}")
        if name in scenario.inputs:
            raise ConfigError(f"scenario.targets.{name}: the name is already an input")
    known = list(scenario.inputs)
    for name, text in scenario.targets.items():  # each step reads inputs and earlier steps only
        if gradient_steps.is_gradient_step(text):
            gradient_steps.check(name, text, known, scenario.inputs, scenario.derivative)
        elif not layers.is_step(text):
            parse_checked(text, known, _step_key(scenario, name), tensors=True)
        known.append(name)
    shapes = program_shapes(scenario)
    order = list(scenario.targets)
    for target, sources in scenario.gradients.items():
        if target not in scenario.targets:
            raise ConfigError(f"scenario.gradients.{target}: no step named {target!r}")
        if not sources:
            raise ConfigError(f"scenario.gradients.{target}: give the sources, e.g. [x]")
        for source in sources:
            if "." in source:
                layers.check_source(scenario.targets, target, source, shapes)
            elif source not in scenario.inputs and (
                    source not in scenario.targets or order.index(source) >= order.index(target)):
                raise ConfigError(f"scenario.gradients.{target}: {source!r} is neither an input nor a step "
                                  f"before {target}")
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


def program_memory(run: RunConfig, item: int) -> dict[str, int]:
    """A program's peak: every node's tensor on the tape and as many in the backward pass; NumPy's
    float64 copies for the differences (both nudged evaluations and the forward pass)."""
    scenario = run.scenario
    shapes = program_shapes(scenario)
    sizes: list[int] = []
    for name, text in scenario.targets.items():
        if gradient_steps.is_gradient_step(text):  # the gradient, and as much again in its backward pass
            sizes += [2 * math.prod(shapes[name])]
        elif layers.is_step(text):
            sizes += layers.memory(shapes, name)
        else:
            shape_rules.infer_shape(expr.parse(text, shapes), shapes, sizes)
    inputs = sum(math.prod(shapes[n]) for n in scenario.inputs)
    nodes = sum(sizes)
    parts = {"tape": 2 * item * (nodes + inputs), "oracle": 3 * 8 * (nodes + inputs)}
    return (with_differences(parts, run, 2 * 8 * (nodes + inputs))
            | derivative_specs.memory(scenario, shapes, item, run.checks.finite_differences))
