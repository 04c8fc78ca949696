"""notebooks/seed_tour.ipynb, executed cell by cell in a real Jupyter kernel, prints the right gradients."""

from __future__ import annotations

import ast
import math
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "seed_tour.ipynb"


def test_the_notebook_is_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)


def _printed(line_start: str, text: str) -> str:
    (found,) = [line[len(line_start):].strip() for line in text.splitlines() if line.startswith(line_start)]
    return found


@pytest.mark.slow
def test_the_notebook_runs_in_a_kernel_and_prints_the_seed_gradients(tmp_path: Path) -> None:
    # what `make notebook` runs, into tmp_path, its kernel in an empty directory of its own
    cwd, executed = tmp_path / "cwd", tmp_path / "seed_tour.ipynb"
    cwd.mkdir()
    command = [sys.executable, str(NOTEBOOK.with_name("execute.py")), str(NOTEBOOK), str(executed),
               "--cwd", str(cwd)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # not the kernel's warning that TCP is unencrypted either
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    pages = [o.data["text/html"] for o in outputs if o.output_type == "execute_result"]

    # 1. x**2 at 3, any function from an override, and the derivative over a linspace.
    assert _printed("dy/dx at 3 =", text) == "6.0"
    want = 3 * 1.3**2 * math.cos(1.3) - 1.3**3 * math.sin(1.3)
    assert float(_printed("d(x**3 cos x)/dx at 1.3 =", text)) == pytest.approx(want, abs=1e-5)
    assert _printed("dy/dx of x**2 at -4, 0, 4 =", text) == "[-8.0, 0.0, 8.0]"
    # 2. watched Variable, unwatched constant, constant after tape.watch.
    assert [_printed(p, text) for p in ("tf.Variable:", "tf.constant:", "tf.constant after tape.watch:")] == [
        "6.0", "None", "6.0"]
    # 3. sigmoid: its derivative peaks at 1/4, at 0.
    assert _printed("peak of dsigmoid/dx =", text) == "0.25 at x = 0.0"
    # 4. linear: the printed gradients are the closed form over the printed inputs, in float64.
    inputs = ast.literal_eval(_printed("inputs =", text))
    x, w, b = (np.array(inputs[k], dtype=np.float64) for k in ("x", "W", "b"))
    dy = 2 * (x @ w + b) / (x.shape[0] * w.shape[1])
    np.testing.assert_allclose(ast.literal_eval(_printed("dloss/dW =", text)), x.T @ dy, rtol=1e-5)
    np.testing.assert_allclose(ast.literal_eval(_printed("dloss/db =", text)), dy.sum(axis=0), rtol=1e-5)
    # 5. persistent tape: y = x**2 and z = y**2 at 3.
    assert (_printed("y = x**2, dy/dx =", text), _printed("z = y**2, dz/dx =", text)) == ("6.0", "108.0")
    # The watch matrix: the tape sees a Variable unless neither watched nor auto-watched, a constant
    # only after tape.watch.
    matrix = re.findall(r"kind=(\w+) scenario\.inputs\.x\.watch=(\w+) "
                        r"scenario\.watch_accessed_variables=(\w+) -> (\S+)", text)
    assert len(matrix) == 8
    for kind, watch, auto, got in matrix:
        sees = watch == "True" or (kind == "variable" and auto == "True")
        assert got == ("6.0" if sees else "None"), (kind, watch, auto)
    # Beyond the seed: x**3 at 1, differentiated four times.
    derivatives = [_printed(f"{label} =", text) for label in ("dy/dx", "d2y/dx2", "d3y/dx3", "d4y/dx4")]
    assert derivatives == ["3.0", "6.0", "6.0", "0.0"]

    # Each run shows its report inline; the runs with a curve show it as an inline PNG.
    plotted = [page for page in pages if 'src="data:image/png;base64,' in page]
    assert [re.search("<h1>(.*?)</h1>", page)[1] for page in plotted] == [
        "basic: ok", "sigmoid: ok", "higher_order: ok"]
    assert any("<th>watch_accessed_variables</th>" in page for page in pages)  # the watch matrix's table
    assert list(cwd.iterdir()) == []  # the tour writes nothing
    # A glance per result, not whole reports: without its three plots the executed tour is about 24 KB
    # (62 KB when each result showed its environment, snippet and every check's numbers).
    assert len(re.sub(r"base64,[^\"]+", "", executed.read_text())) < 35_000
