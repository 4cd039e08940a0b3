"""The Cluster: one of the K content clusters of the latent space, as a value.

A clusterer (:mod:`mmembed.communities.clustering`) partitions the posts' latents; the build
then describes every part: a name from its most distinctive hashtags and words (class-based
TF-IDF, :mod:`mmembed.communities.naming`), its size, its most typical posts (medoids) and the
mean engagement of its posts. That description is what the bundle stores in
``clusters.json`` and what the report and the app show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cluster:
    """``id`` is the column of the soft assignment ``q``; ``top_terms`` are ``(term, weight)``
    pairs, most distinctive first; ``medoids`` the post ids of its most typical posts."""

    id: int
    name: str
    size: int = 0
    top_terms: list[tuple[str, float]] = field(default_factory=list)
    medoids: list[str] = field(default_factory=list)
    engagement_mean: float | None = None

    @property
    def short_name(self) -> str:
        """The first term of the name ("crag" of "crag · boulder · chalk")."""
        return self.name.split(" · ")[0]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "size": self.size,
                "top_terms": [[t, float(w)] for t, w in self.top_terms],
                "medoids": list(self.medoids), "engagement_mean": self.engagement_mean}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cluster:
        return cls(id=int(d["id"]), name=str(d["name"]), size=int(d.get("size") or 0),
                   top_terms=[(str(t), float(w)) for t, w in d.get("top_terms") or []],
                   medoids=[str(m) for m in d.get("medoids") or []],
                   engagement_mean=(None if d.get("engagement_mean") is None
                                    else float(d["engagement_mean"])))
