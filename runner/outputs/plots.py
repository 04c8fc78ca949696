"""PNG plots of an outcome's figures, drawn without pyplot's global state."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runner.outputs.files import write_atomic
from runner.result import Curve, Figure, Heatmap

if TYPE_CHECKING:  # Matplotlib loads when something is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure as MplFigure

MAX_POINTS = 5_000


def draw(figure: Figure, run_dir: Path) -> Path:
    """Render one figure to ``run_dir/figure.filename`` and return the path."""
    path = run_dir / figure.filename
    write_atomic(path, png(render(figure)))
    return path


def png(fig: MplFigure) -> bytes:
    """A Matplotlib figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def render(figure: Figure) -> MplFigure:
    """One figure as a Matplotlib figure, drawn but not saved (the Python API hands these out)."""
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(7, 4.2), dpi=110)  # fixed margins: a layout engine costs more than the plot
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.92)
    ax = fig.add_subplot()
    if isinstance(figure, Curve):
        stride = max(1, len(figure.x) // MAX_POINTS)  # a 10-million-point curve draws like 5,000
        for label, values in figure.series.items():
            ax.plot(figure.x[::stride], values[::stride], label=label, linewidth=2,
                    marker="o" if figure.markers else None)
        ax.axhline(0.0, color="0.75", linewidth=0.8)
        for label in figure.peaks:
            _mark_peak(ax, figure.x, figure.series[label], figure.x_label)
        ax.set_xlabel(figure.x_label)
        ax.set_ylabel(figure.y_label)
        ax.grid(True, alpha=0.3)
        ax.legend()
    elif isinstance(figure, Heatmap):
        image = ax.imshow(figure.values, cmap="RdBu_r")
        ticks = range(len(figure.labels))
        ax.set_xticks(ticks, figure.labels)
        ax.set_yticks(ticks, figure.labels)
        for (row, col), value in _cells(figure):
            ax.text(col, row, f"{value:.3g}", ha="center", va="center", fontsize=9)
        fig.colorbar(image, ax=ax)
    ax.set_title(figure.title)
    return fig


def _mark_peak(ax: Axes, x: np.ndarray, values: np.ndarray, x_label: str) -> None:
    """A dot on the series' peak, its largest finite value where that is inside the range (not at
    either end), and the value and where it is beside it."""
    finite = np.isfinite(values)
    if not finite.any():
        return
    at = int(np.argmax(np.where(finite, values, -np.inf)))
    if at in (0, len(values) - 1):
        return
    ax.plot([x[at]], [values[at]], "o", color="black", markersize=5, zorder=3)
    ax.annotate(f"max {values[at]:.3g} at {x_label} = {x[at]:.3g}", (x[at], values[at]),
                textcoords="offset points", xytext=(8, 4))


def _cells(heatmap: Heatmap) -> list[tuple[tuple[int, int], float]]:
    rows, cols = heatmap.values.shape
    if rows * cols > 64:  # numbers in cells only while they stay legible
        return []
    return [((r, c), float(heatmap.values[r, c])) for r in range(rows) for c in range(cols)]
