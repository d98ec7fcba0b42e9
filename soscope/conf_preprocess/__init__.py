"""The preprocessing command's Hydra configs: `preprocess.yaml` and one folder per group."""
