"""The template sweeper: a job's config from a template is the config Hydra composes from scratch, and a
long sweep keeps every job's return whole in bounded memory."""

from __future__ import annotations

import copy
import importlib
import json
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf, open_dict

from runner.cli.main import CONFIG_DIR


class CountingLoader:
    """Hydra's own config loader, counting the compositions asked of it."""

    def __init__(self) -> None:
        self.loader = GlobalHydra.instance().config_loader()
        self.composed: list[list[str]] = []

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        self.composed.append(list(sweep_overrides))
        return self.loader.load_sweep_config(master_config, sweep_overrides)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.loader, name)


def sweeper_module() -> Any:
    """Hydra's plugin scan re-imports plugin modules: take the classes it will use, not earlier ones."""
    return importlib.import_module("hydra_plugins.tape_runner.sweeper")


def template_composer(loader: Any) -> Any:
    return sweeper_module().TemplateComposer(loader)


@pytest.fixture
def master() -> Iterator[DictConfig]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        config = compose(config_name="config", overrides=["scenario=basic"], return_hydra_config=True)
        assert config.hydra.sweep.dir  # resolved once, as a sweep does before its jobs: ${now:...} cached
        yield config
    GlobalHydra.instance().clear()


JOBS = [
    ["scenario.inputs.x.value=2"],
    ["scenario.inputs.x.value=-1.5", "plots=false", "seed=7"],
    ["scenario=linear", "scenario.batch=3", "dtype=float64"],
    ["scenario=sigmoid", "scenario.inputs.x.linspace.num=11", "compile=function"],
    ["scenario.function='x**3*cos(x)'", "checks.fd_max_elements=10"],
    ["+scenario.inputs.y.value=2", "scenario.function='x*y'"],
    ["scenario.inputs={x:{value:1.0,kind:constant,watch:true}}"],
    ["experiment=watch_matrix", "scenario.inputs.x.kind=constant"],
    ["hydra.job.chdir=true", "scenario.inputs.x.value=4"],
    ["checks=default", "limits.time_s=5", "scenario.name=renamed"],
]


@pytest.mark.parametrize("overrides", JOBS, ids=[" ".join(job) for job in JOBS])
def test_a_job_from_a_template_is_the_job_hydra_composes(master: DictConfig, overrides: list[str]) -> None:
    loader = CountingLoader()
    composer = template_composer(loader)
    fast = composer.load_sweep_config(master, overrides)
    slow = loader.loader.load_sweep_config(master, overrides)
    assert OmegaConf.to_yaml(fast) == OmegaConf.to_yaml(slow)
    assert OmegaConf.get_type(fast.scenario) is OmegaConf.get_type(slow.scenario)
    assert OmegaConf.is_struct(fast) == OmegaConf.is_struct(slow)
    assert fast.hydra.sweep.dir == slow.hydra.sweep.dir == master.hydra.sweep.dir  # the sweep's clock


@pytest.mark.parametrize("overrides", [["seed=abc"], ["scenario.nope=1"], ["~scenario.inputs"], ["+seed=3"]])
def test_a_bad_value_fails_as_hydra_fails_it(master: DictConfig, overrides: list[str]) -> None:
    loader = CountingLoader()
    with pytest.raises(ConfigCompositionException) as from_template:
        template_composer(loader).load_sweep_config(master, overrides)
    with pytest.raises(ConfigCompositionException) as from_scratch:
        loader.loader.load_sweep_config(master, overrides)
    assert type(from_template.value) is type(from_scratch.value)
    assert str(from_template.value) == str(from_scratch.value)


def test_one_composition_per_choice_of_configs(master: DictConfig) -> None:
    loader = CountingLoader()
    composer = template_composer(loader)
    for x in range(5):
        for scenario in ("basic", "watch"):
            job = [f"scenario={scenario}", f"scenario.inputs.x.value={x}"]
            config = composer.load_sweep_config(master, job)
            assert config.scenario.inputs.x.value == x and config.scenario.name == scenario
    assert loader.composed == [["scenario=basic"], ["scenario=watch"]]
    config.scenario.inputs.x.value = 99  # a job's config is its own: the template is untouched
    assert composer.load_sweep_config(master, ["scenario=watch"]).scenario.inputs.x.value == 3.0


def test_a_pickled_composer_composes_from_the_templates_it_carries(master: DictConfig) -> None:
    """What a joblib worker receives: it builds its jobs' configs without composing again."""
    loader = CountingLoader()
    composer = template_composer(loader)
    composer.load_sweep_config(master, ["scenario.inputs.x.value=1"])
    worker = pickle.loads(pickle.dumps(composer))
    config = worker.load_sweep_config(master, ["scenario.inputs.x.value=5"])
    assert config.scenario.inputs.x.value == 5
    assert worker._loader.composed == [[]]  # the parent's one composition, nothing more


def test_sweeps_use_it_by_default() -> None:
    text = (Path(CONFIG_DIR) / "hydra" / "default.yaml").read_text()
    assert "override sweeper: template" in text


def test_a_packed_return_is_the_jobs_return_in_a_few_kilobytes(master: DictConfig) -> None:
    task = copy.deepcopy(master)
    with open_dict(task):
        del task["hydra"]
    hydra = OmegaConf.masked_copy(master, "hydra")  # what run_job copies into hydra_cfg
    job = JobReturn(overrides=["seed=3"], cfg=copy.deepcopy(task), hydra_cfg=copy.deepcopy(hydra),
                    working_dir="/sweep/0", task_name="tape-runner", status=JobStatus.COMPLETED,
                    _return_value=0.5)
    packed = sweeper_module().PackedJobReturn
    packed.pack(job)
    assert type(job) is packed  # in place: run_job returns the object its callbacks see
    assert (job.overrides, job.working_dir, job.task_name, job.return_value) == (
        ["seed=3"], "/sweep/0", "tape-runner", 0.5)
    for read, original in ((job.cfg, task), (job.hydra_cfg, hydra)):
        assert OmegaConf.to_yaml(read) == OmegaConf.to_yaml(original)
        assert OmegaConf.is_struct(read) == OmegaConf.is_struct(original)
    assert OmegaConf.get_type(job.cfg.scenario) is OmegaConf.get_type(task.scenario)
    assert job.hydra_cfg.hydra.job.name == "tape-runner"
    assert sum(len(kept) for kept in vars(job).values() if isinstance(kept, bytes)) < 8_000  # live: ~140 KiB
    job.cfg.seed = 99  # each read is its own copy
    assert job.cfg.seed == task.seed
    sent = pickle.loads(pickle.dumps(job))  # as a joblib worker or a Slurm job sends it back
    assert type(sent) is packed and vars(sent) == vars(job)


def test_a_config_pickle_cannot_carry_stays_live() -> None:
    @dataclass
    class Local:  # pickle names classes by module and name: a function's own class has neither
        x: int = 1

    cfg = OmegaConf.structured(Local)
    job = JobReturn(cfg=cfg, status=JobStatus.COMPLETED)
    sweeper_module().PackedJobReturn.pack(job)
    assert type(job) is JobReturn and job.cfg is cfg


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


@pytest.mark.slow
def test_a_long_sweep_grows_at_most_10_mib_from_job_60_to_250_of_300(tmp_path: Path) -> None:
    """A 300-job sweep under the basic launcher, every return kept with its configs packed: the process's
    RSS, sampled from outside as results appear, grows at most 10 MiB from job 60 to job 250."""
    jobs, first, last, bound_mib = 300, 60, 250, 10
    command = [sys.executable, "-m", "runner", "-m", "scenario=basic", f"seed=range(0,{jobs})", "plots=false"]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: dict[int, float] = {}
    try:
        while proc.poll() is None and len(samples) < 2:
            done = len(list(tmp_path.glob("outputs/multirun/*/*/*/results.json")))
            for mark in (first, last):
                if done >= mark and mark not in samples:
                    samples[mark] = _rss_mib(proc.pid)
            time.sleep(0.05)
        assert proc.wait(timeout=600) == 0
    finally:
        proc.kill()
    # Measured: 2 to 3.5 MiB. Keeping the live configs instead, about 15 MiB; dropping them after each
    # launch of 64 jobs (the launcher before), 6 to 9 MiB: a launch's live configs fragment the heap.
    assert samples[last] - samples[first] <= bound_mib, samples
    statuses = json.loads(next(tmp_path.glob("outputs/multirun/*/*/summary.json")).read_text())["statuses"]
    assert statuses == {"ok": jobs}
