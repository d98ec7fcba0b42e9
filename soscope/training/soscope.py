"""Stage 2: soScope, which decodes each subspot from its spot's latent and its image feature."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from soscope.data.sample import SpotGraph, section_spacing, subspot_counts
from soscope.data.tiles import own_rows, spots_of
from soscope.models.aggregation import aggregate_mean
from soscope.models.consistency import (
    CONSISTENCY_MODES,
    consistent_prior,
    rescale_spread,
    rescale_to_spots,
)
from soscope.models.context import PRIOR_MODES, context_width, share_prior, subspot_context
from soscope.models.decoders import EnhancementDecoder
from soscope.models.image_path import ImagePath, combine_priors, image_shares, level_offset
from soscope.models.likelihoods import BlockDistribution
from soscope.models.losses import (
    NODE_LOSS_MODES,
    node_loss_likelihood,
    node_loss_mse,
    smoothness,
)
from soscope.training.base import LatentGraphModule
from soscope.training.schedules import ExponentialSchedule
from soscope.training.scope import loss_scope, rows_and_pool

GAMMA_MODES = ("loss", "lr")


class SoScopeModule(LatentGraphModule):
    """γ·(node loss + w·BCE(σ(D Dᵀ), W) + λ·smoothness + β·KL), D = subspot mean − its spot's
    per-subspot mean.

    `gamma_mode="loss"` multiplies the loss by γ as the original code does; `"lr"` applies γ
    as a learning-rate schedule, the original's documented intent. `share_prior="interp"`
    spreads each spot over its subspots as the interpolated spot profiles say,
    `subspot_context="interp"` gives the decoder what the neighbouring spots' latents say at
    each subspot (both `soscope.models.context`), `consistent_training` holds every spot
    exactly inside the loss, and `smooth_weight` (λ) weighs a smoothness prior over the
    subspot graph. `image_path` adds a path that predicts each subspot from its own image
    feature alone, trained on the spot totals only (L2 `image_weight_decay`, learning rate
    `image_lr`, an MLP of `image_hidden` units), whose shares (contrasts × `image_temperature`) multiply
    the subspot means; `decoder_features=false` keeps the image out of the decoder, so only
    that path shares a spot out. All are off in the original.
    """

    stage_name = "soscope"

    def __init__(
        self,
        graph_loss_weight: float = 1.0,
        node_loss: str = "mse",
        gamma: dict | None = None,
        gamma_mode: str = "loss",
        subspot_context: str = "none",
        share_prior: str = "none",
        consistent_training: bool = False,
        smooth_weight: float = 0.0,
        image_path: bool = False,
        image_hidden: int = 0,
        image_weight_decay: float = 0.0,
        image_lr: float | None = None,
        image_temperature: float = 1.0,
        decoder_features: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        if node_loss not in NODE_LOSS_MODES:
            raise ValueError(f"unknown node loss {node_loss!r}; choose from {NODE_LOSS_MODES}")
        if share_prior not in PRIOR_MODES:
            raise ValueError(f"unknown share_prior {share_prior!r}; choose from {PRIOR_MODES}")
        if gamma_mode not in GAMMA_MODES:
            raise ValueError(f"unknown gamma_mode {gamma_mode!r}; choose from {GAMMA_MODES}")
        # The original drives γ with β's start iteration and length.
        beta = self.beta
        gamma_cfg = {"n_iterations": beta.n_iterations, "start_iteration": beta.start_iteration}
        self.gamma = ExponentialSchedule(**{**gamma_cfg, **(gamma or {})})
        if image_temperature < 0:
            raise ValueError(f"image_temperature must be >= 0, got {image_temperature}")
        self.decoder = EnhancementDecoder(
            self.hparams.z_dim,
            self.hparams.feat_dim if decoder_features else 0,
            self.likelihood.subspot_width,
            self.hparams.hidden,
            context_width(subspot_context, self.hparams.z_dim),
        )
        self.image_path = (
            ImagePath(self.hparams.feat_dim, self.likelihood, image_hidden) if image_path else None
        )

    def load_encoder(self, encoder: nn.Module) -> None:
        """Start from the stage-1 encoder's weights."""
        self.encoder.load_state_dict(encoder.state_dict())

    def halo(self) -> tuple[int, int]:
        layers, _ = super().halo()
        # The share prior reads the parent spots' neighbours' profiles, which the encoder's
        # halo around those spots already holds; the context needs their exact latents.
        return layers, int(self.hparams.subspot_context != "none")

    def image_eta(self, batch: SpotGraph) -> Tensor | None:
        """The image path's per-subspot prediction (see `ImagePath`), None when it is off."""
        if self.image_path is None:
            return None
        level = getattr(batch, "level", None)  # a tile carries its section's
        if level is None:
            train = self.train_mask(batch)
            level = (batch.x if train is None else batch.x[train]).float().mean(0)
        return self.image_path(batch.sub_feat, level_offset(self.likelihood, level))

    def subspot_distribution(
        self, batch: SpotGraph, z: Tensor, eta: Tensor | None = None
    ) -> BlockDistribution:
        """p(y | z, image) of every subspot, each decoded from its own spot's latent; spread by
        the share prior and the image path's shares (`eta`, computed if not given) and held to
        the observed spots where those options are on."""
        k_sub = subspot_counts(batch)[batch.sub_to_spot]
        context = None
        if self.hparams.subspot_context != "none":
            context = subspot_context(batch, z, section_spacing(batch))
        feat = batch.sub_feat if self.hparams.decoder_features else batch.sub_feat[:, :0]
        raw = self.decoder(z[batch.sub_to_spot], feat, k_sub, context)
        prior = None
        if self.hparams.share_prior != "none":
            prior = share_prior(batch, self.likelihood, section_spacing(batch)).to(raw.dtype)
        eta = self.image_eta(batch) if eta is None else eta
        if eta is not None:
            shares = image_shares(
                self.likelihood,
                # The image path learns from the spot totals alone (`image_loss`): the other
                # terms see its shares but do not train it.
                eta.detach().to(raw.dtype),
                batch.sub_to_spot,
                batch.num_nodes,
                self.hparams.image_temperature,
            )
            prior = combine_priors(self.likelihood, prior, shares)
        dist = self.likelihood.subspot_distribution(raw, k_sub, prior)
        if not self.hparams.consistent_training:
            return dist
        x = batch.x.to(raw.dtype)
        prior = consistent_prior(self.likelihood, dist.mean, prior, x, batch.sub_to_spot)
        return self.likelihood.subspot_distribution(raw, k_sub, prior)

    def stage_loss(self, batch: SpotGraph) -> tuple[Tensor, dict[str, Tensor]]:
        scope = loss_scope(batch)
        q = self.encode(batch)
        z = q.rsample()
        eta = self.image_eta(batch)
        sub_dist = self.subspot_distribution(batch, z, eta)
        sub_mean = sub_dist.mean
        k = subspot_counts(batch)
        args = (batch.x, k, batch.sub_to_spot)
        if self.hparams.node_loss == "mse":
            per_spot = node_loss_mse(self.likelihood, sub_mean, *args)
        else:
            per_spot = node_loss_likelihood(self.likelihood, sub_dist, *args)
        train = self.train_mask(batch)
        node = scope.spot_mean(per_spot, train)
        deviation = self.likelihood.split(sub_mean - batch.x[batch.sub_to_spot])
        rows, pool = rows_and_pool(scope, "subspot")
        edges, weights = batch.sub_edge_index, batch.sub_edge_weight
        graph = scope.tiles * self.graph_term(deviation, edges, weights, scope.subspots, rows, pool)
        smooth = smoothness(
            self.likelihood, sub_mean, edges, weights, scope.sub_weight / scope.tiles
        )
        kl = scope.spot_mean(self.kl(q, z))
        beta, gamma = self.beta(self.global_step), self.gamma(self.global_step)
        loss = node + self.hparams.graph_loss_weight * graph + beta * kl
        loss = loss + self.hparams.smooth_weight * smooth
        terms = {"node_loss": node, "graph_loss": graph, "smooth_loss": smooth, "kl_loss": kl}
        if eta is not None:
            image = scope.spot_mean(self.image_loss(batch, eta, k), train)
            loss = loss + image
            terms["image_loss"] = image
        if self.hparams.gamma_mode == "loss":
            loss = gamma * loss
        terms["beta"] = beta
        return loss, {**terms, "gamma": gamma}

    def image_loss(self, batch: SpotGraph, eta: Tensor, k: Tensor) -> Tensor:
        """Per spot: −log p(observed spot | the image path's prediction of its subspots), the
        mean over features, so that its L2 penalty means the same whatever their number (only
        the image path learns from this term)."""
        predicted = self.image_path.spot_distribution(eta, batch.sub_to_spot, batch.num_nodes)
        target = self.likelihood.spot_target(batch.x.to(eta.dtype), k)
        return -predicted.log_prob(target) / target.size(-1)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The image path learns at its own rate (`image_lr`), its weight matrices with their
        own L2 (`image_weight_decay`)."""
        if self.image_path is None:
            return super().parameter_groups()
        hp = self.hparams
        lr = hp.image_lr or hp.lr
        matrices = self.image_path.weight_matrices()
        decayed = {id(p) for p in matrices}
        path = [p for p in self.image_path.parameters() if id(p) not in decayed]
        own = {id(p) for p in self.image_path.parameters()}
        return [
            {"params": [p for p in self.parameters() if id(p) not in own]},
            {"params": matrices, "lr": lr, "weight_decay": hp.image_weight_decay},
            {"params": path, "lr": lr},
        ]

    def configure_optimizers(self) -> Any:
        optimizer = super().configure_optimizers()
        if self.hparams.gamma_mode == "loss":
            return optimizer
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, self.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    @torch.no_grad()
    def predict_spots(self, batch: SpotGraph) -> Tensor:
        sub_mean = self.subspot_distribution(batch, self.encode(batch).mean).mean
        return aggregate_mean(sub_mean, batch.sub_to_spot, batch.num_nodes)

    @torch.no_grad()
    def enhance(
        self,
        batch: SpotGraph,
        non_negative: bool = True,
        consistency: str = "none",
        tiles: Iterable[SpotGraph] | None = None,
    ) -> Tensor:
        """Enhanced subspot profiles: the subspot distribution's mean at Z = μ (no sampling).

        `consistency="rescale"` then makes each spot's subspots re-aggregate to the observed spot;
        `non_negative` then clips negative values (of Gaussian blocks) to 0.
        With `tiles` (the section's `TiledSection`) it works tile by tile, with the same result.
        """
        check_consistency(consistency)
        views = [batch] if tiles is None else tiles
        mean = self._evaluated(lambda: self._decode(views, self._posterior(views, batch)[0], batch))
        mean = mean[0]
        if consistency == "rescale":
            mean = rescale_to_spots(self.likelihood, mean, batch.x, batch.sub_to_spot)
        if non_negative:  # after the rescale: a Gaussian block's shift can make values negative
            mean = F.relu(mean)
        return mean

    @torch.no_grad()
    def predictive_sd(
        self,
        batch: SpotGraph,
        consistency: str = "none",
        n_samples: int = 32,
        seed: int = 0,
        tiles: Iterable[SpotGraph] | None = None,
    ) -> Tensor:
        """Per-subspot predictive sd: √(E_Z[Var(y | Z)] + Var_Z[E(y | Z)]) over Z ~ q(Z | X, A).

        Z is sampled `n_samples` times from a generator seeded with `seed`, so the output is
        repeatable; with `consistency="rescale"` it scales with the enhanced mean it goes with.
        The moments accumulate sample by sample (memory of one sample), tile by tile if `tiles`.
        """
        check_consistency(consistency)
        generator = torch.Generator(device=batch.x.device).manual_seed(seed)
        views = [batch] if tiles is None else tiles

        def moments() -> tuple[Tensor, Tensor, Tensor]:
            mu, sigma = self._posterior(views, batch)
            at_mean = self._decode(views, mu, batch)[0]
            mean = spread = expected_var = torch.zeros_like(at_mean)
            for count in range(1, n_samples + 1):
                noise = torch.randn(mu.shape, generator=generator, device=mu.device)
                sample_mean, sample_var = self._decode(views, mu + sigma * noise, batch, True)
                delta = sample_mean - mean  # Welford's running mean and sum of squares
                mean = mean + delta / count
                spread = spread + delta * (sample_mean - mean)
                expected_var = expected_var + (sample_var - expected_var) / count
            return at_mean, expected_var, spread / n_samples

        at_mean, expected_var, latent_var = self._evaluated(moments)
        sd = (expected_var + latent_var).sqrt()
        if consistency == "rescale":
            sd = rescale_spread(self.likelihood, sd, at_mean, batch.x, batch.sub_to_spot)
        return sd

    def _posterior(self, views: Iterable[SpotGraph], section: SpotGraph) -> tuple[Tensor, Tensor]:
        """μ and σ of q(Z | X, A) at every spot of `section`, gathered from the views' own spots."""
        mu = sigma = None
        for view in views:
            q = self.encode(view)
            ids, rows = own_rows(view, "spot")
            if mu is None:
                mu = q.mean.new_empty(section.num_nodes, q.mean.size(1))
                sigma = torch.empty_like(mu)
            mu[ids], sigma[ids] = q.mean[rows], q.stddev[rows]
        return mu, sigma

    def _decode(
        self, views: Iterable[SpotGraph], z: Tensor, section: SpotGraph, variance: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Mean (and variance) of every subspot of `section` given the section's latents `z`."""
        mean = var = None
        for view in views:
            dist = self.subspot_distribution(view, z[spots_of(view)])
            ids, rows = own_rows(view, "subspot")
            if mean is None:
                width = self.likelihood.n_features
                mean = z.new_empty(section.num_subspots, width)
                var = torch.empty_like(mean) if variance else None
            mean[ids] = dist.mean[rows]
            if variance:
                var[ids] = dist.variance[rows]
        return mean, var

    def _evaluated(self, compute: Callable[[], Any]) -> Any:
        """`compute()` in eval mode, restoring the training mode afterwards."""
        was_training = self.training
        self.eval()
        try:
            return compute()
        finally:
            self.train(was_training)


def check_consistency(consistency: str) -> None:
    """Refuse an unknown consistency mode."""
    if consistency not in CONSISTENCY_MODES:
        raise ValueError(f"unknown consistency {consistency!r}; choose from {CONSISTENCY_MODES}")
