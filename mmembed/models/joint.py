"""JointEmbedding: the LightningModule that learns the joint image–text space.

Per post it computes

- ``z_image = proj_image(image_tower(image))`` (content features only: photo statistics the
  tower may append go to the engagement head) and ``z_text = proj_text(text_tower(caption))``,
  both L2-normalised in a shared space of ``embed_dim`` (CLIP-style, contrastive loss);
- the fused embedding ``[z_image, z_text]`` and its autoencoder latent, the space that is
  clustered. Text is dropped at random in training (modality dropout) and a consistency term
  pulls ``encode([z_image, 0])`` onto ``encode([z_image, z_text])``, so a new photo without a
  caption lands where its full post would;
- a predicted log engagement rate from the image tower's features.

The training loss is::

    L = w_c · InfoNCE(z_image, z_text)            (skipped without a text tower)
      + w_r · ‖decode(encode(dropout(fused))) − fused‖²
      + w_k · ‖encode([z_image, 0]) − sg(encode(fused))‖² / d
      + w_e · engagement_loss(ŷ, y)

(the consistency term is a mean over the latent's d dimensions too, not a sum like the
reconstruction's).

With ``freeze_towers`` the towers' features are computed once per post and cached (LiT-style), so
a CPU epoch only trains the heads.

``proj_dropout`` regularises the projection heads. On a small corpus they can match each
training image to its own caption by memorising both (the training InfoNCE falls towards 0
while the validation InfoNCE rises): whatever of a caption is not visible in its photo is
learnt by heart. That spreads each topic's posts apart in the embedding and the latent, so the
content clusters blur and the image-only path generalises worse. Dropout on the heads' hidden
layer (0.5 rather than the default 0.1) delays it by several epochs; the checkpoint is chosen
on the validation loss either way.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmembed.models import losses
from mmembed.models.heads import (
    ContrastiveLatent,
    EngagementHead,
    PostAutoencoder,
    ProjectionHead,
    RidgeEngagementHead,
)
from mmembed.models.towers import freeze
from mmembed.stats import spearman

log = logging.getLogger(__name__)


def _recall_at_k(queries: torch.Tensor, candidates: torch.Tensor, ks=(1, 5, 10),
                 chunk: int = 1024) -> dict[int, float]:
    """Recall@k of ``queries`` [M, D] against ``candidates`` [M, D] when row i's match is
    candidate i, computed ``chunk`` query rows at a time (``chunk × M`` similarities)."""
    hits = {k: 0 for k in ks}
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk]
        sim = q @ candidates.T
        rows = torch.arange(len(q))
        truth = sim[rows, rows + start].unsqueeze(1)  # from the same product: ties stay ties
        ranks = (sim > truth).sum(dim=1)  # how many candidates beat the truth
        for k in ks:
            hits[k] += int((ranks < k).sum())
    return {k: hits[k] / max(len(queries), 1) for k in ks}


def _sample_key(index: torch.Tensor) -> torch.Tensor:
    """A fixed pseudo-random order of post indices (Knuth's multiplicative hash, a bijection
    on 32 bits): the validation posts with the smallest keys are a uniform sample that does not
    depend on the batch size, the number of ranks or the order batches arrive in."""
    return (index.long() * 2654435761) & 0xFFFFFFFF


HeadFactory = Callable[..., nn.Module]


def _trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def _head(head: nn.Module | HeadFactory, *dims: int) -> nn.Module:
    """A head module: ``head`` itself, or what the factory builds for these input sizes."""
    return head if isinstance(head, nn.Module) else head(*dims)


class JointEmbedding(L.LightningModule):
    """Towers, injected heads, and the losses that train them (see the module docstring).

    ``proj_image``, ``proj_text``, ``autoencoder`` and ``engagement_head`` are modules or
    factories called with their input size (``proj_*(tower dim)``, ``autoencoder(fused
    dim)``, ``engagement_head(image tower dim)``); left out, they are the default
    :class:`~mmembed.models.heads.ProjectionHead` of ``embed_dim`` with ``proj_hidden_dim``
    and ``proj_dropout``, a :class:`~mmembed.models.heads.PostAutoencoder` of ``latent_dim``
    and an :class:`~mmembed.models.heads.EngagementHead`. A loss term whose weight is 0 is not
    computed (the seed baseline trains its engagement head only).

    Validation recall@k (image→text and text→image) is measured among a fixed pseudo-random
    sample of at most ``val_retrieval_sample`` validation posts, gathered from every rank, so
    it is global under DDP and needs ``M × D`` memory rather than ``N_val × N_val``.
    """

    def __init__(
        self,
        image_tower: nn.Module,
        text_tower: nn.Module | None = None,
        proj_image: nn.Module | HeadFactory | None = None,
        proj_text: nn.Module | HeadFactory | None = None,
        autoencoder: nn.Module | HeadFactory | None = None,
        engagement_head: nn.Module | HeadFactory | None = None,
        embed_dim: int = 256,
        latent_dim: int = 32,
        proj_hidden_dim: int | None = 512,
        proj_dropout: float = 0.1,
        freeze_towers: bool = True,
        text_dropout: float = 0.5,
        loss_weights: dict[str, float] | None = None,
        engagement_loss: str = "regression",
        optimizer: Any = None,
        scheduler: Any = None,
        feature_cache_dir: str | None = None,
        val_retrieval_sample: int = 1000,
        tower_backend: str = "auto",
        feature_views: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["image_tower", "text_tower", "proj_image", "proj_text",
                                          "autoencoder", "engagement_head", "optimizer",
                                          "scheduler"])
        self.image_tower = image_tower
        self.text_tower = text_tower
        self.freeze_towers = freeze_towers
        if freeze_towers:
            for tower in (image_tower, text_tower):
                if tower is not None:
                    freeze(tower)  # stays in eval mode (batch-norm statistics) under .train()
        # With photo_stats the tower appends photo-quality statistics to its features: they
        # inform the engagement head only, so the content embedding stays about content.
        self.content_dim = int(getattr(image_tower, "feature_dim", image_tower.out_dim))
        projection = functools.partial(ProjectionHead, out_dim=embed_dim,
                                       hidden_dim=proj_hidden_dim, dropout=proj_dropout)
        self.proj_image = _head(proj_image or projection, self.content_dim)
        self.proj_text = (_head(proj_text or projection, text_tower.out_dim)
                          if text_tower is not None else None)
        self.text_dim = int(self.proj_text.out_dim) if self.proj_text is not None else 0
        self.fused_dim = int(self.proj_image.out_dim) + self.text_dim
        self.autoencoder = _head(
            autoencoder or functools.partial(PostAutoencoder, latent_dim=latent_dim),
            self.fused_dim)
        if isinstance(self.autoencoder, ContrastiveLatent) and self.proj_text is None:
            raise ValueError("the contrastive latent (model/autoencoder=contrastive) is the mean "
                             "of the image and text embeddings and needs a text tower; without "
                             "one use model/autoencoder=post model.loss_weights.reconstruction=1")
        self.engagement_head = _head(engagement_head or EngagementHead, image_tower.out_dim)
        if isinstance(self.engagement_head, RidgeEngagementHead) and not freeze_towers:
            raise ValueError("the ridge engagement head is fitted once on the towers' features "
                             "before training, so it needs frozen towers "
                             "(model.freeze_towers=true); with towers that train use "
                             "model/engagement_head=mlp")
        self.logit_scale = losses.learnable_logit_scale()
        self.text_dropout = text_dropout
        self.loss_weights = {"contrastive": 1.0, "reconstruction": 1.0, "consistency": 1.0,
                             "engagement": 1.0, **(loss_weights or {})}
        if not self.loss_weights["contrastive"]:
            self.logit_scale.requires_grad_(False)  # no contrastive loss to learn it from
        self.engagement_loss_kind = engagement_loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.feature_cache_dir = feature_cache_dir
        if val_retrieval_sample < 1:
            raise ValueError(f"val_retrieval_sample must be at least 1; got {val_retrieval_sample}")
        self.val_retrieval_sample = int(val_retrieval_sample)
        self.tower_backend = tower_backend
        if feature_views < 0 or (feature_views and not freeze_towers):
            raise ValueError(f"model.feature_views must be ≥ 0, and 0 when the towers train "
                             f"(model.freeze_towers=false); got {feature_views}")
        self.feature_views = int(feature_views)
        self.contrastive = losses.ContrastiveLoss()
        # Standardisation of the engagement target, set from the training split in on_fit_start.
        self.register_buffer("engagement_mean", torch.zeros(()))
        self.register_buffer("engagement_std", torch.ones(()))
        self._cached: dict[str, torch.Tensor] = {}
        self._fast_image_tower = None  # set inside fast_towers()
        self._val_outputs: list[dict[str, torch.Tensor]] = []
        self._val_sample: dict[str, torch.Tensor] = {}

    # ----------------------------------------------------------------- embedding paths
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        if self.freeze_towers:
            if self._fast_image_tower is not None:
                return self._fast_image_tower(images)
            with torch.no_grad():
                return self.image_tower(images)
        return self.image_tower(images)

    @contextlib.contextmanager
    def fast_towers(self, backend: str | None = None, cache_dir: str | None = None):
        """Within this context a frozen image tower runs through
        :class:`~mmembed.models.towers.runtime.FastImageTower` (ONNX Runtime or a
        ``channels_last`` copy, on a GPU in bfloat16; ``backend`` (default
        ``tower_backend``), ``cache_dir``: see there). Towers that train are left as they
        are. Yields the fast tower (or None)."""
        backend = backend or self.tower_backend
        if not self.freeze_towers or backend == "eager" or self._fast_image_tower is not None:
            yield self._fast_image_tower
            return
        from mmembed.models.towers.runtime import FastImageTower

        self._fast_image_tower = FastImageTower(self.image_tower, backend, cache_dir)
        try:
            yield self._fast_image_tower
        finally:
            self._fast_image_tower = None

    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.freeze_towers:
            with torch.no_grad():
                return self.text_tower(tokens)
        return self.text_tower(tokens)

    def fuse(self, z_image: torch.Tensor, z_text: torch.Tensor | None) -> torch.Tensor:
        """``[z_image, z_text]``; a missing caption is a zero text half."""
        if self.proj_text is None:
            return z_image
        if z_text is None:
            z_text = z_image.new_zeros(*z_image.shape[:-1], self.text_dim)
        return torch.cat([z_image, z_text], dim=-1)

    def encode(self, z_image: torch.Tensor, z_text: torch.Tensor | None = None) -> torch.Tensor:
        """The clustered latent of a post (or of an image alone when ``z_text`` is None)."""
        return self.autoencoder.encode(self.fuse(z_image, z_text))

    @property
    def image_latent_is_z_image(self) -> bool:
        """Whether a photo's latent is its ``z_image`` itself: the contrastive latent
        (``normalize(z_image + w · 0)``) over an image projection that is already unit-norm.
        The build then keeps one array for both instead of two equal ones."""
        return (isinstance(self.autoencoder, ContrastiveLatent)
                and isinstance(self.proj_image, ProjectionHead))

    def project_image(self, image_features: torch.Tensor) -> torch.Tensor:
        """``z_image`` from the image tower's output (its content features; any appended photo
        statistics are left to the engagement head)."""
        return self.proj_image(image_features[..., :self.content_dim])

    def predict_engagement(self, image_features: torch.Tensor) -> torch.Tensor:
        """Predicted log engagement rate, in the units of :func:`mmembed.data.engagement`."""
        return self.engagement_head(image_features) * self.engagement_std + self.engagement_mean

    @torch.no_grad()
    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0,
                     dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        """Every vector the build and ``rank.py`` read for a batch of posts or photos.

        The batch holds ``image`` (pixels; uint8 or float) or precomputed ``image_features``,
        and optionally ``tokens`` or ``text_features``. Returns ``image_features`` (the tower's
        output, photo statistics included), ``z_image``, ``latent_image`` (the latent of the
        image alone, what a new photo gets) and ``engagement`` (predicted log rate); with
        text also ``text_features``, ``z_text``, ``fused`` and ``latent`` (the full post's).
        """
        img_feats, txt_feats = self._features(batch)
        z_image = self.project_image(img_feats)
        out = {"image_features": img_feats, "z_image": z_image,
               "latent_image": self.encode(z_image),
               "engagement": self.predict_engagement(img_feats)}
        if txt_feats is not None:
            z_text = self.proj_text(txt_feats)
            fused = self.fuse(z_image, z_text)
            out.update(text_features=txt_feats, z_text=z_text, fused=fused,
                       latent=self.autoencoder.encode(fused))
        return out

    # ----------------------------------------------------------------- frozen-feature cache
    def setup(self, stage: str) -> None:
        # Every stage (fit, validate, test) under DDP must gather features across ranks.
        self.contrastive = losses.ContrastiveLoss.from_process_group()

    def on_fit_start(self) -> None:
        self.prepare(self.trainer.datamodule)

    def prepare(self, datamodule) -> None:
        """Before training: standardise the engagement target on the training split and, with
        frozen towers, load (or compute once) every post's tower features."""
        train_idx = np.flatnonzero(datamodule.split == "train")
        target = torch.as_tensor(datamodule.engagement[train_idx])
        self.engagement_mean.fill_(float(target.mean()))
        self.engagement_std.fill_(float(target.std().clamp_min(1e-3)))
        if self.freeze_towers and not self._cached:
            from mmembed.models.features import tower_features
            from mmembed.progress import QUIET

            self._cached = tower_features(self, datamodule, cache_dir=self.feature_cache_dir,
                                          progress=getattr(datamodule, "progress", QUIET),
                                          views=self.feature_views)
        if isinstance(self.engagement_head, RidgeEngagementHead):  # frozen towers: cached
            # fitted in closed form on the training posts' cached features, before epoch 0
            pick = self.engagement_head.sample(torch.arange(len(train_idx)))
            fit = self.engagement_head.fit(
                self._cached_rows("image", torch.as_tensor(train_idx)[pick]),
                (target[pick] - self.engagement_mean) / self.engagement_std)
            log.info("ridge engagement head: penalty %.3g, fitted on %d training posts",
                     fit["alpha"], fit["rows"])

    def _cached_rows(self, key: str, index: torch.Tensor) -> torch.Tensor:
        """Rows ``index`` of the cached features ``key`` (a sharded corpus's are read from
        their files, not through the memory map)."""
        rows = getattr(self._cached, "rows", None)
        return rows(key, index) if rows is not None else self._cached[key][index]

    def _features(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tower features of a batch: given in it, from the frozen-feature cache (by post
        index), or computed by the towers."""
        if "image_features" in batch:
            img = batch["image_features"].to(self.device)
            txt = batch.get("text_features")
            return img, (txt.to(self.device) if txt is not None else None)
        if self._cached:
            idx = batch["index"].cpu()
            img = self._cached_rows("image", idx).to(self.device)
            txt = (self._cached_rows("text", idx).to(self.device) if "text" in self._cached
                   else None)
            return img, txt
        img = self.image_features(batch["image"].to(self.device))
        txt = (self.text_features({k: v.to(self.device) for k, v in batch["tokens"].items()})
               if self.text_tower is not None and "tokens" in batch else None)
        return img, txt

    def _viewed(self, batch: dict[str, Any], image_features: torch.Tensor) -> torch.Tensor:
        """In training with ``feature_views`` V: each post's features replaced by those of one
        of its V augmented views, or kept, each of the V + 1 equally likely. Otherwise (and for
        the engagement head, which reads colour statistics a view would change) as given."""
        views = self.feature_views if self.training and self._cached else 0
        if not views or f"image_view{views}" not in self._cached:
            return image_features
        idx = batch["index"].cpu()
        pick = torch.randint(0, views + 1, (len(idx),))
        out = image_features.clone()
        for view in range(1, views + 1):
            chosen = pick == view
            if chosen.any():
                out[chosen.to(out.device)] = self._cached_rows(f"image_view{view}",
                                                               idx[chosen]).to(out)
        return out

    # ----------------------------------------------------------------- training
    def _step(self, batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The weighted loss terms (those with weight 0 are skipped) and the batch's vectors."""
        w = self.loss_weights
        img_feats, txt_feats = self._features(batch)
        z_image = self.project_image(self._viewed(batch, img_feats))
        z_text = self.proj_text(txt_feats) if self.proj_text is not None else None
        fused = self.fuse(z_image, z_text)
        parts: dict[str, torch.Tensor] = {}
        if z_text is not None and w["contrastive"]:
            parts["contrastive"] = self.contrastive(z_image, z_text, self.logit_scale)
        latent_full = self.autoencoder.encode(fused)
        if w["reconstruction"] and _trainable(self.autoencoder):
            dropped = (losses.modality_dropout(z_image, z_text, self.text_dropout)[0]
                       if z_text is not None else fused)
            parts["reconstruction"] = losses.reconstruction_loss(
                self.autoencoder.decode(self.autoencoder.encode(dropped)), fused.detach())
        latent_image_only = self.encode(z_image) if z_text is not None else latent_full
        if z_text is not None and w["consistency"]:
            parts["consistency"] = F.mse_loss(latent_image_only, latent_full.detach())
        pred = self.engagement_head(img_feats)
        if w["engagement"]:
            target = (batch["engagement"] - self.engagement_mean) / self.engagement_std
            parts["engagement"] = losses.engagement_loss(
                pred, target, account=batch["account"], kind=self.engagement_loss_kind)
        # Image–text retrieval is measured only where both live in one contrastive space.
        outputs = {"z_image": z_image, "z_text": z_text if w["contrastive"] else None,
                   "latent_full": latent_full, "latent_image_only": latent_image_only,
                   "fused": fused,
                   "engagement_pred": pred * self.engagement_std + self.engagement_mean}
        return parts, outputs

    def _total(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.loss_weights[name] * value for name, value in parts.items())

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        parts, _ = self._step(batch)
        loss = self._total(parts)
        if not torch.isfinite(loss):
            bad = {k: float(v.detach()) for k, v in parts.items()}
            raise FloatingPointError(
                f"training loss became {float(loss)} at step {self.global_step} "
                f"(epoch {self.current_epoch}, batch {batch_idx}); loss terms: {bad}. "
                "Lower the learning rate or check the input data."
            )
        batch_size = len(batch["index"])
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=batch_size)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log("train/logit_scale", self.logit_scale.exp(), batch_size=batch_size)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        losses.clamp_logit_scale_(self.logit_scale)

    # ----------------------------------------------------------------- validation
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        parts, out = self._step(batch)
        batch_size = len(batch["index"])
        for name, value in parts.items():
            self.log(f"val/{name}", value, batch_size=batch_size, sync_dist=True)
        self.log("val/loss", self._total(parts), batch_size=batch_size, sync_dist=True)
        if _trainable(self.autoencoder):  # a latent with nothing to learn reconstructs nothing
            recon = losses.reconstruction_loss(
                self.autoencoder.decode(out["latent_full"]), out["fused"])
            self.log("val/reconstruction_error", recon, batch_size=batch_size, sync_dist=True)
        index = batch["index"].to(self.device)
        # Per post, kept for every validation post: three numbers each (linear, small).
        self._val_outputs.append({
            "index": index,
            "image_only_cosine": F.cosine_similarity(
                out["latent_image_only"].float(), out["latent_full"].float(), dim=-1),
            "engagement_pred": out["engagement_pred"].detach().float(),
            "engagement": batch["engagement"].to(self.device).float()})
        if out["z_text"] is not None:
            self._keep_retrieval_sample(index, out["z_image"], out["z_text"])

    def _keep_retrieval_sample(self, index: torch.Tensor, z_image: torch.Tensor,
                               z_text: torch.Tensor) -> None:
        """Keep, of the posts seen so far, the ``val_retrieval_sample`` with the smallest
        :func:`_sample_key`: memory stays ``M × D`` whatever the validation split's size."""
        new = {"index": index, "z_image": z_image.detach().float(),
               "z_text": z_text.detach().float()}
        kept = self._val_sample
        if kept:
            new = {k: torch.cat([kept[k], v]) for k, v in new.items()}
        limit = self.val_retrieval_sample
        if len(new["index"]) > limit:
            order = torch.topk(_sample_key(new["index"]), limit, largest=False).indices
            new = {k: v[order] for k, v in new.items()}
        self._val_sample = new

    def _gather(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every rank's rows of ``tensors`` (one ``index`` row per post), on the CPU, without
        the duplicates a DistributedSampler pads a rank's share with; rank order otherwise."""
        if self.trainer.world_size > 1:
            n = torch.tensor([len(tensors["index"])], device=self.device)
            sizes = self.all_gather(n).reshape(-1).tolist()
            width = max(sizes)
            padded = {k: torch.cat([v, v.new_zeros((width - len(v), *v.shape[1:]))])
                      for k, v in tensors.items()}
            gathered = self.all_gather(padded)  # [world_size, width, ...]
            tensors = {k: torch.cat([v[r, :size] for r, size in enumerate(sizes)])
                       for k, v in gathered.items()}
        tensors = {k: v.cpu() for k, v in tensors.items()}
        order = torch.argsort(tensors["index"], stable=True)
        index = tensors["index"][order]
        first = torch.ones(len(index), dtype=torch.bool)
        first[1:] = index[1:] != index[:-1]
        return {k: v[order][first] for k, v in tensors.items()}

    def on_validation_epoch_end(self) -> None:
        """Validation metrics over the whole split, global under DDP (rows gathered from
        every rank). Retrieval recall@k is measured among a fixed sample of at most
        ``val_retrieval_sample`` posts (the same posts whatever the number of ranks), in
        chunks: never an ``N_val × N_val`` matrix."""
        if not self._val_outputs:
            return
        per_post = self._gather({k: torch.cat([o[k] for o in self._val_outputs])
                                 for k in self._val_outputs[0]})
        self._val_outputs.clear()
        metrics: dict[str, float] = {}
        if self._val_sample:
            sample = self._gather(self._val_sample)
            self._val_sample = {}
            limit = self.val_retrieval_sample
            order = torch.argsort(_sample_key(sample["index"]))[:limit]
            z_image, z_text = sample["z_image"][order], sample["z_text"][order]
            for direction, (queries, candidates) in (("i2t", (z_image, z_text)),
                                                     ("t2i", (z_text, z_image))):
                for k, value in _recall_at_k(queries, candidates).items():
                    metrics[f"val/recall@{k}_{direction}"] = value
        metrics["val/image_only_cosine"] = per_post["image_only_cosine"].mean().item()
        metrics["val/engagement_src"] = spearman(
            per_post["engagement_pred"].numpy(), per_post["engagement"].numpy())
        # Every rank holds the same gathered figures: the mean over ranks changes nothing.
        self.log_dict(metrics, sync_dist=True)

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep a from-scratch text tower's fitted vocabulary (``tokenizer_json``, a string, so
        the checkpoint still loads with ``weights_only``). Its embedding rows are tied to token
        ids, and fitting again on resume need not give the same ids: Hugging Face tokenizers'
        trainers break ties in hash-map order (huggingface/tokenizers#1794)."""
        tower = self.text_tower
        if tower is not None and tower.fits_vocabulary:
            checkpoint["tokenizer_json"] = tower.tokenizer_json()

    # ----------------------------------------------------------------- optimisation
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = (self.optimizer_factory(params=params) if self.optimizer_factory
                     else torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4))
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler,
                                                          "interval": "epoch"}}
