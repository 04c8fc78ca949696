"""The configs travel with the package: a built wheel, installed outside the checkout, runs from anywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from runner.cli.main import CONFIG_DIR

ROOT = Path(__file__).resolve().parent.parent


def test_the_editable_checkout_reads_conf_at_the_top_of_the_repository() -> None:
    # Edits to conf/ take effect at once: the package's configs are conf/ itself, not a copy.
    assert Path(CONFIG_DIR).resolve() == ROOT / "conf"
    assert (Path(CONFIG_DIR) / "scenario" / "basic.yaml").read_text() == (
        ROOT / "conf" / "scenario" / "basic.yaml").read_text()


def _copy_of_the_checkout(target: Path) -> Path:
    """The sources as a fresh clone has them (the conf link kept a link), without venvs or outputs."""
    anywhere = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache",
                                      ".ruff_cache", ".hypothesis", ".import_linter_cache")
    top = {"outputs", "multirun", "mutants"}  # the run directories; runner/outputs is a package

    def ignore(directory: str, names: list[str]) -> set[str]:
        return anywhere(directory, names) | (top & set(names) if Path(directory) == ROOT else set())

    shutil.copytree(ROOT, target, symlinks=True, ignore=ignore)
    return target


@pytest.mark.slow
def test_a_built_wheel_runs_installed_outside_the_checkout(tmp_path: Path) -> None:
    source = _copy_of_the_checkout(tmp_path / "source")
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("tape_runner-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"runner/conf/{p.relative_to(ROOT / 'conf')}" for p in (ROOT / "conf").rglob("*.yaml")}
    assert configs and configs <= shipped, sorted(configs - shipped)  # every YAML in conf/, unlisted

    # A venv of its own; the dependencies (TensorFlow...) are read from this one's site-packages
    # through a plain path entry, which does not run this checkout's editable-install hook.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                                "--no-deps", str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")},
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    where = subprocess.run([str(python), "-c", "import runner, runner.cli.main; print(runner.__file__);"
                            "print(runner.cli.main.CONFIG_DIR)"], cwd=work, env=env, capture_output=True,
                           text=True, check=True)
    package, config_dir = where.stdout.split()
    assert Path(package).is_relative_to(site) and Path(config_dir).is_relative_to(site)

    # One sweep through the installed console script: its configs, the template sweeper (a plugin
    # Hydra must discover in the installed package, or every job is missing), the summary.
    done = subprocess.run([str(venv / "bin" / "tape-runner"), "-m", "scenario.inputs.x.value=2,-1.5"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (summary,) = work.glob("outputs/multirun/*/*/summary.json")
    rows = json.loads(summary.read_text())["rows"]
    assert [(row["status"], row["dy/dx"]) for row in rows] == [("ok", 4.0), ("ok", -3.0)]
    help_text = subprocess.run([str(venv / "bin" / "tape-runner"), "--help"], cwd=work, env=env,
                               capture_output=True, text=True, check=True).stdout
    assert "higher_order" in help_text and "watch_matrix" in help_text


def test_make_run_installs_the_runtime_alone_and_make_test_every_extra(tmp_path: Path) -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"]).lower()
    for extra in ("ray", "mlflow", "optuna", "tensorboard", "playwright", "pytest", "nbclient"):
        assert extra not in runtime, f"{extra} is an extra, not the runtime"
    assert {"tensorboard", "mlflow", "optuna", "ray", "dev"} <= set(project["optional-dependencies"])
    # What make would do in a fresh clone (no .venv yet), without doing it.
    source = _copy_of_the_checkout(tmp_path / "clone")
    planned = {target: subprocess.run(["make", "-n", target], cwd=source, capture_output=True, text=True,
                                      timeout=60).stdout for target in ("run", "test")}
    installs = {t: [line for line in text.splitlines() if "pip install" in line and "-e" in line]
                for t, text in planned.items()}
    assert [line.split()[-1] for line in installs["run"]] == ["."]  # pip install --quiet -e .
    assert [line.split()[-1] for line in installs["test"]] == [".", "'.[dev]'"]
    assert "tape-runner experiment=seed_tour" in planned["run"]
