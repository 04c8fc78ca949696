"""The Hydra entry point behind ``tape-runner`` and ``python -m runner``.

Deliberately thin: Hydra composes and validates the config, :mod:`runner.task`
does the job, and the process exits with the worst status of the jobs it ran
(0 ok, 1 error, 2 a check failed). Nothing here imports TensorFlow, so
``--help`` and ``--cfg job`` answer at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from runner import task
from runner.schema import register_configs

#: The YAML configs live at the top of the checkout, beside the package.
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

register_configs()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _app(cfg: DictConfig) -> None:
    task.execute(cfg)


def main() -> None:
    _app()
    sys.exit(task.exit_status())


if __name__ == "__main__":
    main()
