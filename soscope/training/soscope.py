"""Stage 2: soScope, which decodes each subspot from its spot's latent and its image feature."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from soscope.data.sample import SpotGraph
from soscope.models.aggregation import aggregate_mean, spot_counts
from soscope.models.consistency import CONSISTENCY_MODES, rescale_spread, rescale_to_spots
from soscope.models.context import context_width, subspot_context
from soscope.models.decoders import EnhancementDecoder
from soscope.models.likelihoods import BlockDistribution
from soscope.models.losses import (
    NODE_LOSS_MODES,
    graph_bce,
    node_loss_likelihood,
    node_loss_mse,
    resolve_graph_mode,
    smoothness,
)
from soscope.training.base import LatentGraphModule
from soscope.training.schedules import ExponentialSchedule

GAMMA_MODES = ("loss", "lr")


class SoScopeModule(LatentGraphModule):
    """γ·(node loss + w·BCE(σ(D Dᵀ), W) + λ·smoothness + β·KL), D = subspot mean − its spot's
    per-subspot mean.

    `gamma_mode="loss"` multiplies the loss by γ as the original code does; `"lr"` applies γ
    as a learning-rate schedule, the original's documented intent. `subspot_context="interp"`
    gives the decoder what the neighbouring spots say at each subspot (`soscope.models.context`)
    and `smooth_weight` (λ) weighs a smoothness prior over the subspot graph; both are off in
    the original.
    """

    stage_name = "soscope"

    def __init__(
        self,
        graph_loss_weight: float = 1.0,
        graph_loss: str = "auto",
        exact_max_nodes: int = 20000,
        node_loss: str = "mse",
        gamma: dict | None = None,
        gamma_mode: str = "loss",
        subspot_context: str = "none",
        smooth_weight: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        if node_loss not in NODE_LOSS_MODES:
            raise ValueError(f"unknown node loss {node_loss!r}; choose from {NODE_LOSS_MODES}")
        if gamma_mode not in GAMMA_MODES:
            raise ValueError(f"unknown gamma_mode {gamma_mode!r}; choose from {GAMMA_MODES}")
        # The original drives γ with β's start iteration and length.
        beta = self.beta
        gamma_cfg = {"n_iterations": beta.n_iterations, "start_iteration": beta.start_iteration}
        self.gamma = ExponentialSchedule(**{**gamma_cfg, **(gamma or {})})
        self.decoder = EnhancementDecoder(
            self.hparams.z_dim,
            self.hparams.feat_dim,
            self.likelihood.subspot_width,
            self.hparams.hidden,
            context_width(subspot_context, self.hparams.z_dim),
        )

    def load_encoder(self, encoder: nn.Module) -> None:
        """Start from the stage-1 encoder's weights."""
        self.encoder.load_state_dict(encoder.state_dict())

    def subspot_distribution(self, batch: SpotGraph, z: Tensor) -> BlockDistribution:
        """p(y | z, image) of every subspot, each decoded from its own spot's latent."""
        k_sub = spot_counts(batch.sub_to_spot, batch.num_nodes)[batch.sub_to_spot]
        context = None
        if self.hparams.subspot_context != "none":
            context = subspot_context(batch, z)
        raw = self.decoder(z[batch.sub_to_spot], batch.sub_feat, k_sub, context)
        return self.likelihood.subspot_distribution(raw, k_sub)

    def stage_loss(self, batch: SpotGraph) -> tuple[Tensor, dict[str, Tensor]]:
        q = self.encode(batch)
        z = q.rsample()
        sub_dist = self.subspot_distribution(batch, z)
        sub_mean = sub_dist.mean
        k = spot_counts(batch.sub_to_spot, batch.num_nodes)
        mask = self.train_mask(batch)
        if self.hparams.node_loss == "mse":
            node = node_loss_mse(self.likelihood, sub_mean, batch.x, k, batch.sub_to_spot, mask)
        else:
            node = node_loss_likelihood(
                self.likelihood, sub_dist, batch.x, k, batch.sub_to_spot, mask
            )
        deviation = self.likelihood.split(sub_mean - batch.x[batch.sub_to_spot])
        mode = resolve_graph_mode(
            self.hparams.graph_loss, batch.sub_feat.size(0), self.hparams.exact_max_nodes
        )
        graph = graph_bce(deviation, batch.sub_edge_index, batch.sub_edge_weight, mode)
        smooth = smoothness(self.likelihood, sub_mean, batch.sub_edge_index, batch.sub_edge_weight)
        kl = self.kl(q, z)
        beta, gamma = self.beta(self.global_step), self.gamma(self.global_step)
        loss = node + self.hparams.graph_loss_weight * graph + beta * kl
        loss = loss + self.hparams.smooth_weight * smooth
        if self.hparams.gamma_mode == "loss":
            loss = gamma * loss
        terms = {"node_loss": node, "graph_loss": graph, "smooth_loss": smooth, "kl_loss": kl}
        terms["beta"] = beta
        return loss, {**terms, "gamma": gamma}

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
        self, batch: SpotGraph, non_negative: bool = True, consistency: str = "none"
    ) -> Tensor:
        """Enhanced subspot profiles: the subspot distribution's mean at Z = μ (no sampling).

        `consistency="rescale"` then makes each spot's subspots re-aggregate to the observed spot.
        """
        check_consistency(consistency)
        mean = self._evaluated(lambda: self.subspot_distribution(batch, self.encode(batch).mean))
        mean = mean.mean
        if non_negative:
            mean = F.relu(mean)
        if consistency == "rescale":
            mean = rescale_to_spots(self.likelihood, mean, batch.x, batch.sub_to_spot)
        return mean

    @torch.no_grad()
    def predictive_sd(
        self,
        batch: SpotGraph,
        consistency: str = "none",
        n_samples: int = 32,
        seed: int = 0,
    ) -> Tensor:
        """Per-subspot predictive sd: √(E_Z[Var(y | Z)] + Var_Z[E(y | Z)]) over Z ~ q(Z | X, A).

        Z is sampled `n_samples` times from a generator seeded with `seed`, so the output is
        repeatable; with `consistency="rescale"` it scales with the enhanced mean it goes with.
        """
        check_consistency(consistency)
        generator = torch.Generator(device=batch.x.device).manual_seed(seed)

        def moments() -> tuple[Tensor, Tensor, Tensor]:
            q = self.encode(batch)
            at_mean = self.subspot_distribution(batch, q.mean).mean
            means, variances = [], []
            for _ in range(n_samples):
                noise = torch.randn(q.mean.shape, generator=generator, device=q.mean.device)
                dist = self.subspot_distribution(batch, q.mean + q.stddev * noise)
                means.append(dist.mean)
                variances.append(dist.variance)
            return at_mean, torch.stack(means), torch.stack(variances)

        at_mean, means, variances = self._evaluated(moments)
        sd = (variances.mean(0) + means.var(0, unbiased=False)).sqrt()
        if consistency == "rescale":
            sd = rescale_spread(self.likelihood, sd, at_mean, batch.x, batch.sub_to_spot)
        return sd

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
