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


def test_the_default_campaigns_programs_are_drawn_as_they_were() -> None:
    """Program 17 of seed 0, as the README's finding names it: ops that a campaign may add on request
    (fuzz.ops' structural steps) change no program of the default campaign."""
    assert _drawn(index=17) == {
        "routine": "program", "name": "fuzz_0_17",
        "description": "Program 17 of the campaign seeded 0 (runner/scenarios/fuzzing.py): rerun it with the "
                       "same fuzz.seed and fuzz.index.",
        "inputs": {"x0": {"value": [-0.399, 0.09, -0.194], "kind": "variable", "watch": False}},
        "targets": {"s1": "sin(x0)", "s2": "softplus(s1)", "loss": "reduce_sum(s2 * x0)"},
        "gradients": {"loss": ["x0"]}, "derivative": "hessian"}


def test_structural_steps_are_drawn_when_asked_and_are_valid_programs() -> None:
    ops = [*fuzzing.FUNCTIONS, *fuzzing.OPERATORS, *fuzzing.STRUCTURAL]
    seen = set()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for index in range(30):
            cfg = compose(config_name="config", overrides=[
                "scenario=fuzz", f"fuzz.index={index}", f"fuzz.ops=[{','.join(ops)}]", "checks.modes=all"])
            run = load_run(OmegaConf.to_container(cfg, resolve=True))  # names, shapes: the language's checks
            text = " ".join(run.scenario.targets.values())
            marks = {"where": "where(", "reduce_mean": "reduce_mean(", "matmul": " @ "}
            seen |= {op for op, mark in marks.items() if mark in text}
    assert seen == {"where", "reduce_mean", "matmul"}


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
