"""Reruns from a run's snapshot: ``tape-runner --config-path <run>/.hydra --config-name config``.

Two things stand between Hydra and a rerun that is a run like any other. Hydra
reads a relative ``--config-path`` against the package that holds the app
(``runner/``), not the working directory; and a saved ``config.yaml`` has no
``hydra:`` section, so the rerun would lose the project's run-directory naming,
``tape-runner.log`` and callbacks. :func:`rerun_arguments` therefore makes the
path absolute, puts the project's config directory on Hydra's search path and adds
the project's Hydra settings to the defaults (``+hydra=default``). A snapshot is
data someone may have sent: it passes :mod:`runner.jobs.received` before Hydra reads it.

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
from runner.jobs import received
from runner.outputs.files import write_atomic

#: Added to a rerun's overrides to compose the project's Hydra settings; never part of its computation.
PROJECT_HYDRA = "+hydra=default"
_PATH_FLAGS = ("--config-path", "-cp")


def _hydra_quoted(text: str) -> str:
    """A value for Hydra's override grammar, quoted so that commas or brackets stay part of it."""
    mark = next((q for q in "'\"" if q not in text), None)
    if mark is None:
        raise ConfigError(f"cannot pass a path holding both kinds of quote to Hydra: {text}")
    return f"{mark}{text}{mark}"


def rerun_arguments(args: list[str], config_dir: str) -> list[str]:
    """``args`` with ``--config-path`` absolute and, for a snapshot, the project's Hydra settings added.

    ``config_dir`` is the project's config directory. A folder given to ``--config-path``
    is a run's snapshot, possibly received from someone else: it passes
    :func:`runner.jobs.received.check_snapshot` (the user's own overrides in ``args`` are theirs).

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
        received.check_snapshot(Path(path), received.installed_limits(config_dir),
                                received.SearchPath((Path(config_dir), *_config_dirs(args))),
                                own=_own_keys(args))
        source = f"file://{Path(config_dir).resolve()}"
        return [*out, f"hydra.searchpath=[{_hydra_quoted(source)}]", PROJECT_HYDRA]
    return out


def _config_dirs(args: list[str]) -> list[Path]:
    """The directories ``--config-dir`` (``-cd``) adds to the search path."""
    found = []
    for index, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag in ("--config-dir", "-cd"):
            value = value if eq else (args[index + 1] if index + 1 < len(args) else "")
            found.append(Path(os.path.abspath(os.path.expanduser(value))))
    return found


def _own_keys(args: list[str]) -> list[str]:
    """The keys the command line itself overrides (``limits.time_s=30`` -> ``limits.time_s``)."""
    return [arg.lstrip("+~").split("=", 1)[0] for arg in args if "=" in arg and not arg.startswith("-")]


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
