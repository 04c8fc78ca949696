"""Configs saved before runner/ was layered still load, run and give the same numbers.

``tests/data/previous_layout/<scenario>/`` holds what a run of every shipped scenario
(``experiment=full_tour`` and ``experiment=tf_guide``) saved with the single-package
layout (commit c58a7d9): its ``.hydra/config.yaml`` as written, and the status and
gradients of its ``results.json``. Those numbers come from the code before the move, not
from the code under test; each config is loaded and run again here and must give them
bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from runner.outputs.files import jsonable
from runner.result import judge
from runner.routines import run_routine
from runner.scenarios.loading import load_run

SAVED = Path(__file__).parent / "data" / "previous_layout"
JOBS = sorted(p.name for p in SAVED.iterdir())


def test_every_shipped_scenario_was_saved() -> None:
    conf = Path(__file__).resolve().parents[1] / "conf" / "scenario"
    loaded = [OmegaConf.load(p) for p in conf.rglob("*.yaml")]
    shipped = {c.scenario.name if "scenario" in c else c.name for c in loaded}  # @package _global_: nested
    saved = {OmegaConf.load(SAVED / job / "config.yaml").scenario.name for job in JOBS}
    assert len(JOBS) == 49 and saved <= shipped  # scenarios shipped since have no previous-layout run


@pytest.mark.slow
@pytest.mark.parametrize("job", JOBS)
def test_a_config_saved_by_the_previous_layout_gives_the_same_numbers(job: str) -> None:
    expected = json.loads((SAVED / job / "expected.json").read_text())
    run = load_run(OmegaConf.load(SAVED / job / "config.yaml"))
    outcome = run_routine(run)
    got = json.loads(json.dumps(jsonable(outcome.gradients)))  # as results.json holds them
    assert got == expected["gradients"]
    labels = [label for label, value in outcome.gradients.items() if value is not None]
    status = judge((c.passed for c in outcome.checks), labels, (c.name for c in outcome.checks))
    assert status == expected["status"] == "ok"
