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
      "settings": {"alpha", "divergence", "eps", "followers", "neighbours", "batch_size"},
      "photos": [RankedPhoto.to_dict(), ...],      # by rank, 1 = best
      "skipped": [{"image", "status": "skipped", "reason"}, ...],
      "counts": {"inputs", "ranked", "skipped"},
      "output_dir": str | None,
    }
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RankedPhoto", "RankingResult", "SkippedInput"]


@dataclass
class RankedPhoto:
    """One ranked photo.

    ``fit``: divergence to the community profile (lower is better); ``engagement``: predicted
    log engagement rate; ``expected_likes``: ``followers * exp(engagement)`` when followers are
    known; ``percentile``: of the predicted engagement among the community's own posts
    (0..100); ``q``: soft assignment over the K clusters; ``drivers``: the clusters that drive
    the fit (≤ 3, positive terms); ``neighbours``: the nearest community posts (≤ 3);
    ``hashtags``/``mentions``: suggestions ``{tag|mention, weight, count}``; ``captions``:
    caption ideas.
    """

    image: str
    name: str
    fit: float
    engagement: float
    q: list[float]
    top_cluster: dict[str, Any]
    drivers: list[dict[str, Any]] = field(default_factory=list)
    neighbours: list[dict[str, Any]] = field(default_factory=list)
    hashtags: list[dict[str, Any]] = field(default_factory=list)
    mentions: list[dict[str, Any]] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    rank: int = 0
    score: float = 0.0
    percentile: float = 0.0
    expected_likes: float | None = None
    status: str = "ranked"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        order = ("image", "name", "status", "rank", "score", "fit", "engagement",
                 "expected_likes", "percentile", "q", "top_cluster", "drivers", "neighbours",
                 "hashtags", "mentions", "captions")
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
    output_dir: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        return {"inputs": len(self.photos) + len(self.skipped), "ranked": len(self.photos),
                "skipped": len(self.skipped)}

    def to_dict(self) -> dict[str, Any]:
        """The ``ranking.json`` schema (module docstring); plain JSON values."""
        return {"bundle": dict(self.bundle), "community": dict(self.community),
                "clusters": list(self.clusters), "settings": dict(self.settings),
                "photos": [p.to_dict() for p in self.photos],
                "skipped": [s.to_dict() for s in self.skipped], "counts": self.counts,
                "output_dir": self.output_dir}
