"""Figures: maps of spot, truth and enhanced profiles over the H&E, loss curves, method scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import EllipseCollection  # noqa: E402

from soscope.data.matrices import Matrix, dense_column  # noqa: E402
from soscope.data.sample import Section  # noqa: E402
from soscope.errors import SoScopeInputError  # noqa: E402
from soscope.evaluate.metrics import median_spacing  # noqa: E402

Features = int | Sequence[str]
"""Which features a map figure shows: the n most variable, or these names."""
SCORES_SHOWN = ("median_pearson", "median_within_spot_pearson", "median_ssim")


def most_variable(values: np.ndarray, n: int) -> np.ndarray:
    """Indices of the `n` features with the largest variance relative to their mean."""
    mean = np.abs(values.mean(0)) + 1e-8
    return np.argsort(-(values.var(0) / mean))[:n]


def choose_features(section: Section, features: Features) -> np.ndarray:
    """Column indices of the features to show: the `features` most variable, or those named."""
    if isinstance(features, int):
        x = section.graph.x.numpy()
        return most_variable(x, min(features, x.shape[1]))
    names = list(section.feature_names)
    unknown = [name for name in features if name not in names]
    if unknown:
        raise SoScopeInputError("plot_features", f"unknown features {unknown} in {section.name}")
    return np.array([names.index(name) for name in features])


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
    section: Section, enhanced: Matrix, path: str | Path, n_features: Features = 3
) -> None:
    """Spot input | ground truth (when known) | enhanced maps (dense or CSR) of the chosen
    features."""
    panels = [("spot input", "spot", section.graph.x.numpy())]
    if section.truth is not None:
        panels.append(("ground truth", "subspot", section.truth))
    panels.append(("soscope enhanced", "subspot", enhanced))
    plot_maps(section, panels, path, n_features)


def plot_reconstruction(
    section: Section, reconstructed: np.ndarray, path: str | Path, n_features: Features = 3
) -> None:
    """Stage 1's picture: spot input | the VGAE's reconstruction of the spots."""
    panels = [
        ("spot input", "spot", section.graph.x.numpy()),
        ("reconstruction", "spot", reconstructed),
    ]
    plot_maps(section, panels, path, n_features)


def plot_maps(
    section: Section,
    panels: list[tuple[str, str, Matrix]],
    path: str | Path,
    n_features: Features = 3,
) -> None:
    """A grid of maps: one row per feature, one column per (title, "spot"|"subspot", values).

    Values are dense or CSR. Spot values are per-subspot means (x), so spot and subspot panels
    share a colour scale; with an image, the first row starts with the H&E crop under the
    section. `n_features` is a number (the most variable) or a list of feature names.
    """
    graph = section.graph
    if getattr(graph, "pos", None) is None or getattr(graph, "sub_pos", None) is None:
        raise ValueError("plotting needs spot and subspot positions (graph.pos, graph.sub_pos)")
    pos, sub_pos = graph.pos.numpy(), graph.sub_pos.numpy()
    # Subspots tile their spot: a spot covers about as much as its subspots together.
    sub_size = median_spacing(sub_pos)
    where = {
        "spot": (pos, sub_size * np.sqrt(len(sub_pos) / len(pos))),
        "subspot": (sub_pos, sub_size),
    }
    features = choose_features(section, n_features)
    first = 1 if section.image is not None else 0
    ncols = len(panels) + first
    fig, axes = plt.subplots(
        len(features), ncols, figsize=(4.2 * ncols, 3.8 * len(features)), squeeze=False
    )
    if first:
        height, width = section.image.shape[:2]
        extent = np.array([0, width, height, 0]) / section.image_scale  # full-resolution frame
        axes[0, 0].imshow(section.image, extent=tuple(extent))
        axes[0, 0].set_title("H&E image", fontsize=9)
        _frame(axes[0, 0], pos, where["spot"][1])
        for ax in axes[1:, 0]:
            ax.set_axis_off()
    for row, feature in enumerate(features):
        shown = [dense_column(values, feature) for _, _, values in panels]
        vmin = min(float(v.min()) for v in shown)
        vmax = max(float(v.max()) for v in shown)
        for col, ((title, level, _), values) in enumerate(zip(panels, shown, strict=True), first):
            at, size = where[level]
            art = _map(axes[row, col], at, values, size, vmin, vmax)
            axes[row, col].set_title(f"{section.feature_names[feature]} — {title}", fontsize=9)
        fig.colorbar(art, ax=list(axes[row, first:]), fraction=0.025, pad=0.02)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def plot_loss_curves(histories: Mapping[str, pd.DataFrame], path: str | Path) -> None:
    """One panel per stage: every `*loss` column of its logged metrics against the step.

    `histories` maps a stage name to its CSV logger's table (a `step` column and one column per
    logged value); the y axis is symmetric-log, as the loss terms span orders of magnitude and a
    Gaussian likelihood can make them negative.
    """
    fig, axes = plt.subplots(1, len(histories), figsize=(5.5 * len(histories), 3.8), squeeze=False)
    for ax, (stage, table) in zip(axes[0], histories.items(), strict=True):
        for column in (c for c in table.columns if c.endswith("loss")):
            rows = table[["step", column]].dropna()
            ax.plot(rows["step"], rows[column], label=column.rpartition("/")[2], lw=1.2)
        ax.set_yscale("symlog")
        ax.set_xlabel("step")
        ax.set_title(f"{stage}: loss terms", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def plot_method_scores(
    scores: Mapping[str, Mapping[str, float]],
    path: str | Path,
    errors: Mapping[str, Mapping[str, float]] | None = None,
    shown: Sequence[str] = SCORES_SHOWN,
) -> None:
    """Grouped bars: one group per score in `shown`, one bar per method (`errors`: ± bars).

    `scores` is {method: {score: value}} as in metrics.json; the benchmark passes means over
    seeds as `scores` and their standard deviations as `errors`.
    """
    methods = list(scores)
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(shown) * len(methods) / 2, 3.6))
    for i, method in enumerate(methods):
        heights = [scores[method].get(name, np.nan) for name in shown]
        spread = None if errors is None else [errors[method].get(name, 0) for name in shown]
        where = np.arange(len(shown)) + (i - (len(methods) - 1) / 2) * width
        ax.bar(where, heights, width, yerr=spread, label=method, capsize=2)
    ax.set_xticks(np.arange(len(shown)), [name.replace("_", " ") for name in shown], fontsize=8)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_title("soscope and the baselines against the ground truth", fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
