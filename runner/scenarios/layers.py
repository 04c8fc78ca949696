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
ALLOWED = ("Dense", "Conv1D", "Conv2D", "BatchNormalization", "LayerNormalization", "Embedding",
           "Flatten", "Dropout", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax")
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
    """A target entry that is a layer step (a mapping), not an expression (a string) nor a gradient
    step (a mapping with ``gradient``: :mod:`runner.scenarios.gradient_steps`)."""
    return isinstance(entry, Mapping) and "gradient" not in entry


def _keras() -> Any:
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
    found = getattr(_keras(), module)
    return sorted(n for n in dir(found) if n.islower() and not n.startswith("_")
                  and n not in ("get", "serialize", "deserialize"))


def _named(module: str, value: str, where: str) -> None:
    """A Keras initialiser, activation, regularizer or constraint by its own name, or one line saying not."""
    try:
        ok = bool(_NAME.match(value)) and getattr(_keras(), module).get(value) is not None
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise ConfigError(f"{where}: unknown name {value!r} (Keras's {module}: "
                          f"{', '.join(_public_names(module))})")


def accepted(layer: str) -> list[str]:
    """The constructor arguments a config may give ``layer``: its own signature, less the runner's."""
    params = inspect.signature(getattr(_keras().layers, layer).__init__).parameters.values()
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
        call = inspect.signature(getattr(_keras().layers, layer).call).parameters
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


def _initialisers(step: StepSpec, name: str, seed: int) -> dict[str, tuple[str, int | None]]:
    """Each ``*_initializer`` argument: its Keras name (given, or the layer's default) and its seed."""
    keras = _keras()
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


def _make(step: StepSpec, name: str, seed: int, dtype: str) -> Any:
    keras = _keras()
    kwargs = step.kwargs()
    for arg, (value, drawn) in _initialisers(step, name, seed).items():
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
        layer = _make(step, name, 0, "float32")
        symbol = _keras().KerasTensor(shape, dtype="int32" if step.layer == "Embedding" else "float32")
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


def check_source(targets: Mapping[str, Any], target: str, source: str, shapes: Mapping[str, Any]) -> None:
    """A ``<step>.<variable>`` source: a layer step that has that variable, ``target`` itself (a layer's
    output with respect to its own kernel, as the guide's Jacobian) or a step before it."""
    step, _, var = source.partition(".")
    order = list(targets)
    where = f"scenario.gradients.{target}"
    if step not in targets or not is_step(targets[step]) or order.index(step) > order.index(target):
        raise ConfigError(f"{where}: {source!r} names no layer step at or before {target} "
                          "(<step>.<variable>)")
    if source not in shapes:
        names = [k.partition(".")[2] for k in shapes if k.startswith(f"{step}.")]
        raise ConfigError(f"{where}: {targets[step]['layer']} step {step} has no variable {var!r} "
                          f"(it has: {', '.join(names) or 'none'})")


class Step:
    """A built layer step: the layer in the run's dtype (the tape's) and its float64 twin (the oracles')."""

    def __init__(self, name: str, step: StepSpec, input_shape: tuple[int, ...], seed: int, dtype: str,
                 watch_accessed: bool) -> None:
        import numpy as np


        self.name, self.spec, self.input_shape, self.seed, self.dtype = name, step, input_shape, seed, dtype
        # Drawn in float32 whatever the run's dtype, so a seed gives the same weights in every dtype
        # (rounded to it); the float64 twin holds them as the run's dtype rounded them.
        drawn = _make(step, name, seed, "float32")
        drawn.build(input_shape)
        self.layer = drawn if dtype == "float32" else self._copy(drawn, dtype, name)
        self.twin = self._copy(self.layer, "float64", f"{name}_float64")
        self.variables = {f"{name}.{w.name}": w for w in self.layer.weights}
        self.twin_variables = {f"{name}.{w.name}": w for w in self.twin.weights}
        self.held = {k: np.asarray(w.numpy(), dtype=np.float64) for k, w in self.twin_variables.items()}
        # The twin is called statelessly with these (a nudged value in place of one): no assignment,
        # no copy of a held weight per call, and a BatchNormalization twin's statistics never drift.
        # (Dropout's seed state is among a layer's variables but not its weights: held as it is.)
        states = (self.twin.trainable_variables, self.twin.non_trainable_variables)
        self._held_tensors = {f"{name}.{w.name}": w.value for ws in states for w in ws}
        self._twin_order = tuple([f"{name}.{w.name}" for w in ws] for ws in states)
        self.watch_accessed = watch_accessed
        self.integer_input = step.layer == "Embedding"
        self._pre: Any = None  # Dense's float64 x @ K + b at the held weights (False: not used), once

    def _copy(self, layer: Any, dtype: str, name: str) -> Any:
        """The same layer in ``dtype``, holding ``layer``'s weights cast to it."""
        from runner.tfenv import tf

        copy = getattr(_keras().layers, self.spec.layer)(**self.spec.kwargs(), dtype=dtype, name=name)
        copy.build(self.input_shape)
        for mine, theirs in zip(copy.weights, layer.weights, strict=True):
            mine.assign(tf.cast(theirs, mine.dtype))
        return copy

    def gradient_names(self) -> set[str]:
        """What a gradient can flow back to through this step: its input (not an Embedding's integer
        indices) and its trainable variables, when the tape watches them."""
        found = set() if self.integer_input else {self.spec.input}
        return found | {k for k, w in self.variables.items() if w.trainable}

    def why_none(self, source: str) -> str:
        """Why the tape gives no gradient for this step's variable ``source`` though a target reads it."""
        if not self.variables[source].trainable:
            return (f"{source} is a non-trainable variable, which the tape does not watch (and which "
                    f"{self.spec.layer} updates outside the gradient), so the gradient is None")
        if not self.watch_accessed:
            return (f"watch_accessed_variables=false and {source} was not watched, so the tape ignored "
                    "the layer's variable")
        return ""

    def __call__(self, values: Mapping[str, Any], backend: Any) -> Any:
        from runner.language import backends
        from runner.tfenv import tf

        x = values[self.spec.input]
        if isinstance(backend, backends.TensorFlowBackend):
            x = tf.cast(x, tf.int32) if self.integer_input else x
            return self.layer(x, **self._training())
        return self._twin_call(values)

    def _twin_call(self, values: Mapping[str, Any]) -> Any:
        """The float64 twin's output on ``values[input]``, a variable given in ``values`` in place of
        the held one."""
        import numpy as np

        from runner.tfenv import tf

        trainable, non_trainable = ([tf.constant(values[k], tf.float64) if k in self.held
                                     and values.get(k, self.held[k]) is not self.held[k]
                                     else self._held_tensors[k] for k in keys]
                                    for keys in self._twin_order)  # a nudged variable, else the held one
        x = tf.constant(np.asarray(values[self.spec.input]), tf.int32 if self.integer_input else tf.float64)
        out, _ = self.twin.stateless_call(trainable, non_trainable, x, **self._training())
        return np.asarray(out.numpy(), dtype=np.float64)

    def nudged(self, source: str, step: Any, values: Mapping[str, Any]) -> tuple[Any, Any]:
        """This step's float64 output with its variable ``source`` nudged by ``+step`` and by ``-step``;
        ``values`` holds the float64 forward pass (this step's input and its own output, unnudged).

        A Dense layer is affine in its kernel and its bias before the activation: ``x @ (K + s) + b``
        is ``x @ K + b + x @ s``, so both signs share one product ``x @ s`` (the bias: ``s`` itself)
        and the unnudged ``x @ K + b`` (the twin's own output when the activation is linear), found
        once for both sources. Any other layer or variable calls the twin once per sign.
        """
        variable = source.partition(".")[2]
        z = self._pre_activation(values) if variable in ("kernel", "bias") else None
        if z is None:
            held = self.held[source]
            plus, minus = (self._twin_call({**values, source: held + s}) for s in (step, -step))
            return plus, minus
        shift = _matmul(values[self.spec.input], step).reshape(z.shape) if variable == "kernel" else step
        return self._activation(z + shift), self._activation(z - shift)

    def _pre_activation(self, values: Mapping[str, Any]) -> Any:
        """A Dense layer's ``x @ K + b`` in float64 at the held weights, or None where :meth:`nudged`
        calls the twin instead: another layer, LoRA, or a twin whose output on the first example is not
        ``activation(x @ K + b)`` (checked here, at 1/batch of a product's cost)."""
        import numpy as np

        if self._pre is None:
            self._pre = False
            if self.spec.layer == "Dense" and not getattr(self.twin, "lora_enabled", True):
                bias = self.held.get(f"{self.name}.bias", 0.0)
                x = np.asarray(values[self.spec.input], dtype=np.float64)
                twin = np.asarray(values[self.name], dtype=np.float64)
                first, out = x.reshape(-1, x.shape[-1])[:1], twin.reshape(-1, twin.shape[-1])[:1]
                scale = float(np.max(np.abs(out), initial=1.0))
                held = self._held_tensors[f"{self.name}.kernel"]  # the twin's, not converted again
                if np.allclose(self._activation(_matmul(first, held) + bias), out, rtol=0.0,
                               atol=AFFINE_AGREEMENT * scale):
                    self._pre = twin if self._linear() else _matmul(x, held).reshape(twin.shape) + bias
        return None if self._pre is False else self._pre

    def _linear(self) -> bool:
        return self.twin.activation in (None, _keras().activations.linear)

    def _activation(self, z: Any) -> Any:
        """The twin's activation (Keras's own function) on a float64 pre-activation."""
        import numpy as np

        from runner.tfenv import tf

        if self._linear():
            return z
        return np.asarray(self.twin.activation(tf.constant(z, tf.float64)).numpy(), dtype=np.float64)

    def _training(self) -> dict[str, bool]:
        return {} if self.spec.training is None else {"training": self.spec.training}

    def code(self) -> list[str]:
        """The snippet's lines building this layer with the same weights."""
        args = [f"{k}={v!r}" for k, v in self.spec.args if not k.endswith("_initializer")]
        for arg, (value, drawn) in _initialisers(self.spec, self.name, self.seed).items():
            cls = type(_keras().initializers.get(value)).__name__
            args.append(f"{arg}=tf.keras.initializers.{cls}(seed={drawn})" if drawn is not None
                        else f"{arg}={value!r}")
        made = f"_layers[{self.name!r}] = tf.keras.layers.{self.spec.layer}"
        lines = [f"{made}({', '.join(args)}, dtype='float32', name={self.name!r})",
                 f"_layers[{self.name!r}].build({self.input_shape!r})"]
        if self.dtype != "float32":  # drawn in float32, then cast
            plain = [f"{k}={v!r}" for k, v in self.spec.args]
            lines += [f"_drawn = _layers[{self.name!r}]",
                      f"{made}({', '.join([*plain, f'dtype={self.dtype!r}', f'name={self.name!r}'])})",
                      f"_layers[{self.name!r}].build({self.input_shape!r})",
                      f"for _w, _d in zip(_layers[{self.name!r}].weights, _drawn.weights):",
                      "    _w.assign(tf.cast(_d, _w.dtype))"]
        return lines

    def call_code(self) -> str:
        x = f"tf.cast({self.spec.input}, tf.int32)" if self.integer_input else self.spec.input
        training = "" if self.spec.training is None else f", training={self.spec.training}"
        return f"_layers[{self.name!r}]({x}{training})"


def _matmul(a: Any, b: Any) -> Any:
    """``a @ b`` over a's last axis, in float64: TensorFlow's product, as the twin's. (NumPy's threaded
    BLAS, faster alone, made the million-weight check's median 1.5x slower when other threads held
    the cores.)"""
    import numpy as np

    from runner.tfenv import tf

    a = np.asarray(a, dtype=np.float64)
    rows = tf.constant(a.reshape(-1, a.shape[-1]))
    return tf.linalg.matmul(rows, tf.convert_to_tensor(b, tf.float64)).numpy()


def build(targets: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], seed: int, dtype: str,
          watch_accessed: bool) -> dict[str, Step]:
    """Every layer step of a program, built with weights drawn from the run's seed (or the step's own)."""
    steps: dict[str, Step] = {}
    for name, entry in targets.items():
        if is_step(entry):
            step = spec(name, entry, [n for n in shapes if "." not in n])
            drawn = seed if step.seed is None else step.seed
            steps[name] = Step(name, step, shapes[step.input], drawn, dtype, watch_accessed)
    return steps


def snippet_setup(steps: Mapping[str, Step]) -> list[str]:
    lines = ["", "_layers = {}  # the program's Keras layers, built with the run's seeded initialisers"]
    for step in steps.values():
        lines += step.code()
    lines.append("_weights = {f'{n}.{w.name}': w.value for n, lay in _layers.items() for w in lay.weights}")
    return lines


def code_source(source: str) -> str:
    """A gradient source in the snippet: a tensor's name, or ``_weights['h.kernel']``."""
    return f"_weights[{source!r}]" if "." in source else source


def memory(shapes: Mapping[str, tuple[int, ...]], name: str) -> list[int]:
    """Element counts a layer step holds: its output and its variables (the twin holds as many again)."""
    return [math.prod(s) for k, s in shapes.items() if k == name or k.startswith(f"{name}.")]
