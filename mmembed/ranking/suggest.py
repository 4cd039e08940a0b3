"""Hashtags and mentions the target community uses for posts like a photo.

For each new photo we look up its ``n`` nearest posts *of the target community* in the FAISS
index of post image embeddings (cosine similarity of ``z_image``; the search is restricted to
the community's rows with ``PostIndex.search(subset=...)``). Each neighbour ``j`` gets a weight

    w_j = max(s_j, 0) · exp(clip(z_j, −2, 2))

where ``s_j`` is its cosine similarity to the photo and ``z_j`` its actual engagement (log rate)
as a z-score among the community's posts. So a post one standard deviation above the
community's mean engagement counts e ≈ 2.7 times an average one at the same similarity; the
clip keeps one viral outlier from drowning out the rest (at most e² ≈ 7.4 times), and a
neighbour that is not similar at all (s ≤ 0) counts for nothing.

A hashtag's (or mention's) **weight** is the weighted share of neighbours that use it,
``Σ_{j uses it} w_j / Σ_j w_j`` in [0, 1], and its **count** the number of neighbours that use
it. Suggestions are the top ones by weight (ties: more neighbours, then alphabetical).
Caption drafts are composed elsewhere (:mod:`mmembed.ranking.captions`): a neighbour's caption
is shown as context, never suggested as the photo's caption.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmembed.search.index import PostIndex

ENGAGEMENT_Z_CLIP = 2.0


@dataclass(frozen=True)
class CommunityPosts:
    """The target community's posts, aligned with its rows in the post index.

    ``rows[i]`` is the index row of member ``i``; the other fields are that member's metadata.
    ``engagement_z`` is each member's actual log engagement rate standardised over the members.
    """

    rows: np.ndarray
    post_ids: list[str]
    captions: list[str]
    hashtags: list[list[str]]
    mentions: list[list[str]]
    image_paths: list[str]
    engagement: np.ndarray
    engagement_z: np.ndarray

    @classmethod
    def from_records(cls, index: PostIndex, records: Sequence[dict]) -> CommunityPosts:
        """From ``posts.jsonl`` rows of the members (``post_id``, ``caption``, ``hashtags``,
        ``mentions``, ``image_path``, ``engagement``)."""
        post_ids = [str(r["post_id"]) for r in records]
        engagement = np.array([float(r.get("engagement") or 0.0) for r in records])
        z = cls.engagement_z_of(records)
        return cls(
            rows=index.rows_of(post_ids) if post_ids else np.zeros(0, np.int64),
            post_ids=post_ids,
            captions=[r.get("caption") or "" for r in records],
            hashtags=[list(r.get("hashtags") or []) for r in records],
            mentions=[list(r.get("mentions") or []) for r in records],
            image_paths=[str(r.get("image_path") or "") for r in records],
            engagement=engagement,
            engagement_z=z,
        )

    def __len__(self) -> int:
        return len(self.post_ids)

    @staticmethod
    def engagement_z_of(records: Sequence[dict]) -> np.ndarray:
        """Each record's ``engagement`` as a z-score among ``records`` (zeros when all are
        equal or there is one)."""
        engagement = np.array([float(r.get("engagement") or 0.0) for r in records])
        std = engagement.std() if len(engagement) > 1 else 0.0
        return (engagement - engagement.mean()) / std if std > 0 else np.zeros_like(engagement)


def neighbour_weights(similarity: np.ndarray, engagement_z: np.ndarray) -> np.ndarray:
    """``max(s, 0) · exp(clip(z, −2, 2))`` (see the module docstring)."""
    z = np.clip(np.asarray(engagement_z, dtype=np.float64), -ENGAGEMENT_Z_CLIP, ENGAGEMENT_Z_CLIP)
    return np.maximum(np.asarray(similarity, dtype=np.float64), 0.0) * np.exp(z)


def weighted_terms(term_lists: Sequence[Sequence[str]], weights: np.ndarray, top: int,
                   key: str) -> list[dict]:
    """Top ``top`` terms by weighted share of neighbours: ``[{key, weight, count}]``."""
    total = float(np.sum(weights))
    score: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for terms, w in zip(term_lists, weights):
        for term in dict.fromkeys(terms):  # a post counts once per term
            score[term] += float(w)
            count[term] += 1
    order = sorted(score, key=lambda t: (-score[t], -count[t], t))[:top]
    return [{key: t, "weight": (score[t] / total) if total > 0 else 0.0, "count": count[t]}
            for t in order]


#: A neighbour at least this similar is the photo itself (a post ranked again), not a
#: neighbour: it is never named, and never lends the photo its own hashtags.
SELF_SIMILARITY = 0.9999


def suggest(index: PostIndex, community: CommunityPosts, z_image: np.ndarray, *,
            neighbours: int = 20, hashtags: int = 10, mentions: int = 5,
            explain: int = 3) -> list[dict]:
    """Suggestions for a batch of photos (``z_image`` [n, D]), one dict per photo::

        {"neighbours": [{post_id, caption, similarity, image_path, engagement}] (≤ explain),
         "hashtags": [{tag, weight, count}], "mentions": [{mention, weight, count}]}

    Empty lists when the community has no posts in the index. A neighbour with similarity
    :data:`SELF_SIMILARITY` or more is the photo itself and is left out.
    """
    n = len(z_image)
    empty = [{"neighbours": [], "hashtags": [], "mentions": []} for _ in range(n)]
    if n == 0 or len(community) == 0:
        return empty
    scores, _, rows = index.search(z_image, neighbours + 1, subset=community.rows)
    position = {int(r): i for i, r in enumerate(community.rows)}
    out = []
    for s_row, r_row in zip(scores, rows):
        keep = [(position[int(r)], float(s)) for s, r in zip(s_row, r_row)
                if r >= 0 and s < SELF_SIMILARITY][:neighbours]
        members = [m for m, _ in keep]
        sims = np.asarray([s for _, s in keep], dtype=np.float64)
        w = neighbour_weights(sims, community.engagement_z[members])
        out.append({
            "neighbours": [
                {"post_id": community.post_ids[m], "caption": community.captions[m],
                 "similarity": float(s), "image_path": community.image_paths[m],
                 "engagement": float(community.engagement[m])}
                for m, s in zip(members[:explain], sims[:explain])
            ],
            "hashtags": weighted_terms([community.hashtags[m] for m in members], w, hashtags,
                                       "tag"),
            "mentions": weighted_terms([community.mentions[m] for m in members], w, mentions,
                                       "mention"),
        })
    return out
