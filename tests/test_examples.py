"""What a newcomer reads is what happens: conf/'s commented examples, the README's quoted output, hints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from runner.cli.hints import unknown_scenario_key
from runner.errors import ConfigError
from runner.language import expr
from tests.servers import slurm_ready
from tests.warm_cli import run_commands

ROOT = Path(__file__).resolve().parent.parent
ENV = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"},
       "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
#: A comment's command: ``#   tape-runner key=value ...`` or ``...then:   tape-runner ...``.
_COMMAND = re.compile(r"(?:^#\s*|:\s+)(tape-runner\s+[-+~\"'\w].*)$")


def conf_examples() -> list[tuple[str, str]]:
    """(file, command) for every example command commented in conf/, continuation lines joined."""
    found = []
    for path in sorted((ROOT / "conf").rglob("*.yaml")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if match := _COMMAND.search(line):
                command, more = match[1], number
                while command.rstrip().endswith("\\"):
                    more += 1
                    command += "\n" + lines[more].lstrip("#")
                found.append((str(path.relative_to(ROOT)), command))
    return found


def _bare(command: str) -> str:
    """A command without its trailing comment, as a page writes it."""
    return re.sub(r"\s+#.*$", "", command).strip()


def _bash(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``command`` as a user's shell runs it: quotes, comments and continuation lines included."""
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=900)


def test_the_examples_are_found() -> None:
    examples = conf_examples()
    assert len(examples) >= 40
    commands = [c for _, c in examples]
    assert "tape-runner experiment=seed_tour hydra/launcher=cluster" in commands
    assert any(c.startswith("tape-runner scenario=higher_order scenario.function='tanh(x)'")
               and "'+scenario.inputs.x.linspace={start: -3, stop: 3, num: 121}'" in c for c in commands)


#: Experiments whose every job other tests run and check (tests/test_program_cli.py: tf_guide;
#: tests/test_reports.py: full_tour), each job a ``scenario=<name>`` of the sweep's list.
TOURS = ("tf_guide", "full_tour")


def toured() -> set[str]:
    """The scenarios the tours run: a comment's plain ``tape-runner scenario=<name>`` is one of their jobs."""
    import yaml

    found: set[str] = set()
    for name in TOURS:
        params = yaml.safe_load((ROOT / "conf" / "experiment" / f"{name}.yaml").read_text())["hydra"]
        found |= {s.strip() for s in params["sweeper"]["params"]["scenario"].split(",")}
    return found


#: Examples another test runs and checks more closely: the test, by file and name. Sweeps that run there
#: as written, and those whose jobs are not all ok by design (TensorFlow's findings).
RUN_ELSEWHERE = {
    "tape-runner experiment=full_tour": "tests/test_reports.py::tour",
    "tape-runner experiment=tf_guide":
        "tests/test_program_cli.py::test_tf_guide_experiment_reproduces_the_guides_numbers",
    "tape-runner experiment=layer_grid":
        "tests/test_layers.py::test_layer_grid_summary_shows_each_combination_and_its_error_against_float64",
    "tape-runner experiment=watch_matrix": "tests/test_sweeps.py::test_watch_matrix_is_the_whole_table",
    # TensorFlow's findings fail three jobs: the test checks they are exactly those
    "tape-runner experiment=cross_examine": "tests/test_routes.py::test_the_cross_examination_of_the_shipped_"
                                            "programs",
    # the default campaign, in-process and with a gradient planted wrong (its programs 14 to 17 on three
    # launchers: tests/test_fuzzing.py; the whole command: make bench)
    "tape-runner -m experiment=fuzz": "tests/test_findings.py::test_the_default_campaign_finds_a_gradient_"
                                      "planted_wrong_and_shrinks_it_to_three_steps",
}


def test_examples_run_elsewhere_are_run_there() -> None:
    """Each test named runs the example's words (quoted as one argument each) and is where it says."""
    for command, where in RUN_ELSEWHERE.items():
        path, name = where.split("::")
        text = (ROOT / path).read_text()
        assert re.search(rf"^def {name}\(", text, re.M), where
        assert all(f'"{word}"' in text for word in command.split()[1:] if word != "-m"), (command, where)


@pytest.mark.slow
def test_every_commented_example_in_conf_runs_as_written(tmp_path: Path) -> None:
    examples = conf_examples()
    slurm = slurm_ready()
    if slurm and os.environ.get("CI"):
        pytest.fail(f"CI must run the Slurm example: {slurm}")
    # A plain `tape-runner scenario=<name>` is a job of a tour, which its own test runs and checks (every
    # check passed, its snippet rerun): run here only what no tour runs, each distinct command once.
    tours = toured()
    plain = {c: c.split("=", 1)[1] for _, c in examples if re.fullmatch(r"tape-runner scenario=[\w/]+", c)}
    assert len(plain) >= 40 and {f"guide/{p.stem}" for p in (ROOT / "conf" / "scenario" / "guide").glob(
        "*.yaml")} <= tours  # every guide scenario is a job of tf_guide
    # tests/test_doc_commands.py runs the pages' commands, and checks what each shows: not again here
    from tests.test_doc_commands import HERE

    distinct = list(dict.fromkeys(e for e in examples if plain.get(e[1]) not in tours
                                  and e[1] not in RUN_ELSEWHERE and _bare(e[1]) not in HERE))
    runnable = [(i, e) for i, e in enumerate(distinct) if not (slurm and "hydra/launcher=cluster" in e[1])]
    # each command line as bash splits it, through the real entry point, in a process of its own forked
    # from one that imported TensorFlow once (tests/warm_cli.py): 56 start-ups cost one
    runs = run_commands([(command, tmp_path / str(index)) for index, (_, command) in runnable], ENV)
    failures = []
    for (index, (where, command)), run in zip(runnable, runs, strict=True):
        records = [json.loads(p.read_text()) for p in (tmp_path / str(index)).glob("outputs/**/results.json")]
        statuses = {r["status"] for r in records}
        if run.returncode != 0 or not records or statuses != {"ok"}:
            failures.append(f"{where}: {command} -> exit {run.returncode}, {statuses}: {run.stderr[-400:]}")
    assert not failures, "\n".join(failures)
    if slurm:
        pytest.skip(f"ran {len(runnable)} of {len(distinct)} examples; "
                    f"hydra/launcher=cluster needs Slurm: {slurm}")


#: What a newcomer reads: the README's short tour and the documentation site's pages.
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def readme_transcripts() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each ``$ tape-runner ...`` line in the text blocks of the README
    and of docs/."""
    transcripts: list[tuple[str, list[str]]] = []
    blocks = [b for page in DOCS for b in re.findall(r"```text\n(.*?)```", page.read_text(), re.S)]
    for block in blocks:
        current: list[str] | None = None
        for line in block.splitlines():
            if line.startswith("$ "):
                current = []
                transcripts.append((line[2:], current))
            elif current is not None:
                current.append(line)
    return transcripts


@pytest.mark.slow
def test_the_readme_quotes_real_output_verbatim(tmp_path: Path) -> None:
    transcripts = readme_transcripts()
    assert len(transcripts) >= 5
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda item: _bash(item[1][0], tmp_path / str(item[0])), enumerate(transcripts)))
    for (command, expected), run in zip(transcripts, runs, strict=True):
        printed = (run.stdout + run.stderr).splitlines()
        refused = any("[ERROR]" in e or "[WARNING]" in e or e.startswith("tape-runner:") for e in expected)
        assert (run.returncode != 0) == refused, (command, run.returncode)
        assert "Traceback" not in run.stderr, command
        for line in expected:
            pattern = re.compile(".*".join(re.escape(part) for part in line.split("[...]")))
            assert any(pattern.fullmatch(p) for p in printed), f"{command}: {line!r} not in {printed}"
        # Nothing else of note: every error or warning printed is one the README quotes.
        noted = [p for p in printed if "[ERROR]" in p or "[WARNING]" in p or p.startswith("tape-runner:")]
        assert len(noted) == sum(1 for e in expected if "[ERROR]" in e or "[WARNING]" in e
                                 or e.startswith("tape-runner:")), (command, noted)


@pytest.mark.slow
def test_overriding_the_function_drops_the_closed_form_and_a_failed_check_says_by_how_much(
    tmp_path: Path,
) -> None:
    tanh = _bash("tape-runner scenario=sigmoid scenario.function='tanh(x)'", tmp_path / "tanh")
    assert tanh.returncode == 0, tanh.stderr
    (path,) = (tmp_path / "tanh").glob("outputs/*/*/results.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["message"] is None
    names = [c["name"] for c in record["checks"]]
    assert "dy/dx vs SymPy" in names and "dy/dx vs float64 central differences (every element)" in names
    assert not [n for n in names if "closed form" in n]
    assert record["notes"]["dy/dx"] == ("closed form sigmoid(x)*(1 - sigmoid(x)) not checked: it was written "
                                        "for sigmoid(x), not tanh(x); SymPy and finite differences check "
                                        "this function")
    x = np.linspace(-10, 10, 201)
    np.testing.assert_allclose(record["gradients"]["dy/dx"], 1 - np.tanh(x) ** 2, atol=1e-6)
    assert "not checked: it was written for sigmoid(x)" in (path.parent / "report.md").read_text()

    failed = _bash("tape-runner scenario.function='x**3' scenario.inputs.x.value=0.1 "
                   "checks.tolerances.float32.analytic.rtol=0 checks.tolerances.float32.analytic.atol=0",
                   tmp_path / "failed")
    assert failed.returncode == 2
    (path,) = (tmp_path / "failed").glob("outputs/*/*/results.json")
    record = json.loads(path.read_text())
    # float32's 0.1 is 0.100000001490116...; 3x**2 there is 0.0300000008940697 in float64,
    # which float32 rounds to 0.0300000011920929: an error of 2.98e-10 against SymPy.
    assert record["status"] == "check_failed"
    failure = ("dy/dx vs SymPy: worst element: got 0.030000001192092896, want 0.03000000089406968 "
               "(error 3e-10 > 0)")
    assert record["message"] == failure
    assert f"check failed: {failure}" in failed.stdout + failed.stderr
    report = (path.parent / "report.md").read_text()  # Markdown's escape keeps '>' from reading as HTML
    assert "Check failed: " + failure.replace(">", "\\>") in report
    page = (path.parent / "report.html").read_text()
    assert "Check failed: " + failure.replace(">", "&gt;") in page


@pytest.mark.parametrize(("args", "hint"), [
    (["scenario.fuction=x"], "scenario.fuction: unknown key; did you mean scenario.function?"),
    (["-m", "~scenario.closed_forms"], "scenario.closed_forms: unknown key; "  # one edit beats four
                                       "did you mean scenario.closed_form?"),
    (["scenario.closed_from=x"], "scenario.closed_from: unknown key; "  # two swapped letters: one edit
                                 "did you mean scenario.closed_form?"),
    (["scenario.inputs.x.valeu=3"], "scenario.inputs.x.valeu: unknown key; "
                                    "did you mean scenario.inputs.x.value?"),
    (["scenario.inputs.y.linspace.nmu=3"], "scenario.inputs.y.linspace.nmu: unknown key; "
                                           "did you mean scenario.inputs.y.linspace.num?"),
    (["scenario=linear", "scenario.btach=3"], "scenario.btach: unknown key; did you mean scenario.batch?"),
    (["scenario.wacth=[x2]"], "scenario.wacth: unknown key; did you mean scenario.watch?"),
])
def test_a_misspelt_scenario_key_names_the_keys_meant(args: list[str], hint: str) -> None:
    assert unknown_scenario_key(args) == hint


@pytest.mark.parametrize("args", [
    ["scenario.function=x**2", "scenario.inputs.x.value=3"],
    ["+scenario.fuction=x"],  # added on purpose: the schema answers once composed
    ["scenario.targets.anything=x", "scenario.inputs.new.value=1", "scenario.closed_form.x=1"],
    ["scenario.inputs.x.linspace={start: 0, stop: 1, num: 3}", "~scenario.inputs.x.linspace"],
    ["--config-path", "scenario.fuction", "dtype=float64"],  # a flag's value is no override
])
def test_valid_or_user_named_keys_pass(args: list[str]) -> None:
    assert unknown_scenario_key(args) is None


def test_a_caret_suggests_a_power() -> None:
    with pytest.raises(ConfigError, match=r"operator BitXor is not allowed in an expression; "
                                          r"for a power write \*\* \(x\*\*2\), not \^"):
        expr.parse("x^2", ["x"])


@pytest.mark.slow
def test_help_anywhere_on_the_command_line_is_the_runners(tmp_path: Path) -> None:
    for command in ("tape-runner scenario=linear --help", "tape-runner -m scenario=basic,watch -h"):
        run = _bash(command, tmp_path)
        assert run.returncode == 0, run.stderr
        assert run.stdout.startswith("tape-runner: run a GradientTape scenario"), command
        assert "schema/scenario" not in run.stdout and "== Config groups ==" not in run.stdout
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(("args", "hint"), [
    (["dtyp=float64"], "dtyp: unknown key; did you mean dtype?"),
    (["scenaro=linear"], "scenaro: unknown key; did you mean scenario?"),
    (["checks.projectons=3"], "checks.projectons: unknown key; did you mean checks.projections?"),
    (["limits.memory=5"], "limits.memory: unknown key; did you mean limits.memory_mb?"),
    (["scenario.batch=32"], "scenario.batch: scenario=basic (a program) has no key batch; linear has it, "
                            "e.g. scenario=linear"),
    (["scenario=guide/basic", "scenario.order=3"],
     "scenario.order: scenario=guide/basic (a program) has no key order; higher_order has it, "
     "e.g. scenario=higher_order"),
])
def test_a_misspelt_or_misplaced_key_outside_the_scenario_is_named(args: list[str], hint: str) -> None:
    from runner.cli.main import CONFIG_DIR

    assert unknown_scenario_key(args, CONFIG_DIR) == hint


@pytest.mark.parametrize("args", [
    ["scenario=linear", "scenario.batch=32"], ["-m", "scenario=basic,linear", "scenario.batch=8"],
    ["seed=3", "dtype=float64", "tracking=mlflow", "experiment=tf_guide"], ["hydra/launcher=joblib"],
    ["hydra.run.dir=/tmp/x"], ["scenario.inputs.x.value=4"],
    ["experiment=watch_matrix", "scenario.batch=4"],  # an experiment may choose the scenario: Hydra says
    ["--shell-completion", "query=bash"], ["-sc", "install=bash"],  # completion is never an override
    ["--config-dir", "my=confs", "scenario=mine"], ["--info", "config"],
])
def test_keys_that_exist_where_they_are_given_pass_untouched(args: list[str]) -> None:
    from runner.cli.main import CONFIG_DIR

    assert unknown_scenario_key(args, CONFIG_DIR) is None
