"""Agreement between enhanced and ground-truth subspot profiles.

Per-feature scores are NaN where a feature is constant (or not finite) on either side, and the
summaries take nan-aware medians over the features that can be scored.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree
from scipy.stats import rankdata

SSIM_SIGMA = 1.5  # Gaussian window σ in raster cells, as in Wang et al. (2004)
SSIM_TRUNCATE = 3.5  # window radius 5σ/1.5 ≈ 11×11 cells
SSIM_CHUNK = 64  # features rasterised at a time, to bound the memory of the map stacks


def _group_sums(
    values: np.ndarray, groups: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row sums (n_groups×G) of `values` per group index, and the group sizes, by a sparse product."""
    groups = np.asarray(groups, dtype=np.int64)
    members = sparse.csr_array(
        (np.ones(len(groups)), (groups, np.arange(len(groups)))), shape=(n_groups, len(groups))
    )
    return members @ np.asarray(values, dtype=np.float64), np.bincount(groups, minlength=n_groups)


def spot_means(
    values: np.ndarray, sub_to_spot: np.ndarray, n_spots: int | None = None
) -> np.ndarray:
    """Per-subspot mean (N×G) of `values` (M×G) over each spot's subspots; an empty spot gets 0."""
    n = int(np.max(sub_to_spot)) + 1 if n_spots is None else n_spots
    sums, counts = _group_sums(values, sub_to_spot, n)
    return sums / counts.clip(min=1)[:, None]


def median_spacing(pos: np.ndarray) -> float:
    """Median distance from each position to its nearest other one (1 when there is none)."""
    pos = np.asarray(pos, dtype=np.float64)
    if len(pos) < 2:
        return 1.0
    d = cKDTree(pos).query(pos, k=2)[0][:, 1]
    d = d[d > 0]
    return float(np.median(d)) if d.size else 1.0


def pearson_per_feature(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pearson r of each feature (column) over subspots; NaN where either side is constant."""
    p = pred - pred.mean(0)
    t = truth - truth.mean(0)
    denom = np.sqrt((p**2).sum(0) * (t**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (p * t).sum(0) / denom
    return np.where(denom > 0, r, np.nan)


def spearman_per_feature(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Spearman ρ of each feature: Pearson r of the ranks, ties sharing their average rank."""
    return pearson_per_feature(rankdata(pred, axis=0), rankdata(truth, axis=0))


def within_spot_pearson(pred: np.ndarray, truth: np.ndarray, sub_to_spot: np.ndarray) -> np.ndarray:
    """Per-feature r of the deviations from each spot's mean: what only enhancement can move.

    Copying the spot value to its subspots (`replicate`) has no deviation and scores NaN (0).
    """
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    return pearson_per_feature(
        pred - spot_means(pred, sub_to_spot)[sub_to_spot],
        truth - spot_means(truth, sub_to_spot)[sub_to_spot],
    )


def spot_consistency_error(pred: np.ndarray, x: np.ndarray, sub_to_spot: np.ndarray) -> float:
    """Relative L2 distance between the re-aggregated enhanced spots and the observed spots.

    Both sides are per-subspot means (the `x` of the data contract).
    """
    gap = spot_means(pred, sub_to_spot, len(x)) - x
    return float(np.linalg.norm(gap) / max(np.linalg.norm(x), 1e-12))


def rasterize(values: np.ndarray, pos: np.ndarray, cell: float | None = None) -> np.ndarray:
    """Maps (G×H×W) of `values` (M×G) at (x, y) `pos`: the mean per square cell, NaN if empty.

    `cell` is the cell side in pixels, by default the median spacing of the positions.
    """
    pos = np.asarray(pos, dtype=np.float64)
    cell = median_spacing(pos) if cell is None else cell
    col, row = np.floor((pos - pos.min(0)) / cell).astype(np.int64).T
    height, width = row.max() + 1, col.max() + 1
    sums, counts = _group_sums(values, row * width + col, height * width)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts[:, None] > 0, sums / counts[:, None], np.nan)
    return means.T.reshape(-1, height, width)


def ssim_per_feature(
    pred: np.ndarray, truth: np.ndarray, pos: np.ndarray, cell: float | None = None
) -> np.ndarray:
    """Mean SSIM of each feature's rasterised maps, Gaussian window, data range from the truth.

    Empty or non-finite cells are left out: the local statistics are normalised Gaussian
    averages over the valid cells. NaN for a feature whose truth map is constant.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    chunks = (slice(s, s + SSIM_CHUNK) for s in range(0, truth.shape[1], SSIM_CHUNK))
    return np.concatenate([_ssim_block(pred[:, c], truth[:, c], pos, cell) for c in chunks])


def _ssim_block(
    pred: np.ndarray, truth: np.ndarray, pos: np.ndarray, cell: float | None
) -> np.ndarray:
    """`ssim_per_feature` of one block of features."""
    a, b = rasterize(pred, pos, cell), rasterize(truth, pos, cell)
    valid = np.isfinite(a) & np.isfinite(b)
    a, b = np.where(valid, a, 0.0), np.where(valid, b, 0.0)
    weight = _smooth(valid.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        mu_a, mu_b = _smooth(a) / weight, _smooth(b) / weight
        var_a = _smooth(a * a) / weight - mu_a**2
        var_b = _smooth(b * b) / weight - mu_b**2
        cov = _smooth(a * b) / weight - mu_a * mu_b
        span = np.array([np.ptp(m[v]) if v.any() else 0.0 for m, v in zip(b, valid, strict=True)])
        c1, c2 = (0.01 * span[:, None, None]) ** 2, (0.03 * span[:, None, None]) ** 2
        ssim = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
        ssim /= (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
        score = np.where(valid, ssim, 0.0).sum((1, 2)) / valid.sum((1, 2))
    return np.where(span > 0, score, np.nan)


def _smooth(maps: np.ndarray) -> np.ndarray:
    """Gaussian window over the two spatial axes of a G×H×W stack, zero outside."""
    return gaussian_filter(
        maps, sigma=(0, SSIM_SIGMA, SSIM_SIGMA), mode="constant", truncate=SSIM_TRUNCATE
    )


def _nanmedian(values: np.ndarray, default: float = float("nan")) -> float:
    """Median of the finite values, or `default` when there is none."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else default


def coverage(pred: np.ndarray, sd: np.ndarray, truth: np.ndarray, width: float) -> float:
    """Fraction of entries whose truth lies within pred ± width·sd (0.68 / 0.95 for 1 / 2 sd
    of a calibrated Gaussian); NaN-safe."""
    inside = np.abs(np.asarray(truth) - np.asarray(pred)) <= width * np.asarray(sd)
    finite = np.isfinite(pred) & np.isfinite(sd) & np.isfinite(truth)
    return float(inside[finite].mean()) if finite.any() else float("nan")


def summarize(
    pred: np.ndarray,
    truth: np.ndarray,
    x: np.ndarray,
    sub_to_spot: np.ndarray,
    pos: np.ndarray | None = None,
    sd: np.ndarray | None = None,
) -> dict[str, float]:
    """The headline numbers of one enhanced map against its truth; SSIM needs subspot `pos`.

    With a predictive `sd` it also scores calibration: the coverage of the truth by ±1 and
    ±2 sd.
    """
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    r = pearson_per_feature(pred, truth)
    finite_r = r[np.isfinite(r)]
    scores = {
        "median_pearson": _nanmedian(r),
        "mean_pearson": float(finite_r.mean()) if finite_r.size else float("nan"),
        "median_within_spot_pearson": _nanmedian(
            within_spot_pearson(pred, truth, sub_to_spot), 0.0
        ),
        "median_spearman": _nanmedian(spearman_per_feature(pred, truth)),
        "rmse": float(np.sqrt(np.mean((pred - truth) ** 2))),
        "spot_consistency_error": spot_consistency_error(pred, x, sub_to_spot),
    }
    if pos is not None:
        scores["median_ssim"] = _nanmedian(ssim_per_feature(pred, truth, pos))
    if sd is not None:
        for width in (1, 2):
            scores[f"coverage_{width}sd"] = coverage(pred, sd, truth, width)
    return scores
