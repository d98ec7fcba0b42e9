"""Bad inputs: each gives one `SoScopeInputError` naming the file and the problem, the command
exits with status 2 and that one line (no traceback), and no output folder is left behind."""

import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from soscope.datasets.spaceranger import write_spaceranger
from soscope.errors import INPUT_ERROR_STATUS, SoScopeInputError
from soscope.preprocess import cli
from tests.preprocess.fakes import write_anndata, write_csv_pair

ROOT = Path(__file__).resolve().parents[2]


def missing_barcode(root: Path, tissue) -> tuple[list[str], str, str]:
    outs = write_spaceranger(root, tissue)
    positions = outs / "spatial" / "tissue_positions.csv"
    pd.read_csv(positions).drop(index=4).to_csv(positions, index=False)
    return (
        [f"input.path={outs}"],
        "tissue_positions.csv",
        "has no position for 1 of the 36 barcodes",
    )


def outside_the_image(root: Path, tissue) -> tuple[list[str], str, str]:
    outs = write_spaceranger(root, tissue)
    hires = outs / "spatial" / "tissue_hires_image.png"  # given as if it were full resolution
    return (
        [f"input.path={outs}", f"input.image={hires}"],
        "tissue_positions.csv",
        "spots lie outside the image",
    )


def image_smaller_than_a_patch(root: Path, tissue) -> tuple[list[str], str, str]:
    """Four spots one pixel apart on a 3 × 3 px image: the patches are the 4 px minimum."""
    root.mkdir()
    pd.DataFrame(np.ones((4, 2), int), index=list("abcd"), columns=["g1", "g2"]).to_csv(
        root / "c.csv"
    )
    rows, cols = [0, 0, 1, 1], [0, 1, 0, 1]
    positions = {
        "barcode": list("abcd"),
        "row": rows,
        "col": cols,
        "imagerow": rows,
        "imagecol": cols,
    }
    pd.DataFrame(positions).to_csv(root / "p.csv", index=False)
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(root / "tiny.png")
    overrides = ["input=csv", f"input.counts={root / 'c.csv'}", f"input.positions={root / 'p.csv'}"]
    overrides += [f"input.image={root / 'tiny.png'}", "layout=grid", "genes.method=all"]
    return overrides, "tiny.png", "image is 3×3 pixels, smaller than one 4×4 patch"


def missing_weights(root: Path, tissue) -> tuple[list[str], str, str]:
    outs = write_spaceranger(root, tissue)
    weights = root / "inception.pth"
    overrides = [f"input.path={outs}", "features=inception_v3", f"features.weights={weights}"]
    return overrides, "inception.pth", "the inception_v3 weights file is missing"


def edited_counts(value: float, problem: str):
    def make(root: Path, tissue) -> tuple[list[str], str, str]:
        root.mkdir()
        counts, positions = write_csv_pair(root, tissue)
        table = pd.read_csv(counts, index_col=0).astype(float)
        table.iloc[3, 2] = value
        table.to_csv(counts)
        overrides = ["input=csv", f"input.counts={counts}", f"input.positions={positions}"]
        return overrides, "counts.csv", f"1 {problem} counts in 1 features: gene_2"

    return make


def no_matrix(root: Path, tissue) -> tuple[list[str], str, str]:
    outs = write_spaceranger(root, tissue)
    (outs / "filtered_feature_bc_matrix.h5").unlink()
    return [f"input.path={outs}"], "outs", "has neither filtered_feature_bc_matrix.h5 nor"


def no_image(root: Path, tissue) -> tuple[list[str], str, str]:
    outs = write_spaceranger(root, tissue, images=())
    overrides = [f"input.path={outs}", "features=handcrafted"]
    return (
        overrides,
        "spatial (no tissue_hires_image.png or tissue_lowres_image.png)",
        ("no H&E image found, and image features 'handcrafted' need one: give input.image="),
    )


def wrong_image_scale(root: Path, tissue) -> tuple[list[str], str, str]:
    """A full-resolution image declared as a 0.2 copy: every spot falls in one corner."""
    outs = write_spaceranger(root, tissue)
    overrides = [
        f"input.path={outs}",
        f"input.image={root / 'fullres.png'}",
        "input.image_scale=0.2",
    ]
    return overrides, "tissue_positions.csv", "every spot lies in the top-left corner"


def log_normalised(root: Path, tissue) -> tuple[list[str], str, str]:
    root.mkdir()
    adata = ad.read_h5ad(write_anndata(root / "section.h5ad", tissue))
    adata.layers["counts"] = adata.X.copy()
    adata.X = np.log1p(adata.X)
    adata.write_h5ad(root / "section.h5ad")
    overrides = ["input=anndata", f"input.path={root / 'section.h5ad'}"]
    return overrides, "section.h5ad X", "non-integer counts (e.g. "


CASES = {
    "no_count_matrix": no_matrix,
    "no_image_for_the_features": no_image,
    "image_scale_that_packs_the_spots_in_a_corner": wrong_image_scale,
    "log_normalised_counts": log_normalised,
    "barcode_without_position": missing_barcode,
    "coordinates_outside_the_image": outside_the_image,
    "image_smaller_than_a_patch": image_smaller_than_a_patch,
    "missing_inception_weights": missing_weights,
    "negative_counts": edited_counts(-2.0, "negative"),
    "nan_counts": edited_counts(np.nan, "NaN or infinite"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_clear_message_and_no_output(
    tmp_path, visium_tissue, preprocess_config, run_command, capsys, case
):
    overrides, file_name, problem = CASES[case](tmp_path / "raw", visium_tissue)
    out = tmp_path / "dataset"
    common = [*overrides, f"out={out}", f"cache_dir={tmp_path / 'cache'}"]
    with pytest.raises(SoScopeInputError) as caught:
        cli.preprocess(preprocess_config(*common))
    assert caught.value.source.endswith(file_name) and problem in caught.value.problem

    assert run_command(common) == INPUT_ERROR_STATUS
    printed = capsys.readouterr()
    assert printed.err.strip().splitlines() == [f"soscope: error: {caught.value}"]
    assert "Traceback" not in printed.out + printed.err
    assert not out.exists() and not list(tmp_path.glob(".dataset*"))


def test_the_command_line_exits_non_zero_without_a_traceback(tmp_path, visium_tissue):
    overrides, _, problem = missing_weights(tmp_path / "raw", visium_tissue)
    command = [sys.executable, "scripts/preprocess.py", *overrides, f"out={tmp_path / 'dataset'}"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == INPUT_ERROR_STATUS
    assert problem in done.stderr and "inception.pth" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "dataset").exists()


def test_an_existing_output_is_kept_unless_overwrite(tmp_path, visium_tissue, preprocess_config):
    outs = write_spaceranger(tmp_path / "raw", visium_tissue)
    out = tmp_path / "dataset"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(SoScopeInputError, match="already exists; pass overwrite=true"):
        cli.preprocess(preprocess_config(f"input.path={outs}", f"out={out}", "features=none"))
    assert (out / "mine.txt").read_text() == "keep me"


def test_the_raw_counts_layer_is_named_in_the_message(tmp_path, visium_tissue, preprocess_config):
    overrides, _, _ = log_normalised(tmp_path / "raw", visium_tissue)
    with pytest.raises(
        SoScopeInputError, match=r"give the raw counts \(input.layer=<one of \['counts'\]>\)"
    ):
        cli.preprocess(preprocess_config(*overrides, f"out={tmp_path / 'dataset'}"))


def test_a_missing_output_folder_is_one_line(tmp_path, visium_tissue, run_command, capsys):
    outs = write_spaceranger(tmp_path / "raw", visium_tissue)
    assert run_command([f"input.path={outs}", f"cache_dir={tmp_path / 'cache'}"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "soscope: error: config: out must be set, e.g. `out=<value>`"
