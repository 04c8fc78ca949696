"""``tape-runner --help``: what a newcomer needs, in a fraction of a second.

Hydra's own help composes and lists every config group, Hydra's included, which
costs seconds; this one reads the scenario and experiment files' names and
descriptions and prints usage. ``--hydra-help`` still shows Hydra's options and
``--cfg job`` the composed config.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

USAGE = """\
tape-runner: run a GradientTape scenario, verify every gradient, write results and a report.

Usage: tape-runner [key=value ...]           one run     (outputs/<date>/<time>_<scenario>/)
       tape-runner -m [key=a,b,c ...]        a sweep     (outputs/multirun/<date>/<time>/)
       tape-runner experiment=<name>         a named sweep
       tape-runner --cfg job [key=value ...] print the composed config, run nothing
       tape-runner --hydra-help              Hydra's own options (launchers, sweepers, logging)
       tape-runner --config-path <run>/.hydra --config-name config    re-run a run exactly
       tape-runner-report <run or sweep> [--rerun]   rebuild reports; --rerun: compute again
                                             (a sweep: only its missing and errored jobs)
"""

OPTIONS = """\
Options (any config value can be overridden; see conf/config.yaml):
  scenario=<name>          what to differentiate (listed above); default basic
  seed=0                   seeds every random draw
  dtype=float32            float16 | bfloat16 | float32 | float64
  compile=eager            eager | function (tf.function) | xla (jit_compile=True)
  plots=true report=true   write PNG plots; report.md, report.html and snippet.py
  checks.analytic=true checks.finite_differences=true    checks.tolerances.<dtype>.*
  limits.memory_mb=4096 limits.time_s=600                per-job bounds
  hydra/launcher=joblib | submitit_local | submitit_slurm | cluster | ray   where sweep jobs run
  tracking=none            tensorboard | mlflow | [tensorboard,mlflow]: log each job of a sweep
  objective=null           a gradient label (dy/dx) or max_check_error: what a job returns to a sweeper
  hydra/sweeper=optuna     search instead of a grid (with objective=...); a sweep's -m as usual
  --config-dir <dir>       your own <dir>/scenario/<name>.yaml beside the shipped ones
"""

EXAMPLES = """\
Examples:
  tape-runner                                        # d(x**2)/dx at 3 = 6
  tape-runner scenario.function='x**3*cos(x)' scenario.inputs.x.value=1.3
  tape-runner scenario=watch scenario.inputs.x.watch=true
  tape-runner scenario=sigmoid scenario.inputs.x.linspace.num=501
  tape-runner -m scenario=basic scenario.inputs.x.value='range(-3,4)'
  tape-runner experiment=watch_matrix hydra/launcher=joblib
  tape-runner scenario=program 'scenario.targets.loss=reduce_sum(where(y > 0, y, 0.1 * y)**2)'
  tape-runner --config-dir ./my_scenarios scenario=mine  # your own my_scenarios/scenario/mine.yaml

Exit status: 0 ok, 1 error (bad input, or a job that raised), 2 a gradient check failed.
Outputs: results.json, report.md/html, snippet.py, plots and the log, per run.
"""


def _entries(directory: Path) -> list[tuple[str, str]]:
    """(name, first sentence of its description) for each YAML file in ``directory``."""
    entries = []
    for path in sorted(directory.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        scenario = data.get("scenario") if isinstance(data.get("scenario"), dict) else {}
        text = data.get("description") or scenario.get("description") or _header(path)
        entries.append((path.stem, text.split(". ")[0].rstrip(".") + "."))
    return entries


def _header(path: Path) -> str:
    """An experiment's first comment line, after its name."""
    for line in path.read_text().splitlines():
        if line.startswith("#") and ":" in line and "@package" not in line:
            return line.split(":", 1)[1].strip()
    return ""


def _listing(title: str, entries: list[tuple[str, str]]) -> str:
    width = max((len(name) for name, _ in entries), default=0) + 2
    lines = [title]
    for name, text in entries:
        wrapped = textwrap.wrap(text, 96 - width) or [""]
        lines.append(f"  {name.ljust(width)}{wrapped[0]}")
        lines += [" " * (width + 2) + more for more in wrapped[1:]]
    return "\n".join(lines) + "\n"


def help_text(config_dir: Path, own: list[Path] | None = None) -> str:
    """The help: the shipped scenarios and experiments, and those of each ``--config-dir`` in ``own``."""
    guide = [(f"guide/{name}", text) for name, text in _entries(config_dir / "scenario" / "guide")]
    yours = [_listing(f"Your {group}s (--config-dir {path}):", entries)
             for path in own or [] for group in ("scenario", "experiment")
             if (entries := _entries(path / group))]
    return "\n".join([
        USAGE,
        _listing("Scenarios (scenario=<name>):", _entries(config_dir / "scenario")),
        *yours,
        *([_listing("TensorFlow's autodiff guides (scenario=guide/<name>; all: experiment=tf_guide):",
                    guide)] if guide else []),
        _listing("Experiments (experiment=<name>):", _entries(config_dir / "experiment")),
        OPTIONS,
        EXAMPLES,
    ])
