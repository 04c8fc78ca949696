"""The verifier proven by the bugs it catches: wrong gradients planted in TensorFlow's own registry.

Each case is a scenario kind and an op it uses. It is run twice in this process: as it is, where it
must pass (so the case is fair), and with that op's registered gradient made wrong
(:mod:`tests.planted`), where the runner's own checks must fail it (``check_failed``): one percent
off in float32 and float64, with the analytic oracle on and off; three percent in float16 and twenty
in bfloat16; ten percent on the far tails of the sigmoid curve alone; every other element's sign
flipped where only random projections check a gradient. Each runs in a fraction of a second.

``custom_gradient`` is the one scenario kind absent: its gradients are the user's own functions
(``tf.custom_gradient``), which never look in the registry, so no plant there can reach them.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from runner.api import run
from runner.language import ops
from runner.tfenv import tf
from tests.planted import Wrong, planted, scaled, sign_flipped_every_other, tails_of_sigmoid
from tests.test_language import run_program


@dataclass(frozen=True)
class Case:
    scenario: str  # a shipped scenario, or a program given by its step and input
    overrides: tuple[str, ...]
    op: str  # TensorFlow's op type, as its gradient registry names it
    step: str = ""  # a program's one step, y, over its input x: its gradient dy/dx is checked
    x: str = ""  # the input's entry

    def __str__(self) -> str:
        return f"{self.op}:{self.scenario}:{self.step or ' '.join(self.overrides)}"


def _function(text: str, at: float = 0.7, op: str = "") -> Case:
    return Case("basic", (f"scenario.function={text}", f"scenario.inputs.x.value={at}"), op)


def _op_type(name: str) -> str:
    """The TensorFlow op a registered function builds (whose gradient a plant makes wrong), from its graph."""
    fn = functools.reduce(getattr, ops.FUNCTIONS[name].tensorflow.split("."), tf)
    graph = tf.function(fn).get_concrete_function(tf.TensorSpec([], tf.float32)).graph
    (op,) = [o.type for o in graph.get_operations() if o.type not in ("Placeholder", "Identity", "NoOp")]
    return op


#: Every one-argument function of the op registry, and the arithmetic of the expression language, each
#: through the short form: a function added to the registry is planted here too.
ELEMENTWISE = [
    *(_function(f"{name}(x)", op=_op_type(name)) for name in ops.FUNCTIONS),
    _function("x**3", op="Pow"), _function("x*sin(x)", op="Mul"), _function("1/x", op="RealDiv"),
    _function("sin(x) - x**2", op="Sub"), _function("sin(x) + x**2", op="AddV2"),
    _function("-sin(x)", op="Neg"),
    _function("square(x)", op="Square"), _function("maximum(x, 0.2)", op="Maximum"),
    _function("minimum(x, 2.0)", op="Minimum"), _function("where(x > 0, sin(x), x)", op="SelectV2"),
]


def _program(step: str, op: str, x: str = "{value: [[0.3, -1.2, 0.8], [1.5, 0.4, -0.6]]}") -> Case:
    """A program over an input x (by default (2, 3)): one step y, its gradient with respect to x."""
    return Case("program", (), op, step, x)


#: Tensor functions, each in a program.
TENSOR = [
    _program("reduce_sum(sin(x))", "Sum"), _program("reduce_mean(sin(x))", "Mean"),
    _program("reduce_max(x)", "Max"), _program("reduce_min(x)", "Min"), _program("reduce_prod(x)", "Prod"),
    _program("reduce_sum(softmax(x) * [1.0, 2.0, 3.0])", "Softmax"),
    _program("reduce_sum(x @ transpose(x))", "MatMul"),
    _program("reduce_sum(sin(transpose(x)))", "Transpose"),
    _program("reduce_sum(sin(reshape(x, [3, 2])))", "Reshape"),
    _program("reduce_sum(sin(concat([x, x], 0)))", "ConcatV2"),
    _program("reduce_sum(sin(stack([x, x])))", "Pack"), _program("reduce_sum(sin(x[0]))", "StridedSlice"),
    _program("reduce_logsumexp(x)", "Exp"),
    _program("norm(x)", "Sqrt"),
]

#: Every other kind of scenario and derivative, with an op it uses.
KINDS = [
    Case("linear", (), "MatMul"), Case("linear", ("scenario.loss=mse",), "Sub"),
    Case("layers", (), "MatMul"), Case("layers", (), "Relu"), Case("mlp", (), "Tanh"),
    Case("guide/keras_layer", (), "Relu"),
    Case("higher_order", ("scenario.function=tanh(x)", "scenario.order=2"), "Tanh"),
    Case("higher_order", ("scenario.function=tanh(x)", "scenario.order=3"), "Tanh"),
    Case("higher_order", (), "Pow"),
    Case("jacobian", (), "Sin"), Case("forward_mode", (), "Sin"), Case("hessian", (), "Pow"),
    Case("guide/batch_jacobian", (), "MatMul"), Case("guide/input_gradient", (), "MatMul"),
    Case("guide/jacobian_matrix", (), "MatMul"), Case("guide/hessian", (), "MatMul"),
    Case("sigmoid", (), "Sigmoid"), Case("persistent", (), "Pow"),
    Case("stop_gradient", ("scenario.function=sin(x)",), "Sin"),
    Case("control_flow", (), "Mul"),
    Case("pitfalls", ("scenario.case=numpy_detour",), "Mean"),
]

CASES = ELEMENTWISE + TENSOR + KINDS
#: Gradients of gradients through a layer, checked by nested float64 differences, and Keras layers built
#: afresh in every run: seconds a run, several runs a case, so their plants run with the slow tests.
SLOW = ("guide/input_gradient", "guide/hessian", "layers")


def _marked(cases: list[Case]) -> list[Any]:
    return [pytest.param(c, marks=pytest.mark.slow) if c.scenario in SLOW else c for c in cases]


def _status(case: Case, *extra: str) -> tuple[str, list[str]]:
    if case.step:
        outcome = run_program({"y": case.step}, {"y": ["x"]}, inputs={"x": yaml.safe_load(case.x)},
                              overrides=[*case.overrides, *extra])
        return outcome.status, [c.name for c in outcome.checks if not c.passed]
    result = run(case.scenario, overrides=[*case.overrides, *extra])
    return result.status, [c.name for c in result.checks if not c.passed]


def _caught(case: Case, wrong: Wrong, *extra: str) -> None:
    status, failed = _status(case, *extra)
    assert status == "ok", (str(case), extra, failed)  # fair: as it is, it passes
    with planted(case.op, wrong):
        status, failed = _status(case, *extra)
    assert status == "check_failed", (str(case), extra, "not caught")


def _grid(cases: list[Case]) -> list[Any]:
    """Each case with SymPy's check on and off, in float32 and float64: all four for a fast case; for a
    slow one two, which still take each value of each once (on in float64, off in float32)."""
    params = []
    for case in cases:
        slow = case.scenario in SLOW
        pairs = [("true", "float64"), ("false", "float32")] if slow else list(
            itertools.product(("true", "false"), ("float32", "float64")))
        params += [pytest.param(case, analytic, dtype, id=f"{case}-{analytic}-{dtype}",
                                marks=[pytest.mark.slow] if slow else []) for analytic, dtype in pairs]
    return params


@pytest.mark.parametrize(("case", "analytic", "dtype"), _grid(CASES))
def test_one_percent_off_is_caught(case: Case, analytic: str, dtype: str) -> None:
    _caught(case, scaled(1.01), f"checks.analytic={analytic}", f"dtype={dtype}")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", _marked([*ELEMENTWISE[:6], TENSOR[0], *KINDS[:5], KINDS[9]]), ids=str)
def test_sixteen_bit_runs_fail_past_their_precision(case: Case, dtype: str) -> None:
    _caught(case, scaled(1.03 if dtype == "float16" else 1.2), f"dtype={dtype}")


@pytest.mark.parametrize("mode", ["function", "xla"])
@pytest.mark.parametrize("case", _marked([ELEMENTWISE[0], TENSOR[6], KINDS[2], KINDS[6], KINDS[9]]), ids=str)
def test_compiled_runs_are_caught_too(case: Case, mode: str) -> None:
    _caught(case, scaled(1.01), f"compile={mode}")


@pytest.mark.parametrize("analytic", ["true", "false"])
def test_ten_percent_off_on_the_far_tails_of_the_sigmoid_curve_alone(analytic: str) -> None:
    """Beyond |x| = 8 sigmoid's derivative is below 3.4e-4: a whole-array tolerance scaled by the peak
    (0.25) would let a 10% error there through."""
    _caught(Case("sigmoid", (), "Sigmoid"), tails_of_sigmoid(1.1, 8.0), f"checks.analytic={analytic}")


def test_sign_flips_on_every_other_element_fail_projections() -> None:
    """600 elements, above fd_max_elements: only random projections check the gradient."""
    case = Case("program", ("checks.analytic=false", "dtype=float32"), "Sin", "reduce_sum(sin(x) * [2.0])",
                "{init: normal, shape: [600]}")
    _caught(case, sign_flipped_every_other())
    outcome = run_program({"y": case.step}, {"y": ["x"]}, inputs={"x": yaml.safe_load(case.x)},
                          overrides=list(case.overrides))
    names = [c.name for c in outcome.checks]
    assert "dy/dx vs float64 central differences (1 random projection v.(J u))" in names
