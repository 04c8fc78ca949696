"""Writing a run's files: atomically, in JSON that any tool can read.

Nothing here knows about routines: it turns an :class:`~runner.result.Outcome`
(or an error) into ``results.json`` and the plots, and describes the machine.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = "results.json"
JOBS = "jobs.json"  # a sweep's job list, at its root
MAX_LISTED = 10_000  # arrays larger than this are summarised, not listed
_UMASK = os.umask(0)
os.umask(_UMASK)
PACKAGES = ("tape-runner", "tensorflow", "hydra-core", "omegaconf", "sympy", "numpy", "matplotlib")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from colleagues
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def jsonable(value: Any) -> Any:
    """Plain JSON values; NaN and infinities become the strings "NaN", "Infinity", "-Infinity"."""
    np = sys.modules.get("numpy")  # no array can exist before NumPy is imported: don't import it here
    if np is not None and isinstance(value, np.ndarray | np.generic):
        array = np.asarray(value)
        if array.size > MAX_LISTED:
            return {"shape": list(array.shape), "dtype": str(array.dtype), "listed": False,
                    "min": jsonable(array.min()), "max": jsonable(array.max()),
                    "mean": jsonable(array.mean())}
        return jsonable(array.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return value


def write_json(path: Path, record: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(jsonable(record), indent=2, allow_nan=False) + "\n")


def read_results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / RESULTS).read_text())


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def _static_environment() -> dict[str, Any]:
    """What cannot change within one process: asked once, not once per job of a sweep."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "packages": versions,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "git_commit": commit,
        "git_dirty": bool(status) if commit else None,
        "argv": list(sys.argv),
    }


def environment(devices: list[str] | None) -> dict[str, Any]:
    """What a reader needs to re-run this: versions, platform, devices, source commit."""
    return {**_static_environment(), "devices": devices}
