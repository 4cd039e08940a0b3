"""Cluster colours and names, the same in every picture and page of a bundle.

A cluster's dots on the map, its bars in the community cards, its term chart and its rows in
the ranking report all take their colour from :func:`cluster_colors`, and their label from
:func:`cluster_name` (shortened by :func:`short_name` where space is tight).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Colour of points whose label is negative (noise / unassigned).
NOISE_COLOR = "#b8b8b8"


def cluster_colors(k: int) -> list[str]:
    """``k`` distinct hex colours, one per cluster id (tab10 / tab20 / tab20b+c / turbo)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    if k <= 0:
        return []
    if k <= 10:
        cols = [colormaps["tab10"](i) for i in range(k)]
    elif k <= 60:
        tab20 = colormaps["tab20"]
        base = [tab20(i) for i in range(0, 20, 2)] + [tab20(i) for i in range(1, 20, 2)]
        for name in ("tab20b", "tab20c"):
            cmap = colormaps[name]
            base += [cmap(i) for i in range(0, 20, 4)] + [cmap(i) for i in range(2, 20, 4)]
            base += [cmap(i) for i in range(1, 20, 4)] + [cmap(i) for i in range(3, 20, 4)]
        cols = base[:k]
    else:  # many clusters: spread over turbo, neighbours in id far apart in hue
        turbo = colormaps["turbo"]
        golden = (math.sqrt(5) - 1) / 2
        cols = [turbo(0.05 + 0.9 * ((i * golden) % 1.0)) for i in range(k)]
    return [to_hex(c) for c in cols]


def hex_rgb(color: str) -> tuple[int, int, int]:
    """``"#1f77b4"`` (or any matplotlib colour) as 0–255 RGB; ValueError if it is not a colour."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    return int(r * 255), int(g * 255), int(b * 255)


def short_name(name: str, max_len: int = 30) -> str:
    """A cluster name cut to ``max_len`` characters, at a term boundary (" · ") when possible."""
    name = " ".join(str(name).split())
    if len(name) <= max_len:
        return name
    out = ""
    for term in name.split(" · "):
        candidate = f"{out} · {term}" if out else term
        if len(candidate) > max_len:
            break
        out = candidate
    if not out:
        out = name[: max_len - 1].rstrip() + "…"
    return out


def cluster_name(names: Sequence[str], k: int) -> str:
    """The name of cluster ``k``: ``names[k]``, "cluster k" when unnamed, "unassigned" if k < 0."""
    if k < 0:
        return "unassigned"
    if 0 <= k < len(names) and str(names[k]).strip():
        return str(names[k])
    return f"cluster {k}"
