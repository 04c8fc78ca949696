"""tape-runner: config-driven experiments with TensorFlow's GradientTape.

From Python (a notebook, a script)::

    from runner import run, sweep
    r = run("basic", overrides=["scenario.inputs.x.value=4"])   # r.status, r.gradients["dy/dx"] -> 8.0
    s = sweep("basic", overrides=["scenario.inputs.x.value=1,2,3"])   # s.table: one row per job

``run`` and ``sweep`` load on first use (:mod:`runner.api`), so ``import runner``
and the CLI's start-up stay free of Hydra's composition, and TensorFlow loads
with the first run.
"""

from typing import Any

from runner.errors import ConfigError, JobError

__version__ = "0.1.0"
__all__ = ["ConfigError", "JobError", "run", "sweep"]


def __getattr__(name: str) -> Any:
    if name in ("run", "sweep"):
        from runner import api

        return getattr(api, name)
    raise AttributeError(f"module 'runner' has no attribute {name!r}")
