"""A ranking in plain words, shared by the terminal, ``report.html`` and the web app.

Nats and z-scores stay in the details; what a manager reads first is which photos to post and
why, in the words of :func:`headline` and :func:`explanation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["FLAG_TEXT", "explanation", "flag_text", "headline", "rate", "summary",
           "weighting"]

FLAG_TEXT = {
    "unlike_training_data": "unlike anything in the training posts: its scores are guesses",
    "engagement_unreliable": "the engagement prediction would extrapolate: kept in range",
}


def rate(log_rate: float | None) -> str:
    """A log engagement rate as a percentage ("3.1%")."""
    if log_rate is None:
        return "–"
    import math

    value = 100.0 * math.exp(float(log_rate))
    return f"{value:.1f}%" if value >= 0.1 else f"{value:.2f}%"


FLAG_SHORT = {"unlike_training_data": "unlike training data",
              "engagement_unreliable": "engagement unsure"}


def flag_text(flag: str, short: bool = False) -> str:
    """What a flag means, in a sentence (or a few words with ``short``)."""
    if flag.startswith("duplicate_of:"):
        leader = flag.split(":", 1)[1]
        return f"copy of {leader}" if short else (
            f"a near-copy of {leader}, which ranks above it")
    return (FLAG_SHORT if short else FLAG_TEXT).get(flag, flag)


def _name(image: str) -> str:
    return Path(image).name or image


def headline(result: Mapping[str, Any]) -> list[str]:
    """"Post these N" and one line per recommended photo; or why none is recommended."""
    community = result["community"]["name"]
    photos = {p["image"]: p for p in result["photos"]}
    chosen = [photos[i] for i in result.get("post", []) if i in photos]
    if not chosen:
        ranked = [p for p in result["photos"] if p.get("audience_score") is not None]
        best = max(ranked, key=lambda p: p["audience_score"], default=None)
        tail = (f" The best, {_name(best['image'])}, beats {best['audience_score']:.0f}% of them."
                if best else "")
        return [f"Post none of these yet: no photo beats half of {community}'s own posts."
                + tail]
    lines = [f"Post {'this' if len(chosen) == 1 else f'these {len(chosen)}'} "
             f"for {community}:"]
    for p in chosen:
        lines.append(f"{p['rank']}. {_name(p['image'])}: beats {p['audience_score']:.0f}% of "
                     f"{community}'s own posts. {summary(p, community)}")
    return lines


def summary(photo: Mapping[str, Any], community: str) -> str:
    """The short why: what it is, how much of the community's posting that is, how it does,
    and the predicted engagement."""
    e = photo.get("explanation") or {}
    likes = photo.get("expected_likes")
    engagement = rate(photo.get("engagement")) + (f" (≈ {likes:,.0f} likes)" if likes else "")
    if not e:
        return f"Predicted engagement {engagement}."
    text = (f"Mostly {e['cluster']['name']}, {100 * e['community_share']:.0f}% of what they "
            "post")
    ratio = e.get("cluster_engagement_ratio")
    if ratio is not None:
        text += f", where their posts get {_times(ratio)} engagement"
    return text + f"; predicted engagement {engagement}."


def _times(ratio: float) -> str:
    """"1.3× their usual", "about their usual" within 5 %."""
    return "about their usual" if abs(ratio - 1.0) < 0.05 else f"{ratio:.1f}× their usual"


def explanation(photo: Mapping[str, Any], community: str) -> str:
    """What the photo is and how that does for the community, in one sentence."""
    e = photo.get("explanation") or {}
    if not e:
        return ""
    cluster = e["cluster"]["name"]
    parts = [f"mostly {cluster} ({100 * e['share']:.0f}%)"]
    if e.get("runner_up"):
        r = e["runner_up"]
        parts[0] += f", some {r['name']} ({100 * r['share']:.0f}%)"
    parts.append(f"{100 * e['community_share']:.0f}% of what {community} posts is {cluster}")
    ratio = e.get("cluster_engagement_ratio")
    if ratio is not None:
        parts.append(f"their posts there get {_times(ratio)} engagement")
    local = e.get("local_ratio")
    if local is not None:
        parts.append(f"posts like it are {local:.1f}× as often theirs as posts in general")
    parts.append(f"predicted engagement {rate(photo.get('engagement'))}")
    return "; ".join(parts)


def weighting(settings: Mapping[str, Any]) -> str | None:
    """How the score weighed fit against engagement, and where that weight came from:
    "Score: 85% content fit, 15% predicted engagement (α = 0.15, chosen on …)". None without
    an ``alpha`` in ``settings``."""
    from mmembed.ranking.blend import GIVEN

    alpha = settings.get("alpha")
    if alpha is None:
        return None
    a = min(max(float(alpha), 0.0), 1.0)
    source = settings.get("alpha_source")
    where = "given as rank.alpha" if source == GIVEN else (source or "")
    return (f"Score: {100 * (1 - a):.0f}% content fit, {100 * a:.0f}% predicted engagement "
            f"(α = {float(alpha):g}" + (f", {where})" if where else ")"))
