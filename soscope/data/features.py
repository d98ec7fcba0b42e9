"""Image features as the enhancement decoder reads them: projected once onto their top directions.

Inception-v3 features have 2,048 columns, and the decoder's first layer over all of them is a
training step's largest product (M × D × hidden, forward and weight gradient). That layer maps
the features to `hidden` (128) values, so it can use at most 128 directions of feature space
anyway; projecting the features once onto their top k principal directions (k ≥ hidden) keeps
the directions that carry the variance, at k/D of the step's feature work and memory. The
projection is uncentred (top right singular vectors), so the decoder's input stays linear in
the features and the decoder's (2 − 1/K) weighting of image features means the same.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

GRAM_ROWS = 16384  # evenly spaced rows the basis is fitted on: a fixed cost at any size
CHUNK = 65536  # rows projected at a time: no float32 copy of all the features


def principal_basis(features: Tensor, k: int) -> Tensor:
    """D × k orthonormal basis of the top-k right singular vectors of `features` (fitted on
    at most `GRAM_ROWS` evenly spaced rows), each column's sign fixed so its largest entry is
    positive: the same data gives the same basis in every run."""
    rows = features[:: max(1, math.ceil(len(features) / GRAM_ROWS))].float()
    _, vectors = torch.linalg.eigh(rows.T @ rows)  # eigenvalues ascending
    basis = vectors[:, -k:].flip(1)
    largest = basis.gather(0, basis.abs().argmax(0, keepdim=True))
    return basis * torch.sign(largest)


def project_features(features: Tensor, components: int | None) -> Tensor:
    """`features` (M × D) on their top `components` principal directions, M × components in
    the same dtype; unchanged when `components` is None or D is no larger."""
    if components is None or features.size(1) <= components:
        return features
    basis = principal_basis(features, components)
    projected = torch.empty(len(features), components, dtype=features.dtype)
    for start in range(0, len(features), CHUNK):
        block = features[start : start + CHUNK].float() @ basis
        projected[start : start + CHUNK] = block.to(features.dtype)
    return projected
