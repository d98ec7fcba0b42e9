"""The command itself: a run prints what it read, built and how long each step took."""

import json

from soscope.datasets.spaceranger import write_spaceranger


def test_the_command_prints_a_summary(tmp_path, visium_tissue, run_command, capsys):
    outs = write_spaceranger(tmp_path / "raw", visium_tissue)
    out = tmp_path / "dataset"
    overrides = [f"input.path={outs}", f"out={out}", "features=none", "genes.n_top=5"]
    assert run_command([*overrides, f"cache_dir={tmp_path / 'cache'}"]) == 0
    printed = capsys.readouterr().out
    for line in [
        f"dataset written to {out}",
        "spots      35 kept (1 outside the tissue, 0 without subspots dropped)",
        "features   5 of 12",
        "subspots   245 (visium7: 7 per spot, 14.0 px across; 7 px image patches)",
        "spot graph A    ",
        "(visium lattice (6 neighbours))",
        "subspot graph W ",
        "time       image model",
        f"soscope-train data=anndata data.path={out / 'dataset.h5ad'} likelihood=nb",
    ]:
        assert line in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["spots"] == 35 and summary["subspots"] == 245
    assert set(summary["seconds"]) >= {
        "read",
        "select features",
        "layout",
        "image features",
        "graphs",
    }
