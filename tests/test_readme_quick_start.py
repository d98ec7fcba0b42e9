"""The README's Quick start, its Python block verbatim, on the output of a Space Ranger folder:
soscope-preprocess → a short training run → scanpy clustering and squidpy's plot over the image.

The large case has more subspots (8,400) than scanpy's brute-force neighbour search takes
(8,192), so `sc.pp.neighbors` runs pynndescent, as on a real section."""

import re
from pathlib import Path

import anndata as ad
import matplotlib
import pytest
from hydra import compose, initialize_config_module

from soscope.config import load_config
from soscope.datasets import make_synthetic_tissue
from soscope.datasets.spaceranger import write_spaceranger
from soscope.job import run
from soscope.preprocess.cli import CONF_MODULE, preprocess

matplotlib.use("Agg")
README = Path(__file__).resolve().parents[1] / "README.md"
SHORT_RUN = [
    "epochs.vgae=1",
    "epochs.soscope=1",
    "model.z_dim=16",
    "model.hidden=32",
    "predictive_sd_samples=2",
    "logger=none",
    "trainer.enable_progress_bar=false",
]


def quick_start_code() -> str:
    """The first Python block under the README's "Quick start" heading."""
    section = README.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def preprocessed(outs: Path, out: Path, cache: Path) -> Path:
    """`soscope-preprocess input.path=<outs> out=<out>`; the dataset .h5ad."""
    overrides = [f"input.path={outs}", f"out={out}", f"cache_dir={cache}", "features=handcrafted"]
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        preprocess(compose("preprocess", overrides=overrides))
    return out / "dataset.h5ad"


@pytest.mark.parametrize(
    "rows, cols, matrix, images",
    [(30, 40, "h5", ("lowres",)), (5, 6, "mtx", ("hires", "lowres"))],
    ids=["h5, lowres only, 8,400 subspots", "mtx, hires and lowres"],
)
def test_the_quick_start_runs_verbatim_over_the_image(
    tmp_path, monkeypatch, rows, cols, matrix, images
):
    import matplotlib.pyplot as plt

    tissue = make_synthetic_tissue(n_rows=rows, n_cols=cols, n_features=12, seed=1)
    outs = write_spaceranger(tmp_path / "sample1", tissue, matrix=matrix, images=images)
    dataset = preprocessed(outs, tmp_path / "section1", tmp_path / "cache")
    code = quick_start_code()
    run_dir = tmp_path / re.search(r'read_h5ad\("([^"]+)/enhanced\.h5ad"\)', code).group(1)
    run(load_config("data=anndata", f"data.path={dataset}", *SHORT_RUN, output_dir=run_dir))

    enhanced = ad.read_h5ad(run_dir / "enhanced.h5ad")
    assert enhanced.n_obs == 7 * (rows * cols - 1)  # the fakes leave one spot off the tissue
    (library,) = enhanced.uns["spatial"].values()
    assert set(library["images"]) == set(images)
    assert "H&E image: yes" in (run_dir / "summary.md").read_text()

    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {})
    panels = [axis for axis in plt.gcf().axes if axis.get_title()]
    assert [axis.get_title() for axis in panels] == ["leiden", enhanced.var_names[0]]
    assert all(axis.images for axis in panels), "every panel is drawn over the H&E image"
    plt.close("all")
