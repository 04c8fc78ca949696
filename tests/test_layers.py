"""Keras layers as program steps: each allowlisted layer's gradients against float64 differences,
the refusals, weights fixed by the seed, projections at a million weights, Keras kept out otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from runner.oracles.projections import projection_check
from runner.routines import program
from runner.scenarios import layers
from runner.scenarios.loading import load_run
from runner.scenarios.schema import RunConfig
from tests.conftest import CliRun, assert_passed, assert_snippets_reproduce

SCENARIO = "defaults:\n  - /schema/scenario/program@_here_\n  - _self_\n"

#: One step per allowlisted layer: (input shape, input kind, the step, sources beyond its variables).
LAYERS: dict[str, tuple[list[int], dict[str, Any], list[str]]] = {
    "Dense": ([3, 4], {"layer": "Dense", "input": "x", "args": {"units": 3, "activation": "tanh"}}, ["x"]),
    "Conv1D": ([2, 6, 3], {"layer": "Conv1D", "input": "x", "args": {"filters": 2, "kernel_size": 3}}, ["x"]),
    "Conv2D": ([1, 5, 5, 2], {"layer": "Conv2D", "input": "x",
                              "args": {"filters": 2, "kernel_size": [2, 2], "padding": "same"}}, ["x"]),
    "BatchNormalization": ([6, 3], {"layer": "BatchNormalization", "input": "x", "training": True}, ["x"]),
    "LayerNormalization": ([3, 4], {"layer": "LayerNormalization", "input": "x"}, ["x"]),
    "Embedding": ([2, 3], {"layer": "Embedding", "input": "x",
                           "args": {"input_dim": 5, "output_dim": 3}}, []),
    "Flatten": ([2, 3, 2], {"layer": "Flatten", "input": "x"}, ["x"]),
    "Dropout": ([3, 4], {"layer": "Dropout", "input": "x", "args": {"rate": 0.5}, "training": False}, ["x"]),
    "Activation": ([3, 4], {"layer": "Activation", "input": "x", "args": {"activation": "sigmoid"}}, ["x"]),
    "ReLU": ([3, 4], {"layer": "ReLU", "input": "x"}, ["x"]),
    "LeakyReLU": ([3, 4], {"layer": "LeakyReLU", "input": "x", "args": {"negative_slope": 0.2}}, ["x"]),
    "ELU": ([3, 4], {"layer": "ELU", "input": "x"}, ["x"]),
    "PReLU": ([3, 4], {"layer": "PReLU", "input": "x", "args": {"alpha_initializer": "ones"}}, ["x"]),
    "Softmax": ([3, 4], {"layer": "Softmax", "input": "x"}, ["x"]),
    "UnitNormalization": ([3, 4], {"layer": "UnitNormalization", "input": "x"}, ["x"]),
}


@pytest.fixture
def program_run(compose_config: Callable[..., Any]) -> Callable[..., RunConfig]:
    """program_run(scenario dict fields, overrides...) -> a validated run of a program with those fields."""
    def make(fields: dict[str, Any], *overrides: str) -> RunConfig:
        values = OmegaConf.to_container(compose_config("scenario=layers", *overrides), resolve=True)
        assert isinstance(values, dict)
        values["scenario"].update(fields)
        return load_run(values)
    return make


def _one(name: str, dtype_input: str = "normal") -> dict[str, Any]:
    shape, step, _ = LAYERS[name]
    x: dict[str, Any] = {"init": dtype_input, "shape": shape}
    if name == "Embedding":  # integer indices, as a value
        x = {"value": [[0.0, 4.0, 2.0], [1.0, 1.0, 3.0]], "kind": "constant"}
    return {"inputs": {"x": x}, "targets": {"h": step, "loss": "reduce_sum(sin(h) * h)"}, "gradients": {}}


def _variables(run: RunConfig) -> dict[str, bool]:
    """The step h's variables, ``h.<name>`` -> trainable, as the layer builds them."""
    return {k: w.trainable for k, w in program.Program(run.scenario, run).layers["h"].variables.items()}


@pytest.mark.parametrize("name", layers.ALLOWED)
def test_each_allowlisted_layer_against_float64_differences(name: str, program_run: Callable[..., RunConfig]
                                                            ) -> None:
    fields = _one(name)
    run = program_run(fields, "dtype=float64")
    variables = [k for k in program.program_shapes(run.scenario) if k.startswith("h.")]
    sources = [*LAYERS[name][2], *variables]
    run.scenario.gradients = {"loss": sources}
    outcome = assert_passed(program.run(run.scenario, run))
    for source in sources:
        label = f"dloss/d{source}"
        if source.endswith(("moving_mean", "moving_variance")):  # non-trainable: None, and said why
            assert outcome.gradients[label] is None and "non-trainable" in outcome.notes[label]
            continue
        (check,) = [c for c in outcome.checks if c.name.startswith(f"{label} vs float64 central differences")]
        assert check.max_abs_err is not None and check.max_abs_err < 1e-6, check


MILLION = {"inputs": {"x": {"init": "normal", "shape": [64, 1024], "kind": "constant"}},
           "targets": {"y": {"layer": "Dense", "input": "x", "args": {"units": 1024}},
                       "loss": "reduce_mean(y**2)"},
           "gradients": {"loss": ["y.kernel", "y.bias"]}}


@pytest.mark.slow
def test_a_million_weight_dense_is_checked_by_projections(program_run: Callable[..., RunConfig]) -> None:
    run = program_run(MILLION)
    outcome = assert_passed(program.run(run.scenario, run))
    assert outcome.gradients["dloss/dy.kernel"].shape == (1024, 1024)
    names = [c.name for c in outcome.checks]
    assert "dloss/dy.kernel vs float64 central differences (1 random projection v.(J u))" in names
    assert "dloss/dy.bias vs float64 central differences (1 random projection v.(J u))" in names
    # By hand: loss = mean(y**2) with y = x W + b, so dloss/dW = x^T (2 y / y.size), dloss/db its column sums.
    y = outcome.values["y"].astype(np.float64)
    x = outcome.inputs["x"].astype(np.float64)
    np.testing.assert_allclose(outcome.gradients["dloss/dy.kernel"], x.T @ (2 * y / y.size), atol=1e-7)
    np.testing.assert_allclose(outcome.gradients["dloss/dy.bias"], (2 * y / y.size).sum(axis=0), atol=1e-7)


@pytest.mark.parametrize("shared", [False, True], ids=["twin calls", "shared product"])
@pytest.mark.parametrize("source", ["y.kernel", "y.bias"])
def test_a_wrong_layer_gradient_fails_the_projection_check(program_run: Callable[..., RunConfig], source: str,
                                                           shared: bool) -> None:
    """The oracle tells a gradient 1% off from the true one at a million weights (as a custom_gradient
    scaling it by 1.01 would make it), and passes the true one: through two calls of the float64 twin
    per projection, and through the Dense layer's shared product that the run uses."""
    run = program_run(MILLION)
    prog = program.Program(run.scenario, run)
    fn, vjp = prog.forward_fn("loss", source), prog.vjp("loss", source)
    true = vjp(prog.weights["loss"])
    tol = run.tolerances().float64_differences
    point = prog.held[source]
    across = prog.across("loss", source) if shared else None

    def check(scale: float) -> bool:
        return projection_check(f"dloss/d{source}", scale * true, fn, lambda v: scale * vjp(v), point,
                                prog.weights["loss"], tol, 1e-6, 4, run.seed, across).passed

    assert check(1.0) and not check(1.01)


#: Dense layers whose nudges share one product, and a Conv1D whose twin is called per sign.
NUDGED = {
    "linear": ([5, 7], {"units": 3}),
    "tanh, rank 3": ([2, 5, 7], {"units": 3, "activation": "tanh"}),
    "relu, no bias": ([5, 7], {"units": 3, "activation": "relu", "use_bias": False}),
}


def _by_hand(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | float, activation: str) -> float:
    """loss = reduce_sum(sin(h) * h), h = activation(x @ K + b), in NumPy."""
    z = x @ kernel + bias
    h = {"linear": z, "tanh": np.tanh(z), "relu": np.maximum(z, 0.0)}[activation]
    return float(np.sum(np.sin(h) * h))


@pytest.mark.parametrize("case", list(NUDGED))
def test_a_dense_layers_nudged_losses_match_numpy_by_hand(case: str, program_run: Callable[..., RunConfig]
                                                          ) -> None:
    """Program.across (the loss at K + s minus the loss at K - s, the layer nudging itself through
    x @ s) against the same two losses written in NumPy, for the kernel and the bias."""
    shape, args = NUDGED[case]
    run = program_run({"inputs": {"x": {"init": "normal", "shape": shape}},
                       "targets": {"h": {"layer": "Dense", "input": "x", "args": args},
                                   "loss": "reduce_sum(sin(h) * h)"}, "gradients": {}}, "dtype=float64")
    prog = program.Program(run.scenario, run)
    activation = args.get("activation", "linear")
    x, kernel = prog.held["x"], prog.held["h.kernel"]
    bias = prog.held.get("h.bias", 0.0)
    rng = np.random.default_rng(3)
    sources = ["h.kernel", "h.bias"] if args.get("use_bias", True) else ["h.kernel"]
    for source in sources:
        step = 1e-3 * rng.uniform(-1.0, 1.0, np.shape(prog.held[source]))
        got = float(prog.across("loss", source)(step))
        nudged = [(kernel + s, bias) if source == "h.kernel" else (kernel, bias + s) for s in (step, -step)]
        want = _by_hand(x, *nudged[0], activation) - _by_hand(x, *nudged[1], activation)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), source


def test_a_conv_layers_nudges_call_its_twin(program_run: Callable[..., RunConfig]) -> None:
    """Another layer's variable is nudged by calling its float64 twin once per sign: Program.across
    gives what two forward passes through the whole program give."""
    shape, step, _ = LAYERS["Conv1D"]
    run = program_run({"inputs": {"x": {"init": "normal", "shape": shape}},
                       "targets": {"h": step, "loss": "reduce_sum(sin(h) * h)"}, "gradients": {}},
                      "dtype=float64")
    prog = program.Program(run.scenario, run)
    for source in ("h.kernel", "h.bias"):
        point = prog.held[source]
        s = 1e-3 * np.random.default_rng(4).uniform(-1.0, 1.0, point.shape)
        fn = prog.forward_fn("loss", source)
        assert float(prog.across("loss", source)(s)) == pytest.approx(float(fn(point + s) - fn(point - s)),
                                                                       rel=1e-12)


def test_a_dense_twin_that_is_not_affine_is_called_per_sign(program_run: Callable[..., RunConfig]) -> None:
    """The shared product is used only where the twin's own output is activation(x @ K + b): given an
    output that is not (here shifted by 0.5), the layer calls its twin for each sign instead."""
    run = program_run({"inputs": {"x": {"init": "normal", "shape": [4, 6]}},
                       "targets": {"h": {"layer": "Dense", "input": "x", "args": {"units": 3}},
                                   "loss": "reduce_sum(h)"}, "gradients": {}}, "dtype=float64")
    prog = program.Program(run.scenario, run)
    x, kernel, bias = prog.held["x"], prog.held["h.kernel"], prog.held["h.bias"]
    s = 1e-3 * np.ones_like(kernel)
    values = {**prog.held, **prog.forward, "h": prog.forward["h"] + 0.5}
    plus, minus = prog.layers["h"].nudged("h.kernel", s, values)
    np.testing.assert_allclose(plus, x @ (kernel + s) + bias, rtol=1e-12)
    np.testing.assert_allclose(minus, x @ (kernel - s) + bias, rtol=1e-12)


def test_dense_layers_checked_by_projections_pass_and_say_so(program_run: Callable[..., RunConfig]) -> None:
    """Through the run: a tanh Dense layer's kernel and bias above fd_max_elements, by projections."""
    run = program_run({"inputs": {"x": {"init": "normal", "shape": [6, 10]}},
                       "targets": {"h": {"layer": "Dense", "input": "x",
                                         "args": {"units": 4, "activation": "tanh"}},
                                   "loss": "reduce_mean(square(h))"},
                       "gradients": {"loss": ["h.kernel", "h.bias"]}},
                      "dtype=float64", "checks.fd_max_elements=2", "checks.projections=3")
    outcome = assert_passed(program.run(run.scenario, run))
    names = [c.name for c in outcome.checks]
    for source in ("h.kernel", "h.bias"):
        assert f"dloss/d{source} vs float64 central differences (3 random projections v.(J u))" in names
    # By hand: dloss/dK = x^T (2 h (1 - h^2) / h.size), dloss/db its column sums.
    x, h = outcome.inputs["x"], outcome.values["h"]
    dz = 2 * h * (1 - h**2) / h.size
    np.testing.assert_allclose(outcome.gradients["dloss/dh.kernel"], x.T @ dz, rtol=1e-10)
    np.testing.assert_allclose(outcome.gradients["dloss/dh.bias"], dz.sum(axis=0), rtol=1e-10)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "mine" / "scenario"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(SCENARIO + f"name: {name}\n" + text)
    return tmp_path / "mine"


@pytest.mark.slow
def test_the_guides_keras_layer_through_the_cli(cli: Callable[..., CliRun]) -> None:
    first, again = cli("scenario=guide/keras_layer"), cli("scenario=guide/keras_layer")
    results = first.ok()
    kernel, bias = (np.array(results["gradients"][k]) for k in ("dloss/dy.kernel", "dloss/dy.bias"))
    assert kernel.shape == (3, 2) and bias.shape == (2,)
    # The layer's own seed (3) keeps both ReLU units alive: every element of both gradients is checked
    # against a number that is not 0 (at the run's seed 0 both units were dead and every check vacuous).
    assert np.count_nonzero(kernel) == 6 and np.count_nonzero(bias) == 2
    assert not any(c.get("vacuous") for c in results["checks"])
    # By hand: y = relu(x K + b), loss = mean(y**2): dloss/dK = x^T (2 y / 2 * [y > 0]), dloss/db its sum.
    x, y = np.array(results["inputs"]["x"]), np.array(results["values"]["y"])
    upstream = 2 * y / y.size * (y > 0)
    np.testing.assert_allclose(kernel, x.T @ upstream, rtol=1e-6)
    np.testing.assert_allclose(bias, upstream.sum(axis=0), rtol=1e-6)
    assert again.ok()["gradients"] == results["gradients"]  # same seed, same weights, same numbers
    other = cli("scenario=guide/keras_layer", "scenario.targets.y.seed=7").ok()
    assert other["inputs"]["y.kernel"] != results["inputs"]["y.kernel"]  # the step's seed draws its weights
    names = [c["name"] for c in results["checks"]]
    assert "dloss/dy.kernel vs float64 central differences (every element)" in names
    assert "SymPy check skipped: the program has Keras layers" in results["notes"]["dloss/dy.kernel"]
    (run_dir,) = first.run_dirs()
    assert "y = Dense(x, units=2, activation='relu'); loss = reduce_mean(y**2)" in (
        run_dir / "report.md").read_text()
    assert_snippets_reproduce(first.run_dirs())


@pytest.mark.slow
def test_a_user_layer_stack_through_the_cli(cli: Callable[..., CliRun], tmp_path: Path) -> None:
    """Conv1D, BatchNormalization (training) and Flatten then Dense, in float64: every number by hand
    where it is short to write (the last Dense), the rest against the float64 differences."""
    config = _write(tmp_path, "stack", (
        "inputs:\n  x: {init: normal, shape: [4, 6, 2]}\n"
        "targets:\n"
        "  c: {layer: Conv1D, input: x, args: {filters: 3, kernel_size: 3, activation: tanh}}\n"
        "  b: {layer: BatchNormalization, input: c, training: true}\n"
        "  f: {layer: Flatten, input: b}\n"
        "  y: {layer: Dense, input: f, args: {units: 2, bias_initializer: ones}}\n"
        "  loss: reduce_sum(y**2)\n"
        "gradients:\n  loss: [c.kernel, b.gamma, b.moving_mean, y.kernel, y.bias, f, x]\n"))
    results = cli("--config-dir", str(config), "scenario=stack", "dtype=float64", "compile=function").ok()
    grads = results["gradients"]
    assert np.array(grads["dloss/dc.kernel"]).shape == (3, 2, 3)
    assert grads["dloss/db.moving_mean"] is None
    assert "non-trainable" in results["notes"]["dloss/db.moving_mean"]
    y = np.array(results["values"]["y"])
    np.testing.assert_allclose(grads["dloss/dy.bias"], (2 * y).sum(axis=0), rtol=1e-10)
    f = np.array(results["values"]["f"])
    np.testing.assert_allclose(grads["dloss/dy.kernel"], f.T @ (2 * y), rtol=1e-10)
    assert np.array(grads["dloss/df"]).shape == (4, 12)  # Conv1D: 6 - 3 + 1 = 4 steps of 3 filters
    checks = {c["name"]: c for c in results["checks"]}
    for label in ("dloss/dc.kernel", "dloss/db.gamma", "dloss/dy.kernel", "dloss/dx"):
        assert checks[f"{label} vs float64 central differences (every element)"]["max_abs_err"] < 1e-7


@pytest.mark.slow
@pytest.mark.parametrize(("override", "message"), [
    ("scenario.targets.y.layer=Lambda",
     "scenario.targets.y.layer: 'Lambda' is not an allowed layer (allowed: Dense, Conv1D, Conv2D, "),
    ("+scenario.targets.y.args.unitz=3",
     "scenario.targets.y.args: Dense takes no argument 'unitz' (it accepts: units, activation, use_bias, "),
    ("scenario.gradients.loss=[y.kernal]",
     "scenario.gradients.loss: Dense step y has no variable 'kernal' (it has: kernel, bias)"),
    ("scenario.gradients.loss=[loss.kernel]",
     "scenario.gradients.loss: 'loss.kernel' names no layer step at or before loss (<step>.<variable>)"),
    ("+scenario.targets.y.args.kernel_initializer={class_name: Lambda, config: {}}",
     "scenario.targets.y.args.kernel_initializer: {'class_name': 'Lambda', 'config': {}} is not plain data"),
    ("+scenario.targets.y.args.kernel_initializer=os.system",
     "scenario.targets.y.args.kernel_initializer: unknown name 'os.system' (Keras's initializers: "),
    ("scenario.inputs.x.value=[1.0,2.0,3.0]",
     "scenario.targets.y: Dense on x of shape (3,): "),
    ("scenario.targets.loss=reduce_mean(y @ x)",  # a layer's output shape is known before the tape
     "scenario.targets.loss: y @ x cannot multiply shapes (1, 2) and (1, 3)"),
])
def test_refusals_are_one_line_with_exit_1(cli: Callable[..., CliRun], override: str, message: str) -> None:
    run = cli("scenario=guide/keras_layer", override)
    assert run.returncode == 1
    output = run.stdout + run.stderr
    assert message in output, output
    assert len([line for line in output.splitlines() if message in line]) == 1
    assert "Traceback" not in output


@pytest.mark.slow
def test_programs_without_layers_do_not_import_keras() -> None:
    """Keras loads only for a layer step: a plain program keeps TensorFlow's start-up without it."""
    code = ("import sys\nfrom runner import api\nassert api.run(sys.argv[1]).passed\n"
            "print(sorted(m for m in sys.modules if m == 'keras' or m.startswith('keras.'))[:1])")
    found = {}
    for name in ("program", "guide/keras_layer"):
        done = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        found[name] = done.stdout.splitlines()[-1]
    assert found == {"program": "[]", "guide/keras_layer": "['keras']"}


@pytest.mark.slow
def test_layer_grid_summary_shows_each_combination_and_its_error_against_float64(
        cli: Callable[..., CliRun]) -> None:
    run = cli("experiment=layer_grid", timeout=1200)
    assert run.returncode == 0, run.stderr
    (summary_path,) = run.cwd.glob("outputs/multirun/*/*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["jobs"] == 24 and summary["statuses"] == {"ok": 24}
    assert "vs float64" in summary["columns"]
    # The run's own rounding, except in float64, where the oracle's own differencing error dominates: the
    # activation gradient's random projection is one central difference along a weighted direction
    # (rounding scaled by the direction's reach over delta; its check's tolerance is about 1e-6, while
    # the element-wise differences of the variables stay near 1e-10).
    bound = {"float16": 0.05, "bfloat16": 0.05, "float32": 1e-5, "float64": 1e-6}
    seen = set()
    for row in summary["rows"]:
        params = dict(item.split("=", 1) for item in row["overrides"].split())
        seen.add((params["dtype"], params["compile"], params["scenario.inputs.x.shape"]))
        assert 0 < row["vs float64"] < bound[params["dtype"]], row
    assert len(seen) == 24
    assert "| vs float64 |" in (summary_path.parent / "summary.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["dtype=float32 compile=xla", "dtype=float16 compile=function",
                                  "dtype=bfloat16 compile=eager"])
@pytest.mark.parametrize("name", layers.ALLOWED)
def test_each_layer_in_each_dtype_and_compile_mode(name: str, mode: str,
                                                   program_run: Callable[..., RunConfig]) -> None:
    """The tape in the run's dtype and compile mode, against the float64 twins (the dtype's tolerance)."""
    run = program_run(_one(name), *mode.split())
    run.scenario.gradients = {"loss": [*LAYERS[name][2], *(k for k, trainable in _variables(run).items()
                                                           if trainable)]}
    outcome = assert_passed(program.run(run.scenario, run))
    assert str(outcome.gradients[f"dloss/d{run.scenario.gradients['loss'][0]}"].dtype) == run.dtype


def test_unwatched_layer_variables_give_none_or_zeros_with_the_reason() -> None:
    from runner import api

    ignored = api.run("guide/keras_layer", ["scenario.watch_accessed_variables=false"])
    assert ignored.passed and ignored.gradients == {"dloss/dy.kernel": None, "dloss/dy.bias": None}
    assert "watch_accessed_variables=false" in ignored.record["notes"]["dloss/dy.kernel"]
    zeros = api.run("guide/keras_layer", ["scenario.watch_accessed_variables=false",
                                          "scenario.unconnected_gradients=zero"])
    assert zeros.passed and zeros.gradients["dloss/dy.kernel"].tolist() == [[0.0, 0.0]] * 3


def test_a_seed_draws_the_same_weights_in_every_dtype_and_another_seed_others() -> None:
    from runner import api

    runs = {(dtype, seed): api.run("layers", [f"dtype={dtype}", f"seed={seed}"]).gradients["dloss/dh.kernel"]
            for dtype, seed in (("float64", 1), ("float16", 1), ("float64", 2))}
    np.testing.assert_allclose(runs["float16", 1].astype(np.float64), runs["float64", 1], atol=0.01)
    assert np.max(np.abs(runs["float64", 2] - runs["float64", 1])) > 0.01


def test_the_summary_shows_each_jobs_largest_error_against_float64(tmp_path: Path) -> None:
    from runner.outputs import summary

    def check(name: str, err: float | None) -> dict[str, Any]:
        return {"name": name, "passed": True, "max_abs_err": err, "tol": 1.0, "detail": ""}

    for num, dtype, errors in ((0, "float16", (3e-3, 2e-4)), (1, "float64", (1e-10, 4e-11))):
        job = tmp_path / f"{num}_layer_stack"
        job.mkdir()
        (job / "results.json").write_text(json.dumps({
            "status": "ok", "gradients": {"dloss/dh.kernel": {"shape": [8, 10], "min": -1.0, "max": 1.0}},
            "job": {"overrides": [f"dtype={dtype}"]},
            "checks": [check("dloss/dh.kernel vs float64 central differences (every element)", errors[0]),
                       check("dloss/dh.bias vs float64 central differences (4 random projections v.(J u))",
                             errors[1]),
                       check("Newton step vs NumPy float64 solve", 5.0), check("loss finite", None)]}))
    written = summary.write(tmp_path)
    assert [row["vs float64"] for row in written.rows] == [3e-3, 1e-10]
    md = (tmp_path / "summary.md").read_text()
    assert "| job | dtype | status | checks | vs float64 | message | report | dloss/dh.kernel |" in md
    assert "| 0 | float16 | ok | 4 passed | 0.003 |" in md and "| 1 | float64 | ok | 4 passed | 1e-10 |" in md
