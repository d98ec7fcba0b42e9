"""Stage 1: the variational graph auto-encoder that pretrains the encoder on spots."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from soscope.data.sample import SpotGraph, subspot_counts
from soscope.models.decoders import SpotDecoder
from soscope.training.base import LatentGraphModule
from soscope.training.scope import loss_scope, rows_and_pool


class VGAEModule(LatentGraphModule):
    """−log p(X | Z) + BCE(σ(Z Zᵀ), A) + β·KL, one step per pass over the spots."""

    stage_name = "vgae"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.decoder = SpotDecoder(
            self.hparams.z_dim, self.likelihood.spot_width, self.hparams.hidden
        )

    def stage_loss(self, batch: SpotGraph) -> tuple[Tensor, dict[str, Tensor]]:
        scope = loss_scope(batch)
        q = self.encode(batch)
        z = q.rsample()
        k = subspot_counts(batch)
        p_x = self.likelihood.spot_distribution(self.decoder(z))
        node_nll = -p_x.log_prob(self.likelihood.spot_target(batch.x, k))
        node = scope.spot_mean(node_nll, self.train_mask(batch))
        edges, weights = scope.own_edges(batch.edge_index, batch.edge_weight)
        rows, pool = rows_and_pool(scope, "spot")
        graph = scope.tiles * self.graph_term([z], edges, weights, scope.spots, rows, pool)
        kl = scope.spot_mean(self.kl(q, z))
        beta = self.beta(self.global_step)
        loss = node + graph + beta * kl
        return loss, {"node_loss": node, "graph_loss": graph, "kl_loss": kl, "beta": beta}

    @torch.no_grad()
    def predict_spots(self, batch: SpotGraph) -> Tensor:
        k = subspot_counts(batch)
        mean = self.likelihood.spot_distribution(self.decoder(self.encode(batch).mean)).mean
        return self.likelihood.per_subspot(mean, k)
