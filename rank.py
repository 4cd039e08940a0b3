"""Rank new photos for a community: python rank.py [images=...] [community=NAME|list]."""

import hydra
from omegaconf import DictConfig

import mmembed.settings  # noqa: F401 - registers the structured configs
from mmembed.cli import prepare_argv, run


@hydra.main(config_path="conf", config_name="rank", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from mmembed.cli.rank import rank

    run(rank, cfg)


if __name__ == "__main__":
    prepare_argv("rank")
    main()
