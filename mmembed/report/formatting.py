"""Numbers and lists as the pages show them, tolerant of None, NaN, numpy scalars and strings.

Bundles and ranking results come from JSON and from users' files, so every helper here accepts
a missing or malformed value and returns a placeholder ("–", "", an empty list) rather than
raising: one odd field must not sink a page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None (booleans, NaN, inf and non-numbers)."""
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def fixed(value: Any, digits: int = 2, signed: bool = False) -> str:
    """``value`` with ``digits`` decimals ("+0.50" when ``signed``), "–" when not a number."""
    x = number(value)
    if x is None:
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def divergence(value: Any) -> str:
    """A divergence in nats: 3 decimals, or 2 significant digits below 0.01."""
    x = number(value)
    if x is None:
        return "–"
    return f"{x:.3f}" if abs(x) >= 0.01 or x == 0 else f"{x:.2g}"


def rate(log_rate: Any) -> str:
    """A log engagement rate as a percentage of followers: 100·exp(log_rate), e.g. "2.4%"."""
    x = number(log_rate)
    if x is None:
        return "–"
    pct = 100.0 * math.exp(min(x, 50.0))
    if pct >= 10:
        return f"{pct:.0f}%"
    if pct >= 0.1:
        return f"{pct:.1f}%"
    return f"{pct:.2g}%"


def count(value: Any) -> str:
    """A count for people: "1,234", "2.5M"; "" when not a number."""
    x = number(value)
    if x is None:
        return ""
    if abs(x) >= 1e6:
        return f"{x / 1e6:.1f}M"
    return f"{round(x):,}"


def one_line(text: Any, limit: int | None = None) -> str:
    """``text`` with its whitespace collapsed, cut to ``limit`` characters with "…"."""
    text = " ".join(str(text or "").split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def plural(n: int, word: str) -> str:
    """``"1 photo"``, ``"2 photos"``, ``"1,000 photos"``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def percent(share: float) -> str:
    """A share in [0, 1] as a percentage: "0%", "<0.1%", "12.3%", "100%"."""
    if share <= 0:
        return "0%"
    if share < 0.001:
        return "<0.1%"
    return f"{100 * share:.1f}%" if share < 0.995 else f"{100 * share:.0f}%"


def profile_shares(value: Any, k: int) -> np.ndarray:
    """A profile (or soft assignment) as shares summing to 1, at least ``k`` long.

    Negative, non-finite and missing entries count as 0; an all-zero or unreadable profile
    stays all zeros (the page then says "no profile").
    """
    try:
        arr = np.asarray(value if value is not None else [], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    arr = np.where(np.isfinite(arr) & (arr > 0), arr, 0.0)
    out = np.zeros(max(k, len(arr)))
    out[: len(arr)] = arr
    total = out.sum()
    return out / total if total > 0 else out


def ranked_items(values: Any, limit: int) -> list[dict[str, Any]]:
    """``[[tag, count], ...]`` (or tags, or ``{"tag": .., "count": ..}``) → ``[{tag, count}]``.

    At most ``limit`` items; a leading "#" or "@" is dropped; counts become "1,234" or "0.5".
    """
    out: list[dict[str, Any]] = []
    for item in list(values or [])[:limit]:
        n: Any = None
        if isinstance(item, Mapping):
            tag = item.get("tag", item.get("name", ""))
            n = item.get("count")
        elif isinstance(item, (list, tuple)) and item:
            tag = item[0]
            n = item[1] if len(item) > 1 else None
        else:
            tag = item
        tag = str(tag).lstrip("#@")
        if not tag:
            continue
        if isinstance(n, (int, float, np.integer, np.floating)) and math.isfinite(n):
            n = f"{int(n):,}" if float(n).is_integer() else f"{float(n):.2g}"
        elif n is not None:
            n = str(n)
        out.append({"tag": tag, "count": n})
    return out


def mentions(values: Any, limit: int) -> list[dict[str, Any]]:
    """``[{mention, count}]`` (or ``[[name, count]]``, or names) → ``[{tag, count}]``."""
    items = [{"tag": m.get("mention", m.get("tag", m.get("name", ""))), "count": m.get("count")}
             if isinstance(m, Mapping) else m for m in list(values or [])]
    return ranked_items(items, limit)
