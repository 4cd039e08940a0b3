"""Caption drafts composed from a community's own vocabulary, never copied from its posts.

A photo's drafts speak the language of the target community *for the photo's cluster*: the
posts of the community whose cluster is the photo's top cluster (:func:`cluster_vocabulary`
gives their **phrases**, **hashtags** and **mentions**). Each draft is one of
:data:`TEMPLATES` filled with one or two of those phrases, then the community's top hashtags
on a line of their own, as its posts are written; one draft also names its most used mention.

- **Phrases**: the 2–3-word n-grams of the posts' captions (words only: hashtags, mentions and
  numbers are left out), counted by scikit-learn's ``CountVectorizer`` once per post. An
  n-gram that begins or ends with an English stop word (``with the``, ``the crag``) or says
  one word twice is no phrase. A phrase's weight is ``Σ_{posts using it} exp(clip(z, −2, 2))``
  with ``z`` the post's engagement z-score, as for hashtag suggestions
  (:mod:`mmembed.ranking.suggest`); phrases that fewer than two posts use are dropped when
  there are enough others.
- **Hashtags** and **mentions**: the most used ones by the same weight; a draft carries as
  many hashtags as the posts' median (at most :data:`MAX_HASHTAGS`).
- **Variation**: ``seed`` (the photo's file name, hashed) picks the template and the phrases,
  so two photos of one cluster get different drafts, and one photo always the same ones.

**No copies.** :class:`CopyGuard` holds every run of :data:`RUN` consecutive tokens of the
captions it is given (tokens: NFKC-normalised, case-folded runs of word characters, so
punctuation, case and ``#``/``@`` signs do not matter). :func:`compose_drafts` tries the
combinations of templates and phrases in a fixed order and keeps only drafts that contain no
such run; when none passes, the photo has fewer drafts (or none). The ranker's guard holds the
captions of every post of the bundle, whatever its community or split.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

from mmembed.ranking.suggest import ENGAGEMENT_Z_CLIP, CommunityPosts, weighted_terms
from mmembed.text import caption_terms

__all__ = ["MIN_VOCABULARY_POSTS", "RUN", "TEMPLATES", "CopyGuard", "Vocabulary",
           "cluster_vocabulary", "community_vocabulary", "compose_drafts", "draft_seed",
           "tokens"]

#: A community with fewer posts than this in a photo's cluster has no voice of its own there:
#: the photo's caption drafts speak that cluster's language (its posts of every community).
MIN_VOCABULARY_POSTS = 3

#: No draft holds this many consecutive tokens of a caption it is guarded against.
RUN = 6
#: Sentence templates: ``{p}`` and ``{q}`` take two different phrases of the community,
#: ``{m}`` is `` with @mention`` in the draft that names one (templates without it never do).
TEMPLATES = (
    "All about {p} today{m}.",
    "{p} and {q}, all day{m}.",
    "{p} never gets old.",
    "Here for the {p} and the {q}{m}.",
    "More {p}, please.",
    "{p} first, then {q}{m}.",
    "Who else is into {p}?",
    "A little {p}, a lot of {q}{m}.",
)
MAX_HASHTAGS = 5
MAX_PHRASES = 12
#: Phrases rotated through from photo to photo (the most used ones).
ROTATE = 6


def tokens(text: str | None) -> list[str]:
    """The tokens the no-copy rule compares: runs of word characters of the NFKC-normalised,
    case-folded text (punctuation, case and ``#``/``@`` signs never make a difference)."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return caption_terms(unicodedata.normalize("NFKC", folded), signs="")


def _runs(text: str | None, n: int) -> set[tuple[str, ...]]:
    t = tokens(text)
    return {tuple(t[i:i + n]) for i in range(len(t) - n + 1)}


class CopyGuard:
    """Every :data:`RUN`-token run of some captions: :meth:`allows` a text that holds none."""

    def __init__(self, captions: Iterable[str | None], run: int = RUN):
        if run < 1:
            raise ValueError(f"run must be >= 1, got {run}")
        self.run = run
        self._runs: set[tuple[str, ...]] = set()
        for caption in captions:
            self._runs |= _runs(caption, run)

    def __len__(self) -> int:
        return len(self._runs)

    def copied(self, text: str) -> list[tuple[str, ...]]:
        """The runs of ``text`` that a guarded caption holds (empty: no copy)."""
        t = tokens(text)
        return [tuple(t[i:i + self.run]) for i in range(len(t) - self.run + 1)
                if tuple(t[i:i + self.run]) in self._runs]

    def allows(self, text: str) -> bool:
        return not self.copied(text)


@dataclass(frozen=True)
class Vocabulary:
    """What a set of posts says: phrases, hashtags and mentions, most used first, and how many
    hashtags a draft carries (``n_hashtags``)."""

    phrases: list[str] = field(default_factory=list)
    hashtags: list[str] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)
    n_hashtags: int = 0
    posts: int = 0


def _words(caption: str) -> list[str]:
    return caption_terms(caption, kind="words")


def _is_phrase(ngram: str) -> bool:
    words = ngram.split()
    return (words[0] not in ENGLISH_STOP_WORDS and words[-1] not in ENGLISH_STOP_WORDS
            and len(set(words)) == len(words))


def cluster_vocabulary(captions: Sequence[str | None], hashtags: Sequence[Sequence[str]],
                       mentions: Sequence[Sequence[str]],
                       engagement_z: Sequence[float] | np.ndarray | None = None, *,
                       phrases: int = MAX_PHRASES, top_hashtags: int = 10,
                       top_mentions: int = 3) -> Vocabulary:
    """The vocabulary of some posts (the community's posts in one cluster): see the module
    docstring. ``engagement_z``: each post's engagement z-score (``None``: all equal)."""
    n = len(captions)
    if n == 0:
        return Vocabulary()
    z = np.zeros(n) if engagement_z is None else np.asarray(engagement_z, dtype=np.float64)
    w = np.exp(np.clip(z, -ENGAGEMENT_Z_CLIP, ENGAGEMENT_Z_CLIP))
    texts = [c or "" for c in captions]
    found: list[str] = []
    found = _top_ngrams(texts, w, (2, 3), phrases) or _top_ngrams(texts, w, (1, 1), phrases)
    tags = [t["tag"] for t in weighted_terms(hashtags, w, top_hashtags, "tag")]
    names = [m["mention"] for m in weighted_terms(mentions, w, top_mentions, "mention")]
    per_post = int(np.median([len(set(h)) for h in hashtags])) if len(hashtags) else 0
    return Vocabulary(phrases=found, hashtags=tags, mentions=names,
                      n_hashtags=min(per_post, MAX_HASHTAGS, len(tags)), posts=n)


def _top_ngrams(texts: list[str], w: np.ndarray, ngrams: tuple[int, int], top: int) -> list[str]:
    vectorizer = CountVectorizer(tokenizer=_words, lowercase=False, token_pattern=None,
                                 ngram_range=ngrams, binary=True)
    try:
        x = vectorizer.fit_transform(texts)
    except ValueError:  # no caption has a word
        return []
    terms = vectorizer.get_feature_names_out()
    posts = np.asarray(x.sum(axis=0)).ravel()
    weight = x.T @ w
    keep = [i for i in range(len(terms))
            if ngrams[0] == 1 or _is_phrase(terms[i])]
    # phrases that two or more posts use first, then by weight
    keep.sort(key=lambda i: (posts[i] < 2, -weight[i], -posts[i], terms[i]))
    found: list[str] = []
    for i in keep:
        term = f" {terms[i]} "
        if not any(term in f" {f} " or f" {f} " in term for f in found):  # no sub-phrases
            found.append(str(terms[i]))
        if len(found) == top:
            break
    return found


def community_vocabulary(posts: Sequence[dict], members: set[str], cluster: int,
                         itself: str | None = None) -> Vocabulary:
    """What a community's posts (post ids ``members`` among a bundle's post rows ``posts``) in
    ``cluster`` say, for caption drafts; with fewer than :data:`MIN_VOCABULARY_POSTS` of them,
    what every community's posts in that cluster say. Held-out posts never count, and
    ``itself`` (an account community's own name) is never mentioned."""
    fitted = [r for r in posts if r.get("split") != "test"]
    pool = [r for r in fitted if r.get("post_id") in members]
    own = [r for r in pool if r.get("cluster") == cluster]
    if len(own) < MIN_VOCABULARY_POSTS:
        pool = fitted
        own = [r for r in pool if r.get("cluster") == cluster]
    z = CommunityPosts.engagement_z_of(pool)
    at = {id(r): i for i, r in enumerate(pool)}
    me = itself.lower() if itself else None
    return cluster_vocabulary(
        [r.get("caption") for r in own], [r.get("hashtags") or [] for r in own],
        [[m for m in r.get("mentions") or [] if m.lower() != me] for r in own],
        z[[at[id(r)] for r in own]])


def draft_seed(name: str) -> int:
    """A photo's seed for :func:`compose_drafts`: a 64-bit BLAKE2b hash of its file name (a
    well-mixed hash, so names that differ by one digit still pick different templates)."""
    return int.from_bytes(hashlib.blake2b(str(name).encode("utf-8"), digest_size=8).digest(),
                          "big")


def _sentence(template: str, p: str, q: str, mention: str | None) -> str | None:
    """The filled template; ``None`` when it reads badly (a word other than a stop word said
    twice, as in "all about today life today", or a mention the template has no place for)."""
    if mention and "{m}" not in template:
        return None
    text = template.format(p=p, q=q, m=f" with @{mention}" if mention else "")
    said = [t for t in tokens(text.replace(f"@{mention}", "")) if t not in ENGLISH_STOP_WORDS]
    if len(set(said)) < len(said):
        return None
    return text[0].upper() + text[1:]


def _candidates(vocabulary: Vocabulary, seed: int):
    """(template, p, q) in the order drafts try them, each pair of template and phrase once:
    the seed picks the first template and, among the :data:`ROTATE` most used phrases, the
    first phrase; each next try moves both on by one. ``q`` is the next phrase after ``p``
    sharing no word with it (templates that need one are passed over without it)."""
    phrases = vocabulary.phrases
    rotate = min(ROTATE, len(phrases))
    start = (seed // len(TEMPLATES)) % rotate
    order = [phrases[(start + i) % rotate] for i in range(rotate)] + phrases[rotate:]
    t, m = len(TEMPLATES), len(order)
    block = t * m // math.gcd(t, m)  # lcm: each block of tries is one diagonal of pairs
    for k in range(t * m):
        template = TEMPLATES[(seed + k) % t]
        i = (k + k // block) % m
        p, q = order[i], ""
        if "{q}" in template:
            q = next((c for c in order[i + 1:] + order[:i]
                      if not set(c.split()) & set(p.split())), None)
            if q is None:
                continue
        yield template, p, q


def compose_drafts(vocabulary: Vocabulary, n: int = 3, seed: int = 0,
                   guard: CopyGuard | None = None) -> list[str]:
    """Up to ``n`` different drafts from ``vocabulary``, none of which ``guard`` refuses.

    A draft is ``"<sentence>\\n\\n#tag #tag …"``; the second draft (the first when ``n`` is 1)
    names the top mention, unless no draft naming it passes the guard. The same vocabulary
    and seed give the same drafts."""
    if n <= 0 or not vocabulary.phrases:
        return []
    tags = " ".join(f"#{t}" for t in vocabulary.hashtags[:vocabulary.n_hashtags])
    drafts: list[str] = []
    used: set[str] = set()
    # a second pass without the mention, for when no draft naming it passes the guard
    for name in (vocabulary.mentions[:1] or [None]) + [None] * bool(vocabulary.mentions):
        for template, p, q in _candidates(vocabulary, seed):
            if len(drafts) == n:
                return drafts
            sentence = _sentence(template, p, q,
                                 name if len(drafts) == min(1, n - 1) else None)
            if sentence is None or sentence in used:
                continue
            draft = f"{sentence}\n\n{tags}" if tags else sentence
            if guard is None or guard.allows(draft):
                used.add(sentence)
                drafts.append(draft)
    return drafts
