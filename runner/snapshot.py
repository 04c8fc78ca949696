"""Reruns from a run's snapshot: ``tape-runner --config-path <run>/.hydra --config-name config``.

Two things stand between Hydra and a rerun that is a run like any other. Hydra
reads a relative ``--config-path`` against the package that holds the app
(``runner/``), not the working directory; and a saved ``config.yaml`` has no
``hydra:`` section, so the rerun would lose the project's run-directory naming,
``tape-runner.log`` and callbacks. :func:`rerun_arguments` therefore makes the
path absolute and, when it is a run's snapshot (Hydra's three files), puts the
project's config directory on Hydra's search path and adds the project's Hydra
settings to the defaults (``+hydra=default``). A snapshot is data someone may have
sent: one that could change Hydra's settings is refused before Hydra reads it.

A snapshot's ``overrides.yaml`` lists the overrides that composed its config from
the project's. :func:`record_overrides` gives a rerun those followed by its own and
writes them into the rerun's snapshot, so its ``command`` reproduces it, and a
rerun of the rerun finds them again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runner.errors import ConfigError
from runner.outputs import write_atomic

#: Added to a rerun's overrides to compose the project's Hydra settings; never part of its computation.
PROJECT_HYDRA = "+hydra=default"
_PATH_FLAGS = ("--config-path", "-cp")
_SNAPSHOT_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def _hydra_quoted(text: str) -> str:
    """A value for Hydra's override grammar, quoted so that commas or brackets stay part of it."""
    mark = next((q for q in "'\"" if q not in text), None)
    if mark is None:
        raise ConfigError(f"cannot pass a path holding both kinds of quote to Hydra: {text}")
    return f"{mark}{text}{mark}"


def rerun_arguments(args: list[str], config_dir: str) -> list[str]:
    """``args`` with ``--config-path`` absolute and, for a snapshot, the project's Hydra settings added.

    ``config_dir`` is the project's config directory, a path or a ``pkg://`` search path.

    Raises :class:`ConfigError` for a snapshot that holds more than a run's saved config.
    """
    out = list(args)
    for index, arg in enumerate(out):
        flag, eq, value = arg.partition("=")
        if flag not in _PATH_FLAGS:
            continue
        if not eq:
            if index + 1 >= len(out):
                return out  # Hydra's own parser names the missing value
            index, value = index + 1, out[index + 1]
        if value.startswith("pkg://"):
            return out
        path = os.path.abspath(os.path.expanduser(value))
        out[index] = path if not eq else f"{flag}={path}"
        if (Path(path) / "overrides.yaml").is_file():
            _check_snapshot(Path(path))
            source = config_dir if "://" in config_dir else f"file://{Path(config_dir).resolve()}"
            out += [f"hydra.searchpath=[{_hydra_quoted(source)}]", PROJECT_HYDRA]
        return out
    return out


def _check_snapshot(path: Path) -> None:
    """Refuse a snapshot that could change Hydra's settings (and so name Python to run): it is data.

    Hydra writes exactly config.yaml, hydra.yaml and overrides.yaml, and no ``hydra``
    or ``defaults`` key into config.yaml; a folder someone sent may hold anything.
    """
    import yaml

    extra = sorted(p.name for p in path.iterdir() if p.name not in _SNAPSHOT_FILES)
    if extra:
        raise ConfigError(f"{path} is not a run's snapshot: it holds {', '.join(extra)} "
                          f"(a snapshot holds only {', '.join(_SNAPSHOT_FILES)})")
    try:
        saved = yaml.safe_load((path / "config.yaml").read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read {path / 'config.yaml'}: {err}") from None
    if not isinstance(saved, dict) or {"hydra", "defaults"} & set(saved):
        raise ConfigError(f"{path / 'config.yaml'} is not a run's saved config: it must be a mapping "
                          "without 'hydra' or 'defaults' keys")


def _snapshot_overrides(hydra: Any) -> list[str]:
    """The overrides saved beside the primary config, when that config is a run's snapshot."""
    import yaml

    main = next((s for s in hydra.runtime.config_sources if s.provider == "main"), None)
    if main is None or main.schema != "file":
        return []
    saved = Path(main.path) / "overrides.yaml"
    if not saved.is_file():
        return []
    listed = yaml.safe_load(saved.read_text())
    if not isinstance(listed, list) or not all(isinstance(o, str) for o in listed):
        return []
    return listed


def record_overrides(hydra: Any, run_dir: Path) -> list[str]:
    """The overrides that compose this run's config from the project's config.

    A run's own, from the command line; a rerun's, its snapshot's followed by its
    own, which are also written into its snapshot in place of the rerun's own.
    """
    own = [o for o in hydra.overrides.task if o != PROJECT_HYDRA]
    if len(own) == len(hydra.overrides.task):
        return own
    overrides = [*_snapshot_overrides(hydra), *own]
    if hydra.output_subdir is not None:
        from omegaconf import OmegaConf

        write_atomic(run_dir / hydra.output_subdir / "overrides.yaml", OmegaConf.to_yaml(overrides))
    return overrides
