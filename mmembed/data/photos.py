"""New photos to rank, as a torch Dataset: safe decoding in DataLoader workers.

:class:`PhotoDataset` decodes each photo with :func:`mmembed.data.images.load_image` at the
bundle's image size (resized and centre-cropped as in training). A photo that cannot be used
is not an exception but an item with its reason, and :func:`collate_photos` keeps the readable
ones as one uint8 batch and the others as :class:`~mmembed.data.images.ImageError` values, so
one broken file never sinks a batch. :func:`photo_loader` runs the decoding in ``workers``
processes, one batch ahead of the model, while a shared
:class:`~mmembed.data.images.DecodeBudget` bounds the full-size pixels they hold together.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmembed.data.images import DecodeBudget, ImageError, load_image

__all__ = ["PhotoBatch", "PhotoDataset", "collate_photos", "photo_loader"]


class PhotoDataset(Dataset):
    """Item ``i``: ``{"index": i, "path": Path, "image": uint8 [3, S, S] | None, "error":
    ImageError | None}``."""

    def __init__(
        self, paths: Sequence[str | Path], image_size: int, budget: DecodeBudget | None = None
    ):
        self.paths = [Path(p) for p in paths]
        self.image_size = int(image_size)
        self.budget = budget

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path = self.paths[i]
        try:
            img = load_image(path, size=self.image_size, budget=self.budget)
        except Exception as exc:  # noqa: BLE001 - load_image should not raise; never sink a run
            img = ImageError(str(path), f"unreadable: {exc}")
        if isinstance(img, ImageError):
            return {"index": i, "path": path, "image": None, "error": img}
        pixels = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
        return {"index": i, "path": path, "image": pixels.contiguous(), "error": None}


class PhotoBatch(dict):
    """A collated batch: ``image`` uint8 ``[b, 3, S, S]`` (or ``None``), ``paths`` of those
    rows, ``index`` their dataset positions, and ``errors`` for the photos that failed."""


def collate_photos(items: list[dict[str, Any]]) -> PhotoBatch:
    ok = [it for it in items if it["error"] is None]
    return PhotoBatch(
        image=torch.stack([it["image"] for it in ok]) if ok else None,
        paths=[it["path"] for it in ok],
        index=torch.tensor([it["index"] for it in ok], dtype=torch.long),
        errors=[it["error"] for it in items if it["error"] is not None],
    )


def photo_loader(
    paths: Sequence[str | Path],
    image_size: int,
    batch_size: int = 64,
    workers: int = 2,
    memory_mb: int = 768,
) -> DataLoader:
    """Batches of decoded photos in input order (see the module docstring)."""
    budget = DecodeBudget(int(memory_mb) * 2**20)
    return DataLoader(
        PhotoDataset(paths, image_size, budget),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_photos,
        prefetch_factor=1 if workers else None,
    )
