"""Figures: spot input, ground truth (when known) and enhanced maps of a few features."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import EllipseCollection  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

from soscope.data.sample import Section  # noqa: E402


def most_variable(values: np.ndarray, n: int) -> np.ndarray:
    """Indices of the `n` features with the largest variance relative to their mean."""
    mean = np.abs(values.mean(0)) + 1e-8
    return np.argsort(-(values.var(0) / mean))[:n]


def spacing(pos: np.ndarray) -> float:
    """Median distance from each point to its nearest neighbour: the marker diameter."""
    if len(pos) < 2:
        return 1.0
    distances, _ = cKDTree(pos).query(pos, k=2)
    return float(np.median(distances[:, 1]))


def _map(ax, pos: np.ndarray, values: np.ndarray, size: float, vmin: float, vmax: float):
    """One map: discs of `size` pixels at pixel positions (x right, y down, as on the image)."""
    diameter = np.full(len(pos), size)
    discs = EllipseCollection(
        diameter,
        diameter,
        0,
        units="xy",
        offsets=pos,
        offset_transform=ax.transData,
        cmap="viridis",
        clim=(vmin, vmax),
    )
    discs.set_array(values)
    ax.add_collection(discs)
    _frame(ax, pos, diameter[0])
    return discs


def _frame(ax, pos: np.ndarray, margin: float) -> None:
    ax.set_xlim(pos[:, 0].min() - margin, pos[:, 0].max() + margin)
    ax.set_ylim(pos[:, 1].max() + margin, pos[:, 1].min() - margin)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_enhanced(
    section: Section, enhanced: np.ndarray, path: str | Path, n_features: int = 3
) -> None:
    """Write a grid of maps: one row per feature, columns spot input | truth | enhanced.

    Spot values are shown per subspot (x, the per-subspot mean) so all panels share a scale;
    with an image, the first row starts with the H&E crop under the section.
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
    # Subspots tile their spot: a spot covers about as much as its subspots together.
    sub_size = spacing(sub_pos)
    sizes = {id(pos): sub_size * np.sqrt(len(sub_pos) / len(pos)), id(sub_pos): sub_size}
    first = 1 if section.image is not None else 0
    ncols = len(panels) + first
    fig, axes = plt.subplots(
        len(features), ncols, figsize=(4.2 * ncols, 3.8 * len(features)), squeeze=False
    )
    if first:
        axes[0, 0].imshow(section.image)
        axes[0, 0].set_title("H&E image", fontsize=9)
        _frame(axes[0, 0], pos, sizes[id(pos)])
        for ax in axes[1:, 0]:
            ax.set_axis_off()
    for row, feature in enumerate(features):
        vmin = min(float(v[:, feature].min()) for _, _, v in panels)
        vmax = max(float(v[:, feature].max()) for _, _, v in panels)
        for col, (title, where, values) in enumerate(panels, start=first):
            art = _map(axes[row, col], where, values[:, feature], sizes[id(where)], vmin, vmax)
            axes[row, col].set_title(f"{section.feature_names[feature]} — {title}", fontsize=9)
        fig.colorbar(art, ax=list(axes[row, first:]), fraction=0.025, pad=0.02)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
