"""Rank new photos for a community: python rank.py [images=...] [community=NAME|list];
python rank.py serve=true serves the same as a web app."""

import hydra
from omegaconf import DictConfig

import mmembed.settings  # noqa: F401 - registers the structured configs
from mmembed.cli import prepare_argv, run


@hydra.main(config_path="conf", config_name="rank", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if cfg.get("serve"):
        from mmembed.app.server import serve

        run(serve, cfg)
        return
    from mmembed.cli.rank import rank

    run(rank, cfg)


if __name__ == "__main__":
    prepare_argv("rank")
    main()
