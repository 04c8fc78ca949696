"""tape-runner from Python: a notebook, a script, a test. The same configs, checks and files as the CLI.

    >>> from runner import run, sweep
    >>> r = run("basic", overrides=["scenario.inputs.x.value=4"])
    >>> r.status, r.gradients["dy/dx"], r.passed
    ('ok', 8.0, True)
    >>> r.to_dict()["gradients"]          # exactly what results.json holds
    {'dy/dx': 8.0}
    >>> s = sweep("basic", overrides=["scenario.inputs.x.value=1,2,3"])
    >>> [row["dy/dx"] for row in s.table]
    [2.0, 4.0, 6.0]

In Jupyter a result shows its report inline (plots included) and a sweep its
summary table. ``r.figures`` are the plots as Matplotlib figures, not saved.

Why it is built this way: the CLI pays TensorFlow's start-up (seconds) on every
call, while a notebook imports it once and expects each cell to answer in
milliseconds. So the first run imports TensorFlow and every later one reuses it
(each run still reseeds, so its numbers equal the CLI's bit for bit). Configs
are composed with Hydra's own composition from the same ``conf/`` and checked by
the same validation; as in the CLI's template sweeper
(:mod:`hydra_plugins.tape_runner.sweeper`), Hydra composes each choice of config
groups (``scenario=sigmoid``) once per process, and a call's values
(``scenario.inputs.x.value=4``) are applied to a copy. Without ``output_dir``
nothing touches the disk; with it, a run writes the files the CLI writes.

Bad input raises :class:`~runner.errors.ConfigError` with the CLI's one-line
message; a routine that raises becomes :class:`~runner.errors.JobError` with the
message the CLI logs. A failed check is not an exception: ``r.status`` is
``check_failed`` and ``r.passed`` is False.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from runner.api import composing
from runner.cli.hints import unknown_scenario_key
from runner.cli.main import CONFIG_DIR, quote_expressions
from runner.errors import ConfigError, JobError
from runner.jobs import findings, task
from runner.outputs import console, report, summary
from runner.result import Check, Outcome
from runner.scenarios import fuzzing
from runner.scenarios.schema import path_safe

if TYPE_CHECKING:
    from matplotlib.figure import Figure


__all__ = ["Result", "SweepResult", "Table", "run", "sweep"]


_LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's job log format


@dataclass(frozen=True, repr=False)
class Result:
    """One run: its status, gradients and checks, and the record results.json holds.

    >>> r = run("sigmoid")
    >>> r.status, float(r.gradients["dy/dx"].max())
    ('ok', 0.25)
    >>> r.figures          # the function and its derivative, as a Matplotlib figure
    [<Figure size 770x462 with 1 Axes>]
    """

    record: dict[str, Any]
    outcome: Outcome | None = None
    run_dir: Path | None = None  # where its files are, if it was asked to write them

    @property
    def status(self) -> str:
        """``ok``, ``unverified`` (no oracle compared some derivative) or ``check_failed`` (an error is
        raised instead)."""
        return str(self.record["status"])

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    @property
    def gradients(self) -> dict[str, Any]:
        """Label -> gradient: a float for a scalar, a NumPy array otherwise, None where the tape gave none."""
        found = self.outcome.gradients if self.outcome else {}
        return {label: _plain(value) for label, value in found.items()}

    @property
    def checks(self) -> list[Check]:
        return list(self.outcome.checks) if self.outcome else []

    def to_dict(self) -> dict[str, Any]:
        """Exactly what the run's results.json holds (or would hold: nothing was written)."""
        return copy.deepcopy(self.record)

    @property
    def _plotted(self) -> list[Any]:
        """The outcome's figures the run plots (none with ``plots=false``)."""
        figures = self.outcome.figures if self.outcome else []
        return [f for f in figures if f.filename in self.record.get("plots", [])]

    @functools.cached_property
    def figures(self) -> list[Figure]:
        """The run's plots as Matplotlib figures, drawn but not saved."""
        from runner.outputs.plots import render

        return [render(f) for f in self._plotted]

    @functools.cached_property
    def _pngs(self) -> dict[str, bytes]:
        from runner.outputs.plots import png

        return {f.filename: png(fig) for f, fig in zip(self._plotted, self.figures, strict=True)}

    def _repr_html_(self) -> str:
        """The run at a glance, inline: each derivative with its checks, the plots, and a link to
        report.html when the run wrote one (the whole report is there, and in ``to_dict()``)."""
        href = None
        if self.run_dir is not None and (self.run_dir / "report.html").is_file():
            href = os.path.relpath(self.run_dir / "report.html")  # from the notebook's directory
        rows = console.rows(self.outcome) if self.outcome else []
        return report.html_body(report.glance_sections(self.record, rows, href), self._pngs.get)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in self.gradients.items())
        return f"<Result {self.record.get('scenario')}: {self.status}; {shown}>"


class Table(list):
    """A sweep's summary rows (dicts, one per job, the columns of summary.csv); a table in Jupyter."""

    def __init__(self, collected: summary.Sweep) -> None:
        super().__init__(collected.rows)
        self.collected = collected
        self.columns = [*summary.FIXED_COLUMNS, *collected.labels]

    def _repr_html_(self) -> str:
        """The summary's head and its table of jobs, as summary.html shows them."""
        directory = self.collected.directory  # the summary's plots, if the sweep wrote them

        def image(name: str) -> bytes | None:
            return (directory / name).read_bytes() if (directory / name).is_file() else None

        return report.html_body(summary.sections(self.collected), image)


@dataclass(frozen=True, repr=False)
class SweepResult:
    """Every job of a sweep, in order, and their summary table.

    >>> s = sweep("watch_matrix")          # a named experiment: input kind x tape.watch x flags
    >>> len(s), s.status
    (8, 'ok')
    """

    results: list[Result]
    table: Table
    sweep_dir: Path | None = None  # where its files are, if it was asked to write them

    @property
    def status(self) -> str:
        """The worst job's status: ``ok``, ``unverified``, ``check_failed`` or ``error`` (a job that left no
        results)."""
        statuses = ["error" if row["status"] == "missing" else str(row["status"]) for row in self.table]
        return functools.reduce(task.worse, statuses, "ok")

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    def __len__(self) -> int:
        return len(self.table)

    def __iter__(self) -> Iterator[Result]:
        return iter(self.results)

    def _repr_html_(self) -> str:
        return self.table._repr_html_()

    def __repr__(self) -> str:
        statuses = [str(row["status"]) for row in self.table]
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
        return f"<SweepResult of {len(self)} jobs: {counts}>"


def run(name: str = "basic", overrides: Sequence[str] = (), output_dir: str | Path | None = None) -> Result:
    """Run scenario ``name`` with Hydra-style ``overrides``, as ``tape-runner scenario=name ...`` would.

    >>> run("basic", overrides=["scenario.function=x**3*cos(x)", "scenario.inputs.x.value=1.3"]).passed
    True
    >>> run("linear", overrides=["scenario.batch=32", "dtype=float64"]).gradients["dloss/dW"].shape
    (3, 2)

    Without ``output_dir`` nothing is written; with it, that directory receives
    what the CLI writes into a run directory (results.json, reports, snippet,
    plots, tape-runner.log, .hydra/). Raises :class:`ConfigError` for bad input
    and :class:`JobError` when the routine raises; a failed check is a result
    whose ``status`` is ``check_failed``.
    """
    words = _overrides(name, overrides, sweeping=False)
    sweeps = [o.input_line for o in composing.parse_words(words) if o.is_sweep_override()]
    if sweeps:
        raise ConfigError(f"{sweeps[0]} gives several values: use sweep() to run each of them")
    composer = composing.composer(composing.hydra_part(words))
    if output_dir is None:  # the quick way: the job's own config, without Hydra's node
        config, task_overrides = composer.task(tuple(words))
        return _finish(task.perform(config, task.Job(None, list(task_overrides))), None)
    run_dir = _writable(output_dir)
    return _finish(_perform(composer.job(words), run_dir, None), run_dir)


def _writable(output_dir: str | Path) -> Path:
    """``output_dir``, made if need be; :class:`ConfigError` in one line when it cannot be a directory."""
    directory = Path(output_dir)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"cannot write outputs to {directory}: it is a file, not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot write outputs to {directory}: {err.strerror or err}") from None
    return directory


def sweep(name: str = "basic", overrides: Sequence[str] = (), output_dir: str | Path | None = None
          ) -> SweepResult:
    """Run every combination of the ``overrides``' values, as ``tape-runner -m scenario=name ...`` would.

    >>> s = sweep("basic", overrides=["scenario.inputs.x.value=range(-2,3)"])
    >>> [row["dy/dx"] for row in s.table]
    [-4.0, -2.0, 0.0, 2.0, 4.0]

    ``name`` is a scenario, or a named experiment (``sweep("watch_matrix")``).
    Hydra's sweep syntax (``a,b,c``, ``range(...)``, ``choice(...)``) expands
    exactly as ``-m`` does, experiments' ``hydra.sweeper.params`` included, and
    every job's config is composed (so checked) before any job runs. A job's
    error is a row with status ``error``, as in the CLI's summary, not an
    exception. With ``output_dir`` the sweep writes what the CLI writes into a
    sweep directory: one sub-directory per job, jobs.json and the summary.
    """
    from runner.jobs.callbacks import planned_jobs

    words = _overrides(name, overrides, sweeping=True)
    composer = composing.composer(composing.hydra_part(words))
    master = composing.compose(lambda: composer.loader.load_configuration(
        "config", words, RunMode.MULTIRUN, from_shell=False))
    jobs = planned_jobs(master)
    configs = [composer.job(job) for job in jobs]  # all composed, so all checked, before any runs
    started = time.monotonic()
    sweep_dir = _writable(output_dir) if output_dir is not None else None
    if sweep_dir is not None:
        from runner.outputs.files import JOBS, write_json

        write_json(sweep_dir / JOBS, jobs)
    job_dirs = [sweep_dir / f"{num}_{path_safe(config.scenario.name)}" if sweep_dir is not None else None
                for num, config in enumerate(configs)]
    done = [_perform(config, job_dir, num) for num, (config, job_dir) in enumerate(zip(configs, job_dirs,
                                                                                       strict=True))]
    results = [Result(d.record, d.outcome, job_dir) for d, job_dir in zip(done, job_dirs, strict=True)]
    if sweep_dir is not None:  # a campaign's findings too, as the CLI's sweep writes them
        campaign = fuzzing.is_campaign(master)
        found = findings.campaign(sweep_dir, time.monotonic() - started) if campaign else []
        return SweepResult(results, Table(summary.write(sweep_dir, found)), sweep_dir)
    collected = summary.Sweep(Path())
    collected.rows = [summary.record_row(collected, num, d.record, job, "")
                      for num, (d, job) in enumerate(zip(done, jobs, strict=True))]
    return SweepResult(results, Table(collected))


def _overrides(name: str, overrides: Sequence[str], *, sweeping: bool) -> list[str]:
    """``scenario=<name>`` or ``experiment=<name>``, then the overrides, quoted as the CLI quotes them."""
    if isinstance(overrides, str):
        raise ConfigError("overrides is a list of strings, e.g. overrides=['scenario.inputs.x.value=4']")
    head = f"scenario={name}"  # an unknown name gets Hydra's message, with the scenarios there are
    conf = Path(CONFIG_DIR)
    if not (conf / "scenario" / f"{name}.yaml").is_file() and (conf / "experiment" / f"{name}.yaml").exists():
        if not sweeping:
            raise ConfigError(f"{name!r} is an experiment, a sweep: run it with sweep({name!r})")
        head = f"experiment={name}"
    if hint := unknown_scenario_key([head, *overrides], CONFIG_DIR):  # the CLI's hint, not Hydra's six lines
        raise ConfigError(hint)
    return quote_expressions([head, *overrides])


def _perform(config: DictConfig, run_dir: Path | None, num: int | None) -> task.Done:
    """Run one job from its full config, writing into ``run_dir`` (with Hydra's snapshot and log) if given."""
    overrides = list(config.hydra.overrides.task)
    hydra = config.hydra
    with open_dict(config):
        del config["hydra"]  # the job sees its own config only, as under @hydra.main
    if run_dir is None:
        return task.perform(config, task.Job(None, overrides, num))
    snapshot = run_dir / ".hydra"
    snapshot.mkdir(parents=True, exist_ok=True)
    for filename, node in (("config.yaml", config), ("hydra.yaml", OmegaConf.create({"hydra": hydra})),
                           ("overrides.yaml", OmegaConf.create(overrides))):
        (snapshot / filename).write_text(OmegaConf.to_yaml(node))
    with _logged_to(run_dir / f"{hydra.job.name}.log"):
        return task.perform(config, task.Job(run_dir, overrides, num))


@contextlib.contextmanager
def _logged_to(path: Path) -> Iterator[None]:
    """The runner's log lines at INFO and above also go to ``path``, as Hydra's job logging does."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    logger = logging.getLogger("runner")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


def _finish(done: task.Done, run_dir: Path | None) -> Result:
    """The run's :class:`Result`, or its error raised with the message the CLI prints."""
    if done.failure is not None:
        if isinstance(done.failure, ConfigError | OSError):
            raise done.failure
        raise JobError(done.record["message"]) from done.failure
    return Result(done.record, done.outcome, run_dir)


def _plain(value: Any) -> Any:
    """A 0-d array as a Python float; arrays and None as they are."""
    if value is None or getattr(value, "ndim", 1) != 0:
        return value
    return float(value)


def _short(value: Any) -> str:
    if value is None or isinstance(value, float):
        return repr(value)
    return f"array{tuple(value.shape)}"
