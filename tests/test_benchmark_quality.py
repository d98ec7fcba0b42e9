"""The aggregation benchmark script end to end, in its --quick smoke mode."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from soscope.evaluate.baselines import BASELINES

ROOT = Path(__file__).resolve().parents[1]
SKIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "spatialcite_humanskin"


def load_script():
    """scripts/ is not a package: import the script from its file (registered, for dataclasses)."""
    path = ROOT / "scripts" / "benchmark_quality.py"
    spec = importlib.util.spec_from_file_location("benchmark_quality", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_quick(tmp_path: Path, *datasets: str) -> tuple[str, Path]:
    out = tmp_path / "quality.md"
    argv = ["--quick", "--seeds", "0", "--jobs", "1", *datasets, "--out", str(out)]
    return load_script().main(argv), out


def assert_complete(table: str, out: Path, dataset: str) -> None:
    """Every method has a row for `dataset`, and the markdown and the figure were written."""
    for method in (*BASELINES, "soscope"):
        assert f"| {dataset} | {method} |" in table
    assert out.read_text().startswith("# Aggregation benchmark")
    assert "--quick" in out.read_text()
    assert out.with_suffix(".png").is_file()


def test_quick_synthetic(tmp_path):
    table, out = run_quick(
        tmp_path, "--synthetic", "poisson", "--synthetic-no-image", "nb", "--skin"
    )
    assert_complete(table, out, "synthetic_poisson_t200")
    assert_complete(table, out, "synthetic_nb_t200_no_image")
    assert "coverage_1sd" in table
    # The truth-fitted image ridge where there are image features, and only there.
    assert "| synthetic_poisson_t200 | oracle_image_ridge |" in table
    assert "| synthetic_nb_t200_no_image | oracle_image_ridge |" not in table
    assert "oracle_image_ridge is no method" in out.read_text()


@pytest.mark.skipif(not SKIN.is_dir(), reason="the human-skin data is not on this machine")
def test_quick_skin(tmp_path):
    argv = ["--synthetic", "--synthetic-no-image", "--skin", "2", "--skin-dir", str(SKIN / "x3")]
    table, out = run_quick(tmp_path, *argv)
    assert_complete(table, out, "skin_2x2")
    assert "constant image feature" in out.read_text()


def test_jobs_run_in_workers_and_keep_the_order(tmp_path):
    """Two worker processes, one dataset each, give every (dataset, method) row in the serial
    order, and the figure; run as users run it, from the command line."""
    out = tmp_path / "quality.md"
    argv = ["--quick", "--seeds", "0", "--synthetic", "poisson", "nb", "--skin"]
    argv += ["--synthetic-no-image", "--jobs", "2", "--out", str(out)]
    script = ROOT / "scripts" / "benchmark_quality.py"
    done = subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| synthetic")]
    methods = (*BASELINES, "oracle_image_ridge", "soscope")
    expected = [
        f"| synthetic_{name}_t200 | {method} |" for name in ("poisson", "nb") for method in methods
    ]
    assert [" | ".join(row.split(" | ")[:2]) + " |" for row in rows] == expected
    for name in ("poisson", "nb"):  # each trained once
        assert done.stdout.count(f"[synthetic_{name}_t200 seed=0 ") == 1
    assert "2 jobs at once" in out.read_text()
    assert out.with_suffix(".png").is_file()


def fake_her2st(root: Path, section: str = "C2", side: int = 8, pitch: float = 60.0) -> Path:
    """A clone-shaped folder of one HER2ST-format section: counts TSV ("XxY" spot ids), the
    spot selection file (array x, y and pixels) and an H&E JPEG, small enough for a test."""
    rng = np.random.default_rng(0)
    xs, ys = np.meshgrid(np.arange(2, 2 + side), np.arange(3, 3 + side))
    ids = [f"{x}x{y}" for x, y in zip(xs.ravel(), ys.ravel(), strict=True)]
    genes = [f"G{i}" for i in range(30)]
    counts = pd.DataFrame(rng.poisson(5, size=(len(ids), len(genes))), index=ids, columns=genes)
    (root / "data" / "ST-cnts").mkdir(parents=True)
    counts.to_csv(root / "data" / "ST-cnts" / f"{section}.tsv.gz", sep="\t")
    spots = pd.DataFrame(
        {
            "x": xs.ravel(),
            "y": ys.ravel(),
            "new_x": xs.ravel(),
            "new_y": ys.ravel(),
            "pixel_x": xs.ravel() * pitch,
            "pixel_y": ys.ravel() * pitch,
            "selected": 1,
        }
    )
    (root / "data" / "ST-spotfiles").mkdir(parents=True)
    spots.to_csv(root / "data" / "ST-spotfiles" / f"{section}_selection.tsv", sep="\t", index=False)
    images = root / "data" / "ST-imgs" / section[0] / section
    images.mkdir(parents=True)
    size = int((side + 4) * pitch)
    pixels = rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(images / "section_HE.jpg")
    return root


def test_quick_her2st_runs_the_preprocessing_command_and_scores_native_spots(tmp_path):
    """The HER2ST option builds pseudo-spots from a clone's native spots, prepares them with
    soscope-preprocess from the section's own image, and scores every method on them."""
    clone = fake_her2st(tmp_path / "her2st")
    argv = ["--synthetic", "--synthetic-no-image", "--skin", "--her2st", str(clone)]
    table, out = run_quick(tmp_path, *argv, "--her2st-blocks", "2")
    assert_complete(table, out, "her2st_C2_2x2")
    assert "HER2ST section C2, 2×2 pseudo-spots" in out.read_text()


def test_her2st_image_features_are_chosen_on_the_command_line(tmp_path):
    timm = pytest.importorskip("timm")
    torch.save(timm.create_model("test_vit", num_classes=0).state_dict(), tmp_path / "vit.pth")
    clone = fake_her2st(tmp_path / "her2st")
    chosen = ["features=timm", "features.model=test_vit", f"features.weights={tmp_path}/vit.pth"]
    argv = ["--synthetic", "--synthetic-no-image", "--skin", "--her2st", str(clone)]
    table, out = run_quick(tmp_path, *argv, "--her2st-blocks", "2", "--her2st-features", *chosen)
    assert_complete(table, out, "her2st_C2_2x2")
    text = out.read_text()
    assert "H&E image (features=timm features.model=test_vit features.weights=" in text
    assert "--her2st-features features=timm features.model=test_vit" in text
    assert "features.weights=<weights file>" in text and "vit.pth" not in text


def test_a_missing_her2st_clone_is_skipped_with_a_message(tmp_path, capsys):
    argv = ["--synthetic", "nb", "--synthetic-no-image", "--skin", "--her2st", str(tmp_path)]
    run_quick(tmp_path, *argv)
    assert "skipping HER2ST" in capsys.readouterr().out


def test_skin_without_its_folder_is_skipped_with_a_message(tmp_path, capsys):
    run_quick(tmp_path, "--synthetic", "nb", "--synthetic-no-image", "--skin", "2")
    assert "skipping the skin datasets" in capsys.readouterr().out
