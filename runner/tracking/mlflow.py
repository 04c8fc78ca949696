"""``tracking=mlflow``: one MLflow run per job, the sweep as one experiment.

Each job becomes a run named after its directory (``3_basic``): its overrides as
params, its scalar gradients, worst check error, each check's error and each
timing as metrics, ``report.html`` and the plots as artifacts, and the run
``FAILED`` when the job's status is ``error``. A sweep is an experiment named after
its directory (created once, when the sweep starts); a single run goes to the
experiment ``tape-runner``. The store is ``tracking_uri`` if set, else
``$MLFLOW_TRACKING_URI``, else ``outputs/mlruns/`` beside the other outputs: an
embedded SQLite database (``mlflow.db``; MLflow 3 refuses new plain-file stores) and
the artifacts beside it, no server (``mlflow ui --backend-store-uri
sqlite:///outputs/mlruns/mlflow.db``). MLflow is an optional extra
(``pip install '.[mlflow]'``) imported only here, only when a job ends.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from runner import tracking
from runner.report import REPORT_HTML

log = logging.getLogger(__name__)

SINGLE_RUNS = "tape-runner"  # the experiment of runs made without -m
DEFAULT_STORE = Path("outputs") / "mlruns"  # mlflow.db and artifacts/, under the directory Hydra started in


class MlflowCallback(Callback):
    """Registered by conf/tracking/mlflow.yaml as hydra.callbacks.mlflow."""

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None) -> None:
        self.tracking_uri, self.experiment = tracking_uri, experiment

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:  # created here, once, so that parallel workers never race to create it
            _experiment_id(_client(self._uri(config)), self._experiment(config), self._artifacts(config))
        except Exception as err:
            log.error("mlflow: cannot reach %s: %s", self._uri(config), err)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        job = tracking.finished_job(config)
        if job is None:
            return
        uri = self._uri(config)
        try:
            client = _client(uri)
            log_job(client, _experiment_id(client, self._experiment(config), self._artifacts(config)), job)
        except Exception as err:  # a tracking failure never costs the job its results
            log.error("mlflow: could not log %s to %s: %s", job.name, uri, err)

    def _uri(self, config: DictConfig) -> str:
        if self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):
            return str(self.tracking_uri or os.environ["MLFLOW_TRACKING_URI"])
        return f"sqlite:///{self._store(config) / 'mlflow.db'}"

    def _store(self, config: DictConfig) -> Path:
        store = (Path(config.hydra.runtime.cwd) / DEFAULT_STORE).resolve()
        store.mkdir(parents=True, exist_ok=True)
        return store

    def _artifacts(self, config: DictConfig) -> str | None:
        """Beside the default store; elsewhere the tracking server decides."""
        explicit = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        return None if explicit else (self._store(config) / "artifacts").as_uri()

    def _experiment(self, config: DictConfig) -> str:
        if self.experiment:
            return str(self.experiment)
        return str(config.hydra.sweep.dir) if config.hydra.mode == RunMode.MULTIRUN else SINGLE_RUNS


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, name: str, artifacts: str | None) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifacts)
    except MlflowException:  # created meanwhile by another process
        return client.get_experiment_by_name(name).experiment_id


def log_job(client: Any, experiment_id: str, job: tracking.Job) -> str:
    """One MLflow run for ``job``; returns its id."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    run = client.create_run(experiment_id, run_name=job.name, tags={
        "tape_runner.status": str(job.record.get("status")),
        "tape_runner.scenario": str(job.record.get("scenario")),
        "tape_runner.run_dir": str(job.run_dir.resolve())})
    run_id = run.info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric(tracking.safe_name(k), v, now, 0) for k, v in job.metrics.items()],
        params=[Param(tracking.safe_name(k), v) for k, v in job.params.items()])
    for artifact in [job.run_dir / REPORT_HTML, *job.plots]:
        if artifact.is_file():
            client.log_artifact(run_id, str(artifact))
    client.set_terminated(run_id, "FAILED" if job.record.get("status") == "error" else "FINISHED")
    return run_id
