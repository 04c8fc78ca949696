"""What a failed job leaves: one line on the console, the whole traceback in its log and results.json."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.conftest import CliRun

Cli = Callable[..., CliRun]


@pytest.mark.slow
def test_an_unexpected_exception_keeps_its_traceback_on_file_only(cli: Cli) -> None:
    # limits.time_s=0.001 stops the routine mid-way (an exception from deep inside the job);
    # nope(x) is a config error, which keeps no traceback; x**2 with time to spare is ok. The ok
    # job runs first: a timeout inside TensorFlow's first op would leave its context half made.
    run = cli("-m", "scenario.function=x**2,nope(x)", "limits.time_s=600,0.001", "plots=false",
              "report=false")
    assert run.returncode == 1
    console = run.stdout + run.stderr
    assert "Traceback" not in console
    records = {}
    for job in run.run_dirs():
        record = json.loads((job / "results.json").read_text())
        overrides = record["job"]["overrides"]
        records[(overrides[0].split("=", 1)[1].strip("'"), overrides[1])] = (record, job)
    assert len(records) == 4

    timed_out, job = records[("x**2", "limits.time_s=0.001")]
    assert timed_out["status"] == "error"
    assert timed_out["message"] == "JobTimeout: the job ran past limits.time_s=0.001 s"
    trace = timed_out["traceback"]
    assert trace.startswith("Traceback (most recent call last):")
    assert "in perform" in trace and "run_routine" in trace  # the frames, from the job to the routine
    assert trace.rstrip().endswith("runner.errors.JobTimeout: the job ran past limits.time_s=0.001 s")
    log = (job / "tape-runner.log").read_text()
    assert trace in log
    assert console.count("JobTimeout: the job ran past limits.time_s=0.001 s") == 1  # one line, once

    for limit in ("limits.time_s=0.001", "limits.time_s=600"):
        refused, job = records[("nope(x)", limit)]
        assert refused["status"] == "error" and "unknown function 'nope'" in refused["message"]
        assert refused["traceback"] is None
        assert "Traceback" not in (job / "tape-runner.log").read_text()
    ok, job = records[("x**2", "limits.time_s=600")]
    assert ok["status"] == "ok" and ok["gradients"]["dy/dx"] == 6.0 and ok["traceback"] is None


def test_an_exception_is_summarised_in_one_line() -> None:
    from runner.jobs.failures import one_line

    assert one_line(RuntimeError("first\nsecond")) == "RuntimeError: first"
    assert one_line(KeyError()) == "KeyError"


@pytest.mark.slow
def test_a_job_stopped_by_its_time_limit_leaves_the_next_job_in_the_process_unharmed(cli: Cli) -> None:
    # The first job's limit fires at once, during its first TensorFlow op; the second job runs in
    # the same process (the basic launcher) and must find TensorFlow's context whole.
    run = cli("-m", "limits.time_s=0.001,600", "plots=false", "report=false")
    assert run.returncode == 1
    records = [json.loads((job / "results.json").read_text()) for job in run.run_dirs()]
    by_limit = {r["job"]["overrides"][0]: r for r in records}
    assert by_limit["limits.time_s=0.001"]["message"] == "JobTimeout: the job ran past limits.time_s=0.001 s"
    ok = by_limit["limits.time_s=600"]
    assert ok["status"] == "ok" and ok["gradients"]["dy/dx"] == 6.0, ok["message"]
