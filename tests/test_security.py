"""Hostile and broken configs: never run code, never hang, never eat memory, never escape outputs/."""

from __future__ import annotations

import builtins
import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import ConfigError
from runner.language import backends, expr, syntax, vetting
from runner.routines import run_routine
from runner.scenarios.loading import load_run
from tests.conftest import SEED_SCENARIOS, CliRun

Cli = Callable[..., CliRun]


NO_BACKEND = {"sympy": None, "tensorflow": None, "runner.tfenv": None}  # importing any of them fails


@contextlib.contextmanager
def without_backends() -> Iterator[None]:
    """SymPy and TensorFlow unimportable inside the block.

    Only those entries of sys.modules are set and restored: a module imported inside
    the block (Hydra's plugins, when a config is composed) stays imported, so no class
    is imported twice.
    """
    saved = {name: sys.modules[name] for name in NO_BACKEND if name in sys.modules}
    sys.modules.update(NO_BACKEND)
    try:
        yield
    finally:
        for name in NO_BACKEND:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def _parse_or_refuse(text: str) -> syntax.Expr | None:
    """An expression or a one-line refusal, decided without SymPy or TensorFlow."""
    try:
        with without_backends():
            tree = expr.parse(text, ["x", "y"])
    except ConfigError as err:
        assert "\n" not in str(err)
        tree = None
    return tree


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_is_an_expression_or_a_clear_refusal(text: str) -> None:
    _parse_or_refuse(text)


PYTHONISH = st.recursive(
    st.sampled_from(["x", "y", "1", "2.5", "pi", "__import__", "os", "'s'", "b'b'", "None", "True",
                     "__builtins__", "globals()", "open", "sin", "().__class__"]),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**", "%", "//", "@", "<", "and", "|"]),
                  inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["sin", "exp", "eval", "exec", "getattr", "__import__", "lambda: 0"]),
                  inner).map(lambda t: f"{t[0]}({t[1]})"),
        inner.map(lambda i: f"{i}.__class__"),
        inner.map(lambda i: f"{i}[0]"),
        inner.map(lambda i: f"[{i} for _ in (1,)]"),
        inner.map(lambda i: f"(lambda: {i})()"),
        inner.map(lambda i: f"-{i}"),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(PYTHONISH)
def test_hostile_python_never_gets_through(text: str) -> None:
    tree = _parse_or_refuse(text)
    if tree is not None:  # only the closed language survives
        shown = str(tree)
        for banned in ("__", "eval", "exec", "getattr", "lambda", ".__class__", "'"):
            assert banned not in shown, shown
        # Brackets only around numbers: list literals and constant subscripts or slices.
        assert "[" not in re.sub(r"\[[-0-9.,:e+ \[\]]*\]", "", shown), shown


@pytest.mark.parametrize(
    "text",
    ["9**9**9**9", "2**2**2**2**2**2", "x**(10**6)", "exp(exp(exp(1000)))", "1e999",
     "(" * 250 + "x" + ")" * 250, "x" + "+x" * 4999, "-" * 9_000 + "x",
     "sin(" * 99 + "x" + ")" * 99 + "+" * 5, "x" * 10_001],
)
def test_bombs_are_refused_before_any_backend(text: str) -> None:
    with without_backends(), pytest.raises(ConfigError):
        expr.parse(text, ["x"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["scenario=sigmoid", "scenario.inputs.x.linspace.num=100000000"], "above limits.memory_mb"),
        (["scenario=linear", "scenario.batch=100000", "scenario.in_features=100000"],
         "above limits.memory_mb"),
        (["scenario=mlp", "scenario.inputs.x.shape=[100000000,4]", "scenario.inputs.t.shape=[100000000,1]"],
         "above limits.memory_mb"),
        (["scenario.name=../../etc/x"], "scenario.name"),
        (["scenario.name=.hidden"], "scenario.name"),
    ],
)
def test_resource_and_path_bounds_are_checked_before_any_work(
    load: Callable[..., Any], overrides: list[str], message: str
) -> None:
    with without_backends(), pytest.raises(ConfigError, match=message) as caught:
        load(*overrides)
    assert "\n" not in str(caught.value)


def test_the_memory_message_carries_the_estimate(load: Callable[..., Any]) -> None:
    with pytest.raises(ConfigError, match=r"about [\d,]+ MiB \(tape [\d,]+ MiB"):
        load("scenario=sigmoid", "scenario.inputs.x.linspace.num=100000000")
    load("scenario=sigmoid", "scenario.inputs.x.linspace.num=100000000", "checks.finite_differences=false",
         "limits.memory_mb=100000")  # raising the limit lets it through


@pytest.mark.parametrize(
    ("function", "value"),
    [("log(x)", -1.0), ("sqrt(x)", 0.0), ("1/x", 0.0), ("exp(x)", 200.0)],
)
def test_nan_and_inf_never_pass(load: Callable[..., Any], function: str, value: float) -> None:
    outcome = run_routine(load(f"scenario.function='{function}'", f"scenario.inputs.x.value={value}"))
    assert not outcome.passed
    finite = {c.name: c for c in outcome.checks if c.name.endswith("finite")}
    assert not all(c.passed for c in finite.values())
    assert any("NaN or Inf" in c.detail for c in finite.values() if not c.passed)


@pytest.mark.parametrize("scenario", SEED_SCENARIOS)
def test_same_config_same_numbers(load: Callable[..., Any], scenario: str) -> None:
    first, again = (run_routine(load(f"scenario={scenario}", "seed=3")) for _ in range(2))
    assert first.gradients.keys() == again.gradients.keys()
    for label, value in first.gradients.items():
        if value is None:
            assert again.gradients[label] is None
        else:
            assert np.array_equal(value, again.gradients[label]), label


@pytest.mark.slow
def test_hostile_cli_cases_answer_fast_in_one_line(cli: Cli) -> None:
    for args in (["scenario.function=__import__('os').system('touch pwned')"],
                 ["scenario.function=9**9**9**9"],
                 ["scenario=sigmoid", "scenario.inputs.x.linspace.num=1000000000"],
                 ["scenario=higher_order", "scenario.order=8", f"scenario.function='{EIGHT_FUNCTIONS}'"],
                 ["scenario.function=x**2 # a comment"],
                 ["scenario.name=../../../escaped"]):
        run = cli(*args)
        assert run.returncode == 1, args
        errors = [line for line in (run.stdout + run.stderr).splitlines() if "[ERROR]" in line]
        assert len(errors) == 1 and "Traceback" not in run.stderr, args
        assert not (run.cwd / "pwned").exists()
        assert {p.relative_to(run.cwd).parts[0] for p in run.cwd.rglob("*")} <= {"outputs"}
        assert run.results["status"] == "error"
        assert run.results["environment"]["devices"] is None, args  # refused before TensorFlow was loaded


@pytest.mark.slow
def test_a_job_past_its_time_limit_is_stopped_and_recorded(cli: Cli) -> None:
    # A limit no job meets (a millisecond), so the test does not depend on the machine's speed.
    run = cli("scenario=sigmoid", "scenario.inputs.x.linspace.num=4000", "limits.time_s=0.001")
    assert run.returncode == 1
    assert run.results["status"] == "error"
    assert "JobTimeout: the job ran past limits.time_s=0.001 s" in run.results["message"]


@pytest.mark.slow
def test_unwritable_output_directory_is_one_line(cli: Cli) -> None:
    for target in ("/proc/tape-runner-test", "/dev/null/sub"):
        run = cli(f"hydra.run.dir={target}")
        assert run.returncode == 1
        assert f"cannot write outputs to {target}" in run.stdout + run.stderr
        assert "Traceback" not in run.stdout + run.stderr


@pytest.mark.slow
def test_a_killed_sweep_keeps_finished_jobs_and_reports_the_rest_missing(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "-m", "scenario=sigmoid",
         "scenario.inputs.x.linspace.num=1200,1201,1202", "plots=false"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list(tmp_path.glob("outputs/multirun/*/*/0_sigmoid/results.json")):
        assert proc.poll() is None and time.monotonic() < deadline, "job 0 never finished"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    (sweep,) = tmp_path.glob("outputs/multirun/*/*")
    first = json.loads((sweep / "0_sigmoid" / "results.json").read_text())
    assert first["status"] == "ok" and len(first["gradients"]["dy/dx"]) == 1200
    done = subprocess.run([sys.executable, "-m", "runner.cli.rebuild", str(sweep)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    statuses = [r["status"] for r in json.loads((sweep / "summary.json").read_text())["rows"]]
    assert statuses[0] == "ok" and "missing" in statuses[1:] and len(statuses) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("(x**1000)**1000", "to the power 1e+06"),
        ("((x**10)**10)**10*x", "to the power 1001"),
        ("x**1000 * x", "to the power 1001"),
        ("(x**2)**(-501)", "to the power 1002"),
        ("1" * 400, "has 400 digits; the limit is 30"),
        ("x + 0x" + "F" * 400, "has more than 30 decimal digits"),
        ("(x\n+1)", "line break at position 3; an expression is one line"),
        ("x + \\\nx**2", "backslash at position 5"),
        ("(x\r+1)", "line break"),
        ("x\x00", "control character U+0000"),
        ("x**2 # anything", "comment ('#' at position 6)"),
        ("\uff58**2", "non-ASCII character '\uff58' (U+FF58) at position 1"),
        ("\U0001d465*2", "non-ASCII character '\U0001d465' (U+1D465)"),
        ("x\u00a0+ 1", "non-ASCII character"),
    ],
)
def test_text_outside_the_language_is_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        expr.parse(text, ["x"])
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_blank_edges_and_the_largest_allowed_power_are_accepted() -> None:
    assert str(expr.parse("  x**2\n", ["x"])) == "(x ** 2)"  # a YAML block scalar's final line break
    assert str(expr.parse("(x**10)**100 + sin(x**600)*sin(x**600)", ["x"])).startswith("(((x ** 10) ** 100)")
    widest = "1" + "0" * 29  # 30 digits
    assert str(expr.parse(f"x**1e3 * {widest}", ["x"])) == f"((x ** 1000.0) * {widest})"


@pytest.mark.parametrize(("text", "value"), [("sigmoid(-1000)", 0.0), ("sigmoid(1000)", 1.0),
                                             ("softplus(1000)", 1000.0), ("softplus(-1000)", 0.0),
                                             ("softplus(0)", 0.6931471805599453)])
def test_finite_constants_are_accepted(text: str, value: float) -> None:
    expr.parse(f"x + {text}", ["x"])
    assert syntax.evaluate(expr.parse(text, []), {}, vetting.FloatBackend) == value


@pytest.mark.parametrize("name", ["sign", "greater", "select", "nan", "x0", "Dummy_1", "builtins"])
def test_any_input_name_works_with_the_sympy_check(load: Callable[..., Any], name: str) -> None:
    # d/dv (|v| + relu(v)*v) = sign(v) + 2v for v > 0: 5 at v = 2. relu prints as select(greater(...)).
    outcome = run_routine(load(f"scenario.function='abs({name}) + relu({name})*{name}'", "~scenario.inputs.x",
                               f"+scenario.inputs.{name}.value=2.0"))
    assert outcome.gradients[f"dy/d{name}"] == 5.0
    assert outcome.passed, [c for c in outcome.checks if not c.passed]


def test_any_input_name_works_in_the_jacobian(compose_config: Callable[..., Any]) -> None:
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(compose_config("scenario=jacobian"))
    inputs = {"sign": {"value": -2.0}, "select": {"value": 3.0}, "greater": {"value": 1.0}}
    config["scenario"].update(inputs=inputs, targets={"F": "stack([abs(sign)*select, relu(greater)])"},
                              gradients={"F": list(inputs)})
    outcome = run_routine(load_run(config))
    assert outcome.passed, [c for c in outcome.checks if not c.passed]
    assert "dF/dsign vs SymPy" in {c.name for c in outcome.checks}
    columns = [outcome.gradients[f"dF/d{name}"] for name in inputs]
    assert np.array_equal(np.stack(columns, axis=1), [[-3.0, 2.0, 0.0], [0.0, 0.0, 1.0]])


EIGHT_FUNCTIONS = "sin(x)*cos(x)*tan(x)*exp(x)*log(x)*sqrt(x)*tanh(x)*atan(x)"


@pytest.mark.parametrize(
    "overrides",
    [
        # half a minute of sympy.diff without the bound
        ["scenario=higher_order", "scenario.order=8", f"scenario.function='{EIGHT_FUNCTIONS}'"],
        ["scenario=higher_order", "scenario.order=6", "scenario.function='sin(cos(tan(exp(log(sqrt(x))))))'"],
    ],
)
def test_the_oracle_is_bounded_by_its_size_before_sympy_starts(
        load: Callable[..., Any], overrides: list[str]) -> None:
    with without_backends(), pytest.raises(ConfigError) as caught:
        load(*overrides)  # importing SymPy would raise ImportError here, not ConfigError
    message = str(caught.value)
    found = re.search(r"would be about ([\d,]+) expression nodes, above the limit of 12,000", message)
    assert found and int(found.group(1).replace(",", "")) > 12_000, message
    assert message.startswith("scenario.function: SymPy's derivatives up to order") and "\n" not in message


def test_an_oracle_under_the_bound_is_accepted(load: Callable[..., Any]) -> None:
    with without_backends():
        load("scenario=higher_order", "scenario.order=3", f"scenario.function='{EIGHT_FUNCTIONS}'")
        load("scenario=higher_order", "scenario.order=8", "scenario.function='x**3*cos(x) + sigmoid(x)'")


@pytest.mark.parametrize(("failing_call", "expect"), [(2, "check fails"), (1, "raises")])
def test_only_tensorflows_second_call_refusal_counts_as_expected(
        load: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, failing_call: int, expect: str) -> None:
    from runner.tfenv import tf

    real = tf.GradientTape.gradient
    calls = iter(range(1, 100))

    def gradient(self: Any, *args: Any, **kwargs: Any) -> Any:
        if next(calls) == failing_call:
            raise RuntimeError("some other failure inside gradient()")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(tf.GradientTape, "gradient", gradient)
    run = load("scenario=persistent", "scenario.persistent=false")
    if expect == "raises":  # the first call must succeed: its RuntimeError is a real error
        with pytest.raises(RuntimeError, match="some other failure"):
            run_routine(run)
        return
    outcome = run_routine(run)
    (check,) = [c for c in outcome.checks if "raises RuntimeError" in c.name]
    assert not check.passed and not outcome.passed
    assert check.detail == ("expected 'A non-persistent GradientTape can only be used to compute one set of "
                            "gradients', TensorFlow said: some other failure inside gradient()")


def test_tensorflows_own_second_call_refusal_passes(load: Callable[..., Any]) -> None:
    outcome = run_routine(load("scenario=persistent", "scenario.persistent=false"))
    (check,) = [c for c in outcome.checks if "raises RuntimeError" in c.name]
    assert check.passed
    assert check.detail == ("TensorFlow said: A non-persistent GradientTape can only be used to compute one "
                            "set of gradients (or jacobians)")


def test_lambdify_runs_only_source_it_printed_from_renamed_symbols(load: Callable[..., Any]) -> None:
    """What reaches exec: SymPy's printed source over Dummy names, never a name or text from the config."""
    import sympy.utilities.lambdify  # noqa: F401  (the module: its name is shadowed by the function)

    lambdify_module = sys.modules["sympy.utilities.lambdify"]
    compiled: list[str] = []
    real_compile = builtins.compile

    def recording(source: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(source, str):
            compiled.append(source)
        return real_compile(source, *args, **kwargs)

    run = load("scenario.function='abs(os)*system + relu(system)/(1 + os**2)'", "~scenario.inputs.x",
               "+scenario.inputs.os.value=2.0", "+scenario.inputs.system.value=-1.5")
    with mock.patch.object(lambdify_module, "compile", recording, create=True):
        outcome = run_routine(run)
    assert outcome.passed, [c for c in outcome.checks if not c.passed]
    functions = [source for source in compiled if source.startswith("def _lambdifygenerated(")]
    assert len(functions) == 2 and len(compiled) == 2, compiled  # one per gradient, nothing else
    for source in functions:
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source))
        assert not words & {"os", "system", "x"}, source
        renamed = {w for w in words if re.fullmatch(r"Dummy_\d+|x\d+", w)}  # arguments, shared subterms
        printed = words - renamed - {"def", "return", "default", "_lambdifygenerated"}
        assert all(hasattr(np, w) or hasattr(builtins, w) for w in printed), source  # NumPy's names


TRICKY = st.recursive(
    st.sampled_from(["x", "y", "2", "0.5", "pi", "1" * 31]),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["2", "3", "10", "100", "1000", "(-501)", "0.5", "1e3"])).map(
            lambda t: f"({t[0]})**{t[1]}"),  # nested powers
        st.tuples(inner, st.sampled_from(["*", "/", "+"]), inner).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        st.tuples(st.sampled_from(syntax.FUNCTIONS), inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(inner, st.sampled_from(["\n", "\r\n", "\\\n", " # note\n", "\u00a0", "\uff58", "\U0001d465",
                                          "\u2028", "\t", "\x0c", "  "]), inner).map(
            lambda t: f"({t[0]}{t[1]}+{t[2]})"),  # line breaks, comments, unicode look-alikes
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(TRICKY)
def test_accepted_text_is_one_ascii_line_and_sympy_folds_no_power_past_the_bound(text: str) -> None:
    import sympy as sp

    tree = _parse_or_refuse(text)
    body = text.strip()
    if not body.isascii() or any(c in body for c in "\n\r\x0c#\\") or re.search(r"\d{31}", body):
        assert tree is None, text
    if tree is None:
        return
    backend = backends.SymPyBackend()
    folded = syntax.evaluate(tree, backend.symbols(["x", "y"]), backend)
    exponents = [abs(p.exp) for p in folded.atoms(sp.Pow) if p.exp.is_Number and p.base.free_symbols]
    assert all(e <= vetting.MAX_EXPONENT for e in exponents), (text, folded)


SHADOWING = st.sampled_from(["sign", "greater", "select", "where", "nan", "inf", "x0", "x1", "Dummy_1",
                             "builtins", "range", "numpy", "exp_", "Abs", "Piecewise", "math", "float"])


@settings(max_examples=60, deadline=None)
@given(SHADOWING, SHADOWING, st.floats(0.1, 5.0), st.floats(-5.0, -0.1))
def test_the_oracle_is_right_whatever_the_input_names(a: str, b: str, u: float, v: float) -> None:
    """d/du (|u| + relu(u)*v) = sign(u) + [u > 0] v, evaluated through lambdify with NumPy-named inputs."""
    from runner.oracles.symbolic import oracle

    if a == b:
        return
    backend = backends.SymPyBackend()
    symbols = backend.symbols([a, b])
    tree = expr.parse(f"abs({a}) + relu({a})*{b}", [a, b])
    import sympy as sp

    derivative = sp.diff(syntax.evaluate(tree, symbols, backend), symbols[a])
    got = oracle(derivative, symbols, {a: np.array(u), b: np.array(v)}, (), ())
    assert got == pytest.approx(1.0 + v) and oracle(
        derivative, symbols, {a: np.array(-u), b: np.array(v)}, (), ()) == pytest.approx(-1.0)


def test_the_bounds_walk_node_kinds_they_do_not_name() -> None:
    """A node the bounds have no rule for counts as the product of its parts (its sub-expressions)."""
    from dataclasses import dataclass

    from runner.scenarios import sympy_cost

    @dataclass(frozen=True)
    class Pair:  # stands for any node added to the language later
        first: syntax.Expr
        rest: tuple[syntax.Expr, ...]

    x = syntax.Name("x")
    power = syntax.BinOp("**", x, syntax.Num(600))
    assert syntax.children(Pair(x, (power, syntax.Num(1)))) == (x, power, syntax.Num(1))
    with pytest.raises(ConfigError, match="to the power 1200"):
        vetting.input_power(syntax.BinOp("*", Pair(power, ()), Pair(power, ())), {})
    square = syntax.BinOp("*", x, x)
    assert sympy_cost.derivative_sizes(Pair(x, (x,)), 2) == sympy_cost.derivative_sizes(square, 2)


@pytest.mark.parametrize(("text", "power"), [
    ("(sqrt((x)**3))**1000", 1500),  # sqrt(a) is a**(1/2): SymPy folds the even power through it
    ("abs(x**3)**1000", 3000),  # Abs(x**3) is Abs(x)**3
    ("exp(1500*log(x))", 1500), ("exp(log(x)*1500)", 1500), ("exp(-1500*log(x))", 1500),  # x**c
    ("exp(log(x)/0.0005)", 2000), ("exp(3*log(x))**400", 1200),
])
def test_powers_sympy_folds_through_a_function_are_bounded(text: str, power: int) -> None:
    with pytest.raises(ConfigError, match=f"to the power {power} once SymPy folds"):
        expr.parse(text, ["x"])


@pytest.mark.parametrize(("text", "folded"), [
    ("sqrt(x)**1000", 500), ("sqrt(x**3)**600", 900), ("exp(x)**1000", 0), ("exp(1000/log(x))", 1),
])
def test_powers_within_the_bound_through_a_function_are_accepted(text: str, folded: int) -> None:
    import sympy as sp

    backend = backends.SymPyBackend()
    result = syntax.evaluate(expr.parse(text, ["x"]), backend.symbols(["x"]), backend)
    exponents = [abs(p.exp) for p in result.atoms(sp.Pow) if p.base.free_symbols and p.exp.is_Number]
    assert max(exponents, default=0) == folded  # exp(x)**1000 is exp(1000*x); 1000/log(x) is log(x)**-1


def test_the_power_bound_visits_each_node_once_however_deep_exp_of_log_nests(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """exp(log(a)) reads a's power again: once per node, not once per path (2**30 calls at 30 levels)."""
    calls = []
    counted = vetting.input_power

    def counting(*args: Any) -> float:
        calls.append(args[0])
        return counted(*args)

    monkeypatch.setattr(vetting, "input_power", counting)
    text = "x"
    for _ in range(30):
        text = f"exp(log({text}))"
    expr.parse(text, ["x"])
    assert 0 < len(calls) <= 3 * 30 + 1  # each of 61 nodes once, and each exp's reread of its log's argument
