"""Reading the H&E image: any common format becomes RGB uint8 with its pixel frame."""

import numpy as np
import pytest
from PIL import Image

from soscope.errors import SoScopeInputError
from soscope.preprocess.images import image_from_array, load_image

RGB = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)


def test_rgb_grey_rgba_and_16_bit_files(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "rgb.png")
    Image.fromarray(RGB[..., 0]).save(tmp_path / "grey.png")
    Image.fromarray(np.dstack([RGB, np.full((12, 16), 7, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(RGB[..., 0].astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgb.png").pixels, RGB)
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.png").pixels, RGB)
    grey = np.repeat(RGB[..., :1], 3, axis=2)
    np.testing.assert_array_equal(load_image(tmp_path / "grey.png").pixels, grey)
    np.testing.assert_array_equal(load_image(tmp_path / "grey16.png").pixels, grey)
    image = load_image(tmp_path / "rgb.png", scale=0.25)
    assert image.scale == 0.25 and image.source.endswith("rgb.png")


def test_float_images_in_the_unit_range_as_anndata_keeps_them():
    image = image_from_array(RGB.astype(np.float32) / 255.0, 0.5, "adata hires")
    np.testing.assert_array_equal(image.pixels, RGB)


def test_bad_image_files(tmp_path):
    with pytest.raises(SoScopeInputError, match="nope.png: image file not found"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(SoScopeInputError, match="text.png: cannot be read as an image"):
        load_image(tmp_path / "text.png")
    with pytest.raises(SoScopeInputError, match="scale factor must be positive"):
        image_from_array(RGB, 0.0, "x")
    with pytest.raises(SoScopeInputError, match="finite and non-negative"):
        image_from_array(np.full((4, 4, 3), np.nan), 1.0, "x")


def test_positions_must_fall_on_the_image():
    image = image_from_array(RGB, 0.5, "he.png")  # covers 32 × 24 full-resolution pixels
    image.check_inside(np.array([[0.0, 0.0], [31.0, 23.0]]), "spots.csv")
    with pytest.raises(
        SoScopeInputError,
        match=r"spots\.csv: 1 of 2 spots lie outside the image he\.png \(16×12 px at scale 0\.5\)",
    ):
        image.check_inside(np.array([[0.0, 0.0], [33.0, 5.0]]), "spots.csv")
