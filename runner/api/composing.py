"""Configs composed in-process for the Python API, as the CLI's template sweeper composes them.

Hydra composes each choice of config groups (``scenario=sigmoid``) once per process and a
call's values (``scenario.inputs.x.value=4``) are applied to a copy, so a warm call
composes nothing. Hydra has no public API for composing a sweep's job outside its own
run, so this module, like :mod:`hydra_plugins.tape_runner.sweeper`, uses its config
loader; both are the only places that do.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict
from omegaconf.errors import OmegaConfBaseException

from runner.cli.main import CONFIG_DIR
from runner.errors import ConfigError
from runner.scenarios.schema import register_configs


class Composer:
    """Hydra's composition of conf/, once per choice of config groups (the template sweeper's composer)."""

    def __init__(self, hydra_overrides: tuple[str, ...]) -> None:
        from hydra._internal.utils import create_config_search_path

        from hydra_plugins.tape_runner.sweeper import TemplateComposer

        register_configs()
        self.loader = ConfigLoaderImpl(config_search_path=create_config_search_path(CONFIG_DIR))
        self.master = compose(lambda: self.loader.load_configuration(
            "config", list(hydra_overrides), RunMode.MULTIRUN, from_shell=False))
        self.templates = TemplateComposer(self.loader)
        self._task_templates: dict[tuple[str, ...], DictConfig] = {}

    def job(self, overrides: list[str]) -> DictConfig:
        """One job's full config (``hydra`` included), as Hydra composes it for a sweep's job."""
        return compose(lambda: self.templates.load_sweep_config(self.master, overrides))

    @functools.lru_cache(maxsize=64)  # noqa: B019 (composers live as long as the process)
    def task(self, overrides: tuple[str, ...]) -> tuple[DictConfig, tuple[str, ...]]:
        """The job's own config (without ``hydra``) and its task overrides, as :meth:`job` has them.

        Hydra's node is most of a config; a run that writes no snapshot copies the
        template without it, and applies its values with Hydra's override code. A
        job only reads its config, so the same overrides again reuse it as it is.
        """
        if self.master.hydra.searchpath:
            config = self.job(list(overrides))
            with open_dict(config):
                del config["hydra"]
            return config, tuple(o for o in overrides if not o.startswith("hydra"))
        choices, values, task_overrides = self._split(overrides)
        if choices not in self._task_templates:
            template = copy.deepcopy(compose(lambda: self.templates.template(self.master, choices)))
            with open_dict(template):
                del template["hydra"]
            self._task_templates[choices] = template
        config = copy.deepcopy(self._task_templates[choices])
        compose(lambda: ConfigLoaderImpl._apply_overrides_to_config(values, config))
        return config, task_overrides

    @functools.lru_cache(maxsize=256)  # noqa: B019 (composers live as long as the process)
    def _split(self, overrides: tuple[str, ...]) -> tuple[tuple[str, ...], list[Any], tuple[str, ...]]:
        parsed = parse_words(list(overrides))
        choices, values = self.templates.split(parsed)
        return choices, values, tuple(o.input_line for o in parsed if not o.is_hydra_override())


@functools.lru_cache(maxsize=8)
def composer(hydra_overrides: tuple[str, ...]) -> Composer:
    """Composers are cached: a warm call composes nothing unless it chooses a new config."""
    return Composer(hydra_overrides)


def compose(compose: Any) -> DictConfig:
    """Call Hydra's composition; its errors become a :class:`ConfigError` with Hydra's message on one line."""
    try:
        return compose()
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(one_line(err)) from None


def one_line(err: BaseException) -> str:
    """Hydra's message (and its cause's, as Hydra prints it) on one line, without the search path."""
    text = str(err).split("Config search path:")[0]
    if isinstance(err.__cause__, OmegaConfBaseException):
        text += "\n" + str(err.__cause__).splitlines()[0]
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def parse_words(words: list[str]) -> list[Any]:
    return [_parsed_one(word) for word in words]


@functools.lru_cache(maxsize=1024)
def _parsed_one(word: str) -> Any:
    """One override parsed by Hydra's grammar, once per text (a warm call repeats most of its words)."""
    try:
        (override,) = OverridesParser.create().parse_overrides([word])
    except HydraException as err:
        raise ConfigError(one_line(err)) from None
    return override


def hydra_part(words: list[str]) -> tuple[str, ...]:
    """The overrides of Hydra's own settings: composed into the master config, as the CLI does."""
    return tuple(o.input_line for o in parse_words(words) if o.is_hydra_override())
