"""What a photo is, and how that does for the community: the explanation of one ranked photo.

For a photo with soft assignment ``q`` and local lift ``lift`` (:mod:`mmembed.ranking.density`)
it says, in numbers a sentence can be made of:

- what the photo is: its main cluster and ``q``'s share on it ("mostly barn · farmhouse,
  0.93"), and the runner-up when it has a real share too;
- how much of what the community posts is that: the profile's share ``p_c[k]``;
- how that cluster does for the community: the mean engagement of its own posts in the cluster
  against its mean over all its posts, as a ratio of rates (``exp`` of the difference of mean
  log rates): 1.3 = its posts there do 30 % better than its usual;
- how densely the community posts around it: ``exp(lift)``, how many times as often as posts
  in general the posts around the photo are the community's.

No penalty is listed for clusters the photo is not in: a sunset is not explained by what it
lacks of brunch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["RUNNER_UP", "explain"]

#: A second cluster is named when the photo puts at least this share on it.
RUNNER_UP = 0.2


def explain(ranker, community: str) -> Callable[[np.ndarray, float], dict[str, Any]]:
    """A function ``(q, lift) -> explanation`` for photos ranked for ``community``."""
    c = ranker.communities[community]
    p = np.asarray(c.profile, dtype=np.float64)
    members = set(c.members)
    rows = [r for r in ranker.posts() if r.get("post_id") in members]
    eng = np.asarray([float(r.get("engagement") or 0.0) for r in rows])
    cluster = np.asarray([int(r.get("cluster", -1)) for r in rows])
    overall = float(eng.mean()) if len(eng) else 0.0
    ratio = {k: math.exp(float(eng[cluster == k].mean()) - overall)
             for k in range(ranker.k) if (cluster == k).any()}
    names = ranker.cluster_names

    def one(q: np.ndarray, lift: float) -> dict[str, Any]:
        order = np.argsort(-np.asarray(q))
        top = int(order[0])
        out = {"cluster": {"id": top, "name": names[top]}, "share": float(q[top]),
               "community_share": float(p[top]),
               "cluster_engagement_ratio": ratio.get(top),
               "local_ratio": float(math.exp(lift)), "runner_up": None}
        if len(order) > 1 and q[order[1]] >= RUNNER_UP:
            second = int(order[1])
            out["runner_up"] = {"id": second, "name": names[second], "share": float(q[second]),
                                "community_share": float(p[second])}
        return out

    return one
