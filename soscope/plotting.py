"""Figures: spot input, ground truth (when known) and enhanced maps of a few features."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from soscope.data.sample import Section  # noqa: E402


def most_variable(values: np.ndarray, n: int) -> np.ndarray:
    """Indices of the `n` features with the largest variance relative to their mean."""
    mean = np.abs(values.mean(0)) + 1e-8
    return np.argsort(-(values.var(0) / mean))[:n]


def _scatter(ax, pos: np.ndarray, values: np.ndarray, size: float, vmin: float, vmax: float):
    """One map: points at pixel positions (x right, y down, as on the image)."""
    art = ax.scatter(pos[:, 0], pos[:, 1], c=values, s=size, cmap="viridis", vmin=vmin, vmax=vmax)
    ax.set_aspect("equal")
    ax.invert_yaxis()
    ax.set_xticks([])
    ax.set_yticks([])
    return art


def plot_enhanced(
    section: Section, enhanced: np.ndarray, path: str | Path, n_features: int = 3
) -> None:
    """Write a grid of maps: one row per feature, columns spot input | truth | enhanced.

    Spot values are shown per subspot (x, the per-subspot mean) so all panels share a scale.
    """
    graph = section.graph
    if getattr(graph, "pos", None) is None or getattr(graph, "sub_pos", None) is None:
        raise ValueError("plotting needs spot and subspot positions (graph.pos, graph.sub_pos)")
    x = graph.x.numpy()
    pos, sub_pos = graph.pos.numpy(), graph.sub_pos.numpy()
    panels = [("spot input", pos, x)]
    if section.truth is not None:
        panels.append(("ground truth", sub_pos, section.truth))
    panels.append(("soscope enhanced", sub_pos, enhanced))
    features = most_variable(x, min(n_features, x.shape[1]))
    fig, axes = plt.subplots(
        len(features), len(panels), figsize=(3.2 * len(panels), 3 * len(features)), squeeze=False
    )
    spot_size = 3000.0 / max(len(pos), 1)
    for row, feature in enumerate(features):
        vmin = min(float(v[:, feature].min()) for _, _, v in panels)
        vmax = max(float(v[:, feature].max()) for _, _, v in panels)
        for col, (title, where, values) in enumerate(panels):
            size = spot_size if where is pos else spot_size * len(pos) / len(where)
            art = _scatter(axes[row, col], where, values[:, feature], size, vmin, vmax)
            axes[row, col].set_title(f"{section.feature_names[feature]} — {title}", fontsize=9)
        fig.colorbar(art, ax=axes[row, -1], fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
