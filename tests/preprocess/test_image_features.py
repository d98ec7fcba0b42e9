"""The weight-free image features: patches, shapes, determinism and discrimination."""

import numpy as np
import pytest

from soscope.errors import SoScopeInputError
from soscope.preprocess.image_features import (
    FEATURE_NAMES,
    extract_patches,
    handcrafted_features,
)


def _tissue(nuclear: bool, size: int = 64, seed: int = 0) -> np.ndarray:
    """A flat pale-pink patch, or a purple one scattered with dark nucleus-like dots."""
    rng = np.random.default_rng(seed)
    if not nuclear:
        base = np.array([240, 190, 220], dtype=float)
        return np.clip(base + rng.normal(0, 4, (size, size, 3)), 0, 255).astype(np.uint8)
    image = np.clip(np.array([200, 140, 200]) + rng.normal(0, 6, (size, size, 3)), 0, 255)
    rows, cols = np.mgrid[:size, :size]
    for y, x in rng.integers(0, size, size=(40, 2)):
        image[(rows - y) ** 2 + (cols - x) ** 2 <= 4] = [80, 50, 130]
    return image.astype(np.uint8)


def _random_image(height: int = 40, width: int = 50) -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_patches_are_centred_on_x_y():
    image = _random_image()
    centres = np.array([[20.0, 10.0], [30.2, 25.7]])  # (x, y)
    (batch,) = extract_patches(image, centres, patch_size=6)
    assert batch.shape == (2, 6, 6, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[0], image[7:13, 17:23])
    np.testing.assert_array_equal(batch[1], image[23:29, 27:33])


def test_patches_mirror_the_border():
    image = _random_image()
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)), mode="reflect")
    (batch,) = extract_patches(image, np.array([[0.0, 39.0], [49.0, 0.0]]), patch_size=8)
    np.testing.assert_array_equal(batch[0], padded[39 : 39 + 8, 0:8])
    np.testing.assert_array_equal(batch[1], padded[0:8, 49 : 49 + 8])


def test_patches_are_streamed_in_batches():
    centres = np.full((7, 2), 20.0)
    sizes = [len(b) for b in extract_patches(_random_image(), centres, 4, batch_size=3)]
    assert sizes == [3, 3, 1]


def test_features_have_the_documented_columns_and_are_finite():
    image = _random_image()
    centres = np.random.default_rng(1).uniform(0, 39, size=(25, 2))
    features = handcrafted_features(image, centres, patch_size=9)
    assert features.shape == (25, len(FEATURE_NAMES)) and features.dtype == np.float32
    assert 32 <= len(FEATURE_NAMES) <= 64 and len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert np.isfinite(features).all()
    np.testing.assert_array_equal(features, handcrafted_features(image, centres, patch_size=9))
    np.testing.assert_allclose(
        features, handcrafted_features(image, centres, 9, batch_size=4), rtol=1e-5, atol=1e-6
    )


def test_flat_patch_has_no_texture():
    image = np.full((20, 20, 3), 200, dtype=np.uint8)
    features = dict(zip(FEATURE_NAMES, handcrafted_features(image, [[10, 10]], 8)[0], strict=True))
    assert features["rgb_mean_r"] == pytest.approx(200 / 255)
    for name in ("rgb_std_r", "gradient_mean", "laplacian_rms", "local_contrast", "coarse_std"):
        assert features[name] == pytest.approx(0.0, abs=1e-5)
    assert features["grey_hist_6"] == pytest.approx(1.0)


def test_different_tissue_gets_clearly_different_features():
    centres = np.array([[16.0, 16.0], [48.0, 48.0], [16.0, 48.0]])

    def features(nuclear: bool, seed: int) -> np.ndarray:
        return handcrafted_features(_tissue(nuclear, seed=seed), centres, patch_size=14)

    stroma, stroma_again = features(False, 0), features(False, 1)
    nuclei, nuclei_again = features(True, 0), features(True, 1)
    within = max(
        np.linalg.norm(stroma - stroma_again, axis=1).max(),
        np.linalg.norm(nuclei - nuclei_again, axis=1).max(),
    )
    between = np.linalg.norm(stroma[:, None] - nuclei[None], axis=-1).min()
    assert between > 2 * within
    assert nuclei[:, FEATURE_NAMES.index("nuclear_fraction")].min() > 0.05
    assert stroma[:, FEATURE_NAMES.index("nuclear_fraction")].max() == 0.0


def test_image_smaller_than_a_patch_names_the_source():
    with pytest.raises(SoScopeInputError, match=r"slide\.tif.*smaller than one 16×16 patch"):
        handcrafted_features(_random_image(10, 50), [[5, 5]], 16, source="slide.tif")


@pytest.mark.parametrize(
    ("image", "centres", "message"),
    [
        (_random_image(), [[60.0, 10.0]], "outside"),
        (_random_image(), [[np.nan, 10.0]], "NaN"),
        (_random_image().astype(float), [[10.0, 10.0]], "uint8"),
        (_random_image()[..., :2], [[10.0, 10.0]], "RGB"),
    ],
)
def test_bad_inputs_raise(image, centres, message):
    with pytest.raises(SoScopeInputError, match=message):
        handcrafted_features(image, np.array(centres), patch_size=8, source="he.png")


def test_patch_too_small_for_texture_raises():
    with pytest.raises(SoScopeInputError, match="patch size"):
        handcrafted_features(_random_image(), [[10, 10]], patch_size=2)
