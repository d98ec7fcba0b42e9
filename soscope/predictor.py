"""Inference of a trained stage-2 model: the enhanced subspot profiles and their predictive sd.

Kept apart from the training plan (`SoScopeModule`): a `Predictor` reads the model's encoder
and subspot distribution, works on the whole section or tile by tile with the same result, and
computes the posterior and the mean at Z = μ once for both outputs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
        tiles: Iterable[SpotGraph] | None = None,
    ) -> None:
        self.module, self.section = module, section
        self.views = [section] if tiles is None else tiles
        self._posterior: tuple[Tensor, Tensor] | None = None
        self._mean: Tensor | None = None
        # The subspot prior of a whole section, computed once for every Z drawn (tiles are
        # served anew on each pass, and all of theirs together would outweigh the output).
        self._section_prior: tuple[Tensor | None] | None = None

    @torch.no_grad()
    def enhance(self, non_negative: bool = True, consistency: str = "none") -> Tensor:
        """Enhanced subspot profiles: the subspot distribution's mean at Z = μ (no sampling).

        `consistency="rescale"` then makes each spot's subspots re-aggregate to the observed
        spot; `non_negative` then clips negative values (of Gaussian blocks) to 0.
        """
        check_consistency(consistency)
        mean = self.mean_at_posterior_mean()
        if consistency == "rescale":
            mean = rescale_to_spots(
                self.module.likelihood, mean, self.section.x, self.section.sub_to_spot
            )
        if non_negative:  # after the rescale: a Gaussian block's shift can make values negative
            mean = F.relu(mean)
        return mean

    @torch.no_grad()
    def predictive_sd(
        self, consistency: str = "none", n_samples: int = 32, seed: int = 0
    ) -> Tensor:
        """Per-subspot predictive sd: √(E_Z[Var(y | Z)] + Var_Z[E(y | Z)]) over Z ~ q(Z | X, A).

        Z is sampled `n_samples` times from a generator seeded with `seed`, so the output is
        repeatable; with `consistency="rescale"` it scales with the enhanced mean it goes with.
        The moments accumulate sample by sample (memory of one sample).
        """
        check_consistency(consistency)
        mu, sigma = self.posterior()
        generator = torch.Generator(device=mu.device).manual_seed(seed)
        mean = spread = expected_var = torch.zeros_like(self.mean_at_posterior_mean())
        started, every = time.perf_counter(), max(1, n_samples // 4)
        with evaluating(self.module):
            for count in range(1, n_samples + 1):
                noise = torch.randn(mu.shape, generator=generator, device=mu.device)
                sample_mean, sample_var = self.decode(mu + sigma * noise, variance=True)
                delta = sample_mean - mean  # Welford's running mean and sum of squares
                mean = mean + delta / count
                spread = spread + delta * (sample_mean - mean)
                expected_var = expected_var + (sample_var - expected_var) / count
                if count % every == 0:
                    seconds = (time.perf_counter() - started) / count
                    line = progress_line("predictive sd", count, n_samples, seconds, "sample")
                    log.info("%s", line)
        sd = (expected_var + spread / n_samples).sqrt()
        if consistency == "rescale":
            at_mean = self.mean_at_posterior_mean()
            section = self.section
            sd = rescale_spread(self.module.likelihood, sd, at_mean, section.x, section.sub_to_spot)
        return sd

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

    @torch.no_grad()
    def mean_at_posterior_mean(self) -> Tensor:
        """Every subspot's mean at Z = μ, before any consistency or clipping (computed once)."""
        if self._mean is None:
            with evaluating(self.module):
                self._mean = self.decode(self.posterior()[0])[0]
        return self._mean

    def decode(self, z: Tensor, variance: bool = False) -> tuple[Tensor, Tensor | None]:
        """Mean (and variance) of every subspot of the section given the section's latents."""
        mean = var = None
        for view in self.views:
            dist = self.module.decoded_distribution(view, z[spots_of(view)], self.prior(view))
            ids, rows = own_rows(view, "subspot")
            if mean is None:
                width = self.module.likelihood.n_features
                mean = z.new_empty(self.section.num_subspots, width)
                var = torch.empty_like(mean) if variance else None
            mean[ids] = dist.mean[rows]
            if variance:
                var[ids] = dist.variance[rows]
        return mean, var

    def prior(self, view: SpotGraph) -> Tensor | None:
        """The subspot prior of `view` (`SoScopeModule.subspot_prior`), kept for a whole
        section."""
        if view is not self.section:
            return self.module.subspot_prior(view, self.module.image_eta(view))
        if self._section_prior is None:
            self._section_prior = (self.module.subspot_prior(view, self.module.image_eta(view)),)
        return self._section_prior[0]


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
