"""Keras layers as program steps: ``h: {layer: Dense, input: x, args: {units: 10}}``.

A config is data, so a layer is named, never imported: only the layers in
:data:`ALLOWED` exist here, and their ``args`` are plain numbers, strings, bools
and lists, checked against the layer's own constructor before anything is built.
Initialisers and activations are Keras's own, by name (never a dict, which Keras
would deserialize into any registered class).

Keras (and NumPy) are imported only when a program has a layer step, so every
other run, and every config check, keeps its start-up (``runner.tfenv``).

Each layer is built twice from the same weights: in the run's dtype for the tape,
and in float64 for the oracles, which evaluate the program forward (TensorFlow's
forward ops, no tape) and nudge an input, a step or a layer variable. A variable
source is written ``<step>.<variable>`` (``h.kernel``, ``bn.gamma``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import math
import re
import zlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from runner.errors import ConfigError

#: The layers a program may use, by Keras's class name.
ALLOWED = ("Dense", "Conv1D", "Conv2D", "BatchNormalization", "LayerNormalization", "Embedding", "Flatten",
           "Dropout", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "UnitNormalization")
#: Constructor arguments a config may not give: the run's dtype, the step's name and seeds from ``seed``
#: are the runner's; a quantization config is an object.
RUNNER_ARGS = frozenset({"dtype", "name", "seed", "quantization_config"})


KEYS = ("layer", "input", "args", "training", "seed")


#: Arguments whose strings name a Keras object, and the module that knows the names.
NAMED = {"initializer": "initializers", "activation": "activations", "regularizer": "regularizers",
         "constraint": "constraints"}


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


#: How closely (relative to the output's largest value) a Dense layer's ``activation(x @ K + b)`` on its
#: first example must agree with its float64 twin's output before nudges share x @ K + b (float64
#: rounding is ~1e-16).
AFFINE_AGREEMENT = 1e-10


def is_step(entry: Any) -> bool:
    """A target entry that is a layer step (a mapping), not an expression (a string), a gradient step
    (a mapping with ``gradient``: :mod:`runner.scenarios.gradient_steps`) nor an expression written as
    a mapping (with ``expression``: :mod:`runner.scenarios.recording`)."""
    return isinstance(entry, Mapping) and "gradient" not in entry and "expression" not in entry


def load_keras() -> Any:
    from runner.tfenv import tf

    return tf.keras


@dataclass(frozen=True)
class StepSpec:
    """One layer step, validated: the class name, what it reads, its arguments and ``training``."""

    layer: str
    input: str
    args: tuple[tuple[str, Any], ...]
    training: bool | None
    seed: int | None = None  # draws this layer's initialisers; None: the run's seed

    def kwargs(self) -> dict[str, Any]:
        return dict(self.args)


def _plain(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v, where) for v in value]
    raise ConfigError(f"{where}: {value!r} is not plain data (numbers, strings, bools, lists); "
                      "name initialisers and activations by their Keras names, e.g. 'glorot_uniform'")


def _role(arg: str) -> str | None:
    return next((role for role in NAMED if arg == role or arg.endswith(f"_{role}")), None)


def _public_names(module: str) -> list[str]:
    found = getattr(load_keras(), module)
    return sorted(n for n in dir(found) if n.islower() and not n.startswith("_")
                  and n not in ("get", "serialize", "deserialize"))


def _named(module: str, value: str, where: str) -> None:
    """A Keras initialiser, activation, regularizer or constraint by its own name, or one line saying not."""
    try:
        ok = bool(_NAME.match(value)) and getattr(load_keras(), module).get(value) is not None
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise ConfigError(f"{where}: unknown name {value!r} (Keras's {module}: "
                          f"{', '.join(_public_names(module))})")


def accepted(layer: str) -> list[str]:
    """The constructor arguments a config may give ``layer``: its own signature, less the runner's."""
    params = inspect.signature(getattr(load_keras().layers, layer).__init__).parameters.values()
    return [p.name for p in params if p.name != "self" and p.name not in RUNNER_ARGS
            and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def spec(name: str, entry: Mapping[str, Any], known: list[str]) -> StepSpec:
    """The step ``name``'s entry checked: allowlisted layer, an earlier input, its own arguments."""
    where = f"scenario.targets.{name}"
    unknown = [k for k in entry if k not in KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (a layer step takes {', '.join(KEYS)})")
    layer = entry.get("layer")
    if layer not in ALLOWED:
        raise ConfigError(f"{where}.layer: {layer!r} is not an allowed layer (allowed: {', '.join(ALLOWED)})")
    source = entry.get("input")
    if source not in known:
        raise ConfigError(f"{where}.input: {source!r} is neither an input nor a step before {name}")
    args = entry.get("args") or {}
    if not isinstance(args, Mapping):
        raise ConfigError(f"{where}.args: give the layer's keyword arguments as a mapping, e.g. {{units: 2}}")
    allowed = accepted(layer)
    for arg, value in args.items():
        if arg not in allowed:
            raise ConfigError(f"{where}.args: {layer} takes no argument {arg!r} "
                              f"(it accepts: {', '.join(allowed)})")
        value = _plain(value, f"{where}.args.{arg}")
        role = _role(arg)
        if role is not None and isinstance(value, str):
            _named(NAMED[role], value, f"{where}.args.{arg}")
    training = entry.get("training")
    if training is not None:
        if not isinstance(training, bool):
            raise ConfigError(f"{where}.training: true or false, got {training!r}")
        call = inspect.signature(getattr(load_keras().layers, layer).call).parameters
        if "training" not in call:
            raise ConfigError(f"{where}.training: {layer}'s call takes no training argument")
        if layer == "Dropout" and training:
            raise ConfigError(f"{where}.training: Dropout with training=true draws a new random mask on "
                              "every call, so no oracle can repeat the tape's; use training=false")
    seed = entry.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError(f"{where}.seed: a whole number >= 0 (the seed of this layer's weights), "
                          f"got {seed!r}")
    return StepSpec(layer, source, tuple((k, _plain(v, "")) for k, v in args.items()), training, seed)


def _seed(seed: int, step: str, arg: str) -> int:
    """A seed for one initialiser of one step, fixed by the run's seed: same seed, same weights."""
    return zlib.crc32(f"{seed}:{step}:{arg}".encode()) % 2**31


def initialisers(step: StepSpec, name: str, seed: int) -> dict[str, tuple[str, int | None]]:
    """Each ``*_initializer`` argument: its Keras name (given, or the layer's default) and its seed."""
    keras = load_keras()
    params = inspect.signature(getattr(keras.layers, step.layer).__init__).parameters
    given = step.kwargs()
    found: dict[str, tuple[str, int | None]] = {}
    for arg, param in params.items():
        if not arg.endswith("_initializer"):
            continue
        value = given.get(arg, param.default)
        if not isinstance(value, str):
            continue
        cls = type(keras.initializers.get(value))
        seeded = "seed" in inspect.signature(cls.__init__).parameters
        found[arg] = (value, _seed(seed, name, arg) if seeded else None)
    return found


def make(step: StepSpec, name: str, seed: int, dtype: str) -> Any:
    keras = load_keras()
    kwargs = step.kwargs()
    for arg, (value, drawn) in initialisers(step, name, seed).items():
        init = keras.initializers.get(value)
        kwargs[arg] = type(init)(seed=drawn) if drawn is not None else value
    return getattr(keras.layers, step.layer)(**kwargs, dtype=dtype, name=name)


@functools.lru_cache(maxsize=128)
def _describe(name: str, entry: str, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[Any, ...]]:
    """The output shape and each variable's (name, shape, trainable), from a throwaway float32 layer.

    ``entry`` is the step's spec as JSON (hashable, so a sweep's jobs describe each step once).
    """
    fields = json.loads(entry)
    step = StepSpec(**{**fields, "args": tuple((k, v) for k, v in fields["args"])})
    try:  # a symbolic call: the layer's own input checks and output shape, no values computed
        layer = make(step, name, 0, "float32")
        symbol = load_keras().KerasTensor(shape, dtype="int32" if step.layer == "Embedding" else "float32")
        training = {} if step.training is None else {"training": step.training}
        out = tuple(layer(symbol, **training).shape)
    except (ValueError, TypeError, NotImplementedError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"scenario.targets.{name}: {step.layer} on {step.input} of shape {shape}: {reason}"
                          ) from None
    if any(d is None for d in out):
        raise ConfigError(f"scenario.targets.{name}: {step.layer} gives an output shape {out} with unknown "
                          "sizes")
    weights = tuple((w.name, tuple(int(d) for d in w.shape), bool(w.trainable)) for w in layer.weights)
    return tuple(int(d) for d in out), weights


#: Bytes a layer's weights may take while it is described (built once, symbolically, in float32), set by
#: :func:`weight_budget` from ``limits.memory_mb`` around a config's validation; no bound outside it.
_BUDGET: ContextVar[float] = ContextVar("layer_weight_budget", default=math.inf)


@contextlib.contextmanager
def weight_budget(limit_bytes: float) -> Iterator[None]:
    """Refuse, inside the block, a layer step whose weights (from its arguments) exceed ``limit_bytes``."""
    token = _BUDGET.set(limit_bytes)
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _size(value: Any) -> int | None:
    """A positive whole number, or each of a list of them multiplied (a kernel size); None otherwise."""
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        return None
    return math.prod(values)


def weight_elements(layer: Any, args: Mapping[str, Any], shape: tuple[int, ...]) -> int:
    """At least as many elements as the layer's weights will hold, from its arguments and input shape
    alone (no Keras): Dense ``units * (in + 1)``, a convolution ``filters * (kernel * channels + 1)``,
    Embedding ``input_dim * output_dim``, a normalisation or PReLU at most four per input element.
    Arguments Keras would refuse count as nothing: Keras names them."""
    channels = max(shape[1:], default=1)  # the last axis, or the first after the batch (channels_first)
    match layer:
        case "Dense":
            units = _size(args.get("units"))
            return units * ((shape[-1] if shape else 1) + 1) if units else 0
        case "Conv1D" | "Conv2D":
            filters, kernel = _size(args.get("filters")), _size(args.get("kernel_size"))
            return filters * (kernel * channels + 1) if filters and kernel else 0
        case "Embedding":
            rows, width = _size(args.get("input_dim")), _size(args.get("output_dim"))
            return rows * width if rows and width else 0
        case "BatchNormalization" | "LayerNormalization" | "PReLU":
            return 4 * math.prod(shape)
    return 0


def shapes(name: str, entry: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]]
           ) -> dict[str, tuple[int, ...]]:
    """The step's output shape (under ``name``) and each variable's (``name.variable``), from the config.

    The layer is built once, symbolically, to find them: a step whose weights would exceed the
    :func:`weight_budget` is refused first, from its arguments, before TensorFlow is even imported.
    """
    source, args = entry.get("input"), entry.get("args") or {}
    if source in shapes and isinstance(args, Mapping):
        weights = weight_elements(entry.get("layer"), args, shapes[source])
        if 8 * weights > _BUDGET.get():  # float32 weights, and their initialiser's draw as large
            raise ConfigError(
                f"scenario.targets.{name}: {entry.get('layer')} on {source} of shape {shapes[source]} "
                f"holds about {weights:,} weights ({4 * weights / 2**20:,.0f} MiB in float32 alone, twice "
                f"that while drawn), above limits.memory_mb={_BUDGET.get() / 2**20:g}; refused before it "
                "is built")
    step = spec(name, entry, [n for n in shapes if "." not in n])
    key = json.dumps(dataclasses.asdict(step))
    out, variables = _describe(name, key, shapes[step.input])
    return {name: out, **{f"{name}.{w}": s for w, s, _ in variables}}


#: A source that stands for every trainable variable of a layer step, as ``layer.trainable_variables``.
TRAINABLE = "trainable_variables"


def trainable(name: str, entry: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """A layer step's trainable variables, ``<step>.<variable>``, in the layer's own order."""
    step = spec(name, entry, [n for n in shapes if "." not in n])
    _, variables = _describe(name, json.dumps(dataclasses.asdict(step)), shapes[step.input])
    return [f"{name}.{w}" for w, _, is_trainable in variables if is_trainable]


def expand(targets: Mapping[str, Any], sources: Any, shapes: Mapping[str, tuple[int, ...]],
           where: str) -> Any:
    """``<step>.trainable_variables`` (alone, or in a list of sources) as that layer's trainable variables."""
    def one(source: Any) -> list[Any]:
        step, _, var = source.partition(".") if isinstance(source, str) else ("", "", "")
        if var != TRAINABLE:
            return [source]
        if step not in targets or not is_step(targets[step]):
            raise ConfigError(f"{where}: {source!r}: {step!r} is no layer step")
        return trainable(step, targets[step], shapes)

    if isinstance(sources, str) and sources.endswith(f".{TRAINABLE}"):
        return one(sources)
    return [s for source in sources for s in one(source)] if isinstance(sources, list) else sources


def check_source(targets: Mapping[str, Any], target: str, source: str, shapes: Mapping[str, Any],
                 where: str = "") -> None:
    """A ``<step>.<variable>`` source: a layer step that has that variable, ``target`` itself (a layer's
    output with respect to its own kernel, as the guide's Jacobian) or a step before it."""
    step, _, var = source.partition(".")
    order = list(targets)
    where = where or f"scenario.gradients.{target}"
    if step not in targets or not is_step(targets[step]) or order.index(step) > order.index(target):
        raise ConfigError(f"{where}: {source!r} names no layer step at or before {target} "
                          "(<step>.<variable>)")
    if source not in shapes:
        names = [k.partition(".")[2] for k in shapes if k.startswith(f"{step}.")]
        raise ConfigError(f"{where}: {targets[step]['layer']} step {step} has no variable {var!r} "
                          f"(it has: {', '.join(names) or 'none'})")


def memory(shapes: Mapping[str, tuple[int, ...]], name: str) -> list[int]:
    """Element counts a layer step holds: its output and its variables (the twin holds as many again)."""
    return [math.prod(s) for k, s in shapes.items() if k == name or k.startswith(f"{name}.")]
