"""Reports anyone can re-run: snippets, snapshots, self-contained HTML, atomic files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.outputs.files import write_atomic
from tests.conftest import SEED_SCENARIOS, CliRun, assert_snippets_reproduce
from tests.servers import chromium
from tests.warm_cli import run_commands

Cli = Callable[..., CliRun]



CONF = Path(__file__).resolve().parent.parent / "conf"
#: Each shipped scenario's name (a file's stem, except program.yaml's dense_by_hand).
SHIPPED = sorted(yaml.safe_load(p.read_text())["name"] for p in (CONF / "scenario").glob("*.yaml"))


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """experiment=full_tour, every shipped scenario, run once for this module."""
    cwd = tmp_path_factory.mktemp("tour")
    done = subprocess.run([sys.executable, "-m", "runner", "experiment=full_tour"], cwd=cwd,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    (jobs,) = cwd.glob("outputs/multirun/*/*/jobs.json")
    return jobs.parent


def _job_dirs(sweep: Path) -> list[Path]:
    """The sweep's job directories in job order (10_x after 9_y)."""
    return sorted((p.parent for p in sweep.glob("*/results.json")), key=lambda d: int(d.name.split("_")[0]))


@pytest.mark.slow
def test_full_tour_runs_every_shipped_scenario_ok(tour: Path) -> None:
    records = [json.loads((d / "results.json").read_text()) for d in _job_dirs(tour)]
    assert sorted(r["scenario"] for r in records) == SHIPPED
    assert [r["scenario"] for r in records][:5] == list(SEED_SCENARIOS)
    assert all(r["status"] == "ok" for r in records), [(r["scenario"], r["message"]) for r in records]


def test_seed_tour_is_the_five_seed_scenarios(compose_config: Callable[..., Any]) -> None:
    from hydra import compose

    from runner.jobs.callbacks import planned_jobs

    del compose_config  # initialises Hydra for this test
    cfg = compose(config_name="config", overrides=["experiment=seed_tour"], return_hydra_config=True)
    assert planned_jobs(cfg) == [[f"scenario={name}", "experiment=seed_tour"] for name in SEED_SCENARIOS]


@pytest.mark.parametrize(("overrides", "jobs"), [
    (["seed=0,1", "dtype=float64"], [["seed=0", "dtype=float64"], ["seed=1", "dtype=float64"]]),
    (["seed=range(2)", "compile=eager,xla"],
     [["seed=0", "compile=eager"], ["seed=0", "compile=xla"], ["seed=1", "compile=eager"],
      ["seed=1", "compile=xla"]]),
    (["seed=1,2", "seed=5"], [["seed=5"]]),  # the later override of a key wins, in the earlier's place
    (["scenario.inputs.x.value=interval(0,1)"], None),  # drawn by a searching sweeper, not listed
])
def test_planned_jobs_expand_the_sweep_as_hydra_runs_it(compose_config: Callable[..., Any],
                                                         overrides: list[str],
                                                         jobs: list[list[str]] | None) -> None:
    from hydra import compose

    from runner.jobs.callbacks import planned_jobs

    del compose_config  # initialises Hydra for this test
    cfg = compose(config_name="config", overrides=["hydra.sweeper.params={}"], return_hydra_config=True)
    cfg.hydra.overrides.task = overrides
    assert planned_jobs(cfg) == jobs


@pytest.mark.slow
def test_every_snippet_reproduces_its_results(tour: Path) -> None:
    dirs = _job_dirs(tour)
    assert len(dirs) == len(SHIPPED)
    assert_snippets_reproduce(dirs)


@pytest.mark.slow
def test_rerun_from_the_snapshot_is_bit_identical(tour: Path, tmp_path: Path) -> None:
    jobs = _job_dirs(tour)
    # each rerun a process of its own, forked from one that imported TensorFlow once (tests/warm_cli.py)
    runs = run_commands([(f"tape-runner --config-path {job / '.hydra'} --config-name config",
                          tmp_path / job.name) for job in jobs], dict(os.environ))
    for job, done in zip(jobs, runs, strict=True):
        assert done.returncode == 0, done.stderr
        original = json.loads((job / "results.json").read_text())
        (again,) = (tmp_path / job.name).glob("outputs/*/*/results.json")
        rerun = json.loads(again.read_text())
        assert rerun["gradients"] == original["gradients"], job.name
        assert rerun["inputs"] == original["inputs"], job.name


@pytest.mark.slow
def test_rebuilding_a_run_report_changes_nothing(tour: Path) -> None:
    job = _job_dirs(tour)[7]  # hessian: a heatmap and the most sections
    before = (job / "report.html").read_text()
    (job / "report.html").unlink()
    done = subprocess.run([sys.executable, "-m", "runner.cli.rebuild", str(job)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (job / "report.html").read_text() == before


def _offline(allowed: str, fetched: list[str]) -> Callable[[Any], None]:
    """A route handler: load the page itself, record and refuse every other request."""

    def handle(route: Any) -> None:
        if route.request.url == allowed:
            route.continue_()
        else:
            fetched.append(route.request.url)
            route.abort()

    return handle


@pytest.mark.slow
def test_reports_render_offline_in_headless_chromium(tour: Path) -> None:
    browser_path = chromium()  # skips without Debian's chromium, and fails instead under CI
    from playwright.sync_api import sync_playwright

    sigmoid = _job_dirs(tour)[2]
    pages = [sigmoid / "report.html", tour / "summary.html"]
    assert "data:image/png;base64," in pages[0].read_text()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=browser_path, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            for page_path in pages:
                fetched: list[str] = []
                page = browser.new_page()
                page.route("**/*", _offline(page_path.as_uri(), fetched))
                page.goto(page_path.as_uri())
                page.wait_for_load_state("load")
                images = page.evaluate(
                    "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])")
                assert fetched == [], f"{page_path.name} fetched {fetched}"
                assert all(ok and width > 0 for ok, width, _ in images), images
                if page_path.name == "report.html":
                    assert images, "the sigmoid report shows its plot"
                else:
                    links = page.evaluate("Array.from(document.links).map(a => a.getAttribute('href'))")
                    # each job's report, then its first plot where it drew one (a file beside it)
                    jobs = _job_dirs(tour)
                    drawn = {d.name: json.loads((d / "results.json").read_text())["plots"] for d in jobs}
                    assert links == [link for d in jobs for link in [
                        f"{d.name}/report.html", *[f"{d.name}/{p}" for p in drawn[d.name][:1]]]]
                    assert {"2_sigmoid/sigmoid.png", "5_higher_order/higher_order.png"} <= set(links)
                    assert all((tour / link).is_file() for link in links)
                page.close()
        finally:
            browser.close()


def test_atomic_write_leaves_the_old_file_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "results.json"
    write_atomic(target, "old")

    def crash(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, "new and half-written")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
