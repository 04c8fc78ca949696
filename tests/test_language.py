"""The tensor language: every new node and function, its shape, its value and its gradient.

Each case runs as a one-step program in float64 through the real routine: the
tape's value and gradient are compared with a NumPy formula written here by hand,
and the run's own checks (SymPy, one symbol per element, and float64 central
differences) must be present and pass, so both oracles agree with the hand value too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from runner.errors import ConfigError
from runner.language import backends, expr, shape_rules, syntax
from runner.language.arrays import NumPyBackend, SymPyArrays
from runner.scenarios.loading import load_run
from runner.scenarios.schema import RunConfig

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
W = np.array([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.6]])
C = np.array([1.0, 2.0, 3.0])


def _softmax_grad() -> np.ndarray:
    s = np.exp(X) / np.exp(X).sum(axis=1, keepdims=True)
    return s * (C - (s * C).sum(axis=1, keepdims=True))


def _row_max() -> np.ndarray:
    onehot = np.zeros_like(X)
    onehot[np.arange(2), X.argmax(axis=1)] = 1.0
    return onehot


def _global_min() -> np.ndarray:
    onehot = np.zeros(X.size)
    onehot[X.argmin()] = 1.0
    return onehot.reshape(X.shape)


def _column(col: int, values: np.ndarray) -> np.ndarray:
    out = np.zeros_like(X)
    out[:, col] = values
    return out


#: (step over x (2, 3) and w (3, 2), its value, d sum(step) / dx), all by hand in NumPy.
CASES: list[tuple[str, Callable[[], Any], Callable[[], np.ndarray]]] = [
    ("x @ w", lambda: X @ W, lambda: np.ones((2, 2)) @ W.T),
    ("matmul(x, w)", lambda: X @ W, lambda: np.ones((2, 2)) @ W.T),
    ("reduce_sum(x, axis=1)", lambda: X.sum(axis=1), lambda: np.ones_like(X)),
    ("reduce_mean(x, 0, keepdims=True)", lambda: X.mean(axis=0, keepdims=True), lambda: np.full_like(X, 0.5)),
    ("reduce_max(x, axis=1)", lambda: X.max(axis=1), _row_max),
    ("reduce_min(x)", lambda: X.min(), _global_min),
    ("reduce_prod(x, axis=1)", lambda: X.prod(axis=1), lambda: X.prod(axis=1, keepdims=True) / X),
    ("reduce_logsumexp(x, axis=1)", lambda: np.log(np.exp(X).sum(axis=1)),
     lambda: np.exp(X) / np.exp(X).sum(axis=1, keepdims=True)),
    ("reduce_sum(x, axis=[0, 1], keepdims=True)", lambda: X.sum().reshape(1, 1), lambda: np.ones_like(X)),
    ("where(x > 0, x**2, -x)", lambda: np.where(X > 0, X**2, -X), lambda: np.where(X > 0, 2 * X, -1.0)),
    ("where(x <= 0.3, 1, x)", lambda: np.where(X <= 0.3, 1.0, X), lambda: (X > 0.3) * 1.0),
    ("where(w[0, 0] == 0.3, x, 0)", lambda: X, lambda: np.ones_like(X)),
    ("where(w[0, 0] != 0.3, x, 2 * x)", lambda: 2 * X, lambda: np.full_like(X, 2.0)),
    ("where(x < 0, 3 * x, x) + where(x >= 1, x, 0)",
     lambda: np.where(X < 0, 3 * X, X) + np.where(X >= 1, X, 0),
     lambda: np.where(X < 0, 3.0, 1.0) + (X >= 1)),
    ("maximum(x, 0.3)", lambda: np.maximum(X, 0.3), lambda: (X >= 0.3) * 1.0),
    ("minimum(x, 1.0)", lambda: np.minimum(X, 1.0), lambda: (X <= 1.0) * 1.0),
    ("clip_by_value(x, -0.8, 1.0)", lambda: np.clip(X, -0.8, 1.0), lambda: ((X >= -0.8) & (X <= 1.0)) * 1.0),
    ("square(x)", lambda: X**2, lambda: 2 * X),
    ("softmax(x) * [1.0, 2.0, 3.0]", lambda: np.exp(X) / np.exp(X).sum(axis=1, keepdims=True) * C,
     _softmax_grad),
    ("norm(x)", lambda: np.sqrt((X**2).sum()), lambda: X / np.sqrt((X**2).sum())),
    # |X| = 2.875**0.5 > 1: X / |X|, whose gradient of the sum is 1/|X| - X sum(X) / |X|**3
    ("clip_by_norm(x, 1.0)", lambda: X / np.sqrt((X**2).sum()),
     lambda: 1 / np.sqrt((X**2).sum()) - X * X.sum() / np.sqrt((X**2).sum()) ** 3),
    ("clip_by_norm(x, 10.0)", lambda: X, lambda: np.ones_like(X)),  # already shorter: unchanged
    # by rows (axes=[1]): row 0's norm 2.29 is clipped to 2, row 1's 1.70 is not
    ("clip_by_norm(x, 2, axes=[1])", lambda: np.vstack([2 * X[0] / np.linalg.norm(X[0]), X[1]]),
     lambda: np.vstack([2 / np.linalg.norm(X[0]) - 2 * X[0] * X[0].sum() / np.linalg.norm(X[0]) ** 3,
                        np.ones(3)])),
    ("norm(x, axis=1, keepdims=True)", lambda: np.sqrt((X**2).sum(axis=1, keepdims=True)),
     lambda: X / np.sqrt((X**2).sum(axis=1, keepdims=True))),
    ("transpose(x) * [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]", lambda: X.T * np.arange(1.0, 7.0).reshape(3, 2),
     lambda: np.arange(1.0, 7.0).reshape(3, 2).T),
    ("transpose(x, perm=[1, 0])", lambda: X.T, lambda: np.ones_like(X)),
    ("einsum('ij,jk->ik', x, w)", lambda: X @ W, lambda: np.ones((2, 2)) @ W.T),
    ("einsum('ij->ji', x) * [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]",
     lambda: X.T * np.arange(1.0, 7.0).reshape(3, 2), lambda: np.arange(1.0, 7.0).reshape(3, 2).T),
    ("einsum('ij, ij -> i', x, x)", lambda: (X**2).sum(axis=1), lambda: 2 * X),
    ("einsum('ii->i', x[:, 0:2])", lambda: np.array([X[0, 0], X[1, 1]]),
     lambda: np.array([[1.0, 0, 0], [0, 1.0, 0]])),
    ("reshape(x, [3, -1]) * [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]",
     lambda: X.reshape(3, 2) * np.arange(1.0, 7.0).reshape(3, 2), lambda: np.arange(1.0, 7.0).reshape(2, 3)),
    ("concat([x, 2 * x], axis=0)", lambda: np.concatenate([X, 2 * X]), lambda: np.full_like(X, 3.0)),
    ("concat([x, x**2], 1)", lambda: np.concatenate([X, X**2], axis=1), lambda: 1 + 2 * X),
    ("stack([x, x**2])", lambda: np.stack([X, X**2]), lambda: 1 + 2 * X),
    ("stack([x, x], axis=-1)", lambda: np.stack([X, X], axis=-1), lambda: np.full_like(X, 2.0)),
    ("x[0] * x[1]", lambda: X[0] * X[1], lambda: X[::-1]),
    ("x[:, 1]**2", lambda: X[:, 1] ** 2, lambda: _column(1, 2 * X[:, 1])),
    ("x[-1, 0:2] * 3", lambda: X[-1, 0:2] * 3, lambda: np.array([[0, 0, 0], [3.0, 3.0, 0]])),
    ("x[:, ::2]", lambda: X[:, ::2], lambda: np.array([[1.0, 0, 1.0], [1.0, 0, 1.0]])),
    ("x * [1.0, -2.0, 3]", lambda: X * np.array([1.0, -2.0, 3.0]), lambda: np.tile([1.0, -2.0, 3.0], (2, 1))),
    ("reduce_sum(x) if reduce_sum(x) > 0 else reduce_sum(x**2)", lambda: X.sum(), lambda: np.ones_like(X)),
    ("reduce_sum(x**2) if x[0, 0] > 1 else 5 * reduce_sum(x)", lambda: 5 * X.sum(),
     lambda: np.full_like(X, 5.0)),
    ("x * stop_gradient(x)", lambda: X * X, lambda: X),
    ("stop_gradient(x**2) * x + x", lambda: X**3 + X, lambda: X**2 + 1),
    ("exp(x) @ w", lambda: np.exp(X) @ W, lambda: np.exp(X) * (np.ones((2, 2)) @ W.T)),
]


def program_run(targets: dict[str, str], gradients: dict[str, list[str]] | None = None,
                inputs: dict[str, Any] | None = None, **options: Any) -> RunConfig:
    """A validated program run in float64 over x and w (unless ``inputs``), from plain data."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from runner.cli.main import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["scenario=program", "dtype=float64",
                                                       *options.pop("overrides", [])])
    GlobalHydra.instance().clear()
    data = OmegaConf.to_container(cfg, resolve=True)
    data["scenario"].update(
        inputs=inputs or {"x": {"value": X.tolist()}, "w": {"value": W.tolist()}},
        targets=targets, gradients=gradients if gradients is not None else {}, **options)
    return load_run(data)


def run_program(*args: Any, **kwargs: Any) -> Any:
    from runner.routines import run_routine

    return run_routine(program_run(*args, **kwargs))


@pytest.mark.parametrize(("text", "value", "grad"), CASES, ids=[c[0] for c in CASES])
def test_step_value_and_gradient_match_numpy_and_both_oracles(
        text: str, value: Callable[[], Any], grad: Callable[[], np.ndarray]) -> None:
    outcome = run_program({"f": text}, {"f": ["x"]})
    np.testing.assert_allclose(outcome.values["f"], value(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(outcome.gradients["df/dx"], grad(), rtol=1e-10, atol=1e-12)
    names = [c.name for c in outcome.checks]
    assert "df/dx vs SymPy" in names
    assert "df/dx vs float64 central differences (every element)" in names
    assert outcome.passed, [c for c in outcome.checks if not c.passed]


@pytest.mark.parametrize(("text", "value", "grad"), CASES, ids=[c[0] for c in CASES])
def test_numpy_backend_and_shape_inference_agree_with_numpy(
        text: str, value: Callable[[], Any], grad: Callable[[], np.ndarray]) -> None:
    tree = expr.parse(text, ["x", "w"])
    got = syntax.evaluate(tree, {"x": X, "w": W}, NumPyBackend())
    np.testing.assert_allclose(got, value(), rtol=1e-12)
    assert shape_rules.infer_shape(tree, {"x": X.shape, "w": W.shape}) == np.shape(value())


def test_sympy_backend_builds_each_elements_expression() -> None:
    import sympy as sp

    sym = SymPyArrays({})
    x = sym.input_symbols("x", (1, 2))
    w = sym.input_symbols("w", (2, 1))
    out = syntax.evaluate(expr.parse("reduce_sum(x @ w) + reduce_max(x)", ["x", "w"]), {"x": x, "w": w}, sym)
    a, b = x.flat
    c, d = w.flat
    biggest = sp.Piecewise((a, a >= b), (b, True))
    assert sp.simplify((out - (a * c + b * d + biggest)).subs({a: 2, b: -1, c: 3, d: 5})) == 0
    assert sp.simplify((out - (a * c + b * d + biggest)).subs({a: -2, b: 1, c: 3, d: 5})) == 0


def test_ties_go_where_tensorflow_sends_them() -> None:
    """maximum(x, y) at x == y: TensorFlow's gradient goes to x (x >= y); minimum likewise (x <= y)."""
    outcome = run_program({"f": "maximum(x, 0.5) + minimum(x, 2.0)"}, {"f": ["x"]},
                          overrides=["checks.finite_differences=false"])
    # maximum: x >= 0.5 at 0.5 (the tie), 2.0, 1.5; minimum: x <= 2.0 everywhere (2.0 is the tie).
    assert outcome.gradients["df/dx"].tolist() == [[2.0, 1.0, 2.0], [2.0, 1.0, 1.0]]
    assert outcome.passed


def test_the_conditional_records_only_the_branch_taken() -> None:
    """As Python's if in the guide: v0 if x > 0 else v1**2 at x = 1 -> dv0 = 1, dv1 and dx None."""
    outcome = run_program({"y": "v0 if x > 0 else v1**2"}, {"y": ["v0", "v1", "x"]},
                          inputs={"x": {"value": 1.0, "kind": "constant"}, "v0": {"value": 2.0},
                                  "v1": {"value": 2.0}}, persistent=True)
    assert outcome.gradients == {"dy/dv0": 1.0, "dy/dv1": None, "dy/dx": None}
    assert "branch not taken" in outcome.notes["dy/dv1"]
    assert outcome.passed


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ({"y": "x @ w2"}, "scenario.targets.y: x @ w2 cannot multiply shapes (2, 3) and (2, 2)"),
        ({"y": "x + w"}, "scenario.targets.y: x + w cannot broadcast shapes (2, 3) and (3, 2)"),
        ({"y": "x", "z": "reduce_sum(y, axis=2)"}, "targets.z: reduce_sum(y, axis=2): axis 2 is out"),
        ({"y": "reshape(x, [4, 2])"}, "cannot reshape (2, 3) (6 elements) into [4, 2]"),
        ({"y": "concat([x, w], axis=0)"}, "cannot join shapes (2, 3) and (3, 2) along axis 0"),
        ({"y": "stack([x, w])"}, "stack needs one shape"),
        ({"y": "transpose(x, perm=[0, 0])"}, "does not permute"),
        ({"y": "x[2]"}, "index 2 is out of range for shape (2, 3)"),
        ({"y": "x if x > 0 else w"}, "a conditional needs a scalar condition, got (2, 3)"),
        ({"y": "clip_by_value(x[0], x, 1)"}, "must broadcast to the tensor's (3,)"),
        ({"y": "matmul(x[0], w)"}, "matmul needs two or more axes"),
        ({"y": "einsum('ij,jk->ik', x, w2)"}, "'j' is 3 long in one place and 2 in another"),
        ({"y": "einsum('ijk->i', x)"}, "'ijk' names 3 axes of a tensor of shape (2, 3)"),
        ({"y": "einsum('ij,jk->ik', x)"}, "the equation has 2 operand(s), given 1"),
    ],
)
def test_shape_mismatches_are_one_line_before_any_tensorflow(targets: dict[str, str], message: str) -> None:
    inputs = {"x": {"value": X.tolist()}, "w": {"value": W.tolist()}, "w2": {"init": "ones", "shape": [2, 2]}}
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        program_run(targets, inputs=inputs)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("norm(x, 1)", "at most 1 positional"),  # tf.norm's second positional is ord: keywords only
        ("reduce_sum(x, foo=1)", "no keyword 'foo'"),
        ("reduce_sum(input_tensor=x)", "1 tensor argument first"),
        ("square(x, axis=0)", "no keyword 'axis'"),
        ("reduce_sum(x, keepdims=1)", "keepdims must be True or False"),
        ("softmax(x, axis=[0])", "axis must be an integer"),
        ("reshape(x)", "needs shape="),
        ("einsum(x)", "takes its equation first"),
        ("einsum('ij', x)", "explicit output"),
        ("einsum('i...->i', x)", "letters only"),
        ("einsum('ij->jj', x)", "each output letter appears once"),
        ("einsum('ij->k', x)", "each output letter appears once"),
        ("einsum('ij->i', x, equation='ij->j')", "takes its equation first"),
        ("concat(x, 0)", "list of tensors first"),
        ("reduce_sum(x, axis=0, axis=1)", "got axis twice"),
        ("[x, 1]", "numbers only"),
        ("[[1, 2], [3]]", "rectangular"),
        ("[]", "cannot be empty"),
        ("x[y]", "constant integers"),
        ("x[0:2:-1]", "step must be positive"),
        ("where(x, 1, 2)", "one comparison"),
        ("where(0 < x < 1, 1, 2)", "chained comparisons"),
        ("1 if x in y else 2", "comparison In is not allowed"),
        ("x > 0", "only as the condition"),
        ("x ** reduce_sum([1000.0, 1000.0])", "must be a single number"),
        ("x ** 2000", "exceeds the limit"),
        ("reduce_sum", "must be called"),
        ("where(x > 0, x, [1e400])", "too large"),
    ],
)
def test_language_refusals_name_the_problem(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        expr.parse(text, ["x", "y"])


def test_bounds_of_the_language_still_hold() -> None:
    with pytest.raises(ConfigError, match="nested more than"):
        expr.parse("x" + "[0]" * 210, ["x"])
    with pytest.raises(ConfigError, match="characters long"):
        expr.parse("[" + "1.0, " * 3000 + "1.0]", ["x"])


def test_other_routines_keep_the_elementwise_language(load: Callable[..., Any]) -> None:
    with pytest.raises(ConfigError, match="only scenario=program runs"):
        load("scenario=higher_order", "scenario.function='reduce_sum(x)'")


def test_snippet_text_builds_the_same_ops() -> None:
    tree = expr.parse("reduce_mean(where(x > 0, x @ w, 0)[0, ::2], axis=0, keepdims=True) if x[0, 0] > 0 "
                      "else stack([x], 1)", ["x", "w"])
    known = {"x": backends.Code("x"), "w": backends.Code("w")}
    code = syntax.evaluate(tree, known, backends.CodeBackend("float32"))
    assert code == ("(tf.reduce_mean(tf.where((x > tf.constant(0, tf.float32)), (x @ w), "
                    "tf.constant(0, tf.float32))[0, ::2], axis=0, keepdims=True) if "
                    "(x[0, 0] > tf.constant(0, tf.float32)) else tf.stack([x], axis=1))")


def test_names_and_gradient_names_follow_the_branch_taken() -> None:
    tree = expr.parse("where(a > b, c, d) + (h if f > 0 else g)", list("abcdfgh"))
    assert syntax.names(tree) == set("abcdfgh")
    assert syntax.gradient_names(tree, lambda node: True) == {"c", "d", "h"}
    assert syntax.gradient_names(tree, lambda node: False, conditions=True) == {"a", "b", "c", "d", "f", "g"}


@pytest.mark.parametrize(
    ("function", "x", "grad"),
    [
        ("where(x > 0, x**2, -x)", -0.5, -1.0),
        ("where(x > 0, x**2, -x)", 1.5, 3.0),
        ("maximum(x, 1) + clip_by_value(x, -1, 2) + square(x)", 1.5, 1.0 + 1.0 + 3.0),
        ("minimum(x, 1) * 4", -2.0, 4.0),
    ],
)
def test_elementwise_functions_work_in_every_routine(load: Callable[..., Any], function: str, x: float,
                                                     grad: float) -> None:
    from runner.routines import run_routine
    from tests.conftest import assert_passed

    run = load(f"scenario.function='{function}'", f"scenario.inputs.x.value={x}")
    outcome = assert_passed(run_routine(run))
    assert outcome.gradients["dy/dx"] == pytest.approx(grad, rel=1e-6)


def test_quoting_lets_commas_spaces_and_matmul_through() -> None:
    from runner.cli.main import quote_expressions

    assert quote_expressions([
        "scenario.function=where(x > 0, x, 0)", "scenario.targets.y=x @ w + b",
        "+scenario.targets.q=x * [3.0, 4.0]", "scenario.function=x**2,where(x > 0, x, 0)",
        "scenario.closed_form.x=maximum(x, y)", "seed=1,2", "scenario.function='x,y'",
    ]) == [
        "scenario.function='where(x > 0, x, 0)'", "scenario.targets.y='x @ w + b'",
        "+scenario.targets.q='x * [3.0, 4.0]'", "scenario.function='x**2','where(x > 0, x, 0)'",
        "scenario.closed_form.x='maximum(x, y)'", "seed=1,2", "scenario.function='x,y'",
    ]


@pytest.mark.parametrize(("text", "value", "grad"), CASES, ids=[c[0] for c in CASES])
def test_snippet_code_of_every_case_computes_the_same_value(
        text: str, value: Callable[[], Any], grad: Callable[[], np.ndarray]) -> None:
    """The report's snippet text (trusted: the backend wrote it), run as plain TensorFlow, gives the value."""
    from runner.tfenv import tf

    tree = expr.parse(text, ["x", "w"])
    known = {"x": backends.Code("x"), "w": backends.Code("w")}
    code = syntax.evaluate(tree, known, backends.CodeBackend("float64"))
    scope = {"tf": tf, "x": tf.constant(X), "w": tf.constant(W)}
    np.testing.assert_allclose(eval(code, scope).numpy(), value(), rtol=1e-12)
