"""How much the image features can tell at all: an oracle that reads the truth, for benchmarks.

`image_ceiling` fits a ridge from each subspot's image features to its *true* profile, on the
subspots of the other spots (folds of whole spots), so no subspot is predicted from its own
truth. No method that sees only the spots and the same features should be expected to share a
spot out better; a method at this ceiling is held back by its features, not by its model.
Never a baseline: baselines and the model never see the truth.
"""

from __future__ import annotations

import numpy as np

from soscope.evaluate.baselines import ALPHAS, rescaled, svd_ridge, zscore

CEILING_FOLDS = 5


def image_ceiling(
    truth: np.ndarray,
    sub_feat: np.ndarray,
    x: np.ndarray,
    sub_to_spot: np.ndarray,
    likelihood: str = "nb",
    protein_dim: int = 0,
    alpha: float | None = None,
    folds: int = CEILING_FOLDS,
) -> np.ndarray | None:
    """Subspot profiles (M×G) from a ridge on image features fitted to the true subspot
    profiles of the other folds' spots, held to the spots; None when the features are constant.

    `alpha` None picks, from `ALPHAS`, the penalty with the smallest cross-validated error on
    the z-scored truth (an oracle may choose with the truth; each fold's fit may not).
    """
    feat = np.asarray(sub_feat, dtype=np.float64)
    if not np.ptp(feat, axis=0).any():
        return None
    truth = np.asarray(truth, dtype=np.float64)
    sub_to_spot = np.asarray(sub_to_spot)
    fold = (np.random.default_rng(0).permutation(len(x)) % folds)[sub_to_spot]
    alphas = ALPHAS if alpha is None else (alpha,)
    preds = np.empty((len(alphas), *truth.shape))
    for i in range(folds):
        test = fold == i
        if not test.any():
            continue
        train_feat, test_feat = zscore(feat[~test], feat[test])
        mean = truth[~test].mean(axis=0)
        u, s, vt = np.linalg.svd(train_feat, full_matrices=False)
        projected = u.T @ (truth[~test] - mean)
        for a, penalty in enumerate(alphas):
            preds[a][test] = test_feat @ svd_ridge(s, vt, projected, penalty) + mean
    scale = truth.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    errors = (((preds - truth) / scale) ** 2).sum(axis=(1, 2))
    best = preds[int(np.argmin(errors))]
    return rescaled(best, np.asarray(x, dtype=np.float64), sub_to_spot, likelihood, protein_dim)
