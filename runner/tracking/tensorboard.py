"""``tracking=tensorboard``: each job as a TensorBoard run, the sweep as one HParams experiment.

Every job writes event files into ``<sweep>/tensorboard/<job>/`` (a single run into
``<run>/tensorboard/``): its scalar gradients, worst check error, each check's error
and each timing as scalars, its plots as images, and the HParams plugin's session
data (the job's overrides as hparams). When the sweep ends, ``<sweep>/tensorboard/``
gets the experiment's description: the swept overrides as hparams and the gradients
and the worst check error as its metrics, so ``tensorboard --logdir <sweep>/tensorboard``
shows one row per job in the HParams dashboard. TensorBoard ships with TensorFlow.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from runner import tracking
from runner.jobs.objective import MAX_CHECK_ERROR

log = logging.getLogger(__name__)


class TensorBoardCallback(Callback):
    """Registered by conf/tracking/tensorboard.yaml as hydra.callbacks.tensorboard."""

    def __init__(self, subdir: str = "tensorboard") -> None:
        self.subdir = subdir

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        job = tracking.finished_job(config)
        if job is None:
            return
        root = tracking.root_dir(config) / self.subdir
        logdir = root / job.name if root.parent != job.run_dir else root
        try:
            write_job(job, logdir)
        except Exception as err:  # a tracking failure never costs the job its results
            log.error("tensorboard: could not write %s: %s", logdir, err)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        job = tracking.finished_job(config)
        if job is not None:
            self._describe(tracking.root_dir(config) / self.subdir, [job])

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        root = tracking.root_dir(config)
        self._describe(root / self.subdir, tracking.finished_jobs(root))

    def _describe(self, logdir: Path, jobs: list[tracking.Job]) -> None:
        if not jobs:
            return
        try:
            write_experiment(logdir, jobs)
        except Exception as err:
            log.error("tensorboard: could not describe the experiment in %s: %s", logdir, err)


def write_job(job: tracking.Job, logdir: Path) -> None:
    """One job's scalars, plots and HParams session into ``logdir``."""
    from tensorboard.plugins.hparams import api as hp

    from runner.tfenv import tf

    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        hp.hparams({tracking.safe_name(k): tracking.typed(v) for k, v in job.params.items()},
                   trial_id=job.name)
        for tag, value in job.metrics.items():
            tf.summary.scalar(tag, value, step=0)
        for plot in job.plots:
            image = tf.io.decode_png(plot.read_bytes(), channels=4)
            tf.summary.image(f"plot/{plot.stem}", image[tf.newaxis], step=0)
    writer.close()


def write_experiment(logdir: Path, jobs: list[tracking.Job]) -> None:
    """The HParams experiment: swept overrides as hparams, gradients and the worst check error as metrics."""
    from tensorboard.plugins.hparams import api as hp

    from runner.tfenv import tf

    swept = tracking.swept_keys(jobs) or sorted({k for job in jobs for k in job.params})
    labels = list(dict.fromkeys(label for job in jobs for label in job.gradients))
    metrics = [hp.Metric(label, display_name=label) for label in labels]
    metrics.append(hp.Metric(MAX_CHECK_ERROR, display_name="worst check error"))
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        hp.hparams_config(hparams=[hp.HParam(tracking.safe_name(k)) for k in swept], metrics=metrics)
    writer.close()
