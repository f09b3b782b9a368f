"""Attention heatmaps written as PNG files (a bare Agg canvas: no display, no pyplot state)."""

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def save_attention(source: list[str], output: list[str], weights: np.ndarray, path: Path) -> None:
    """Heatmap of ``weights`` (len(output), len(source)): output words down, source words across."""
    attention_figure(source, output, weights).savefig(path, dpi=100)


def attention_figure(source: list[str], output: list[str], weights: np.ndarray) -> Figure:
    """The heatmap figure of ``save_attention`` (TensorBoard's ``add_figure`` takes it as is)."""
    width = min(40.0, 2.0 + 0.4 * len(source))
    height = min(40.0, 1.5 + 0.35 * len(output))
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), source, rotation=90)
    ax.set_yticks(range(len(output)), output)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    return fig
