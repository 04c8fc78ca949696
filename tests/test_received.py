"""A results folder someone sent you, re-run: a generated corpus of hostile folders, each refused in one line.

Every folder starts as one a real run or sweep wrote (through the Python API, into ``tmp_path``), and
one field, file or link is made hostile: each key of the saved config set to an interpolation that
reads the environment or to a ``_target_``; Hydra's own settings (log handlers that append to a file,
output directories, callbacks); config-group choices that climb out of the search path; limits that
loosen; overrides Hydra's grammar reads as more than data; launcher values a shell would read; links,
FIFOs, directories and oversize files where Hydra's files belong; and jobs.json / results.json that
would make the reports read without bound. Each goes through ``tape-runner-report DIR --rerun`` (and,
for records, ``tape-runner-report DIR``) in this process, and must end with one line on stderr, exit
status 1, nothing spawned, nothing written or appended outside the folder, and the secret in the
environment nowhere. A few of them also go through the real CLI, as the attacks were first tried.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.cli import rebuild, rerun

SECRET = "s3cr3t-token-of-the-user"
TOUCHED = "PWNED"  # what a hostile folder tries to write or append outside itself
Mutation = Callable[[Path], None]


@dataclass
class Case:
    name: str
    kind: str  # "run" (re-run a run), "sweep" (resume a sweep) or "records" (rebuild its reports)
    mutate: Mutation
    why: str  # a fragment of the one line that refuses it


# ------------------------------------------------------------ the folders, as a run and a sweep write them


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A run folder and a sweep folder (one job's results lost, so there is something to resume)."""
    from runner.api import run, sweep

    root = tmp_path_factory.mktemp("originals")
    run("basic", overrides=["plots=false"], output_dir=root / "run")
    sweep("basic", overrides=["scenario.inputs.x.value=1,2", "plots=false"], output_dir=root / "sweep")
    (job,) = (root / "sweep").glob("1_*")
    (job / "results.json").unlink()
    (root / "sweep" / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {
        "hydra": ["hydra.mode=MULTIRUN"], "task": ["scenario.inputs.x.value=1,2", "plots=false"]}}}))
    return {"run": root / "run", "sweep": root / "sweep"}


def _yaml(path: Path, change: Callable[[Any], Any]) -> None:
    path.write_text(yaml.safe_dump(change(yaml.safe_load(path.read_text())), sort_keys=False))


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[leaf] = value
    return data


def _leaves(data: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif prefix:
        yield prefix


def _config(change: Callable[[Any], Any]) -> Mutation:
    return lambda folder: _yaml(folder / ".hydra" / "config.yaml", change)


def _write(relative: str, text: str | bytes) -> Mutation:
    def mutate(folder: Path) -> None:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return mutate


def _link(relative: str, target: Callable[[Path], Path]) -> Mutation:
    def mutate(folder: Path) -> None:
        path = folder / relative
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                child.unlink()
            path.rmdir()
        else:
            path.unlink(missing_ok=True)
        path.symlink_to(target(folder))
    return mutate


def _outside(folder: Path) -> Path:
    return folder.parent / "outside"


def _overrides(*lines: Any) -> Mutation:
    return lambda folder: (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(lines)))


def _sweep_overrides(where: str, *lines: Any) -> Mutation:
    def change(saved: Any) -> Any:
        saved["hydra"]["overrides"][where] += list(lines)
        return saved
    return lambda folder: _yaml(folder / "multirun.yaml", change)


def _both(*mutations: Mutation) -> Mutation:
    def mutate(folder: Path) -> None:
        for mutation in mutations:
            mutation(folder)
    return mutate


def _fifo(relative: str) -> Mutation:
    def mutate(folder: Path) -> None:
        (folder / relative).unlink()
        os.mkfifo(folder / relative)
    return mutate


# ------------------------------------------------------------------ the corpus

HYDRA_BLOCKS = {  # what a config.yaml's hydra: block did before it was refused, and more of its kind
    "job_logging_file_handler": {"job_logging": {"version": 1, "formatters": {"x": {
        "format": f"touch {TOUCHED}  # %(message)s"}}, "handlers": {"f": {
            "class": "logging.FileHandler", "formatter": "x", "filename": "../outside/bashrc"}},
        "root": {"handlers": ["f"], "level": "INFO"}}},
    "run_dir": {"run": {"dir": "/tmp/tape-runner-received-outside"}},
    "callbacks": {"callbacks": {"x": {"_target_": "subprocess.call", "args": ["touch", TOUCHED]}}},
    "searchpath": {"searchpath": ["file:///"]},
    "output_subdir": {"output_subdir": "../../outside"},
    "env_set": {"job": {"env_set": {"PATH": "/tmp"}}},
    "launcher": {"launcher": {"_target_": "os.system"}},
}

SNAPSHOT_OVERRIDES = [  # one hostile line in .hydra/overrides.yaml each
    ("hydra.run.dir=/tmp/x", "sets Hydra's own settings"),
    ("hydra/job_logging=disabled", "sets Hydra's own settings"),
    ("+hydra.callbacks.x._target_=os.system", "_target_ key names Python"),
    ("experiment=../../evil", "is not a config name"),
    ("scenario=/etc/passwd", "is not a config name"),
    ("checks=../../../proc/self/cwd/evil", "is not a config name"),
    ("tracking=[mlflow,../evil]", "is not a config name"),
    ("scenario@_global_=basic", "places a config at a package"),
    ("scenario.description=${oc.env:SECRET_TOKEN}", "interpolation"),
    ("limits.time_s=0", "would loosen"),
    ("limits.memory_mb=100000000", "would loosen"),
    ("limits={memory_mb: 4096, time_s: 0}", "would loosen"),
    ("+limits.cpu=1", "unknown limit"),
    ("../../tmp=evil", "is not an override"),
    ("scenario.function=x;touch PWNED", "is not an override"),
    (["not", "a", "string"], "must be a string"),
    (42, "must be a string"),
]

SWEEP_TASK = [  # one hostile line added to multirun.yaml's task overrides each
    *[(f"{group}={value}", "search path lists") for group in ("experiment", "scenario", "checks", "tracking")
      for value in ("../" * 16 + "proc/self/cwd/evil", "/etc/passwd", "no_such_config")],
    ("hydra.run.dir=/tmp/x", "sets Hydra's own settings"),
    ("hydra/launcher=joblib", "sets Hydra's own settings"),
    ("x@pkg=y", "places a config at a package"),
    ("scenario.description=${oc.env:SECRET_TOKEN,none}", "interpolation"),
    ("scenario.inputs.x.value=${oc.env:SECRET_TOKEN}", "interpolation"),
    ("+a._target_=os.system", "_target_ key names Python"),
    ("limits.time_s=0", "would loosen"),
    ("limits.time_s=10,0", "would loosen"),
    ("limits.memory_mb=range(4000,5000,500)", "would loosen"),
    ("scenario=glob(../*)", "the glob matches no scenario config"),
    ("schema/scenario=../../x", "search path lists"),
    ("../../tmp/x=y", "is not an override"),
]

SWEEP_HYDRA = [  # one hostile line added to multirun.yaml's Hydra overrides each
    *[(f"hydra/launcher={value}", "search path lists")
      for value in ("../../../../evil", "/etc/passwd", "no_such_launcher", "[joblib,../x]")],
    ("hydra.launcher.comment=x;touch PWNED", "is not an override"),
    ("hydra.launcher.partition='a b; touch PWNED'", "is not a value"),
    ("hydra.launcher.comment='$(touch PWNED)'", "is not a value"),
    ("hydra.launcher.name=${oc.env:SECRET_TOKEN}", "interpolation"),
    ("hydra.mode=EVIL", "is not a value"),
    ("hydra.sweeper.max_batch_size=-1", "is not a value"),
    ("hydra.sweeper.params.scenario=../../evil", "search path lists"),
    ("hydra.sweeper.params.limits.time_s=0", "would loosen"),
    ("hydra.sweeper.params.x=${oc.env:SECRET_TOKEN}", "interpolation"),
]


def _config_cases(saved: dict[str, Any]) -> list[Case]:
    cases = []
    for leaf in _leaves(saved):  # every field of config.yaml, hostile two ways
        cases.append(Case(f"config:{leaf}=interpolation", "run",
                          _config(lambda c, k=leaf: _set(c, k, f"${{oc.env:SECRET_TOKEN,{TOUCHED}}}")),
                          "interpolation"))
        cases.append(Case(f"config:{leaf}=_target_", "run",
                          _config(lambda c, k=leaf: _set(c, k, {"_target_": "os.system", "_args_": [
                              f"touch {TOUCHED}"]})), "_target_ key names Python"))
    for name, block in HYDRA_BLOCKS.items():
        cases.append(Case(f"config:hydra.{name}", "run", _config(lambda c, b=block: {**c, "hydra": b}),
                          "a 'hydra' key sets Hydra's own settings"))
        cases.append(Case(f"config:hydra.{name} without overrides.yaml", "run", _both(
            _config(lambda c, b=block: {**c, "hydra": b}),
            lambda folder: (folder / ".hydra" / "overrides.yaml").unlink()), "a 'hydra' key"))
    cases += [
        Case("config:defaults", "run", _config(lambda c: {"defaults": [{"hydra/job_logging": "evil"}], **c}),
             "a 'defaults' key"),
        Case("config:unknown top-level key", "run", _config(lambda c: {**c, "evil": 1}), "evil"),
        Case("config:a key as interpolation", "run", _config(lambda c: {**c, "${oc.env:HOME}": 1}),
             "interpolation"),
        Case("config:a non-string key", "run", _config(lambda c: {**c, 3: 1}), "is not a string"),
        Case("config:limits missing", "run", _config(lambda c: {k: v for k, v in c.items() if k != "limits"}),
             "limits.memory_mb: Structured config"),
        Case("config:a list", "run", _write(".hydra/config.yaml", "[1, 2]\n"), "expected the task's config"),
        Case("config:empty", "run", _write(".hydra/config.yaml", ""), "expected the task's config"),
        Case("config:a string", "run", _write(".hydra/config.yaml", "hello\n"), "expected the task's config"),
        Case("config:not YAML", "run", _write(".hydra/config.yaml", "a: [\n"), "not YAML"),
        Case("config:binary", "run", _write(".hydra/config.yaml", b"\x00\x01\x02\n\r\x1b[2J"), "not YAML"),
        Case("config:2 MiB", "run", _write(".hydra/config.yaml", "seed: 0\n" + "#" * 2**21),
             "above the limit"),
        Case("config:alias bomb", "run", _write(".hydra/config.yaml", _alias_bomb()), "more than 100,000"),
        Case("config:recursive alias", "run", _write(".hydra/config.yaml", "a: &a [*a]\n"), ""),
        Case("config:10,000 nested lists", "run", _write(".hydra/config.yaml", "a: " + "[" * 10_000), ""),
        Case("config:a link out", "run", _link(".hydra/config.yaml", lambda f: _outside(f) / "config.yaml"),
             "symbolic link"),
        Case("config:a directory", "run", _both(lambda f: (f / ".hydra" / "config.yaml").unlink(),
                                              lambda f: (f / ".hydra" / "config.yaml").mkdir()),
             "not a regular file"),
        Case("config:a FIFO", "run", _fifo(".hydra/config.yaml"), "not a regular file"),
        Case("config:seed a string", "run", _config(lambda c: _set(c, "seed", "abc")), "seed"),
        Case("config:scenario a list", "run", _config(lambda c: _set(c, "scenario", [1])), "scenario"),
        Case("config:routine unknown", "run", _config(lambda c: _set(c, "scenario.routine", "os")),
             "unknown routine"),
        Case("config:a former routine fed junk", "run", _config(lambda c: _set(c, "scenario", {
            "name": "h", "routine": "hessian", "inputs": {"x": 3}})), "not a config a run saved"),
    ]
    for name, value in (("memory_mb", 10**9), ("memory_mb", 0), ("memory_mb", -1), ("memory_mb", "x"),
                        ("memory_mb", 1e999), ("time_s", 0), ("time_s", 10**9), ("time_s", None),
                        ("time_s", -5), ("time_s", True)):
        cases.append(Case(f"config:limits.{name}={value}", "run",
                          _config(lambda c, n=name, v=value: _set(c, f"limits.{n}", v)),
                          "limits." if value is not None else "limits.time_s"))
    return cases


def _alias_bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    return "\n".join(lines) + "\n"


def _folder_cases() -> list[Case]:
    return [
        Case("snapshot:.hydra a link out", "run", _link(".hydra", lambda f: _outside(f) / "snapshot"),
             "symbolic link"),
        Case("snapshot:.hydra holds hydra/job_logging/evil.yaml", "run",
             _write(".hydra/hydra/job_logging/evil.yaml", "version: 1\n"), "it holds hydra"),
        Case("snapshot:.hydra holds experiment/evil.yaml", "run",
             _write(".hydra/experiment/evil.yaml", "# @package _global_\n"), "it holds experiment"),
        Case("snapshot:.hydra holds evil.py", "run", _write(".hydra/evil.py", "import os\n"),
             "it holds evil.py"),
        Case("snapshot:.hydra holds a second config", "run", _write(".hydra/default.yaml", "seed: 1\n"),
             "it holds default.yaml"),
        Case("snapshot:hydra.yaml a link out", "run",
             _link(".hydra/hydra.yaml", lambda f: _outside(f) / "config.yaml"), "symbolic link"),
        Case("snapshot:hydra.yaml a FIFO", "run", _fifo(".hydra/hydra.yaml"), "not a regular file"),
        Case("snapshot:hydra.yaml 2 MiB", "run", _write(".hydra/hydra.yaml", "#" * 2**21), "above the limit"),
        Case("snapshot:overrides.yaml a link out", "run",
             _link(".hydra/overrides.yaml", lambda f: _outside(f) / "config.yaml"), "symbolic link"),
        Case("snapshot:overrides.yaml a FIFO", "run", _fifo(".hydra/overrides.yaml"), "not a regular file"),
        Case("snapshot:overrides.yaml a mapping", "run", _write(".hydra/overrides.yaml", "a: 1\n"),
             "expected a list of overrides"),
        Case("snapshot:overrides.yaml alias bomb", "run", _write(".hydra/overrides.yaml", _alias_bomb()),
             "expected a list"),
        Case("snapshot:no config.yaml", "run", lambda f: (f / ".hydra" / "config.yaml").unlink(),
             "holds no config.yaml"),
    ]


def _record_cases() -> list[Case]:
    """Folders whose records or job list would make the reports read without bound, or read elsewhere."""
    def record(change: Callable[[dict[str, Any]], Any]) -> Mutation:
        def mutate(folder: Path) -> None:
            path = folder / "results.json"
            path.write_text(json.dumps(change(json.loads(path.read_text()))))
        return mutate

    return [
        Case("records:a gradient of 2,100,000 zeros", "records", _write(
            "results.json", '{"gradients": {"a": [' + ",".join(["0"] * 2_100_000) + "]}}"),
             "separated values"),
        Case("records:a listed array of 10,001", "records",
             record(lambda r: {**r, "gradients": {"a": [0.0] * 10_001}}), "lists 10,001 elements"),
        Case("records:65 MiB", "records", _write("results.json", " " * (65 * 2**20)), "above the limit"),
        Case("records:a link out", "records", _link("results.json", lambda f: _outside(f) / "results.json"),
             "symbolic link"),
        Case("records:a FIFO", "records", _fifo("results.json"), "not a regular file"),
        Case("records:a plot outside", "records", record(lambda r: {**r, "plots": ["/etc/passwd"]}),
             "the file name of a PNG"),
        Case("records:status fine", "records", record(lambda r: {**r, "status": "fine"}), "status"),
        Case("records:nested 100,000 deep", "records", _write("results.json", "[" * 100_000 + "]" * 100_000),
             "nested too deeply"),
    ]


def corpus(saved: dict[str, Any]) -> list[Case]:
    cases = _config_cases(saved) + _folder_cases() + _record_cases()
    cases += [Case(f"snapshot overrides:{line}", "run", _overrides(line), why)
              for line, why in SNAPSHOT_OVERRIDES]
    cases += [Case(f"sweep task:{line}", "sweep", _sweep_overrides("task", line), why)
              for line, why in SWEEP_TASK]
    cases += [Case(f"sweep hydra:{line}", "sweep", _sweep_overrides("hydra", line), why)
              for line, why in SWEEP_HYDRA]
    cases += [
        Case("sweep:multirun.yaml a link out", "sweep",
             _link("multirun.yaml", lambda f: _outside(f) / "m.yaml"), "symbolic link"),
        Case("sweep:multirun.yaml a FIFO", "sweep", _fifo("multirun.yaml"), "not a regular file"),
        Case("sweep:multirun.yaml 17 MiB", "sweep", _write("multirun.yaml", "#" * (17 * 2**20)),
             "above the limit"),
        Case("sweep:no overrides", "sweep", _write("multirun.yaml", "hydra: {}\n"),
             "cannot read the sweep's"),
        Case("sweep:overrides not strings", "sweep", _sweep_overrides("task", {"a": 1}), "must be strings"),
    ]
    return cases


def _saved_config() -> dict[str, Any]:
    from tests.conftest import saved_config

    return saved_config()


CORPUS = corpus(_saved_config())


def test_the_corpus_is_large_and_covers_every_field_of_the_saved_config() -> None:
    assert len(CORPUS) >= 200, len(CORPUS)
    names = {case.name for case in CORPUS}
    assert len(names) == len(CORPUS)
    for leaf in _leaves(_saved_config()):
        assert f"config:{leaf}=interpolation" in names and f"config:{leaf}=_target_" in names
    assert {case.kind for case in CORPUS} == {"run", "sweep", "records"}


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_a_hostile_folder_is_refused_in_one_line(
        case: Case, originals: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "bashrc").write_text("# the user's own\n")
    (outside / "config.yaml").write_text(yaml.safe_dump(_saved_config()))
    (outside / "results.json").write_text("{}")
    (outside / "snapshot").mkdir()
    folder = tmp_path / "received"
    shutil.copytree(originals["sweep" if case.kind == "sweep" else "run"], folder, symlinks=True)
    case.mutate(folder)
    before = _listing(outside)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("SECRET_TOKEN", SECRET)
    spawned: list[Any] = []
    monkeypatch.setattr(rerun.subprocess, "run", lambda *a, **k: spawned.append(a) or pytest.fail(
        f"{case.name}: the gate let it through to {a}"))

    started = time.monotonic()
    status = rebuild.main([str(folder)] if case.kind == "records" else [str(folder), "--rerun"])
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()

    assert status == 1 and not spawned
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("tape-runner-report: ") and case.why in lines[0], lines[0]
    assert _listing(outside) == before  # nothing written or appended outside the folder
    assert not list(work.iterdir())  # no outputs/: nothing was composed, let alone run
    assert not Path("/tmp/tape-runner-received-outside").exists()
    assert SECRET not in out + err
    assert elapsed < 10, elapsed  # a hang, not a benchmark: each is milliseconds (see SECURITY.md)


def _listing(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in sorted(directory.rglob("*"))}


# ------------------------------------------------------------------ the attacks, through the real CLI


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, "SECRET_TOKEN": SECRET,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cwd.mkdir(exist_ok=True)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("route", ["report", "config-path"])
def test_a_snapshot_without_overrides_yaml_cannot_append_to_a_file(
        originals: dict[str, Path], tmp_path: Path, route: str) -> None:
    import shutil

    folder = tmp_path / "received"
    shutil.copytree(originals["run"], folder)
    (folder / ".hydra" / "overrides.yaml").unlink()
    bashrc = tmp_path / "bashrc"
    bashrc.write_text("# the user's own\n")
    block = copy.deepcopy(HYDRA_BLOCKS["job_logging_file_handler"])
    block["job_logging"]["handlers"]["f"]["filename"] = str(bashrc)
    _config(lambda c: {**c, "hydra": block})(folder)
    args = (["tape-runner-report", str(folder), "--rerun"] if route == "report"
            else ["tape-runner", "--config-path", str(folder / ".hydra"), "--config-name", "config"])
    done = _cli(args, tmp_path / "cwd")
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "a 'hydra' key sets Hydra's own settings" in done.stderr
    assert bashrc.read_text() == "# the user's own\n" and not list((tmp_path / "cwd").iterdir())


@pytest.mark.slow
def test_a_resumed_sweep_cannot_load_yaml_through_dot_dot(originals: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "received"
    shutil.copytree(originals["sweep"], folder)
    bashrc = tmp_path / "bashrc"
    bashrc.write_text("# the user's own\n")
    (folder / "evil.yaml").write_text("# @package _global_\n" + yaml.safe_dump({"hydra": {
        "job_logging": {"handlers": {"f": {"class": "logging.FileHandler", "filename": str(bashrc)}}}}}))
    climb = "../" * 16 + str(folder).lstrip("/") + "/evil"
    _sweep_overrides("task", f"experiment={climb}")(folder)
    done = _cli(["tape-runner-report", str(folder), "--rerun"], tmp_path / "cwd")
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "is not a experiment config the search path lists" in done.stderr
    assert bashrc.read_text() == "# the user's own\n"


@pytest.mark.slow
def test_a_snapshot_reading_the_environment_is_refused_and_the_secret_goes_nowhere(
        originals: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "received"
    shutil.copytree(originals["run"], folder)
    _config(lambda c: _set(c, "scenario.description", "secret=${oc.env:SECRET_TOKEN,none}"))(folder)
    done = _cli(["tape-runner-report", str(folder), "--rerun"], tmp_path / "cwd")
    assert done.returncode == 1 and "interpolation" in done.stderr and SECRET not in done.stdout + done.stderr
    assert not list((tmp_path / "cwd").iterdir())
