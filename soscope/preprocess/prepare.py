"""Raw inputs → a dataset AnnData in one Python call: what `soscope-preprocess` builds, kept in
memory (nothing is written), ready for `soscope.SoScope`.

The options are the command's: config groups and keys as strings (`"layout=grid"`,
`"genes.method=all"`) or as keywords (`layout="grid"`, `genes={"method": "all"}`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import anndata as ad
from hydra import compose, initialize_config_module
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from soscope.config import check_mandatory, keyword_overrides, override_value
from soscope.data.dataset_h5ad import dataset_anndata
from soscope.errors import SoScopeInputError
from soscope.preprocess.build import BuiltDataset, build_dataset
from soscope.preprocess.timing import StepTimer

CONF_MODULE = "soscope.conf_preprocess"


def preprocess_config(*overrides: str, out: str | Path) -> DictConfig:
    """The config `soscope-preprocess <overrides> out=<out>` would run."""
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        return compose("preprocess", overrides=[f"out={override_value(str(out))}", *overrides])


def build(config: DictConfig) -> Any:
    """`hydra.utils.instantiate`, letting our input errors through as they are (Hydra wraps
    every exception of a target in its own, message and all)."""
    try:
        return instantiate(config)
    except InstantiationException as err:
        if isinstance(err.__cause__, SoScopeInputError):
            raise err.__cause__ from None
        raise


def build_from_config(cfg: DictConfig, timer: StepTimer | None = None) -> BuiltDataset:
    """Read the raw inputs `cfg` names and build the dataset, named after `cfg.out`."""
    check_mandatory(cfg)
    timer = timer or StepTimer()
    with timer("image model"):
        extractor = build(cfg.features)
    with timer("read"):
        raw = build(cfg.input)
    return build_dataset(
        raw,
        build(cfg.layout),
        extractor,
        genes=OmegaConf.to_container(cfg.genes, resolve=True),
        graph_scale=cfg.graph.scale,
        standardize=cfg.standardize_features,
        cache_dir=cfg.cache_dir,
        timer=timer,
        name=Path(cfg.out).name,
    )


def prepare(*overrides: str, name: str = "section", **options: Any) -> ad.AnnData:
    """The dataset AnnData `soscope-preprocess` would write as `dataset.h5ad` (raw counts in
    `layers['counts']`), for the inputs and options given; `name` names the section."""
    cfg = preprocess_config(*overrides, *keyword_overrides(options), out=name)
    built = build_from_config(cfg)
    return dataset_anndata(built.section, layers={"counts": built.counts})


def read_visium(
    path: str | Path, *overrides: str, image: str | Path | None = None, **options: Any
) -> ad.AnnData:
    """A Space Ranger `outs/` folder (Visium; Visium HD's `binned_outputs/square_<n>um` with
    `layout="grid"`) as a dataset AnnData. `image` is the full-resolution image given to Space
    Ranger; without it the folder's hires (else lowres) image is used at its scale factor.
    Other options as `prepare`'s, e.g. `genes={"method": "all"}`, `features="handcrafted"`."""
    given = keyword_overrides({"input": {"path": str(path), "image": image}})
    return prepare("input=spaceranger", *given, *overrides, **options)


def read_anndata(data: ad.AnnData | str | Path, *overrides: str, **options: Any) -> ad.AnnData:
    """An AnnData in the scanpy/squidpy layout (raw counts in `X` or `layer=…`, positions in
    `obsm['spatial']`, the image in `uns['spatial']`), or its `.h5ad` file, as a dataset
    AnnData. Options as `prepare`'s."""
    if not isinstance(data, ad.AnnData):
        return prepare(
            "input=anndata", f"input.path={override_value(str(data))}", *overrides, **options
        )
    with tempfile.TemporaryDirectory(prefix="soscope-") as folder:
        path = Path(folder) / "input.h5ad"
        data.write_h5ad(path)
        return read_anndata(path, *overrides, **options)
