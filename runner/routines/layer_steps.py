"""A built layer step: the Keras layer in the run's dtype (the tape's) and its float64 twin (the oracles').

Both are built from the same seeded weights (:mod:`runner.scenarios.layers` checks the
step's config and makes the layers); the oracles evaluate the twin forward, with
TensorFlow's forward ops and no tape, and nudge an input, a step or a layer variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.scenarios.layers import AFFINE_AGREEMENT, StepSpec, initialisers, is_step, load_keras, make, spec


class Step:
    """A built layer step: the layer in the run's dtype (the tape's) and its float64 twin (the oracles')."""

    def __init__(self, name: str, step: StepSpec, input_shape: tuple[int, ...], seed: int, dtype: str,
                 watch_accessed: bool) -> None:
        import numpy as np


        self.name, self.spec, self.input_shape, self.seed, self.dtype = name, step, input_shape, seed, dtype
        # Drawn in float32 whatever the run's dtype, so a seed gives the same weights in every dtype
        # (rounded to it); the float64 twin holds them as the run's dtype rounded them.
        drawn = make(step, name, seed, "float32")
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

        copy = getattr(load_keras().layers, self.spec.layer)(**self.spec.kwargs(), dtype=dtype, name=name)
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
        return self.twin.activation in (None, load_keras().activations.linear)

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
        for arg, (value, drawn) in initialisers(self.spec, self.name, self.seed).items():
            cls = type(load_keras().initializers.get(value)).__name__
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
