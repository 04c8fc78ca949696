"""A sweep's summary, gathered from the files its jobs left behind.

Every launcher (basic, joblib, submitit) leaves the same files, so the summary
reads only those: each job's ``results.json``, its ``.hydra/overrides.yaml`` and
the sweep's ``jobs.json`` (the job list, written when the sweep starts). A job
with a directory but no results, or with no directory at all, is listed as
``missing``. Rows keep the job order; a sweep with no job list (a sweeper such as
Optuna, which chooses each job from the results so far) lists its jobs in the order
they finished.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runner.outputs import glance, records, report
from runner.outputs.files import JOBS, RESULTS, write_atomic, write_json
from runner.outputs.plots import draw
from runner.result import Curve, judge

SUMMARY = "summary"  # summary.csv, .json, .md, .html
MAX_JOBS = 100_000  # jobs one summary lists; a longer jobs.json is read up to here
MAX_JOBS_BYTES = 64 * 2**20  # jobs.json: a few hundred bytes a job
MAX_OVERRIDES_BYTES = 2**20  # a job's .hydra/overrides.yaml: its command line
PLOT = "summary.png"
CURVES = "summary_curves.png"
FIXED_COLUMNS = ("job", "overrides", "status", "checks", "message", "report")


@dataclass
class Sweep:
    directory: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # gradient columns, first seen first (arrays as text)
    varying: str | None = None  # the one numeric parameter that varies, if there is one
    plots: list[str] = field(default_factory=list)
    records: dict[int, dict[str, Any]] = field(default_factory=dict)  # job -> its results.json
    parameters: dict[int, dict[str, str]] = field(default_factory=dict)  # job -> override key -> value

    @property
    def statuses(self) -> list[str]:
        return [row["status"] for row in self.rows]


def _overrides_of(job_dir: Path) -> list[str]:
    """A job's overrides from Hydra's snapshot, for jobs that left no results.json."""
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file() or job_dir.is_symlink():
        return []
    import yaml

    try:
        listed = yaml.safe_load(records.read_inside(path, MAX_OVERRIDES_BYTES))
    except (records.Rejected, yaml.YAMLError, RecursionError):
        return []
    return [o for o in listed if isinstance(o, str)] if isinstance(listed, list) else []


def _job_list(sweep_dir: Path) -> list[list[str]]:
    """The sweep's planned jobs from jobs.json, at most :data:`MAX_JOBS`; nothing when it is absent or is
    not a list of lists of overrides."""
    try:
        listed = json.loads(records.read_inside(sweep_dir / JOBS, MAX_JOBS_BYTES))
    except (records.Rejected, ValueError, RecursionError):
        return []
    if isinstance(listed, list) and all(isinstance(job, list) for job in listed[:MAX_JOBS]):
        return [[str(o) for o in job] for job in listed[:MAX_JOBS]]
    return []


def _job_dirs(sweep_dir: Path) -> dict[int, Path]:
    """Job number -> directory, for sub-directories named ``<num>_<scenario>`` that hold a job's files (at
    most :data:`MAX_JOBS` of them)."""
    found: dict[int, Path] = {}
    for child in sweep_dir.iterdir():
        head = child.name.split("_", 1)[0]
        if head.isdigit() and child.is_dir() and ((child / RESULTS).exists() or (child / ".hydra").exists()):
            found[int(head)] = child
            if len(found) >= MAX_JOBS:
                break
    return found


def _checks_text(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return ""
    failed = sum(not c["passed"] for c in checks)
    return f"{len(checks)} passed" if not failed else f"{failed} of {len(checks)} failed"


FLOAT64 = "vs float64"  # the column: a program's largest error against its float64 oracle, where it ran


def _float64_error(checks: list[dict[str, Any]]) -> float | None:
    """The largest error of a job's checks against float64 central differences (each element or
    projections), if any ran."""
    errors = [c["max_abs_err"] for c in checks
              if "vs float64 central differences" in c["name"] and c.get("max_abs_err") is not None]
    return max(errors) if errors else None


def _finished_at(job_dir: Path | None) -> float:
    """When the job wrote its results (jobs that did not finish sort last)."""
    try:
        return (job_dir / RESULTS).stat().st_mtime if job_dir is not None else math.inf
    except OSError:
        return math.inf


def collect(sweep_dir: Path) -> Sweep:
    """Read every job's record; list expected jobs that left none as missing."""
    sweep = Sweep(sweep_dir)
    expected = _job_list(sweep_dir)
    dirs = _job_dirs(sweep_dir)
    # The listed jobs and the jobs found, each a row; never a range up to the number a directory's
    # name claims (`1000000_x` is one directory, not a million missing jobs).
    for num in sorted(set(range(len(expected))) | set(dirs)):
        job_dir = dirs.get(num)
        overrides = expected[num] if num < len(expected) else []
        row: dict[str, Any] = {"job": num, "status": "missing", "checks": "", "message": "", "report": ""}
        results = None
        if job_dir is not None:
            try:
                results = records.read(job_dir)
                overrides = (results.get("job") or {}).get("overrides") or overrides
            except records.Rejected as err:
                linked = job_dir.is_symlink()
                overrides = overrides if linked else _overrides_of(job_dir) or overrides
                row["message"] = (f"{RESULTS} refused: {err}" if linked or os.path.lexists(job_dir / RESULTS)
                                  else "no results.json: the job did not finish")
        else:
            row["message"] = "no job directory: the job never started"
        row["overrides"] = " ".join(overrides)
        sweep.parameters[num] = _parameters(overrides)  # from the list: a value may hold spaces
        if results is not None:
            has_report = (job_dir / report.REPORT_HTML).is_file()
            link = f"{job_dir.name}/{report.REPORT_HTML}" if has_report else ""
            row = record_row(sweep, num, results, overrides, link)
        sweep.rows.append(row)
    if not expected:
        sweep.rows.sort(key=lambda row: _finished_at(dirs.get(row["job"])))
    sweep.varying = _varying_parameter(list(sweep.parameters.values()))
    return sweep


def record_row(
    sweep: Sweep, num: int, results: dict[str, Any], overrides: list[str], report_link: str
) -> dict[str, Any]:
    """Job ``num``'s row from its record (what results.json holds); its gradient labels join the sweep's."""
    sweep.records[num] = results
    sweep.parameters[num] = _parameters(overrides)
    status, message = status_of(results), results.get("message") or ""
    if status != results.get("status"):
        message = f"its record says {results.get('status')}, its checks say {status}" + (
            f"; {message}" if message else "")
    row: dict[str, Any] = {
        "job": num, "status": status,
        "checks": _checks_text(results.get("checks") or []), "message": message,
        "report": report_link, "overrides": " ".join(overrides)}
    if (error := _float64_error(results.get("checks") or [])) is not None:
        row[FLOAT64] = error
    for label, value in (results.get("gradients") or {}).items():
        if value is None or isinstance(value, int | float | str | list | dict):
            # an array (listed, or summarised in results.json) by its shape and range: (11,) in [0, 0.25]
            row[label] = glance.gradient_cell(results, label) if isinstance(value, list | dict) else value
            if label not in sweep.labels:
                sweep.labels.append(label)
    return row


def status_of(results: dict[str, Any]) -> str:
    """A record's status, recomputed from its own checks (an error stays an error: its record says why)."""
    if results.get("status") == "error":
        return "error"
    checks = results.get("checks") or []
    labels = [k for k, v in (results.get("gradients") or {}).items() if v is not None]
    return judge([c["passed"] for c in checks], labels, [c["name"] for c in checks])


def _parameters(overrides: list[str]) -> dict[str, str]:
    """Each override's key and value, split at its first '=' (values such as 'x + 1' kept whole)."""
    return dict(item.split("=", 1) for item in overrides if "=" in item)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _varying_keys(params: list[dict[str, str]]) -> list[str]:
    """Override keys whose values differ between jobs, in the order they first appear."""
    keys = dict.fromkeys(k for p in params for k in p)
    return [k for k in keys if len({p.get(k) for p in params}) > 1]


def _varying_parameter(params: list[dict[str, str]]) -> str | None:
    """The single override key whose value differs between jobs, if all its values are numbers."""
    varying = _varying_keys(params)
    if len(varying) != 1 or len(params) < 2:
        return None
    key = varying[0]
    return key if all(p.get(key) is not None and _number(p[key]) is not None for p in params) else None


def _numeric(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _parameter_curve(sweep: Sweep) -> Curve | None:
    """Each scalar gradient against the one numeric parameter that varies."""
    if sweep.varying is None or not sweep.labels:
        return None
    def at(row: dict[str, Any]) -> float | None:
        return _number(sweep.parameters[row["job"]][sweep.varying])

    rows = sorted(sweep.rows, key=lambda r: at(r) or 0.0)
    x = np.array([at(r) for r in rows])
    series = {label: np.array([_numeric(r.get(label)) for r in rows], dtype=np.float64)
              for label in sweep.labels}
    series = {label: values for label, values in series.items() if np.isfinite(values).any()}
    if not series:
        return None
    return Curve(PLOT, f"gradients against {sweep.varying}", sweep.varying, x, series, markers=True,
                 y_label="gradient")


def _family_curve(sweep: Sweep) -> Curve | None:
    """The jobs' derivative curves overlaid, when they share one linspace axis: a family of curves."""
    x, label, axis_name, series = None, None, "", {}
    varying = _varying_keys(list(sweep.parameters.values()))
    for row in sweep.rows:
        results = sweep.records.get(row["job"])
        if results is None or row["status"] != "ok":
            continue
        arrays = {k: v for k, v in (results.get("gradients") or {}).items() if isinstance(v, list)}
        axes = {k: v for k, v in (results.get("inputs") or {}).items() if isinstance(v, list)}
        if len(arrays) != 1 or len(axes) != 1:
            return None
        ((this_label, values),) = arrays.items()
        ((axis_name, axis),) = axes.items()
        if x is None:
            x, label = np.asarray(axis, dtype=np.float64), this_label
        elif this_label != label or not np.array_equal(x, axis):
            return None
        if x.ndim != 1 or np.shape(values) != x.shape:  # one curve per job, point for point
            return None
        params = sweep.parameters[row["job"]]
        name = " ".join(f"{k}={params[k]}" for k in varying if k in params) or f"job {row['job']}"
        series[name] = np.asarray(values, dtype=np.float64)
    if x is None or len(series) < 2:
        return None
    return Curve(CURVES, f"{label} for each job", axis_name, x, series, y_label=str(label))


def write(sweep_dir: Path, extra: Sequence[report.Section] = ()) -> Sweep:
    """Write summary.csv, .json, .md and .html (and plots) at the sweep root; return what was read.
    ``extra`` sections (a campaign's findings) follow the jobs' in the .md and .html."""
    sweep = collect(sweep_dir)
    columns = [*FIXED_COLUMNS, *([FLOAT64] if any(FLOAT64 in r for r in sweep.rows) else []), *sweep.labels]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(sweep.rows)
    write_atomic(sweep_dir / f"{SUMMARY}.csv", buffer.getvalue())
    for curve in (_parameter_curve(sweep), _family_curve(sweep)):
        if curve is not None:
            sweep.plots.append(draw(curve, sweep_dir).name)
    write_json(sweep_dir / f"{SUMMARY}.json", {
        "sweep_dir": str(sweep_dir), "jobs": len(sweep.rows),
        "statuses": {s: sweep.statuses.count(s) for s in dict.fromkeys(sweep.statuses)},
        "varying": sweep.varying, "columns": columns, "rows": sweep.rows, "plots": sweep.plots})
    parts = [*sections(sweep), *extra]
    write_atomic(sweep_dir / f"{SUMMARY}.md", report.to_markdown(parts))
    write_atomic(sweep_dir / f"{SUMMARY}.html", report.to_html(parts, sweep_dir, "tape-runner sweep"))
    return sweep


def sections(sweep: Sweep) -> list[report.Section]:
    """The summary's text and its tables, shaped by :mod:`runner.outputs.glance`: one table of jobs, or,
    for a sweep over several scenarios, one per scenario with its own gradient columns; then what each
    column means."""
    counts = ", ".join(f"{sweep.statuses.count(s)} {s}" for s in dict.fromkeys(sweep.statuses))
    head = report.Section("Sweep summary", [("p", f"{len(sweep.rows)} jobs: {counts or 'none'}.")])
    params = [sweep.parameters.get(row["job"], {}) for row in sweep.rows]
    swept = _varying_keys(params)
    if shared := glance.constant_overrides(params, swept):
        head.blocks.append(("p", "Every job: " + " ".join(shared)))
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in sweep.rows:
        record = sweep.records.get(row["job"]) or {}
        groups.setdefault(str(record.get("scenario") or sweep.parameters[row["job"]].get("scenario", "")),
                          []).append(row)
    parts, columns = [head], set()
    for name, rows in groups.items():
        keys = [k for k in swept if len(groups) == 1 or k != "scenario"]  # a group's heading names it
        header, table = _table(sweep, rows, keys)
        columns |= set(header)
        title = "Jobs" if len(groups) == 1 else f"Jobs: {name or 'no scenario'} ({len(rows)})"
        parts.append(report.Section(title, [("table", (header, table))]))
    parts.append(report.Section("Columns", [("p", glance.legend(columns))]))
    if sweep.plots:
        parts.append(report.Section("Plots", [("img", plot) for plot in sweep.plots]))
    return parts


def _table(sweep: Sweep, rows: list[dict[str, Any]], swept: list[str]) -> tuple[list[str], list[list[Any]]]:
    """A table of ``rows``: their swept keys, status, checks, errors, links, and their own gradients."""
    records = [sweep.records[row["job"]] for row in rows if row["job"] in sweep.records]
    labels = glance.gradient_labels(records)
    errors = [FLOAT64] if any(FLOAT64 in row for row in rows) else []
    plots = ["plot"] if any(r.get("plots") for r in records) else []
    header = ["job", *glance.short_names(swept).values(), "status", "checks", *errors, "message", "report",
              *plots, *labels]
    table = []
    for row in rows:
        record, p = sweep.records.get(row["job"]), sweep.parameters.get(row["job"], {})
        folder = row["report"].rpartition("/")[0]  # the job's directory, where its report is
        drawn = (record or {}).get("plots") or []
        table.append([row["job"], *(p.get(key, "") for key in swept), row["status"], row["checks"],
                      *(f"{row[FLOAT64]:.2g}" if FLOAT64 in row else "" for _ in errors), row["message"],
                      report.Link("report", row["report"]) if row["report"] else "",
                      *(report.Link(drawn[0], f"{folder}/{drawn[0]}") if drawn and folder else ""
                        for _ in plots),
                      *(glance.gradient_cell(record, label) for label in labels)])
    return header, table
