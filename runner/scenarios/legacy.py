"""Configs saved by routines that programs replaced, read as those programs (numbers unchanged).

The one place the former layout lives on: a run's ``.hydra/config.yaml`` written by
``persistent``, ``unconnected``, ``jacobian``, ``forward_mode``, ``hessian``, ``mlp`` or
``gradient`` still loads, reruns and compares, because :func:`as_program` rewrites it
into the program the routine ran before any schema sees it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any


def as_program(scenario: dict[str, Any]) -> dict[str, Any]:
    """A scenario saved (in a run's .hydra/config.yaml) by a routine a program replaced, as that program."""
    translate = _FORMER_ROUTINES.get(scenario.get("routine"))
    return scenario if translate is None else {**translate(scenario), "routine": "program"}


def _fresh(name: str, taken: list[str]) -> str:
    """``name``, or name1, name2, ... when an input or step is called that: as the former routines named."""
    names = itertools.chain([name], (f"{name}{i}" for i in itertools.count(1)))
    return next(n for n in names if n not in taken)


def _from_persistent(scenario: dict[str, Any]) -> dict[str, Any]:
    """``persistent`` took every target with respect to every input."""
    inputs = list(scenario.get("inputs") or {})
    return {**scenario, "gradients": {target: inputs for target in scenario.get("targets") or {}}}


def _from_unconnected(scenario: dict[str, Any]) -> dict[str, Any]:
    """``unconnected``'s function was the target z (z1, z2, ... when an input was called z)."""
    return {**scenario, "target": _fresh("z", list(scenario.get("inputs") or {}))}


def _vector(scenario: dict[str, Any]) -> dict[str, Any]:
    """``jacobian``'s and ``forward_mode``'s F: each output a step, then F stacking them, over the scalar
    inputs (which the routines watched whatever their kind) with zeros where F reads no input."""
    inputs = {name: {"value": spec.get("value")} for name, spec in (scenario.get("inputs") or {}).items()}
    outputs = dict(scenario.get("outputs") or {})
    target = _fresh("F", [*inputs, *outputs])
    stacked = f"stack([{', '.join(outputs)}])"
    return {**_renamed(scenario), "inputs": inputs, "targets": {**outputs, target: stacked},
            "gradients": {target: list(inputs)}, "unconnected_gradients": "zero"}


def _from_jacobian(scenario: dict[str, Any]) -> dict[str, Any]:
    """``jacobian``: tape.jacobian both ways (pfor and tf.while_loop); its batch_jacobian is not kept."""
    return {**_vector(scenario), "derivative": "jacobian", "experimental_use_pfor": "both",
            "persistent": True}


def _from_forward_mode(scenario: dict[str, Any]) -> dict[str, Any]:
    """``forward_mode``: a JVP with tangent 1 along each input, a column of the Jacobian. Its probes are
    not kept: the dot-product test takes checks.projections cotangents."""
    program = _vector(scenario)
    return {**program, "derivative": "jvp", "tangents": dict.fromkeys(program["inputs"], 1.0)}


def _from_hessian(scenario: dict[str, Any]) -> dict[str, Any]:
    """``hessian`` stacked its scalar inputs, in order, into one vector (X; X_ when a name was taken)
    and took its function's Hessian with respect to it (the target y; f when an input was called y),
    then one Newton step. The program makes that vector its one input and each old input a step
    reading an element of it, so the Hessian's label (d2f/dX2) and numbers are the routine's; its
    gradient (df/dX) is now the Newton step's g, among the values."""
    names = list(scenario.get("inputs") or {})
    target = "y" if "y" not in names else "f"
    while target in names:
        target += "_"
    vector = "X"
    while vector in (*names, target):
        vector += "_"
    values = [(spec or {}).get("value") for spec in (scenario.get("inputs") or {}).values()]
    steps = {n: f"{vector}[{i}]" for i, n in enumerate(names)}
    return {**_renamed(scenario), "inputs": {vector: {"value": values}},
            "targets": {**steps, target: scenario.get("function")}, "gradients": {target: [vector]},
            "derivative": "hessian", "newton_step": True, "damping": scenario.get("damping", 1e-6)}


def _from_mlp(scenario: dict[str, Any]) -> dict[str, Any]:
    """``mlp``'s layer sizes, activation and batch as the steps it ran: h_i = act(h_{i-1} @ Wi + bi),
    no activation on the last layer (y), loss = reduce_mean((y - t)**2), gradients for every Wi, bi.

    Its numbers are not the routine's: it drew x, the targets, Glorot-normal weights and
    0.1 N(0, 1) biases from one NumPy generator; the program draws each input from its own
    seeded initialiser (x and t N(0, 1), glorot_uniform weights, zero biases).
    """
    sizes = list(scenario.get("layers") or [])
    activation, batch = scenario.get("activation", "tanh"), scenario.get("batch", 8)
    inputs: dict[str, Any] = {
        "x": {"init": "normal", "shape": [batch, *sizes[:1]], "kind": "constant"},
        "t": {"init": "normal", "shape": [batch, *sizes[-1:]], "kind": "constant"}}
    targets, before, depth = {}, "x", len(sizes) - 1
    for i in range(1, depth + 1):
        inputs[f"W{i}"] = {"init": "glorot_uniform", "shape": sizes[i - 1:i + 1]}
        inputs[f"b{i}"] = {"init": "zeros", "shape": [sizes[i]]}
        step = "y" if i == depth else f"h{i}"
        affine = f"{before} @ W{i} + b{i}"
        targets[step] = affine if step == "y" or activation == "linear" else f"{activation}({affine})"
        before = step
    targets["loss"] = "reduce_mean((y - t)**2)"
    return {**_renamed(scenario), "inputs": inputs, "targets": targets,
            "gradients": {"loss": [f"{kind}{i}" for i in range(1, depth + 1) for kind in "Wb"]}}


def _renamed(scenario: dict[str, Any]) -> dict[str, Any]:
    """A former routine's name and description, on a program."""
    return {"name": scenario.get("name"), "description": scenario.get("description", "")}


#: Routines that programs replaced -> how a config they saved reads as the program (``gradient`` was
#: already the short form).
_FORMER_ROUTINES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "gradient": dict, "persistent": _from_persistent, "unconnected": _from_unconnected,
    "jacobian": _from_jacobian, "forward_mode": _from_forward_mode, "hessian": _from_hessian,
    "mlp": _from_mlp,
}
