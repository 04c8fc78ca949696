"""A results folder someone sent you: tape-runner-report rebuilds it without trusting it."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from runner.cli import rebuild
from runner.outputs import report

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32  # the signature is all the report looks for
SECRET = "TOP-SECRET-CONTENT"


def _record(**fields: Any) -> dict[str, Any]:
    """A small, well-formed results.json, as a job writes it."""
    record: dict[str, Any] = {
        "scenario": "basic", "status": "ok", "message": None,
        "job": {"num": 0, "overrides": ["scenario=basic"]},
        "gradients": {"dy/dx": 6.0}, "inputs": {"x": 3.0}, "values": {"y": 9.0},
        "checks": [{"name": "dy/dx vs SymPy", "passed": True, "max_abs_err": 0.0, "tol": 1e-6, "detail": ""}],
        "notes": {}, "analytic": {"dy/dx": "2*x"}, "plots": [],
        "config": {"scenario": {"name": "basic", "function": "x**2", "description": "squares"}, "seed": 0},
        "environment": {"python": "3.11", "devices": ["CPU:0"], "git_commit": None, "packages": {}},
        "timings": {"total": 0.5}, "command": "tape-runner", "rerun_command": "", "snippet": "print(1)\n",
        "reference_error": {},
    }
    record.update(fields)
    return record


def _write_run(run_dir: Path, record: Any) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(record if isinstance(record, str) else json.dumps(record))
    return run_dir


def _sweep(root: Path, records: list[Any]) -> Path:
    sweep = root / "sweep"
    sweep.mkdir()
    (sweep / "jobs.json").write_text(json.dumps([[f"seed={n}"] for n in range(len(records))]))
    for num, record in enumerate(records):
        _write_run(sweep / f"{num}_basic", record)
    return sweep


def _secret(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(PNG + SECRET.encode())
    (outside / "notes.txt").write_text(SECRET)
    return outside


def _everything_written(directory: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in directory.rglob("*")
                     if p.is_file() and not p.is_symlink())


@pytest.mark.parametrize("plot", ["/etc/passwd", "../outside/notes.txt", "../outside/secret.png",
                                  "sub/../../outside/secret.png"])
def test_a_plot_path_out_of_the_folder_is_refused_and_never_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], plot: str) -> None:
    _secret(tmp_path)
    run_dir = _write_run(tmp_path / "run", _record(plots=[plot]))
    assert rebuild.main([str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "plots[0]" in err and "Traceback" not in err
    written = _everything_written(run_dir)
    assert SECRET not in written and "root:" not in written
    assert base64.b64encode(PNG).decode()[:8] not in written


def test_only_a_png_directly_in_the_folder_is_embedded(tmp_path: Path) -> None:
    outside = _secret(tmp_path)
    run_dir = _write_run(tmp_path / "run", _record(plots=["own.png", "link.png", "fake.png"]))
    (run_dir / "own.png").write_bytes(PNG)
    (run_dir / "link.png").symlink_to(outside / "secret.png")
    (run_dir / "fake.png").write_text(SECRET)  # not a PNG, whatever its name says
    assert rebuild.main([str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text()
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in page
    assert "(plot link.png is missing)" in page and "(plot fake.png is missing)" in page
    assert base64.b64encode(PNG + SECRET.encode()).decode() not in page
    # A report rendered from hand-made sections is held to the same rule.
    html = report.to_html([report.Section("t", [("img", "../outside/secret.png")])], run_dir, "t")
    assert "base64" not in html


def test_nothing_is_written_through_a_symbolic_link(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outside = _secret(tmp_path)
    sweep = _sweep(tmp_path, [_record()])
    elsewhere = _write_run(outside / "elsewhere", _record(snippet="import os  # from the link\n"))
    (sweep / "1_basic").symlink_to(elsewhere, target_is_directory=True)
    (sweep / "0_basic" / "report.md").symlink_to(outside / "notes.txt")
    assert rebuild.main([str(sweep)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("tape-runner-report: job 1_basic:")
    assert "symbolic link" in err[0]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["results.json"]
    assert (outside / "notes.txt").read_text() == SECRET
    assert not (sweep / "0_basic" / "report.md").is_symlink()
    assert (sweep / "0_basic" / "report.html").is_file()
    rows = json.loads((sweep / "summary.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok", "missing"] and "symbolic link" in rows[1]["message"]


BAD_RECORDS = [
    _record(gradients={"a": {}}),
    _record(checks=[{}]),
    _record(timings={"a": "x"}),
    [],
    _record(gradients={"a": [[1.0], [1.0, 2.0]]}),
    _record(plots="report.png"),
    _record(status="fine"),
    _record(environment={"git_commit": 5, "git_dirty": True}),
    _record(config={"scenario": {"targets": ["x"]}}),
    "{not json",
    "[" * 100_000 + "]" * 100_000,
]


def test_each_malformed_record_is_one_line_and_the_other_jobs_are_rebuilt(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = _sweep(tmp_path, [_record(), *BAD_RECORDS, _record()])
    assert rebuild.main([str(sweep)]) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == len(BAD_RECORDS), lines
    assert [line.split(":")[1].strip() for line in lines] == sorted(
        [f"job {n}_basic" for n in range(1, len(BAD_RECORDS) + 1)])
    assert "Traceback" not in captured.out + captured.err
    good = [sweep / "0_basic", sweep / f"{len(BAD_RECORDS) + 1}_basic"]
    assert all((d / "report.html").is_file() and (d / "report.md").is_file() for d in good)
    assert not any((sweep / f"{n}_basic" / "report.html").exists() for n in range(1, len(BAD_RECORDS) + 1))
    rows = json.loads((sweep / "summary.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok", *["missing"] * len(BAD_RECORDS), "ok"]
    assert all(r["message"].startswith("results.json refused: ") for r in rows[1:-1])


def test_a_malformed_record_in_a_run_folder_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _write_run(tmp_path / "run", {"gradients": {"a": {}}})
    assert rebuild.main([str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gradients.a.shape" in err


def test_report_md_shows_text_as_text(tmp_path: Path) -> None:
    hostile = "<script>alert(1)</script> ![t](http://evil.example/t.png) [x](javascript:x) <img src=x>"
    record = _record(scenario="<b>basic</b>", message="line one\n# heading\n<script>x</script>",
                     config={"scenario": {"description": hostile, "function": "x**2 <i>"}},
                     checks=[{"name": "<script>c</script>", "passed": True, "max_abs_err": 0.0, "tol": 0.0,
                              "detail": "a | b"}],
                     snippet="print('```')\n```\n<script>in code</script>\n")
    run_dir = _write_run(tmp_path / "run", record)
    assert rebuild.main([str(run_dir)]) == 0
    markdown = (run_dir / "report.md").read_text()
    fences = re.compile(r"^(`{3,})\n(.*?)\n\1$", re.MULTILINE | re.DOTALL)
    code = [body for _, body in fences.findall(markdown)]
    prose = fences.sub("", markdown)
    for raw in ("<script", "<img", "<b>", "<i>", "](http", "](javascript", "\n# heading"):
        assert not re.search(r"(?<!\\)" + re.escape(raw), prose), raw  # only escaped, if at all
    assert "\\<script\\>alert(1)\\</script\\>" in prose
    assert code[0] == "y = x**2 <i>" and code[-1] == record["snippet"].rstrip("\n")  # code stays verbatim


def test_an_override_value_with_spaces_is_one_parameter(tmp_path: Path) -> None:
    from runner.outputs import summary

    axis = [0.0, 1.0, 2.0]
    overrides = [["scenario.inputs.x.value=1", "scenario.function='x + 1'"],
                 ["scenario.inputs.x.value=2", "scenario.function='x + 2'"]]
    sweep = _sweep(tmp_path, [_record(job={"num": n, "overrides": o}, inputs={"x": axis},
                                      gradients={"dy/dx": [1.0, 1.0, 1.0]}) for n, o in enumerate(overrides)])
    written = summary.write(sweep)
    # Two parameters vary, so gradients cannot be drawn against either alone.
    assert json.loads((sweep / "summary.json").read_text())["varying"] is None
    assert written.plots == ["summary_curves.png"]
    assert written.parameters[1] == {"scenario.inputs.x.value": "2", "scenario.function": "'x + 2'"}
    curve = summary._family_curve(written)
    assert curve is not None and list(curve.series) == [" ".join(o) for o in overrides]


def test_a_job_that_failed_before_tensorflow_loaded_is_rebuilt(tmp_path: Path) -> None:
    record = _record(status="error", message="scenario.function: unknown function 'nope'", gradients={},
                     inputs={}, values={}, checks=[], analytic={}, snippet="",
                     environment={"python": "3.11", "devices": None, "git_commit": "abc", "git_dirty": True})
    run_dir = _write_run(tmp_path / "run", record)
    assert rebuild.main([str(run_dir)]) == 0
    assert "unknown function" in (run_dir / "report.md").read_text()


def test_the_summary_reads_no_job_list_or_overrides_through_a_link(tmp_path: Path) -> None:
    from runner.outputs import summary

    outside = _secret(tmp_path)
    (outside / "list.json").write_text(json.dumps([[f"{SECRET}=1"]]))
    (outside / "overrides.yaml").write_text(f"- {SECRET}=2\n")
    sweep = tmp_path / "sweep"
    (sweep / "0_basic" / ".hydra").mkdir(parents=True)
    (sweep / "0_basic" / ".hydra" / "overrides.yaml").symlink_to(outside / "overrides.yaml")
    (sweep / "1_basic").mkdir()
    (sweep / "1_basic" / ".hydra").symlink_to(outside, target_is_directory=True)
    (sweep / "jobs.json").symlink_to(outside / "list.json")
    summary.write(sweep)
    rows = json.loads((sweep / "summary.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["missing", "missing"]
    assert SECRET not in _everything_written(sweep)


def test_a_directory_name_claiming_job_one_million_is_one_row_not_a_million(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = _sweep(tmp_path, [_record(), _record()])
    (sweep / "1000000_x" / ".hydra").mkdir(parents=True)
    assert rebuild.main([str(sweep)]) == 0
    rows = json.loads((sweep / "summary.json").read_text())["rows"]
    assert [(r["job"], r["status"]) for r in rows] == [(0, "ok"), (1, "ok"), (1000000, "missing")]
    assert "3 jobs (2 ok, 1 missing)" in capsys.readouterr().out


def test_a_job_list_is_read_up_to_its_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runner.outputs import summary

    monkeypatch.setattr(summary, "MAX_JOBS", 3)
    sweep = _sweep(tmp_path, [_record()])
    (sweep / "jobs.json").write_text(json.dumps([[f"seed={n}"] for n in range(10)]))
    assert [r["job"] for r in summary.collect(sweep).rows] == [0, 1, 2]


@pytest.mark.parametrize(("record", "reason"), [
    # one gradient of 2,100,000 zeros: refused before it is parsed (4 MB; at 100 MB it cost 42 s and 916 MiB)
    ('{"gradients": {"a": [' + ",".join(["0"] * 2_100_000) + "]}}", "2,099,999 separated values"),
    (_record(gradients={"a": [0.0] * 10_001}),
     "gradients.a: lists 10,001 elements; a run lists at most 10,000"),
    (_record(inputs={"x": [[1.0] * 101] * 100}), "inputs.x: lists 10,100 elements"),
])
def test_a_record_bounds_the_values_it_makes_the_reports_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], record: Any, reason: str) -> None:
    run = _write_run(tmp_path / "run", record)
    assert rebuild.main([str(run)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert reason in line
    assert not (run / "report.md").exists()


@pytest.mark.parametrize("start", ["# basic: ok", "## ok", "- ok", "+ ok", "* ok", "1. ok", "2) ok", "    ok",
                                   "=== ok", "~~~ ok", "--- ok", "> ok"])
def test_a_field_cannot_start_a_heading_a_list_or_code_in_report_md(tmp_path: Path, start: str) -> None:
    record = _record(message=start, config={"scenario": {"description": start, "function": "x**2"}})
    run_dir = _write_run(tmp_path / "run", record)
    assert rebuild.main([str(run_dir)]) == 0
    markdown = (run_dir / "report.md").read_text()
    prose = re.sub(r"^(`{3,})\n.*?\n\1$", "", markdown, flags=re.MULTILINE | re.DOTALL).splitlines()
    # The title and the section headings are the report's; no line the record wrote opens a heading, a
    # list, a quote, a rule, a fence or indented code.
    assert [line for line in prose if line.startswith("#")] == [prose[0], *[
        line for line in prose if line.startswith("## ")]] and prose[0] == "# basic: ok"
    opens = re.compile(r"#|[-+*>] |\d+[.)] |\s{4}|===|~~~|---")
    assert not [line for line in prose[1:] if opens.match(line) and not line.startswith("## ")]
    assert sum("ok" in line for line in prose if not line.startswith(("#", "|", "Error: "))) == 1
