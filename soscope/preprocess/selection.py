"""Which features to keep: highly variable by a count model, a user's list, or all.

Highly variable features are ranked by the variance of their analytic Pearson residuals under a
negative-binomial model with a shared overdispersion (Lause, Berens & Kobak, Genome Biology
2021): a count-based criterion that needs no normalisation or log transform, so the raw counts
the likelihoods model are the counts it ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from soscope.errors import SoScopeInputError

METHODS = ("hvg", "list", "all")
THETA = 100.0  # NB overdispersion of the residual model (the paper's default)
_CHUNK_ELEMENTS = 1 << 24  # dense residual values computed at a time


def select_features(
    counts: sp.csr_matrix,
    names: list[str],
    method: str = "hvg",
    n_top: int = 2000,
    keep: Sequence[str] | str | None = None,
) -> np.ndarray:
    """Column indices of the kept features, in their input order.

    `hvg`: the `n_top` with the largest Pearson-residual variance (all when fewer); `list`: the
    names in `keep` (a list, or a text file with one per line); `all`: every feature.
    """
    if method == "all":
        return np.arange(len(names))
    if method == "list":
        return _listed(names, keep)
    if method != "hvg":
        raise ValueError(f"unknown feature selection {method!r}; choose from {METHODS}")
    if n_top < 1:
        raise ValueError(f"n_top must be positive, got {n_top}")
    variance = pearson_residual_variance(counts)
    top = np.argsort(-variance, kind="stable")[:n_top]
    return np.sort(top)


def pearson_residual_variance(counts: sp.csr_matrix, theta: float = THETA) -> np.ndarray:
    """Variance over spots of each feature's residual (x − μ)/√(μ + μ²/θ), μ = spot total ×
    feature share, residuals clipped to ±√N; 0 for features never seen."""
    counts = sp.csc_matrix(counts, dtype=np.float64)
    n_spots, n_features = counts.shape
    spot_totals = np.asarray(counts.sum(axis=1)).ravel()
    feature_totals = np.asarray(counts.sum(axis=0)).ravel()
    grand_total = spot_totals.sum()
    variance = np.zeros(n_features)
    if grand_total <= 0:
        return variance
    clip = np.sqrt(n_spots)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n_spots))
    for start in tqdm(range(0, n_features, chunk), desc="feature variance", disable=None):
        stop = min(start + chunk, n_features)
        observed = counts[:, start:stop].toarray()
        mu = np.outer(spot_totals, feature_totals[start:stop] / grand_total)
        with np.errstate(divide="ignore", invalid="ignore"):
            residual = (observed - mu) / np.sqrt(mu + mu**2 / theta)
        residual = np.clip(np.nan_to_num(residual, nan=0.0), -clip, clip)
        variance[start:stop] = residual.var(axis=0)
    variance[feature_totals <= 0] = 0.0
    return variance


def _listed(names: list[str], keep: Sequence[str] | str | None) -> np.ndarray:
    source = "genes.keep"
    if isinstance(keep, str | Path):
        source = str(keep)
        path = Path(keep)
        if not path.is_file():
            raise SoScopeInputError(path, "feature list not found")
        keep = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    keep = [name for name in (keep or []) if name]
    if not keep:
        raise SoScopeInputError(source, "the feature list is empty")
    index = {name: i for i, name in enumerate(names)}
    absent = [name for name in keep if name not in index]
    if absent:
        raise SoScopeInputError(
            source, f"{len(absent)} listed features are not in the data, e.g. {absent[:5]}"
        )
    return np.sort(np.unique([index[name] for name in keep]))
