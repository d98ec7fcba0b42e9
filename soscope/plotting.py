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
    """Spot input | ground truth (when known) | enhanced maps of the most variable features."""
    panels = [("spot input", "spot", section.graph.x.numpy())]
    if section.truth is not None:
        panels.append(("ground truth", "subspot", section.truth))
    panels.append(("soscope enhanced", "subspot", enhanced))
    plot_maps(section, panels, path, n_features)


def plot_reconstruction(
    section: Section, reconstructed: np.ndarray, path: str | Path, n_features: int = 3
) -> None:
    """Stage 1's picture: spot input | the VGAE's reconstruction of the spots."""
    panels = [
        ("spot input", "spot", section.graph.x.numpy()),
        ("reconstruction", "spot", reconstructed),
    ]
    plot_maps(section, panels, path, n_features)


def plot_maps(
    section: Section,
    panels: list[tuple[str, str, np.ndarray]],
    path: str | Path,
    n_features: int = 3,
) -> None:
    """A grid of maps: one row per feature, one column per (title, "spot"|"subspot", values).

    Spot values are per-subspot means (x), so spot and subspot panels share a colour scale;
    with an image, the first row starts with the H&E crop under the section.
    """
    graph = section.graph
    if getattr(graph, "pos", None) is None or getattr(graph, "sub_pos", None) is None:
        raise ValueError("plotting needs spot and subspot positions (graph.pos, graph.sub_pos)")
    pos, sub_pos = graph.pos.numpy(), graph.sub_pos.numpy()
    # Subspots tile their spot: a spot covers about as much as its subspots together.
    sub_size = spacing(sub_pos)
    where = {
        "spot": (pos, sub_size * np.sqrt(len(sub_pos) / len(pos))),
        "subspot": (sub_pos, sub_size),
    }
    features = most_variable(graph.x.numpy(), min(n_features, graph.x.size(1)))
    first = 1 if section.image is not None else 0
    ncols = len(panels) + first
    fig, axes = plt.subplots(
        len(features), ncols, figsize=(4.2 * ncols, 3.8 * len(features)), squeeze=False
    )
    if first:
        axes[0, 0].imshow(section.image)
        axes[0, 0].set_title("H&E image", fontsize=9)
        _frame(axes[0, 0], pos, where["spot"][1])
        for ax in axes[1:, 0]:
            ax.set_axis_off()
    for row, feature in enumerate(features):
        vmin = min(float(v[:, feature].min()) for _, _, v in panels)
        vmax = max(float(v[:, feature].max()) for _, _, v in panels)
        for col, (title, level, values) in enumerate(panels, start=first):
            at, size = where[level]
            art = _map(axes[row, col], at, values[:, feature], size, vmin, vmax)
            axes[row, col].set_title(f"{section.feature_names[feature]} — {title}", fontsize=9)
        fig.colorbar(art, ax=list(axes[row, first:]), fraction=0.025, pad=0.02)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
