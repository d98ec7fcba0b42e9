"""Train soscope on a section and write the enhanced profiles: `python train.py --help`."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run one job; returns the held-out spot score for sweepers (None without validation)."""
    from soscope.pipeline import run

    return run(cfg)["objective"]


if __name__ == "__main__":
    main()
