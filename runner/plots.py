"""PNG plots of an outcome's curves, drawn without pyplot's global state."""

from __future__ import annotations

import io
from pathlib import Path

from runner.outputs import write_atomic
from runner.result import Curve


def draw(curve: Curve, run_dir: Path) -> Path:
    """Render one curve to ``run_dir/curve.filename`` and return the path."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    for label, values in curve.series.items():
        ax.plot(curve.x, values, label=label, linewidth=2)
    ax.axhline(0.0, color="0.75", linewidth=0.8)
    ax.set_xlabel(curve.x_label)
    ax.set_title(curve.title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    path = run_dir / curve.filename
    write_atomic(path, buffer.getvalue())
    return path
