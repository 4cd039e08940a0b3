"""What a ranking returns: a :class:`RankingResult` of :class:`RankedPhoto` and
:class:`SkippedInput` values.

The library returns this object; the apps render it (the terminal table, ``ranking.csv``,
``ranking.json``, ``report.html`` and the web app all start from :meth:`RankingResult.to_dict`,
whose schema is ``ranking.json``'s)::

    {
      "bundle": {"name", "path", "created", "k"},
      "community": {"name", "kind", "size", "profile": [K], "top_clusters": [3 ids],
                    "top_hashtags": [{"tag", "count"}], "top_mentions": [{"mention", "count"}],
                    "defaulted": bool},
      "clusters": [{"id", "name"}, ...],
      "settings": {"alpha", "divergence", "eps", "lift_weight", "diversity", "followers", ...},
      "reference": {"posts", "held_out", "source"},  # what audience scores are measured against
      "post": [image, ...],                        # "post these": the recommended photos
      "photos": [RankedPhoto.to_dict(), ...],      # by rank, 1 = best
      "skipped": [{"image", "status": "skipped", "reason"}, ...],
      "counts": {"inputs", "ranked", "skipped"},
      "output_dir": str | None,
    }
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RankedPhoto", "RankingResult", "SkippedInput"]


@dataclass
class RankedPhoto:
    """One ranked photo.

    ``audience_score`` (0–100, ``None`` for a photo unlike the training data): the percentile
    of its ``score`` among the community's own held-out posts scored the same way;
    ``score``: the blend of fit and engagement, standardised against those posts (higher is
    better); ``fit``: ``fit_cluster − lift_weight · fit_local`` in nats (lower is better), with
    ``fit_cluster`` = KL(p_c ‖ q) and ``fit_local`` the local lift; ``engagement``: predicted
    log engagement rate (clipped into the training range when that would extrapolate) and
    ``engagement_rate`` its rate; ``expected_likes``: ``followers · rate`` when followers are
    known; ``q``: soft assignment over the K clusters; ``explanation``: what the photo is and
    how that does for the community; ``neighbours``: its nearest community posts (never
    itself); ``hashtags``/``mentions``: suggestions ``{tag|mention, weight, count}``;
    ``captions``: caption drafts in the community's words (never a copy of a post);
    ``flags``: ``unlike_training_data``, ``engagement_unreliable``, ``duplicate_of:<file>``;
    ``duplicate_group``: the id of its group of near-copies (``None`` when it has none).
    """

    image: str
    name: str
    fit: float
    fit_cluster: float
    fit_local: float
    engagement: float
    q: list[float]
    top_cluster: dict[str, Any]
    explanation: dict[str, Any] = field(default_factory=dict)
    neighbours: list[dict[str, Any]] = field(default_factory=list)
    hashtags: list[dict[str, Any]] = field(default_factory=list)
    mentions: list[dict[str, Any]] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    duplicate_group: int | None = None
    rank: int = 0
    score: float = 0.0
    audience_score: float | None = None
    expected_likes: float | None = None
    status: str = "ranked"

    @property
    def engagement_rate(self) -> float:
        return float(math.exp(self.engagement))

    @property
    def duplicate_of(self) -> str | None:
        for flag in self.flags:
            if flag.startswith("duplicate_of:"):
                return flag.split(":", 1)[1]
        return None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["engagement_rate"] = self.engagement_rate
        d["duplicate_of"] = self.duplicate_of
        order = ("image", "name", "status", "rank", "audience_score", "score", "fit",
                 "fit_cluster", "fit_local", "engagement", "engagement_rate", "expected_likes",
                 "flags", "duplicate_group", "duplicate_of", "q", "top_cluster", "explanation",
                 "neighbours", "hashtags", "mentions", "captions")
        return {k: d[k] for k in order}


@dataclass(frozen=True)
class SkippedInput:
    """An input that could not be ranked, with why."""

    image: str
    reason: str
    status: str = "skipped"

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "status": self.status, "reason": self.reason}


@dataclass
class RankingResult:
    """Every input of one ranking: the ranked photos (by rank) and the skipped ones."""

    bundle: dict[str, Any]
    community: dict[str, Any]
    clusters: list[dict[str, Any]]
    settings: dict[str, Any]
    photos: list[RankedPhoto]
    skipped: list[SkippedInput]
    reference: dict[str, Any] = field(default_factory=dict)
    post: list[str] = field(default_factory=list)
    output_dir: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        return {"inputs": len(self.photos) + len(self.skipped), "ranked": len(self.photos),
                "skipped": len(self.skipped)}

    def to_dict(self) -> dict[str, Any]:
        """The ``ranking.json`` schema (module docstring); plain JSON values."""
        return {"bundle": dict(self.bundle), "community": dict(self.community),
                "clusters": list(self.clusters), "settings": dict(self.settings),
                "reference": dict(self.reference), "post": list(self.post),
                "photos": [p.to_dict() for p in self.photos],
                "skipped": [s.to_dict() for s in self.skipped], "counts": self.counts,
                "output_dir": self.output_dir}
