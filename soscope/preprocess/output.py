"""Write a built dataset: one folder, complete or absent.

`<out>/` is a dataset directory in the original's format (`label.npy`, `adj.npy`,
`support_feature.npy`, `sub_adj.npy`, feature names and positions; only for a fixed number of
subspots per spot, as that format requires) and also holds `dataset.h5ad` (everything,
variable subspot counts included, with the raw counts in `layers['counts']`) and
`summary.json`. The folder is assembled under a temporary name and renamed when whole.
"""

from __future__ import annotations

import json
from pathlib import Path

from soscope.data.dataset_h5ad import write_dataset_h5ad
from soscope.data.reference_io import write_reference_dir
from soscope.errors import SoScopeInputError
from soscope.io_utils import atomic_dir
from soscope.preprocess.build import BuiltDataset

DATASET_H5AD, SUMMARY_JSON = "dataset.h5ad", "summary.json"


def check_output(out: str | Path, overwrite: bool) -> Path:
    """The output folder, refused up front if it exists and `overwrite` is off."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise SoScopeInputError(out, "already exists; pass overwrite=true to replace it")
    return out


def write_dataset(built: BuiltDataset, out: str | Path, overwrite: bool = False) -> Path:
    """Write `built` into the folder `out` (atomically); returns the folder."""
    out = check_output(out, overwrite)
    section = built.section
    with atomic_dir(out) as tmp:
        if built.summary["subspots_per_spot"]:
            write_reference_dir(section.graph, tmp, section.feature_names, overwrite=True)
        write_dataset_h5ad(section, tmp / DATASET_H5AD, layers={"counts": built.counts})
        summary = json.dumps(built.summary, indent=2, default=float, ensure_ascii=False)
        (tmp / SUMMARY_JSON).write_text(summary + "\n", encoding="utf-8")
    return out
