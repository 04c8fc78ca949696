"""Every command the README and the docs site show is run by a test, as written, with the output it shows.

The commands are read from the pages' ``sh`` and ``python`` blocks, so a page cannot gain a command no test
runs: each one is run here (with what it prints or computes checked), or is a commented example of conf/
(tests/test_examples.py runs those), a quoted transcript (same file), or is listed in ``ELSEWHERE`` with the
test that runs it and what that test adds (a cluster's address, a port of its own, a second seed).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.test_examples import DOCS, ENV, ROOT, _bare, _bash, conf_examples, readme_transcripts
from tests.warm_cli import run_commands


def doc_commands() -> list[tuple[str, str]]:
    """(page, command) for each command of the pages' ``sh`` blocks: comments dropped, continuation lines
    kept, and a block that writes a file with a here-document taken whole, as one script."""
    found: list[tuple[str, str]] = []
    for page in DOCS:
        for block in re.findall(r"```sh\n(.*?)```", page.read_text(), re.S):
            if "<<" in block:
                found.append((page.name, block.strip()))
                continue
            command = ""
            for line in block.splitlines():
                if line.lstrip().startswith("#"):  # a comment line of its own
                    continue
                if line.rstrip().endswith("\\"):  # continued on the next line
                    command += line + "\n"
                    continue
                found.append((page.name, _bare(command + line)))
                command = ""
    return found


def _results(cwd: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(cwd.glob("outputs/**/results.json"))]


def _one(cwd: Path) -> dict[str, Any]:
    (record,) = _results(cwd)
    assert record["status"] == "ok" and all(c["passed"] for c in record["checks"]), record["message"]
    return record


def _close(got: Any, want: Any) -> bool:
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(_close, got, want))
    return got is None if want is None else math.isclose(got, want, rel_tol=1e-6)


def gradients(**want: Any) -> Callable[[subprocess.CompletedProcess[str], Path], None]:
    """The single run's gradients, written out by hand (``dy_dx`` for ``dy/dx``)."""

    def check(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
        got = _one(cwd)["gradients"]
        for label, value in want.items():
            assert _close(got[label.replace("_", "/")], value), (label, got)

    return check


def ok(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
    """Every run the command made is ok, every check passed."""
    records = _results(cwd)
    assert records and all(r["status"] == "ok" and all(c["passed"] for c in r["checks"]) for r in records)


_CONSOLE = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]\[(INFO|WARNING|ERROR)\] - ")


def swept(*dy_dx: float) -> Callable[[subprocess.CompletedProcess[str], Path], None]:
    def check(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
        (summary,) = cwd.glob("outputs/multirun/*/*/summary.json")
        rows = json.loads(summary.read_text())["rows"]
        assert [r["status"] for r in rows] == ["ok"] * len(dy_dx)
        assert [r["dy/dx"] for r in rows] == list(dy_dx)
        assert (summary.parent / "summary.md").is_file()
        # the sweep's own lines and its jobs' in one format: time, level, message
        printed = (done.stdout + done.stderr).splitlines()
        assert len(printed) >= 2 * len(dy_dx) and all(_CONSOLE.match(line) for line in printed), printed

    return check


def printed(*texts: str, runs: int = 0) -> Callable[[subprocess.CompletedProcess[str], Path], None]:
    """What the command prints, and how many runs it makes (0: it only prints)."""

    def check(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
        for text in texts:
            assert text in done.stdout, (text, done.stdout[:2000])
        assert len(_results(cwd)) == runs

    return check


def third_derivative_is_six_everywhere(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
    record = _one(cwd)
    (third,) = [v for k, v in record["gradients"].items() if k.startswith("d3")]
    assert len(third) == 121 and all(math.isclose(v, 6.0, rel_tol=1e-6) for v in third)  # (x**3)''' = 6


def both_losses(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
    (summary,) = cwd.glob("outputs/multirun/*/*/summary.json")
    rows = json.loads(summary.read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    losses = ("reduce_mean(y**2)", "reduce_sum(maximum(y, 0)**2)")
    assert [r["overrides"] for r in rows] == [f"scenario=program scenario.targets.loss='{y}'" for y in losses]
    # y = x @ w + b is positive (dloss/db = 2y), so the sum of its squares has twice the mean's gradients
    jobs = sorted(summary.parent.glob("*/results.json"))
    mean, total = (json.loads(path.read_text())["gradients"] for path in jobs)
    assert total["dloss/db"] == pytest.approx([2 * g for g in mean["dloss/db"]], rel=1e-6)
    assert min(mean["dloss/db"]) > 0


#: Commands run here, each with what it shows. Values by hand: d(x*y + sin x)/dx = y + cos x at (3, 2);
#: w = z + y = x**4 + x**2 has dw/dx = 4x**3 + 2x = 114 at 3; F = [x*y, sin x + y**2] has dF/dx = [y, cos x]
#: and dF/dy = [x, 2y] at (1, 2); sigmoid'(0) = 1/4; d/dx where(x > 0, x**2, -x) = -1 at -0.5.
HERE: dict[str, Callable[[subprocess.CompletedProcess[str], Path], None]] = {
    "tape-runner scenario=watch":
        gradients(dy_dx=None),
    "tape-runner scenario=watch scenario.inputs.x.watch=true":
        gradients(dy_dx=6.0),
    "tape-runner scenario.function='x*y + sin(x)' +scenario.inputs.y.value=2 dtype=float64":
        gradients(df_dx=2 + math.cos(3), df_dy=3.0),  # y is an input: the function is f
    "tape-runner -m scenario=basic scenario.inputs.x.value='range(-3,4)'":
        swept(-6, -4, -2, 0, 2, 4, 6),
    "tape-runner --cfg job scenario=linear":
        printed("scenario:\n  name: linear\n", "routine: linear"),
    "tape-runner --help":
        printed("Scenarios (scenario=<name>):", "Experiments (experiment=<name>):", "  tracking=none ",
                "| cluster | ray "),
    "tape-runner scenario=program 'scenario.targets.loss=reduce_sum(where(y > 0, y, 0.1 * y)**2)'":
        ok,
    "tape-runner 'scenario.function=where(x > 0, x**2, -x)' scenario.inputs.x.value=-0.5":
        gradients(dy_dx=-1.0),
    "tape-runner -m scenario=program"
    " 'scenario.targets.loss=reduce_mean(y**2),reduce_sum(maximum(y, 0)**2)'":
        both_losses,
    "tape-runner scenario=persistent \"+scenario.targets.w='z + y'\" '+scenario.gradients.w=[x]'":
        gradients(dy_dx=6.0, dz_dx=108.0, dw_dx=114.0),
    "tape-runner scenario=jacobian '~scenario.inputs.z' \"scenario.targets.F='stack([x*y, sin(x) + y**2])'\""
    " \\\n    'scenario.gradients.F=[x, y]'":
        gradients(dF_dx=[2.0, math.cos(1)], dF_dy=[1.0, 4.0]),
    "tape-runner scenario=sigmoid '~scenario.inputs.x.linspace' +scenario.inputs.x.value=0":
        gradients(dy_dx=0.25),
    "tape-runner scenario=higher_order scenario.inputs.x.value=null scenario.order=3 \\\n"
    "    '+scenario.inputs.x.linspace={start: -3, stop: 3, num: 121}'":
        third_derivative_is_six_everywhere,
}

#: The docs/programs.md here-document: a scenario of the user's own, d(sum x**3)/dx = 3x**2 at [1, 2].
OWN_SCENARIO = gradients(dy_dx=[3.0, 12.0])

_LAUNCHERS = "tests/test_sweeps.py::test_the_pages_launcher_commands_give_the_basic_launchers_summary"
_TRACKED = "tests/test_tracking.py::tracked (as written), read by"
_RAY = "tests/test_ray.py::test_the_pages_commands_join_the_cluster_as_written"

#: Commands another test runs, and what that test adds to the page's command or puts for its placeholder.
ELSEWHERE: dict[str, str] = {
    "make run": "tests/test_install.py::test_make_run_installs_the_runtime_alone_and_make_test_every_extra "
                "(make -n: the runtime alone, then the seed tour); .ci/run installs through the same rule",
    "make test": ".ci/run: CI's command is make test itself",
    "make test-fast": "the same pytest command as make test, without the slow marker",
    "make lint": "tests/test_layout.py::test_the_checkout_is_ruff_clean and lint-imports in make test",
    "make docs": "tests/test_docs.py::test_the_site_builds_strictly (mkdocs build --strict)",
    "make bench": "tests/test_bench.py::test_the_benchmark_reports_the_warm_api_rows_against_the_hand_"
                  "written_cell (one repetition of two of its groups)",
    "make notebook": "tests/test_notebook.py::test_the_notebook_runs_in_a_kernel_and_prints_the_seed_"
                     "gradients (the same notebook, cell by cell in a real kernel)",
    "tape-runner experiment=seed_tour hydra/launcher=joblib hydra.launcher.n_jobs=2":
        f"{_LAUNCHERS} (as written)",
    "tape-runner experiment=seed_tour hydra/launcher=submitit_local": f"{_LAUNCHERS} (as written)",
    "tape-runner experiment=seed_tour hydra/launcher=submitit_slurm": f"{_LAUNCHERS} (as written; .ci/run's "
                                                                      "Slurm)",
    "tape-runner experiment=seed_tour hydra/launcher=ray":
        "tests/test_examples.py::test_every_commented_example_in_conf_runs_as_written (as written in "
        "conf/hydra/launcher/ray.yaml)",
    "ray start --head --port=6379": "tests/test_ray.py::ray_cluster (on a free port, with flags that keep it "
                                    "on 127.0.0.1; token authentication on)",
    "tape-runner experiment=seed_tour hydra/launcher=ray hydra.launcher.ray.init.address=auto":
        f"{_RAY} (as written)",
    "tape-runner experiment=seed_tour hydra/launcher=ray hydra.launcher.ray.init.address=<head>:6379 \\\n"
    "    hydra.sweep.dir=/shared/outputs/my-sweep": f"{_RAY} (the test cluster's address for <head>:6379, "
                                                   "a directory under tmp_path for /shared/outputs/my-sweep)",
    "tape-runner experiment=seed_tour tracking=tensorboard":
        f"{_TRACKED} test_tensorboard_serves_the_sweep_as_hparams_scalars_and_images",
    "tensorboard --logdir outputs/multirun/<date>/<time>/tensorboard":
        "tests/test_tracking.py::test_tensorboard_serves_the_sweep_as_hparams_scalars_and_images (that "
        "sweep's directory, on 127.0.0.1 and a free port)",
    "tape-runner experiment=seed_tour tracking=mlflow":
        f"{_TRACKED} test_mlflow_has_one_run_per_job_in_the_default_store",
    "tape-runner experiment=seed_tour 'tracking=[tensorboard,mlflow]'":
        f"{_TRACKED} test_each_tracker_alone_writes_only_its_own_and_both_write_what_each_does",
    "MLFLOW_TRACKING_URI=http://127.0.0.1:5000 tape-runner experiment=seed_tour tracking=mlflow":
        "tests/test_tracking.py::test_mlflow_server_as_tracking_uri (a real mlflow server, on a free port "
        "for 5000)",
    "tape-runner -m hydra/sweeper=optuna scenario.function='sigmoid(x)'"
    " 'scenario.inputs.x.value=interval(-3,3)' \\\n"
    "    objective=dy/dx hydra.sweeper.direction=maximize hydra.sweeper.n_trials=20":
        "tests/test_searching.py::test_optuna_maximises_the_derivative_of_sigmoid",
}


def test_every_command_of_the_pages_is_run_by_a_test() -> None:
    commands = doc_commands()
    assert len(commands) >= 40
    conf = {command for _, command in conf_examples()}
    transcripts = {command for command, _ in readme_transcripts()}
    scripts = [c for _, c in commands if "<<" in c]
    assert len(scripts) == 1 and "tape-runner --config-dir ./my_scenarios scenario=mine" in scripts[0]
    run = set(HERE) | set(ELSEWHERE) | conf | transcripts | set(scripts) | set(_rerun_commands())
    unrun = [(page, c) for page, c in commands if c not in run]
    assert not unrun, unrun
    shown = {c for _, c in commands}
    assert not set(HERE) - shown and not set(ELSEWHERE) - shown  # no command of a page since removed
    named = [re.findall(r"(tests/\w+\.py)::(\w+)", where) for where in ELSEWHERE.values()]
    assert sum(map(len, named)) >= 15
    for path, name in (test for tests in named for test in tests):  # each test named is there
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), (path, name)


@pytest.mark.slow
def test_the_pages_commands_run_as_written(tmp_path: Path) -> None:
    script = next(c for _, c in doc_commands() if "<<" in c)
    runs = [*HERE.items(), (script, OWN_SCENARIO)]
    # each command a process of its own, forked from one that imported TensorFlow (tests/warm_cli.py;
    # tests/test_cli.py checks what a fresh process prints while TensorFlow loads); the script by bash
    done = [*run_commands([(command, tmp_path / str(i)) for i, command in enumerate(HERE)], ENV),
            _bash(script, tmp_path / str(len(HERE)))]
    for index, ((command, check), run) in enumerate(zip(runs, done, strict=True)):
        assert run.returncode == 0, (command, run.stderr[-1000:])
        assert "Traceback" not in run.stderr, command
        check(run, tmp_path / str(index))


def _rerun_commands() -> list[str]:
    """docs/reports.md's commands, which name a run as ``outputs/<date>/<run>``."""
    return [c for page, c in doc_commands() if page == "reports.md"]


@pytest.mark.slow
def test_a_run_reruns_and_its_snippet_prints_its_numbers_alone(tmp_path: Path) -> None:
    """docs/reports.md's three ways to run a run again, ``<date>/<run>`` being what ``tape-runner`` made."""
    assert _bash("tape-runner", tmp_path).returncode == 0
    (first,) = [p.relative_to(tmp_path) for p in tmp_path.glob("outputs/*/*")]
    commands = _rerun_commands()
    assert len(commands) == 3
    for command in commands:
        done = _bash(command.replace("<date>/<run>", "/".join(first.parts[1:])), tmp_path)
        assert done.returncode == 0, (command, done.stderr)
        if command.startswith("python"):  # plain TensorFlow: its numbers, and nothing on stderr
            assert json.loads(done.stdout) == {"dy/dx": 6.0}
            assert done.stderr == "", done.stderr  # not TensorFlow's CUDA probes either
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("outputs/*/*/results.json"))]
    assert len(records) == 3 and {r["status"] for r in records} == {"ok"}
    assert [r["gradients"] for r in records] == [{"dy/dx": 6.0}] * 3


def _python_blocks(page: Path) -> list[str]:
    """The page's Python blocks, each as code (a block indented in a list item dedented)."""
    return [textwrap.dedent(code) for code in re.findall(r"^ *```python\n(.*?)^ *```", page.read_text(),
                                                         re.S | re.M)]


@pytest.mark.slow
def test_the_readmes_python_gives_the_values_it_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each line of the README's Python block runs in turn; a line whose comment is a Python value
    evaluates to that value."""
    (block,) = _python_blocks(ROOT / "README.md")
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {}
    shown = 0
    for line in block.splitlines():
        code, _, comment = line.partition("#")
        try:
            want = eval(comment.strip(), {})
        except SyntaxError:
            exec(code, scope)
            continue
        assert eval(code, scope) == want, line
        shown += 1
    assert shown == 2


def test_the_findings_on_the_checks_page_reproduce_in_plain_tensorflow(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/checks.md's reproducers of what the cross-examination and the fuzzer found print what the
    page says."""
    blocks = _python_blocks(ROOT / "docs" / "checks.md")
    assert len(blocks) == 3
    for block in blocks:
        exec(block, {})
        printed = capsys.readouterr().out
        shown = [line.split("# ")[1].removesuffix(" ...") for line in block.splitlines() if "print(" in line]
        assert shown and all(want in printed for want in shown), (printed, shown)


@pytest.mark.slow
def test_the_python_pages_code_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = _python_blocks(ROOT / "docs" / "python.md")
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {}
    exec(block, scope)
    r, s = scope["r"], scope["s"]
    assert r.status == "ok" and r.passed and r.gradients["dy/dx"].shape == (501,)
    assert len(s) == 14 and s.passed and s.sweep_dir is None  # range(-3,4) in two dtypes
    assert [row["dy/dx"] for row in s.table] == [2.0 * x for x in range(-3, 4) for _dtype in (32, 64)]
    assert list(tmp_path.glob("outputs/mine/**/results.json"))

