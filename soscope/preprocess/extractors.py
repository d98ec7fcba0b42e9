"""Image feature extractors, chosen by name: pretrained networks (torchvision's CNNs, any timm
model), the weight-free statistics, features computed elsewhere, or none.

`EXTRACTORS` is the registry (name → factory); `make_extractor` builds one from config values.
Pretrained CNNs are torchvision models built without weights, their state dict loaded from a
local file: nothing is downloaded at run time, and a missing file is reported with where to
put it and where to get it.
"""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models

from soscope.data.validate import check_matrix, load_npy, to_float32
from soscope.errors import SoScopeInputError
from soscope.preprocess.image_features import handcrafted_features, map_patches

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Extractor(ABC):
    """Features (M, D) of the image patches around M centres (image pixels)."""

    name: str
    needs_image: bool = True
    cacheable: bool = True  # worth caching on disk (see `feature_cache`)

    def settings(self) -> dict[str, Any]:
        """Everything besides image, centres and patch size that changes the output."""
        return {}

    @abstractmethod
    def extract(
        self, image: np.ndarray | None, centres: np.ndarray, patch_size: int, source: str
    ) -> np.ndarray:
        """(M, D) float32 features of the `patch_size` patches at (x, y) `centres`."""


class Handcrafted(Extractor):
    """Weight-free colour and texture statistics (`image_features.FEATURE_NAMES`)."""

    name = "handcrafted"

    def __init__(self, batch_size: int = 4096) -> None:
        self.batch_size = batch_size

    def extract(self, image, centres, patch_size, source):
        return handcrafted_features(
            image, centres, patch_size, self.batch_size, source, progress="handcrafted features"
        )


@dataclass(frozen=True)
class Architecture:
    """A torchvision classifier whose pooled features (input to `fc`) are the image features."""

    build: Callable[..., nn.Module]
    weights: Any  # torchvision's WeightsEnum of the architecture, DEFAULT first
    input_size: int
    kwargs: dict = field(default_factory=dict)


ARCHITECTURES = {
    # transform_input: the Google weights expect [-1, 1] inputs; torchvision converts from
    # ImageNet normalisation, as it does when it loads these weights itself.
    "inception_v3": Architecture(
        models.inception_v3,
        models.Inception_V3_Weights,
        299,
        {"aux_logits": True, "transform_input": True, "init_weights": False},
    ),
    "resnet50": Architecture(models.resnet50, models.ResNet50_Weights, 224),
}


class Backbone(Extractor):
    """Pooled features of a pretrained network (`model`, on `device`) over resized patches.

    Patches are resized to `input_size` and normalised with `mean`/`std`; batches of
    `batch_size` run under `torch.inference_mode`, channels-last and with bf16 autocast on a
    GPU. Subclasses build `model` from a local weights file (`weights_path`).
    """

    model: nn.Module
    weights_path: Path
    input_size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __init__(self, batch_size: int, device: str) -> None:
        self.batch_size = batch_size
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )

    def _ready(self) -> None:
        """Channels-last on a GPU (on CPUs it slows the start); the weights' hash for caching."""
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self._weights_hash = _file_hash(self.weights_path)

    def settings(self):
        return {
            "weights": self._weights_hash,
            "input_size": self.input_size,
            "autocast": self.device.type == "cuda",
        }

    def extract(self, image, centres, patch_size, source):
        return map_patches(
            image,
            centres,
            patch_size,
            self._forward,
            self.batch_size,
            source,
            progress=f"{self.name} features",
        )

    def _forward(self, patches: Tensor) -> Tensor:
        x = patches.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float() / 255.0
        size = (self.input_size, self.input_size)
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        mean = x.new_tensor(self.mean).view(1, 3, 1, 1)
        std = x.new_tensor(self.std).view(1, 3, 1, 1)
        x = (x - mean) / std
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.device.type == "cuda"):
            return self.model(x)


class Pretrained(Backbone):
    """2048-d pooled features of a torchvision CNN (Inception-v3 or ResNet-50), ImageNet
    normalised, at `input_size` (the architecture's own by default). `device`: `auto` (a GPU
    when there is one), `cpu`, `cuda`, …."""

    def __init__(
        self,
        name: str,
        weights: str | Path | None = None,
        batch_size: int = 64,
        input_size: int | None = None,
        device: str = "auto",
    ) -> None:
        super().__init__(batch_size, device)
        self.name = name
        self.architecture = ARCHITECTURES[name]
        self.weights_path = find_weights(name, weights)
        self.input_size = input_size or self.architecture.input_size
        self.model = _load_model(name, self.architecture, self.weights_path, self.device)
        self._ready()


class Timm(Backbone):
    """Pooled features of any timm model — a pathology foundation model (UNI, Phikon, …) or an
    ImageNet network — with its weights from a local file (.pth, .bin or .safetensors).

    `model` is the timm name (`timm.list_models()`), `model_kwargs` what its weights need beyond
    it (e.g. UNI: `init_values: 1e-5`); input size, mean and std are the model's own unless
    given. Needs the `timm` package (`pip install 'soscope[timm]'`).
    """

    name = "timm"

    def __init__(
        self,
        model: str,
        weights: str | Path,
        model_kwargs: dict[str, Any] | None = None,
        batch_size: int = 64,
        input_size: int | None = None,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        device: str = "auto",
    ) -> None:
        super().__init__(batch_size, device)
        try:
            import timm
        except ImportError:
            raise ImportError(
                "features=timm needs the timm package: pip install 'soscope[timm]'"
            ) from None
        self.weights_path = Path(weights).expanduser()
        if not self.weights_path.is_file():
            raise SoScopeInputError(
                self.weights_path,
                f"the weights file of timm model {model} is missing; soscope never downloads at "
                "run time: save the model's weights there, or pass features.weights=<file>",
            )
        try:
            network = timm.create_model(
                model, pretrained=False, num_classes=0, **dict(model_kwargs or {})
            )
        except RuntimeError as err:  # timm's error for an unknown name
            raise ValueError(f"features.model: {err}") from None
        config = network.pretrained_cfg
        self.input_size = input_size or int(config.get("input_size", (3, 224, 224))[-1])
        self.mean = tuple(mean or config.get("mean", IMAGENET_MEAN))
        self.std = tuple(std or config.get("std", IMAGENET_STD))
        _load_state(network, _read_state(self.weights_path), self.weights_path, f"timm's {model}")
        self.model = network.to(self.device).eval()
        self._ready()

    def settings(self):
        return {**super().settings(), "mean": self.mean, "std": self.std}


def find_weights(name: str, weights: str | Path | None = None) -> Path:
    """The weights file of `name`: `weights` if given, else torchvision's file in the torch hub
    cache (`torch.hub.get_dir()/checkpoints/`); a missing file raises with how to supply it."""
    candidates = [m for m in ARCHITECTURES[name].weights]
    default = ARCHITECTURES[name].weights.DEFAULT
    candidates.sort(key=lambda m: m is not default)
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    if weights is not None:
        path = Path(weights).expanduser()
        if path.is_file():
            return path
    else:
        found = [hub / Path(m.url).name for m in candidates if (hub / Path(m.url).name).is_file()]
        if found:
            return found[0]
        path = hub / Path(default.url).name
    raise SoScopeInputError(
        path,
        f"the {name} weights file is missing; soscope never downloads at run time. Download "
        f"{default.url} and save it as {path}"
        + ("" if weights is not None else f" (the torch hub cache, {hub})")
        + ", or pass features.weights=/path/to/file.pth; features=handcrafted needs no weights",
    )


def _load_model(
    name: str, architecture: Architecture, path: Path, device: torch.device
) -> nn.Module:
    """The architecture with the file's weights, on `device`; built on the meta device and
    allocated empty, so no time goes into a random initialisation the weights overwrite."""
    with torch.device("meta"):
        model = architecture.build(weights=None, **architecture.kwargs)
    model = model.to_empty(device=device)
    _load_state(model, _read_state(path), path, f"torchvision's {name}", strict=True)
    model.fc = nn.Identity()
    return model.eval()


def _read_state(path: Path) -> dict[str, Tensor]:
    """The state dict in `path` (a PyTorch file, or .safetensors); an unusable file raises."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip, safetensors and torch errors alike
        raise SoScopeInputError(path, f"cannot be read as a PyTorch state dict ({err})") from None


def _load_state(model: nn.Module, state: Any, path: Path, what: str, strict: bool = False) -> None:
    """Load `state` into `model`; a file that is not `what`'s (a key the model needs is
    missing, or a shape differs) raises naming `path`. Unless `strict`, keys the pooled
    features do not use (a classifier head) are left out."""
    try:
        if not isinstance(state, dict):
            raise TypeError(f"holds a {type(state).__name__}, not a state dict")
        if not strict:
            own = model.state_dict()
            state = {key: value for key, value in state.items() if key in own}
        missing, _ = model.load_state_dict(state, strict=strict)
        if missing:
            raise RuntimeError(f"{len(missing)} weights missing, e.g. {missing[0]}")
    except (RuntimeError, TypeError, AttributeError) as err:
        first_line = str(err).strip().splitlines()[0]
        raise SoScopeInputError(path, f"is not a state dict of {what} ({first_line})") from None


def _file_hash(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


class Precomputed(Extractor):
    """Features computed elsewhere: an (M, D) `.npy`, one row per subspot in layout order (spot
    by spot, as `sub_positions.csv` lists them), or for given cells one row per cell of the
    centroid file."""

    name = "precomputed"
    needs_image = False
    cacheable = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def extract(self, image, centres, patch_size, source):
        features = to_float32(check_matrix(load_npy(self.path), self.path), self.path)
        if len(features) != len(centres):
            raise SoScopeInputError(
                self.path, f"has {len(features)} rows for the {len(centres)} subspots (or cells)"
            )
        return features


class NoImage(Extractor):
    """No image: one constant feature, so the subspot graph is plain neighbourhood and the
    model learns from the spot graph alone."""

    name = "none"
    needs_image = False
    cacheable = False

    def extract(self, image, centres, patch_size, source):
        return np.zeros((len(centres), 1), dtype=np.float32)


EXTRACTORS: dict[str, Callable[..., Extractor]] = {
    "inception_v3": partial(Pretrained, "inception_v3"),
    "resnet50": partial(Pretrained, "resnet50"),
    "timm": Timm,
    "handcrafted": Handcrafted,
    "precomputed": Precomputed,
    "none": NoImage,
}


def make_extractor(name: str, **settings: Any) -> Extractor:
    """The extractor registered as `name`, built with `settings`.

    `auto` is `inception_v3` when its weights are in the torch hub cache, else `handcrafted`.
    """
    if name == "auto":
        if settings:
            raise ValueError(f"image features 'auto' takes no settings, got {sorted(settings)}")
        try:
            find_weights("inception_v3")
        except SoScopeInputError:
            log.info("no inception_v3 weights in the torch hub cache: handcrafted image features")
            return Handcrafted()
        return Pretrained("inception_v3")
    if name not in EXTRACTORS:
        raise ValueError(f"unknown image features {name!r}; choose from {['auto', *EXTRACTORS]}")
    return EXTRACTORS[name](**settings)
