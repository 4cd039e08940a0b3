"""Frozen-tower features, computed once per post and cached on disk (LiT-style training).

With frozen towers, every epoch would otherwise run the same expensive forward passes again.
The cache key covers the decoded-image cache (hence the posts and image size) and a hash of the
tower's weights, so a different tower, checkpoint or dataset never reads stale features.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mmembed.fileio import atomic_write
from mmembed.models.predict import predict
from mmembed.models.towers.runtime import BATCH_SIZE
from mmembed.progress import QUIET, Progress


def module_hash(module: torch.nn.Module) -> str:
    """A short hash of a module's class, parameters and buffers (and its ``fingerprint()``, if it
    has one: state that is not a tensor, such as a fitted vocabulary), plus the options that
    change its output without changing its weights (``input_size``, ``photo_stats``)."""
    h = hashlib.sha256(type(module).__qualname__.encode())
    h.update(str(getattr(module, "input_size", "")).encode())
    if getattr(module, "photo_stats", False):
        # Only when on, so caches written before the option existed stay valid.
        h.update(b"photo_stats")
    if callable(getattr(module, "fingerprint", None)):
        h.update(module.fingerprint().encode())
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def prefetched(iterable: Iterable, depth: int = 2) -> Iterator:
    """The items of ``iterable``, read by a background thread up to ``depth`` ahead.

    Reading and collating the next batch (image conversion, tokenising captions) then runs
    while the towers work on this one: numpy, torch and ONNX Runtime release the GIL in their
    kernels. An exception while reading is raised here; stopping early cancels what was not
    read yet.
    """
    items, done = iter(iterable), object()
    pool = ThreadPoolExecutor(1, thread_name_prefix="mmembed-prefetch")
    try:
        ahead = deque(pool.submit(next, items, done) for _ in range(depth))
        while (item := ahead.popleft().result()) is not done:
            ahead.append(pool.submit(next, items, done))
            yield item
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def compute_features(model, loader, progress: Progress = QUIET, backend: str | None = None,
                     cache_dir: str | None = None, label: str = "tower features",
                     rows: int | None = None) -> dict[str, torch.Tensor]:
    """The towers' outputs over ``loader`` (``predict_step``), rows by ``batch["index"]``
    (``rows``: how many the loader yields, indices ``0 … rows − 1``, so that each batch is
    written into outputs allocated once; see :func:`~mmembed.models.predict.predict`).

    The loader is read one batch ahead in a thread (:func:`prefetched`) and a frozen image
    tower runs through :meth:`~mmembed.models.joint.JointEmbedding.fast_towers` (``backend``,
    default the model's ``tower_backend``; an ONNX export is kept in ``cache_dir``)."""
    batches = progress.track(prefetched(loader), len(loader), label)
    with model.fast_towers(backend, cache_dir):
        out = predict(model, batches, keys=("image_features", "text_features"), rows=rows)
    features = {"image": out["image_features"]}
    if "text_features" in out:
        features["text"] = out["text_features"]
    return features


def tower_features(model, datamodule, cache_dir: str | None = None,
                   progress: Progress = QUIET, views: int = 0) -> dict[str, torch.Tensor]:
    """Features of every post for the model's towers, from the cache when it has them (a
    streaming datamodule: per-shard files, memory-mapped, see :mod:`.feature_shards`).

    ``views`` ≥ 1 adds ``"image_view1"`` … ``"image_view{views}"``: the image tower's features
    of each photo's augmented views (:mod:`mmembed.data.augment`), each cached in its own file
    beside the photos' own, so more views reuse the ones already computed."""
    if getattr(datamodule, "streams", False):
        if views:
            datamodule.all_dataloader(view=views)  # refuses, naming the option
        from mmembed.models.feature_shards import shard_features

        return shard_features(model, datamodule, cache_dir, progress)
    digest = None
    if cache_dir:
        key = [datamodule.fingerprint, module_hash(model.image_tower)]
        if model.text_tower is not None:
            key.append(module_hash(model.text_tower))
        digest = hashlib.sha256("-".join(key).encode()).hexdigest()[:16]
    features = _cached_features(model, datamodule, cache_dir, digest, 0, progress)
    for view in range(1, views + 1):
        features[f"image_view{view}"] = _cached_features(
            model, datamodule, cache_dir, digest, view, progress)["image"]
    return features


def _cached_features(model, datamodule, cache_dir: str | None, digest: str | None, view: int,
                     progress: Progress) -> dict[str, torch.Tensor]:
    """The towers' features of every photo (``view`` 0) or of its augmented view ``view``
    (image features only), read from or written to the cache."""
    path = None
    if digest is not None:
        name = f"features-{digest}" + (f"-view{view}" if view else "") + ".safetensors"
        path = Path(cache_dir) / name
        if path.is_file():
            return load_file(path)
    device = getattr(model, "device", torch.device("cpu"))
    loader = datamodule.all_dataloader(batch_size=BATCH_SIZE.get(device.type), view=view)
    what = f"tower features, view {view}" if view else "tower features"
    # a view's loader carries no captions (``all_dataloader``): image features only
    features = compute_features(model, loader, progress, cache_dir=cache_dir, label=what,
                                rows=len(loader.dataset))
    if path is not None:
        atomic_write(path, lambda tmp: save_file(features, str(tmp)))
    return features
