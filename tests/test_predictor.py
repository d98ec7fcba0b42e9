"""Inference of a trained stage-2 model: the enhanced profiles and their predictive sd."""

import numpy as np
import pytest
import torch
from scipy import sparse
from torch.distributions import Normal

from soscope.data.matrices import assemble
from soscope.data.tiles import TiledSection
from soscope.models.aggregation import aggregate, spot_counts
from soscope.predictor import Predictor
from soscope.training.soscope import SoScopeModule
from tests.training.test_modules import module_args


def test_enhance_shapes_non_negative_and_spot_consistency(tiny_tissue):
    section = tiny_tissue.to_section()
    graph = section.graph
    model = SoScopeModule(**module_args(section))
    raw = Predictor(model, graph).enhance(non_negative=False)
    assert raw.shape == (graph.sub_feat.size(0), graph.x.size(1))
    assert (Predictor(model, graph).enhance() >= 0).all()
    rescaled = Predictor(model, graph).enhance(consistency="rescale")
    totals = aggregate(rescaled, graph.sub_to_spot, graph.num_nodes)
    k = spot_counts(graph.sub_to_spot, graph.num_nodes)
    torch.testing.assert_close(totals, graph.x * k, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="consistency"):
        Predictor(model, graph).enhance(consistency="clip")


def test_predictive_sd_is_positive_repeatable_and_follows_the_rescaled_mean(tiny_tissue):
    section = tiny_tissue.to_section()
    graph = section.graph
    model = SoScopeModule(**module_args(section))
    predictor = Predictor(model, graph)
    sd = predictor.predictive_sd(n_samples=4, seed=3)
    assert sd.shape == (graph.sub_feat.size(0), graph.x.size(1))
    assert (sd > 0).all()
    torch.testing.assert_close(sd, Predictor(model, graph).predictive_sd(n_samples=4, seed=3))
    assert not torch.equal(sd, predictor.predictive_sd(n_samples=4, seed=4))
    rescaled_sd = predictor.predictive_sd(consistency="rescale", n_samples=4, seed=3)
    ratio = predictor.enhance(consistency="rescale") / predictor.enhance()
    torch.testing.assert_close(rescaled_sd / sd, ratio, rtol=1e-4, atol=1e-5)


def test_predictive_sd_adds_the_latent_spread_to_the_likelihood_variance(tiny_tissue, monkeypatch):
    section = tiny_tissue.to_section()
    graph = section.graph
    model = SoScopeModule(**module_args(section))
    with torch.no_grad():
        at_mean = model.subspot_distribution(graph, model.encode(graph).mean).stddev
    assert not torch.allclose(
        Predictor(model, graph).predictive_sd(n_samples=8), at_mean, rtol=1e-3
    )
    encode = model.encode  # a certain Z: only the likelihood's own variance remains
    monkeypatch.setattr(model, "encode", lambda batch: Normal(encode(batch).mean, 1e-12))
    torch.testing.assert_close(Predictor(model, graph).predictive_sd(n_samples=8), at_mean)


def test_gaussian_output_is_clipped_after_the_rescale():
    from soscope.datasets import make_synthetic_tissue

    section = make_synthetic_tissue(n_rows=3, n_cols=3, likelihood="gaussian").to_section()
    graph = section.graph.clone()
    graph.x = graph.x - 100.0  # spots far below the model's means: the rescale shifts them down
    model = SoScopeModule(**module_args(section, likelihood="gaussian"))
    shifted = Predictor(model, graph).enhance(non_negative=False, consistency="rescale")
    assert (shifted < 0).all()
    assert (Predictor(model, graph).enhance(non_negative=True, consistency="rescale") == 0).all()


@pytest.mark.parametrize("tiled", [False, True])
def test_the_posterior_and_each_views_prior_are_computed_once_for_every_output(
    tiny_tissue, monkeypatch, tiled
):
    section = tiny_tissue.to_section()
    graph = section.graph
    model = SoScopeModule(**module_args(section, image_path=True, image_hidden=8))
    tiles = TiledSection(graph, 10, *model.halo()) if tiled else None
    calls, priors = [], []
    encode, subspot_prior = model.encode, model.subspot_prior
    monkeypatch.setattr(model, "encode", lambda batch: calls.append(1) or encode(batch))
    monkeypatch.setattr(
        model, "subspot_prior", lambda *args: priors.append(1) or subspot_prior(*args)
    )
    blocks = list(
        Predictor(model, graph, tiles).outputs(consistency="rescale", n_samples=3, unclipped=True)
    )
    views = 1 if tiles is None else len(tiles)
    assert len(blocks) == len(calls) == len(priors) == views
    assert all(set(b.values) == {"enhanced", "sd", "mean_unclipped"} for b in blocks)
    assert sorted(np.concatenate([b.rows for b in blocks])) == list(range(graph.num_subspots))
    assert model.training  # the training mode is restored


def test_the_view_by_view_sd_equals_the_whole_section_formula(tiny_tissue):
    section = tiny_tissue.to_section()
    graph = section.graph
    model = SoScopeModule(**module_args(section, share_prior="interp"))
    tiles = TiledSection(graph, 10, *model.halo())
    sd = Predictor(model, graph, tiles).predictive_sd(n_samples=5, seed=7)
    model.eval()
    with torch.no_grad():
        q = model.encode(graph)
        generator = torch.Generator().manual_seed(7)
        noise = torch.randn((5, *q.mean.shape), generator=generator)
        draws = [model.subspot_distribution(graph, q.mean + q.stddev * e) for e in noise]
        means = torch.stack([d.mean for d in draws])
        expected_var = torch.stack([d.variance for d in draws]).mean(0)
    torch.testing.assert_close(sd, (expected_var + means.var(0, unbiased=False)).sqrt())


def test_the_outputs_of_a_mostly_zero_section_are_stored_sparse(tiny_tissue):
    section = tiny_tissue.to_section()
    graph = section.graph.clone()
    graph.x[:, 2:] = 0  # most features unmeasured: their rescaled subspots are 0
    model = SoScopeModule(**module_args(section))
    predictor = Predictor(model, graph, TiledSection(graph, 10, *model.halo()))
    options = {"consistency": "rescale", "n_samples": 2, "unclipped": True}
    found = assemble(predictor.outputs(**options), graph.num_subspots)
    assert all(sparse.isspmatrix_csr(m) and m.dtype == np.float32 for m in found.values())
    dense = assemble(predictor.outputs(**options), graph.num_subspots, sparse_output=False)
    for name, matrix in dense.items():
        assert isinstance(matrix, np.ndarray)
        np.testing.assert_array_equal(found[name].toarray(), matrix)
    np.testing.assert_array_equal(dense["enhanced"], predictor.enhance(consistency="rescale"))
