"""The seed's recipe as a baseline (``+experiment=seed_baseline``): object tags + bag of words.

The project started from a prototype that described each post by the objects a detector found
in its photo (Mask R-CNN) and the words and hashtags of its caption, clustered those vectors
with PAM and profiled communities over the clusters. This module rebuilds that recipe offline
so that it is measured with exactly the same metrics as the learned embedding:

- "object tags" (:class:`~mmembed.models.towers.ImageNetTagTower`): the top-``k`` ImageNet-1k
  labels of the packaged EfficientNet-Lite0 classifier, as a 1000-d vector (the labels'
  probabilities, zero elsewhere), standing in for the detector's object list;
- a bag of words (:class:`~mmembed.models.towers.BagOfWordsTower`): the caption's words,
  ``#hashtags`` and ``@mentions`` as a TF-IDF vector over a vocabulary fitted on the training
  captions;
- :class:`SeedBaseline`: no learned space. A post's latent is ``[tags, words]`` (each part
  L2-normalised, the words scaled by ``text_weight``); a caption-less photo's latent is
  ``[tags, 0]``. Only the engagement head (on the tag vector) is trained, so the bundle ranks
  with a predicted engagement like every other model.

It plugs into the same ``train.py`` → bundle → ``rank.py`` / ``mmembed.evaluate`` path because
it is a :class:`~mmembed.models.joint.JointEmbedding` whose projections and autoencoder are the
identity.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmembed.models import losses
from mmembed.models.joint import JointEmbedding
from mmembed.models.towers import BagOfWordsTower

__all__ = ["SeedBaseline"]


# ------------------------------------------------------------------------------ the model
class _Identity(nn.Module):
    """The autoencoder of :class:`SeedBaseline`: the latent is the fused vector itself."""

    def encode(self, fused: Tensor) -> Tensor:
        return fused

    def decode(self, latent: Tensor) -> Tensor:
        return latent


class _Scale(nn.Module):
    """L2-normalise, then multiply by a constant weight."""

    def __init__(self, weight: float):
        super().__init__()
        self.weight = float(weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * F.normalize(x, dim=-1)


class SeedBaseline(JointEmbedding):
    """Object tags + bag of words, concatenated; only the engagement head learns.

    ``latent(post) = [normalise(tags), text_weight · normalise(tfidf)]`` and
    ``latent(photo) = [normalise(tags), 0]``. The clustering (PAM in the experiment config, as
    the seed did) runs on these vectors.
    """

    def __init__(self, image_tower: nn.Module, text_tower: BagOfWordsTower,
                 text_weight: float = 1.0, engagement_loss: str = "regression",
                 optimizer: Any = None, scheduler: Any = None,
                 feature_cache_dir: str | None = None):
        if text_tower is None:
            raise ValueError("SeedBaseline needs a text tower (the bag of words)")
        if text_weight < 0:
            raise ValueError(f"text_weight must be >= 0, got {text_weight!r}")
        super().__init__(image_tower, text_tower, freeze_towers=True, text_dropout=0.0,
                         engagement_loss=engagement_loss, optimizer=optimizer,
                         scheduler=scheduler, feature_cache_dir=feature_cache_dir)
        self.proj_image = _Scale(1.0)
        self.proj_text = _Scale(text_weight)
        self.fused_dim = self.content_dim + text_tower.out_dim
        self.autoencoder = _Identity()
        self.logit_scale.requires_grad_(False)  # no contrastive loss
        self.loss_weights = {"engagement": 1.0}

    def fuse(self, z_image: Tensor, z_text: Tensor | None) -> Tensor:
        if z_text is None:  # a photo alone: the word half is empty
            z_text = z_image.new_zeros(z_image.shape[0], self.text_tower.out_dim)
        return torch.cat([z_image, z_text], dim=-1)

    def _step(self, batch: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
        img_feats, txt_feats = self._features(batch)
        z_image = self.project_image(img_feats)
        fused = self.fuse(z_image, self.proj_text(txt_feats))
        pred = self.engagement_head(img_feats)
        target = (batch["engagement"] - self.engagement_mean) / self.engagement_std
        parts = {"engagement": losses.engagement_loss(
            pred, target, account=batch["account"], kind=self.engagement_loss_kind)}
        # z_text is left out of the outputs: the two halves live in different spaces, so there
        # is no image–text retrieval to measure.
        outputs = {"z_image": z_image, "z_text": None, "latent_full": fused,
                   "latent_image_only": self.encode(z_image), "fused": fused,
                   "engagement_pred": pred * self.engagement_std + self.engagement_mean}
        return parts, outputs

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        """No logit scale to clamp."""
