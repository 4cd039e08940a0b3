"""The seed's text baseline: LDA topics over caption words and hashtags."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any, ClassVar  # noqa: F401

import numpy as np

from mmembed.communities.clustering.base import DEFAULT_K_RANGE, Clusterer, _check_latent


def post_text(post: Any) -> str:
    """The text LDA reads: the caption and the hashtags (with '#')."""
    return " ".join([post.caption or ""] + [f"#{t}" for t in post.hashtags])


class LDAClusterer(Clusterer):
    """The seed's text baseline: LDA topics over caption words and hashtags.

    Each post's text (:func:`post_text`: its caption plus hashtags written as ``#tag``) is
    counted by
    a ``CountVectorizer`` (lowercase, English stop words, tokens of ≥ 2 word characters with an
    optional leading ``#``, so ``#climbing`` and ``climbing`` are different words), then
    scikit-learn's ``LatentDirichletAllocation`` (batch variational Bayes) gives each post a
    doc-topic mix θ_i; ``labels_`` = argmax θ_i. Variational LDA has local optima (two topics
    merged, one split), so ``n_init`` restarts with seeds ``seed, seed+1, ...`` keep the one
    with the highest approximate log-likelihood (the variational bound, ``lda.score``).

    New photos have no text, so ``soft_assign`` goes through the latent space:
    q(z) = mean of θ over the ``n_neighbors`` fitted posts nearest to z (Euclidean, faiss
    ``IndexFlatL2``). The state therefore stores the fitted latents and θ (plus the topic-word
    matrix and vocabulary, to describe topics). Auto-K: silhouette of the topic labels in the
    latent space (see the module docstring for why not perplexity).
    """

    name = "lda"

    def __init__(self, k: int | str | None = "auto", *, k_range: Sequence[int] = DEFAULT_K_RANGE,
                 seed: int = 0, k_seeds: int = 1, n_neighbors: int = 10,
                 max_features: int | None = 20000,
                 min_df: int = 1, max_iter: int = 20, n_init: int = 3,
                 doc_topic_prior: float | None = None,
                 topic_word_prior: float | None = None, stop_words: str | None = "english"):
        super().__init__(k, k_range=k_range, seed=seed, k_seeds=k_seeds)
        if n_neighbors < 1 or n_init < 1:
            raise ValueError(f"need n_neighbors ≥ 1 and n_init ≥ 1, got {n_neighbors}, {n_init}")
        self.n_neighbors = int(n_neighbors)
        self.max_features = None if max_features is None else int(max_features)
        self.min_df = int(min_df)
        self.max_iter = int(max_iter)
        self.n_init = int(n_init)
        self.doc_topic_prior = None if doc_topic_prior is None else float(doc_topic_prior)
        self.topic_word_prior = None if topic_word_prior is None else float(topic_word_prior)
        self.stop_words = stop_words
        self._index = None

    def fit(self, latent: np.ndarray, posts: Sequence[Any] | None = None) -> LDAClusterer:
        from sklearn.decomposition import LatentDirichletAllocation
        from sklearn.feature_extraction.text import CountVectorizer

        from mmembed.text import caption_terms

        x = _check_latent(latent)
        if posts is None:
            raise ValueError("LDA clusters posts by their words: pass the posts to fit(latent, "
                             "posts); for latent-only clustering use kmeans, gmm or pam")
        texts = [post_text(p) for p in posts]
        if len(texts) != x.shape[0]:
            raise ValueError(f"{len(texts)} posts but latent has {x.shape[0]} rows; pass one "
                             "post per row, in the same order")
        vectorizer = CountVectorizer(lowercase=True, token_pattern=None,
                                     tokenizer=lambda t: caption_terms(t, signs="#", min_length=2),
                                     stop_words=self.stop_words, max_features=self.max_features,
                                     min_df=self.min_df)
        try:
            counts = vectorizer.fit_transform(texts)
        except ValueError as err:
            raise ValueError(f"LDA found no usable words in texts ({err}); check that captions "
                             "and hashtags are passed") from None

        def fit_k(k: int, seed: int) -> SimpleNamespace:
            lda, best_score = None, -math.inf
            for restart in range(self.n_init):
                candidate = LatentDirichletAllocation(
                    n_components=k, doc_topic_prior=self.doc_topic_prior,
                    topic_word_prior=self.topic_word_prior, learning_method="batch",
                    max_iter=self.max_iter, random_state=seed + restart).fit(counts)
                score = float(candidate.score(counts))
                if lda is None or score > best_score:
                    lda, best_score = candidate, score
            doc_topic = np.asarray(lda.transform(counts), dtype=np.float64)
            topic_word = lda.components_ / lda.components_.sum(axis=1, keepdims=True)
            return SimpleNamespace(doc_topic_=doc_topic, topic_word_=topic_word,
                                   labels_=doc_topic.argmax(axis=1), n_clusters_=k,
                                   log_likelihood_=best_score)

        self.latent_ = x.copy()  # before _select_k: the canonical order may soft-assign
        self._index = None
        self._select_k(x, fit_k)
        self.vocabulary_ = np.asarray(vectorizer.get_feature_names_out(), dtype=str)
        return self

    def _info(self) -> dict[str, Any]:
        score = getattr(self, "log_likelihood_", None)
        return {} if score is None else {"log_likelihood": score}

    def _neighbour_index(self):
        if self._index is None:
            import faiss

            self._index = faiss.IndexFlatL2(self.latent_.shape[1])
            self._index.add(self.latent_)
        return self._index

    def _soft_assign(self, x: np.ndarray) -> np.ndarray:
        m = min(self.n_neighbors, self.latent_.shape[0])
        _, neighbours = self._neighbour_index().search(x, m)
        return self.doc_topic_[neighbours].mean(axis=1)

    def _permute(self, order: np.ndarray) -> None:
        self.doc_topic_ = self.doc_topic_[:, order]
        self.topic_word_ = self.topic_word_[order]

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"latent": self.latent_, "doc_topic": self.doc_topic_,
                "topic_word": self.topic_word_, "vocabulary": self.vocabulary_}

    def _load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.latent_ = np.ascontiguousarray(arrays["latent"], dtype=np.float32)
        self.doc_topic_ = np.asarray(arrays["doc_topic"], dtype=np.float64)
        self.topic_word_ = np.asarray(arrays["topic_word"])
        self.vocabulary_ = np.asarray(arrays["vocabulary"], dtype=str)
        self.log_likelihood_ = None
        self._index = None
