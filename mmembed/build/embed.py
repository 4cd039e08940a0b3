"""Every post's vectors for the bundle: tower features (cached), then the heads.

The towers run once per post (:func:`mmembed.models.features.tower_features`, cached on disk
with frozen towers); the heads then run over those features through the model's
``predict_step`` (:func:`mmembed.models.predict.predict`), so the bundle's vectors come from
the same code as a new photo's in ``rank.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmembed.models.features import tower_features
from mmembed.models.predict import predict
from mmembed.progress import QUIET, Progress

__all__ = ["Embeddings", "Rows", "embed_posts"]


class Rows:
    """Rows ``rows`` of a matrix of width ``dim``, read only when sliced (``read(index)`` gives
    those rows as an array): what :meth:`mmembed.search.index.PostIndex.build` indexes a block
    at a time, without a copy of every row first."""

    ndim = 2

    def __init__(self, read: Callable[[np.ndarray], np.ndarray], rows, dim: int):
        self.read, self.rows = read, np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows), int(dim))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key) -> np.ndarray:
        return np.asarray(self.read(self.rows[key]), dtype=np.float32)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self[:] if dtype is None else self[:].astype(dtype)


@dataclass
class Embeddings:
    """Every post's vectors, rows in the datamodule's post order."""

    z_image: np.ndarray          # [N, D] image embedding (the FAISS index holds these)
    latent: np.ndarray           # [N, d] latent of the full post (image + caption)
    latent_image: np.ndarray     # [N, d] latent of the image alone
    engagement_pred: np.ndarray  # [N] predicted log engagement rate
    fused: np.ndarray | None     # [N, F] fused input of the autoencoder (DEC refines on
    #                              it; None unless embed_posts(fused=True))
    features: np.ndarray         # [N, C] the image tower's content features
    #: reads rows of ``features`` (from the feature files, for a sharded corpus)
    read_features: Callable[[np.ndarray], np.ndarray] | None = None

    def feature_rows(self, rows) -> Rows:
        """Rows ``rows`` of ``features``, read when sliced (:class:`Rows`)."""
        read = self.read_features or (lambda index: self.features[index])
        return Rows(read, rows, self.features.shape[1])


class _Features(Dataset):
    """Batches of cached features, one item a batch of rows (a sharded corpus's features are
    read from their files, :meth:`~mmembed.models.feature_shards.Features.rows`, so the
    embedding pass keeps no more of them resident than a batch)."""

    def __init__(self, features: dict[str, torch.Tensor], batch_size: int):
        self.features = features
        self.rows = getattr(features, "rows", lambda key, i: features[key][i])
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.features["image"]) // self.batch_size)

    def __getitem__(self, b: int) -> dict[str, torch.Tensor]:
        index = torch.arange(b * self.batch_size,
                             min((b + 1) * self.batch_size, len(self.features["image"])))
        item = {"image_features": self.rows("image", index), "index": index}
        if "text" in self.features:
            item["text_features"] = self.rows("text", index)
        return item


def embed_posts(model, datamodule, cache_dir: str | None = None, batch_size: int = 512,
                progress: Progress = QUIET, fused: bool = False) -> Embeddings:
    """Embed every post of ``datamodule`` (see the module docstring); ``fused``: keep the
    autoencoder's fused inputs too (DEC refines on them; else ``Embeddings.fused`` is None)."""
    feats = tower_features(model, datamodule, cache_dir=cache_dir, progress=progress)
    loader = DataLoader(_Features(feats, batch_size), batch_size=None, shuffle=False)
    # The tower features are not predicted again: their rows are ``feats`` (memory-mapped for a
    # streaming corpus), and a second copy of them would double the build's largest array.
    # Where a photo's latent is its z_image (the default contrastive latent), one array is both.
    same = bool(getattr(model, "image_latent_is_z_image", False))
    keys = (("z_image", "latent", "engagement") + (() if same else ("latent_image",))
            + (("fused",) if fused else ()))
    out = predict(model, progress.track(loader, len(loader), "embedding posts"), keys=keys,
                  rows=len(feats["image"]))
    if same:
        out["latent_image"] = out["z_image"]
    latent = out["latent"] if "latent" in out else out["latent_image"]
    content, read_features = model.content_dim, None
    if hasattr(feats, "rows"):  # read from the files, the memory map left untouched
        def read_features(index: np.ndarray) -> np.ndarray:
            return feats.rows("image", index)[:, :content].numpy()
    fused_rows = (out["fused"] if "fused" in out else out["z_image"]).numpy() if fused else None
    z_image = out["z_image"].numpy()
    return Embeddings(
        z_image=z_image, latent=latent.numpy(),
        latent_image=z_image if same else out["latent_image"].numpy(),
        engagement_pred=out["engagement"].numpy(),
        fused=fused_rows,
        features=feats["image"][:, :model.content_dim].numpy(),
        read_features=read_features)
