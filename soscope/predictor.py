"""Inference of a trained stage-2 model: the enhanced subspot profiles and their predictive sd.

Kept apart from the training plan (`SoScopeModule`): a `Predictor` reads the model's encoder
and subspot distribution and works view by view — each tile's own subspots, or the whole
section as one view — so that nothing as large as the section's output is held in torch, with
the same result tiled or not. Per view the subspot prior and the mean at Z = μ are computed
once for every output, and the predictive sd's draws run inside the view.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from soscope.data.matrices import RowBlock, assemble
from soscope.data.sample import SpotGraph
from soscope.data.tiles import own_rows, spots_of
from soscope.models.consistency import CONSISTENCY_MODES, rescale_spread, rescale_to_spots
from soscope.training.progress import progress_line
from soscope.training.soscope import SoScopeModule

log = logging.getLogger(__name__)


class Predictor:
    """Decodes `section` (a `SpotGraph`) with the trained `module`, over `tiles` (the section's
    `TiledSection`) when given. The model must not change while a predictor is in use: the
    posterior is computed once."""

    def __init__(
        self,
        module: SoScopeModule,
        section: SpotGraph,
        tiles: Collection[SpotGraph] | None = None,
    ) -> None:
        self.module, self.section = module, section
        self.views = [section] if tiles is None else tiles
        self._posterior: tuple[Tensor, Tensor] | None = None

    @torch.no_grad()
    def outputs(
        self,
        non_negative: bool = True,
        consistency: str = "none",
        n_samples: int = 0,
        seed: int = 0,
        unclipped: bool = False,
    ) -> Iterator[RowBlock]:
        """The outputs of one view's own subspots at a time, as float32 numpy blocks:
        `enhanced` (see `enhance`), with `n_samples` > 0 `sd` (see `predictive_sd`) and with
        `unclipped` `mean_unclipped` (the mean at Z = μ before consistency and clipping)."""
        check_consistency(consistency)
        noise = self.noise(n_samples, seed) if n_samples > 0 else None
        started = time.perf_counter()
        with evaluating(self.module):
            for count, view in enumerate(self.views, 1):
                values = self.view_outputs(view, non_negative, consistency, noise, unclipped)
                yield RowBlock(self.section_rows(view), as_numpy(values))
                seconds = (time.perf_counter() - started) / count
                log.info("%s", progress_line("inference", count, len(self.views), seconds, "view"))

    def section_rows(self, view: SpotGraph) -> np.ndarray:
        """The section's row numbers of the own subspots of `view`."""
        ids = own_rows(view, "subspot")[0]
        return np.arange(self.section.num_subspots) if isinstance(ids, slice) else ids.cpu().numpy()

    def view_outputs(
        self,
        view: SpotGraph,
        non_negative: bool,
        consistency: str,
        noise: Tensor | None,
        unclipped: bool,
    ) -> dict[str, Tensor]:
        """`outputs` of the own subspots of `view`, from its prior computed once. Consistency
        is spot-wise, and a view owns whole spots: it holds within the view. The sd comes
        first, so that its draws run beside the mean alone."""
        prior = self.prior(view)
        mu, sigma = (part[spots_of(view)] for part in self.posterior())
        parents = view.sub_to_spot[own_subspots(view)]
        likelihood = self.module.likelihood
        mean = self.decode(view, mu, prior)[0]
        values = {"mean_unclipped": mean} if unclipped else {}
        if noise is not None:
            sd = self.view_sd(view, prior, mu, sigma, noise[:, spots_of(view)])
            if consistency == "rescale":
                sd = rescale_spread(likelihood, sd, mean, view.x, parents)
            values["sd"] = sd
        enhanced = mean
        if consistency == "rescale":
            enhanced = rescale_to_spots(likelihood, mean, view.x, parents)
        if non_negative:  # after the rescale: a Gaussian block's shift can make values negative
            enhanced = F.relu(enhanced)
        return {"enhanced": enhanced, **values}

    def view_sd(
        self, view: SpotGraph, prior: Tensor | None, mu: Tensor, sigma: Tensor, noise: Tensor
    ) -> Tensor:
        """Predictive sd of the own subspots of `view` over the draws Z = μ + σ·ε of its
        spots (ε: `noise`, draws × spots × z): √(E_Z[Var(y | Z)] + Var_Z[E(y | Z)])."""
        moments = None
        for count, draw in enumerate(noise, 1):  # a draw's outputs go before the next's come
            z = mu + sigma * draw
            moments = running_moments(moments, *self.decode(view, z, prior, True), count)
        _, spread, expected_var = moments
        return expected_var.add_(spread, alpha=1 / len(noise)).sqrt_()

    def enhance(self, non_negative: bool = True, consistency: str = "none") -> Tensor:
        """Enhanced subspot profiles of the whole section (on the CPU): the subspot
        distribution's mean at Z = μ (no sampling).

        `consistency="rescale"` then makes each spot's subspots re-aggregate to the observed
        spot; `non_negative` then clips negative values (of Gaussian blocks) to 0.
        """
        return self.gather("enhanced", non_negative=non_negative, consistency=consistency)

    def predictive_sd(
        self, consistency: str = "none", n_samples: int = 32, seed: int = 0
    ) -> Tensor:
        """Per-subspot predictive sd of the whole section (on the CPU): √(E_Z[Var(y | Z)] +
        Var_Z[E(y | Z)]) over Z ~ q(Z | X, A).

        Z is sampled `n_samples` times with noise drawn from `seed` (`noise`), so the output
        is repeatable; with `consistency="rescale"` it scales with the enhanced mean it goes
        with.
        """
        return self.gather("sd", consistency=consistency, n_samples=n_samples, seed=seed)

    def mean_at_posterior_mean(self) -> Tensor:
        """Every subspot's mean at Z = μ, before any consistency or clipping (on the CPU)."""
        return self.gather("mean_unclipped", unclipped=True)

    def gather(self, name: str, **options) -> Tensor:
        """The whole section's output `name` of `outputs` (with `options`) as one tensor."""
        blocks = (RowBlock(b.rows, {name: b.values[name]}) for b in self.outputs(**options))
        matrices = assemble(blocks, self.section.num_subspots, sparse_output=False)
        return torch.from_numpy(matrices[name])

    def noise(self, n_samples: int, seed: int) -> Tensor:
        """Standard normal noise of every spot's latent for each of `n_samples` draws
        (draws × spots × z, small): the same Z for a spot whichever view decodes it."""
        mu = self.posterior()[0]
        generator = torch.Generator(device=mu.device).manual_seed(seed)
        return torch.randn((n_samples, *mu.shape), generator=generator, device=mu.device)

    @torch.no_grad()
    def posterior(self) -> tuple[Tensor, Tensor]:
        """μ and σ of q(Z | X, A) at every spot of the section, gathered from the views' own
        spots (computed once)."""
        if self._posterior is None:
            mu = sigma = None
            with evaluating(self.module):
                for view in self.views:
                    q = self.module.encode(view)
                    ids, rows = own_rows(view, "spot")
                    if mu is None:
                        mu = q.mean.new_empty(self.section.num_nodes, q.mean.size(1))
                        sigma = torch.empty_like(mu)
                    mu[ids], sigma[ids] = q.mean[rows], q.stddev[rows]
            self._posterior = (mu, sigma)
        return self._posterior

    def decode(
        self, view: SpotGraph, z: Tensor, prior: Tensor | None, variance: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Mean (and variance) of the own subspots of `view` given the latents `z` of its spots
        and its subspot `prior`."""
        dist = self.module.decoded_distribution(view, z, prior)
        rows = own_subspots(view)
        return dist.mean[rows], dist.variance[rows] if variance else None

    def prior(self, view: SpotGraph) -> Tensor | None:
        """The subspot prior of `view` (`SoScopeModule.subspot_prior`): independent of Z, so
        computed once for all of a view's outputs."""
        return self.module.subspot_prior(view, self.module.image_eta(view))


def own_subspots(view: SpotGraph) -> Tensor | slice:
    """Rows of the subspots `view` owns among those it decodes: a slice when it owns them
    all, so that taking them copies nothing."""
    rows = own_rows(view, "subspot")[1]
    return slice(None) if isinstance(rows, slice) or bool(rows.all()) else rows


def running_moments(
    moments: tuple[Tensor, Tensor, Tensor] | None, mean: Tensor, var: Tensor, count: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Welford's running (mean, sum of squared deviations) of the draws' means and the mean
    of their variances, updated in place with draw number `count` (memory of the moments)."""
    if moments is None:
        moments = tuple(torch.zeros_like(mean) for _ in range(3))
    running_mean, spread, expected_var = moments
    delta = mean - running_mean
    running_mean.add_(delta, alpha=1 / count)
    spread.addcmul_(delta, delta, value=(count - 1) / count)
    expected_var.mul_((count - 1) / count).add_(var, alpha=1 / count)
    return moments


def as_numpy(values: dict[str, Tensor]) -> dict[str, np.ndarray]:
    """Tensors as float32 numpy arrays on the CPU."""
    return {name: value.float().cpu().numpy() for name, value in values.items()}


@contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """`module` in eval mode inside the block, its training mode restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def check_consistency(consistency: str) -> None:
    """Refuse an unknown consistency mode."""
    if consistency not in CONSISTENCY_MODES:
        raise ValueError(f"unknown consistency {consistency!r}; choose from {CONSISTENCY_MODES}")
