"""Logging a bundle's pictures to a Weights & Biases run (PNG as images, HTML as pages)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
_HTML_SUFFIXES = {".html", ".htm"}


def log_pictures_to_wandb(
    run: Any, paths: Mapping[str, str | Path], prefix: str = "bundle"
) -> dict[str, Any]:
    """Log pictures to a W&B run: PNG/JPEG as ``wandb.Image``, HTML as ``wandb.Html``.

    Keys become ``"<prefix>/<key>"`` (``bundle/map``, ...). With ``run=None`` this does nothing.
    A Lightning ``WandbLogger`` may be passed for ``run`` (its ``experiment`` is used). Missing
    files and other file types are skipped with a warning. Returns what was logged, by key.
    """
    if run is None:
        return {}
    experiment = getattr(run, "experiment", None)
    if not callable(getattr(run, "log", None)) and callable(getattr(experiment, "log", None)):
        run = experiment
    import wandb

    payload: dict[str, Any] = {}
    for key, value in paths.items():
        p = Path(value)
        full = key if key.startswith(f"{prefix}/") else f"{prefix}/{key}"
        suffix = p.suffix.lower()
        if not p.is_file():
            warnings.warn(f"log_pictures_to_wandb: {p} does not exist; not logged", stacklevel=2)
        elif suffix in _IMAGE_SUFFIXES:
            payload[full] = wandb.Image(str(p), caption=p.stem)
        elif suffix in _HTML_SUFFIXES:
            payload[full] = wandb.Html(p.read_text(encoding="utf-8"), inject=False)
        else:
            warnings.warn(f"log_pictures_to_wandb: {p} is not a PNG/JPEG/HTML; not logged",
                          stacklevel=2)
    if payload:
        run.log(payload)
    return payload
