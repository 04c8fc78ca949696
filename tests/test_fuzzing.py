"""experiment=fuzz: seeded random programs, each a job cross-examined by every route
(runner/scenarios/fuzzing.py)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from runner.cli.main import CONFIG_DIR
from runner.errors import ConfigError
from runner.scenarios import fuzzing
from runner.scenarios.loading import load_run
from tests.warm_cli import run_commands


def _drawn(**options: object) -> dict:
    return fuzzing.program({"programs": 100, **options}, {})


def test_a_program_is_the_seed_and_index_alone() -> None:
    assert _drawn(seed=0, index=3) == _drawn(seed=0, index=3)
    drawn = [_drawn(seed=0, index=i) for i in range(20)]
    assert len({json.dumps(d, sort_keys=True) for d in drawn}) == 20
    assert _drawn(seed=1, index=3) != _drawn(seed=0, index=3)
    assert {d["derivative"] for d in drawn} == {"gradient", "hessian"}


def test_a_campaign_draws_only_the_ops_it_is_given() -> None:
    for index in range(30):
        steps = _drawn(index=index, ops=["sin", "*"], max_steps=6)["targets"]
        assert len(steps) <= 7  # six steps and the loss
        words = {w for text in steps.values() for w in re.findall(r"[a-z_]+(?=\()", text)}
        assert words <= {"sin", "reduce_sum"}, steps
        assert not re.search(r" [+-] ", " ".join(steps.values())), steps


def test_every_drawn_program_is_a_valid_program() -> None:
    """The language's own checks (names, shapes, dtypes) pass for every draw, before any TensorFlow."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for index in range(20):
            cfg = compose(config_name="config", overrides=["scenario=fuzz", f"fuzz.index={index}",
                                                           "fuzz.programs=20", "checks.modes=all"])
            run = load_run(OmegaConf.to_container(cfg, resolve=True))
            assert run.scenario.routine == "program" and run.scenario.name == f"fuzz_0_{index}"


@pytest.mark.parametrize(("options", "message"), [
    ({"ops": ["sin", "erf"]}, "fuzz.ops: 'erf': a campaign draws from sin, cos"),
    ({"ops": []}, "fuzz.ops: none given: a campaign draws from"),
    ({"max_steps": 0}, "fuzz.max_steps: 0 is not 1 to 32"),
    ({"index": 100}, "fuzz.index: 100 is not one of the campaign's 0 .. 99"),
])
def test_a_campaign_out_of_bounds_is_refused_in_one_line(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        _drawn(**options)


@pytest.mark.slow
def test_a_campaign_is_one_sweep_on_any_launcher(tmp_path: Path) -> None:
    """The same seed, the same programs, verdicts and findings through the basic launcher, joblib's and
    Ray's (a Ray of its own); each a process forked from one that imported TensorFlow (tests/warm_cli.py)."""
    campaign = "tape-runner -m experiment=fuzz 'fuzz.index=range(14,18)'"  # program 17 is a finding
    launchers = ["", " hydra/launcher=joblib hydra.launcher.n_jobs=2", " hydra/launcher=ray"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    runs = run_commands([(campaign + extra, tmp_path / str(i)) for i, extra in enumerate(launchers)], env)
    verdicts, found = [], []
    for index, done in enumerate(runs):
        assert done.returncode == 2, done.stderr[-2000:]  # program 17's check failed
        (summary,) = (tmp_path / str(index)).glob("outputs/multirun/*/*/summary.json")
        verdicts.append([(r["overrides"], r["status"]) for r in json.loads(summary.read_text())["rows"]])
        listed = json.loads((summary.parent / "findings" / "findings.json").read_text())
        found.append([(f["symptom"], f["ops"], f["jobs"], f["steps"]) for f in listed["findings"]])
    assert [status for _, status in verdicts[0]] == ["ok", "ok", "ok", "check_failed"]
    assert found[0] == [("[forward-over-forward, eager] raises", ["*"], ["3_fuzz"], 0)]
    assert verdicts[1] == verdicts[2] == verdicts[0] and found[1] == found[2] == found[0]
