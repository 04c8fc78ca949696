"""Many ``tape-runner`` command lines at the cost of a few: each runs in a child forked from one warm Python.

Starting Python and importing TensorFlow, SymPy and Matplotlib is about 3 s of a 4-5 s run. A test
that runs dozens of command lines only to see each work (conf/'s commented examples, a tour's
snapshot reruns) starts one server process that imports them once and forks a child per command
line. The child is the real entry point (:func:`runner.cli.main.main`) with the argv bash would give
it, in its own working directory, its stdout and stderr captured, its exit code its own. TensorFlow
is imported in the server but never run there, so each child starts its runtime afresh.

What such a child cannot show is start-up itself (import time, the noise TensorFlow prints while it
loads): tests of those run ``python -m runner`` as a subprocess of its own (tests/conftest.py's ``cli``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

#: The console script's name: a command line handed to :func:`run_commands` starts with it.
SCRIPT = "tape-runner"


def argv_of(command: str) -> tuple[dict[str, str], list[str]]:
    """What bash gives ``tape-runner`` for ``command``: the variables a ``NAME=value`` prefix sets, and the
    arguments, with quotes, comments and ``\\`` continuations read as bash reads them."""
    assert re.match(rf"(\w+=\S+\s+)*{SCRIPT}\s", command), command
    printed = subprocess.run(["bash", "-c", "printf '%s\\0' " + command], capture_output=True, text=True,
                             check=True).stdout
    words = printed.split("\0")[:-1]
    script = words.index(SCRIPT)
    return dict(word.split("=", 1) for word in words[:script]), words[script + 1:]


def run_commands(commands: list[tuple[str, Path]], env: dict[str, str], workers: int = 2,
                 timeout: float = 900) -> list[subprocess.CompletedProcess[str]]:
    """Run each ``(command line, working directory)``, ``workers`` at a time; their results in order."""
    jobs = []
    for command, cwd in commands:
        env_set, argv = argv_of(command)
        jobs.append({"env": env_set, "argv": argv, "cwd": str(cwd)})
        cwd.mkdir(parents=True, exist_ok=True)
    served = subprocess.run([sys.executable, "-m", "tests.warm_cli"], input=json.dumps(
        {"jobs": jobs, "workers": workers}), env=env, capture_output=True, text=True, timeout=timeout,
        cwd=Path(__file__).resolve().parent.parent)
    assert served.returncode == 0, served.stderr[-2000:]
    return [subprocess.CompletedProcess([SCRIPT, *job["argv"]], done["returncode"], done["stdout"],
                                        done["stderr"]) for job, done in zip(jobs, json.loads(served.stdout),
                                                                              strict=True)]


def _child(job: dict[str, Any], out: str, err: str) -> None:
    """In the forked child: run the entry point on the job's arguments in its directory; never returns."""
    code = 1
    try:
        os.environ.update(job["env"])
        os.chdir(job["cwd"])
        for fd, path in ((1, out), (2, err)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        sys.argv = [SCRIPT, *job["argv"]]
        from runner.cli.main import main

        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve() -> None:
    """Read the jobs on stdin, fork them ``workers`` at a time, print their results as JSON."""
    request = json.loads(sys.stdin.read())
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever an import prints stays out of the answer
    import matplotlib

    matplotlib.use("Agg")
    import sympy  # noqa: F401
    import tensorflow  # noqa: F401

    import runner.cli.main
    import runner.outputs.plots
    import runner.routines  # noqa: F401

    jobs, workers = request["jobs"], request["workers"]
    results: list[dict[str, object] | None] = [None] * len(jobs)
    running: dict[int, tuple[int, str, str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        pending = list(enumerate(jobs))
        while pending or running:
            while pending and len(running) < workers:
                index, job = pending.pop(0)
                out, err = f"{scratch}/{index}.out", f"{scratch}/{index}.err"
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _child(job, out, err)
                running[pid] = (index, out, err)
            pid, status = os.wait()
            index, out, err = running.pop(pid)
            results[index] = {"returncode": os.waitstatus_to_exitcode(status),
                              "stdout": Path(out).read_text(errors="replace"),
                              "stderr": Path(err).read_text(errors="replace")}
    with answer:
        json.dump(results, answer)


if __name__ == "__main__":
    _serve()
