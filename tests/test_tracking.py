"""tracking=tensorboard and tracking=mlflow, read back through the real tools on 127.0.0.1.

docs/sweeps.md's commands run as written: the five seed scenarios tracked to TensorBoard
(whose server's HParams data and images are read over HTTP and whose dashboard is opened
in headless Chromium), to MLflow's default store (read with MLflow's own client), to both,
and to a real ``mlflow server`` given as MLFLOW_TRACKING_URI. Every number a
tool reads back is compared with the sweep's summary.json (or, for the worst check
error, the largest check error in the job's results.json). A tracking server that is
down (a closed port) must cost a run or a whole sweep no MLflow retries (seconds, which
`make bench` measures against the same command with tracking=none) and one line per job.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.tracking.mlflow import UNREACHABLE, _probe
from tests.servers import answers, chromium, free_port, serve
from tests.test_doc_commands import doc_commands
from tests.warm_cli import run_commands

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
DOCS = Path(__file__).resolve().parent.parent / "docs"
SCREENSHOT = "tensorboard_hparams.png"


ENV = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "MLFLOW_TRACKING_URI")}


def _run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**ENV, **(env or {})})


def _swept(cwd: Path, done: subprocess.CompletedProcess[str]) -> Path:
    """The directory of the sweep ``done`` ran in ``cwd``, after asserting it tracked without a word."""
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tensorboard:" not in done.stdout and "mlflow:" not in done.stdout, done.stdout  # tracked fine
    (summary,) = cwd.glob("outputs/multirun/*/*/summary.json")
    return summary.parent


#: docs/sweeps.md's tracking commands: one tracker, the other, both, and a tracking server's.
PAGE = [c for page, c in doc_commands() if page == "sweeps.md" and "tracking=" in c]
TENSORBOARD, MLFLOW, BOTH, SERVER = PAGE


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """(working directory, sweep directory) of each of the page's commands for the default stores, as
    written (each a process of its own, forked from one that imported TensorFlow: tests/warm_cli.py)."""
    cwds = [tmp_path_factory.mktemp("tracked") for _ in (TENSORBOARD, MLFLOW, BOTH)]
    runs = run_commands(list(zip((TENSORBOARD, MLFLOW, BOTH), cwds, strict=True)), ENV)
    return {command: (cwd, _swept(cwd, done))
            for command, cwd, done in zip((TENSORBOARD, MLFLOW, BOTH), cwds, runs, strict=True)}


def test_the_pages_commands_are_each_tracker_both_and_a_server() -> None:
    assert TENSORBOARD == "tape-runner experiment=seed_tour tracking=tensorboard"
    assert MLFLOW == "tape-runner experiment=seed_tour tracking=mlflow"
    assert BOTH == "tape-runner experiment=seed_tour 'tracking=[tensorboard,mlflow]'"
    assert SERVER == "MLFLOW_TRACKING_URI=http://127.0.0.1:5000 " + MLFLOW


def _rows(sweep: Path) -> dict[str, dict[str, Any]]:
    """summary.json's rows by job directory name (0_basic, ...)."""
    rows = json.loads((sweep / "summary.json").read_text())["rows"]
    return {row["report"].split("/")[0]: row for row in rows}


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    """The row's scalar gradients that are numbers."""
    fixed = {"job", "overrides", "status", "checks", "message", "report", "vs float64"}
    return {k: v for k, v in row.items() if k not in fixed and isinstance(v, int | float)}


def _worst_check_error(job_dir: Path) -> float | None:
    checks = json.loads((job_dir / "results.json").read_text())["checks"]
    return max((c["max_abs_err"] for c in checks if c["max_abs_err"] is not None), default=None)


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_tensorboard_serves_the_sweep_as_hparams_scalars_and_images(
    tracked: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    _, sweep = tracked[TENSORBOARD]
    rows = _rows(sweep)
    assert sorted(rows) == ["0_basic", "1_watch", "2_sigmoid", "3_linear", "4_persistent"]
    base = f"http://127.0.0.1:{free_port()}"
    command = [str(BIN / "tensorboard"), "--logdir", str(sweep / "tensorboard"), "--host", "127.0.0.1",
               "--port", base.rsplit(":", 1)[1]]
    with serve(command, lambda: answers(f"{base}/data/runs"), tmp_path / "tensorboard.log"):
        experiment = _post(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
        assert [h["name"] for h in experiment["hparamInfos"]] == ["scenario"]  # the one swept override
        labels = {label for row in rows.values() for label in _numbers(row)}
        assert labels == {"dy/dx", "dz/dx"}
        assert {m["name"]["tag"] for m in experiment["metricInfos"]} == labels | {"max_check_error"}

        groups = _post(f"{base}/data/plugin/hparams/session_groups", {
            "experimentName": "", "startIndex": 0, "sliceSize": 100,
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]})
        by_name = {g["name"]: g for g in groups["sessionGroups"]}
        assert sorted(by_name) == sorted(rows)
        for name, row in rows.items():
            group = by_name[name]
            assert f"scenario={group['hparams']['scenario']}" in row["overrides"].split()
            shown = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
            worst = shown.pop("max_check_error", None)
            assert shown == pytest.approx(_numbers(row), rel=1e-6), name  # float32 in the event files
            expected = _worst_check_error(sweep / name)
            assert worst == (None if expected is None else pytest.approx(expected, rel=1e-6, abs=1e-12))

        total = json.loads((sweep / "0_basic" / "results.json").read_text())["timings"]["total"]
        scalars = _get(f"{base}/data/plugin/scalars/scalars?run=0_basic&tag=timing/total")
        ((_, step, value),) = json.loads(scalars)
        assert step == 0 and value == pytest.approx(total, rel=1e-6)

        tags = json.loads(_get(f"{base}/data/plugin/images/tags"))
        assert list(tags["2_sigmoid"]) == ["plot/sigmoid"]
        (image,) = json.loads(_get(f"{base}/data/plugin/images/images?run=2_sigmoid&tag=plot/sigmoid"))
        shown_png = _get(f"{base}/data/plugin/images/individualImage?{image['query']}")
        assert _png_size(shown_png) == _png_size((sweep / "2_sigmoid" / "sigmoid.png").read_bytes())

        _screenshot_hparams(f"{base}/?darkMode=false#hparams", sorted(rows), tmp_path / SCREENSHOT)


def _screenshot_hparams(url: str, trials: list[str], path: Path) -> None:
    """Open the HParams dashboard in headless Chromium; every trial must be on screen.

    With UPDATE_DOCS=1 the screenshot replaces the one docs/sweeps.md shows (docs/tensorboard_hparams.png).
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 520})
            page.goto(url)
            for trial in trials:  # text selectors reach into TensorBoard's shadow DOM
                page.locator(f"text={trial}").first.wait_for(timeout=60_000)
            page.locator("text=worst check error").first.wait_for(timeout=60_000)
            page.screenshot(path=str(path))
        finally:
            browser.close()
    assert _png_size(path.read_bytes()) == (1400, 520)
    if os.environ.get("UPDATE_DOCS") == "1":
        shutil.copyfile(path, DOCS / SCREENSHOT)


def _mlflow_runs(uri: str, experiment: str) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment} in {uri}"
    runs = client.search_runs([found.experiment_id], max_results=1000)
    return {run.info.run_name: (run, client) for run in runs}


def _assert_runs_match(runs: dict[str, Any], sweep: Path) -> None:
    rows = _rows(sweep)
    assert sorted(runs) == sorted(rows)
    for name, (run, client) in runs.items():
        row = rows[name]
        params = run.data.params
        assert sorted(f"{k}={v}" for k, v in params.items()) == sorted(row["overrides"].split())
        metrics = run.data.metrics
        assert {k: v for k, v in metrics.items() if k in _numbers(row)} == _numbers(row)
        assert not {"dy/dx", "dz/dx"} - set(_numbers(row)) & set(metrics)
        assert metrics.get("max_check_error") == _worst_check_error(sweep / name)
        record = json.loads((sweep / name / "results.json").read_text())
        assert metrics["timing/total"] == record["timings"]["total"]
        assert run.info.status == ("FAILED" if row["status"] == "error" else "FINISHED")
        artifacts = sorted(a.path for a in client.list_artifacts(run.info.run_id))
        assert artifacts == sorted(["report.html", *record["plots"]])


def test_mlflow_has_one_run_per_job_in_the_default_store(tracked: dict[str, tuple[Path, Path]],
                                                         tmp_path: Path) -> None:
    for command in (MLFLOW, BOTH):
        cwd, sweep = tracked[command]
        store = cwd / "outputs" / "mlruns"
        runs = _mlflow_runs(f"sqlite:///{store / 'mlflow.db'}", str(sweep.relative_to(cwd)))
        _assert_runs_match(runs, sweep)
        sigmoid, client = runs["2_sigmoid"]
        copy = client.download_artifacts(sigmoid.info.run_id, "sigmoid.png", str(tmp_path / command))
        assert Path(copy).read_bytes() == (sweep / "2_sigmoid" / "sigmoid.png").read_bytes()


def test_each_tracker_alone_writes_only_its_own_and_both_write_what_each_does(
    tracked: dict[str, tuple[Path, Path]]
) -> None:
    def events(sweep: Path) -> list[str]:
        """Where the sweep's event files are, relative to its tensorboard/ directory."""
        board = sweep / "tensorboard"
        return sorted(str(p.parent.relative_to(board)) for p in board.rglob("events.out.tfevents.*"))

    # one file for each job, and the sweep's own (the HParams experiment), alone and beside MLflow
    expected = [".", "0_basic", "1_watch", "2_sigmoid", "3_linear", "4_persistent"]
    assert events(tracked[TENSORBOARD][1]) == events(tracked[BOTH][1]) == expected
    assert not (tracked[TENSORBOARD][0] / "outputs" / "mlruns").exists()
    assert not (tracked[MLFLOW][1] / "tensorboard").exists()


def test_mlflow_server_as_tracking_uri(tmp_path: Path) -> None:
    port = free_port()
    command = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
               "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"]
    base = f"http://127.0.0.1:{port}"
    cwd = tmp_path / "work"
    with serve(command, lambda: answers(f"{base}/health"), tmp_path / "mlflow.log", timeout=180):
        (done,) = run_commands([(SERVER.replace(":5000", f":{port}"), cwd)], ENV)  # the page's, on its port
        sweep = _swept(cwd, done)
        runs = _mlflow_runs(base, str(sweep.relative_to(cwd)))
        _assert_runs_match(runs, sweep)
        assert runs["0_basic"][0].data.metrics["dy/dx"] == 6.0  # x² at 3
    assert not (cwd / "outputs" / "mlruns").exists()  # nothing went to the default store


#: A guard against the minutes MLflow's retries cost, not the target: `make bench` measures that (10 s for a
#: whole sweep, benchmarks/bounds.py); a busy CI machine's noise stays well inside this.
MAX_DOWN_COST = 60.0


def _timed(cwd: Path, *args: str, env: dict[str, str] | None = None
           ) -> tuple[subprocess.CompletedProcess[str], float]:
    """The CLI run in ``cwd`` (created here), which must succeed, and its wall time in seconds."""
    cwd.mkdir()
    started = time.monotonic()
    done = _run(cwd, *args, env=env)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    return done, seconds


def _against_a_closed_port(tmp_path: Path, *args: str
                           ) -> tuple[Path, subprocess.CompletedProcess[str], str, float]:
    """``args`` with tracking=mlflow and MLFLOW_TRACKING_URI a closed port on 127.0.0.1.

    Returns the working directory, the process, the URI and the wall time in seconds.
    """
    uri = f"http://127.0.0.1:{free_port()}"  # bound and closed again: nothing listens there
    done, seconds = _timed(tmp_path / "down", *args, "tracking=mlflow", env={"MLFLOW_TRACKING_URI": uri})
    return tmp_path / "down", done, uri, seconds


def _mlflow_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if "mlflow:" in line]


def test_a_down_tracking_server_costs_a_run_seconds_and_one_line(tmp_path: Path) -> None:
    _, untracked = _timed(tmp_path / "none", "scenario=basic", "tracking=none")
    cwd, done, uri, tracked = _against_a_closed_port(tmp_path, "scenario=basic")
    (results,) = cwd.glob("outputs/*/*/results.json")
    assert json.loads(results.read_text())["status"] == "ok"
    (line,) = _mlflow_lines(done)
    assert "ERROR" in line and f"{uri} is unreachable" in line and str(results.parent) in line, line
    assert "Retrying" not in done.stdout + done.stderr  # MLflow's client never tried
    extra = tracked - untracked
    assert extra < MAX_DOWN_COST, f"a down server added {extra:.1f} s to one run"
    assert not (cwd / "outputs" / "mlruns").exists()


def test_a_down_tracking_server_costs_a_sweep_seconds_in_all(tmp_path: Path) -> None:
    sweep = ("-m", "scenario=basic", "scenario.inputs.x.value=1,2")
    _, untracked = _timed(tmp_path / "none", *sweep, "tracking=none")
    cwd, done, uri, tracked = _against_a_closed_port(tmp_path, *sweep)
    _assert_each_job_says_so_once(cwd, done, uri)
    extra = tracked - untracked
    assert extra < MAX_DOWN_COST, f"a down server added {extra:.1f} s to a sweep of two jobs"


def test_a_sweeps_verdict_reaches_jobs_in_worker_processes(tmp_path: Path) -> None:
    """Under joblib the jobs run in other processes: the sweep's verdict reaches them, none asks MLflow.

    No time limit here: two workers importing TensorFlow make the wall time vary by more than the limit.
    """
    cwd, done, uri, _ = _against_a_closed_port(
        tmp_path, "-m", "scenario=basic", "scenario.inputs.x.value=1,2", "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2")
    _assert_each_job_says_so_once(cwd, done, uri)


def _assert_each_job_says_so_once(cwd: Path, done: subprocess.CompletedProcess[str], uri: str) -> None:
    """Both jobs ok and summarised, one line each naming the server and the job's directory."""
    (summary,) = cwd.glob("outputs/multirun/*/*/summary.json")
    rows = json.loads(summary.read_text())["rows"]
    assert [row["status"] for row in rows] == ["ok", "ok"]
    lines = _mlflow_lines(done)
    assert len(lines) == 2, lines  # one per job, none for the sweep
    for job in ("0_basic", "1_basic"):
        (line,) = [line for line in lines if f"{job} not logged" in line]
        assert f"{uri} is unreachable" in line and str(summary.parent / job) in line, line
    assert "Retrying" not in done.stdout + done.stderr  # no process tried MLflow's client
    marker = json.loads((summary.parent / UNREACHABLE).read_text())  # the sweep's verdict, for its workers
    assert marker["uri"] == uri


@contextlib.contextmanager
def _answering(status: int) -> Iterator[str]:
    """A server on 127.0.0.1 that answers every GET with ``status``; yields its URI."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_probe_counts_any_answer_but_a_gateways_as_a_server() -> None:
    for status in (200, 401, 404):  # /health, an auth proxy, a server without /health
        with _answering(status) as uri:
            assert _probe(uri) is None, status
    with _answering(200) as uri:
        assert _probe(uri.replace("//", "//user:secret@") + "/prefix/") is None
    with _answering(503) as uri:
        assert _probe(uri) == "HTTP 503 Service Unavailable"
    assert "refused" in str(_probe(f"http://127.0.0.1:{free_port()}")).lower()
