"""The Post record, the Corpus a source loads, and the engagement target.

A :class:`Post` is one published item. Every source (manifest, instaloader, synthetic, tuxpaint,
openclipart) turns its input into Posts plus a list of :class:`Skipped` inputs, each with a
reason, so that one bad row or file never sinks a load and the user can see what was left out.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

HASHTAG_RE = re.compile(r"(?<![\w#])#(\w+)", re.UNICODE)
MENTION_RE = re.compile(r"(?<![\w@])@([\w.]+\w|\w)", re.UNICODE)


class PostError(ValueError):
    """A record that cannot become a Post. The message names the row and the field."""


def parse_hashtags(caption: str) -> list[str]:
    """Hashtags in a caption, lower-cased, without '#', in order of first use."""
    return list(dict.fromkeys(t.lower() for t in HASHTAG_RE.findall(caption or "")))


def parse_mentions(caption: str) -> list[str]:
    """@mentions in a caption, lower-cased, without '@', in order of first use."""
    return list(dict.fromkeys(m.lower() for m in MENTION_RE.findall(caption or "")))


@dataclass
class Post:
    """One published item.

    ``followers`` is ``None`` when unknown (e.g. posts scraped from a hashtag target); such posts
    are kept and their engagement falls back to a per-source normalisation (see
    :func:`engagement`). ``topic`` and ``true_engagement`` are ground truth, present only in
    generated data.
    """

    post_id: str
    image_path: str
    caption: str = ""
    hashtags: list[str] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)
    likes: int = 0
    comments: int = 0
    followers: int | None = None
    account: str = ""
    timestamp: str = ""
    source: str = ""
    topic: str | None = None
    true_engagement: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


POST_FIELDS = tuple(f.name for f in fields(Post))


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [t for t in re.split(r"[\s,;]+", value) if t]
    return [str(v) for v in value]


def _as_count(value: Any, name: str, where: str, allow_none: bool = False) -> int | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if allow_none:
            return None
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PostError(f"{where}: field '{name}' must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise PostError(f"{where}: field '{name}' must be a non-negative number, got {value!r}")
    return int(number)


def make_post(record: dict[str, Any], where: str) -> Post:
    """Validate a raw record (from JSONL, CSV, ...) and build a Post.

    ``where`` names the record in errors, e.g. ``"posts.csv row 12"``. Hashtags and mentions are
    parsed from the caption when the record has none.
    """
    record = {k: v for k, v in record.items() if k in POST_FIELDS}  # extra columns are ignored
    for required in ("post_id", "image_path"):
        value = record.get(required)
        if value is None or str(value).strip() == "":
            raise PostError(f"{where}: required field '{required}' is missing or empty")
    caption = record.get("caption") or ""
    if not isinstance(caption, str):
        raise PostError(f"{where}: field 'caption' must be text, got {type(caption).__name__}")
    hashtags = [h.lstrip("#").lower() for h in _as_list(record.get("hashtags"))]
    mentions = [m.lstrip("@").lower() for m in _as_list(record.get("mentions"))]
    true_eng = record.get("true_engagement")
    post = Post(
        post_id=str(record["post_id"]).strip(),
        image_path=str(record["image_path"]).strip(),
        caption=caption,
        hashtags=hashtags or parse_hashtags(caption),
        mentions=mentions or parse_mentions(caption),
        likes=_as_count(record.get("likes"), "likes", where),
        comments=_as_count(record.get("comments"), "comments", where),
        followers=_as_count(record.get("followers"), "followers", where, allow_none=True),
        account=str(record.get("account") or "").strip(),
        timestamp=str(record.get("timestamp") or "").strip(),
        source=str(record.get("source") or "").strip(),
        topic=(str(record["topic"]) if record.get("topic") not in (None, "") else None),
        true_engagement=float(true_eng) if true_eng not in (None, "") else None,
    )
    return post


@dataclass(frozen=True)
class Skipped:
    """An input that did not become a Post: ``item`` names the file or row, ``reason`` says why."""

    item: str
    reason: str


@dataclass
class Corpus:
    """What a source loads: posts, the inputs it skipped, counters, and any ground truth.

    ``truth`` holds dataset-level ground truth where it exists, e.g. the synthetic generator's
    ``{"topics": [...], "account_mixtures": {account: {topic: weight}}}``.
    """

    posts: list[Post]
    skipped: list[Skipped] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    truth: dict[str, Any] | None = None
    name: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "posts": len(self.posts),
            "accounts": len({p.account for p in self.posts if p.account}),
            "sources": dict(Counter(p.source for p in self.posts)),
            "followers_unknown": sum(p.followers is None for p in self.posts),
            "skipped": len(self.skipped),
            "skipped_by_reason": skip_reasons(self.skipped),
            **self.counts,
        }


def skip_reasons(skipped: list[Skipped]) -> dict[str, int]:
    """Count skipped inputs by reason (the text before the first ':' groups similar reasons)."""
    return dict(Counter(s.reason.split(":")[0] for s in skipped).most_common())


def engagement(posts: list[Post]) -> np.ndarray:
    """Log engagement rate of each post, the target of the engagement head.

    With a known follower count::

        e = log((likes + comments + 1) / followers)

    When followers are unknown (hashtag targets have no profile), the rate is taken relative to
    the median of the same ``source`` instead, mapped onto the scale of the known rates::

        e = log(likes + comments + 1) - median_source(log(likes + comments + 1)) + m

    where ``m`` is the median log rate of all posts with known followers (``log(0.03)``, a typical
    rate, if there are none). A missing follower count therefore never drops a post.
    """
    inter = np.array([p.likes + p.comments + 1.0 for p in posts], dtype=np.float64)
    followers = np.array([p.followers if p.followers else np.nan for p in posts], dtype=np.float64)
    known = np.isfinite(followers)
    out = np.empty(len(posts), dtype=np.float64)
    out[known] = np.log(inter[known] / followers[known])
    centre = float(np.median(out[known])) if known.any() else math.log(0.03)
    by_source: dict[str, list[int]] = {}
    for i in np.flatnonzero(~known):
        by_source.setdefault(posts[i].source, []).append(i)
    for idx in by_source.values():
        logs = np.log(inter[idx])
        out[idx] = logs - np.median(logs) + centre
    return out.astype(np.float32)


def resolve_inside(base: Path, relative: str) -> Path:
    """Resolve ``relative`` against ``base``; raise PostError if it escapes ``base``."""
    base = base.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise PostError(f"image_path {relative!r} escapes the folder {base}")
    return path
