"""Hydra callbacks: writable outputs, a sweep's job list, its progress, and its summary.

Before a run or a sweep starts, its output directory must be creatable: if not,
the runner says so in one line and exits 1, before Hydra tries. ``on_multirun_start``
writes the sweep's job list (``jobs.json``) and starts a watcher that logs
``job k/N`` as results appear, whatever the launcher; ``on_multirun_end`` writes
the summary. Hydra skips ``on_multirun_end`` when a launcher fails, so the entry
point also calls :func:`finish_pending` on its way out: the summary is written
either way. The sweep awaiting its summary is kept in the CLI invocation
(:class:`runner.jobs.task.Invocation`), not in this module, so a second invocation in
the same process starts clean.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from runner.jobs import task
from runner.outputs.files import JOBS, RESULTS, write_json
from runner.scenarios import fuzzing

log = logging.getLogger(__name__)


#: Sweepers that run every combination of the -m values, so the jobs are known before any starts.
LISTING_SWEEPERS = ("hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                    "hydra_plugins.tape_runner.sweeper.TemplateSweeper")


def planned_jobs(config: DictConfig) -> list[list[str]] | None:
    """Each job's overrides, expanded as Hydra's basic sweeper expands them.

    None for a sweeper that decides its jobs as it goes (Optuna samples ``interval(...)``).
    """
    if config.hydra.sweeper.get("_target_") not in LISTING_SWEEPERS:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    choices: dict[str, list[str]] = {}  # key -> its values, a later override of a key replacing an earlier
    for override in OverridesParser.create().parse_overrides([*params, *config.hydra.overrides.task]):
        if override.is_sweep_override() and not override.is_discrete_sweep():
            return None  # interval(...): only a searching sweeper draws from it
        key = override.get_key_element()
        values = (list(override.sweep_string_iterator()) if override.is_sweep_override()
                  else [override.get_value_element_as_str()])
        choices[key] = [f"{key}={value}" for value in values]
    return [list(job) for job in itertools.product(*choices.values())]


class _Watcher:
    """Logs ``job k/N`` with elapsed time and an estimate of what remains, from files on disk.

    With no job list (``total`` None) it logs ``job k done`` and the elapsed time.
    """

    def __init__(self, sweep_dir: Path, total: int | None) -> None:
        self.sweep_dir, self.total = sweep_dir, total
        self.started = time.monotonic()
        self.done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweep-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.tick()

    def tick(self) -> None:
        done = sum(1 for _ in self.sweep_dir.glob(f"*/{RESULTS}"))
        if done == self.done:
            return
        self.done = done
        elapsed = time.monotonic() - self.started
        if self.total is None:
            log.info("job %d done, %.1f s elapsed", done, elapsed)
            return
        left = elapsed / done * max(self.total - done, 0)
        log.info("job %d/%d done, %.1f s elapsed, about %.0f s left", done, self.total, elapsed, left)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.tick()


def finish_pending() -> None:
    """Write the summary of the open invocation's sweep, if one is still pending."""
    current = task.current_invocation()
    if current is not None and current.pending is not None:
        pending, current.pending = current.pending, None
        pending.finish()


def require_writable(directory: Path) -> None:
    """Create ``directory`` now, or exit with one line before any work if that is impossible."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as err:
        log.error("cannot write outputs to %s: %s", directory, err.strerror or err)
        sys.exit(1)


#: Where Ray looks for its authentication token (``ray start`` turns token authentication on when one
#: is found and RAY_AUTH_MODE is unset): the token itself, a file holding it, or ~/.ray/auth_token.
RAY_TOKEN_VARIABLES = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def join_ray_as_ray_start_did(config: DictConfig) -> None:
    """Before the Ray launcher joins a running cluster (an address other than ``local``): where
    RAY_AUTH_MODE is unset and a token is found, ``ray start`` began the cluster with token
    authentication, so join it with the token too (RAY_AUTH_MODE=token), which the plugin's
    ``ray.init(address=...)`` does not do by itself: it would fail on every call with InvalidAuthToken."""
    launcher = config.hydra.get("launcher") or {}
    address = OmegaConf.select(config, "hydra.launcher.ray.init.address", default=None)
    if not str(launcher.get("_target_", "")).endswith("RayLauncher") or address in (None, "local"):
        return
    token_file = Path.home() / ".ray" / "auth_token"
    found = any(os.environ.get(v) for v in RAY_TOKEN_VARIABLES) or token_file.is_file()
    if found and "RAY_AUTH_MODE" not in os.environ:
        os.environ["RAY_AUTH_MODE"] = "token"
        log.info("joining the Ray cluster at %s with its authentication token (RAY_AUTH_MODE=token, as ray "
                 "start found the token; RAY_AUTH_MODE=disabled for a cluster started without)", address)


class RunnerCallback(Callback):
    """Registered in conf/hydra/default.yaml as hydra.callbacks.runner.

    It holds its sweep until the summary is written, and hands itself to the open
    invocation, whose entry point finishes it if Hydra never calls ``on_multirun_end``.
    """

    def __init__(self) -> None:
        self._sweep: tuple[Path, _Watcher] | None = None
        self._campaign: float | None = None  # a fuzzing campaign's start (time.monotonic()); None otherwise

    def __getstate__(self) -> dict[str, Any]:
        """Launchers pickle callbacks for workers, which never finish the sweep (nor hold its thread)."""
        return {"_sweep": None, "_campaign": None}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        require_writable(Path(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        require_writable(sweep_dir)
        join_ray_as_ray_start_did(config)
        if "optuna" in str(OmegaConf.select(config, "hydra.sweeper._target_", default="")).lower():
            import optuna  # the sweeper imports it next; its "new study" line repeats Hydra's "Study name"

            optuna.logging.set_verbosity(optuna.logging.WARNING)
        jobs = planned_jobs(config)
        if jobs is None:
            log.info("sweep into %s; its sweeper chooses the jobs as it goes", sweep_dir)
        else:
            write_json(sweep_dir / JOBS, jobs)
            log.info("sweep of %d jobs into %s", len(jobs), sweep_dir)
        self._sweep = (sweep_dir, _Watcher(sweep_dir, None if jobs is None else len(jobs)))
        self._campaign = time.monotonic() if fuzzing.is_campaign(config) else None
        if (current := task.current_invocation()) is not None:
            current.pending = self

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.finish()

    def finish(self) -> None:
        """Write the sweep's summary (once); count its jobs' statuses towards the exit status."""
        if self._sweep is None:
            return
        sweep_dir, watcher = self._sweep
        self._sweep = None
        watcher.stop()
        from runner.jobs import findings
        from runner.outputs import summary  # multirun only: keeps single runs and --help light

        found = [] if self._campaign is None else findings.campaign(sweep_dir,
                                                                    time.monotonic() - self._campaign)
        result = summary.write(sweep_dir, found)
        counts = ", ".join(f"{result.statuses.count(s)} {s}" for s in dict.fromkeys(result.statuses))
        if not result.rows:
            log.error("the sweep has no jobs: nothing was run")
            task.note_status("error")
        for status in result.statuses:
            task.note_status("error" if status == "missing" else status)
        log.info("sweep of %d jobs (%s); summary in %s", len(result.rows), counts or "none",
                 sweep_dir / f"{summary.SUMMARY}.html")
