"""Execute a notebook in a Jupyter kernel and save it with its outputs (``make notebook``).

Usage: python notebooks/execute.py <notebook.ipynb> <output.ipynb> [--cwd DIR]

``jupyter-execute`` starts its kernel over TCP, and the kernel warns on every start that TCP
carries code and outputs unencrypted (jupyter-execute hands no settings to its kernel manager
to change that). Here the kernel talks over IPC instead: Unix sockets in a private temporary
directory, which nothing else on the machine can reach, so there is nothing to warn about.
The kernel runs in ``--cwd``, by default the notebook's own directory, as Jupyter runs it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient


def execute(source: Path, output: Path, cwd: Path) -> None:
    notebook = nbformat.read(source, as_version=4)
    with tempfile.TemporaryDirectory(prefix="kernel-") as sockets:
        manager = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "ipc"))
        try:
            NotebookClient(notebook, km=manager, timeout=600,
                           resources={"metadata": {"path": str(cwd)}}).execute()
        finally:  # a kernel manager handed in is the caller's to shut down
            if manager.has_kernel:
                manager.shutdown_kernel()
    output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--cwd", type=Path, help="where the kernel runs (default: the notebook's directory)")
    args = parser.parse_args()
    execute(args.notebook, args.output, args.cwd or args.notebook.parent)
    print(f"Executed notebook: {args.output}")


if __name__ == "__main__":
    main()
