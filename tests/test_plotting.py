"""Figures: which features the maps show, loss curves from metrics.csv, method score bars."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from soscope.errors import SoScopeInputError
from soscope.plotting import choose_features, plot_loss_curves, plot_method_scores


def test_features_by_number_or_by_name(tiny_tissue):
    section = tiny_tissue.to_section()
    assert len(choose_features(section, 2)) == 2
    assert len(choose_features(section, 50)) == 9
    assert choose_features(section, ["gene_4", "gene_1"]).tolist() == [4, 1]
    with pytest.raises(SoScopeInputError, match=r"plot_features: unknown features \['CD3E'\]"):
        choose_features(section, ["gene_1", "CD3E"])


def test_loss_curves_of_both_stages(tmp_path):
    histories = {}
    for stage in ("vgae", "soscope"):
        table = pd.DataFrame(
            {
                "step": np.arange(5),
                f"{stage}/loss": np.linspace(10, 1, 5),
                f"{stage}/node_loss": np.linspace(-3, 2, 5),  # a Gaussian NLL can be negative
                f"{stage}/beta": np.ones(5),
            }
        )
        histories[stage] = table
    plot_loss_curves(histories, tmp_path / "loss.png")
    height, width, _ = imread(tmp_path / "loss.png").shape
    assert width > 1.5 * height  # two panels side by side


def test_method_scores_with_error_bars(tmp_path):
    scores = {"soscope": {"median_pearson": 0.8}, "replicate": {"median_pearson": 0.7}}
    errors = {"soscope": {"median_pearson": 0.02}, "replicate": {"median_pearson": 0.0}}
    plot_method_scores(scores, tmp_path / "scores.png", errors, shown=["median_pearson"])
    assert imread(tmp_path / "scores.png").std() > 0
