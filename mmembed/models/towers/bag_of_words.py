"""The seed's bag of words: a caption as a TF-IDF vector of its words, hashtags and mentions.

scikit-learn does the counting and the TF-IDF weighting. A bundle stores only plain JSON, the
vocabulary and its IDF (:meth:`BagOfWordsTower.tokenizer_json`), from which the vectorizer is
rebuilt; a fitted vectorizer is never pickled into a bundle.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.feature_extraction.text import (
    ENGLISH_STOP_WORDS,
    CountVectorizer,
    TfidfTransformer,
    TfidfVectorizer,
)
from torch import Tensor

from mmembed.models.towers.base import TextTower, _as_texts
from mmembed.text import caption_terms


def words(caption: str | None) -> list[str]:
    """Lower-cased words of a caption; ``#hashtag`` and ``@mention`` stay whole (with the sign).

    :func:`mmembed.text.caption_terms` with its defaults.
    """
    return caption_terms(caption)


def _analyzer(stop_words: bool) -> partial:
    """The vectorizers' analyzer: :func:`words`, less English stop words when ``stop_words``."""
    return partial(caption_terms, stop_words=ENGLISH_STOP_WORDS if stop_words else ())


class BagOfWordsTokenizer:
    """Picklable collate hook: captions → ``{"tfidf": [B, size]}``, ``tf · idf`` per term.

    scikit-learn's ``TfidfVectorizer`` with a fixed ``vocabulary`` (in the tower's column order)
    and ``idf``, not normalised: the tower's ``forward`` L2-normalises. Columns past the
    vocabulary stay 0; with an empty vocabulary every caption is the zero vector.
    """

    def __init__(self, vocabulary: Sequence[str], idf: Sequence[float], size: int,
                 binary: bool = True, stop_words: bool = True):
        self.size = int(size)
        self.vectorizer = None
        if len(vocabulary):
            self.vectorizer = TfidfVectorizer(
                analyzer=_analyzer(stop_words), vocabulary=list(vocabulary), binary=binary,
                sublinear_tf=not binary, smooth_idf=True, norm=None, dtype=np.float32)
            self.vectorizer.idf_ = np.asarray(idf, dtype=np.float32)

    def __call__(self, captions: Sequence[str | None]) -> dict[str, Tensor]:
        out = torch.zeros(len(captions), self.size)
        if self.vectorizer is not None and len(captions):
            tfidf = self.vectorizer.transform(_as_texts(captions)).toarray()
            out[:, :tfidf.shape[1]] = torch.from_numpy(tfidf)
        return {"tfidf": out}


class BagOfWordsTower(TextTower):
    """A caption as a TF-IDF vector of its words, hashtags and mentions (no learned weights).

    :meth:`fit_tokenizer` keeps the ``max_features`` terms that occur in the most training
    captions (at least ``min_df`` of them; English stop words dropped) and their smoothed IDF,
    ``ln((1 + n) / (1 + df)) + 1``. A caption's vector is ``tf · idf`` (``tf`` = 1 if the term
    is present with ``binary``, else ``1 + ln(count)``), L2-normalised; an empty caption is the
    zero vector. The tokenizer hook (:meth:`tokenizer_fn`, run in the DataLoader's collate)
    computes ``tf · idf`` with scikit-learn and ``forward`` L2-normalises it with torch, as the
    hand-written version did: scikit-learn's float32 normalisation rounds the last bit
    differently, enough to move a borderline post to another cluster. The vocabulary is plain JSON
    (:meth:`tokenizer_json`), stored in the bundle; the IDF is also the tower's one buffer, so
    state dicts and the feature cache key cover it.
    """

    fits_vocabulary = True

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
            self.load_tokenizer(tokenizer_json)

    def load_tokenizer(self, tokenizer_json: str) -> None:
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
        """Fit the vocabulary and IDF on the training ``captions``.

        ``CountVectorizer`` (binary, ``min_df``) gives each term's document frequency and
        ``TfidfTransformer`` the IDF of the terms kept. Keeping the ``max_features`` terms is
        done here: ``CountVectorizer(max_features=...)`` ranks by total count, not by document
        frequency, and breaks ties in no fixed order; here ties go alphabetically, and the
        columns are in that order (most frequent first), which the bundle's vocabulary keeps.
        """
        texts = _as_texts(captions)
        counter = CountVectorizer(analyzer=_analyzer(self.stop_words), binary=True,
                                  min_df=self.min_df)
        try:
            present = counter.fit_transform(texts)
        except ValueError:  # no term in min_df captions (or no captions): nothing to keep
            self._set_vocabulary([], [])
            return
        terms = counter.get_feature_names_out().tolist()
        df = np.asarray(present.sum(axis=0)).ravel()
        kept = sorted(range(len(terms)), key=lambda i: (-df[i], terms[i]))[:self.out_dim]
        idf = TfidfTransformer(smooth_idf=True).fit(present[:, kept]).idf_
        self._set_vocabulary([terms[i] for i in kept], idf.tolist())

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
        vocabulary = self._require_vocabulary()
        return BagOfWordsTokenizer(vocabulary, self.idf[:len(vocabulary)].tolist(), self.out_dim,
                                   binary=self.binary, stop_words=self.stop_words)

    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        """The L2-normalised ``tf · idf`` vectors (the zero vector stays zero)."""
        return F.normalize(tokens["tfidf"].to(self.idf), dim=-1)
