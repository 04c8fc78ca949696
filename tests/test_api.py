"""The Python API: the CLI's configs, validation, numbers and files, from a notebook or a script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf, open_dict

import runner.routines
from runner import ConfigError, JobError, run, sweep
from runner.api import composing
from tests.test_cli import BAD_INPUTS

#: Fields of results.json that describe the machine or the moment, not the computation.
CIRCUMSTANCES = {"timings", "environment", "job", "rerun_command"}


@pytest.fixture
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_import_runner_loads_neither_hydra_nor_tensorflow() -> None:
    code = ("import sys, runner; from runner import ConfigError; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'hydra', 'sympy'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_run_in_memory(empty_cwd: Path) -> None:
    r = run("basic", overrides=["scenario.inputs.x.value=4"])
    assert (r.status, r.passed, r.gradients) == ("ok", True, {"dy/dx": 8.0})
    assert {c.name for c in r.checks} >= {
        "dy/dx vs SymPy", "dy/dx vs float64 central differences (every element)"}
    assert all(c.passed for c in r.checks)
    record = r.to_dict()
    assert record["gradients"] == {"dy/dx": 8.0} and record["status"] == "ok"
    assert record["command"] == "tape-runner scenario=basic scenario.inputs.x.value=4"
    assert json.loads(json.dumps(record)) == record  # what results.json would hold: plain JSON
    assert list(empty_cwd.iterdir()) == []  # nothing touched the disk


def test_the_figure_and_the_report_inline(empty_cwd: Path) -> None:
    from matplotlib.figure import Figure

    r = run("sigmoid", overrides=["scenario.inputs.x.linspace.num=101"])
    assert r.passed
    assert max(r.gradients["dy/dx"]) == pytest.approx(0.25, abs=1e-6)  # the peak of sigmoid'
    (figure,) = r.figures
    assert isinstance(figure, Figure) and figure.axes[0].get_title() == "sigmoid(x) and its derivative"
    axes = figure.axes[0]
    assert axes.get_ylabel() == "y, dy/dx" and axes.get_xlabel() == "x"
    (peak,) = [t.get_text() for t in axes.texts]
    assert peak == "max 0.25 at x = 0"  # sigmoid' peaks at x = 0 with 1/4, one of 101 points from -10 to 10
    page = r._repr_html_()
    assert "<h1>sigmoid: ok</h1>" in page and page.count('src="data:image/png;base64,') == 1
    assert "<html" not in page  # a fragment for the notebook, not a document
    # a glance: the derivative with its checks, no environment, no snippet, and where the report is not
    assert "<tr><th>derivative</th><th>value</th><th>checks</th></tr>" in page
    assert ("<td>dy/dx</td><td>(101,) in [4.54e-05, 0.25]</td><td>✓ SymPy  ✓ float64 differences  "
            "✓ closed form sigmoid(x)*(1 - sigmoid(x))</td>") in page
    assert "Environment" not in page and "import tensorflow" not in page and "writes report.html" in page
    assert list(empty_cwd.iterdir()) == []
    written = run("sigmoid", overrides=["scenario.inputs.x.linspace.num=101"], output_dir="out")
    assert '<p><a href="out/report.html">report.html</a></p>' in written._repr_html_()


def test_expressions_are_quoted_as_on_the_command_line(empty_cwd: Path) -> None:
    r = run("basic", overrides=["scenario.function=x**3*cos(x)", "scenario.inputs.x.value=1.3"])
    # d/dx x^3 cos x = 3x^2 cos x - x^3 sin x, at 1.3, in float32
    assert r.gradients["dy/dx"] == pytest.approx(3 * 1.69 * 0.26749883 - 2.197 * 0.96355819, rel=1e-5)


def test_a_failed_check_is_a_status_not_an_exception_and_the_next_run_starts_clean(empty_cwd: Path) -> None:
    failing = run("basic", overrides=["scenario.function=sqrt(x)", "scenario.inputs.x.value=0"])
    assert (failing.status, failing.passed) == ("check_failed", False)
    assert failing.to_dict()["gradients"]["dy/dx"] == "Infinity"
    passing = run("basic")
    assert (passing.status, passing.gradients) == ("ok", {"dy/dx": 6.0})
    both = sweep("basic", overrides=["scenario.function=sqrt(x),x**2", "scenario.inputs.x.value=0"])
    assert [row["status"] for row in both.table] == ["check_failed", "ok"] and both.status == "check_failed"
    assert sweep("basic", overrides=["scenario.inputs.x.value=0,1"]).status == "ok"


def test_the_cli_in_process_twice_does_not_inherit_the_first_exit_status(
    empty_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.cli.main import main

    codes = []
    for args in (["scenario.function=sqrt(x)", "scenario.inputs.x.value=0"], [],
                 ["-m", "scenario.function=sqrt(x),x**2", "scenario.inputs.x.value=0"], ["-m", "seed=1,2"]):
        monkeypatch.setattr(sys, "argv", ["tape-runner", *args])
        with pytest.raises(SystemExit) as stopped:
            main()
        codes.append(stopped.value.code)
    assert codes == [2, 0, 2, 0]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_input_raises_config_error_with_the_clis_message(
    args: list[str], message: str, empty_cwd: Path
) -> None:
    name = next((a.split("=", 1)[1] for a in args if a.startswith("scenario=")), "basic")
    with pytest.raises(ConfigError) as raised:
        run(name, overrides=[a for a in args if not a.startswith("scenario=")])
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert not (empty_cwd / "pwned").exists() and list(empty_cwd.iterdir()) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: run("nope"), "Could not find 'scenario/nope' Available options in 'scenario': basic"),
        (lambda: run("watch_matrix"), "'watch_matrix' is an experiment, a sweep: run it with sweep("),
        (lambda: run("basic", overrides=["scenario.inputs.x.value=1,2"]),
         "scenario.inputs.x.value=1,2 gives several values: use sweep()"),
        (lambda: run("basic", overrides="seed=1"), "overrides is a list of strings"),
        (lambda: sweep("basic", overrides=["scenario.inputs.x.value=1,2", "scenario.foo=3"]),
         "scenario.foo: unknown key; the keys here are "),
        (lambda: run("basic", overrides=["scenario.fuction=x**3"]),  # the CLI's hint, not Hydra's
         "scenario.fuction: unknown key; did you mean scenario.function?"),
        (lambda: run("basic", overrides=["dtyp=float64"]), "dtyp: unknown key; did you mean dtype?"),
    ],
)
def test_api_misuse_is_a_config_error(call: Callable[[], Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        call()


def test_a_routine_that_raises_is_a_job_error_with_the_logged_line(
    empty_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(run: Any) -> None:
        raise RuntimeError("the tape caught fire\nsecond line")

    monkeypatch.setattr(runner.routines, "run_routine", explode)
    with pytest.raises(JobError, match=r"^RuntimeError: the tape caught fire$") as raised:
        run("basic")
    assert isinstance(raised.value.__cause__, RuntimeError)
    # In a sweep an error is a row, as in the CLI's summary; the other jobs still run.
    rows = sweep("basic", overrides=["seed=1,2"]).table
    fire = ("error", "RuntimeError: the tape caught fire")
    assert [(r["status"], r["message"]) for r in rows] == [fire, fire]


def test_warm_runs_compose_each_choice_of_configs_once(monkeypatch: pytest.MonkeyPatch) -> None:
    composer = composing.composer(())
    composed: list[list[str]] = []
    real = composer.loader.load_sweep_config
    monkeypatch.setattr(composer.loader, "load_sweep_config",
                        lambda master, overrides: composed.append(overrides) or real(master, overrides))
    for value in (1, 2, 3):
        assert run("hessian", overrides=[f"seed={value}", "scenario.damping=0.5"]).passed
    assert composed in ([["scenario=hessian"]], [])  # [] when an earlier test composed it already


@pytest.mark.parametrize("overrides", [
    ["scenario=linear", "scenario.batch=3", "dtype=float64", "checks.fd_max_elements=10"],
    ["scenario=basic", "+scenario.inputs.y.value=2", "scenario.function='x*y'", "seed=4"],
    ["scenario=watch", "experiment=watch_matrix", "scenario.inputs.x.kind=variable", "plots=false"],
])
def test_a_job_config_is_the_one_hydra_composes(
    compose_config: Callable[..., Any], overrides: list[str]
) -> None:
    hydras = compose_config(*overrides)
    full = composing.composer(()).job(list(overrides))  # sweeps and runs that write files
    quick, task_overrides = composing.composer(()).task(tuple(overrides))  # runs in memory
    assert list(task_overrides) == list(full.hydra.overrides.task) == overrides
    with open_dict(full):
        del full["hydra"]
    assert OmegaConf.to_container(full) == OmegaConf.to_container(quick) == OmegaConf.to_container(hydras)


def test_a_sweep_expands_as_dash_m_does(empty_cwd: Path) -> None:
    s = sweep("basic", overrides=["scenario.inputs.x.value=range(-2,3)", "dtype=float32,float64"])
    rows = list(s.table)
    assert [r["overrides"] for r in rows[:3]] == [
        "scenario=basic scenario.inputs.x.value=-2 dtype=float32",
        "scenario=basic scenario.inputs.x.value=-2 dtype=float64",
        "scenario=basic scenario.inputs.x.value=-1 dtype=float32"]
    assert [r["dy/dx"] for r in rows[::2]] == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len(s) == 10 and s.passed and [res.gradients["dy/dx"] for res in s][1] == -4.0
    assert s.table.columns[-1] == "dy/dx" and "<td>-4.0</td>" in s.table._repr_html_()
    matrix = sweep("watch_matrix")  # a named experiment: its params are the sweep
    assert [r["dy/dx"] for r in matrix.table] == [6.0, None, 6.0, 6.0, None, None, 6.0, 6.0]
    assert list(empty_cwd.iterdir()) == []


def test_a_sweeps_table_shows_an_array_gradient_by_shape_and_range(empty_cwd: Path) -> None:
    s = sweep("sigmoid", overrides=["scenario.inputs.x.linspace.num=11,21"])
    smallest = np.exp(-10) / (1 + np.exp(-10)) ** 2  # sigmoid' at the ends, +-10
    assert f"{smallest:.3g}" == "4.54e-05"
    assert [row["dy/dx"] for row in s.table] == ["(11,) in [4.54e-05, 0.25]", "(21,) in [4.54e-05, 0.25]"]
    assert s.results[1].gradients["dy/dx"].shape == (21,)  # the arrays themselves


@pytest.mark.slow
def test_numbers_and_files_equal_the_clis(cli: Callable[..., Any], tmp_path: Path) -> None:
    names = ["basic", "sigmoid", "linear", "persistent", "higher_order"]
    done = cli("-m", f"scenario={','.join(names)}", "seed=3")
    assert done.returncode == 0, done.stderr
    cli_dirs = done.run_dirs()
    assert [d.name for d in cli_dirs] == [f"{i}_{n}" for i, n in enumerate(names)]
    for name, cli_dir in zip(names, cli_dirs, strict=True):
        theirs = json.loads((cli_dir / "results.json").read_text())
        ours = run(name, overrides=["seed=3"]).to_dict()
        for key in theirs.keys() - CIRCUMSTANCES:  # gradients, checks, values, config ...: bit for bit
            assert ours[key] == theirs[key], (name, key)
        assert ours.keys() == theirs.keys()

    # output_dir: the files a CLI run writes, with the same record in results.json.
    out = tmp_path / "api_run"
    r = run("sigmoid", overrides=["seed=3"], output_dir=out)
    cli_dir = cli_dirs[1]
    assert _tree(out) == _tree(cli_dir)
    assert json.loads((out / "results.json").read_text()) == r.to_dict()
    snapshot_dir = out.resolve() / ".hydra"
    assert r.to_dict()["rerun_command"] == f"tape-runner --config-path {snapshot_dir} --config-name config"
    for snapshot in ("config.yaml", "overrides.yaml"):  # a rerun from either snapshot is the same run
        assert (out / ".hydra" / snapshot).read_text() == (cli_dir / ".hydra" / snapshot).read_text()
    assert "sigmoid: ok" in (out / "tape-runner.log").read_text()

    # The same message for bad input, word for word, as the CLI's one line.
    bad = "scenario.function=__import__('os').system('touch pwned')"
    refused = cli(bad)
    line = next(x for x in (refused.stdout + refused.stderr).splitlines() if "[ERROR]" in x)
    with pytest.raises(ConfigError) as raised:
        run("basic", overrides=[bad])
    assert line.endswith(f" - {raised.value}")


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_sweep_with_output_dir_writes_the_clis_sweep_files(tmp_path: Path) -> None:
    s = sweep("basic", overrides=["scenario.inputs.x.value=1,2", "plots=false"], output_dir=tmp_path / "sw")
    assert {p.name for p in (tmp_path / "sw").iterdir()} == {
        "0_basic", "1_basic", "jobs.json", "summary.csv", "summary.json", "summary.md", "summary.html",
        "summary.png"}
    summary = json.loads((tmp_path / "sw" / "summary.json").read_text())
    assert [row["dy/dx"] for row in summary["rows"]] == [2.0, 4.0] == [row["dy/dx"] for row in s.table]
    assert json.loads((tmp_path / "sw" / "1_basic" / "results.json").read_text())["job"]["num"] == 1
    assert os.path.exists(tmp_path / "sw" / "1_basic" / ".hydra" / "config.yaml")
    assert s.table._repr_html_().count('src="data:image/png;base64,') == 1  # summary.png, inline


@pytest.mark.parametrize("where", ["a_file", "a_file/below"])
def test_an_output_dir_that_cannot_be_a_directory_is_a_config_error(tmp_path: Path, where: str) -> None:
    (tmp_path / "a_file").write_text("not a directory")
    refusal = rf"cannot write outputs to {re.escape(str(tmp_path / where))}: "
    for call in (run, sweep):
        with pytest.raises(ConfigError, match=refusal):
            call("basic", output_dir=tmp_path / where)
    assert (tmp_path / "a_file").read_text() == "not a directory"


def test_the_report_rounds_errors_and_tolerances_and_names_every_column(empty_cwd: Path) -> None:
    from runner.outputs import report

    page = report.to_markdown(report.sections(run("basic").to_dict()))
    # float32's bounds at dy/dx = 6, by hand: 1e-6 + 1e-5 * 6 against SymPy; 1e-5 + 1e-3 * 6 against
    # float64 differences (conf/checks/default.yaml)
    assert "| dy/dx vs SymPy | yes | 0 | 6.1e-05 |" in page
    assert "| dy/dx vs float64 central differences (every element) | yes | " in page
    assert "| 0.00601 | worst element" in page and "0.0060100000" not in page
    assert "| y finite | yes | — | — |" in page
    assert "| name | value | note |" in page and "| what | value |" in page
    lines = page.splitlines()
    headers = [lines[i - 1] for i, line in enumerate(lines) if line.startswith("|---|")]
    assert len(headers) >= 6 and not [h for h in headers if "|  |" in h]  # every column is named
    assert "vs float64 central differences: (f(x + h) - f(x - h)) / 2h" in page  # the legend under Checks
