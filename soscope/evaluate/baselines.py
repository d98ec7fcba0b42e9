"""Baselines that enhance without a model, with the same output as the model's inference (M×G).

`replicate` is the equal split; `interpolate` the spatial kernel alone and
`interpolate_rescaled` the same held to the spots; `image_regression` a ridge regression from
image features; `combined_regression` a ridge on image features and the neighbouring spots'
interpolated profile together. The regressions are fitted on spots, applied to subspots,
rescaled to the spots, and choose their penalty by leave-one-spot-out error: no ground truth
is used anywhere.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse
from scipy.spatial import cKDTree

from soscope.data.sample import Section
from soscope.evaluate.metrics import median_spacing, spot_means
from soscope.models.consistency import rescale_to_spots
from soscope.models.context import BANDWIDTH
from soscope.models.likelihoods import make_likelihood

BASELINES = (
    "replicate",
    "interpolate",
    "interpolate_rescaled",
    "image_regression",
    "combined_regression",
)
# Baselines that read spot and subspot positions (skipped for sections without them).
NEEDS_POSITIONS = ("interpolate", "interpolate_rescaled", "combined_regression")
# Ridge penalties tried (on z-scored spot-level inputs); the smallest leave-one-out error wins.
ALPHAS = tuple(10.0**p for p in range(-1, 5))


def replicate(x: np.ndarray, sub_to_spot: np.ndarray) -> np.ndarray:
    """Each subspot gets its spot's per-subspot mean: the equal split of the spot."""
    return np.asarray(x)[np.asarray(sub_to_spot)]


def interpolate(
    x: np.ndarray,
    spot_pos: np.ndarray,
    sub_pos: np.ndarray,
    bandwidth: float | None = None,
    neighbours: int = 19,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Gaussian-kernel average of the spot values `x` at each subspot position.

    Only the `neighbours` nearest spots count (19 = two hexagonal rings), held as a sparse M×N
    matrix; `bandwidth` (kernel σ, pixels) defaults to the model's `BANDWIDTH` times the median
    nearest-spot spacing.
    `exclude` (M) names a spot each subspot must not use — its own, for a leave-one-out view.
    """
    spot_pos = np.asarray(spot_pos, dtype=np.float64)
    sub_pos = np.asarray(sub_pos, dtype=np.float64)
    sigma = BANDWIDTH * median_spacing(spot_pos) if bandwidth is None else bandwidth
    k = min(neighbours + (exclude is not None), len(spot_pos))
    dist, idx = cKDTree(spot_pos).query(sub_pos, k=k, workers=-1)
    dist, idx = dist.reshape(len(sub_pos), k), idx.reshape(len(sub_pos), k)
    if exclude is not None:
        dist = np.where(idx == np.asarray(exclude)[:, None], np.inf, dist)
    # Weights relative to the nearest spot used, so a tiny bandwidth cannot underflow them all.
    nearest = dist.min(axis=1, keepdims=True)
    weight = np.exp(-(dist**2 - nearest**2) / (2 * sigma**2))
    weight /= weight.sum(axis=1, keepdims=True)
    kernel = sparse.csr_array(
        (weight.ravel(), idx.ravel(), np.arange(0, weight.size + 1, k)),
        shape=(len(sub_pos), len(spot_pos)),
    )
    return kernel @ np.asarray(x, dtype=np.float64)


def rescaled(
    pred: np.ndarray, x: np.ndarray, sub_to_spot: np.ndarray, likelihood: str, protein_dim: int
) -> np.ndarray:
    """`pred` held to the spots with the model's `consistency=rescale` rule for `likelihood`."""
    model = make_likelihood(likelihood, x.shape[1], protein_dim=protein_dim)
    arrays = (pred, np.asarray(x, dtype=np.float64), np.asarray(sub_to_spot, dtype=np.int64))
    return rescale_to_spots(model, *(torch.as_tensor(a) for a in arrays)).numpy()


def zscore(spot_values: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Centre and scale columns by their spot-level mean and sd (constant columns: sd 1); the
    same map applied to `others` (e.g. the subspot values)."""
    mean, sd = spot_values.mean(axis=0), spot_values.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return [(a - mean) / sd for a in (spot_values, *others)]


def image_regression(
    x: np.ndarray,
    sub_feat: np.ndarray,
    sub_to_spot: np.ndarray,
    alpha: float | None = None,
    likelihood: str = "nb",
    protein_dim: int = 0,
) -> np.ndarray:
    """Ridge regression from image features to profiles, kept consistent with the spots.

    Fitted at spot level (each spot's mean subspot feature → x), applied to each subspot's own
    feature, then rescaled per spot. `alpha` None picks the penalty from `ALPHAS` with the
    smallest leave-one-spot-out error (over all features, each z-scored).
    """
    x = np.asarray(x, dtype=np.float64)
    feat = np.asarray(sub_feat, dtype=np.float64)
    spot_feat, feat = zscore(spot_means(feat, sub_to_spot, len(x)), feat)
    x_mean = x.mean(axis=0)
    u, s, vt = np.linalg.svd(spot_feat, full_matrices=False)
    if alpha is None:
        alpha = _loo_alpha_svd(u, s, x - x_mean)
    coef = svd_ridge(s, vt, u.T @ (x - x_mean), alpha)
    return rescaled(feat @ coef + x_mean, x, sub_to_spot, likelihood, protein_dim)


def svd_ridge(s: np.ndarray, vt: np.ndarray, projected: np.ndarray, alpha: float) -> np.ndarray:
    """Ridge coefficients D×G from the design's SVD U·diag(s)·Vᵀ and the projected targets
    Uᵀy: V·diag(s / (s² + α))·Uᵀy, so every penalty reuses one decomposition."""
    return vt.T @ ((s / (s**2 + alpha))[:, None] * projected)


def _loo_alpha_svd(u: np.ndarray, s: np.ndarray, y: np.ndarray) -> float:
    """The penalty of `ALPHAS` with the smallest leave-one-out error of ridge on U·diag(s)."""
    scale = y.std(axis=0)
    y = y / np.where(scale > 0, scale, 1.0)
    best, best_error = ALPHAS[0], np.inf
    for alpha in ALPHAS:
        shrink = s**2 / (s**2 + alpha)
        fitted = u @ (shrink[:, None] * (u.T @ y))
        leverage = (u**2 @ shrink)[:, None]
        error = float((((y - fitted) / (1 - leverage).clip(min=1e-6)) ** 2).sum())
        if error < best_error:
            best, best_error = alpha, error
    return best


def combined_regression(
    x: np.ndarray,
    sub_feat: np.ndarray,
    sub_to_spot: np.ndarray,
    spot_pos: np.ndarray,
    sub_pos: np.ndarray,
    alpha: float | None = None,
    likelihood: str = "nb",
    protein_dim: int = 0,
) -> np.ndarray:
    """Per feature g, a ridge on [image features, the neighbours' interpolated profile of g].

    The interpolation leaves each subspot's own spot out, so at spot level the regression
    predicts a spot from its image and its neighbours — never from itself. Fitted on spots,
    applied to subspots, rescaled per spot; `alpha` None picks it by leave-one-spot-out error.
    """
    x = np.asarray(x, dtype=np.float64)
    sub_to_spot = np.asarray(sub_to_spot)
    n = len(x)
    neighbours = interpolate(x, spot_pos, sub_pos, exclude=sub_to_spot)
    feat = np.asarray(sub_feat, dtype=np.float64)
    spot_feat, feat = zscore(spot_means(feat, sub_to_spot, n), feat)
    spot_interp, neighbours = zscore(spot_means(neighbours, sub_to_spot, n), neighbours)
    y = x - x.mean(axis=0)
    alphas = ALPHAS if alpha is None else (alpha,)
    fits = [_bordered_ridge(spot_feat, spot_interp, y, a) for a in alphas]
    weights, slopes, _ = min(fits, key=lambda fit: fit[2])
    pred = feat @ weights + neighbours * slopes + x.mean(axis=0)
    return rescaled(pred, x, sub_to_spot, likelihood, protein_dim)


def _bordered_ridge(
    f: np.ndarray, v: np.ndarray, y: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Ridge of each column y_g on [f, v_g] for all g at once (a shared block f, one column of
    its own), with the leave-one-out error over all g of z-scored y: (D×G weights on f, G
    slopes on v, error). The shared block is inverted once; each g adds a bordered row."""
    a_inv = np.linalg.inv(f.T @ f + alpha * np.eye(f.shape[1]))
    b = f.T @ v  # D×G
    a_inv_b = a_inv @ b
    schur = (v * v).sum(0) + alpha - (b * a_inv_b).sum(0)
    a_inv_r = a_inv @ (f.T @ y)
    slopes = ((v * y).sum(0) - (b * a_inv_r).sum(0)) / schur
    weights = a_inv_r - a_inv_b * slopes
    fitted = f @ weights + v * slopes
    leverage = np.einsum("id,de,ie->i", f, a_inv, f)[:, None] + (f @ a_inv_b - v) ** 2 / schur
    scale = y.std(axis=0)
    residual = (y - fitted) / np.where(scale > 0, scale, 1.0)
    error = float(((residual / (1 - leverage).clip(min=1e-6)) ** 2).sum())
    return weights, slopes, error


def run_baseline(name: str, section: Section) -> np.ndarray:
    """Enhance `section` with baseline `name` (one of `BASELINES`): subspot profiles M×G.

    The consistent baselines take the likelihood from `section.meta` (default `nb`).
    """
    graph = section.graph
    x, sub_to_spot = graph.x.numpy(), graph.sub_to_spot.numpy()
    family = {
        "likelihood": section.meta.get("likelihood", "nb"),
        "protein_dim": section.meta.get("protein_dim", 0),
    }
    if name == "replicate":
        return replicate(x, sub_to_spot)
    if name == "interpolate":
        return interpolate(x, graph.pos.numpy(), graph.sub_pos.numpy())
    if name == "interpolate_rescaled":
        pred = interpolate(x, graph.pos.numpy(), graph.sub_pos.numpy())
        return rescaled(pred, x, sub_to_spot, **family)
    if name == "image_regression":
        return image_regression(x, graph.sub_feat.numpy(), sub_to_spot, **family)
    if name == "combined_regression":
        positions = (graph.pos.numpy(), graph.sub_pos.numpy())
        return combined_regression(x, graph.sub_feat.numpy(), sub_to_spot, *positions, **family)
    raise ValueError(f"unknown baseline {name!r}; choose from {BASELINES}")
