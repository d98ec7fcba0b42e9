"""What both stages share: the likelihood, the graph encoder, the prior, β and the optimiser."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.distributions import Normal

from soscope.data.sample import SpotGraph, subspot_counts
from soscope.evaluate.metrics import pearson_per_feature
from soscope.models.encoder import GraphEncoder
from soscope.models.likelihoods import Likelihood, make_likelihood
from soscope.models.losses import graph_bce, kl_at_sample, resolve_graph_mode
from soscope.training.schedules import ExponentialSchedule


class LatentGraphModule(L.LightningModule):
    """A stage of soScope: encodes the spot graph to Z ~ q(Z | X, A) with prior N(0, I).

    Subclasses add their decoder and `stage_loss`; one training step is one pass over the
    batch: the whole section in full-graph mode, as in the original, or one spatial tile
    (`soscope.data.tiles`), whose loss is its share of the section's. `graph_loss`,
    `exact_max_nodes` and `samples_per_edge` say how the graph losses are computed
    (`graph_term`).
    """

    stage_name = "stage"

    def __init__(
        self,
        likelihood: str,
        n_features: int,
        feat_dim: int,
        scale: float = 1.0,
        protein_dim: int = 0,
        scale_p: float | None = None,
        scale_g: float | None = None,
        z_dim: int = 128,
        hidden: int = 128,
        heads: int = 1,
        lr: float = 1e-3,
        optimizer: str = "Adam",
        weight_decay: float = 0.0,
        beta: dict | None = None,
        graph_loss: str = "auto",
        exact_max_nodes: int = 5000,
        samples_per_edge: int = 8,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.likelihood: Likelihood = make_likelihood(
            likelihood, n_features, scale, protein_dim, scale_p, scale_g
        )
        self.encoder = GraphEncoder(n_features, z_dim, hidden, heads)
        self.beta = ExponentialSchedule(**(beta or {}))

    def encode(self, batch: SpotGraph) -> Normal:
        """q(Z | X, A) for the spots of `batch`."""
        k = subspot_counts(batch)
        return self.encoder(self.likelihood.encoder_input(batch.x, k), batch.edge_index)

    def kl(self, q: Normal, z: Tensor) -> Tensor:
        """KL(q ‖ N(0, I)) per spot, at the sample `z`."""
        prior = Normal(torch.zeros_like(z), torch.ones_like(z))
        return kl_at_sample(q, prior, z)

    def graph_term(
        self,
        embeddings: Sequence[Tensor],
        edges: Tensor,
        weights: Tensor,
        nodes: int,
        rows: Tensor | None,
        pool: Tensor | None,
    ) -> Tensor:
        """BCE of a graph of `nodes` nodes against its reconstruction from `embeddings`: over
        all pairs up to `exact_max_nodes` nodes (`graph_loss=auto`), else sampled."""
        hp = self.hparams
        mode = resolve_graph_mode(hp.graph_loss, nodes, hp.exact_max_nodes)
        return graph_bce(
            embeddings,
            edges,
            weights,
            mode,
            hp.samples_per_edge,
            rows=rows,
            pool=pool,
            total_nodes=nodes,
        )

    def halo(self) -> tuple[int, int]:
        """(encoder layers, context hops): what a tile's halo must cover for exact outputs."""
        return len(self.encoder.convs), 0

    def stage_loss(self, batch: SpotGraph) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def predict_spots(self, batch: SpotGraph) -> Tensor:
        """Each spot's predicted profile (per-subspot mean, like `x`) at Z = μ."""
        raise NotImplementedError

    @staticmethod
    def train_mask(batch: SpotGraph) -> Tensor | None:
        """Spots whose profiles training may score (all but the held-out ones)."""
        val_mask = getattr(batch, "val_mask", None)
        return None if val_mask is None else ~val_mask

    def validation_step(self, batch: SpotGraph, batch_idx: int) -> None:
        """Score the held-out spots: median over features of Pearson r, predicted vs. observed."""
        mask = batch.val_mask
        predicted = self.predict_spots(batch)[mask].double().cpu().numpy()
        observed = batch.x_true[mask].double().cpu().numpy()
        r = pearson_per_feature(predicted, observed)
        score = float(np.nanmedian(r)) if np.isfinite(r).any() else 0.0
        self.log(f"{self.stage_name}/val_heldout_pearson", score, batch_size=int(mask.sum()))

    def training_step(self, batch: SpotGraph, batch_idx: int) -> Tensor:
        loss, terms = self.stage_loss(batch)
        size = batch.num_nodes
        for name, value in terms.items():
            self.log(f"{self.stage_name}/{name}", value, batch_size=size)
        self.log(f"{self.stage_name}/loss", loss, batch_size=size, prog_bar=True)
        self.log(f"{self.stage_name}/lr", self.optimizers().param_groups[0]["lr"], batch_size=size)
        return loss

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lets `ckpt_path=…` find which stage a checkpoint belongs to.
        checkpoint["soscope_stage"] = self.stage_name

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The optimiser's parameter groups: one, unless a stage gives some their own settings."""
        return [{"params": list(self.parameters())}]

    def configure_optimizers(self) -> Any:
        optimizer_cls = getattr(torch.optim, self.hparams.optimizer, None)
        if optimizer_cls is None:
            raise ValueError(f"unknown optimizer {self.hparams.optimizer!r} (a torch.optim class)")
        return optimizer_cls(
            self.parameter_groups(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
