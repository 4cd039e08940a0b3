"""Train the joint embedding: python train.py [+experiment=NAME] [overrides]."""

import hydra
from omegaconf import DictConfig

from mmembed.cli import run


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from mmembed.training import train

    run(train, cfg)


if __name__ == "__main__":
    main()
