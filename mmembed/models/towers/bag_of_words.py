"""The seed's bag of words: a caption as a TF-IDF vector of its words, hashtags and mentions."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mmembed.models.towers.base import TextTower, _as_texts
from mmembed.text import caption_terms


def words(caption: str | None) -> list[str]:
    """Lower-cased words of a caption; ``#hashtag`` and ``@mention`` stay whole (with the sign).

    :func:`mmembed.text.caption_terms` with its defaults.
    """
    return caption_terms(caption)


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
