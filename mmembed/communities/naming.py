"""Cluster names from class-based TF-IDF, as BERTopic does.

All posts of a cluster are treated as one document (their hashtags and caption words). A term's
weight in cluster ``c`` is::

    w(t, c) = tf(t, c) · log(1 + A / f(t))

where ``tf(t, c)`` is the term's frequency in the cluster's document divided by that document's
length, ``f(t)`` the term's frequency over all clusters, and ``A`` the average number of words per
cluster. Terms common to every cluster (#love, #instagood) get a small weight, so names come from
what is distinctive, not merely frequent.
"""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

from mmembed.data.post import Post
from mmembed.text import caption_terms


def post_terms(post: Post) -> list[str]:
    """A post's terms: its hashtags plus the caption's words (without tags, mentions, stop words).

    Hashtags lose their '#', so the tag #crag and the word "crag" count as one term. Words (see
    :func:`mmembed.text.caption_terms`, ``kind="words"``) start with a letter and have at least
    three characters, so names are never made of numbers.
    """
    words = caption_terms(post.caption, kind="words", min_length=3, stop_words=ENGLISH_STOP_WORDS)
    return list(post.hashtags) + words


def class_tfidf(posts: list[Post], labels: np.ndarray, k: int) -> tuple[np.ndarray, list[str]]:
    """The c-TF-IDF matrix [k, vocabulary] and its vocabulary."""
    docs = [[] for _ in range(k)]
    for post, label in zip(posts, labels):
        docs[int(label)].extend(post_terms(post))
    vectorizer = CountVectorizer(analyzer=lambda terms: terms)
    counts = vectorizer.fit_transform(docs).toarray().astype(np.float64)
    vocab = list(vectorizer.get_feature_names_out())
    lengths = counts.sum(axis=1, keepdims=True)
    tf = np.divide(counts, lengths, out=np.zeros_like(counts), where=lengths > 0)
    average_words = counts.sum() / max(k, 1)
    idf = np.log(1.0 + average_words / np.maximum(counts.sum(axis=0), 1.0))
    return tf * idf, vocab


def cluster_terms(posts: list[Post], labels: np.ndarray, k: int,
                  top_n: int = 10) -> list[list[tuple[str, float]]]:
    """The ``top_n`` most distinctive terms of each cluster, with their c-TF-IDF weights."""
    if not posts:
        return [[] for _ in range(k)]
    weights, vocab = class_tfidf(posts, labels, k)
    out = []
    for row in weights:
        order = np.argsort(-row, kind="stable")[:top_n]
        out.append([(vocab[i], float(row[i])) for i in order if row[i] > 0])
    return out


def cluster_names(terms: list[list[tuple[str, float]]], n_terms: int = 3) -> list[str]:
    """``"rockclimbing · crag · sendit"`` from each cluster's top terms; unique across clusters."""
    names, seen = [], {}
    for i, cluster in enumerate(terms):
        name = " · ".join(t for t, _ in cluster[:n_terms]) or f"cluster {i}"
        if name in seen:
            name = f"{name} ({i})"
        seen[name] = i
        names.append(name)
    return names
