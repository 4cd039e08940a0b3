"""The seed's recipe as a baseline (``+experiment=seed_baseline``): object tags + bag of words.

The project started from a prototype that described each post by the objects a detector found
in its photo (Mask R-CNN) and the words and hashtags of its caption, clustered those vectors
with PAM and profiled communities over the clusters. This module rebuilds that recipe offline
so that it is measured with exactly the same metrics as the learned embedding:

- :class:`ImageNetTagTower`: "object tags", the top-``k`` ImageNet-1k labels of the packaged
  EfficientNet-Lite0 classifier, as a 1000-d vector (the labels' probabilities, zero elsewhere),
  standing in for the detector's object list;
- :class:`BagOfWordsTower`: the caption's words, ``#hashtags`` and ``@mentions`` as a TF-IDF
  vector over a vocabulary fitted on the training captions;
- :class:`SeedBaseline`: no learned space. A post's latent is ``[tags, words]`` (each part
  L2-normalised, the words scaled by ``text_weight``); a caption-less photo's latent is
  ``[tags, 0]``. Only the engagement head (on the tag vector) is trained, so the bundle ranks
  with a predicted engagement like every other model.

It plugs into the same ``train.py`` → bundle → ``rank.py`` / ``mmembed.evaluate`` path because
it is a :class:`~mmembed.models.joint.JointEmbedding` whose projections and autoencoder are the
identity.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmembed.models import losses
from mmembed.models.joint import JointEmbedding
from mmembed.models.towers import EfficientNetLite0Tower, TextTower, _as_texts, imagenet_classes

__all__ = ["BagOfWordsTower", "BagOfWordsTokenizer", "ImageNetTagTower", "SeedBaseline",
           "words"]

_WORD = re.compile(r"[#@]?\w+")


def words(caption: str | None) -> list[str]:
    """Lower-cased words of a caption; ``#hashtag`` and ``@mention`` stay whole (with the sign)."""
    return _WORD.findall((caption or "").lower())


# ------------------------------------------------------------------------------ object tags
class ImageNetTagTower(EfficientNetLite0Tower):
    """Top-``k`` ImageNet labels of EfficientNet-Lite0 as a 1000-d "object tag" vector.

    ``forward(images)`` gives the classifier's probabilities of its ``k`` most likely labels
    (all other labels 0); with ``binary=True`` each of the ``k`` labels counts 1 instead. The
    label names are :func:`mmembed.models.towers.imagenet_classes` (see :meth:`tags`).
    """

    out_dim = 1000

    def __init__(self, k: int = 5, binary: bool = False, pretrained: bool = True,
                 input_size: int = 224):
        super().__init__(pretrained=pretrained, input_size=input_size)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.out_dim:
            raise ValueError(f"k must be an integer in [1, {self.out_dim}], got {k!r}")
        self.k = k
        self.binary = bool(binary)

    def features(self, x: Tensor) -> Tensor:
        probs = self.model._fc(super().features(x)).softmax(-1)
        top = probs.topk(self.k, dim=-1)
        values = torch.ones_like(top.values) if self.binary else top.values
        return torch.zeros_like(probs).scatter_(-1, top.indices, values)

    def classify(self, images: Tensor) -> Tensor:
        return self.model._fc(super().features(self.preprocess(images)))

    def tags(self, tag_vectors: Tensor) -> list[list[str]]:
        """The label names present in each row of :meth:`forward`'s output, strongest first."""
        names = imagenet_classes()
        out = []
        for row in tag_vectors:
            idx = torch.nonzero(row > 0).flatten()
            idx = idx[torch.argsort(row[idx], descending=True, stable=True)]
            out.append([names[i] for i in idx.tolist()])
        return out


# ------------------------------------------------------------------------------ bag of words
class BagOfWordsTokenizer:
    """Picklable collate hook: captions → ``{"counts": [B, size]}`` term counts."""

    def __init__(self, vocabulary: Sequence[str], size: int):
        self.index = {term: i for i, term in enumerate(vocabulary)}
        self.size = int(size)

    def __call__(self, captions: Sequence[str | None]) -> dict[str, Tensor]:
        counts = torch.zeros(len(captions), self.size)
        for row, caption in enumerate(_as_texts(captions)):
            for term, n in Counter(words(caption)).items():
                i = self.index.get(term)
                if i is not None:
                    counts[row, i] = n
        return {"counts": counts}


class BagOfWordsTower(TextTower):
    """A caption as a TF-IDF vector of its words, hashtags and mentions (no learned weights).

    :meth:`fit_tokenizer` keeps the ``max_features`` terms that occur in the most training
    captions (at least ``min_df`` of them; English stop words dropped) and their smoothed IDF,
    ``ln((1 + n) / (1 + df)) + 1``. ``forward`` gives ``tf · idf`` (``tf`` = 1 if the term is
    present with ``binary``, else ``1 + ln(count)``), L2-normalised; an empty caption is the zero
    vector. The vocabulary is plain JSON (:meth:`tokenizer_json`), stored in the bundle.
    """

    def __init__(self, max_features: int = 2000, min_df: int = 2, binary: bool = True,
                 stop_words: bool = True, tokenizer_json: str | None = None):
        super().__init__()
        if max_features < 1 or min_df < 1:
            raise ValueError(f"max_features and min_df must be >= 1, got {max_features}, {min_df}")
        self.out_dim = int(max_features)
        self.max_length = 0  # unused: a bag of words has no sequence length
        self.min_df = int(min_df)
        self.binary = bool(binary)
        self.stop_words = bool(stop_words)
        self._pretrained = False
        self.vocabulary: list[str] | None = None
        self.register_buffer("idf", torch.zeros(self.out_dim))
        if tokenizer_json is not None:
            state = json.loads(tokenizer_json)
            self._set_vocabulary(state["vocabulary"], state["idf"])

    def _set_vocabulary(self, vocabulary: list[str], idf: list[float]) -> None:
        if len(vocabulary) > self.out_dim or len(idf) != len(vocabulary):
            raise ValueError(f"vocabulary of {len(vocabulary)} terms ({len(idf)} idf values) "
                             f"does not fit max_features={self.out_dim}")
        self.vocabulary = list(vocabulary)
        self.idf.zero_()
        self.idf[:len(idf)] = torch.tensor(idf, dtype=self.idf.dtype)

    def fit_tokenizer(self, captions: Sequence[str | None]) -> None:
        """Fit the vocabulary and IDF on the training ``captions``."""
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        texts = _as_texts(captions)
        df = Counter(term for text in texts for term in set(words(text)))
        stop = ENGLISH_STOP_WORDS if self.stop_words else frozenset()
        kept = sorted((t for t, n in df.items() if n >= self.min_df and t not in stop),
                      key=lambda t: (-df[t], t))[:self.out_dim]
        n = len(texts)
        self._set_vocabulary(kept, [math.log((1 + n) / (1 + df[t])) + 1.0 for t in kept])

    def _require_vocabulary(self) -> list[str]:
        if self.vocabulary is None:
            raise RuntimeError("BagOfWordsTower has no vocabulary yet: call fit_tokenizer(captions)"
                               " on the training captions, or pass tokenizer_json from a bundle")
        return self.vocabulary

    def fingerprint(self) -> str:
        """Identifies the vocabulary (the feature cache key includes it)."""
        return hashlib.sha256("\n".join(self._require_vocabulary()).encode()).hexdigest()[:16]

    def tokenizer_json(self) -> str:
        vocabulary = self._require_vocabulary()
        return json.dumps({"vocabulary": vocabulary,
                           "idf": self.idf[:len(vocabulary)].tolist()})

    def tokenizer_fn(self) -> BagOfWordsTokenizer:
        return BagOfWordsTokenizer(self._require_vocabulary(), self.out_dim)

    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        counts = tokens["counts"].to(self.idf.dtype)
        tf = (counts > 0).to(counts.dtype) if self.binary else torch.where(
            counts > 0, 1.0 + torch.log(counts.clamp_min(1.0)), torch.zeros_like(counts))
        return F.normalize(tf * self.idf, dim=-1)


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
        self.fused_dim = image_tower.out_dim + text_tower.out_dim
        self.autoencoder = _Identity()
        self.logit_scale.requires_grad_(False)  # no contrastive loss
        self.loss_weights = {"engagement": 1.0}

    def fuse(self, z_image: Tensor, z_text: Tensor | None) -> Tensor:
        if z_text is None:  # a photo alone: the word half is empty
            z_text = z_image.new_zeros(z_image.shape[0], self.text_tower.out_dim)
        return torch.cat([z_image, z_text], dim=-1)

    def _step(self, batch: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
        img_feats, txt_feats = self._features(batch)
        z_image = self.proj_image(img_feats)
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
