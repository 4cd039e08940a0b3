"""Experiment tracking: the W&B logger (offline unless configured), the config tree, samples."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def wandb_configured() -> bool:
    """True when the user has given W&B credentials (an API key in the environment or netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc().hosts
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return any("wandb" in host for host in hosts)


def is_wandb(logger) -> bool:
    """Whether a Lightning logger is W&B's (checked by name, so wandb is never imported here)."""
    return type(logger).__name__ == "WandbLogger"


def wandb_logger(save_dir: str, project: str = "mmembed", mode: str = "auto",
                 name: str | None = None, run_id: str | None = None, **kwargs: Any):
    """A Lightning WandbLogger whose files stay inside ``save_dir`` (the run's output folder).

    ``mode="auto"`` logs online when credentials are configured and offline otherwise, so a
    laptop with no network never hangs on a login prompt. ``run_id`` continues an earlier run
    (used on resume so the dashboard goes on from where it stopped).
    """
    from lightning.pytorch.loggers import WandbLogger

    save_dir = str(Path(save_dir).resolve())
    # The run goes to <save_dir>/wandb/; W&B's cache and config go beside it, not to ~.
    os.environ["WANDB_DIR"] = save_dir
    for var, sub in (("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config"),
                     ("WANDB_DATA_DIR", "data")):
        os.environ[var] = os.path.join(save_dir, "wandb", sub)
        Path(os.environ[var]).mkdir(parents=True, exist_ok=True)
    if mode == "auto":
        mode = os.environ.get("WANDB_MODE") or ("online" if wandb_configured() else "offline")
    os.environ["WANDB_MODE"] = mode
    return WandbLogger(save_dir=save_dir, project=project, name=name, id=run_id,
                       offline=(mode == "offline"), resume="allow" if run_id else None, **kwargs)


def config_tree(cfg: DictConfig, console=None) -> str:
    """Print the resolved config as a tree (one branch per top-level group); return it as YAML."""
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.tree import Tree

    console = console or Console()
    tree = Tree("config", guide_style="dim")
    for key, value in cfg.items():
        branch = tree.add(str(key))
        if isinstance(value, DictConfig):
            text = OmegaConf.to_yaml(value, resolve=True)
        else:
            text = str(value)
        branch.add(Syntax(text, "yaml"))
    console.print(tree)
    return OmegaConf.to_yaml(cfg, resolve=True)
