"""`soscope-preprocess` (= `python scripts/preprocess.py`): raw inputs → a dataset folder.

Hydra-configured from the package's `conf_preprocess/`; `--help` lists the groups
(`input`, `layout`, `features`). Bad input ends the command with one line naming the file, the
problem and the fix (`soscope: error: …`), exit status 2, and no output folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from soscope.config import check_mandatory
from soscope.errors import SoScopeInputError, exit_with
from soscope.preprocess.build import BuiltDataset
from soscope.preprocess.output import DATASET_H5AD, check_output, write_dataset
from soscope.preprocess.prepare import CONF_MODULE, build_from_config
from soscope.preprocess.timing import StepTimer


def preprocess(cfg: DictConfig) -> tuple[BuiltDataset, dict[str, float]]:
    """Read, build and write the dataset `cfg` describes; returns it and the seconds per step."""
    check_mandatory(cfg)
    timer = StepTimer()
    check_output(cfg.out, cfg.overwrite)
    built = build_from_config(cfg, timer)
    built.summary["seconds"] = dict(timer.seconds)
    with timer("write"):
        write_dataset(built, cfg.out, cfg.overwrite)
    return built, timer.seconds


def format_summary(
    summary: dict[str, Any], seconds: dict[str, float], out: Path, likelihood: str = "nb"
) -> str:
    """What was read, what was built and how long each step took, for the console; the train
    command to run next uses `likelihood`."""
    s = summary
    per_spot = s["subspots_per_spot"] or "a variable number"
    image = f"{s['image']} at scale {s['image_scale']:g}" if s.get("image") else "none"
    cached = "from the cache" if s["image_features_cached"] else "computed"
    steps = " · ".join(f"{step} {t:.2f} s" for step, t in seconds.items())
    return "\n".join(
        [
            f"soscope-preprocess: dataset written to {out}",
            f"  counts     {s['counts_source']}",
            f"  positions  {s['positions_source']} ({s['frame']})",
            f"  image      {image}",
            f"  spots      {s['spots']:,} kept ({s['spots_outside_tissue']:,} outside the tissue, "
            f"{s['spots_without_subspots']:,} without subspots dropped)",
            f"  features   {s['features']:,} of {s['features_in_input']:,}",
            f"  subspots   {s['subspots']:,} ({s['layout']}: {per_spot} per spot, "
            f"{s['sub_diameter']:.1f} px across; {s['patch_size']} px image patches)",
            f"  image features  {s['image_features']}: {s['image_feature_dim']} per subspot, {cached}",
            f"  spot graph A    {s['spot_edges']:,} edges ({s['spot_graph']})",
            f"  subspot graph W {s['subspot_edges']:,} edges ({s['subspot_graph']})",
            f"  time       {steps} · total {sum(seconds.values()):.2f} s",
            f"train it:    soscope-train data=anndata data.path={out / DATASET_H5AD} "
            f"likelihood={likelihood}",
        ]
    )


@hydra.main(version_base="1.3", config_path=f"pkg://{CONF_MODULE}", config_name="preprocess")
def main(cfg: DictConfig) -> None:
    """The command: run `preprocess`, print the summary; bad input → one line, exit status 2."""
    try:
        built, seconds = preprocess(cfg)
    except SoScopeInputError as err:
        exit_with(err)
    likelihood = "gaussian" if cfg.input.get("values") == "continuous" else "nb"
    print(format_summary(built.summary, seconds, Path(cfg.out), likelihood))
