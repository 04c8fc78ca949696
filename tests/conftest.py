"""Shared fixtures: configs composed with Hydra's compose API, and the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from runner.cli.main import CONFIG_DIR
from runner.scenarios.loading import load_run
from runner.scenarios.schema import RunConfig

SEED_SCENARIOS = ("basic", "watch", "sigmoid", "linear", "persistent")


@pytest.fixture
def compose_config() -> Iterator[Callable[..., Any]]:
    """compose_config("scenario=linear", ...) -> the composed DictConfig."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        yield lambda *overrides: compose(config_name="config", overrides=list(overrides))
    GlobalHydra.instance().clear()


def saved_config(*overrides: str) -> dict[str, Any]:
    """A run's ``.hydra/config.yaml`` as Hydra writes it (the task's config, no ``hydra`` key), composed
    in-process."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return yaml.safe_load(OmegaConf.to_yaml(cfg))


@pytest.fixture
def load(compose_config: Callable[..., Any]) -> Callable[..., RunConfig]:
    """load("scenario=linear", ...) -> the validated RunConfig a job would run."""
    return lambda *overrides: load_run(compose_config(*overrides))


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str
    cwd: Path

    def run_dirs(self) -> list[Path]:
        return sorted(p.parent for p in self.cwd.glob("outputs/**/results.json"))

    @property
    def results(self) -> dict[str, Any]:
        """results.json of the single run this invocation made."""
        (run_dir,) = self.run_dirs()
        return json.loads((run_dir / "results.json").read_text())

    def ok(self) -> dict[str, Any]:
        """results.json, after asserting the run exited 0 with status ok and every check passed."""
        assert self.returncode == 0, self.stderr
        results = self.results
        assert results["status"] == "ok"
        assert results["checks"] and all(c["passed"] for c in results["checks"])
        return results


def assert_passed(outcome: Any) -> Any:
    """An in-process Outcome that verified something and passed every check."""
    assert outcome.checks, "every run verifies something"
    assert outcome.passed, [c for c in outcome.checks if not c.passed]
    return outcome


SNIPPET_RUNNER = """
import contextlib, io, json, runpy, sys
for path in sys.argv[1:]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(path, run_name="__main__")
    print(json.dumps({"path": path, "gradients": json.loads(out.getvalue().splitlines()[-1])}))
"""


def assert_snippets_reproduce(run_dirs: list[Path]) -> None:
    """Run each run's snippet.py (one process for all) and compare what it prints with results.json."""
    paths = [str(d / "snippet.py") for d in run_dirs]
    for path in paths:
        assert "runner" not in Path(path).read_text().replace("tape-runner", ""), path
    done = subprocess.run([sys.executable, "-c", SNIPPET_RUNNER, *paths], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(paths)
    for line in lines:
        printed = json.loads(line)
        results = json.loads(Path(printed["path"]).with_name("results.json").read_text())
        assert printed["gradients"] == results["gradients"], printed["path"]


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., CliRun]:
    """cli("scenario=basic", ...) runs ``python -m runner`` in a fresh directory under tmp_path."""
    counter = iter(range(1_000))

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> CliRun:
        cwd = tmp_path / f"cli{next(counter)}"
        cwd.mkdir()
        full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
        full_env.update(env or {})
        done = subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, env=full_env,
                              capture_output=True, text=True, timeout=timeout)
        return CliRun(done.returncode, done.stdout, done.stderr, cwd)

    return run


def linear_loss_gradients(data: dict[str, Any]) -> dict[str, Any]:
    """dloss/dW and dloss/db of mean((x W + b - targets)**2), by central differences in float64.

    Derived independently of the routine's closed form: the loss is quadratic in W and b,
    so a central difference is exact up to rounding (about 1e-12 here), whatever the step.
    """
    import numpy as np

    params = {"W": data["W"], "b": data["b"]}

    def loss(values: dict[str, Any]) -> float:
        return float(np.mean((data["x"] @ values["W"] + values["b"] - data.get("targets", 0.0)) ** 2))

    grads = {}
    for name, value in params.items():
        grad = np.zeros_like(value)
        for index in np.ndindex(grad.shape):
            step = np.zeros_like(value)
            step[index] = 0.5
            grad[index] = loss({**params, name: value + step}) - loss({**params, name: value - step})
        grads[f"dloss/d{name}"] = grad
    return grads
