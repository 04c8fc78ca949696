"""Every shipped scenario and every bad input through the real CLI, in a subprocess."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SEED_SCENARIOS, CliRun, linear_loss_gradients

pytestmark = pytest.mark.slow

Cli = Callable[..., CliRun]


def _files(run: CliRun) -> set[str]:
    (run_dir,) = run.run_dirs()
    return {p.name for p in run_dir.iterdir()}


def test_basic(cli: Cli) -> None:
    run = cli()
    results = run.ok()
    assert results["scenario"] == "basic"
    assert results["gradients"] == {"dy/dx": 6.0}
    assert results["inputs"] == {"x": 3.0}
    assert {c["name"] for c in results["checks"]} >= {
        "dy/dx vs SymPy", "dy/dx vs float64 central differences (every element)"}
    for key in ("config", "environment", "timings", "checks"):
        assert results[key]
    assert results["config"]["scenario"]["function"] == "x**2"
    assert results["environment"]["packages"]["tensorflow"]
    assert {"results.json", "report.md", "tape-runner.log", ".hydra"} <= _files(run)
    report = (run.run_dirs()[0] / "report.md").read_text()
    assert "2*x" in report and "## Checks" in report and "tape-runner --config-path" in report
    assert "Traceback" not in run.stderr
    assert "cuda" not in (run.stdout + run.stderr).lower(), "TensorFlow start-up noise reached the console"
    assert "dy/dx = 6.0  ✓ SymPy  ✓ float64 differences" in run.stdout + run.stderr  # the result, shown


def test_watch_null_then_six(cli: Cli) -> None:
    unwatched = cli("scenario=watch").ok()
    assert unwatched["gradients"] == {"dy/dx": None}
    assert "tape.watch(x)" in unwatched["notes"]["dy/dx"]
    watched = cli("scenario=watch", "scenario.inputs.x.watch=true").ok()
    assert watched["gradients"] == {"dy/dx": 6.0}
    assert "dy/dx" not in watched["notes"]


def test_sigmoid_peak_and_plot(cli: Cli) -> None:
    run = cli("scenario=sigmoid")
    results = run.ok()
    x = np.array(results["inputs"]["x"])
    d = np.array(results["gradients"]["dy/dx"])
    assert x.shape == d.shape == (201,) and x[0] == -10.0 and x[-1] == 10.0
    assert d.max() == pytest.approx(0.25, abs=1e-6) and x[d.argmax()] == pytest.approx(0.0, abs=1e-6)
    assert results["plots"] == ["sigmoid.png"]
    png = run.run_dirs()[0] / "sigmoid.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_sigmoid_linspace_override(cli: Cli) -> None:
    results = cli("scenario=sigmoid", "scenario.inputs.x.linspace.num=501", "plots=false").ok()
    assert len(results["gradients"]["dy/dx"]) == 501 and results["plots"] == []


def test_a_curve_of_a_million_points_is_checked_in_blocks_and_a_wrong_closed_form_fails(cli: Cli) -> None:
    """Past checks.THREADED_ELEMENTS (2^20) the elementwise oracles go block by block, in threads."""
    num = 1_100_001  # odd: x = 0 is a point, where the derivative peaks at 0.25
    args = ("scenario=sigmoid", f"scenario.inputs.x.linspace.num={num}", "plots=false", "report=false")
    results = cli(*args).ok()
    summary = results["gradients"]["dy/dx"]
    s10 = 1 / (1 + np.exp(-10.0))
    assert summary["shape"] == [num] and summary["max"] == 0.25
    assert summary["min"] == pytest.approx(s10 * (1 - s10), rel=1e-5)
    assert summary["mean"] == pytest.approx((2 * s10 - 1) / 20, rel=1e-4)  # (s(10) - s(-10)) / 20
    checks = {c["name"]: c for c in results["checks"]}
    for name in ("dy/dx vs SymPy", "dy/dx vs closed form sigmoid(x)*(1 - sigmoid(x))",
                 f"dy/dx vs float64 central differences (all {num} elements, nudged together)"):
        assert 0 < checks[name]["max_abs_err"] < 1e-6  # float32's rounding, at a million points
    run = cli(*args, "scenario.closed_form.x=1.001*sigmoid(x)*(1 - sigmoid(x))")
    assert run.returncode == 2
    (wrong,) = [c for c in run.results["checks"] if c["name"].startswith("dy/dx vs closed form 1.001*")]
    assert not wrong["passed"] and wrong["max_abs_err"] == pytest.approx(0.25e-3, rel=1e-3)


def test_linear_equals_the_gradient_of_its_loss(cli: Cli) -> None:
    results = cli("scenario=linear", "scenario.loss=mse", "scenario.batch=6").ok()
    data = {k: np.array(v, dtype=np.float64) for k, v in results["inputs"].items()}
    assert data["x"].shape == (6, 3) and data["W"].shape == (3, 2) and data["b"].shape == (2,)
    want = linear_loss_gradients(data)
    for label in ("dloss/dW", "dloss/db"):
        np.testing.assert_allclose(results["gradients"][label], want[label], rtol=1e-5, atol=1e-6)


def test_persistent_108_and_6(cli: Cli) -> None:
    results = cli("scenario=persistent").ok()
    assert results["gradients"] == {"dy/dx": 6.0, "dz/dx": 108.0}
    run = cli("scenario=persistent", "scenario.persistent=false")
    single = run.ok()
    assert single["gradients"] == {"dy/dx": 6.0, "dz/dx": None}
    assert "RuntimeError" in single["notes"]["dz/dx"]
    # The explained error on the console, not only in the report.
    assert "dz/dx = None (a non-persistent tape frees its record after the first gradient() call, so " \
           "TensorFlow raised RuntimeError here; set scenario.persistent=true" in run.stdout + run.stderr


def test_unconnected_zeros_then_none(cli: Cli) -> None:
    zeros = cli("scenario=unconnected").ok()
    assert zeros["gradients"] == {"dz/dx": 0.0, "dz/dy": 6.0}
    assert "z does not depend on x" in zeros["notes"]["dz/dx"]
    results = cli("scenario=unconnected", "scenario.unconnected_gradients=none").ok()
    assert results["gradients"] == {"dz/dx": None, "dz/dy": 6.0}
    assert "z does not depend on x" in results["notes"]["dz/dx"]


@pytest.mark.parametrize(
    "function_override",
    ["scenario.function='x**3*cos(x)'",  # Hydra-quoted, as in the docs
     "scenario.function=x**3*cos(x)"],   # unquoted: the CLI quotes it for Hydra
)
def test_an_unseen_function_from_the_command_line(cli: Cli, function_override: str) -> None:
    results = cli(function_override, "scenario.inputs.x.value=1.3").ok()
    x = 1.3
    assert results["gradients"]["dy/dx"] == pytest.approx(
        3 * x**2 * np.cos(x) - x**3 * np.sin(x), rel=1e-5)
    assert results["analytic"]["dy/dx"] == "-x**3*sin(x) + 3*x**2*cos(x)"


def test_two_inputs_from_the_command_line(cli: Cli) -> None:
    results = cli("scenario.function=x*y + sin(x)", "+scenario.inputs.y.value=2", "dtype=float64").ok()
    assert results["gradients"]["df/dx"] == pytest.approx(2 + np.cos(3.0), rel=1e-12)
    assert results["gradients"]["df/dy"] == pytest.approx(3.0)


def test_the_seed_sweep(cli: Cli) -> None:
    run = cli("-m", f"scenario={','.join(SEED_SCENARIOS)}")
    assert run.returncode == 0, run.stderr
    dirs = run.run_dirs()
    assert [d.name for d in dirs] == [f"{i}_{s}" for i, s in enumerate(SEED_SCENARIOS)]
    for run_dir, name in zip(dirs, SEED_SCENARIOS, strict=True):
        results = json.loads((run_dir / "results.json").read_text())
        assert results["scenario"] == name and results["status"] == "ok"


def test_a_failed_check_exits_2_after_writing_everything(cli: Cli) -> None:
    run = cli("scenario.function=sqrt(x)", "scenario.inputs.x.value=0")
    assert run.returncode == 2
    results = run.results
    assert results["status"] == "check_failed"
    assert not all(c["passed"] for c in results["checks"])
    assert results["gradients"]["dy/dx"] == "Infinity"
    assert "dy/dx = inf  ✗ SymPy" in run.stdout + run.stderr
    assert "report.md" in _files(run)


def test_two_runs_in_the_same_second_get_their_own_directories(tmp_path: Path) -> None:
    import subprocess
    import sys

    # A refused function fails fast, after Hydra has made the run directory.
    procs = [subprocess.Popen([sys.executable, "-m", "runner", "scenario.function=nope(x)"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(3)]
    for proc in procs:
        assert proc.wait(timeout=120) == 1
    dirs = {p.parent for p in tmp_path.glob("outputs/*/*/results.json")}
    assert len(dirs) == 3
    assert len({d.name[:8] for d in dirs}) <= 2  # most started within the same second


#: Bad input and a fragment of the one line that names the problem (tests/test_api.py reuses them).
BAD_INPUTS = [
        (["scenario=nope"], "Could not find 'scenario/nope'"),
        (["scenario.inputs.x.valeu=3"], "valeu"),
        (["scenario=linear", "scenario.batch=three"], "batch"),
        (["+scenario.foo=1"], "scenario.foo: Key 'foo' not in 'ProgramScenario'"),
        (["scenario.function=foo(x)"], "scenario.function: unknown function 'foo'"),
        (["scenario.function=x +"], "scenario.function: syntax error"),
        (["scenario.function=__import__('os').system('touch pwned')"], "is not allowed"),
        (["scenario.function=x.__class__"], "attribute access"),
        (["scenario.function=(lambda: x)()"], "is not allowed"),
        (["scenario.function=[x for x in y]"], "comprehension"),
        (["scenario.function=x[0]"], "scenario.function: x[0]: 1 indices for shape ()"),
        (["scenario=linear", "scenario.in_features=0"], "scenario.in_features must be a positive integer"),
        (["scenario=linear", "scenario.batch=-1"], "scenario.batch must be a positive integer"),
        (["scenario=sigmoid", "scenario.inputs.x.linspace.num=0"], "linspace: num must be positive"),
        (["scenario.inputs.x.value=inf"], "not a finite number"),
        (["scenario.inputs.x.value=nan"], "not a finite number"),
        (["dtype=int32"], "integer type: GradientTape does not differentiate integer tensors"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_input_one_line_nonzero_no_traceback(cli: Cli, args: list[str], message: str) -> None:
    run = cli(*args)
    assert run.returncode != 0
    assert message in run.stderr + run.stdout
    assert "Traceback" not in run.stderr + run.stdout
    assert not (run.cwd / "pwned").exists()
    for run_dir in run.run_dirs():  # errors caught after composition still leave a record
        results = json.loads((run_dir / "results.json").read_text())
        assert results["status"] == "error" and message in results["message"]
        assert "\n" not in results["message"]
    errors = [line for line in (run.stderr + run.stdout).splitlines() if "[ERROR]" in line]
    assert len(errors) <= 1


def test_full_error_shows_the_traceback(cli: Cli) -> None:
    run = cli("scenario.function=sqrt(x", env={"HYDRA_FULL_ERROR": "1"})
    assert run.returncode != 0 and "Traceback" in run.stderr


def test_help_and_cfg_job_do_not_import_tensorflow(cli: Cli, tmp_path: Path) -> None:
    code = ("import sys, runner.cli.main as app\n"
            "sys.argv = ['tape-runner', *sys.argv[1:]]\n"
            "try:\n    app.main()\nexcept SystemExit:\n    pass\n"
            "print('TF-LOADED' if 'tensorflow' in sys.modules else 'TF-ABSENT')\n")
    import subprocess
    import sys

    for flag in (["--help"], ["--cfg", "job", "scenario=linear"], ["--info"], ["--version"]):
        done = subprocess.run([sys.executable, "-c", code, *flag], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert "TF-ABSENT" in done.stdout, flag
    version = subprocess.run([sys.executable, "-m", "runner", "--version"], capture_output=True, text=True,
                             timeout=60).stdout
    assert version.startswith("tape-runner 0.1.0 (Hydra 1.3.") and ", TensorFlow 2." in version  # pyproject
    help_text = subprocess.run([sys.executable, "-m", "runner", "--help"], capture_output=True,
                               text=True, timeout=60).stdout
    conf = Path(__file__).resolve().parent.parent / "conf"
    for group in ("scenario", "experiment"):
        for path in (conf / group).glob("*.yaml"):
            assert f"\n  {path.stem} " in help_text, f"--help does not list {group} {path.stem}"
    assert "The gradient of y = x**2 at x = 3." in help_text
    assert "tape-runner -m scenario=" in help_text
    assert "scenario=<name>          what to differentiate (listed above)" in help_text
    for option in ("tracking=none ", "objective=null ", "| ray ", "hydra/sweeper=optuna ",
                   "--config-dir <dir> "):
        assert f"\n  {option}" in help_text or f" {option}" in help_text, option
    # a user's own scenarios, from the directory --config-dir names (Hydra's two spellings)
    own = tmp_path / "mine" / "scenario"
    own.mkdir(parents=True)
    (own / "cube.yaml").write_text("name: cube\ndescription: The cube of x. Mine.\n")
    spellings = (["--config-dir", str(own.parent)], [f"--config-dir={own.parent}"], ["-cd", str(own.parent)])
    for flags in spellings:
        listed = subprocess.run([sys.executable, "-m", "runner", *flags, "--help"], capture_output=True,
                                text=True, timeout=60).stdout
        assert f"Your scenarios (--config-dir {own.parent}):\n  cube  The cube of x.\n" in listed, flags
