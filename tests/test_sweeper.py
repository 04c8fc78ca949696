"""The compose-once sweeper: each job's config composed once, and the same config as Hydra's."""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from runner.app import CONFIG_DIR


class CountingLoader:
    """Stands in for Hydra's config loader: composes through Hydra, counting each composition."""

    def __init__(self) -> None:
        self.composed: list[tuple[str, ...]] = []
        self.loader = GlobalHydra.instance().config_loader()

    def load_sweep_config(self, master_config: Any, sweep_overrides: list[str]) -> Any:
        self.composed.append(tuple(sweep_overrides))
        return self.loader.load_sweep_config(master_config, sweep_overrides)

    def get_sources(self) -> list:
        return ["sources"]


def composed_ahead(loader: object) -> object:
    """Hydra's plugin scan re-imports plugin modules: take the class it will use, not an earlier one."""
    return importlib.import_module("hydra_plugins.tape_runner.sweeper").ComposedAhead(loader)


@pytest.fixture
def master() -> object:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        yield compose(config_name="config", overrides=["scenario=basic"], return_hydra_config=True)
    GlobalHydra.instance().clear()


def test_the_launcher_gets_the_config_composed_to_validate(master: object) -> None:
    loader = CountingLoader()
    ahead = composed_ahead(loader)
    jobs = [["scenario.inputs.x.value=1"], ["scenario.inputs.x.value=2"], ["scenario.inputs.x.value=2"]]
    for job in jobs:
        ahead.compose_ahead(master, job)
    launched = [ahead.load_sweep_config(master, job) for job in jobs]
    assert len(loader.composed) == 3  # validation only: the launcher composed nothing more
    assert [c.scenario.inputs.x.value for c in launched] == [1, 2, 2]
    assert launched[1] is not launched[2]  # a repeated job still gets a config of its own

    fresh = loader.loader.load_sweep_config(master, ["scenario.inputs.x.value=2"])
    assert OmegaConf.to_yaml(launched[1]) == OmegaConf.to_yaml(fresh)

    again = ahead.load_sweep_config(master, jobs[0])  # nothing held any more: composed afresh
    assert len(loader.composed) == 4 and again.scenario.inputs.x.value == 1
    assert ahead.get_sources() == ["sources"]  # the rest of the loader's interface passes through


def test_a_pickled_loader_travels_without_the_held_configs(master: object) -> None:
    ahead = composed_ahead(CountingLoader.__new__(CountingLoader))
    ahead._held[("x=1",)] = [master]
    copy = pickle.loads(pickle.dumps(ahead))
    assert copy._held == {} and ahead._held  # a worker process composes for itself
    ahead.release()
    assert ahead._held == {}


def test_sweeps_use_it_by_default() -> None:
    text = (Path(CONFIG_DIR) / "hydra" / "default.yaml").read_text()
    assert "override sweeper: compose_once" in text
