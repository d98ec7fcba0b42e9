"""Bad inputs: each gives one `SoScopeInputError` naming the file and the problem, the command
exits with status 2 and that one line (no traceback), and no output folder is left behind."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from soscope.errors import INPUT_ERROR_STATUS, SoScopeInputError
from soscope.preprocess import cli
from tests.preprocess.fakes import write_csv_pair, write_spaceranger

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


CASES = {
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
    assert Path(caught.value.source).name == file_name and problem in caught.value.problem

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
