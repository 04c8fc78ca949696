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

A tracking server that is down must not hold the jobs up: MLflow's own client
retries a refused connection seven times with exponential backoff (about four
minutes per request), and a run or each job of a sweep paid that in full. So an
``http(s)`` store is probed first, once: a GET of its ``/health`` that must answer
within :data:`PROBE_TIMEOUT` (any HTTP status counts: something answered). The
verdict is kept for the process and the sweep (or run); a sweep's start probes it
afresh and, when the server is down, writes it to :data:`UNREACHABLE` in the sweep's
directory, so jobs in joblib or Ray workers read it instead of probing again. A job
whose server is down logs one error line naming the server and where its results
are, and returns: its results.json, its status and the exit status stay as they
are. Because a server can also die mid-sweep, MLflow's HTTP client is bounded
(:data:`HTTP_LIMITS`, each a default a user's own environment overrides), and a
request that fails has the server probed again, so that only that job pays for it.
SQLite and file stores need no probe.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from runner import tracking
from runner.outputs.files import write_json
from runner.outputs.report import REPORT_HTML

log = logging.getLogger(__name__)

SINGLE_RUNS = "tape-runner"  # the experiment of runs made without -m
DEFAULT_STORE = Path("outputs") / "mlruns"  # mlflow.db and artifacts/, under the directory Hydra started in
PROBE_TIMEOUT = 2.0  # seconds for a server's /health to answer; a live one answers in milliseconds
GATEWAY_DOWN = (502, 503, 504)  # a proxy in front of a server that is not there
UNREACHABLE = ".mlflow-unreachable"  # in a sweep's directory: {"uri", "reason"} of a server found down
#: MLflow's HTTP client, bounded: its defaults (7 retries, backoff factor 2, 120 s per request) cost
#: minutes per request when a server goes away; these cost seconds and still retry a passing error twice.
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}

#: (tracking URI, sweep or run directory) -> why its server is unreachable; None: it answered.
_verdicts: dict[tuple[str, str], str | None] = {}


class MlflowCallback(Callback):
    """Registered by conf/tracking/mlflow.yaml as hydra.callbacks.mlflow."""

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None) -> None:
        self.tracking_uri, self.experiment = tracking_uri, experiment

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self._unreachable(config, fresh=True) is not None:
            return  # each job says so, in one line naming its results
        uri, experiment = self._uri(config), self._experiment(config)
        try:  # created here, once, so that parallel workers never race to create it
            _experiment_id(_client(uri), experiment, self._artifacts(config))
        except Exception as err:
            log.error("mlflow: could not create the experiment %s in %s: %s", experiment, _shown(uri), err)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        job = tracking.finished_job(config)
        if job is None:
            return
        uri = self._uri(config)
        why = self._unreachable(config)
        if why is None:
            try:
                client = _client(uri)
                experiment_id = _experiment_id(client, self._experiment(config), self._artifacts(config))
                log_job(client, experiment_id, job)
                return
            except Exception as err:  # a tracking failure never costs the job its results
                why = self._unreachable(config, fresh=True)  # gone meanwhile? then later jobs skip it
                if why is None:
                    log.error("mlflow: could not log %s to %s: %s", job.name, _shown(uri), err)
                    return
        log.error("mlflow: %s is unreachable (%s); %s not logged, its results are in %s",
                  _shown(uri), why, job.name, job.run_dir)

    def _unreachable(self, config: DictConfig, fresh: bool = False) -> str | None:
        """Why the tracking server cannot be reached, or None when it answers or the store is no server.

        Known verdicts are reused (this process's, then the sweep's marker file); ``fresh`` probes again.
        """
        uri = self._uri(config)
        if urlsplit(uri).scheme not in ("http", "https"):
            return None
        root = tracking.root_dir(config)
        marker = root / UNREACHABLE if config.hydra.mode == RunMode.MULTIRUN else None
        key = (uri, str(root))
        if fresh or key not in _verdicts:
            known = None if fresh or marker is None else _marked(marker, uri)
            _verdicts[key] = known or _probe(uri)
            if marker is not None and known is None:
                _mark(marker, uri, _verdicts[key])
        return _verdicts[key]

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


def _shown(uri: str) -> str:
    """``uri`` as a log line may show it: without the ``user:password@`` an http(s) URI may carry."""
    parts = urlsplit(uri)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl() if "@" in parts.netloc else uri


def _probe(uri: str) -> str | None:
    """None if the server at ``uri`` answers its /health within PROBE_TIMEOUT, else why not.

    Any HTTP status is an answer (an auth proxy's 401, a server without /health's 404) except a
    gateway's 502, 503 or 504, which answers for a server behind it that does not (and which MLflow
    would retry). urllib takes the same proxy settings from the environment as MLflow's requests;
    credentials in the URI (which requests would send) are left out, as urllib cannot take them there.
    """
    parts = urlsplit(uri)
    health = parts._replace(netloc=parts.netloc.rpartition("@")[2], path=f"{parts.path.rstrip('/')}/health")
    try:
        with urllib.request.urlopen(health.geturl(), timeout=PROBE_TIMEOUT):
            return None
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code} {err.reason}" if err.code in GATEWAY_DOWN else None
    except urllib.error.URLError as err:
        if isinstance(err.reason, ssl.SSLError):
            return None  # it answered in TLS; MLflow's own certificate settings decide
        return str(err.reason)
    except (OSError, ValueError) as err:  # a reply too slow or cut off; a URL urllib cannot open
        return str(err) or type(err).__name__


def _marked(marker: Path, uri: str) -> str | None:
    """The reason a sweep's marker gives for ``uri`` being down, if it has one."""
    try:
        found = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(found, dict) and found.get("uri") == uri and isinstance(found.get("reason"), str):
        return found["reason"]
    return None


def _mark(marker: Path, uri: str, why: str | None) -> None:
    """Record the verdict for the sweep's other processes; it only spares them a probe, so never fails."""
    try:
        if why is None:
            marker.unlink(missing_ok=True)
        else:
            write_json(marker, {"uri": uri, "reason": why})
    except OSError as err:
        log.debug("mlflow: cannot record the verdict in %s: %s", marker, err)


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    if urlsplit(uri).scheme in ("http", "https"):
        for name, value in HTTP_LIMITS.items():
            os.environ.setdefault(name, value)
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
