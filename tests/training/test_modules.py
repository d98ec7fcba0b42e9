import lightning as L
import pytest
import torch

from soscope.data.datamodule import SpotDataModule
from soscope.data.sample import section_spacing
from soscope.models.consistency import rescale_to_spots
from soscope.models.context import interpolation_kernel, share_prior
from soscope.predictor import Predictor
from soscope.training.soscope import SoScopeModule
from soscope.training.vgae import VGAEModule


def module_args(section, **extra):
    graph = section.graph
    return {
        "likelihood": "nb",
        "n_features": graph.x.size(1),
        "feat_dim": graph.sub_feat.size(1),
        "z_dim": 16,
        "hidden": 32,
        **extra,
    }


def fit(module, data, epochs=3):
    """Train `module` on a Section or a SpotDataModule for `epochs`; the trainer."""
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    datamodule = data if isinstance(data, SpotDataModule) else SpotDataModule(data)
    trainer.fit(module, datamodule=datamodule)
    return trainer


def test_both_stages_train_and_stage_two_starts_from_stage_one(tiny_tissue):
    section = tiny_tissue.to_section()
    vgae = VGAEModule(**module_args(section))
    fit(vgae, section)
    assert vgae.global_step == 3
    model = SoScopeModule(**module_args(section))
    model.load_encoder(vgae.encoder)
    for a, b in zip(model.encoder.parameters(), vgae.encoder.parameters(), strict=True):
        assert torch.equal(a, b)
    before = [p.clone() for p in model.decoder.parameters()]
    fit(model, section)
    assert any(
        not torch.equal(a, b) for a, b in zip(before, model.decoder.parameters(), strict=True)
    )
    loss, terms = model.stage_loss(section.graph)
    assert torch.isfinite(loss)
    assert set(terms) == {"node_loss", "graph_loss", "kl_loss", "beta", "gamma"}
    # A term of weight 0 is neither computed nor reported.
    model = SoScopeModule(**module_args(section, graph_loss_weight=0.0, smooth_weight=0.5))
    assert set(model.stage_loss(section.graph)[1]) == {
        "node_loss",
        "smooth_loss",
        "kl_loss",
        "beta",
        "gamma",
    }


def test_gamma_multiplies_the_loss_in_loss_mode(tiny_tissue):
    section = tiny_tissue.to_section()
    schedule = {"start_value": 1.0, "end_value": 1.0, "n_iterations": 10, "start_iteration": 0}
    args = module_args(section, beta=schedule, graph_loss="exact")
    torch.manual_seed(0)
    plain = SoScopeModule(**args, gamma={"start_value": 1.0, "end_value": 1.0})
    torch.manual_seed(0)
    scaled = SoScopeModule(**args, gamma={"start_value": 0.5, "end_value": 0.5})
    torch.manual_seed(1)
    loss_plain, _ = plain.stage_loss(section.graph)
    torch.manual_seed(1)
    loss_scaled, _ = scaled.stage_loss(section.graph)
    torch.testing.assert_close(loss_scaled, 0.5 * loss_plain)


def test_gamma_schedules_the_learning_rate_in_lr_mode(tiny_tissue):
    section = tiny_tissue.to_section()
    args = module_args(
        section,
        lr=1e-3,
        beta={"start_value": 1.0, "end_value": 1.0, "n_iterations": 4, "start_iteration": 0},
        gamma={"start_value": 1.0, "end_value": 0.01},
        gamma_mode="lr",
    )
    model = SoScopeModule(**args)
    trainer = fit(model, section, epochs=4)
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(1e-3 * model.gamma(4))
    assert lr == pytest.approx(1e-5)


def test_bad_module_options_are_refused(tiny_tissue):
    section = tiny_tissue.to_section()
    with pytest.raises(ValueError, match="node loss"):
        SoScopeModule(**module_args(section, node_loss="l1"))
    with pytest.raises(ValueError, match="gamma_mode"):
        SoScopeModule(**module_args(section, gamma_mode="both"))
    with pytest.raises(ValueError, match="heads"):
        VGAEModule(**module_args(section, z_dim=5, heads=4))
    with pytest.raises(ValueError, match="subspot_context"):
        SoScopeModule(**module_args(section, subspot_context="kriging"))
    with pytest.raises(ValueError, match="share_prior"):
        SoScopeModule(**module_args(section, share_prior="kriging"))
    with pytest.raises(ValueError, match="bandwidth"):
        SoScopeModule(**module_args(section, bandwidth=0.0))


def test_share_prior_spreads_spots_as_the_interpolation_says_without_an_image(tiny_tissue):
    """With one image feature for all and no context, the decoder gives every subspot of a spot
    the same output: what the rescaled enhancement keeps is the prior's spread of the spot, by
    the module's own kernel width."""
    section = tiny_tissue.to_section()
    graph = section.graph.clone()
    graph.sub_feat = torch.ones_like(graph.sub_feat[:, :1])
    args = module_args(section, feat_dim=1, share_prior="interp", bandwidth=0.6)
    model = SoScopeModule(**args)
    loss, _ = model.stage_loss(graph)
    loss.backward()
    assert torch.isfinite(loss) and model.decoder.net[0].weight.grad.abs().sum() > 0
    enhanced = Predictor(model, graph).enhance(consistency="rescale")
    expected = rescale_to_spots(
        model.likelihood,
        share_prior(
            graph,
            model.likelihood,
            interpolation_kernel(graph, section_spacing(graph), torch.float32, bandwidth=0.6),
        ),
        graph.x,
        graph.sub_to_spot,
    )
    torch.testing.assert_close(enhanced, expected, rtol=1e-4, atol=1e-5)
    first_spot = enhanced[graph.sub_to_spot == 0]
    assert not torch.allclose(first_spot, first_spot[:1].expand_as(first_spot))


def test_subspot_context_trains_and_lets_subspots_of_one_spot_differ(tiny_tissue):
    section = tiny_tissue.to_section()
    graph = section.graph.clone()
    graph.sub_feat = torch.ones_like(graph.sub_feat[:, :1])  # no image information at all
    args = module_args(section, feat_dim=1, subspot_context="interp", smooth_weight=1.0)
    model = SoScopeModule(**args)
    loss, terms = model.stage_loss(graph)
    loss.backward()
    assert torch.isfinite(loss) and terms["smooth_loss"] > 0
    assert model.decoder.net[0].weight.grad.abs().sum() > 0
    raw = Predictor(model, graph).enhance(non_negative=False)
    first_spot = raw[graph.sub_to_spot == 0]
    assert not torch.allclose(first_spot, first_spot[:1].expand_as(first_spot))
    plain = Predictor(SoScopeModule(**module_args(section, feat_dim=1)), graph).enhance(
        non_negative=False
    )
    first_plain = plain[graph.sub_to_spot == 0]
    torch.testing.assert_close(first_plain, first_plain[:1].expand_as(first_plain))


@pytest.mark.parametrize("likelihood", ["nb", "joint_gaussian"])
def test_consistent_training_holds_every_spot_exactly(tiny_tissue, likelihood):
    torch.manual_seed(0)
    section = tiny_tissue.to_section()
    graph = section.graph
    args = module_args(section, likelihood=likelihood, protein_dim=2, consistent_training=True)
    model = SoScopeModule(**args, share_prior="interp")
    loss, _ = model.stage_loss(graph)
    loss.backward()
    assert torch.isfinite(loss) and model.decoder.net[0].weight.grad.abs().sum() > 0
    torch.testing.assert_close(model.predict_spots(graph), graph.x, rtol=1e-4, atol=1e-4)
    free = Predictor(model, graph).enhance(non_negative=False)
    rescaled = Predictor(model, graph).enhance(non_negative=False, consistency="rescale")
    torch.testing.assert_close(rescaled, free, rtol=1e-4, atol=1e-4)


def test_the_image_path_learns_from_the_spot_totals_alone(tiny_tissue):
    """Its parameters get gradients from its own loss only; the other terms see its shares."""
    section = tiny_tissue.to_section()
    args = module_args(section, image_path=True, image_hidden=8, decoder_features=False)
    model = SoScopeModule(**args)
    for p in model.image_path.parameters():  # away from the equal split
        torch.nn.init.normal_(p, std=0.1)
    loss, terms = model.stage_loss(section.graph)
    (loss - terms["image_loss"]).backward(retain_graph=True)
    assert all(p.grad is None or not p.grad.any() for p in model.image_path.parameters())
    model.zero_grad()
    terms["image_loss"].backward()
    assert all(p.grad is not None and p.grad.any() for p in model.image_path.weight_matrices())


def test_the_image_path_has_its_own_rate_and_penalty(tiny_tissue):
    section = tiny_tissue.to_section()
    args = module_args(section, image_path=True, image_lr=0.01, image_weight_decay=0.5)
    groups = SoScopeModule(**args, lr=1e-3).configure_optimizers().param_groups
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(1e-3, 0.0), (0.01, 0.5), (0.01, 0.0)]
    model = SoScopeModule(**args)
    counted = sum(len(g["params"]) for g in model.configure_optimizers().param_groups)
    assert counted == len(list(model.parameters()))


def test_without_decoder_features_only_the_priors_share_a_spot_out(tiny_tissue):
    """No image path, no share prior, no image in the decoder: every subspot of a spot is
    decoded alike."""
    section = tiny_tissue.to_section()
    model = SoScopeModule(**module_args(section, decoder_features=False))
    graph = section.graph
    mean = Predictor(model, graph).enhance()
    first = graph.sub_to_spot == 0
    torch.testing.assert_close(mean[first], mean[first][:1].expand(int(first.sum()), -1))


@pytest.mark.parametrize("likelihood", ["nb", "joint_gaussian"])
@pytest.mark.parametrize("in_runs", [False, True])
def test_a_step_that_reads_spots_only_gives_the_per_subspot_loss(
    tiny_tissue, likelihood, in_runs, monkeypatch
):
    """The defaults' step (no image in the decoder, likelihood node loss, no term per subspot)
    scores spots at spot level: the same loss and gradients as through every subspot, whether
    the features are taken in runs of two (the share prior then computed run by run) or not."""
    import soscope.training.soscope as soscope_module

    section = tiny_tissue.to_section()
    if in_runs:
        monkeypatch.setattr(soscope_module, "CHUNK_ENTRIES", 2 * section.graph.num_subspots)
        monkeypatch.setattr(soscope_module, "KEPT_PRIOR_ENTRIES", 0)
    args = module_args(
        section,
        likelihood=likelihood,
        protein_dim=2,
        node_loss="likelihood",
        share_prior="interp",
        image_path=True,
        image_hidden=8,
        decoder_features=False,
        graph_loss_weight=0.0,
    )
    model = SoScopeModule(**args)
    assert model.scores_spots_only
    # Subspot means of a few counts: the per-subspot NB sum, matched by its moments with 1e-7
    # guards, is exact only where means are well above those guards (an untrained decoder can
    # give 1e-8).
    with torch.no_grad():
        model.decoder.net[-1].weight.mul_(0.01)
        model.decoder.net[-1].bias.fill_(1.0)

    def step():
        torch.manual_seed(1)
        model.zero_grad()
        loss, terms = model.stage_loss(section.graph)
        loss.backward()
        losses = torch.stack([terms["node_loss"], terms["image_loss"]])
        return losses, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    fast, fast_grads = step()
    monkeypatch.setattr(SoScopeModule, "scores_spots_only", property(lambda self: False))
    slow, slow_grads = step()
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    assert len(fast_grads) == len(slow_grads) > len(list(model.decoder.parameters()))
    for a, b in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_the_share_prior_is_kept_between_steps_on_one_section(tiny_tissue, monkeypatch):
    import pickle

    import soscope.training.soscope as soscope_module

    section = tiny_tissue.to_section()
    model = SoScopeModule(**module_args(section, share_prior="interp"))
    calls = []
    compute = soscope_module.share_prior
    monkeypatch.setattr(
        soscope_module, "share_prior", lambda *args: calls.append(1) or compute(*args)
    )
    for _ in range(3):
        model.stage_loss(section.graph)
    assert len(calls) == 1
    other = section.graph.clone()
    model.stage_loss(other)
    assert len(calls) == 2  # another section (or tile) gets its own
    assert pickle.loads(pickle.dumps(model))._kept is None
