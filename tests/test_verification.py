"""The verification contract, end to end: what ``ok`` promises, what ``unverified`` and ``vacuous`` mean,
kinks, forward values, 16-bit precision, and summaries that recompute what a record claims."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.api import run, sweep
from runner.language import ops
from runner.outputs import summary
from tests.conftest import CliRun
from tests.planted import planted

BOTH_OFF = ["checks.analytic=false", "checks.finite_differences=false"]


def test_a_run_no_oracle_checked_is_unverified() -> None:
    result = run("basic", overrides=BOTH_OFF)
    assert result.status == "unverified" and not result.passed
    assert result.record["message"].startswith("no oracle checked dy/dx: ")
    assert result.gradients["dy/dx"] == 6.0  # computed, reported, not vouched for
    assert run("basic", overrides=BOTH_OFF[:1]).status == "ok"  # one oracle is enough
    assert run("basic", overrides=BOTH_OFF[1:]).status == "ok"


def test_a_sweep_counts_its_unverified_jobs(tmp_path: Path) -> None:
    result = sweep("basic", overrides=["checks.analytic=false,true", "checks.finite_differences=false"],
                   output_dir=tmp_path / "sweep")
    assert [row["status"] for row in result.table] == ["unverified", "ok"]
    assert result.status == "unverified"
    assert json.loads((tmp_path / "sweep" / "summary.json").read_text())["statuses"] == {
        "unverified": 1, "ok": 1}


@pytest.mark.slow
def test_the_cli_exits_3_when_unverified(cli: Callable[..., CliRun]) -> None:
    done = cli(*BOTH_OFF)
    assert done.returncode == 3, done.stderr
    assert done.results["status"] == "unverified"
    assert "unverified: no oracle checked dy/dx" in done.stdout + done.stderr


def test_a_summary_recomputes_a_records_status_from_its_checks(tmp_path: Path) -> None:
    check = {"name": "dy/dx vs SymPy", "passed": False, "max_abs_err": 0.1, "tol": 1e-6, "detail": "x"}
    record = {"status": "ok", "checks": [check], "gradients": {"dy/dx": 6.0}, "job": {"overrides": []}}
    job = tmp_path / "0_basic"
    job.mkdir()
    (job / "results.json").write_text(json.dumps(record))
    (row,) = summary.collect(tmp_path).rows
    assert row["status"] == "check_failed"
    assert row["message"] == "its record says ok, its checks say check_failed"
    assert summary.status_of({**record, "checks": []}) == "unverified"  # a gradient nothing checked
    assert summary.status_of({**record, "status": "error"}) == "error"  # an error's record says why


def test_a_kink_is_checked_against_the_sides_and_named() -> None:
    result = run("basic", overrides=["scenario.function=relu(x)", "scenario.inputs.x.value=0"])
    assert result.status == "ok" and result.gradients["dy/dx"] == 0.0
    note = result.record["notes"]["dy/dx"]
    assert note.startswith("a kink: the one-sided derivatives differ (0 and 1)")


def test_a_subgradient_outside_the_sides_still_fails() -> None:
    def beyond(op: Any, grad: Any) -> Any:  # relu's gradient at 0 made 1.5: outside [0, 1], its sides
        from runner.tfenv import tf

        return tf.where(tf.equal(op.outputs[0], 0.0), tf.ones_like(grad) * 1.5, grad)  # relu(x) = 0 there

    with planted("Relu", beyond):
        result = run("basic", overrides=["scenario.function=relu(x)", "scenario.inputs.x.value=0",
                                         "checks.analytic=false"])
    assert result.status == "check_failed"
    failed = [c for c in result.checks if not c.passed]
    assert [c.name for c in failed] == ["dy/dx vs float64 central differences (every element)"]
    assert failed[0].detail.startswith("a kink") and "(error 0.5 > " in failed[0].detail


def test_a_wrong_forward_op_fails_where_every_derivative_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorFlow computing atan where the language says tanh: at 0.1 their derivatives differ by 3.3e-5,
    inside a float64-difference tolerance of 1e-3; their values by 6.7e-7, past float64's forward one."""
    monkeypatch.setitem(ops.FUNCTIONS, "tanh", dataclasses.replace(ops.FUNCTIONS["tanh"], tensorflow="atan"))
    result = run("basic", overrides=["scenario.function=tanh(x)", "scenario.inputs.x.value=0.1",
                                     "dtype=float64", "checks.analytic=false",
                                     "checks.tolerances.float64.float64_differences.rtol=1e-3"])
    failed = [c.name for c in result.checks if not c.passed]
    assert failed == ["y vs float64 forward pass"]


def test_a_16_bit_gradient_is_held_to_its_precision_of_the_float64_rerun() -> None:
    result = run("sigmoid", overrides=["dtype=float16"])
    (check,) = [c for c in result.checks if "precision" in c.name]
    assert check.name == "dy/dx within float16's precision of the same job in float64" and check.passed

    def half_only(op: Any, grad: Any) -> Any:  # 3% off in float16 alone: the float64 rerun stays right
        from runner.tfenv import tf

        return grad * tf.cast(1.03, grad.dtype) if grad.dtype == tf.float16 else grad

    with planted("Sigmoid", half_only):
        result = run("sigmoid", overrides=["dtype=float16", *BOTH_OFF])
    assert result.status == "check_failed"  # not a report: a failure, with no oracle on at all
    assert [c.name for c in result.checks if not c.passed] == [
        "dy/dx within float16's precision of the same job in float64"]
