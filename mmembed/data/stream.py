"""Streaming one split of a sharded corpus: each rank and each worker reads only its shards.

Shard ``s`` goes to rank ``s mod world_size`` and, among that rank's shards, the j-th to
worker ``j mod num_workers`` (webdataset's ``split_by_node`` then ``split_by_worker``), so the
parts are disjoint and together hold every shard. Images are decoded as they stream by, at
``image_size``, through :func:`mmembed.data.images.decode_image`; nothing holds more than a
shuffle buffer of them.

Under DDP every rank must run the same number of steps (the contrastive loss gathers across
ranks), but shards split unevenly. :func:`batch_caps` therefore gives each worker a number of
full batches such that every rank yields ``min over ranks`` of its full batches; the few posts
beyond are left out of that epoch (as ``drop_last`` does). Alone (one rank) nothing is capped.

With ``images=False`` (frozen towers: the model reads every post's features from its cache by
row) the items carry no image and the tars are not read at all, only the posts' metadata.

Training order: each worker permutes its shards and mixes its posts through a buffer of
``buffer`` posts, with a generator seeded by ``(seed, epoch, rank, worker)``; the epoch counts
the dataset's iterations in its process (the workers persist across epochs).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from mmembed.data.images import decode_image
from mmembed.data.shards import read_samples

log = logging.getLogger(__name__)

__all__ = ["ShardStream", "batch_caps", "worker_shards"]


def worker_shards(num_shards: int, rank: int, world_size: int, worker: int,
                  num_workers: int) -> list[int]:
    """The shards one worker of one rank reads (see the module docstring)."""
    return list(range(num_shards))[rank::world_size][worker::num_workers]


def batch_caps(counts: np.ndarray, world_size: int, num_workers: int,
               batch_size: int) -> np.ndarray:
    """``caps[rank, worker]``: the full batches each worker yields so that every rank yields
    the same number, the smallest rank's. ``counts[s]``: the split's posts in shard ``s``."""
    full = np.zeros((world_size, num_workers), dtype=np.int64)
    for r in range(world_size):
        for w in range(num_workers):
            n = int(sum(counts[s] for s in worker_shards(len(counts), r, world_size, w,
                                                           num_workers)))
            full[r, w] = n // batch_size
    steps = int(full.sum(axis=1).min())
    caps = np.zeros_like(full)
    for r in range(world_size):
        left = steps
        for w in range(num_workers):
            caps[r, w] = min(full[r, w], left)
            left -= caps[r, w]
    return caps


class ShardStream(IterableDataset):
    """Items of one split streamed from shards, the same dicts as
    :class:`~mmembed.data.datamodule.PostDataset` yields.

    ``rows[s]`` maps each key of shard ``s`` to the post's row in the corpus; ``keep`` marks
    the rows of this split; ``targets``, ``account_ids`` and ``captions`` are per row. ``caps``
    (posts per ``[rank, worker]``: :func:`batch_caps` times the batch size) bounds what each
    worker yields; ``None`` yields everything.
    """

    def __init__(self, urls: list[str], rows: list[dict[str, int]], keep: np.ndarray,
                 captions: list[str], targets: np.ndarray, account_ids: np.ndarray,
                 image_size: int, rank: int = 0, world_size: int = 1, shuffle: bool = False,
                 seed: int = 0, buffer: int = 256, caps: np.ndarray | None = None,
                 images: bool = True):
        self.urls = list(urls)
        self.rows = rows
        self.keep = np.asarray(keep, dtype=bool)
        self.captions = captions
        self.targets = targets
        self.account_ids = account_ids
        self.image_size = int(image_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.shuffle, self.seed, self.buffer = shuffle, int(seed), int(buffer)
        self.caps = caps
        self.images = images
        self.epoch = 0

    def counts(self) -> np.ndarray:
        """This split's posts in each shard."""
        return np.array([int(self.keep[list(r.values())].sum()) if r else 0 for r in self.rows])

    def __len__(self) -> int:
        """Items this rank yields in one pass (all its workers together)."""
        if self.caps is not None:
            return int(self.caps[self.rank].sum())
        counts = self.counts()
        return int(sum(counts[s] for s in range(len(counts))[self.rank::self.world_size]))

    def shards(self, worker: int, num_workers: int) -> list[int]:
        return worker_shards(len(self.urls), self.rank, self.world_size, worker, num_workers)

    def _item(self, row: int) -> dict[str, Any]:
        return {
            "caption": self.captions[row],
            "engagement": torch.tensor(self.targets[row], dtype=torch.float32),
            "account": torch.tensor(self.account_ids[row], dtype=torch.long),
            "index": torch.tensor(row, dtype=torch.long),
        }

    def _items(self, shards: list[int]):
        for s in shards:
            rows = self.rows[s]
            if not self.images:  # the metadata alone: the tar is not read
                yield from (self._item(row) for row in rows.values() if self.keep[row])
                continue
            for key, name, data in read_samples(self.urls[s]):
                row = rows.get(key)
                if row is None or not self.keep[row]:
                    continue
                img = decode_image(data, name, size=self.image_size)
                if not hasattr(img, "size"):
                    log.warning("skipped %s: %s", name, img.reason)
                    continue
                image = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
                yield {"image": image.float().div_(255.0), **self._item(row)}

    def _mixed(self, items, rng: np.random.Generator):
        pool: list[Any] = []
        for item in items:
            pool.append(item)
            if len(pool) >= self.buffer:
                yield pool.pop(int(rng.integers(len(pool))))
        while pool:
            yield pool.pop(int(rng.integers(len(pool))))

    def __iter__(self):
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        shards = self.shards(worker, num_workers)
        items = self._items(shards)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
            items = self._mixed(self._items(list(rng.permutation(shards))), rng)
        self.epoch += 1
        cap = None
        if self.caps is not None:
            cap = int(self.caps[self.rank, worker if worker < self.caps.shape[1] else 0])
        for n, item in enumerate(items):
            if cap is not None and n >= cap:
                return
            yield item
