"""Real servers for the tests (TensorBoard, MLflow, Ray): started on 127.0.0.1, waited for, stopped.

A server that cannot start is a failure under CI (CI=true installs everything), and
elsewhere a skip that says what did not start and why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unavailable(what: str) -> None:
    """Fail under CI, skip elsewhere, naming what is missing."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test: {what}")
    pytest.skip(what)


def slurm_ready() -> str | None:
    """Why a sweep cannot go to Slurm here (.ci/run starts a one-node cluster), or None: it can."""
    if not shutil.which("sinfo"):
        return "Slurm is not installed (run .ci/slurm.sh)"
    state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    if state.returncode != 0 or not {"idle", "mix"} & set(state.stdout.split()):
        return f"no idle Slurm node (sinfo: {state.stdout.strip() or state.stderr.strip()})"
    return None


def chromium() -> str:
    """Debian's chromium, which .ci/run installs."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        unavailable("Debian's chromium is not installed (apt-get install chromium)")
    return str(path)


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def serve(command: list[str], ready: Callable[[], bool], log: Path, timeout: float = 120,
          cwd: Path | None = None, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run ``command`` in its own process group until ``ready()``; stop the group afterwards."""
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                   cwd=cwd, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text()[-2000:]
                unavailable(f"{' '.join(command)} did not start: {tail}")
            time.sleep(0.5)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
