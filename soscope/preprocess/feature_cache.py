"""Image features cached on disk by content: a rerun on the same inputs loads, not recomputes.

The key hashes everything the features depend on: the image pixels, the patch centres and
size, the extractor's name and its settings (for a CNN, the weights file's content). A changed
input gives a new key; nothing is ever served stale.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from soscope.data.validate import load_npy
from soscope.errors import SoScopeInputError
from soscope.io_utils import atomic_save_npy
from soscope.preprocess.extractors import Extractor

KEY_VERSION = 1  # bump when the meaning of cached features changes


def feature_key(
    extractor: Extractor, image: np.ndarray | None, centres: np.ndarray, patch_size: int
) -> str:
    """Hex digest identifying the features of these inputs."""
    digest = hashlib.blake2b(digest_size=20)
    header = {
        "version": KEY_VERSION,
        "extractor": extractor.name,
        "settings": extractor.settings(),
        "patch_size": int(patch_size),
        "image": None if image is None else [list(image.shape), str(image.dtype)],
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    if image is not None:
        digest.update(memoryview(np.ascontiguousarray(image)).cast("B"))
    digest.update(np.ascontiguousarray(centres, dtype=np.float64).tobytes())
    return digest.hexdigest()


def cached_features(
    extractor: Extractor,
    image: np.ndarray | None,
    centres: np.ndarray,
    patch_size: int,
    source: str,
    cache_dir: str | Path | None,
) -> tuple[np.ndarray, bool]:
    """The extractor's features, from `cache_dir` when computed before; (features, was_cached).

    `cache_dir` None, or an extractor not worth caching, always computes.
    """
    if cache_dir is None or not extractor.cacheable:
        return extractor.extract(image, centres, patch_size, source), False
    path = (
        Path(cache_dir).expanduser()
        / f"{extractor.name}-{feature_key(extractor, image, centres, patch_size)}.npy"
    )
    if path.is_file():
        try:
            features = load_npy(path)
        except SoScopeInputError:
            features = None  # a damaged cache entry is recomputed and replaced
        if features is not None and features.shape[0] == len(centres):
            return features.astype(np.float32, copy=False), True
    features = extractor.extract(image, centres, patch_size, source)
    atomic_save_npy(path, features)
    return features, False
