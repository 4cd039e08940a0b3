"""PostDataModule: split, decode once, cache, tokenise, batch.

- The split is a deterministic function of each post id (a hash), so a post stays in the same split
  whatever else is added to or removed from the corpus, and across machines and runs.
- Every image is decoded once, through :func:`mmembed.data.images.load_image`, resized to
  ``image_size`` and stored in a uint8 ``.npy`` cache keyed by a fingerprint of the posts and the
  size. Epochs read that array (memory-mapped), so they never decode a JPEG again, and workers
  share it through the page cache.
- Posts whose image cannot be decoded are reported in ``skipped`` and left out.
- ``tokenize`` is a hook: a callable that turns a list of captions into a dict of tensors. It runs
  in the collate function, batched, so any tokenizer (HF, tokenizers, a test stub) plugs in.
- A source that ``streams`` (:class:`~mmembed.data.sources.shards.ShardSource`) is not decoded
  into one array: its images are streamed from the tar shards every epoch, each rank and worker
  reading only its own shards (:class:`mmembed.data.stream.ShardStream`). Only the posts'
  metadata is held in memory.
- The training order of an epoch is a pure function of ``(seed, epoch)``: a
  ``DistributedSampler`` (one replica outside DDP) permutes with a generator seeded by
  ``seed + epoch``, and Lightning calls its ``set_epoch`` before every epoch. A run resumed from
  ``last.ckpt`` therefore sees the same batches as an unbroken one, with no sampler state to save.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from mmembed.data.augment import augmented_view
from mmembed.data.images import load_image
from mmembed.data.post import Corpus, Post, Skipped, engagement, format_skipped
from mmembed.data.sources import SourceError
from mmembed.data.stream import ShardStream, batch_caps
from mmembed.fileio import atomic_write
from mmembed.progress import QUIET, Progress

SPLITS = ("train", "val", "test")


def split_of(post_id: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """The split a post belongs to, from a hash of its id (stable across runs and corpora)."""
    digest = hashlib.sha256(post_id.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def fingerprint(posts: list[Post], *extra: Any) -> str:
    """A short hash of the posts' ids and image files (path, size, mtime) plus ``extra``."""
    h = hashlib.sha256()
    for p in posts:
        try:
            st = os.stat(p.image_path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{p.post_id}\0{p.image_path}\0{stamp}\n".encode())
    h.update(json.dumps(extra, default=str).encode())
    return h.hexdigest()[:16]


def build_image_cache(
    posts: list[Post], image_size: int, cache_dir: str | Path, progress: Progress = QUIET
) -> tuple[Path, list[int], list[Skipped]]:
    """Decode every post's image once into ``<cache_dir>/images-<fp>.npy`` (N×S×S×3 uint8).

    Returns the array's path, the indices of the posts that decoded, and the skipped ones. The
    array is written to a temporary name and renamed, so an interrupted run never leaves a
    half-written cache behind. A second call with the same posts and size reads the cache.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(posts, image_size)
    array_path = cache_dir / f"images-{fp}.npy"
    index_path = cache_dir / f"images-{fp}.json"
    if array_path.is_file() and index_path.is_file():
        meta = json.loads(index_path.read_text())
        return array_path, meta["kept"], [Skipped(**s) for s in meta["skipped"]]

    kept, skipped = [], []
    row_bytes = image_size * image_size * 3
    # Rows go to a raw scratch file as they decode, then into the .npy in chunks: memory holds
    # one image (and one chunk), never the corpus (a list of arrays and np.stack held it twice).
    with tempfile.TemporaryFile(dir=cache_dir) as raw:
        for i, post in progress.track(enumerate(posts), len(posts), "decoding images"):
            img = load_image(post.image_path, size=image_size)
            if not hasattr(img, "size"):  # an ImageError
                skipped.append(Skipped(f"{post.post_id} ({img.path})", img.reason))
                continue
            kept.append(i)
            raw.write(np.asarray(img, dtype=np.uint8).tobytes())

        def write_array(tmp: Path) -> None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                            shape=(len(kept), image_size, image_size, 3))
            raw.seek(0)
            chunk = max(1, (64 << 20) // row_bytes)
            for start in range(0, len(kept), chunk):
                n = min(chunk, len(kept) - start)
                out[start:start + n] = np.frombuffer(raw.read(n * row_bytes), np.uint8).reshape(
                    n, image_size, image_size, 3)
            out.flush()
            del out

        atomic_write(array_path, write_array)
    meta = {"kept": kept, "skipped": [s.__dict__ for s in skipped], "image_size": image_size}
    atomic_write(index_path, json.dumps(meta))
    return array_path, kept, skipped


class PostDataset(Dataset):
    """Items of one split: image (float CHW in [0, 1]), caption, engagement, account id, index.

    The image array is opened lazily (memory-mapped) in each process, so the dataset pickles
    cheaply into DataLoader workers.
    """

    def __init__(
        self,
        array_path: Path,
        rows: np.ndarray,
        posts: list[Post],
        targets: np.ndarray,
        account_ids: np.ndarray,
        indices: np.ndarray,
        view: int = 0,
    ):
        self.array_path = Path(array_path)
        self.view = int(view)  # 0: the photo itself; v ≥ 1: its augmented view v
        self.rows = rows  # row of each item in the image array
        self.captions = [p.caption for p in posts]
        self.targets = targets
        self.account_ids = account_ids
        self.indices = indices  # index of each item in the corpus
        self._images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self._images is None:
            self._images = np.load(self.array_path, mmap_mode="r")
        image = torch.from_numpy(np.array(self._images[self.rows[i]])).permute(2, 0, 1)
        image = image.float().div_(255.0)
        if self.view:
            image = augmented_view(image, self.view, int(self.indices[i]))
        return {
            "image": image,
            "caption": self.captions[i],
            "engagement": torch.tensor(self.targets[i], dtype=torch.float32),
            "account": torch.tensor(self.account_ids[i], dtype=torch.long),
            "index": torch.tensor(self.indices[i], dtype=torch.long),
        }

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_images"] = None  # never pickle the memory map
        return state


class Collate:
    """Stack tensors, keep captions as a list, and apply the tokenisation hook if set."""

    def __init__(self, tokenize: Callable[[list[str]], dict[str, torch.Tensor]] | None = None):
        self.tokenize = tokenize

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {
            key: torch.stack([it[key] for it in items])
            for key in ("image", "engagement", "account", "index") if key in items[0]
        }
        batch["caption"] = [it["caption"] for it in items]
        if self.tokenize is not None:
            batch["tokens"] = self.tokenize(batch["caption"])
        return batch


class PostDataModule(L.LightningDataModule):
    """Feeds posts from any source to Lightning.

    ``source`` is anything with ``load() -> Corpus`` (a configured source), or a Corpus.
    After :meth:`setup`, ``corpus``, ``posts`` (those whose image decoded), ``engagement``
    (log rate per post, see :func:`mmembed.data.post.engagement`), ``split`` (per post) and
    ``skipped`` are available.
    """

    def __init__(
        self,
        source: Any,
        image_size: int = 64,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        cache_dir: str = ".cache/mmembed/images",
        tokenize: Callable[[list[str]], dict[str, torch.Tensor]] | None = None,
        pin_memory: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        self.source = source
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.cache_dir = cache_dir
        self.tokenize = tokenize
        self.pin_memory = pin_memory
        self.progress: Progress = QUIET  # the app sets its own to draw a bar
        self.seed = int(seed)
        self.corpus: Corpus | None = None
        self.datasets: dict[str, PostDataset] = {}
        self.array_path: Path | None = None
        #: A short hash naming the decoded posts (the image cache's, or the shards' posts and
        #: image size): the feature cache and the bundle's manifest key on it.
        self.fingerprint: str = ""
        self.streams = bool(getattr(source, "streams", False))
        #: Whether the split loaders of a streaming source decode images. Off when the model's
        #: towers are frozen and it reads cached features by row: the shards are then read
        #: once, to compute those features, not every epoch.
        self.stream_images = True

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is not None:
            return
        corpus = self.source if isinstance(self.source, Corpus) else self.source.load()
        name = corpus.name or type(self.source).__name__
        if not corpus.posts:
            raise SourceError(
                f"the source {name} loaded no posts. {format_skipped(corpus.skipped)}\n"
                "Check it with `python -m mmembed.data <the same data overrides>`."
            )
        if self.streams:
            self._setup_posts(corpus, corpus.posts, list(corpus.skipped))
            self.fingerprint = "shards-" + fingerprint(corpus.posts, self.image_size, "shards")
            self._shard_rows = [{} for _ in self.source.urls]
            for i, (s, key) in enumerate(zip(self.source.shard_of, self.source.keys)):
                self._shard_rows[s][key] = i
            return
        array_path, kept, skipped = build_image_cache(
            corpus.posts, self.image_size, self.cache_dir, progress=self.progress
        )
        if not kept:
            raise SourceError(
                f"the source {name} loaded {len(corpus.posts)} post(s), but no image could be "
                f"decoded. {format_skipped(skipped)}"
            )
        self.array_path = array_path
        self.fingerprint = array_path.stem
        self._setup_posts(corpus, [corpus.posts[i] for i in kept],
                          list(corpus.skipped) + skipped)
        for name in SPLITS:
            idx = np.flatnonzero(self.split == name)
            self.datasets[name] = PostDataset(
                array_path,
                idx,
                [self.posts[i] for i in idx],
                self.engagement[idx],
                self.account_ids[idx],
                idx,
            )

    def _setup_posts(self, corpus: Corpus, posts: list[Post], skipped: list[Skipped]) -> None:
        """The per-post state every path shares: posts, engagement, accounts, split."""
        self.corpus = corpus
        self.skipped = skipped
        self.posts = posts
        self.engagement = engagement(self.posts)
        accounts = sorted({p.account for p in self.posts})
        self.account_index = {a: i for i, a in enumerate(accounts)}
        self.account_ids = np.array([self.account_index[p.account] for p in self.posts])
        self.split = np.array(
            [split_of(p.post_id, self.val_fraction, self.test_fraction) for p in self.posts]
        )

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def stream(self, split: str | None, shuffle: bool = False, rank: int = 0,
               world_size: int = 1) -> ShardStream:
        """The posts of ``split`` (``None``: every post) streamed from the shards by one rank
        (see :mod:`mmembed.data.stream`); under DDP every rank yields the same full batches."""
        keep = (np.ones(len(self.posts), dtype=bool) if split is None
                else self.split == split)
        dataset = ShardStream(self.source.urls, self._shard_rows, keep,
                              [p.caption for p in self.posts], self.engagement,
                              self.account_ids, self.image_size, rank=rank,
                              world_size=world_size, shuffle=shuffle, seed=self.seed,
                              images=self.stream_images)
        if world_size > 1:
            dataset.caps = self.batch_size * batch_caps(
                dataset.counts(), world_size, max(1, self.num_workers), self.batch_size)
        return dataset

    def shard_stream(self, shard: int) -> ShardStream:
        """Every post of one shard, in tar order (for writing that shard's features)."""
        return ShardStream([self.source.urls[shard]], [self._shard_rows[shard]],
                           np.ones(len(self.posts), dtype=bool), [p.caption for p in self.posts],
                           self.engagement, self.account_ids, self.image_size)

    def collate(self) -> Collate:
        return Collate(self.tokenize)

    def _stream_loader(self, split: str, shuffle: bool) -> DataLoader:
        rank, world_size = self._rank()
        dataset = self.stream(split, shuffle, rank, world_size)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            collate_fn=Collate(self.tokenize),
            drop_last=shuffle and len(dataset) > self.batch_size,
        )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if self.streams:
            return self._stream_loader(split, shuffle)
        dataset = self.datasets[split]
        sampler = self._epoch_sampler(dataset) if shuffle else None
        # Training drops the last partial batch: every rank must hold the same number of pairs
        # for the gathered contrastive loss, and a batch of one breaks batch norm.
        per_rank = len(sampler) if sampler is not None else len(dataset)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            collate_fn=Collate(self.tokenize),
            drop_last=shuffle and per_rank > self.batch_size,
        )

    def _epoch_sampler(self, dataset: Dataset) -> DistributedSampler:
        """The training order: a permutation seeded by ``seed + epoch`` (``set_epoch``), this
        rank's share of it under DDP. Lightning keeps a DistributedSampler as it is."""
        trainer = getattr(self, "trainer", None)
        replicas = int(trainer.world_size) if trainer is not None else 1
        rank = int(trainer.global_rank) if trainer is not None else 0
        return DistributedSampler(
            dataset, num_replicas=replicas, rank=rank, shuffle=True, seed=self.seed
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def all_dataloader(self, batch_size: int | None = None, view: int = 0) -> DataLoader:
        """Every decoded post, in corpus order (for embedding the whole corpus; streamed from
        the shards in shard order, each batch's ``index`` giving its rows), in batches of
        ``batch_size`` (default: the training batch size). ``view`` ≥ 1: each photo's augmented
        view of that number (:func:`mmembed.data.augment.augmented_view`) instead."""
        if self.streams and view:
            raise ValueError("augmented views (model.feature_views) are cached for an in-memory "
                             "corpus only; a sharded corpus (data=shards) needs "
                             "model.feature_views=0")
        if self.streams:
            stream = self.stream(None)
            stream.images = True
            return DataLoader(stream, batch_size=batch_size or self.batch_size,
                              num_workers=self.num_workers, collate_fn=Collate(self.tokenize))
        idx = np.arange(len(self.posts))
        dataset = PostDataset(self.array_path, idx, self.posts, self.engagement,
                              self.account_ids, idx, view=view)
        return DataLoader(
            dataset,
            batch_size=batch_size or self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=Collate(None if view else self.tokenize),  # a view needs no caption
        )
