"""Shared fixtures: tiny synthetic sections that train in a second or two."""

import pytest
import torch

from soscope.datasets import make_synthetic_tissue


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_tissue():
    """A 6×6 Visium-like tissue (36 spots, 252 subspots, 9 NB genes)."""
    return make_synthetic_tissue(n_rows=6, n_cols=6, seed=0)
