"""The Post record, the Corpus a source loads, and the engagement target.

A :class:`Post` is one published item. Every source (manifest, instaloader, synthetic, tuxpaint,
openclipart) turns its input into Posts plus a list of :class:`Skipped` inputs, each with a
reason, so that one bad row or file never sinks a load and the user can see what was left out.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

HASHTAG_RE = re.compile(r"(?<![\w#])#(\w+)", re.UNICODE)
MENTION_RE = re.compile(r"(?<![\w@])@([\w.]+\w|\w)", re.UNICODE)


class PostError(ValueError):
    """A record that cannot become a Post. The message names the row and the field.

    ``where`` names the record (``"posts.csv row 12"``) and ``detail`` says what is wrong, so a
    source that already names the row in its :class:`Skipped` entry can report ``detail`` alone.
    """

    def __init__(self, detail: str, where: str = ""):
        super().__init__(f"{where}: {detail}" if where else detail)
        self.where = where
        self.detail = detail


def parse_hashtags(caption: str) -> list[str]:
    """Hashtags in a caption, lower-cased, without '#', in order of first use."""
    return list(dict.fromkeys(t.lower() for t in HASHTAG_RE.findall(caption or "")))


def parse_mentions(caption: str) -> list[str]:
    """@mentions in a caption, lower-cased, without '@', in order of first use."""
    return list(dict.fromkeys(m.lower() for m in MENTION_RE.findall(caption or "")))


@dataclass(slots=True)
class Post:
    """One published item.

    Slotted, and its repeated strings (account, source, topic, tags) interned by
    :func:`make_post`: a corpus of millions keeps every post's metadata in memory.

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


def check_text(text: str, name: str, where: str) -> str:
    """``text`` if it can be written as UTF-8; else a :class:`PostError` saying why.

    Two things get past a decoder and only fail later, when the bundle writes its JSON: bytes that
    were not UTF-8 (read with ``errors="surrogateescape"`` they become U+DC80..U+DCFF) and a lone
    surrogate written as a JSON escape (``"\\ud83d"``, half of an emoji cut in two).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        if 0xDC80 <= code <= 0xDCFF:
            raise PostError(
                f"field '{name}' is not UTF-8 text (byte 0x{code - 0xDC00:02x} at "
                f"character {exc.start + 1}); save the file as UTF-8",
                where,
            ) from None
        raise PostError(
            f"field '{name}' holds a lone surrogate U+{code:04X} at character "
            f"{exc.start + 1} (half of a UTF-16 pair, e.g. a cut emoji); fix the text",
            where,
        ) from None
    return text


def _as_text(value: Any, name: str, where: str) -> str:
    """A text field: text, or a number written as text (CSV ids, JSON ``"post_id": 12``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return check_text(value, name, where).strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise PostError(f"field '{name}' must be text, got {type(value).__name__} {value!r:.60}", where)


def _as_list(value: Any, name: str, where: str) -> list[str]:
    """Hashtags or mentions: a list of words, or one text of words split on spaces, ',' or ';'."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [t for t in re.split(r"[\s,;]+", check_text(value, name, where)) if t]
    if isinstance(value, list | tuple):
        return [_as_text(v, name, where) for v in value if v not in (None, "")]
    raise PostError(
        f"field '{name}' must be text or a list of text, got {type(value).__name__} {value!r:.60}",
        where,
    )


def _as_count(value: Any, name: str, where: str, allow_none: bool = False) -> int | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if allow_none:
            return None
        return 0
    number = _as_number(value, name, where)
    if number < 0:
        raise PostError(f"field '{name}' must be a non-negative number, got {value!r:.60}", where)
    return int(number)


def _as_number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool):
        raise PostError(f"field '{name}' must be a number, got {value!r}", where)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise PostError(f"field '{name}' must be a number, got {value!r:.60}", where) from None
    if not math.isfinite(number):
        raise PostError(f"field '{name}' must be a finite number, got {value!r:.60}", where)
    return number


def make_post(record: dict[str, Any], where: str) -> Post:
    """Validate a raw record (from JSONL, CSV, ...) and build a Post.

    ``where`` names the record in errors, e.g. ``"posts.csv row 12"``. Hashtags and mentions are
    parsed from the caption when the record has none. Every bad value raises :class:`PostError`
    naming the field (never another exception), so a source can skip the row and go on.
    """
    record = {k: v for k, v in record.items() if k in POST_FIELDS}  # extra columns are ignored
    text = {
        name: _as_text(record.get(name), name, where)
        for name in ("post_id", "image_path", "account", "timestamp", "source", "topic")
    }
    for required in ("post_id", "image_path"):
        if not text[required]:
            raise PostError(f"required field '{required}' is missing or empty", where)
    if "\0" in text["image_path"]:
        raise PostError("field 'image_path' holds a NUL character", where)
    caption = record.get("caption") or ""
    if not isinstance(caption, str):
        raise PostError(f"field 'caption' must be text, got {type(caption).__name__}", where)
    check_text(caption, "caption", where)
    hashtags = [h.lstrip("#").lower() for h in _as_list(record.get("hashtags"), "hashtags", where)]
    mentions = [m.lstrip("@").lower() for m in _as_list(record.get("mentions"), "mentions", where)]
    hashtags = [sys.intern(h) for h in hashtags or parse_hashtags(caption)]
    mentions = [sys.intern(m) for m in mentions or parse_mentions(caption)]
    true_eng = record.get("true_engagement")
    return Post(
        post_id=text["post_id"],
        image_path=text["image_path"],
        caption=caption,
        hashtags=hashtags,
        mentions=mentions,
        likes=_as_count(record.get("likes"), "likes", where),
        comments=_as_count(record.get("comments"), "comments", where),
        followers=_as_count(record.get("followers"), "followers", where, allow_none=True),
        account=sys.intern(text["account"]),
        timestamp=text["timestamp"],
        source=sys.intern(text["source"]),
        topic=sys.intern(text["topic"]) if text["topic"] else None,
        true_engagement=(
            _as_number(true_eng, "true_engagement", where) if true_eng not in (None, "") else None
        ),
    )


@dataclass(frozen=True)
class Skipped:
    """An input that did not become a Post: ``item`` names the file or row, ``reason`` says why."""

    item: str
    reason: str


@dataclass
class Corpus:
    """What a source loads: posts, the inputs it skipped, counters, and any ground truth.

    ``truth`` holds dataset-level ground truth where it exists, e.g. the synthetic generator's
    ``{"topics": [...], "account_mixtures": {account: {topic: weight}}}``. Per-post truth is
    under keys that begin with ``post_``, each a map of post id to value (the synthetic
    ``post_qualities``); tar shards keep it in a file of its own.
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


def format_skipped(skipped: list[Skipped], examples: int | None = 3) -> str:
    """A report of skipped inputs that stays short when thousands fail alike.

    Grouped by reason (the text before the first ':'), largest group first. A group whose
    inputs all share one reason is one line naming the first ``examples`` of them; otherwise
    the first ``examples`` inputs are listed with their reasons. ``examples=None`` lists all.
    """
    if not skipped:
        return "no inputs skipped"
    groups: dict[str, list[Skipped]] = {}
    for s in skipped:
        groups.setdefault(s.reason.split(":")[0], []).append(s)
    lines = [f"{len(skipped)} input(s) skipped:"]
    for key, items in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        shown = items if examples is None else items[:examples]
        more = len(items) - len(shown)
        if len({s.reason for s in items}) == 1 and len(items) > 1:
            names = ", ".join(s.item for s in shown) + (f", … {more} more" if more else "")
            lines.append(f"  {len(items)} × {items[0].reason} ({names})")
            continue
        lines.append(f"  {len(items)} × {key}:")
        lines.extend(f"    {s.item}: {s.reason}" for s in shown)
        if more:
            lines.append(f"    … {more} more")
    return "\n".join(lines)


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
    """``relative`` joined to ``base`` and normalised lexically; PostError if it leaves ``base``.

    Containment is judged on the path as written (``os.path.normpath`` of the absolute path:
    ``..`` and ``.`` folded, symbolic links *not* resolved), so ``../../etc/passwd`` or an absolute
    path elsewhere is refused, while a folder the user linked in (``images -> /data/shoot``) is
    followed when the file is opened. The returned path keeps those links.
    """
    base = Path(os.path.abspath(base))
    path = Path(os.path.normpath(base / relative))
    if not path.is_relative_to(base):
        raise PostError(
            f"image_path {relative!r:.200} escapes the folder {base}; image paths "
            "must lie inside the manifest's folder"
        )
    return path
