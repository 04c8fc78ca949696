"""Shell completion through real bash, and --info: Hydra's own flags keep working on tape-runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
CONF = Path(__file__).resolve().parent.parent / "conf"

COMPLETE = """
eval "$(tape-runner --shell-completion install=bash)"
for line in "$@"; do
    COMP_LINE="$line"; COMP_POINT=${#line}; read -ra COMP_WORDS <<< "$line"
    [[ "$line" == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    COMPREPLY=()
    hydra_bash_completion
    echo "${COMPREPLY[*]}"
done
"""


def test_bash_completes_config_groups_choices_and_keys(tmp_path: Path) -> None:
    lines = ["tape-runner scenario=", "tape-runner tracking=", "tape-runner scenario.inputs.x.k",
             "tape-runner experiment=watch"]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", COMPLETE, "complete", *lines], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    scenarios, tracking, key, experiment = done.stdout.splitlines()
    shipped = sorted(f"scenario={p.stem}" for p in (CONF / "scenario").glob("*.yaml"))
    assert sorted(scenarios.split()) == shipped
    assert sorted(tracking.split()) == ["tracking=mlflow", "tracking=none", "tracking=tensorboard"]
    assert key == "scenario.inputs.x.kind="
    assert experiment == "experiment=watch_matrix"
    assert not list(tmp_path.iterdir())  # completing runs nothing and writes nothing


def test_info_describes_the_app_and_its_plugins(tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "tape-runner"), "--info"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    for plugin in ("TemplateSweeper", "OptunaSweeper", "JoblibLauncher", "RayLauncher", "SlurmLauncher"):
        assert plugin in done.stdout
    assert "tracking: none" in done.stdout and "scenario: basic" in done.stdout
    assert not list(tmp_path.iterdir())
