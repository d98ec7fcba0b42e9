"""Weight-free image features of subspot patches: colour and texture statistics.

The fallback to a pretrained extractor (Inception-v3, as the original uses): no weights file, no
network, deterministic, and fast on a CPU. Centres are (x, y) pixels like every position in
soscope (x the column, y the row: pixel (x, y) is `image[y, x]`). The patch of size P around
(x, y) spans columns round(x) − P//2 … round(x) − P//2 + P − 1 (rows likewise); past the image
border the image is mirrored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from soscope.errors import SoScopeInputError

# Optical-density colour of each stain (rows: hematoxylin, eosin, residual), unit length
# (Ruifrok & Johnston's colour-deconvolution vectors).
STAIN_OD = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
STAIN_OD = STAIN_OD / np.linalg.norm(STAIN_OD, axis=1, keepdims=True)

MIN_PATCH = 4
_HIST_BINS = 8
_NUCLEAR_OD = 0.3  # hematoxylin concentration above which a pixel counts as nuclear
_EPS = 1e-6
# Optical density −log(I / I₀) of each 8-bit level, with I₀ = 256 and +1 so black stays finite.
_OPTICAL_DENSITY = -torch.log((torch.arange(256, dtype=torch.float32) + 1.0) / 256.0)

FEATURE_NAMES: tuple[str, ...] = (
    *(f"rgb_mean_{c}" for c in "rgb"),
    *(f"rgb_std_{c}" for c in "rgb"),
    *(f"od_mean_{c}" for c in "rgb"),
    *(f"od_std_{c}" for c in "rgb"),
    "hematoxylin_mean",
    "hematoxylin_std",
    "eosin_mean",
    "eosin_std",
    "nuclear_fraction",
    "saturation_mean",
    "saturation_std",
    "grey_mean",
    "grey_std",
    "gradient_mean",
    "gradient_std",
    "laplacian_rms",
    "local_contrast",
    "coarse_std",
    "coarse_gradient_mean",
    "autocorrelation_1",
    "autocorrelation_2",
    "coherence",
    *(f"grey_hist_{i}" for i in range(_HIST_BINS)),
)


def extract_patches(
    image: np.ndarray,
    centres: np.ndarray,
    patch_size: int,
    batch_size: int = 4096,
    source: str = "image",
) -> Iterator[np.ndarray]:
    """Stream square patches (B, P, P, 3) uint8 around (x, y) pixel centres, in input order.

    Validates first (raising `SoScopeInputError` naming `source`): an RGB uint8 image at least
    one patch large, finite centres inside the image.
    """
    image = _check_image(image, patch_size, source)
    centres = _check_centres(centres, image.shape, source)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return _patch_batches(image, centres, patch_size, batch_size)


def handcrafted_features(
    image: np.ndarray,
    centres: np.ndarray,
    patch_size: int,
    batch_size: int = 4096,
    source: str = "image",
    progress: str | None = None,
) -> np.ndarray:
    """Colour and texture statistics (M, D) float32 of the patch at each centre; columns are
    `FEATURE_NAMES`, values in units of [0, 1] intensity or optical density."""
    if patch_size < MIN_PATCH:
        raise SoScopeInputError(
            source, f"patch size {patch_size} is too small for texture features (min {MIN_PATCH})"
        )
    return map_patches(image, centres, patch_size, patch_features, batch_size, source, progress)


def map_patches(
    image: np.ndarray,
    centres: np.ndarray,
    patch_size: int,
    features: Callable[[Tensor], Tensor],
    batch_size: int = 4096,
    source: str = "image",
    progress: str | None = None,
) -> np.ndarray:
    """Apply `features` (uint8 patches (B, P, P, 3) → (B, D)) to the patch at each centre.

    Patches are streamed `batch_size` at a time under `torch.inference_mode`, so memory holds
    one batch, never all patches; `progress` labels a progress bar (shown on a terminal).
    Returns (M, D) float32 in the order of `centres`.
    """
    batches = extract_patches(image, centres, patch_size, batch_size, source)
    n_batches = -(-len(centres) // batch_size)
    out: np.ndarray | None = None
    start = 0
    with torch.inference_mode():
        for batch in tqdm(
            batches, total=n_batches, desc=progress, disable=True if progress is None else None
        ):
            values = features(torch.from_numpy(batch)).float().cpu().numpy()
            if out is None:
                out = np.empty((len(centres), values.shape[1]), dtype=np.float32)
            out[start : start + len(batch)] = values
            start += len(batch)
    if out is None:
        raise SoScopeInputError(source, "no patch centres given")
    return out


def standardize_columns(features: np.ndarray) -> np.ndarray:
    """Z-score each column over the section (constant columns become 0), as float32: features
    on one scale, so no single statistic dominates the distances of the subspot graph."""
    spread = features.std(axis=0)
    return ((features - features.mean(axis=0)) / np.where(spread > 0, spread, 1)).astype(np.float32)


def patch_features(patches: Tensor) -> Tensor:
    """Features (B, D) of a batch of uint8 RGB patches (B, P, P, 3), columns `FEATURE_NAMES`."""
    channels_first = patches.permute(0, 3, 1, 2)
    rgb = channels_first.float() / 255.0
    od = _OPTICAL_DENSITY[channels_first.long()]
    grey = (rgb * rgb.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return torch.cat([_colour_stats(rgb, od), _texture_stats(grey), _histogram(grey)], dim=1)


def _colour_stats(rgb: Tensor, od: Tensor) -> Tensor:
    """Means and spreads in RGB, optical density, stain concentrations and saturation."""
    unmix = torch.linalg.inv(torch.as_tensor(STAIN_OD, dtype=rgb.dtype))
    stains = torch.einsum("bchw,cs->bshw", od, unmix)
    hema, eosin = stains[:, 0], stains[:, 1]
    top, bottom = rgb.amax(1), rgb.amin(1)
    saturation = (top - bottom) / (top + _EPS)
    nuclear = (hema > _NUCLEAR_OD).float().mean((1, 2))
    return torch.cat(
        [
            _mean(rgb),
            _std(rgb),
            _mean(od),
            _std(od),
            torch.stack([_mean(hema), _std(hema), _mean(eosin), _std(eosin), nuclear], 1),
            torch.stack([_mean(saturation), _std(saturation)], 1),
        ],
        dim=1,
    )


def _texture_stats(grey: Tensor) -> Tensor:
    """Grey-level spread, edges, fine and coarse texture, granularity and orientation."""
    gx, gy = _gradients(grey)
    magnitude = torch.sqrt(gx**2 + gy**2)
    laplacian = (
        4 * grey[..., 1:-1, 1:-1]
        - grey[..., :-2, 1:-1]
        - grey[..., 2:, 1:-1]
        - grey[..., 1:-1, :-2]
        - grey[..., 1:-1, 2:]
    )
    local_deviation = grey[..., 1:-1, 1:-1] - F.avg_pool2d(grey, 3, stride=1)
    coarse = F.avg_pool2d(grey, 2)
    coarse_gx, coarse_gy = _gradients(coarse)
    jxx, jyy, jxy = _mean(gx**2), _mean(gy**2), _mean(gx * gy)
    coherence = torch.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + _EPS)
    columns = [
        _mean(grey),
        _std(grey),
        _mean(magnitude),
        _std(magnitude),
        torch.sqrt(_mean(laplacian**2)),
        _mean(local_deviation.abs()),
        _std(coarse),
        _mean(torch.sqrt(coarse_gx**2 + coarse_gy**2)),
        _autocorrelation(grey, 1),
        _autocorrelation(grey, 2),
        coherence,
    ]
    return torch.cat(columns, dim=1)


def _histogram(grey: Tensor) -> Tensor:
    """Fraction of pixels in each of `_HIST_BINS` equal grey-level bins."""
    flat = grey.flatten(1)
    bins = (flat * _HIST_BINS).long().clamp_(0, _HIST_BINS - 1)
    counts = torch.zeros(len(flat), _HIST_BINS, dtype=flat.dtype)
    return counts.scatter_add_(1, bins, torch.ones_like(flat)) / flat.shape[1]


def _gradients(grey: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences along x and y on the common (P−1)×(P−1) crop."""
    gx = grey[..., :-1, 1:] - grey[..., :-1, :-1]
    gy = grey[..., 1:, :-1] - grey[..., :-1, :-1]
    return gx, gy


def _autocorrelation(grey: Tensor, lag: int) -> Tensor:
    """Correlation of the patch with itself shifted by `lag` pixels, along x and y averaged."""
    centred = grey - grey.mean((-2, -1), keepdim=True)
    along_x = (centred[..., lag:] * centred[..., :-lag]).mean((-3, -2, -1))
    along_y = (centred[..., lag:, :] * centred[..., :-lag, :]).mean((-3, -2, -1))
    variance = (centred**2).mean((-3, -2, -1))
    return ((along_x + along_y) / 2 / (variance + _EPS)).unsqueeze(1)


def _mean(values: Tensor) -> Tensor:
    """Mean over the two pixel axes: (B, C, H, W) → (B, C), (B, H, W) → (B,)."""
    return values.mean((-2, -1))


def _std(values: Tensor) -> Tensor:
    """Population standard deviation over the two pixel axes."""
    centred = values - values.mean((-2, -1), keepdim=True)
    return _mean(centred * centred).sqrt()


def _patch_batches(
    image: np.ndarray, centres: np.ndarray, patch_size: int, batch_size: int
) -> Iterator[np.ndarray]:
    height, width = image.shape[:2]
    corner = np.rint(centres).astype(np.int64) - patch_size // 2
    steps = np.arange(patch_size)
    for start in range(0, len(centres), batch_size):
        x0, y0 = corner[start : start + batch_size].T
        rows = _mirror(y0[:, None] + steps, height)
        cols = _mirror(x0[:, None] + steps, width)
        yield image[rows[:, :, None], cols[:, None, :]]


def _mirror(index: np.ndarray, size: int) -> np.ndarray:
    """Reflect indices into [0, size) without repeating the edge pixel (numpy's 'reflect')."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    index = np.abs(index) % period
    return np.where(index >= size, period - index, index)


def _check_image(image: np.ndarray, patch_size: int, source: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise SoScopeInputError(source, f"expected an RGB image (H, W, 3), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise SoScopeInputError(source, f"expected 8-bit RGB pixels (uint8), got {image.dtype}")
    if patch_size < 1:
        raise ValueError(f"patch_size must be positive, got {patch_size}")
    height, width = image.shape[:2]
    if height < patch_size or width < patch_size:
        raise SoScopeInputError(
            source,
            f"image is {height}×{width} pixels, smaller than one {patch_size}×{patch_size} patch",
        )
    return image


def _check_centres(centres: np.ndarray, shape: tuple[int, ...], source: str) -> np.ndarray:
    centres = np.asarray(centres, dtype=np.float64)
    if centres.ndim != 2 or centres.shape[1] != 2:
        raise SoScopeInputError(source, f"patch centres must be (M, 2) (x, y), got {centres.shape}")
    if not np.all(np.isfinite(centres)):
        raise SoScopeInputError(source, "patch centres contain NaN or inf")
    height, width = shape[:2]
    x, y = centres.T
    outside = (x < -1) | (x > width) | (y < -1) | (y > height)  # a pixel of slack at the border
    if outside.any():
        raise SoScopeInputError(
            source,
            f"{int(outside.sum())} patch centres lie outside the {width}×{height} (x × y) image; "
            "positions must be (x, y) in full-resolution pixels",
        )
    return centres
