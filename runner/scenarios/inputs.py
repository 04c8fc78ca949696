"""A scenario's inputs, one spec for every kind: a number, a linspace, or an initialiser and a shape.

A program takes any of them, of any shape; an elementwise routine (``higher_order``) a number or a
linspace (:func:`check_point_inputs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from omegaconf import MISSING

from runner.errors import ConfigError
from runner.scenarios.values import check_name, finite, typed_apart


@dataclass
class Linspace:
    start: float = MISSING
    stop: float = MISSING
    num: int = MISSING


class ProgramKind(Enum):
    """How a program's input enters the tape; only a trainable variable is watched without being asked."""

    variable = "variable"
    nontrainable = "nontrainable"  # tf.Variable(trainable=False)
    constant = "constant"


#: The dtypes an input may have beside the run's own: TensorFlow's floats, and the integers the guide
#: shows the tape refusing to watch (an integer input's gradient is always None).
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
INTEGER_DTYPES = ("int32", "int64")


#: A program input's initialisers, as TensorFlow's own functions draw them (normal: N(0, 1); uniform:
#: U[0, 1); glorot_uniform: U(-l, l) with l = sqrt(6 / (fan_in + fan_out))), seeded by the run's seed.
INITIALISERS = ("zeros", "ones", "normal", "uniform", "glorot_uniform")


@dataclass
class ProgramInput:
    """One named input of a program: a number or nested list, a linspace, or an initialiser and shape."""

    value: Any = None  # a number, or nested lists of numbers (any shape)
    linspace: Linspace | None = None
    init: str | None = None  # one of INITIALISERS, with shape
    shape: list[int] | None = None
    kind: ProgramKind = ProgramKind.variable
    watch: bool = False  # call tape.watch() on it
    dtype: str | None = None  # one of FLOAT_DTYPES or INTEGER_DTYPES; None: the run's dtype

    def array(self, seed: int, name: str) -> Any:
        """The input's values in float64; an initialiser draws from a generator seeded by (seed, name)."""
        import numpy as np

        if self.linspace is not None:
            return np.linspace(self.linspace.start, self.linspace.stop, self.linspace.num)
        if self.init is None:
            return np.asarray(self.value, dtype=np.float64)
        shape = tuple(self.shape or ())
        rng = np.random.default_rng([seed, *name.encode()])
        if self.init in ("zeros", "ones"):
            return np.full(shape, float(self.init == "ones"))
        if self.init == "normal":
            return rng.standard_normal(shape)
        if self.init == "uniform":
            return rng.uniform(0.0, 1.0, shape)
        fan_in, fan_out = _fans(shape)
        limit = (6.0 / (fan_in + fan_out)) ** 0.5
        return rng.uniform(-limit, limit, shape)

    def code(self, seed: int, name: str) -> str:
        """NumPy source drawing the same float64 values as :meth:`array`, for the report's snippet."""
        if self.linspace is not None:
            lin = self.linspace
            return f"np.linspace({lin.start!r}, {lin.stop!r}, {lin.num})"
        if self.init is None:
            return f"np.asarray({self.value!r}, dtype=np.float64)"
        shape = tuple(self.shape or ())
        rng = f"np.random.default_rng({[seed, *name.encode()]!r})"
        if self.init in ("zeros", "ones"):
            return f"np.full({shape!r}, {float(self.init == 'ones')!r})"
        if self.init == "normal":
            return f"{rng}.standard_normal({shape!r})"
        if self.init == "uniform":
            return f"{rng}.uniform(0.0, 1.0, {shape!r})"
        limit = (6.0 / sum(_fans(shape))) ** 0.5
        return f"{rng}.uniform({-limit!r}, {limit!r}, {shape!r})"


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras's fans: a matrix's rows and columns; a kernel's channels times its receptive field."""
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    field_size = 1
    for size in shape[:-2]:
        field_size *= size
    return shape[-2] * field_size, shape[-1] * field_size


def check_input(name: str, node: Any) -> ProgramInput:
    """One input, typed and checked: exactly one of a value, a linspace or an initialiser (with shape)."""
    where = f"scenario.inputs.{name}"
    check_name(name, where)
    spec: ProgramInput = typed_apart(ProgramInput, node, where, "value")
    if sum(x is not None for x in (spec.value, spec.linspace, spec.init)) != 1:
        raise ConfigError(f"{where}: give exactly one of value, linspace or init (with shape)")
    if spec.init is not None:
        if spec.init not in INITIALISERS:
            raise ConfigError(f"{where}.init: unknown initialiser {spec.init!r} "
                              f"(known: {', '.join(INITIALISERS)})")
        if spec.shape is None or any(d <= 0 for d in spec.shape):
            raise ConfigError(f"{where}.shape: an initialiser needs positive sizes, e.g. [3, 2]")
    elif spec.shape is not None:
        raise ConfigError(f"{where}.shape: only an initialiser takes a shape (a value has its own)")
    if spec.dtype is not None:
        _check_dtype(spec, where)
    if spec.linspace is not None and (spec.linspace.num <= 0 or not (
            finite(spec.linspace.start) and finite(spec.linspace.stop))):
        raise ConfigError(f"{where}.linspace: num must be positive, start and stop finite")
    return spec


def _check_dtype(spec: ProgramInput, where: str) -> None:
    if spec.dtype not in (*FLOAT_DTYPES, *INTEGER_DTYPES):
        raise ConfigError(f"{where}.dtype: unknown dtype {spec.dtype!r} "
                          f"(known: {', '.join((*FLOAT_DTYPES, *INTEGER_DTYPES))})")
    if spec.dtype in INTEGER_DTYPES and not _whole(spec.value):
        raise ConfigError(f"{where}: an {spec.dtype} input takes a value of whole numbers, e.g. value: 10")


def _whole(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(map(_whole, value))
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and finite(value) and value == int(value)


def written_as_integers(spec: ProgramInput) -> bool:
    """A value written with no decimal point and no dtype: TensorFlow's ``tf.constant(10)`` would be int32."""
    def integers(value: Any) -> bool:
        return all(map(integers, value)) if isinstance(value, list) else (
            isinstance(value, int) and not isinstance(value, bool))
    return spec.dtype is None and spec.value is not None and integers(spec.value)


def check_point_inputs(scenario: Any) -> None:
    """An elementwise routine's inputs: each a finite number or a linspace (all of one num)."""
    if not scenario.inputs:
        raise ConfigError("scenario.inputs: give at least one input, e.g. scenario.inputs.x.value=3")
    checked: dict[str, ProgramInput] = {}
    for name, node in scenario.inputs.items():
        spec = check_input(name, node)
        where = f"scenario.inputs.{name}"
        if spec.init is not None:
            raise ConfigError(f"{where}.init: this routine takes a value or a linspace, not an initialiser")
        if spec.dtype is not None:
            raise ConfigError(f"{where}.dtype: only a program takes a dtype per input (this routine: the "
                              "run's dtype)")
        if spec.value is not None:
            number = isinstance(spec.value, int | float) and not isinstance(spec.value, bool)
            if not (number and finite(spec.value)):
                raise ConfigError(f"{where}.value: {spec.value!r} is not a finite number")
            spec.value = float(spec.value)
        checked[name] = spec
    sizes = {spec.linspace.num for spec in checked.values() if spec.linspace is not None}
    if len(sizes) > 1:
        raise ConfigError(f"scenario.inputs: linspace inputs must share one num, got {sorted(sizes)}")
    scenario.inputs = checked
