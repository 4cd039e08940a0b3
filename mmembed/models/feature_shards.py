"""Frozen-tower features of a sharded corpus: one file per shard, written by the rank that owns it.

For a streaming datamodule (``data=shards``), :func:`shard_features` replaces the single
in-memory feature tensor of :func:`mmembed.models.features.tower_features`:

- Rank ``r`` of ``W`` embeds shards ``r, r + W, ...`` (the towers run once per post over the
  whole job, not once per rank) and writes ``<cache>/features-<key>/shard-000012.safetensors``
  with the rows (post index) and the ``image`` / ``text`` features of that shard's posts.
- **Resumable**: a shard whose file exists is skipped, so a run killed half-way computes only
  the shards it had not finished. Every file is written under a temporary name unique to the
  process and host (``.shard-….tmp-<pid>-<random>``) and renamed into place
  (:func:`mmembed.fileio.atomic_write`), so ranks never collide and a reader never sees half a
  file.
- After a barrier, rank 0 gathers the shard files into one ``image.npy`` (and ``text.npy``)
  of N rows, a shard at a time (the file mapped for that shard's rows only); every rank then
  opens them (:class:`Features`). Training and the embedding pass read the rows of each batch
  from the page cache with ``pread`` (:meth:`Features.rows`), not through the memory map, so no
  process holds the corpus's features, not even as mapped file pages.

The key covers the posts (the datamodule's fingerprint) and the towers' weights, as the
single-file cache does.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from mmembed.fileio import atomic_write
from mmembed.models.predict import predict_batches
from mmembed.progress import QUIET, Progress

__all__ = ["Features", "feature_folder", "merge_features", "open_features", "shard_features",
           "write_shard_features"]

KEYS = ("image", "text")


def _rank() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def feature_folder(model, datamodule, cache_dir: str | Path | None) -> Path:
    """``<cache_dir>/features-<key>/`` for these posts and towers."""
    from mmembed.models.features import module_hash

    key = [datamodule.fingerprint, module_hash(model.image_tower)]
    if model.text_tower is not None:
        key.append(module_hash(model.text_tower))
    digest = hashlib.sha256("-".join(key).encode()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "mmembed-features"
    return root / f"features-{digest}"


def shard_file(folder: Path, shard: int) -> Path:
    return folder / f"shard-{shard:06d}.safetensors"


def write_shard_features(model, datamodule, folder: Path, rank: int = 0, world_size: int = 1,
                         progress: Progress = QUIET) -> list[int]:
    """Write the feature file of every shard of ``rank`` that has none yet; return the shards
    it computed (the others were already on disk)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = []
    shards = [s for s in range(rank, len(datamodule.source.urls), world_size)
              if not shard_file(folder, s).is_file()]
    for s in progress.track(shards, len(shards), "tower features (shards)"):
        loader = DataLoader(datamodule.shard_stream(s), batch_size=datamodule.batch_size,
                            num_workers=0, collate_fn=datamodule.collate())
        rows, parts = [], {}
        for batch, out in predict_batches(model, loader, keys=("image_features",
                                                               "text_features")):
            rows.append(torch.as_tensor(batch["index"]))
            for name in out:
                parts.setdefault(name.removesuffix("_features"), []).append(out[name])
        tensors = {k: torch.cat(v).contiguous() for k, v in parts.items()}
        tensors["rows"] = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)
        atomic_write(shard_file(folder, s), lambda tmp, t=tensors: save_file(t, str(tmp)))
        done.append(s)
    return done


def merge_features(folder: Path, num_shards: int, num_posts: int) -> None:
    """Gather the shard files into ``image.npy`` / ``text.npy`` (N rows; a post no shard file
    holds, one whose image failed to decode, keeps zeros), one shard in memory at a time."""
    meta_path = folder / "merged.json"
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("posts") == num_posts:
        return
    shapes: dict[str, tuple[int, int]] = {}
    tmps: dict[str, Path] = {}
    try:
        for s in range(num_shards):
            part = load_file(shard_file(folder, s))
            rows = part.pop("rows").numpy()
            for name, values in part.items():
                if name not in tmps:
                    tmps[name] = folder / f".{name}.npy.tmp-{np.random.randint(1 << 30)}.npy"
                    shapes[name] = (num_posts, values.shape[1])
                    np.lib.format.open_memmap(tmps[name], mode="w+", dtype=np.float32,
                                              shape=shapes[name]).flush()
                # mapped for this shard only: the pages written are not kept resident
                out = np.load(tmps[name], mmap_mode="r+")
                out[rows] = values.numpy()
                out.flush()
                del out
            del part
        for name in tmps:
            tmps[name].replace(folder / f"{name}.npy")
        atomic_write(meta_path, json.dumps({"posts": num_posts, "keys": sorted(tmps)}))
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)


class Features(dict):
    """The merged features by key (``image``, ``text``): memory-mapped tensors, copy-on-write
    (writable views, file untouched), and :meth:`rows`, which reads rows from the files without
    mapping them, so that a process reading every row (an epoch, the embedding pass) keeps
    only what it asked for resident, not the whole file."""

    def __init__(self, folder: Path, keys: list[str]):
        super().__init__()
        self._files: dict[str, tuple[Path, int, int]] = {}
        for key in keys:
            path = folder / f"{key}.npy"
            array = np.load(path, mmap_mode="c")
            self[key] = torch.from_numpy(array)
            self._files[key] = (path, int(array.offset), int(array.shape[1]))

    def rows(self, key: str, index) -> torch.Tensor:
        """Rows ``index`` (ints, any order, repeats allowed) of feature ``key``, float32,
        read with one ``pread`` per run of consecutive rows."""
        path, offset, width = self._files[key]
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        out = np.empty((len(index), width), dtype=np.float32)
        if len(index) == 0:
            return torch.from_numpy(out)
        order = np.argsort(index, kind="stable")
        sorted_rows = index[order]
        if sorted_rows[0] < 0 or sorted_rows[-1] >= len(self[key]):
            raise IndexError(f"feature rows out of range 0..{len(self[key]) - 1}")
        unique, first = np.unique(sorted_rows, return_index=True)
        block = np.empty((len(unique), width), dtype=np.float32)
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        row_bytes = 4 * width
        with open(path, "rb", buffering=0) as f:
            for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(unique)]):
                view = memoryview(block[start:stop]).cast("B")
                got = os.preadv(f.fileno(), [view], offset + int(unique[start]) * row_bytes)
                if got != view.nbytes:
                    raise OSError(f"{path}: short read of feature rows")
        out[order] = block[np.searchsorted(unique, sorted_rows)]
        return torch.from_numpy(out)


def open_features(folder: Path) -> Features:
    """The merged features (:class:`Features`: memory-mapped tensors, and :meth:`~Features.rows`
    to read rows without mapping the files)."""
    return Features(folder, json.loads((folder / "merged.json").read_text())["keys"])


def shard_features(model, datamodule, cache_dir: str | Path | None = None,
                   progress: Progress = QUIET) -> Features:
    """Every post's tower features for a streaming datamodule (see the module docstring)."""
    folder = feature_folder(model, datamodule, cache_dir)
    rank, world_size = _rank()
    write_shard_features(model, datamodule, folder, rank, world_size, progress)
    _barrier()
    if rank == 0:
        merge_features(folder, len(datamodule.source.urls), len(datamodule.posts))
    _barrier()
    return open_features(folder)
