"""Tiles: their losses average to the full-graph loss, tiled inference equals full inference."""

import pytest
import torch
from torch.distributions import Normal

import soscope.data.tiles as tiles_module
import soscope.models.losses as losses
from soscope.data.datamodule import SpotDataModule
from soscope.data.tiles import TiledSection, on_device, resolve_batching, tile_cells
from soscope.predictor import Predictor
from soscope.training.soscope import SoScopeModule
from soscope.training.vgae import VGAEModule
from tests.training.test_modules import fit, module_args

STAGES = [
    (VGAEModule, {}),
    (SoScopeModule, {"subspot_context": "interp", "smooth_weight": 100.0}),
    (SoScopeModule, {"share_prior": "interp", "smooth_weight": 100.0}),
    (SoScopeModule, {"subspot_context": "none", "node_loss": "mse"}),
    (SoScopeModule, {"share_prior": "interp", "image_path": True, "decoder_features": False}),
]


@pytest.fixture(scope="module")
def section():
    from soscope.datasets import make_synthetic_tissue

    return make_synthetic_tissue(n_rows=8, n_cols=8, seed=1).to_section()


@pytest.fixture
def deterministic(monkeypatch):
    """Z = μ and no negative pairs: what is left of each loss is deterministic."""
    monkeypatch.setattr(Normal, "rsample", lambda self, *shape: self.mean)
    monkeypatch.setattr(losses, "all_pairs_term", lambda embeddings: torch.zeros(()))
    monkeypatch.setattr(losses, "sampled_pairs_term", lambda *args: torch.zeros(()))


def test_tiles_cover_every_spot_once_with_a_halo_from_the_model(section):
    graph = section.graph
    cells = tile_cells(graph.pos.numpy(), graph.num_nodes, 10)
    assert sorted(torch.cat([torch.from_numpy(c) for c in cells]).tolist()) == list(range(64))
    model = SoScopeModule(**module_args(section, subspot_context="interp"))
    assert model.halo() == (3, 1)
    assert SoScopeModule(**module_args(section, share_prior="interp")).halo() == (3, 0)
    assert SoScopeModule(**module_args(section)).halo() == (3, 0)
    tiles = TiledSection(graph, 10, *model.halo())
    owned = torch.cat([t.global_sub[t.sub_own] for t in tiles])
    assert sorted(owned.tolist()) == list(range(graph.num_subspots))
    assert all(t.num_nodes > int(t.own.sum()) for t in tiles)


@pytest.mark.parametrize("stage,extra", STAGES)
def test_tile_losses_average_to_the_full_graph_loss_at_step_zero(
    section, deterministic, stage, extra
):
    torch.manual_seed(0)
    model = stage(**module_args(section, **extra))
    graph = section.graph
    full, full_terms = model.stage_loss(graph)
    tiles = TiledSection(graph, 10, *model.halo())
    assert len(tiles) > 4
    parts = [model.stage_loss(tile) for tile in tiles]
    torch.testing.assert_close(sum(loss for loss, _ in parts) / len(parts), full)
    for name, value in full_terms.items():
        tiled = sum(terms[name] for _, terms in parts) / len(parts)
        torch.testing.assert_close(tiled, value, rtol=1e-5, atol=1e-5)


def test_tiled_graph_loss_estimates_the_section_mean(section):
    """One tile holding everything is unbiased; smaller tiles draw their negatives from the
    pairs they hold, nearer (so more alike) than the section's average pair: a bias we bound."""
    torch.manual_seed(0)
    model = VGAEModule(**module_args(section, graph_loss="exact"))
    graph = section.graph
    with torch.no_grad():
        exact = model.stage_loss(graph)[1]["graph_loss"]
        for tile_size, tolerance in ((1000, 0.05), (10, 0.35)):
            tiles = TiledSection(graph, tile_size, *model.halo())
            draws = [model.stage_loss(t)[1]["graph_loss"] for _ in range(20) for t in tiles]
            assert abs(sum(draws) / len(draws) - exact) < tolerance * abs(exact)


@pytest.mark.parametrize(
    "neighbourhood",
    [
        {"subspot_context": "interp"},
        {"share_prior": "interp"},
        {"subspot_context": "none"},
        {"share_prior": "interp", "image_path": True},
    ],
)
def test_tiled_inference_equals_full_inference(section, neighbourhood):
    torch.manual_seed(0)
    model = SoScopeModule(**module_args(section, **neighbourhood))
    for p in [] if model.image_path is None else model.image_path.parameters():
        torch.nn.init.normal_(p, std=0.3)  # shares away from the equal split
    graph = section.graph
    tiles = TiledSection(graph, 10, *model.halo())
    for consistency in ("none", "rescale"):
        torch.testing.assert_close(
            Predictor(model, graph, tiles).enhance(consistency=consistency),
            Predictor(model, graph).enhance(consistency=consistency),
        )
        torch.testing.assert_close(
            Predictor(model, graph, tiles).predictive_sd(consistency, n_samples=3, seed=2),
            Predictor(model, graph).predictive_sd(consistency, n_samples=3, seed=2),
        )


def test_tiles_on_a_device_can_be_passed_over_twice(section):
    tiles = TiledSection(section.graph, 10, 3, 0)
    moved = on_device(tiles, torch.device("cpu"))
    assert (
        [t.num_nodes for t in moved] == [t.num_nodes for t in moved] == [t.num_nodes for t in tiles]
    )
    assert on_device(None, torch.device("cpu")) is None


def test_tiled_training_runs_an_epoch_of_tiles_with_float16_features(section):
    data = SpotDataModule(section, batching="tiles", tile_size=16, feature_dtype="float16")
    model = SoScopeModule(**module_args(section, subspot_context="interp"))
    trainer = fit(model, data, epochs=2)
    assert section.graph.sub_feat.dtype == torch.float32
    assert data.section.graph.sub_feat.dtype == torch.float16
    assert trainer.global_step == 2 * len(data.tiles(model.halo()))
    predictor = Predictor(model, data.section.graph, data.tiles(model.halo()))
    assert torch.isfinite(predictor.enhance()).all()


def test_auto_batching_tiles_only_sections_past_the_budget():
    budget = tiles_module.AUTO_FULL_ENTRIES
    assert resolve_batching("auto", 2000, 3000, 21000, 2000) == ("full", 2000)
    mode, spots = resolve_batching("auto", 2000, 5000, 35000, 18000)
    assert mode == "tiles" and spots * 7 * 18000 <= budget < (spots + 1) * 7 * 18000
    assert resolve_batching("auto", 300, 5000, 35000, 18000) == ("tiles", 300)
    assert resolve_batching("full", 2000, 5000, 35000, 18000) == ("full", 2000)
    assert resolve_batching("tiles", 50, 10, 70, 9) == ("tiles", 50)
    with pytest.raises(ValueError, match="batching"):
        resolve_batching("patches", 2000, 10, 70, 9)


def test_auto_batching_decides_at_setup_from_the_section(section, monkeypatch):
    graph = section.graph
    assert SpotDataModule(section).tiles((1, 0)) is None  # a small section: full graph
    values_a_spot = graph.num_subspots * graph.x.size(1) / graph.num_nodes
    monkeypatch.setattr(tiles_module, "AUTO_FULL_ENTRIES", int(16 * values_a_spot))
    data = SpotDataModule(section, tile_size=2000)
    tiles = data.tiles((1, 0))
    assert data.batching == "tiles" and data.tile_size == 16
    assert len(tiles) >= graph.num_nodes // 32


def test_bad_loader_options_are_refused(section):
    with pytest.raises(ValueError, match="batching"):
        SpotDataModule(section, batching="patches")
    with pytest.raises(ValueError, match="feature_dtype"):
        SpotDataModule(section, feature_dtype="int8")
    with pytest.raises(ValueError, match="feature_components"):
        SpotDataModule(section, feature_components=0)
    with pytest.raises(ValueError, match="tile_size"):
        tile_cells(None, 10, 0)
