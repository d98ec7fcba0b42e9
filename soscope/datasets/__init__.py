"""Embedded datasets: the seeded synthetic tissue with ground truth at subspot resolution."""

from soscope.datasets.synthetic import SyntheticTissue, make_synthetic_tissue, synthetic_section

__all__ = ["SyntheticTissue", "make_synthetic_tissue", "synthetic_section"]
