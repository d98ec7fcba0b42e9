"""Agreement between enhanced and ground-truth subspot profiles (SPEC §5)."""

from __future__ import annotations

import numpy as np


def _spot_means(values: np.ndarray, sub_to_spot: np.ndarray) -> np.ndarray:
    """Each subspot's spot mean (M×G) of `values` over the subspots of that spot."""
    n = int(sub_to_spot.max()) + 1
    sums = np.zeros((n, values.shape[1]))
    np.add.at(sums, sub_to_spot, values)
    counts = np.bincount(sub_to_spot, minlength=n)[:, None].clip(min=1)
    return (sums / counts)[sub_to_spot]


def pearson_per_feature(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pearson r of each feature (column) over subspots; NaN where either side is constant."""
    p = pred - pred.mean(0)
    t = truth - truth.mean(0)
    denom = np.sqrt((p**2).sum(0) * (t**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (p * t).sum(0) / denom
    return np.where(denom > 0, r, np.nan)


def within_spot_pearson(pred: np.ndarray, truth: np.ndarray, sub_to_spot: np.ndarray) -> np.ndarray:
    """Per-feature r of the deviations from each spot's mean: what only enhancement can move.

    Copying the spot value to its subspots (`replicate`) has no deviation and scores NaN (0).
    """
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    return pearson_per_feature(
        pred - _spot_means(pred, sub_to_spot), truth - _spot_means(truth, sub_to_spot)
    )


def spot_consistency_error(pred: np.ndarray, x: np.ndarray, sub_to_spot: np.ndarray) -> float:
    """Relative L2 distance between the re-aggregated enhanced spots and the observed spots.

    Both sides are per-subspot means (the `x` of the data contract).
    """
    n = x.shape[0]
    sums = np.zeros_like(x, dtype=np.float64)
    np.add.at(sums, sub_to_spot, pred)
    counts = np.bincount(sub_to_spot, minlength=n)[:, None].clip(min=1)
    return float(np.linalg.norm(sums / counts - x) / max(np.linalg.norm(x), 1e-12))


def summarize(
    pred: np.ndarray, truth: np.ndarray, x: np.ndarray, sub_to_spot: np.ndarray
) -> dict[str, float]:
    """The headline numbers of one enhanced map against its truth."""
    r = pearson_per_feature(np.asarray(pred, np.float64), np.asarray(truth, np.float64))
    within = within_spot_pearson(pred, truth, sub_to_spot)
    rmse = float(np.sqrt(np.mean((np.asarray(pred, np.float64) - truth) ** 2)))
    return {
        "median_pearson": float(np.nanmedian(r)) if np.isfinite(r).any() else float("nan"),
        "mean_pearson": float(np.nanmean(r)) if np.isfinite(r).any() else float("nan"),
        "median_within_spot_pearson": float(np.nan_to_num(np.nanmedian(within)))
        if np.isfinite(within).any()
        else 0.0,
        "rmse": rmse,
        "spot_consistency_error": spot_consistency_error(pred, x, sub_to_spot),
    }
