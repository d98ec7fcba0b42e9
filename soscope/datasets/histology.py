"""An H&E-like image of a synthetic tissue whose colour and texture follow its domains.

Each domain gets a stain style (eosin strength and fibre texture, nucleus density, size and
darkness); the image is rendered by Beer–Lambert mixing of the hematoxylin and eosin colours.
Textures come from small periodic RGB tiles, one per domain and stain shade, so rendering is
one lookup per pixel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from soscope.preprocess.image_features import STAIN_OD

TILE = 256  # side of each domain's periodic texture tile, pixels
_SHADES = 16  # stain-intensity levels the smooth shade is rounded to
_BAND = 512  # image rows rendered at a time (bounds the index arrays' memory)


@dataclass(frozen=True)
class StainStyle:
    """How one domain looks: stain strengths, eosin fibre texture and nuclei."""

    eosin: float  # eosin concentration (optical density) of the background
    cytoplasm: float  # hematoxylin concentration of the background (its purple tint)
    hematoxylin: float  # hematoxylin concentration inside a nucleus
    nuclear_area: float  # fraction of the area covered by nuclei
    nucleus_radius: float  # pixels
    fibre_scale: float  # correlation length of the eosin texture, pixels
    fibre_stretch: float  # anisotropy of that texture (1 = isotropic)
    fibre_angle: float  # orientation of the fibres, radians


def domain_styles(n_domains: int, rng: np.random.Generator) -> list[StainStyle]:
    """One distinct style per domain: each property takes evenly spaced levels, shuffled."""

    def levels(low: float, high: float) -> np.ndarray:
        return rng.permutation(np.linspace(low, high, n_domains))

    columns = (
        levels(0.25, 1.1),
        levels(0.02, 0.25),
        levels(0.8, 1.6),
        levels(0.05, 0.45),
        levels(1.5, 3.0),
        levels(1.0, 3.5),
        levels(1.0, 4.0),
        rng.uniform(0, np.pi, n_domains),
    )
    return [StainStyle(*map(float, values)) for values in zip(*columns, strict=True)]


def render_he_image(
    height: int,
    width: int,
    domain_at: Callable[[np.ndarray], np.ndarray],
    shade_at: Callable[[np.ndarray], np.ndarray],
    styles: list[StainStyle],
    rng: np.random.Generator,
    step: int = 4,
) -> np.ndarray:
    """Render an (height, width, 3) uint8 image of (x, y)-position functions of the tissue.

    `domain_at` maps (P, 2) (x, y) positions to domain indices and `shade_at` to a smooth
    stain-intensity factor; both are evaluated every `step` pixels and held in between.
    """
    ys = (np.arange(-(-height // step)) + 0.5) * step
    xs = (np.arange(-(-width // step)) + 0.5) * step
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    shade = shade_at(grid)
    low, high = shade.min(), shade.max()
    shade_level = np.rint((shade - low) / max(high - low, 1e-12) * (_SHADES - 1)).astype(int)
    looks = (domain_at(grid) * _SHADES + shade_level).reshape(len(ys), len(xs))
    tiles = _look_tiles(styles, np.linspace(low, high, _SHADES), rng)
    cols = np.arange(width)
    image = np.empty((height, width, 3), dtype=np.uint8)
    for top in range(0, height, _BAND):
        rows = np.arange(top, min(top + _BAND, height))
        look = looks[np.ix_(rows // step, cols // step)]
        image[rows] = tiles[look, (rows % TILE)[:, None], (cols % TILE)[None, :]]
    return image


def _look_tiles(
    styles: list[StainStyle], shades: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """RGB tiles (n_domains · n_shades, T, T, 3) uint8 of every domain at every stain shade."""
    stains = np.stack([_texture_tile(style, rng) for style in styles]) @ STAIN_OD[:2]
    density = stains[:, None] * shades[None, :, None, None, None]
    rgb = np.clip(255.0 * np.exp(-density), 0, 255).astype(np.uint8)
    return rgb.reshape(-1, TILE, TILE, 3)


def _texture_tile(style: StainStyle, rng: np.random.Generator) -> np.ndarray:
    """Periodic (T, T, 2) tile of hematoxylin and eosin concentrations for one style."""
    nuclei = _nuclei(style, rng)
    fibres = _fibres(style, rng)
    eosin = style.eosin * np.clip(1.0 + 0.3 * fibres, 0.2, None) * (1.0 - 0.5 * nuclei)
    hematoxylin = style.cytoplasm + style.hematoxylin * nuclei
    return np.stack([hematoxylin, eosin], axis=-1).astype(np.float32)


def _nuclei(style: StainStyle, rng: np.random.Generator) -> np.ndarray:
    """Soft discs of varied darkness at random places, as a (T, T) map in [0, 1]."""
    count = max(1, round(style.nuclear_area * TILE**2 / (np.pi * style.nucleus_radius**2)))
    impulses = np.zeros((TILE, TILE))
    rows, cols = rng.integers(0, TILE, size=(2, count))
    np.add.at(impulses, (rows, cols), rng.uniform(0.6, 1.0, count))
    distance = np.hypot(*_wrapped_offsets())
    disc = np.clip(style.nucleus_radius + 0.5 - distance, 0.0, 1.0)
    return np.clip(_periodic_convolve(impulses, disc), 0.0, 1.0)


def _fibres(style: StainStyle, rng: np.random.Generator) -> np.ndarray:
    """Oriented smooth noise with unit spread, as a (T, T) map: the eosin fibre texture."""
    dy, dx = _wrapped_offsets()
    along = dx * np.cos(style.fibre_angle) + dy * np.sin(style.fibre_angle)
    across = -dx * np.sin(style.fibre_angle) + dy * np.cos(style.fibre_angle)
    sigma = style.fibre_scale
    kernel = np.exp(-0.5 * ((along / (sigma * style.fibre_stretch)) ** 2 + (across / sigma) ** 2))
    noise = _periodic_convolve(rng.standard_normal((TILE, TILE)), kernel)
    return (noise - noise.mean()) / noise.std()


def _wrapped_offsets() -> tuple[np.ndarray, np.ndarray]:
    """Signed (dy, dx) of each tile pixel from pixel (0, 0) on the torus."""
    offset = (np.arange(TILE) + TILE // 2) % TILE - TILE // 2
    return np.meshgrid(offset.astype(float), offset.astype(float), indexing="ij")


def _periodic_convolve(values: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return np.fft.irfft2(np.fft.rfft2(values) * np.fft.rfft2(kernel), s=values.shape)
