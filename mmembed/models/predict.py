"""Running a model's ``predict_step`` over a DataLoader: the one embedding loop.

Every vector mmembed computes for posts or photos (frozen tower features for the cache, post
latents for the bundle, new photos in ``rank.py``, the frozen-feature reference of the
evaluation) goes through :func:`predict_batches`: eval mode, no gradients, the global random
state left as it was (iterating a DataLoader draws a seed from it, so a run that computes
features trains exactly like one that reads them from a cache), and optionally every batch
padded to a fixed number of rows. Float kernels (convolutions, matrix products) pick their
blocking by the number of rows, so padding makes a photo's numbers the same whatever photos
share its batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

__all__ = ["predict", "predict_batches"]


def _pad(batch: dict[str, Any], rows: int) -> dict[str, Any]:
    """``batch`` with every tensor of its first dimension's size padded by zero rows."""
    n = next(len(v) for v in batch.values() if torch.is_tensor(v) and v.ndim)
    if n >= rows:
        return batch
    out = dict(batch)
    for key, value in batch.items():
        if torch.is_tensor(value) and value.ndim and len(value) == n:
            out[key] = torch.cat([value, value.new_zeros((rows - n, *value.shape[1:]))])
    return out


@torch.no_grad()
def predict_batches(model, loader: Iterable[dict[str, Any]], keys: Sequence[str] | None = None,
                    pad_to: int | None = None, keep_padding: bool = False
                    ) -> Iterator[tuple[dict[str, Any], dict[str, torch.Tensor]]]:
    """``(batch, outputs)`` for every batch of ``loader``: ``model.predict_step``'s outputs
    (only ``keys`` if given) on the CPU in float32. Batches are padded to ``pad_to`` rows;
    the padding rows are dropped unless ``keep_padding`` (so that what the caller computes
    next also runs on a fixed number of rows). A batch with no image yields ``{}``."""
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            for i, batch in enumerate(loader):
                if batch.get("image") is None and "image_features" not in batch:
                    yield batch, {}
                    continue
                n = len(batch["index"])
                out = model.predict_step(_pad(batch, pad_to) if pad_to else batch, i)
                rows = len(next(iter(out.values()))) if keep_padding else n
                yield batch, {k: v[:rows].detach().float().cpu() for k, v in out.items()
                              if keys is None or k in keys}
    finally:
        model.train(was_training)


def predict(model, loader: Iterable[dict[str, Any]],
            keys: Sequence[str] | None = None, rows: int | None = None) -> dict[str, torch.Tensor]:
    """:func:`predict_batches` concatenated, rows ordered by ``batch["index"]``.

    With ``rows`` (the number of rows the loader yields, indices ``0 … rows − 1``) each batch
    is written straight into outputs of that many rows, allocated once: the peak memory is the
    outputs alone. Without it the batches are kept until the last one, then moved to their
    rows (freed one by one, but the allocator keeps much of what they held)."""
    if rows is not None:
        return _predict_into(model, loader, keys, rows)
    parts: dict[str, list[torch.Tensor]] = {}
    index = []
    for batch, out in predict_batches(model, loader, keys):
        if not out:
            continue
        index.append(torch.as_tensor(batch["index"]))
        for k, v in out.items():
            parts.setdefault(k, []).append(v)
    if not index:
        return {}
    # Each batch goes straight to its sorted rows and is freed: one copy of the outputs, not
    # three (the batches, their concatenation and its reordering).
    order = torch.argsort(torch.cat(index))
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order))
    out = {}
    for k, chunks in parts.items():
        dst = chunks[0].new_empty((len(order), *chunks[0].shape[1:]))
        start = 0
        while chunks:
            chunk = chunks.pop(0)
            dst[position[start:start + len(chunk)]] = chunk
            start += len(chunk)
        out[k] = dst
    return out


def _predict_into(model, loader: Iterable[dict[str, Any]], keys: Sequence[str] | None,
                  rows: int) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    seen = torch.zeros(rows, dtype=torch.bool)
    for batch, parts in predict_batches(model, loader, keys):
        if not parts:
            continue
        index = torch.as_tensor(batch["index"]).long()
        if len(index) and (int(index.min()) < 0 or int(index.max()) >= rows):
            raise ValueError(f"predict: a batch holds row {int(index.max())}, outside the "
                             f"{rows} rows asked for")
        for k, v in parts.items():
            if k not in out:
                out[k] = v.new_empty((rows, *v.shape[1:]))
            out[k][index] = v
        seen[index] = True
    if out and not bool(seen.all()):
        missing = int((~seen).sum())
        raise ValueError(f"predict: {missing} of {rows} rows came in no batch")
    return out
