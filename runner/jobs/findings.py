"""A fuzzing campaign's findings: each disagreement shrunk to its smallest program, written to rerun.

When a campaign (``scenario=fuzz``, runner/scenarios/fuzzing.py) ends, every job whose
routes disagree is a candidate: status ``check_failed`` with a check that names a route
and execution (``dloss/dx0 [forward-over-forward, eager] ran``, or ``... vs float64
differences``). Its symptom is that route, that execution, and whether it raised or
disagreed with the oracle. Then:

1. **Filters** remove what is not a reproducible TensorFlow bug, each rule named:
   ``overflow`` (a derivative is not finite), ``kink`` (a ``where`` decided within 0.01 of
   its boundary), ``rerun alone`` (the program run again by itself does not show it) and
   ``float64 re-check`` (a disagreement gone when the program runs in float64 is not
   counted: the narrower dtype's precision, as far as a campaign can tell). Poles need no
   rule: a campaign draws only functions smooth everywhere.
2. **Shrinking**, greedy delta debugging: a step bypassed (its uses read one of its operands
   instead), a gradient source or an unused input dropped, a variable made a watched
   constant, the shapes cut to their first slice, the values rounded, the dtype widened to
   float64. A change is kept when the program, run again with only the symptom's route and
   execution, still shows the symptom, until no change is.
3. **Grouping** by signature (the symptom and the ops the smallest program uses): a job whose
   symptom is a finding's and whose program uses the finding's ops joins it unshrunk.

Each finding goes to ``<sweep>/findings/<id>/``: ``scenario/<name>.yaml``, which
``tape-runner --config-dir <that folder> scenario=<name>`` reruns to the same
``check_failed``, and ``snippet.py``, plain TensorFlow printing every route's numbers.
``findings.md`` lists them, and the sweep's summary shows the same section.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from runner.jobs import failures
from runner.outputs import files, report
from runner.scenarios import fuzzing, route_specs

log = logging.getLogger(__name__)

FINDINGS = "findings"  # <sweep>/findings/<id>/ and <sweep>/findings.md
#: A check of a route: ``<label> [<route>, <execution>] ran`` or ``... vs <what>``.
ROUTE_CHECK = re.compile(r"^.+ \[(?P<route>[a-z-]+), (?P<execution>[a-z]+)\] (?P<how>ran|vs .+)$")
MAX_TRIES = 60  # candidate programs one finding's shrinking may run
#: A ``where`` decided this close to its boundary is a kink within reach of the differences' steps.
KINK = 0.01
_NAME = re.compile(r"\b[A-Za-z_]\w*\b")


@dataclass(frozen=True)
class Symptom:
    """What a finding shows: a route, in an execution, raising or disagreeing with the oracle."""

    route: str
    execution: str
    raised: bool

    def __str__(self) -> str:
        return f"[{self.route}, {self.execution}] {'raises' if self.raised else 'disagrees with the oracle'}"


@dataclass
class Finding:
    """One bug: its symptom, its smallest program, and every job of the campaign that showed it."""

    symptom: Symptom
    config: dict[str, Any]  # the run's config, its scenario the smallest program
    message: str  # the failing check, as the smallest program fails it
    jobs: list[str] = field(default_factory=list)
    steps_before: int = 0
    shrink_s: float = 0.0  # how long shrinking took

    @property
    def steps(self) -> int:
        return len(self.config["scenario"]["targets"]) - 1  # the loss aside

    @property
    def ops(self) -> tuple[str, ...]:
        return ops_of(self.config["scenario"]["targets"])

    @property
    def name(self) -> str:
        return f"finding_{self.symptom.route.replace('-', '_')}_{self.symptom.execution}"


def ops_of(targets: dict[str, str]) -> tuple[str, ...]:
    """The functions and operators a program's steps use (the loss's ``reduce_sum`` aside)."""
    text = " ".join(targets.values())
    functions = {f for f in re.findall(r"\b([a-z_]\w*)\(", text) if f != "reduce_sum"}
    return tuple(sorted(functions | {op for op in (*fuzzing.OPERATORS, "@") if f" {op} " in text}))


def symptom_of(checks: list[dict[str, Any]]) -> tuple[Symptom, str] | None:
    """The first failing route check that raised or went against the float64 oracle, and its text."""
    for check in checks:
        match = ROUTE_CHECK.match(str(check.get("name", "")))
        if check.get("passed") is False and match and (match["how"] == "ran" or "float64" in match["how"]):
            error, tol = check.get("max_abs_err"), check.get("tol")
            why = check.get("detail") or (f"max error {error:.2g} > tolerance {tol:.2g}"
                                          if isinstance(error, float) and isinstance(tol, float) else "")
            text = f"{check['name']}: {why}" if why else str(check["name"])
            return Symptom(match["route"], match["execution"], match["how"] == "ran"), text
    return None


def shows(config: dict[str, Any], symptom: Symptom) -> str | None:
    """Run ``config`` with only the symptom's route and execution: the failing check's text, if it shows."""
    from runner import routines
    from runner.scenarios.loading import load_run

    checks = {**config.get("checks", {}), "modes": [symptom.route], "executions": [symptom.execution]}
    try:
        outcome = routines.run_routine(load_run({**config, "checks": checks, "plots": False}))
    except Exception:  # a candidate the language refuses, or one that breaks the run, shows nothing
        return None
    found = symptom_of([dataclasses.asdict(c) for c in outcome.checks])
    if not found or found[0] != symptom:
        return None
    # a disagreement at a kink is no finding, nor a smaller program that moved onto one
    return None if not symptom.raised and _kink(config, {**outcome.inputs, **outcome.values}) else found[1]


def _bypassed(scenario: dict[str, Any], step: str, operand: str) -> dict[str, Any]:
    """``step`` removed, every later use of it reading ``operand`` instead."""
    targets = {name: re.sub(rf"\b{step}\b", operand, text) for name, text in scenario["targets"].items()
               if name != step}
    return {**scenario, "targets": targets}


def _used(scenario: dict[str, Any]) -> set[str]:
    return {name for text in scenario["targets"].values() for name in _NAME.findall(text)}


def _inputs(scenario: dict[str, Any], change: Any) -> dict[str, Any]:
    """Every input's value changed alike (sliced, rounded)."""
    inputs = {}
    for name, spec in scenario["inputs"].items():
        inputs[name] = {**spec, "value": np.asarray(change(np.asarray(spec["value"]))).tolist()}
    return {**scenario, "inputs": inputs}


def smaller(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each one-step simplification of ``config``'s program, the boldest first."""
    scenario = config["scenario"]
    steps = [n for n in scenario["targets"] if n != "loss"]
    known = [*scenario["inputs"], *steps]
    for step in steps:
        for operand in dict.fromkeys(n for n in _NAME.findall(scenario["targets"][step]) if n in known):
            yield {**config, "scenario": _bypassed(scenario, step, operand)}
    sources = scenario["gradients"]["loss"]
    for name in sources if len(sources) > 1 else []:
        yield {**config, "scenario": {**scenario, "gradients": {"loss": [s for s in sources if s != name]}}}
    for name in scenario["inputs"]:
        if name not in _used(scenario) and name not in sources:
            inputs = {n: spec for n, spec in scenario["inputs"].items() if n != name}
            yield {**config, "scenario": {**scenario, "inputs": inputs}}
    for name, spec in scenario["inputs"].items():
        if spec.get("kind") != "constant":
            inputs = {**scenario["inputs"], name: {**spec, "kind": "constant", "watch": True}}
            yield {**config, "scenario": {**scenario, "inputs": inputs}}
    if np.ndim(next(iter(scenario["inputs"].values()))["value"]) > 0:
        yield {**config, "scenario": _inputs(scenario, lambda v: v[0])}
    for digits in (1, 0):
        rounded = _inputs(scenario, lambda v, d=digits: np.round(v, d) + 0.0)  # + 0.0: no -0.0
        if rounded != scenario:
            yield {**config, "scenario": rounded}
    if config.get("dtype") != "float64":
        yield {**config, "dtype": "float64"}


def shrink(config: dict[str, Any], symptom: Symptom, message: str) -> tuple[dict[str, Any], str]:
    """The smallest program ``smaller`` reaches that still shows ``symptom``, and its failing check."""
    tries = 0
    changed = True
    while changed and tries < MAX_TRIES:
        changed = False
        for candidate in smaller(config):
            tries += 1
            if (text := shows(candidate, symptom)) is not None:
                config, message, changed = candidate, text, True
                break
            if tries >= MAX_TRIES:
                break
    return config, message


def _kink(config: dict[str, Any], values: dict[str, Any]) -> str | None:
    """Why a disagreement may be a ``where``'s kink: a condition's value within :data:`KINK` of 0."""
    for name in re.findall(r"\bwhere\((\w+) > 0,", " ".join(config["scenario"]["targets"].values())):
        value = values.get(name)
        if value is not None and _finite(value) and np.min(np.abs(np.asarray(value, np.float64))) < KINK:
            return f"kink: where({name} > 0, ...) is decided within {KINK} of its boundary"
    return None


def _finite(value: Any) -> bool:
    """Every number of a results.json value finite ("NaN" and "Infinity" are how it writes the others)."""
    try:
        return bool(np.all(np.isfinite(np.asarray(value, dtype=np.float64))))
    except (TypeError, ValueError):  # a summary of an array too large to list, not numbers
        return True


def false_positive(record: dict[str, Any], symptom: Symptom) -> str | None:
    """The rule that removes the job's symptom, with why; None for a finding."""
    if not all(_finite(g) for g in (record.get("gradients") or {}).values() if g is not None):
        return "overflow: a derivative is not finite"
    config = record["config"]
    if not symptom.raised and (kink := _kink(config, {**(record.get("inputs") or {}),
                                                      **(record.get("values") or {})})):
        return kink
    if shows(config, symptom) is None:
        return ("rerun alone: the program, run again by itself, does not show it (state an earlier job "
                "left in the process?)")
    if not symptom.raised and config.get("dtype") != "float64" and shows(
            {**config, "dtype": "float64"}, symptom) is None:
        return ("float64 re-check: the routes agree when the program runs in float64; a disagreement in "
                f"{config.get('dtype')} alone is not counted as an autodiff bug")
    return None


def hunt(records: dict[int, dict[str, Any]]) -> tuple[list[Finding], list[tuple[str, str]]]:
    """The campaign's findings, grouped and shrunk, and the jobs the filters removed (job, rule), from
    each job's results.json by job number (runner/outputs/summary.py reads them)."""
    findings: list[Finding] = []
    removed: list[tuple[str, str]] = []
    for num, record in sorted(records.items()):
        job = f"{num}_{record.get('scenario')}"
        if record.get("status") != "check_failed" or not isinstance(record.get("config"), dict):
            continue
        if (found := symptom_of(record.get("checks") or [])) is None:
            continue
        symptom, message = found
        ops = set(ops_of(record["config"]["scenario"]["targets"]))
        if known := next((f for f in findings if f.symptom == symptom and set(f.ops) <= ops), None):
            known.jobs.append(job)
            continue
        if rule := false_positive(record, symptom):
            removed.append((job, rule))
            continue
        started = time.perf_counter()
        config, message = shrink(record["config"], symptom, message)
        finding = Finding(symptom, config, message, [job], len(record["config"]["scenario"]["targets"]) - 1,
                          time.perf_counter() - started)
        if same := next((f for f in findings if (f.symptom, f.ops) == (symptom, finding.ops)), None):
            same.jobs.append(job)
            continue
        findings.append(finding)
        log.info("finding %d: %s; %s, %d step(s) (from %d)", len(findings), symptom, ", ".join(finding.ops)
                 or "no op", finding.steps, finding.steps_before)
    return findings, removed


def write(sweep_dir: Path, findings: list[Finding], removed: list[tuple[str, str]], programs: int,
          seconds: float) -> report.Section:
    """Each finding's folder, findings.md and findings/findings.json; the section the sweep's summary
    shows. ``programs`` ran in ``seconds`` before the hunt began."""
    from runner.routines.program import Program
    from runner.routines.route_snippet import snippet
    from runner.scenarios.loading import load_run

    rows = []
    for number, finding in enumerate(findings, 1):
        folder = sweep_dir / FINDINGS / f"{number}-{finding.symptom.route}-{finding.symptom.execution}"
        name = f"{finding.name}_{number}"
        config = {**finding.config, "scenario": {**finding.config["scenario"], "name": name, "description":
                  f"{finding.symptom}: the smallest program of its kind in the campaign "
                  f"{sweep_dir.name} (jobs {', '.join(finding.jobs)})."}}
        checks = {"modes": [finding.symptom.route], "executions": [finding.symptom.execution]}
        text = yaml.safe_dump({"dtype": config.get("dtype", "float32"), "seed": config.get("seed", 0),
                               "checks": checks, "scenario": config["scenario"]}, sort_keys=False)
        files.write_atomic(folder / "scenario" / f"{name}.yaml", f"# @package _global_\n# {finding.message}\n"
                           f"#   tape-runner --config-dir {folder} scenario={name}\n{text}")
        run = load_run({**config, "checks": {**config.get("checks", {}), **checks}})
        chosen = route_specs.ROUTES[run.scenario.derivative]
        executions = list(dict.fromkeys(["eager", finding.symptom.execution]))
        script = snippet(Program(run.scenario, run), list(chosen), executions)
        files.write_atomic(folder / "snippet.py", script)
        rows.append([str(number), str(finding.symptom), ", ".join(finding.ops) or "none",
                     str(finding.steps), ", ".join(finding.jobs),
                     f"tape-runner --config-dir {folder.relative_to(sweep_dir)} scenario={name}"])
    blocks: list[tuple[str, Any]] = [("p", f"{len(findings)} finding(s) {rate(programs, seconds)}. Each is "
                                      "the smallest program that still shows it: rerun it from the sweep's "
                                      "folder, or run its plain-TensorFlow snippet.py, which prints every "
                                      "route's numbers.")]
    if rows:
        blocks.append(("table", (["finding", "symptom", "ops", "steps", "jobs", "rerun"], rows)))
    if removed:
        blocks.append(("p", "Removed by the filters: " + "; ".join(
            f"{job} ({rule})" for job, rule in removed)))
    section = report.Section("Findings", blocks)
    files.write_atomic(sweep_dir / f"{FINDINGS}.md", report.to_markdown([section]))
    files.write_json(sweep_dir / FINDINGS / "findings.json", {
        "programs": programs, "seconds": seconds, "findings": [
            {"symptom": str(f.symptom), "ops": list(f.ops), "jobs": f.jobs, "message": f.message,
             "steps": f.steps, "steps_before": f.steps_before, "shrink_s": f.shrink_s} for f in findings],
        "removed": [list(r) for r in removed]})
    return section


def campaign(sweep_dir: Path, seconds: float) -> list[report.Section]:
    """A finished campaign's findings, hunted, shrunk and written; the section its summary shows. A
    failure here is logged and costs the summary nothing."""
    from runner.outputs import summary

    try:
        records = summary.collect(sweep_dir).records
        log.info("campaign: %s; shrinking its findings", rate(len(records), seconds))
        found, removed = hunt(records)
        section = write(sweep_dir, found, removed, len(records), seconds)
    except Exception as err:  # deliberate: the summary must be written whatever the hunt met
        log.error("findings: %s; the summary is written without them", failures.one_line(err))
        failures.keep_traceback(err, log)
        return []
    log.info("%d finding(s); see %s", len(found), sweep_dir / f"{FINDINGS}.md")
    return [section]


def rate(programs: int, seconds: float) -> str:
    """``in 100 programs, run in 69 s (87 programs a minute)``: what the console and findings.md say."""
    per_minute = 60 * programs / max(seconds, 1e-9)
    return f"in {programs} programs, run in {seconds:.0f} s ({per_minute:.0f} programs a minute)"
