"""Evaluation of enhanced profiles: metrics and baselines."""
