"""Compose the project's Hydra config without a Hydra app (for tests and small entry points)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def compose(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """The config ``train.py`` would see for these command-line overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import mmembed.settings  # noqa: F401 - registers the structured configs

    if not CONF_DIR.is_dir():
        raise FileNotFoundError(
            f"config folder not found at {CONF_DIR}; install mmembed from its repository with "
            "`pip install -e .` so conf/ sits beside the package"
        )
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []))
