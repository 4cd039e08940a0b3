"""Communities and their profiles over the content clusters.

A community is a group of posts defined by metadata: an ``account``, a ``source`` (a scraped
hashtag or profile folder), a user-defined ``group`` of accounts/sources, or, as a fallback, a
``cluster`` itself. Its profile is the mean soft assignment of its posts::

    p_c = Σ_i w_i q(x_i) / Σ_i w_i

with ``w_i = 1``, or with ``weighting="engagement"`` the post's engagement rate
``w_i = exp(e_i)``, so the clusters that the community *likes* weigh more than those it merely
posts.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmembed.data.post import Post

log = logging.getLogger(__name__)


KINDS = ("account", "source", "group", "cluster")


@dataclass
class CommunitySettings:
    """Which communities get a profile and how (``conf: communities``).

    Every account and every source (a scraped hashtag or profile folder) is a community, and
    so is every cluster (the fallback); ``groups`` adds your own, name → accounts and/or
    sources, e.g. ``{competitors: {accounts: [brand_a, brand_b]}}``. ``weighting``: ``none``
    (the mean soft assignment of the members) or ``engagement`` (weighted by engagement rate).
    Communities with fewer than ``min_size`` posts are named in a warning (a noisy profile).
    Cluster names take ``name_terms`` of the ``top_terms`` class-based TF-IDF terms; each
    cluster keeps its ``medoids`` most typical posts.
    """

    groups: dict[str, Any] = field(default_factory=dict)
    weighting: str = "none"
    min_size: int = 10
    top_terms: int = 10
    name_terms: int = 3
    medoids: int = 12


@dataclass(frozen=True)
class Community:
    """A group of posts defined by metadata, and its profile over the K clusters.

    ``profile`` is ``p_c`` (sums to 1); ``top_clusters`` its three heaviest clusters;
    ``top_hashtags``/``top_mentions`` ``(term, count)`` pairs without ``#``/``@``, most used
    first; ``engagement`` holds the members' actual log rates (``mean``, ``median``, ``sorted``)
    and the model's predictions for them (``predicted_sorted``); ``members`` their post ids.
    """

    name: str
    kind: str
    size: int
    profile: list[float]
    top_clusters: list[int] = field(default_factory=list)
    top_hashtags: list[tuple[str, int]] = field(default_factory=list)
    top_mentions: list[tuple[str, int]] = field(default_factory=list)
    engagement: dict[str, Any] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The record stored in ``communities.json`` (without the name, its key there)."""
        return {"kind": self.kind, "size": self.size, "profile": list(self.profile),
                "top_clusters": list(self.top_clusters),
                "top_hashtags": [[t, n] for t, n in self.top_hashtags],
                "top_mentions": [[m, n] for m, n in self.top_mentions],
                "engagement": dict(self.engagement), "members": list(self.members)}

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> Community:
        return cls(name=name, kind=str(d["kind"]), size=int(d["size"]),
                   profile=[float(v) for v in d["profile"]],
                   top_clusters=[int(c) for c in d.get("top_clusters") or []],
                   top_hashtags=[(str(t), int(n)) for t, n in d.get("top_hashtags") or []],
                   top_mentions=[(str(m), int(n)) for m, n in d.get("top_mentions") or []],
                   engagement=dict(d.get("engagement") or {}),
                   members=[str(m) for m in d.get("members") or []])

    def summary(self) -> dict[str, Any]:
        """What a ranking result says about its community (no member list)."""
        return {"name": self.name, "kind": self.kind, "size": self.size,
                "profile": [float(v) for v in self.profile],
                "top_clusters": [int(v) for v in self.top_clusters],
                "top_hashtags": [{"tag": t, "count": int(n)} for t, n in self.top_hashtags],
                "top_mentions": [{"mention": m, "count": int(n)} for m, n in self.top_mentions]}


def member_sets(posts: list[Post], labels: np.ndarray, cluster_names: list[str],
                groups: Mapping[str, Mapping[str, list[str]]] | None = None
                ) -> dict[str, tuple[str, np.ndarray]]:
    """Community name → (kind, member post indices).

    Accounts and sources keep their own names; when an account and a source share a name and the
    same posts (an instaloader profile folder), they are one community. A name used by two
    different member sets gets its kind as a prefix (``source:natgeo``). ``groups`` maps a group
    name to ``{"accounts": [...], "sources": [...]}``.
    """
    found: dict[tuple[str, str], np.ndarray] = {}
    for kind, key in (("account", "account"), ("source", "source")):
        by_value: dict[str, list[int]] = {}
        for i, post in enumerate(posts):
            value = getattr(post, key)
            if value:
                by_value.setdefault(value, []).append(i)
        for value, idx in by_value.items():
            found[(kind, value)] = np.array(idx)
    for name, spec in (groups or {}).items():
        accounts = set(spec.get("accounts", []) or [])
        sources = set(spec.get("sources", []) or [])
        idx = [i for i, p in enumerate(posts) if p.account in accounts or p.source in sources]
        if not idx:
            log.warning("community group %r matches no post (accounts=%s, sources=%s)",
                        name, sorted(accounts), sorted(sources))
        found[("group", name)] = np.array(idx, dtype=int)
    for c, name in enumerate(cluster_names):
        found[("cluster", name)] = np.flatnonzero(labels == c)

    out: dict[str, tuple[str, np.ndarray]] = {}
    names = Counter(name for _, name in found)
    for (kind, name), idx in found.items():
        if names[name] > 1:
            same = [k for (k, n), other in found.items()
                    if n == name and np.array_equal(other, idx)]
            if same[0] != kind:  # an identical community already holds the plain name
                continue
            if len(same) < names[name]:
                name = f"{kind}:{name}"
        out[name] = (kind, idx)
    return out


def profile(q: np.ndarray, engagement: np.ndarray | None = None) -> np.ndarray:
    """Mean soft assignment of the members, optionally weighted by engagement rate."""
    if len(q) == 0:
        return np.full(q.shape[1], 1.0 / q.shape[1])
    weights = np.ones(len(q)) if engagement is None else np.exp(engagement - engagement.max())
    p = (weights[:, None] * q).sum(axis=0) / weights.sum()
    return p / p.sum()


def build_communities(posts: list[Post], q: np.ndarray, labels: np.ndarray, engagement: np.ndarray,
                      cluster_names: list[str],
                      groups: Mapping[str, Mapping[str, list[str]]] | None = None,
                      weighting: str = "none", min_size: int = 10, top_n: int = 10,
                      predicted: np.ndarray | None = None) -> dict[str, Community]:
    """Every community's record: kind, size, profile, top hashtags/mentions, engagement stats.

    ``engagement.sorted`` holds the members' actual log rates; ``engagement.predicted_sorted``
    the model's predictions for them. ``rank.py`` places a new photo's *predicted* engagement
    among the latter ("beats 83% of this community's posts"), comparing like with like: a
    regression shrinks predictions towards the mean, so against actual rates every photo would
    look average.
    """
    if weighting not in ("none", "engagement"):
        raise ValueError(f"profile weighting must be 'none' or 'engagement', got {weighting!r}")
    communities = {}
    for name, (kind, idx) in member_sets(posts, labels, cluster_names, groups).items():
        if 0 < len(idx) < min_size and kind != "cluster":
            log.warning("community %r has only %d posts (fewer than %d): its profile is noisy",
                        name, len(idx), min_size)
        members_eng = engagement[idx]
        p = profile(q[idx], members_eng if weighting == "engagement" else None)
        hashtags = Counter(t for i in idx for t in posts[i].hashtags)
        mentions = Counter(m for i in idx for m in posts[i].mentions)
        communities[name] = Community(
            name=name, kind=kind, size=int(len(idx)), profile=[float(v) for v in p],
            top_clusters=[int(c) for c in np.argsort(-p)[:3]],
            top_hashtags=hashtags.most_common(top_n), top_mentions=mentions.most_common(top_n),
            engagement={
                "mean": float(members_eng.mean()) if len(idx) else None,
                "median": float(np.median(members_eng)) if len(idx) else None,
                "sorted": [float(v) for v in np.sort(members_eng)],
                "predicted_sorted": ([float(v) for v in np.sort(predicted[idx])]
                                     if predicted is not None else None),
            },
            members=[posts[i].post_id for i in idx],
        )
    return communities
