"""``derivatives:`` and ``after:``: several derivatives of one tape, named, and steps that read them.

The guide compares ``tape.gradient(y, layer.kernel)`` with the sum of
``tape.jacobian(y, layer.kernel)`` over y's axes, and a batch Jacobian with
``einsum('bxby->bxy', j)``. A program says it as data::

    derivatives:
      j: {kind: jacobian, target: y, wrt: y.kernel}
      g: {kind: gradient, target: y, wrt: y.kernel}
    after:
      j_sum: reduce_sum(j, axis=[0, 1])
      delta: reduce_max(abs(g - j_sum))

Each derivative is asked of the program's tape after its steps, in order (beside
the ``gradients``), and labelled by its name (``<name>[<source>]`` for a list of
sources). ``after`` steps run once the tape is done, over inputs, steps and
derivatives of one source; their values go to ``values``. This module checks the
config before any TensorFlow; :mod:`runner.routines.program` asks the tape and
checks each result with its kind's oracles.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError
from runner.language import expr, shape_rules, syntax
from runner.scenarios import custom_specs, gradient_steps, recording, structured
from runner.scenarios.derivative_specs import check_batch_pair, result_shape
from runner.scenarios.values import check_name, check_new_expression, parse_checked

if TYPE_CHECKING:
    from runner.scenarios.schema import ProgramScenario

#: What a named derivative may be: each is asked of the program's one tape (a Hessian needs a tape
#: around it, and a JVP none; both are a program's ``derivative``).
KINDS = ("gradient", "jacobian", "batch_jacobian")


@dataclass(frozen=True)
class Derivative:
    """One entry of ``derivatives``: what the tape is asked, and the labels its results take."""

    name: str
    kind: str
    target: str
    sources: tuple[str, ...]
    listed: bool  # wrt given as a list: a result per source, labelled <name>[<source>]
    tape: str | None = None  # which of scenario.tapes it is asked of; None: the program's one tape

    def labels(self) -> dict[str, str]:
        """Source -> the label its result takes in results.json."""
        if not self.listed:
            return {self.sources[0]: self.name}
        return {s: f"{self.name}[{s}]" for s in self.sources}


def parse(scenario: ProgramScenario) -> list[Derivative]:
    """The named derivatives, in order (their entries already checked)."""
    found = []
    for name, entry in scenario.derivatives.items():
        wrt = entry["wrt"]
        listed = not isinstance(wrt, str)
        tape = entry.get("tape", next(iter(scenario.tapes), None))
        found.append(Derivative(name, entry.get("kind", "gradient"), entry["target"],
                                tuple(wrt) if listed else (wrt,), listed, tape))
    return found


Shapes = dict[str, tuple[int, ...]]


def check(scenario: ProgramScenario, shapes: Shapes, taken: set[str],
          check_source: Callable[[str, str, str], None], dtypes: dict[str, str]) -> Shapes:
    """Each named derivative and after step against the program; returns the shape of every derivative
    of one source and every after step. ``taken``: the names already in use; ``check_source(where,
    target, source)`` raises for a source the target cannot be differentiated against; ``dtypes``: the
    names not in the run's dtype, which an after step may not read."""
    if not scenario.derivatives:
        if scenario.after:
            raise ConfigError("scenario.after: its steps read named derivatives; give scenario.derivatives "
                              "too")
        return {}
    if scenario.derivative != "gradient":
        raise ConfigError(f"scenario.derivatives: each entry names its own kind; scenario.derivative stays "
                          f"gradient (got {scenario.derivative})")
    if scenario.custom_gradients:
        raise ConfigError("scenario.derivatives: a custom gradient is followed by scenario.gradients only")
    _check_calls(scenario)
    known: Shapes = {}
    for name, entry in scenario.derivatives.items():
        where = f"scenario.derivatives.{name}"
        _check_entry(scenario, name, entry, where, taken)
        kind, target, wrt = entry.get("kind", "gradient"), entry["target"], entry["wrt"]
        for source in [wrt] if isinstance(wrt, str) else wrt:
            check_source(where, target, source)
            if kind == "batch_jacobian":
                check_batch_pair(where, target, source, shapes)
        if isinstance(wrt, str):
            known[name] = result_shape(kind, shapes[target], shapes[wrt])
        taken.add(name)
    for name, text in scenario.after.items():
        where = f"scenario.after.{name}"
        check_new_expression(name, text, where, taken, taken_as="an input, a step or a derivative",
                             otherwise="an after step is an expression over inputs, steps and derivatives")
        readable = [*shapes, *known]
        listed = [n for n in scenario.derivatives if n not in known]
        parse_checked(text, [*readable, *listed], where, tensors=True)
        if read := [n for n in listed if n in syntax.names(expr.parse(text, [*readable, *listed]))]:
            raise ConfigError(f"{where}: reads {read[0]}, a list of derivatives (wrt a list); give it one "
                              "source to read it")
        if odd := sorted(n for n in syntax.names(expr.parse(text, readable)) if n in dtypes):
            raise ConfigError(f"{where}: reads {', '.join(odd)}, not in the run's dtype; an after step runs "
                              "in the run's dtype")
        try:
            known[name] = shape_rules.infer_shape(expr.parse(text, readable), {**shapes, **known})
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        taken.add(name)
    return known


def _check_entry(scenario: ProgramScenario, name: str, entry: Any, where: str, taken: set[str]) -> None:
    check_name(name, where)
    if name in taken:
        raise ConfigError(f"{where}: the name is already an input or a step")
    if not isinstance(entry, dict) or not {"target", "wrt"} <= set(entry) or set(entry) - {
            "kind", "target", "wrt", "tape"}:
        raise ConfigError(f"{where}: give {{kind: gradient|jacobian|batch_jacobian, target: <step>, "
                          "wrt: <source or list>}, and tape: <name> with scenario.tapes")
    if "tape" in entry and entry["tape"] not in scenario.tapes:
        raise ConfigError(f"{where}: no tape named {entry['tape']!r} in scenario.tapes (tapes: "
                          f"{', '.join(scenario.tapes) or 'none'})")
    if "tape" not in entry and len(scenario.tapes) > 1:
        raise ConfigError(f"{where}: say which tape it is asked of (tape: {' or '.join(scenario.tapes)})")
    kind, target, wrt = entry.get("kind", "gradient"), entry["target"], entry["wrt"]
    if kind not in KINDS:
        other = (" (a Hessian or a JVP is the program's own derivative: scenario.derivative="
                 f"{kind})" if kind in ("hessian", "jvp") else "")
        raise ConfigError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}{other}")
    if target not in scenario.targets:
        raise ConfigError(f"{where}: no step named {target!r}")
    if kind != "gradient" and structured.parse(scenario.targets[target]) is not None:
        raise ConfigError(f"{where}: {target} is a list or dict target, differentiated by tape.gradient only")
    for source in [wrt] if isinstance(wrt, str) else wrt if isinstance(wrt, list) else []:
        if isinstance(source, str) and structured.parse(scenario.targets.get(source)) is not None:
            raise ConfigError(f"{where}: {source} is a list or dict target, not a source")
    if not (isinstance(wrt, str) or (isinstance(wrt, list) and wrt and all(isinstance(s, str) for s in wrt)
                                     and len(set(wrt)) == len(wrt))):
        raise ConfigError(f"{where}: wrt is a source's name or a list of distinct names")


def memory(scenario: ProgramScenario, shapes: dict[str, tuple[int, ...]], item: int,
           checked: bool) -> dict[str, int]:
    """Bytes the named derivatives' results take: on the tape's side, and in float64 for their checks."""
    count = sum(math.prod(result_shape(d.kind, shapes[d.target], shapes[s]))
                for d in parse(scenario) for s in d.sources)
    if not count:
        return {}
    return {"named derivatives": 2 * item * count} | ({"named derivatives' checks": 2 * 8 * count} if checked
                                                        else {})


def _check_calls(scenario: ProgramScenario) -> None:
    """A non-persistent tape answers one call: more on one tape need ``persistent``."""
    if not scenario.tapes:
        calls = len(scenario.gradients) + len(scenario.derivatives)
        if calls > 1 and not scenario.persistent:
            raise ConfigError(f"scenario.derivatives: {calls} calls on one tape need a persistent tape "
                              "(scenario.persistent=true): a non-persistent tape answers only its first")
        return
    for d in parse(scenario):
        calls = sum(e.tape == d.tape for e in parse(scenario))
        if calls > 1 and not scenario.tapes[d.tape]["persistent"]:
            raise ConfigError(f"scenario.tapes.{d.tape}: {calls} derivatives are asked of it, so it must be "
                              f"persistent (scenario.tapes.{d.tape}.persistent=true)")


#: What a program with several tapes may not have: each belongs to the program's one tape.
_ONE_TAPE = {"gradients": "name each derivative and its tape in scenario.derivatives",
             "watch": "name what each tape watches in scenario.tapes.<name>.watch",
             "reset_after": "tape.reset() resets the program's one tape"}


def check_tapes(scenario: ProgramScenario, known: list[str]) -> None:
    """``tapes:`` before the steps are checked: names, what each watches, and what goes with them."""
    if not scenario.tapes:
        return
    for key, instead in _ONE_TAPE.items():
        if getattr(scenario, key):
            raise ConfigError(f"scenario.{key}: not with scenario.tapes; {instead}")
    if not scenario.derivatives:
        raise ConfigError("scenario.tapes: ask each tape for its derivatives in scenario.derivatives "
                          "(tape: <name>)")
    for name, spec in scenario.inputs.items():
        if spec.watch:
            raise ConfigError(f"scenario.inputs.{name}.watch: with scenario.tapes, each tape's watch names "
                              f"what it watches (scenario.tapes.<name>.watch: [{name}])")
    for name, spec in scenario.tapes.items():
        where = f"scenario.tapes.{name}"
        check_name(name, where)
        if name in known:
            raise ConfigError(f"{where}: the name is already an input or a step")
        if not isinstance(spec, dict) or set(spec) - {"watch", "persistent"} or not isinstance(
                spec.get("watch", []), list) or not isinstance(spec.get("persistent", False), bool):
            raise ConfigError(f"{where}: give {{watch: [<input or setup step>, ...], persistent: "
                              "true|false}")
        for watched in spec.get("watch", []):
            if watched not in scenario.inputs and watched not in scenario.setup:
                raise ConfigError(f"{where}.watch: {watched!r} is neither an input nor a setup step")
        scenario.tapes[name] = {"watch": list(spec.get("watch", [])),  # both keys, from here on
                                "persistent": spec.get("persistent", False)}
    steps = scenario.targets.values()
    if any(gradient_steps.is_gradient_step(s) or recording.is_step(s) or custom_specs.call(
            s, scenario.custom_gradients) for s in steps):
        raise ConfigError("scenario.tapes: gradient steps, custom gradients and steps written with "
                          "recorded: false run on the program's one tape; not with several")
