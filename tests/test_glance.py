"""The sweep summary a person reads: swept keys as short columns, constants once, gradients as they are."""

from __future__ import annotations

import json
from pathlib import Path

from runner.outputs import glance, summary

WHY = "x is a tf.constant and tape.watch(x) was not called"


def _job(sweep: Path, num: int, kind: str, watch: str, gradients: dict, notes: dict | None = None) -> None:
    job_dir = sweep / f"{num}_watch"
    job_dir.mkdir(parents=True)
    checks = [{"name": f"{label} vs SymPy", "passed": True, "max_abs_err": 0.0, "tol": 1e-6}
              for label, value in gradients.items() if value is not None]  # each reported one verified
    record = {"scenario": "watch", "status": "ok", "message": None, "checks": checks,
              "job": {"num": num, "overrides": [
                  f"scenario.inputs.x.kind={kind}", f"scenario.inputs.x.watch={watch}",
                  "scenario.watch_accessed_variables=true", "experiment=watch_matrix"]},
              "gradients": gradients, "notes": notes or {}}
    (job_dir / "results.json").write_text(json.dumps(record))


def test_the_table_reads_at_a_glance(tmp_path: Path) -> None:
    _job(tmp_path, 0, "constant", "false", {"dy/dx": None}, {"dy/dx": WHY})
    _job(tmp_path, 1, "variable", "false", {"dy/dx": 6.0})
    _job(tmp_path, 2, "variable", "true", {"dloss/dW": [[1.0, -2.0], [3.0, 4.5]]})
    _job(tmp_path, 3, "constant", "true",
         {"dy/dx": {"shape": [20000], "dtype": "float32", "listed": False, "min": 0.0, "max": 0.25,
                    "mean": 0.1}})
    summary.write(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    html = (tmp_path / "summary.html").read_text()

    # the overrides every job shares, once above the table; the swept ones as columns
    assert "Every job: scenario.watch_accessed_variables=true experiment=watch_matrix\n" in md
    assert md.count("experiment=watch_matrix") == 1 and md.count("watch_accessed_variables") == 1
    assert "| job | x.kind | x.watch | status | checks | message | report | dy/dx | dloss/dW |" in md
    assert "| 0 | constant | false | ok |  |  |  | None |  |" in md
    assert "| 1 | variable | false | ok | 1 passed |  |  | 6.0 |  |" in md
    # report.md escapes brackets (no text becomes a link): Markdown shows them as typed
    assert "| 2 | variable | true | ok | 1 passed |  |  |  | (2, 2) in \\[-2, 4.5\\] |" in md
    assert "| 3 | constant | true | ok | 1 passed |  |  | (20000,) in \\[0, 0.25\\] |  |" in md
    assert "null" not in md
    assert f'<td title="{WHY}">None</td>' in html

    rows = json.loads((tmp_path / "summary.json").read_text())["rows"]  # the data for tools keeps it all
    assert rows[0]["overrides"].split()[-1] == "experiment=watch_matrix"
    assert rows[0]["dy/dx"] is None and rows[1]["dy/dx"] == 6.0


def test_short_names_stay_unique() -> None:
    assert glance.short_names(["scenario.inputs.x.kind", "scenario.watch_accessed_variables", "seed"]) == {
        "scenario.inputs.x.kind": "x.kind", "scenario.watch_accessed_variables": "watch_accessed_variables",
        "seed": "seed"}
    # scenario.seed and seed would both be "seed": both keep their full names
    assert glance.short_names(["scenario.seed", "seed"]) == {"scenario.seed": "scenario.seed", "seed": "seed"}


def test_swept_values_are_marked_in_summary_png(tmp_path: Path) -> None:
    for num, x in enumerate((1.0, 2.0, 3.0)):
        job_dir = tmp_path / f"{num}_basic"
        job_dir.mkdir()
        (job_dir / "results.json").write_text(json.dumps({
            "status": "ok", "gradients": {"dy/dx": 2 * x}, "checks": [
                {"name": "dy/dx vs SymPy", "passed": True, "max_abs_err": 0.0, "tol": 1e-6}],
            "job": {"overrides": [f"scenario.inputs.x.value={x}"]}}))
    curve = summary._parameter_curve(summary.collect(tmp_path))
    assert curve is not None and curve.markers
    assert list(curve.x) == [1.0, 2.0, 3.0] and list(curve.series["dy/dx"]) == [2.0, 4.0, 6.0]


def test_a_sweep_over_several_scenarios_gets_a_table_each_and_every_column_explained(tmp_path: Path) -> None:
    for num, (scenario, gradients, plots) in enumerate([
            ("basic", {"dy/dx": 2.0000000000000004}, []),
            ("watch", {"dy/dx1": 0.9999545812606812, "dy/dx0": None}, []),
            ("basic", {"dy/dx": -4.539786823443137e-05}, ["basic.png"])]):
        job_dir = tmp_path / f"{num}_{scenario}"
        job_dir.mkdir()
        checks = [{"name": f"{k} vs float64 central differences (every element)", "passed": True,
                   "max_abs_err": 1.5e-7, "tol": 1e-5} for k, v in gradients.items() if v is not None]
        (job_dir / "results.json").write_text(json.dumps({
            "scenario": scenario, "status": "ok", "message": None, "checks": checks, "plots": plots,
            "job": {"num": num, "overrides": [f"scenario={scenario}"]}, "gradients": gradients}))
        (job_dir / "report.html").write_text("<html></html>")
    summary.write(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    basic = md[md.index("## Jobs: basic (2)"):md.index("## Jobs: watch (1)")]
    watch = md[md.index("## Jobs: watch (1)"):md.index("## Columns")]
    assert "| job | status | checks | vs float64 | message | report | plot | dy/dx |" in basic
    assert "| 0 | ok | 1 passed | 1.5e-07 |  | [report](0_basic/report.html) |  | 2.0 |" in basic
    assert "| 2 | ok | 1 passed | 1.5e-07 |  | [report](2_basic/report.html) | " \
           "[basic.png](2_basic/basic.png) | -4.539787e-05 |" in basic
    assert "dy/dx1" not in basic and "| dy/dx1 | dy/dx0 |" in watch and "| 0.9999546 | None |" in watch
    legend = md[md.index("## Columns"):]
    assert "vs float64: the largest absolute error of a gradient against float64 central" in legend
    assert "plot: the job's first plot" in legend and "seven significant digits" in legend
    rows = json.loads((tmp_path / "summary.json").read_text())["rows"]
    assert rows[0]["dy/dx"] == 2.0000000000000004  # every digit, for tools
