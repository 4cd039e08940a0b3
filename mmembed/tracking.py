"""Experiment tracking: the W&B logger, offline unless credentials are configured."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any


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
    """Whether a Lightning logger is W&B's (Lightning imports wandb only when one is made)."""
    from lightning.pytorch.loggers import WandbLogger

    return isinstance(logger, WandbLogger)


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
    logger = WandbLogger(save_dir=save_dir, project=project, name=name, id=run_id,
                         offline=(mode == "offline"), resume="allow" if run_id else None,
                         **kwargs)
    # Lightning always passes W&B's deprecated `anonymous` setting, which makes wandb.init
    # warn on every run; the value it passes (None) is W&B's default anyway.
    logger._wandb_init.pop("anonymous", None)
    return logger
