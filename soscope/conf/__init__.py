"""The training command's Hydra configs: `config.yaml` and one folder per group."""
