"""``train.py``: fit the joint embedding and build its bundle; print where it is and how it did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmembed.fileio import atomic_write


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Save the resolved config beside the run's outputs, train, print the bundle's summary."""
    from mmembed.cli.logs import quiet_libraries
    from mmembed.cli.progress import RichProgress
    from mmembed.cli.terminal import config_tree, make_console, print_build
    from mmembed.training import train as fit_and_build

    quiet_libraries()
    console = make_console()
    output_dir = Path(cfg.paths.output_dir)
    atomic_write(output_dir / "config_resolved.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    if cfg.get("verbose") or cfg.get("print_config"):
        config_tree(cfg, console)
    with RichProgress(console) as progress:
        metrics, objects = fit_and_build(cfg, progress=progress)
    if objects.get("wandb"):
        console.print(f"W&B run: {objects['wandb']}", highlight=False)
    if "bundle" in objects:
        print_build(objects["bundle"], console)
    return metrics, objects
