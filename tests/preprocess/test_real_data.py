"""Preprocessing on real data beside the checkout (`../shared/data/`): the spatial-CITE-seq skin
section through the CSV reader, and a real H&E slide through patches and handcrafted features.
Each test is skipped, saying why, when its data folder is absent."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soscope.preprocess.cli import preprocess
from soscope.preprocess.image_features import FEATURE_NAMES, extract_patches, handcrafted_features
from soscope.preprocess.images import load_image

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SKIN = SHARED / "spatialcite_humanskin"
HE = SHARED / "he_images" / "cmu1_skin_he.jpg"


def needs(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"real data not found: {path}")


def test_skin_section_is_a_four_neighbour_grid(tmp_path, preprocess_config):
    needs(SKIN)
    counts, positions = (
        SKIN / "x3" / "reordered_filtered_protein.csv",
        SKIN / "position_with_center.csv",
    )
    built, _ = preprocess(
        preprocess_config(
            "input=csv",
            f"input.counts={counts}",
            f"input.positions={positions}",
            "layout=grid",
            "features=none",
            "genes.method=all",
            f"out={tmp_path / 'skin'}",
        )
    )
    summary, graph = built.summary, built.section.graph
    assert (summary["spots"], summary["features"], summary["subspots"]) == (1618, 283, 4 * 1618)
    assert summary["spot_graph"] == "grid lattice (4 neighbours)"

    table = pd.read_csv(positions).set_index("barcode").loc[built.section.spot_names]
    coords = table[["row", "col"]].to_numpy()
    raw = pd.read_csv(counts, index_col=0).loc[built.section.spot_names]
    np.testing.assert_allclose(graph.x.numpy() * 4, raw.to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(graph.pos.numpy(), table[["imagecol", "imagerow"]].to_numpy())

    src, dst = graph.edge_index.numpy()
    step = np.abs(coords[src] - coords[dst]).sum(axis=1)
    assert set(step[src != dst]) == {1}  # only lattice neighbours, one step along row or col
    occupied = {tuple(c) for c in coords}
    expected = sum(
        (r + dr, c + dc) in occupied
        for r, c in occupied
        for dr, dc in [(1, 0), (-1, 0), (0, 1), (0, -1)]
    )
    assert (src != dst).sum() == summary["spot_edges"] == expected
    assert np.bincount(src[src != dst]).max() == 4

    spacing = np.linalg.norm(np.diff(graph.sub_pos.numpy()[:2], axis=0))
    assert spacing == pytest.approx(54.6 / 2, rel=0.01)  # about 54.6 px per grid step


@pytest.fixture(scope="module")
def slide():
    needs(HE)
    return load_image(HE).pixels


def test_real_he_patches_and_features(slide):
    assert slide.shape == (2967, 2220, 3) and slide.dtype == np.uint8
    rng = np.random.default_rng(0)
    centres = np.vstack([[1000.4, 1500.6], rng.uniform([0, 0], [2219, 2966], size=(299, 2))])
    (first,) = list(extract_patches(slide, centres[:1], 32))
    np.testing.assert_array_equal(first[0], slide[1501 - 16 : 1501 + 16, 1000 - 16 : 1000 + 16])
    features = handcrafted_features(slide, centres, 32, batch_size=64)
    assert features.shape == (300, len(FEATURE_NAMES)) and np.isfinite(features).all()
    assert features.std(axis=0).max() > 0


def test_visibly_different_tissue_gets_different_features(slide):
    epidermis, dermis, glass = [1160.0, 2000.0], [1800.0, 2400.0], [320.0, 400.0]
    centres = np.array([epidermis, np.add(epidermis, 8), dermis, np.add(dermis, 8), glass])
    features = handcrafted_features(slide, centres, 64)
    column = dict(zip(FEATURE_NAMES, features.T, strict=True))
    within = max(
        np.linalg.norm(features[0] - features[1]), np.linalg.norm(features[2] - features[3])
    )
    between = np.linalg.norm(features[[0, 1]][:, None] - features[[2, 3]][None], axis=-1).min()
    assert between > 2 * within
    assert column["hematoxylin_mean"][0] > column["hematoxylin_mean"][2] + 0.2  # nuclei-dense
    assert column["nuclear_fraction"][4] == 0.0 and column["rgb_mean_r"][4] > 0.9  # bare glass
