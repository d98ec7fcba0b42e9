"""`SoScope`: the model as a Python object, for notebooks — set up from a dataset AnnData,
`fit`, `enhance` to a subspot AnnData, `save` and `load`.

It runs what the training command runs (`soscope.pipeline`), with the same config groups and
keys: `SoScope(adata, likelihood="nb").fit(epochs={"vgae": 300}, trainer="gpu")` trains as
`soscope-train likelihood=nb epochs.vgae=300 trainer=gpu` would, and infers on the device it
trained on.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import anndata as ad
import lightning as L
import spatialdata as sd
import torch
from omegaconf import DictConfig, OmegaConf

from soscope.cli import check_config
from soscope.config import keyword_overrides, load_config, override_value
from soscope.data.anndata_io import enhanced_anndata, package_versions
from soscope.data.dataset_h5ad import dataset_section, read_dataset_h5ad, write_dataset_h5ad
from soscope.data.sample import Section
from soscope.data.spatialdata_io import dataset_table
from soscope.errors import SoScopeInputError
from soscope.io_utils import atomic_dir
from soscope.pipeline import (
    load_section,
    make_datamodule,
    predict,
    subspot_library,
    train_both_stages,
)
from soscope.training.soscope import SoScopeModule

CONFIG_FILE, MODEL_FILE, DATASET_FILE = "config.yaml", "model.pt", "dataset.h5ad"
# What `enhance` may change for one call: the output options of the run's config.
OUTPUT_KEYS = (
    "non_negative",
    "consistency",
    "predictive_sd_samples",
    "mean_unclipped_layer",
    "sparse_output",
    "seed",
)


def default_device() -> str:
    """What device="auto" means: "cuda" when PyTorch sees a GPU, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def device_overrides(device: str) -> list[str]:
    """The `trainer` group that trains on `device` ("cpu", "cuda" or "gpu")."""
    if device not in ("cpu", "cuda", "gpu"):
        raise SoScopeInputError("device", f"expected 'cpu', 'cuda' or 'auto', got {device!r}")
    return ["trainer=cpu" if device == "cpu" else "trainer=gpu"]


def read_section(
    data: ad.AnnData | sd.SpatialData | str | Path, likelihood: str, protein_dim: int
) -> tuple[Section, str]:
    """The section of a dataset AnnData, a SpatialData holding one as a table, or a file of
    either (`.h5ad`, `.zarr`), validated for `likelihood`; and where it came from."""
    if isinstance(data, str | Path):
        path = Path(data)
        if path.suffix != ".zarr":
            return read_dataset_h5ad(path, likelihood, protein_dim), str(path)
        data = sd.read_zarr(path)
    if isinstance(data, sd.SpatialData):
        data = dataset_table(data)
    return dataset_section(data, "AnnData", likelihood, protein_dim), "AnnData in memory"


class SoScope:
    """soScope on one tissue section.

    `data` is a dataset AnnData — what `soscope.read_visium`, `soscope.read_anndata` or
    `soscope-preprocess` (its `dataset.h5ad`) make — or a SpatialData holding one as a table,
    or the path of either. `likelihood` (`nb`, `poisson`, `gaussian`, `joint_pnb`,
    `joint_gaussian`; the first `protein_dim` features form a joint likelihood's first block)
    is checked against the data here. `device` is "auto" (a GPU when PyTorch sees one),
    "cpu" or "cuda": training and inference run there. Further `overrides` (strings, as on
    the command line) and keyword `options` (`model={"z_dim": 64}`) set the run's config.
    """

    def __init__(
        self,
        data: ad.AnnData | sd.SpatialData | str | Path,
        *overrides: str,
        likelihood: str = "nb",
        protein_dim: int = 0,
        device: str = "auto",
        **options: Any,
    ) -> None:
        section, source = read_section(data, likelihood, protein_dim)
        device = default_device() if device == "auto" else device
        self.overrides = [
            "data=anndata",
            f"data.path={override_value(source)}",
            f"likelihood={likelihood}",
            f"likelihood.protein_dim={protein_dim}",
            *device_overrides(device),
            *overrides,
            *keyword_overrides(options),
        ]
        self.section = section
        self.cfg = self.compose()
        self.module: SoScopeModule | None = None
        self.trainer: L.Trainer | None = None
        self.datamodule = make_datamodule(self.cfg, section)

    @classmethod
    def from_config(cls, cfg: DictConfig, section: Section | None = None) -> SoScope:
        """The model a composed config describes (what `soscope-train` runs): `section`, or
        the one `cfg.data` loads. Its config is fixed: `fit` takes no overrides."""
        model = cls.__new__(cls)
        model.overrides, model.cfg = None, cfg
        model.section = section or load_section(cfg)
        model.module, model.trainer = None, None
        model.datamodule = make_datamodule(cfg, model.section)
        return model

    def compose(self, *more: str, output_dir: str | Path = ".") -> DictConfig:
        """The run's config: this model's overrides, then `more`; checked as the command
        checks its own."""
        if self.overrides is None:
            raise SoScopeInputError(
                "fit", "this model's config was given whole (from_config): set it there"
            )
        cfg = load_config(*self.overrides, *more, output_dir=output_dir)
        check_config(cfg)
        return cfg

    def fit(
        self,
        *overrides: str,
        config: DictConfig | dict | None = None,
        output_dir: str | Path | None = None,
        **options: Any,
    ) -> SoScope:
        """Train both stages: the VGAE, then soScope from its encoder. Returns the model.

        `overrides` and `options` are the command's config groups and keys (`epochs={"vgae":
        300, "soscope": 300}`, `trainer="gpu"`, `"model.soscope.lr=1e-3"`); `config` is a
        (partial) OmegaConf config merged over the result. Checkpoints, logs and the stage
        figures go into `output_dir` (default: a temporary folder, removed afterwards).
        """
        more = [*overrides, *keyword_overrides(options)]
        folder = tempfile.TemporaryDirectory(prefix="soscope-") if output_dir is None else None
        with folder or nullcontext():
            out_dir = Path(folder.name if folder else output_dir)
            cfg = self.compose(*more, output_dir=out_dir) if more else self.cfg
            if self.overrides is not None:  # remember the run's choices (save, refit)
                self.overrides += more
            cfg = OmegaConf.merge(cfg, config or {}, {"paths": {"output_dir": str(out_dir)}})
            out_dir.mkdir(parents=True, exist_ok=True)
            L.seed_everything(cfg.seed, workers=True, verbose=False)
            self.cfg, self.datamodule = cfg, make_datamodule(cfg, self.section)
            self.module, self.trainer = train_both_stages(cfg, self.datamodule, out_dir)
        return self

    def enhance(self, **options: Any) -> ad.AnnData:
        """The enhanced subspots as AnnData: `X` the profiles in the input's units, `layers`
        `sd` (the predictive sd), `truth` when known and `mean_unclipped` on request,
        `obsm['spatial']` in full-resolution pixels, `uns['spatial']` the section's image.

        `options` change the run's output options for this call: `consistency` ("rescale" /
        "none"), `non_negative`, `predictive_sd_samples` (0: no sd layer),
        `mean_unclipped_layer`, `sparse_output` ("auto", True, False: `X` and the computed
        layers as CSR matrices; auto when at least half of `X` is zero), `seed`.
        """
        if self.module is None:
            raise SoScopeInputError("enhance", "the model is not trained yet: call fit() first")
        unknown = sorted(set(options) - set(OUTPUT_KEYS))
        if unknown:
            raise SoScopeInputError("enhance", f"unknown options {unknown}; use {OUTPUT_KEYS}")
        cfg = OmegaConf.merge(self.cfg, options)
        section = self.section
        enhanced, layers = predict(cfg, self.module, self.datamodule)
        truth = {} if section.truth is None else {"truth": section.truth}
        return enhanced_anndata(
            enhanced,
            section.graph,
            feature_names=section.feature_names,
            spot_names=section.spot_names,
            config=OmegaConf.to_container(cfg, resolve=True),
            layers={**truth, **layers},
            spatial=subspot_library(section),
        )

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the trained model into the folder `path` (atomically): `config.yaml` (the
        run's config), `model.pt` (the stage-2 module's hyperparameters and weights, and this
        model's overrides) and `dataset.h5ad` (the section). Returns the folder."""
        if self.module is None:
            raise SoScopeInputError("save", "the model is not trained yet: call fit() first")
        path = Path(path)
        if path.exists() and not overwrite:
            raise SoScopeInputError(path, "already exists; pass overwrite=True to replace it")
        state = {
            "hparams": dict(self.module.hparams),
            "state_dict": {k: v.cpu() for k, v in self.module.state_dict().items()},
            "overrides": self.overrides,
            "versions": package_versions(),
        }
        with atomic_dir(path) as tmp:
            (tmp / CONFIG_FILE).write_text(OmegaConf.to_yaml(self.cfg, resolve=True))
            torch.save(state, tmp / MODEL_FILE)
            write_dataset_h5ad(self.section, tmp / DATASET_FILE)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> SoScope:
        """A model `save` wrote, ready to `enhance` (or `fit` further); `device` ("cpu",
        "cuda", "auto") overrides the one it trained on."""
        path = Path(path)
        files = [path / name for name in (CONFIG_FILE, MODEL_FILE, DATASET_FILE)]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise SoScopeInputError(
                path, f"not a saved soscope model: {', '.join(missing)} missing"
            )
        try:
            state = torch.load(path / MODEL_FILE, map_location="cpu", weights_only=False)
            module = SoScopeModule(**state["hparams"])
            module.load_state_dict(state["state_dict"])
        except Exception as err:
            raise SoScopeInputError(path / MODEL_FILE, f"not a soscope model ({err})") from None
        cfg = OmegaConf.load(path / CONFIG_FILE)
        hp = module.hparams
        section = read_dataset_h5ad(path / DATASET_FILE, hp.likelihood, hp.protein_dim)
        if device is not None:
            device = default_device() if device == "auto" else device
            trainer = load_config(*device_overrides(device), output_dir=".").trainer
            cfg = OmegaConf.merge(cfg, {"trainer": OmegaConf.to_container(trainer)})
        model = cls.from_config(cfg, section)
        model.overrides, model.module = state["overrides"], module
        if model.overrides is not None and device is not None:
            model.overrides += device_overrides(device)
        return model

    def __repr__(self) -> str:
        graph = self.section.graph
        state = "trained" if self.module is not None else "not trained"
        sizes = {
            "spots": graph.num_spots,
            "subspots": graph.num_subspots,
            "features": int(graph.x.size(1)),
        }
        return f"SoScope({self.cfg.likelihood.name}, {json.dumps(sizes)[1:-1]}, {state})"
