"""Train the joint embedding: python train.py [+experiment=NAME] [overrides]."""

import hydra
from omegaconf import DictConfig

import mmembed.settings  # noqa: F401 - registers the structured configs
from mmembed.cli import prepare_argv, run


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from mmembed.cli.train import train

    run(train, cfg)


if __name__ == "__main__":
    prepare_argv("train")
    main()
