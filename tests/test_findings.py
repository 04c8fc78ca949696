"""A campaign's findings (runner/jobs/findings.py): read from the failing checks, shrunk, grouped, written
as a scenario that reruns and a plain-TensorFlow snippet, listed in findings.md and the summary."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runner import sweep
from runner.jobs import findings
from runner.jobs.findings import Symptom
from tests.planted import planted, scaled

ENV = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}


def test_a_symptom_is_the_first_route_that_raised_or_went_against_the_oracle() -> None:
    checks = [
        {"name": "dloss/dx0 vs SymPy", "passed": False, "max_abs_err": 0.5, "tol": 0.001, "detail": ""},
        {"name": "dloss/dx0 [forward, function] vs reverse, eager", "passed": False, "detail": "off"},
        {"name": "dloss/dx0 [forward, eager] vs float64 differences", "passed": True, "detail": ""},
        {"name": "dloss/dx0 [forward, function] vs float64 differences", "passed": False, "max_abs_err": 0.5,
         "tol": 0.001, "detail": ""},
    ]
    assert findings.symptom_of(checks) == (
        Symptom("forward", "function", raised=False),
        "dloss/dx0 [forward, function] vs float64 differences: max error 0.5 > tolerance 0.001")
    raised = {"name": "d2loss/dx0 [forward-over-forward, eager] ran", "passed": False,
              "detail": "TensorFlow raised ValueError: no"}
    assert findings.symptom_of([raised]) == (Symptom("forward-over-forward", "eager", raised=True),
                                             "d2loss/dx0 [forward-over-forward, eager] ran: TensorFlow "
                                             "raised ValueError: no")
    assert findings.symptom_of(checks[:3]) is None  # SymPy's and the run's own: no route against the oracle


def test_ops_are_the_steps_functions_and_operators() -> None:
    targets = {"s1": "sin(x0)", "s2": "s1 - x1", "s3": "atan(s2) * s1", "loss": "reduce_sum(s3 * s1)"}
    assert findings.ops_of(targets) == ("*", "-", "atan", "sin")


PROGRAM = {"dtype": "float32", "scenario": {
    "routine": "program", "name": "fuzz_0_1", "derivative": "gradient",
    "inputs": {"x0": {"value": [0.25, -1.04], "kind": "variable", "watch": False},
               "x1": {"value": [1.5, 0.5], "kind": "constant", "watch": True}},
    "targets": {"s1": "sin(x0)", "s2": "s1 * x1", "loss": "reduce_sum(s2 * s1)"},
    "gradients": {"loss": ["x0", "x1"]}}}


def test_shrinking_tries_the_boldest_simplification_first() -> None:
    candidates = [c["scenario"] | {"dtype": c.get("dtype")} for c in findings.smaller(PROGRAM)]
    targets = [c["targets"] for c in candidates]
    # s1 bypassed by its operand; then s2 by each of its operands
    assert targets[:3] == [{"s2": "x0 * x1", "loss": "reduce_sum(s2 * x0)"},
                           {"s1": "sin(x0)", "loss": "reduce_sum(s1 * s1)"},
                           {"s1": "sin(x0)", "loss": "reduce_sum(x1 * s1)"}]
    gradients = [c["gradients"]["loss"] for c in candidates[3:5]]
    assert gradients == [["x1"], ["x0"]]  # one source dropped, each in turn
    assert candidates[5]["inputs"]["x0"] == {"value": [0.25, -1.04], "kind": "constant", "watch": True}
    assert [c["inputs"]["x0"]["value"] for c in candidates[6:9]] == [0.25, [0.2, -1.0], [0.0, -1.0]]
    assert candidates[9]["dtype"] == "float64" and len(candidates) == 10


def test_a_derivative_that_is_not_finite_is_overflow_not_a_finding() -> None:
    symptom = Symptom("forward", "eager", raised=False)
    for value in (["NaN", 1.0], [[1.0], ["-Infinity"]]):  # as results.json writes them
        record = {"gradients": {"dloss/dx0": value}, "config": PROGRAM}
        assert findings.false_positive(record, symptom) == "overflow: a derivative is not finite"


def test_a_where_decided_next_to_its_boundary_is_a_kink_not_a_finding() -> None:
    scenario = {**PROGRAM["scenario"], "targets": {"s1": "sin(x0)", "s2": "where(s1 > 0, x0, s1)",
                                                   "loss": "reduce_sum(s2 * s1)"}}
    record = {"gradients": {"dloss/dx0": [1.0, 2.0]}, "values": {"s1": [0.004, -0.9]},
              "config": {**PROGRAM, "scenario": scenario}}
    assert findings.false_positive(record, Symptom("forward", "eager", raised=False)) == (
        "kink: where(s1 > 0, ...) is decided within 0.01 of its boundary")


@pytest.mark.slow
def test_a_campaign_writes_tensorflows_finding_as_its_smallest_program_that_reruns(tmp_path: Path) -> None:
    """Program 17 of seed 0: nested ForwardAccumulators over a tf.Variable raise in eager mode."""
    done = subprocess.run([sys.executable, "-m", "runner", "-m", "experiment=fuzz", "fuzz.index=16,17"],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-2000:]  # a check failed
    assert re.search(r"campaign: in 2 programs, run in \d+ s \(\d+ programs a minute\)", done.stdout)
    (sweep_dir,) = (p.parent for p in tmp_path.glob("outputs/multirun/*/*/summary.md"))
    listed = json.loads((sweep_dir / "findings" / "findings.json").read_text())
    assert [(f["symptom"], f["ops"], f["jobs"], f["steps"]) for f in listed["findings"]] == [
        ("[forward-over-forward, eager] raises", ["*"], ["1_fuzz"], 0)]
    assert "| 1 | \\[forward-over-forward, eager\\] raises | * | 0 | 1_fuzz |" in (
        sweep_dir / "findings.md").read_text()
    assert "# Findings" in (sweep_dir / "summary.md").read_text()

    folder = sweep_dir / "findings" / "1-forward-over-forward-eager"
    (path,) = (folder / "scenario").glob("*.yaml")
    text = path.read_text()
    program = yaml.safe_load(text)
    # the smallest program: x0 * x0 of one variable; its Hessian is 2
    assert program["scenario"]["targets"] == {"loss": "reduce_sum(x0 * x0)"}
    assert program["scenario"]["inputs"]["x0"]["kind"] == "variable"
    (command,) = re.findall(r"^#   (tape-runner .*)$", text, re.M)
    assert command == f"tape-runner --config-dir {folder.relative_to(tmp_path)} scenario={path.stem}"
    rerun = subprocess.run(["bash", "-c", command], cwd=tmp_path, env={
        **ENV, "PATH": f"{Path(sys.executable).parent}:{ENV['PATH']}"}, capture_output=True, text=True,
        timeout=300)
    assert rerun.returncode == 2, rerun.stderr[-2000:]
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob(f"outputs/*/*_{path.stem}/results.json")]
    assert record["status"] == "check_failed"
    assert [c["name"] for c in record["checks"] if not c["passed"]] == [
        "d2loss/dx02 [forward-over-forward, eager] ran"]

    printed = subprocess.run([sys.executable, str(folder / "snippet.py")], capture_output=True, text=True,
                             timeout=300)
    assert printed.returncode == 0 and printed.stderr == "", printed.stderr
    routes = json.loads(printed.stdout)
    assert routes.pop("d2loss/dx02 [forward-over-forward, eager]").startswith("raised ValueError: ")
    assert routes == {f"d2loss/dx02 [{route}, eager]": [[2.0]] for route in (
        "reverse-over-reverse", "forward-over-reverse", "reverse-over-forward")}
    assert "runner" not in (folder / "snippet.py").read_text().replace("runner/routines/routes.py", "")


@pytest.mark.slow
def test_the_default_campaign_finds_a_gradient_planted_wrong_and_shrinks_it_to_three_steps(
    tmp_path: Path,
) -> None:
    """Sin's gradient one percent off in TensorFlow's registry, for the default campaign (100 programs):
    the jobs that differentiate through Sin fail against float64 differences and SymPy, the others pass;
    each finding that reads Sin is at most three steps, and reruns to its symptom with the plant and
    passes without it. The one other finding is TensorFlow's own (forward-over-forward over a variable)."""
    with planted("Sin", scaled(1.01)):
        found = sweep("fuzz", overrides=["experiment=fuzz"], output_dir=tmp_path)
        listed = json.loads((tmp_path / "findings" / "findings.json").read_text())["findings"]
        folders = sorted((tmp_path / "findings").glob("*/scenario/*.yaml"), key=lambda p: int(
            p.parent.parent.name.split("-")[0]))
        shrunk = [yaml.safe_load(p.read_text()) for p in folders]
        planted_ones = [(f, c) for f, c in zip(listed, shrunk, strict=True) if "disagrees" in f["symptom"]]
        for finding, config in planted_ones:
            # Sin's gradient, or cos's second derivative (-sin's gradient is Sin's)
            assert {"sin", "cos"} & set(finding["ops"]) and finding["steps"] <= 3, finding
            assert findings.shows(_whole(config), _symptom(config)) is not None
    assert len(found) == 100 and planted_ones
    assert [f["symptom"] for f in listed if "disagrees" not in f["symptom"]] == [
        "[forward-over-forward, eager] raises"]
    for _, config in planted_ones:
        assert findings.shows(_whole(config), _symptom(config)) is None  # TensorFlow's own Sin: no finding
    for result in found.results:
        drawn = result.record["config"]["scenario"]  # the program the job drew
        reading = ("sin(", "cos(") if drawn["derivative"] == "hessian" else ("sin(",)
        failed = [c.name for c in result.checks if not c.passed]
        others = [name for name in failed if "[forward-over-forward, eager]" not in name]  # not TF's own bug
        if not any(op in str(text) for text in drawn["targets"].values() for op in reading):
            assert not others, others  # no Sin on any path
        else:  # (a sin whose step the loss never reads changes nothing)
            assert all("vs float64" in name or "vs SymPy" in name for name in others), others


def _symptom(config: dict) -> Symptom:
    return Symptom(config["checks"]["modes"][0], config["checks"]["executions"][0], raised=False)


def _whole(config: dict) -> dict:
    """A finding's scenario file composed as ``tape-runner --config-dir ... scenario=...`` would."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from runner.cli.main import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        base = OmegaConf.to_container(compose(config_name="config"), resolve=True)
    return {**base, **{k: v for k, v in config.items() if k != "checks"},
            "checks": {**base["checks"], **config["checks"]}}


@pytest.mark.slow
def test_structural_steps_find_forward_over_forward_through_where_failing_to_trace(tmp_path: Path) -> None:
    """Program 20 of the campaign with the structural steps: its Hessian by forward over forward through
    tf.where raises inside tf.function; shrunk to one step, whose every other route gives 2.0."""
    ops = "fuzz.ops=[sin,cos,tanh,+,*,matmul,reduce_mean,where]"
    done = subprocess.run([sys.executable, "-m", "runner", "-m", "experiment=fuzz", "fuzz.programs=30",
                           "fuzz.index=20", ops], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 2, done.stderr[-2000:]
    (listed,) = tmp_path.glob("outputs/multirun/*/*/findings/findings.json")
    (finding,) = json.loads(listed.read_text())["findings"]
    assert (finding["symptom"], finding["ops"], finding["steps"]) == (
        "[forward-over-forward, function] raises", ["*", "where"], 1)
    assert finding["message"].endswith("TensorFlow raised IndexError: list index out of range")
    (script,) = listed.parent.glob("*/snippet.py")
    printed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    routes = json.loads(printed.stdout)
    assert routes.pop("d2loss/dx02 [forward-over-forward, function]") == (
        "raised IndexError: list index out of range")
    assert set(map(str, routes.values())) == {"[[2.0]]"} and len(routes) == 7  # x0 * x0 either way: 2
