"""Train soscope on a section and write the enhanced profiles: `python train.py --help`."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    from soscope.pipeline import run

    return run(cfg)


if __name__ == "__main__":
    main()
