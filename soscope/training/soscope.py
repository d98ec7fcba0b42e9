"""Stage 2: soScope, which decodes each subspot from its spot's latent and its image feature."""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import Tensor, nn

from soscope.data.sample import SpotGraph, section_spacing, subspot_counts
from soscope.models.aggregation import aggregate_mean
from soscope.models.consistency import consistent_prior
from soscope.models.context import (
    BANDWIDTH,
    PRIOR_MODES,
    context_width,
    interpolation_kernel,
    share_prior,
    subspot_context,
)
from soscope.models.decoders import EnhancementDecoder
from soscope.models.image_path import (
    ALL,
    ImagePath,
    combine_priors,
    image_shares,
    level_offset,
)
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
# The largest share prior (subspots × features) kept between steps: 400 MB in float32.
KEPT_PRIOR_ENTRIES = 100_000_000
# Subspot values (subspots × features) a step holds at once per term computed in runs of
# features (`spot_level_losses`): 64 MB in float32.
CHUNK_ENTRIES = 1 << 24


class SoScopeModule(LatentGraphModule):
    """γ·(node loss + w·BCE(σ(D Dᵀ), W) + λ·smoothness + β·KL), D = subspot mean − its spot's
    per-subspot mean.

    `gamma_mode="loss"` multiplies the loss by γ as the original code does; `"lr"` applies γ
    as a learning-rate schedule, the original's documented intent. `share_prior="interp"`
    spreads each spot over its subspots as the interpolated spot profiles say,
    `subspot_context="interp"` gives the decoder what the neighbouring spots' latents say at
    each subspot (both `soscope.models.context`, by a Gaussian kernel of σ `bandwidth` spot
    spacings), `consistent_training` holds every spot exactly inside the loss, and
    `smooth_weight` (λ) weighs a smoothness prior over the subspot graph. `image_path` adds a
    path that predicts each subspot from its own image feature alone, trained on the spot
    totals only (L2 `image_weight_decay`, learning rate `image_lr`, an MLP of `image_hidden`
    units), whose shares (contrasts × `image_temperature`) multiply the subspot means;
    `decoder_features=false` keeps the image out of the decoder, so only that path shares a
    spot out. All are off in the original.
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
        bandwidth: float = BANDWIDTH,
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
        self._kept: tuple | None = None
        self.save_hyperparameters()
        if node_loss not in NODE_LOSS_MODES:
            raise ValueError(f"unknown node loss {node_loss!r}; choose from {NODE_LOSS_MODES}")
        if share_prior not in PRIOR_MODES:
            raise ValueError(f"unknown share_prior {share_prior!r}; choose from {PRIOR_MODES}")
        if bandwidth <= 0:
            raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
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

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without what is `kept` of the last batch (a cache)."""
        return {**super().__getstate__(), "_kept": None}

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
        return self.image_path(batch.sub_feat, self.image_offset(batch))

    def image_offset(self, batch: SpotGraph) -> Tensor:
        """The image path's `level_offset` from the training spots' mean profile (a tile
        carries its section's)."""
        level = getattr(batch, "level", None)
        if level is None:
            train = self.train_mask(batch)
            level = (batch.x if train is None else batch.x[train]).float().mean(0)
        return level_offset(self.likelihood, level)

    @property
    def decodes_spots(self) -> bool:
        """Whether the decoder reads nothing per subspot (no image features, no spatial
        context), so that a spot's subspots share its raw outputs: decoded once per spot."""
        return not self.hparams.decoder_features and self.hparams.subspot_context == "none"

    def raw_outputs(self, batch: SpotGraph, z: Tensor) -> Tensor:
        """The decoder's raw outputs: one row per spot if it `decodes_spots`, else per subspot."""
        k = subspot_counts(batch)
        if self.decodes_spots:
            return self.decoder(z, batch.sub_feat.new_empty(len(z), 0), k)
        context = None
        if self.hparams.subspot_context != "none":
            context = subspot_context(batch, z, section_spacing(batch), self.hparams.bandwidth)
        feat = batch.sub_feat if self.hparams.decoder_features else batch.sub_feat[:, :0]
        return self.decoder(z[batch.sub_to_spot], feat, k[batch.sub_to_spot], context)

    def subspot_prior(
        self, batch: SpotGraph, eta: Tensor | None, columns: slice = ALL
    ) -> Tensor | None:
        """How each spot is spread over its subspots before the decoder has its say: the share
        prior and the image path's shares combined (None when both are off), for the features
        `columns` (`eta` holds just those). Neither trains through this: the image path learns
        from the spot totals alone (`image_loss`)."""
        prior = None
        if self.hparams.share_prior != "none":
            prior = self.share_prior(batch, columns)
        if eta is None:
            return prior
        likelihood = self.likelihood.restrict(columns)
        temperature = self.hparams.image_temperature
        shares = image_shares(
            likelihood, eta.detach(), batch.sub_to_spot, batch.num_nodes, temperature
        )
        return combine_priors(likelihood, prior, shares)

    def share_prior(self, batch: SpotGraph, columns: slice = ALL) -> Tensor:
        """`soscope.models.context.share_prior` of `batch`'s features `columns`. It depends on
        the data alone, so a whole batch's is kept (`kept`) while it holds at most
        `KEPT_PRIOR_ENTRIES` values (the whole section, trained on step after step); beyond
        that only `columns` are computed, by the batch's kept interpolation kernel."""
        kept = self.kept(batch)
        if "prior" in kept:
            return kept["prior"][:, columns]
        if "kernel" not in kept:
            spacing = section_spacing(batch)
            kept["kernel"] = interpolation_kernel(
                batch, spacing, torch.float32, self.hparams.bandwidth
            )
        kernel, n_subspots = kept["kernel"], batch.sub_to_spot.numel()
        if n_subspots * batch.x.size(1) > KEPT_PRIOR_ENTRIES:
            return share_prior(batch, self.likelihood.restrict(columns), kernel, columns)
        prior = batch.x.new_empty(n_subspots, batch.x.size(1), dtype=torch.float32)
        for run, likelihood in self.likelihood.column_chunks(self.run_width(batch)):
            prior[:, run] = share_prior(batch, likelihood, kernel, run)
        kept["prior"] = prior
        return prior[:, columns]

    def kept(self, batch: SpotGraph) -> dict[str, Tensor]:
        """What is kept of the last batch seen, computed from its data alone; emptied when
        another batch comes or its profiles change."""
        if self._kept is None or self._kept[0]() is not batch or self._kept[1] != batch.x._version:
            self._kept = (weakref.ref(batch), batch.x._version, {})
        return self._kept[2]

    @staticmethod
    def run_width(batch: SpotGraph) -> int:
        """Features a run of `CHUNK_ENTRIES` subspot values holds."""
        return max(1, CHUNK_ENTRIES // max(1, batch.sub_to_spot.numel()))

    def subspot_distribution(
        self, batch: SpotGraph, z: Tensor, eta: Tensor | None = None
    ) -> BlockDistribution:
        """p(y | z, image) of every subspot, each decoded from its own spot's latent; spread by
        the share prior and the image path's shares (`eta`, computed if not given) and held to
        the observed spots where those options are on."""
        prior = self.subspot_prior(batch, self.image_eta(batch) if eta is None else eta)
        return self.decoded_distribution(batch, z, prior)

    def decoded_distribution(
        self, batch: SpotGraph, z: Tensor, prior: Tensor | None
    ) -> BlockDistribution:
        """`subspot_distribution` given the subspots' `subspot_prior`, which does not depend on
        Z (inference draws many Z for one prior)."""
        raw = self.raw_outputs(batch, z)
        if self.decodes_spots:
            raw = raw[batch.sub_to_spot]
        k_sub = subspot_counts(batch)[batch.sub_to_spot]
        prior = None if prior is None else prior.to(raw.dtype)
        dist = self.likelihood.subspot_distribution(raw, k_sub, prior)
        if not self.hparams.consistent_training:
            return dist
        x = batch.x.to(raw.dtype)
        prior = consistent_prior(self.likelihood, dist.mean, prior, x, batch.sub_to_spot)
        return self.likelihood.subspot_distribution(raw, k_sub, prior)

    @property
    def scores_spots_only(self) -> bool:
        """Whether a step reads no per-subspot output: the likelihood node loss of a decoder
        that `decodes_spots`, and no term per subspot (graph loss, smoothness, consistent
        training). The node loss then comes from `spot_level_losses`."""
        hp = self.hparams
        per_subspot = hp.consistent_training or hp.graph_loss_weight or hp.smooth_weight
        return self.decodes_spots and hp.node_loss == "likelihood" and not per_subspot

    def spot_level_losses(self, batch: SpotGraph, z: Tensor) -> tuple[Tensor, Tensor | None]:
        """Per spot: −log p(observed spot | the aggregate of its subspots) when they share the
        spot's raw outputs (`decodes_spots`), and the image path's `image_loss` (None when it
        is off). Computed at spot level, with no per-subspot decoder output or likelihood
        parameter, a run of features at a time (`CHUNK_ENTRIES` subspot values a run): the
        subspot prior and the image path's predictions are never held for all features."""
        k = subspot_counts(batch)
        target = self.likelihood.spot_target(batch.x, k)
        hidden = offset = image = None
        if self.image_path is not None:
            offset = self.image_offset(batch)
            hidden = self.image_path.hidden(batch.sub_feat, offset.dtype)
        totals = []
        for columns, likelihood in self.likelihood.column_chunks(self.run_width(batch)):
            eta = None if hidden is None else self.image_path.predict(hidden, offset, columns)
            prior = self.subspot_prior(batch, eta, columns)
            if prior is not None:
                totals.append(likelihood.prior_totals(prior, batch.sub_to_spot, batch.num_nodes))
            if eta is not None:
                loss = self.image_loss(batch, eta, target[:, columns], columns)
                image = loss if image is None else image + loss
        raw = self.raw_outputs(batch, z)
        total = torch.cat(totals, dim=-1).to(raw.dtype) if totals else None
        dist = self.likelihood.shared_aggregate(raw, k.to(raw.dtype), total)
        return -dist.log_prob(target), image

    def stage_loss(self, batch: SpotGraph) -> tuple[Tensor, dict[str, Tensor]]:
        hp = self.hparams
        scope = loss_scope(batch)
        q = self.encode(batch)
        z = q.rsample()
        k = subspot_counts(batch)
        if self.scores_spots_only:
            per_spot, image = self.spot_level_losses(batch, z)
        else:
            eta = self.image_eta(batch)
            image = None
            if eta is not None:
                target = self.likelihood.spot_target(batch.x, k)
                image = self.image_loss(batch, eta, target)
            sub_dist = self.subspot_distribution(batch, z, eta)
            sub_mean = sub_dist.mean
            if hp.node_loss == "mse":
                per_spot = node_loss_mse(self.likelihood, sub_mean, batch.x, k, batch.sub_to_spot)
            else:
                args = (batch.x, k, batch.sub_to_spot)
                per_spot = node_loss_likelihood(self.likelihood, sub_dist, *args)
        train = self.train_mask(batch)
        node = scope.spot_mean(per_spot, train)
        kl = scope.spot_mean(self.kl(q, z))
        beta, gamma = self.beta(self.global_step), self.gamma(self.global_step)
        loss = node + beta * kl
        terms = {"node_loss": node, "kl_loss": kl}
        # Terms of weight 0 are not computed: they cost a pass over the subspot graph.
        edges, weights = batch.sub_edge_index, batch.sub_edge_weight
        if hp.graph_loss_weight:
            deviation = self.likelihood.split(sub_mean - batch.x[batch.sub_to_spot])
            rows, pool = rows_and_pool(scope, "subspot")
            graph = self.graph_term(deviation, edges, weights, scope.subspots, rows, pool)
            terms["graph_loss"] = scope.tiles * graph
            loss = loss + hp.graph_loss_weight * terms["graph_loss"]
        if hp.smooth_weight:
            sub_weight = scope.sub_weight / scope.tiles
            terms["smooth_loss"] = smoothness(self.likelihood, sub_mean, edges, weights, sub_weight)
            loss = loss + hp.smooth_weight * terms["smooth_loss"]
        if image is not None:
            terms["image_loss"] = scope.spot_mean(image, train)
            loss = loss + terms["image_loss"]
        if hp.gamma_mode == "loss":
            loss = gamma * loss
        terms["beta"] = beta
        return loss, {**terms, "gamma": gamma}

    def image_loss(
        self, batch: SpotGraph, eta: Tensor, target: Tensor, columns: slice = ALL
    ) -> Tensor:
        """Per spot: −log p(observed spot `target` | the image path's prediction `eta` of its
        subspots) over the features `columns`, divided by the number of all features, so that
        its L2 penalty means the same whatever their number (only the image path learns from
        this term)."""
        path = self.image_path
        predicted = path.spot_distribution(eta, batch.sub_to_spot, batch.num_nodes, columns)
        return -predicted.log_prob(target.to(eta.dtype)) / self.likelihood.n_features

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
