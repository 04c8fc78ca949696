"""The Hydra entry point behind ``tape-runner`` and ``python -m runner``.

Deliberately thin: Hydra composes and validates the config, :mod:`runner.jobs.task`
does the job, and the process exits with the worst status of the jobs it ran
(0 ok, 1 error, 2 a check failed). Nothing here imports TensorFlow, or even
the job's own modules until there is a job, so ``--help`` (:mod:`runner.cli.help`)
and ``--cfg job`` answer at once.
"""

from __future__ import annotations

import re
import sys
import warnings
from importlib import resources
from pathlib import Path

import hydra
from omegaconf import DictConfig

from runner.cli.hints import unknown_scenario_key
from runner.errors import ConfigError
from runner.jobs.snapshot import rerun_arguments
from runner.scenarios.schema import register_configs

#: The YAML configs, found through the package: runner/conf links to conf/ at the top of the
#: checkout and every distribution ships them there, so any install runs from any directory.
CONFIG_DIR = str(resources.files("runner") / "conf")

register_configs()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _app(cfg: DictConfig) -> float | None:
    from runner.jobs import objective, task

    task.execute(cfg)
    return objective.of_job(cfg)  # what a searching sweeper (Optuna) optimises; None by default


_EXPRESSION_OVERRIDE = re.compile(
    r"(?P<key>[+~]*scenario\.(?:function|(?:targets|closed_form)\.\w+))=(?P<value>[^'\"].*)", re.S
)
_SWEEP_FUNCTION = re.compile(r"(?:choice|range|interval|sort|shuffle|glob|tag|str|int|float|bool)\(")


def quote_expressions(args: list[str]) -> list[str]:
    """Let ``scenario.function=x**3*cos(x)`` through Hydra's override grammar.

    This covers scenario.function and scenario.{targets,closed_form}.<name>.
    Hydra reads parentheses as its own function calls, and commas, spaces and
    ``@`` as its own syntax, so an unquoted expression fails to parse. Each
    comma-separated value (a sweep's choices) is wrapped in quotes, splitting only
    at commas outside brackets: ``where(x > 0, x, 0)`` and ``x * [3.0, 4.0]`` stay
    one expression. Values already quoted, or written with Hydra's sweep
    functions, pass untouched. Anything else still reaches the expression parser,
    which names what it refuses.
    """
    quoted = []
    for arg in args:
        match = _EXPRESSION_OVERRIDE.fullmatch(arg)
        mark = next((q for q in "'\"" if q not in arg), None)
        if match and mark and not _SWEEP_FUNCTION.match(match["value"]):
            parts = _top_level_parts(match["value"])
            arg = match["key"] + "=" + ",".join(f"{mark}{part}{mark}" for part in parts)
        quoted.append(arg)
    return quoted


def _top_level_parts(value: str) -> list[str]:
    """``value`` split at the commas that are not inside (), [] or {}."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(value):
        depth += (char in "([{") - (char in ")]}")
        if char == "," and depth == 0:
            parts.append(value[start:i])
            start = i + 1
    return [*parts, value[start:]]


#: Hydra's warning that a config file replaces a plugin's schema of the same name: our
#: conf/hydra/launcher/ray.yaml does so on purpose (it leaves the object store's size to Ray).
_REPLACED_SCHEMA = r"\s*'hydra/launcher/ray' is validated against ConfigStore schema with the same name"


def version_text() -> str:
    """``tape-runner 0.1.0 (Hydra 1.3.8, TensorFlow 2.21.0, Python 3.11.2)``, without importing TensorFlow."""
    import platform
    from importlib import metadata

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return (f"tape-runner {installed('tape-runner')} (Hydra {installed('hydra-core')}, TensorFlow "
            f"{installed('tensorflow')}, Python {platform.python_version()})")


def _config_dirs(args: list[str]) -> list[Path]:
    """The directories ``--config-dir``/``-cd`` name, in either of Hydra's spellings."""
    found = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg in ("--config-dir", "-cd")]
    found += [arg.split("=", 1)[1] for arg in args if arg.startswith("--config-dir=")]
    return [Path(path) for path in found]


def main() -> None:
    warnings.filterwarnings("ignore", message=_REPLACED_SCHEMA, category=UserWarning)
    if "--version" in sys.argv[1:]:
        print(version_text())
        return
    if {"--help", "-h"} & set(sys.argv[1:]):  # anywhere: `tape-runner scenario=linear --help` too
        from runner.cli.help import help_text

        print(help_text(Path(CONFIG_DIR), _config_dirs(sys.argv[1:])))
        return
    try:
        if hint := unknown_scenario_key(sys.argv[1:], CONFIG_DIR):
            raise ConfigError(hint)
        sys.argv[1:] = rerun_arguments(quote_expressions(sys.argv[1:]), CONFIG_DIR)
    except ConfigError as err:
        print(f"tape-runner: {err}", file=sys.stderr)
        sys.exit(1)
    from runner.jobs import task

    with task.invocation() as invocation:  # this invocation's jobs, apart from any before it
        try:
            _app()
        finally:
            # A failed launcher skips on_multirun_end: write the summary anyway. The module
            # is loaded only if Hydra started a sweep (not for --cfg, --info, ...).
            if callbacks := sys.modules.get("runner.jobs.callbacks"):
                callbacks.finish_pending()
    sys.exit(invocation.exit_status())


if __name__ == "__main__":
    main()
