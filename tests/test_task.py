"""The job wrapper in-process: whatever a routine raises becomes a record, not a crash."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

import runner.routines
from runner.cli.main import CONFIG_DIR
from runner.errors import ConfigError, JobError, JobTimeout
from runner.jobs import task
from runner.jobs.task import time_limit


@pytest.fixture
def job(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """job(*overrides) runs task.execute in this process and returns its results.json."""

    def run(*overrides: str) -> dict[str, Any]:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(tmp_path)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]  # the task function sees the job's config only, as under @hydra.main
        task.execute(cfg)
        return json.loads((tmp_path / "results.json").read_text())

    return run


def test_an_exception_in_a_routine_is_recorded_as_an_error(
    job: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(run: Any) -> None:
        raise RuntimeError("the tape caught fire\nsecond line")

    monkeypatch.setattr(runner.routines, "run_routine", explode)
    with task.invocation() as invocation:
        results = job()
    assert results["status"] == "error"
    assert results["message"] == "RuntimeError: the tape caught fire"
    assert invocation.exit_status() == 1
    assert "RuntimeError: the tape caught fire" in caplog.text


def test_full_error_reraises_after_writing_the_record(
    job: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError, match="unknown function 'nope'"):
        job("scenario.function='nope(x)'")
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "error"


def test_the_worst_status_decides_the_exit() -> None:
    with task.invocation() as invocation:
        for status, code in (("ok", 0), ("check_failed", 2), ("ok", 2), ("error", 1), ("check_failed", 1)):
            task.note_status(status)
            assert invocation.exit_status() == code
    with task.invocation() as invocation:  # a new invocation starts clean
        task.note_status("ok")
        assert invocation.exit_status() == 0
    task.note_status("error")  # outside any invocation (the Python API): counted nowhere
    assert task.current_invocation() is None


def test_a_full_disk_is_one_line_and_an_error(
    job: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    import errno

    def full(path: Path, data: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("runner.outputs.files.write_atomic", full)
    monkeypatch.setattr("runner.outputs.report.write_atomic", full)
    with task.invocation() as invocation, pytest.raises(FileNotFoundError):  # nothing written at all
        job("scenario.function='nope(x)'")
    assert invocation.exit_status() == 1
    assert f"cannot write outputs to {tmp_path}: No space left on device" in caplog.text


def test_the_pending_sweep_is_the_invocations_and_stays_out_of_launcher_workers(tmp_path: Path) -> None:
    import pickle

    from omegaconf import OmegaConf

    from runner.jobs.callbacks import RunnerCallback, finish_pending

    callback = RunnerCallback()
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}, "sweeper": {
        "_target_": "hydra_plugins.tape_runner.sweeper.TemplateSweeper", "params": None},
                                         "overrides": {"task": ["seed=1,2"]}}})
    with task.invocation() as invocation:
        callback.on_multirun_start(config)
        assert invocation.pending is callback
        worker_copy = pickle.loads(pickle.dumps(callback))  # as joblib ships it to its workers
        finish_pending()  # no job ran: both are missing, and the summary says so
        assert invocation.pending is None and invocation.exit_status() == 1
    assert json.loads((tmp_path / "summary.json").read_text())["statuses"] == {"missing": 2}
    worker_copy.finish()  # a worker's copy has no sweep to finish
    with task.invocation() as later:
        finish_pending()
        assert later.exit_status() == 0


# ---------------------------------------------------------------- the time limit

def test_an_exception_the_alarm_was_turned_into_is_reported_as_the_timeout() -> None:
    # As C code does when the alarm lands inside it while it calls back into Python (NumPy asking a
    # tensor for its array): the JobTimeout comes back out as a SystemError.
    with pytest.raises(JobTimeout, match=r"limits\.time_s=0\.01 s") as caught, time_limit(0.01):
        try:
            while True:
                time.sleep(0.001)
        except JobTimeout as err:
            raise SystemError("<built-in method __array__> returned a result with an exception set") from err
    assert isinstance(caught.value.__cause__, SystemError)


def test_a_timeout_the_interrupted_code_swallowed_is_still_a_timeout() -> None:
    # Where the alarm lands inside code that catches every exception and carries on (a library's
    # `except Exception: pass`), the job must still not come back as if it had kept its limit.
    with pytest.raises(JobTimeout, match=r"limits\.time_s=0\.01 s"), time_limit(0.01):
        try:
            while True:
                time.sleep(0.001)
        except Exception:
            pass


def test_an_exception_before_the_alarm_is_itself() -> None:
    with pytest.raises(ValueError, match="raised first"), time_limit(60):
        raise ValueError("raised first")


def test_the_time_limit_holds_in_a_thread_other_than_the_main_one() -> None:
    """Signals reach only the main thread: elsewhere the limit is raised in the job's thread by a timer."""
    caught: list[BaseException] = []

    def job() -> None:
        try:
            with time_limit(0.2):
                while True:  # Python that never returns on its own
                    sum(range(1000))
        except JobTimeout as err:
            caught.append(err)

    assert _in_a_thread(job, 30) < 10
    assert [str(e) for e in caught] == ["the job ran past limits.time_s=0.2 s"]


def test_a_limit_that_does_not_fire_leaves_the_thread_alone() -> None:
    done: list[str] = []

    def job() -> None:
        with time_limit(0.05):
            done.append("inside")
        time.sleep(0.3)  # past the limit, outside the block: nothing may be raised here
        done.append("after")

    _in_a_thread(job, 30)
    assert done == ["inside", "after"]


def test_an_api_run_from_a_thread_is_stopped_at_its_limit() -> None:
    from runner.api import run

    outcome: list[BaseException | object] = []

    def job() -> None:
        try:  # ten million points through three oracles: far more than 0.3 s
            outcome.append(run("sigmoid", overrides=["scenario.inputs.x.linspace.num=10000000",
                                                     "limits.time_s=0.3"]))
        except JobError as err:
            outcome.append(err)

    assert _in_a_thread(job, 120) < 60
    (error,) = outcome
    assert isinstance(error, JobError) and "JobTimeout: the job ran past limits.time_s=0.3 s" in str(error)


def _in_a_thread(job: Callable[[], None], timeout: float) -> float:
    """Run ``job`` in a thread of its own (not the main one); the seconds it took, once it has ended."""
    started = time.monotonic()
    worker = threading.Thread(target=job)
    worker.start()
    worker.join(timeout=timeout)
    assert not worker.is_alive(), "the job outlived its time limit"
    return time.monotonic() - started
