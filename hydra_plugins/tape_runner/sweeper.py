"""Hydra's basic sweeper, with a job's config composed from a template instead of from scratch.

Composition is most of what a short job costs: Hydra reads and merges every
config file and schema again for each job (a fifth of a second here, several
times a small job's own work), and its :class:`BasicSweeper` does that twice per
job: once to validate the whole batch before anything runs, and again when the
launcher starts the job.

The jobs of a sweep mostly differ only in values (``scenario.inputs.x.value=3``),
not in which configs are composed (``scenario=linear``). So
:class:`TemplateComposer` has Hydra compose each distinct choice of configs once
(the template), and builds a job's config by copying its template and applying
the job's value overrides with Hydra's own override code, then setting the two
fields Hydra derives from the overrides (``hydra.overrides.task`` and
``hydra.job.override_dirname``). The result is the config Hydra would compose
(``tests/test_sweeper.py`` compares them); validation still runs before any job.
Everything else (expansion, batches, ``max_batch_size``, ``params``) is the basic
sweeper's.

A launcher that composes in other processes (joblib's workers) receives the
composer pickled with its templates (a few kilobytes each), so its workers
compose the same way.

A sweep's memory stays flat however many jobs it runs, and every job's return
stays whole. Hydra's ``run_job`` gives each ``JobReturn`` the job's config and a
deep copy of Hydra's (60 and 80 KiB as live configs for ``scenario=basic``), and
the basic sweeper keeps every return until the sweep ends: 1.4 GiB over 10,000
jobs. Once every callback has seen a job's return (``on_job_end``, in the process
that ran the job), :class:`PackingCallbacks` makes it a :class:`PackedJobReturn`.
Kept: the overrides, status, return value, task name, working directory and both
configs, which other sweepers, callbacks and Hydra's launcher tests read (``cfg``,
``hydra_cfg.hydra.job``). Dropped: the configs' live objects; each config is kept
as a compressed pickle (about 2 and 3 kB) and rebuilt, equal, on every read. A
process holds one job's live configs at a time, whatever the launcher, and a
worker sends its returns back packed.
"""

from __future__ import annotations

import copy
import pickle
import zlib
from typing import Any

from hydra._internal.callbacks import Callbacks
from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn
from hydra.errors import HydraException
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict


class TemplateComposer:
    """A config loader whose sweep configs are a template plus the job's values."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._templates: dict[tuple[str, ...], DictConfig] = {}

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        if master_config.hydra.searchpath:  # groups may live on a path only a full composition sees
            return self._loader.load_sweep_config(master_config, sweep_overrides)
        parsed = OverridesParser.create().parse_overrides(sweep_overrides)
        choices, values = self.split(parsed)
        config = copy.deepcopy(self.template(master_config, choices))
        ConfigLoaderImpl._apply_overrides_to_config(values, config)
        task = [o for o in parsed if not o.is_hydra_override()]
        naming = config.hydra.job.config.override_dirname
        with open_dict(config.hydra):
            config.hydra.overrides.task = [o.input_line for o in task]
            config.hydra.job.override_dirname = get_overrides_dirname(
                overrides=task, exclude_keys=list(naming.exclude_keys),
                item_sep=naming.item_sep, kv_sep=naming.kv_sep)
        OmegaConf.copy_cache(from_config=master_config, to_config=config)
        return config

    def split(self, parsed: list[Override]) -> tuple[tuple[str, ...], list[Override]]:
        """The overrides that choose what is composed (as text), and the values applied afterwards."""
        kinds = [self._is_value(o) for o in parsed]
        values = [o for o, is_value in zip(parsed, kinds, strict=True) if is_value]
        choices = tuple(o.input_line for o, is_value in zip(parsed, kinds, strict=True) if not is_value)
        return choices, values

    def template(self, master_config: DictConfig, choices: tuple[str, ...]) -> DictConfig:
        """The config Hydra composes for ``choices`` alone, composed once (do not modify it: copy it)."""
        if choices not in self._templates:
            self._templates[choices] = self._loader.load_sweep_config(master_config, list(choices))
        return self._templates[choices]

    def _is_value(self, override: Override) -> bool:
        """Hydra applies this after composing; it does not choose what is composed.

        Hydra's own rule: an override of a key that is not a config group (or whose
        value is a dict) sets a value. Overrides of Hydra's settings stay in the
        template, which Hydra composes with them.
        """
        if override.is_hydra_override() or override.package is not None:
            return False
        return isinstance(override.value(), dict) or not self._loader.repository.group_exists(
            override.key_or_group)

    def __getattr__(self, name: str) -> Any:  # every other ConfigLoader method, unchanged
        if name.startswith("__"):  # pickling probes for special methods before _loader exists
            raise AttributeError(name)
        return getattr(self._loader, name)


def _pack(config: DictConfig | None) -> bytes | None:
    return None if config is None else zlib.compress(pickle.dumps(config))


class _Packed:
    """A config field of a :class:`PackedJobReturn`: stored as a compressed pickle, rebuilt on each read."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, job: JobReturn | None, owner: type | None = None) -> Any:
        if job is None:  # looked up on the class (introspection)
            return self
        data = vars(job)[self.name]
        return None if data is None else pickle.loads(zlib.decompress(data))

    def __set__(self, job: JobReturn, config: DictConfig | None) -> None:
        vars(job)[self.name] = _pack(config)


class PackedJobReturn(JobReturn):
    """A job's return whose two configs are packed: a few kilobytes instead of about 140 KiB.

    Every other field is as Hydra set it. Each read of ``cfg`` or ``hydra_cfg`` rebuilds the
    config (a fraction of a millisecond), equal to the job's, with its types and flags, and its
    own copy: changing what a read gave does not change the return; assigning the field does.
    """

    cfg = _Packed()
    hydra_cfg = _Packed()

    @classmethod
    def pack(cls, job: JobReturn) -> None:
        """Make ``job`` itself one, as ``run_job`` returns the very object its callbacks see.

        A config pickle cannot carry (a structured config whose class is defined in a
        function) leaves ``job`` as it is, live, as Hydra's own launchers keep it.
        """
        try:
            packed = {name: _pack(getattr(job, name)) for name in ("cfg", "hydra_cfg")}
        except (pickle.PicklingError, AttributeError, TypeError):
            return
        vars(job).update(packed)  # where the fields' descriptors keep them
        job.__class__ = cls


class PackingCallbacks(Callbacks):
    """The sweep's callbacks, then each job's return packed, in the process that ran the job.

    ``on_job_end`` is the last moment Hydra hands over a job's return: every callback
    sees it as Hydra made it, then it is packed before the launcher keeps it.
    """

    def __init__(self, callbacks: Callbacks) -> None:
        self.callbacks = callbacks.callbacks  # the same, already instantiated callbacks

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        super().on_job_end(config=config, job_return=job_return, **kwargs)
        PackedJobReturn.pack(job_return)


class TemplateSweeper(BasicSweeper):
    """The basic sweeper, composing its jobs' configs through a :class:`TemplateComposer`.

    Both compositions, the batch's validation and the launcher's, go through the
    loader in the context this sweeper hands on, so both come from templates; the
    callbacks in that context (:class:`PackingCallbacks`) pack each job's return.

    ``rerun`` (job numbers) runs only those jobs of the sweep, under their own
    numbers and so into their own directories, through the same launcher; the
    sweep's ``multirun.yaml`` is left as the sweep wrote it. ``tape-runner-report
    DIR --rerun`` sets it to resume a sweep.
    """

    def __init__(self, max_batch_size: int | None, params: dict[str, str] | None = None,
                 rerun: list[int] | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.rerun = None if rerun is None else sorted(set(rerun))

    def sweep(self, arguments: list[str]) -> Any:
        if self.rerun is None:
            return super().sweep(arguments)
        assert self.hydra_context is not None and self.launcher is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        (jobs,) = self.split_arguments(overrides, None)
        unknown = [num for num in self.rerun if not 0 <= num < len(jobs)]
        if unknown:
            raise HydraException(f"hydra.sweeper.rerun: the jobs are 0 to {len(jobs) - 1}, not {unknown}")
        returns = []
        for start, batch in self._runs(jobs):
            self.validate_batch_is_legal(batch)
            returns.append(self.launcher.launch(batch, initial_job_idx=start))
        return returns

    def _runs(self, jobs: list[list[str]]) -> list[tuple[int, list[list[str]]]]:
        """The jobs to rerun as (first number, batch), each batch consecutive and at most max_batch_size."""
        assert self.rerun is not None
        runs: list[tuple[int, list[list[str]]]] = []
        for num in self.rerun:
            start, batch = runs[-1] if runs else (-1, [])
            if runs and start + len(batch) == num and len(batch) != (self.max_batch_size or -1):
                batch.append(jobs[num])
            else:
                runs.append((num, [jobs[num]]))
        return runs

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        composer = TemplateComposer(hydra_context.config_loader)
        callbacks = PackingCallbacks(hydra_context.callbacks)
        context = HydraContext(config_loader=composer, callbacks=callbacks)  # type: ignore[arg-type]
        super().setup(hydra_context=context, task_function=task_function, config=config)
