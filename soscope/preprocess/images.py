"""The H&E image of a section: read from a file or an array, as 8-bit RGB, with its pixel frame.

Positions in soscope are full-resolution pixels. An image may be a downscaled copy (Space
Ranger's hires PNG, the image inside an AnnData): its `scale` says how many of its pixels one
full-resolution pixel spans, so position p lies at p · scale in the image. The images a
section carries into its outputs are kept in squidpy's layout (`squidpy_library`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from soscope.errors import SoScopeInputError

HIRES_SIDE = 2000  # pixels on the longer side of Space Ranger's hires image


@dataclass(frozen=True)
class SectionImage:
    """RGB uint8 `pixels` (H, W, 3), `scale` (image pixels per full-resolution pixel) and the
    `source` named in messages (a file, or a key inside one)."""

    pixels: np.ndarray
    scale: float
    source: str

    def check_inside(self, pos: np.ndarray, positions_source: str) -> None:
        """Every full-resolution (x, y) position must fall on the image."""
        height, width = self.pixels.shape[:2]
        x, y = (np.asarray(pos, dtype=np.float64) * self.scale).T
        outside = (x < 0) | (x >= width) | (y < 0) | (y >= height)
        if outside.any():
            first = np.asarray(pos)[np.flatnonzero(outside)[0]]
            raise SoScopeInputError(
                positions_source,
                f"{int(outside.sum())} of {len(outside)} spots lie outside the image {self.source} "
                f"({width}×{height} px at scale {self.scale:g}), e.g. (x, y) = "
                f"({first[0]:g}, {first[1]:g}) full-resolution px; positions must be "
                "full-resolution pixels of that image (give its scale factor if it is downscaled)",
            )

    def check_spread(self, pos: np.ndarray, positions_source: str) -> None:
        """Spots packed into the image's top-left quarter mean a wrong scale factor (a
        full-resolution image declared downscaled): a capture area covers most of its image."""
        height, width = self.pixels.shape[:2]
        x_max, y_max = (np.asarray(pos, dtype=np.float64) * self.scale).max(axis=0)
        if x_max < width / 4 and y_max < height / 4:
            raise SoScopeInputError(
                positions_source,
                f"every spot lies in the top-left corner of the image {self.source} "
                f"({width}×{height} px): at scale {self.scale:g} the spots reach only "
                f"({x_max:.0f}, {y_max:.0f}) px; is the scale factor right? (an image at full "
                "resolution has scale 1: input.image_scale=1)",
            )


def thumbnail(image: SectionImage, max_side: int = HIRES_SIDE) -> SectionImage:
    """A copy of `image` no larger than `max_side` pixels a side (Space Ranger's hires size),
    at its scale: what a section keeps of a full-resolution image for plotting."""
    height, width = image.pixels.shape[:2]
    factor = min(1.0, max_side / max(height, width))
    if factor == 1.0:
        return image
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    with _no_size_limit():
        pixels = Image.fromarray(image.pixels).resize(size, Image.Resampling.LANCZOS)
    return SectionImage(np.asarray(pixels), image.scale * factor, image.source)


def squidpy_library(images: dict[str, SectionImage], scalefactors: dict | None = None) -> dict:
    """One library of `uns['spatial']`: `images` (key → RGB uint8 pixels) and `scalefactors`
    (the given ones, e.g. Space Ranger's, with `tissue_<key>_scalef` of each image)."""
    factors = {
        key: float(value)
        for key, value in (scalefactors or {}).items()
        if isinstance(value, int | float | np.number) and not isinstance(value, bool)
    }
    for key, image in images.items():
        factors[f"tissue_{key}_scalef"] = float(image.scale)
    return {"images": {key: image.pixels for key, image in images.items()}, "scalefactors": factors}


def load_image(path: str | Path, scale: float = 1.0) -> SectionImage:
    """Read an image file (PNG, JPEG, TIFF, …) of any size as RGB uint8."""
    path = Path(path)
    if not path.is_file():
        raise SoScopeInputError(path, "image file not found")
    try:
        with _no_size_limit(), Image.open(path) as image:
            pixels = np.asarray(image if image.mode in _KEEP_MODES else image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise SoScopeInputError(path, f"cannot be read as an image ({err})") from None
    return SectionImage(as_rgb_uint8(pixels, path), _check_scale(scale, path), str(path))


def image_from_array(array: np.ndarray, scale: float, source: str) -> SectionImage:
    """An image held in memory (e.g. AnnData's `uns['spatial']`), as RGB uint8."""
    return SectionImage(
        as_rgb_uint8(np.asarray(array), source), _check_scale(scale, source), source
    )


# Modes converted by `as_rgb_uint8` instead of PIL: 16- and 32-bit grey keep their precision.
_KEEP_MODES = ("RGB", "L", "I", "I;16", "I;16B", "I;16L", "F")


def as_rgb_uint8(array: np.ndarray, source: str | Path) -> np.ndarray:
    """Grey, RGB or RGBA pixels of 8 or 16 bits or floats in [0, 1] (or [0, 255]) → (H, W, 3) uint8."""
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise SoScopeInputError(
            source, f"expected a grey, RGB or RGBA image, got shape {array.shape}"
        )
    rgb = array[..., :3]
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    if rgb.dtype.kind not in "uif":
        raise SoScopeInputError(source, f"holds {rgb.dtype} pixels, not numbers")
    values = rgb.astype(np.float32)
    if not np.isfinite(values).all() or values.min() < 0:
        raise SoScopeInputError(source, "pixel values must be finite and non-negative")
    top = float(values.max(initial=0.0))
    full_scale = 1.0 if rgb.dtype.kind == "f" and top <= 1.0 else 255.0 if top <= 255 else 65535.0
    return np.rint(values * (255.0 / full_scale)).clip(0, 255).astype(np.uint8)


def _check_scale(scale: float, source: str | Path) -> float:
    if not (np.isfinite(scale) and scale > 0):
        raise SoScopeInputError(source, f"image scale factor must be positive, got {scale}")
    return float(scale)


@contextmanager
def _no_size_limit():
    """Whole-slide images exceed PIL's decompression-bomb guard; the user chose this file."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit
