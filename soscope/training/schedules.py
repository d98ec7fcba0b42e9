"""The exponential (log-linear) schedules of β and γ."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ExponentialSchedule:
    """`start_value` up to `start_iteration`, then log-linear to `end_value` over `n_iterations`.

    The value is interpolated linearly in log10 space, so 1 → 0.01 halves its exponent at the
    midpoint (0.1); both values must be positive.
    """

    start_value: float = 1.0
    end_value: float = 1.0
    n_iterations: int = 10000
    start_iteration: int = 0

    def __post_init__(self) -> None:
        if self.start_value <= 0 or self.end_value <= 0:
            raise ValueError(
                f"schedule values must be positive, got {self.start_value} → {self.end_value}"
            )
        if self.n_iterations <= 0:
            raise ValueError(f"n_iterations must be positive, got {self.n_iterations}")

    def __call__(self, iteration: int) -> float:
        if iteration <= self.start_iteration:
            return self.start_value
        if iteration > self.start_iteration + self.n_iterations:
            return self.end_value
        start, end = math.log10(self.start_value), math.log10(self.end_value)
        fraction = (iteration - self.start_iteration) / self.n_iterations
        return 10 ** (start + fraction * (end - start))
