"""hydra/launcher=ray on a Ray cluster started here (ray start --head on 127.0.0.1), joined by its address.

The cluster starts as Ray starts one by default where a token is found: with token
authentication. The sweep joins it as docs/sweeps.md says, by its explicit address, with
nothing but the token where Ray looks for it (RAY_AUTH_TOKEN_PATH here, ~/.ray/auth_token
for a user).

The same sweep runs under the basic launcher and under Ray: the summaries and every
job's gradients must agree (the linear scenario draws seeded random weights, so a
worker that did not reseed between jobs would differ), and Ray's two workers must
import TensorFlow once each, not once per job.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import free_port, serve
from tests.test_doc_commands import doc_commands
from tests.warm_cli import run_commands

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
# A cluster on 127.0.0.1 for this test alone, with a token of its own (set by the fixture).
ENV = {k: v for k, v in os.environ.items()
       if k not in ("HYDRA_FULL_ERROR", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
SWEEP = ("experiment=seed_tour", "seed=0,1", "plots=false")
WORKERS = 2


def _ray_answers(address: str) -> bool:
    status = subprocess.run([str(BIN / "ray"), "status", "--address", address], capture_output=True,
                            timeout=60, env={**ENV, "RAY_AUTH_MODE": "token"})
    return status.returncode == 0


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(address, directory): a one-node Ray cluster whose workers start in ``directory``."""
    home = tmp_path_factory.mktemp("ray")
    token = home / "auth_token"  # where `ray start` finds a token, it turns token authentication on
    token.write_text(secrets.token_hex(32))
    ENV["RAY_AUTH_TOKEN_PATH"] = str(token)
    port = free_port()
    address = f"127.0.0.1:{port}"
    command = [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
               f"--port={port}", f"--num-cpus={WORKERS}", "--include-dashboard=false",
               "--disable-usage-stats"]
    with serve(command, lambda: _ray_answers(address), home / "ray.log", timeout=180, cwd=home, env=ENV):
        yield address, home


def _sweep(cwd: Path, *extra: str) -> tuple[Path, str]:
    """The sweep's directory, and what it printed."""
    cwd.mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "runner", "-m", *SWEEP, *extra], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (summary,) = cwd.glob("outputs/multirun/*/*/summary.json")
    return summary.parent, done.stdout + done.stderr


def _records(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/results.json")}


def test_ray_gives_the_basic_launchers_results_with_reused_workers(
    ray_cluster: tuple[str, Path], tmp_path: Path
) -> None:
    address, home = ray_cluster
    basic, _ = _sweep(tmp_path / "basic")
    # run from where the cluster's workers start, so the sweep's relative directory is the same for both
    ray, printed = _sweep(home, "hydra/launcher=ray", f"hydra.launcher.ray.init.address={address}")
    assert f"joining the Ray cluster at {address} with its authentication token" in printed
    assert "InvalidAuthToken" not in printed and "Traceback" not in printed
    assert "validated against ConfigStore schema" not in printed  # our ray.yaml replaces it on purpose

    def rows(sweep: Path) -> list[dict]:
        return json.loads((sweep / "summary.json").read_text())["rows"]

    assert rows(ray) == rows(basic)
    assert len(rows(ray)) == 10 and {r["status"] for r in rows(ray)} == {"ok"}
    assert [r["dy/dx"] for r in rows(ray)[:2]] == [6.0, 6.0]  # basic: x² at 3, both seeds
    on_ray, on_basic = _records(ray), _records(basic)
    assert sorted(on_ray) == sorted(on_basic)
    for name, record in on_ray.items():
        assert record["gradients"] == on_basic[name]["gradients"], name
    # linear's weights come from the seed: the two seeds differ, each equal to its basic twin above
    assert on_ray["6_linear"]["gradients"] != on_ray["7_linear"]["gradients"]
    # TensorFlow's import (3-4 s) is paid in a job's setup: once per worker, not once per job
    imports = [name for name, record in on_ray.items() if record["timings"]["setup"] > 1.0]
    assert 1 <= len(imports) <= WORKERS, sorted((r["timings"]["setup"], n) for n, r in on_ray.items())


#: docs/sweeps.md's commands for a cluster that stays up (`ray start` is the fixture's, on a free port).
PAGE = [c for page, c in doc_commands() if page == "sweeps.md" and "ray.init.address=" in c]


def test_the_pages_commands_join_the_cluster_as_written(
    ray_cluster: tuple[str, Path], tmp_path: Path
) -> None:
    """From the directory the cluster began in, by ``auto`` and by its address with an absolute sweep
    directory (``<head>:6379`` the cluster's, ``/shared/outputs/my-sweep`` under tmp_path); each a
    process of its own, forked from one that imported TensorFlow (tests/warm_cli.py)."""
    address, home = ray_cluster
    auto, explicit = PAGE
    assert auto == "tape-runner experiment=seed_tour hydra/launcher=ray hydra.launcher.ray.init.address=auto"
    shared = tmp_path / "shared" / "outputs" / "my-sweep"
    explicit = explicit.replace("<head>:6379", address).replace("/shared/outputs/my-sweep", str(shared))
    before = set(home.glob("outputs/multirun/*/*/summary.json"))
    basic = tmp_path / "basic"
    runs = run_commands([("tape-runner experiment=seed_tour", basic), (auto, home), (explicit, home)], ENV,
                        workers=1)
    for done in runs:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "InvalidAuthToken" not in done.stderr and "Traceback" not in done.stderr
    assert f"joining the Ray cluster at {address}" in runs[2].stdout + runs[2].stderr
    (joined,) = set(home.glob("outputs/multirun/*/*/summary.json")) - before
    (alone,) = basic.glob("outputs/multirun/*/*/summary.json")
    rows = [json.loads(p.read_text())["rows"] for p in (alone, joined, shared / "summary.json")]
    assert [r["status"] for r in rows[0]] == ["ok"] * 5 and rows[0][0]["dy/dx"] == 6.0  # x² at 3
    assert rows[1] == rows[0] and rows[2] == rows[0]
