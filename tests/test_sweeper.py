"""The template sweeper: a job's config from a template is the config Hydra composes from scratch."""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf

from runner.app import CONFIG_DIR


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


def template_composer(loader: Any) -> Any:
    """Hydra's plugin scan re-imports plugin modules: take the class it will use, not an earlier one."""
    return importlib.import_module("hydra_plugins.tape_runner.sweeper").TemplateComposer(loader)


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
