"""The ranking's settings, written once: ``rank.*`` on the command line, this dataclass in code.

Registered in Hydra's ConfigStore (:mod:`mmembed.settings`) as the ``rank`` group's default, so
``rank.py``'s config, the web app and the evaluation read the same defaults, and Hydra checks
the types of an override before anything runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from mmembed.ranking import divergence

__all__ = ["RankError", "RankSettings"]


class RankError(RuntimeError):
    """Ranking cannot proceed: no photo readable, an unknown community, a bad setting."""


@dataclass
class RankSettings:
    """How photos are ranked (``rank.*``).

    alpha: score = (1 - alpha) * (-z(fit)) + alpha * z(engagement), z against the
        community's own held-out posts. null (the default): the weight that best ranks the
        accounts' own well-liked validation posts (:mod:`mmembed.ranking.blend`), 0.3 where
        the bundle has none; a number in [0, 1] is used as given.
    lift_weight: fit = KL(p_c || q) - lift_weight * lift, where the lift says how much more
        often than posts in general the posts around the photo are the community's (nats).
        0 = the cluster-level fit alone.
    diversity: 0..1, a maximal-marginal-relevance re-rank of the photos that are not flagged:
        a photo very like one ranked above it steps down unless it scores clearly better.
    post_top: how many photos "post these" recommends at most (each must beat half of the
        community's own posts and carry no flag).
    divergence: kl_pq = KL(p_c || q) (the community must be covered; the seed's direction),
        kl_qp, or js.
    eps: additive smoothing of p_c and q (keeps the fit finite; ~log(1/eps) nats per missing
        cluster).
    batch_size: photos decoded and embedded per step (memory stays flat however many photos
        there are). The model always runs on this many rows (a short batch is padded), so a
        photo's numbers do not depend on the photos beside it; another batch_size changes them
        by ~1e-7 (README, "Reproducibility"). A short batch costs a full one.
    decode_workers: processes decoding the next batches while the model embeds the current
        one (0: decode in the main process).
    decode_memory_mb: MiB of full-size pixels the decoders may hold together (a 7999x7999 PNG
        is 256 MiB decoded, however small its file): a decode waits until its pixels fit.
    neighbours: nearest community posts read for hashtag/mention suggestions.
    suggest_hashtags, suggest_mentions: how many of each to suggest.
    captions: caption drafts per photo (:mod:`mmembed.ranking.captions`; 0: none).
    table_rows: rows of the terminal table (every photo is in ranking.csv / ranking.json).
    device: cpu, cuda, or auto (cuda when available).
    followers: the posting account's followers: expected likes = followers * exp(rate).
    """

    alpha: float | None = None
    lift_weight: float = 1.0
    diversity: float = 0.0
    post_top: int = 5
    divergence: str = "kl_pq"
    eps: float = 1e-3
    batch_size: int = 64
    decode_workers: int = 2
    decode_memory_mb: int = 768
    neighbours: int = 20
    suggest_hashtags: int = 10
    suggest_mentions: int = 5
    captions: int = 3
    table_rows: int = 20
    device: str = "cpu"
    followers: float | None = None

    def __post_init__(self) -> None:
        alpha = self.alpha
        if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, int | float)
                                  or not 0 <= alpha <= 1):
            raise RankError(f"rank.alpha must be a number in [0, 1] (0 = pure fit, 1 = pure "
                            f"engagement) or null (chosen on the bundle's held-out posts), "
                            f"got {alpha!r}")
        for name in ("lift_weight", "diversity"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (
                    name == "diversity" and value > 1):
                raise RankError(f"rank.{name} must be a number "
                                f"{'in [0, 1]' if name == 'diversity' else '>= 0'}, got {value!r}")
        if self.divergence not in divergence.METHODS:
            raise RankError(f"rank.divergence must be one of {', '.join(divergence.METHODS)}, "
                            f"got {self.divergence!r}")
        if not (isinstance(self.eps, int | float) and math.isfinite(self.eps) and self.eps > 0):
            raise RankError(f"rank.eps must be a number > 0 (the smoothing that keeps the fit "
                            f"finite), got {self.eps!r}")
        for name in ("batch_size", "decode_memory_mb", "neighbours"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RankError(f"rank.{name} must be an integer >= 1, got {value!r}")
        for name in ("decode_workers", "suggest_hashtags", "suggest_mentions", "captions",
                     "table_rows", "post_top"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RankError(f"rank.{name} must be an integer >= 0, got {value!r}")
        f = self.followers
        if f is not None and (isinstance(f, bool) or not isinstance(f, int | float) or f < 0):
            raise RankError(f"followers must be a number >= 0 (the account's follower count), "
                            f"got {f!r}")

    def to_dict(self) -> dict[str, Any]:
        """What a ranking result records of its settings."""
        d = asdict(self)
        return {k: d[k] for k in ("alpha", "lift_weight", "diversity", "divergence", "eps",
                                  "followers", "neighbours", "batch_size", "post_top")}
