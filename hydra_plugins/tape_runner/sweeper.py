"""Hydra's basic sweeper, composing each job's config once instead of twice.

Hydra's :class:`BasicSweeper` composes every job's config before launching a
batch, so that a bad override fails the sweep before any job runs, and then the
launcher composes the same config again to run it. Composition is most of what a
short job costs (a fifth of a second here, ten times the job's own tape work), so
this sweeper keeps the configs it composed to validate and hands each one to the
launcher when it asks. Everything else (expansion, batches, ``max_batch_size``,
``params``) is the basic sweeper's.

A launcher that composes in another process (joblib's workers) receives the
loader pickled without the held configs, and composes there as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class ComposedAhead:
    """A config loader that answers a job's first composition from the one made to validate it."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._held: dict[tuple[str, ...], list[DictConfig]] = {}

    def compose_ahead(self, master_config: DictConfig, overrides: Sequence[str]) -> None:
        config = self._loader.load_sweep_config(master_config, list(overrides))
        self._held.setdefault(tuple(overrides), []).append(config)

    def release(self) -> None:
        self._held.clear()

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        held = self._held.get(tuple(sweep_overrides))
        if held:
            return held.pop()
        return self._loader.load_sweep_config(master_config, sweep_overrides)

    def __getattr__(self, name: str) -> Any:  # every other ConfigLoader method, unchanged
        return getattr(self._loader, name)

    def __getstate__(self) -> dict[str, Any]:
        return {"_loader": self._loader, "_held": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class ComposeOnceSweeper(BasicSweeper):
    """The basic sweeper whose launcher reuses the configs composed for validation."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.composed = ComposedAhead(hydra_context.config_loader)
        context = HydraContext(config_loader=self.composed, callbacks=hydra_context.callbacks)  # type: ignore[arg-type]
        super().setup(hydra_context=context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        try:
            return super().sweep(arguments)
        finally:
            self.composed.release()

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        assert self.config is not None
        self.composed.release()  # a previous batch's leftovers (a launcher that composed elsewhere)
        for overrides in batch:
            self.composed.compose_ahead(self.config, overrides)
