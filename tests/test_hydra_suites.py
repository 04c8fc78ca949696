"""Hydra's own launcher and batched-sweeper test suites, run against the template sweeper.

Hydra's plugins prove themselves with these suites (``hydra.test_utils.launcher_common_tests``):
the configs, overrides and return value of every job's ``JobReturn``, its files, batches of
``max_batch_size``. They run twice here, because the sweeper composes two ways:

- found on ``hydra.searchpath`` (how an app that is not tape-runner selects it): the composer
  then composes every job from scratch, as Hydra's basic sweeper does, since a group may live
  on a path only a full composition sees;
- found in Hydra's ConfigStore (the same ``conf/hydra/sweeper/template.yaml``, stored for the
  test only: a ConfigStore entry beside the YAML would have Hydra warn, on every tape-runner
  run, that the YAML is validated against it): no search path, so each job's config is a
  template plus its values, the path tape-runner's own sweeps take.

``test_each_way_composes_as_it_says`` checks that the two ways are the two paths. The jobs
run with ``hydra.job.chdir=true``: the suites look for each job's files in its working
directory, Hydra 1.1's default, which ``version_base="1.3"`` (set by ``runner.cli.main``) turns off.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.sources_registry import SourcesRegistry
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.config_source import ConfigSource
from hydra.test_utils.launcher_common_tests import BatchedSweeperTestSuite, LauncherTestSuite
from omegaconf import DictConfig, OmegaConf

from runner.cli.main import CONFIG_DIR

SWEEPER_YAML = Path(CONFIG_DIR) / "hydra" / "sweeper" / "template.yaml"
SEARCH_PATH, CONFIG_STORE = "search path", "ConfigStore"
SELECT = ["hydra/sweeper=template", "hydra.job.chdir=true"]


@pytest.fixture(autouse=True)
def config_sources_as_imported() -> Iterator[None]:
    """After ``hydra_restore_singletons``, Hydra's config sources are the classes imported now.

    Its restore rescans Hydra's plugins, re-executing their modules (new classes), while the
    restored SourcesRegistry keeps the classes from before: a config loader made later (a
    later test's) would then not pickle, as joblib pickles it. Set up before that fixture,
    this one is torn down after it.
    """
    yield
    SourcesRegistry.instance().types = {source.scheme(): source
                                        for source in Plugins.instance().discover(ConfigSource)}


@pytest.fixture(params=[SEARCH_PATH, CONFIG_STORE])
def sweeper(request: pytest.FixtureRequest, hydra_restore_singletons: None) -> list[str]:
    """Overrides selecting the template sweeper, found one way or the other.

    The ConfigStore entry lasts one test: ``hydra_restore_singletons`` restores the store after it.
    """
    if request.param == CONFIG_STORE:
        node = OmegaConf.load(SWEEPER_YAML)
        ConfigStore.instance().store(group="hydra/sweeper", name="template", node=node)
        return SELECT
    return [*SELECT, f"hydra.searchpath=[file://{CONFIG_DIR}]"]


@pytest.mark.parametrize("launcher_name", ["basic"])
class TestLauncherSuite(LauncherTestSuite):
    @pytest.fixture
    def overrides(self, sweeper: list[str]) -> list[str]:
        return sweeper


@pytest.mark.parametrize("launcher_name", ["basic"])
class TestBatchedSweeperSuite(BatchedSweeperTestSuite):
    @pytest.fixture
    def overrides(self, sweeper: list[str]) -> list[str]:
        return [*sweeper, "hydra.sweeper.max_batch_size=2"]


JOBS = [[f"group1={group}", f"bar={bar}"] for group in ("file1", "file2") for bar in (100, 200, 300)]


@pytest.mark.parametrize(
    ("sweeper", "compositions"),
    [(SEARCH_PATH, JOBS + JOBS),  # from scratch: every job twice, validated then launched
     (CONFIG_STORE, [["group1=file1"], ["group1=file2"]])],  # from templates: once a choice of configs
    indirect=["sweeper"], ids=[SEARCH_PATH, CONFIG_STORE])
def test_each_way_composes_as_it_says(sweeper: list[str], compositions: list[list[str]],
                                      hydra_sweep_runner: Any, monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    composed: list[list[str]] = []
    compose: Callable[..., DictConfig] = ConfigLoaderImpl.load_sweep_config

    def recording(loader: ConfigLoaderImpl, master: DictConfig, overrides: list[str]) -> DictConfig:
        composed.append(list(overrides))
        return compose(loader, master, overrides)

    monkeypatch.setattr(ConfigLoaderImpl, "load_sweep_config", recording)
    run = hydra_sweep_runner(
        calling_file=None, calling_module="hydra.test_utils.a_module", task_function=None,
        config_path="configs", config_name="compose",
        overrides=[*sweeper, "group1=file1,file2", "bar=100,200,300"], temp_dir=tmp_path)
    with run:
        (returns,) = run.returns
    assert composed == compositions
    assert [r.overrides for r in returns] == JOBS
    configs = [{"foo": foo, "bar": bar} for foo in (10, 20) for bar in (100, 200, 300)]
    assert [r.cfg for r in returns] == configs
    # Hydra's plugin scan re-executes plugin modules: the class is the module's latest one
    packed = importlib.import_module("hydra_plugins.tape_runner.sweeper").PackedJobReturn
    assert all(type(r) is packed for r in returns)
