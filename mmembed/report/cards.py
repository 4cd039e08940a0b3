"""Community cards: every community of a bundle with its profile, top tags and medoid posts.

* :func:`cards_context` — the cards as plain data, grouped by kind (what a page renders).
* :func:`render_community_cards` — that context through ``communities.j2``, as HTML.
* :func:`community_cards_html` — the self-contained HTML page, written to a path.
* :func:`community_cards_png` — the community profiles as stacked bars, one row per community.

Clusters take their colours from :func:`~mmembed.report.colors.cluster_colors`, so a
community's bars match the map and the term charts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmembed.data.images import ImageError
from mmembed.report import templating
from mmembed.report.colors import cluster_colors, cluster_name, short_name
from mmembed.report.figures import mpl_style, new_figure, output_path, save_png
from mmembed.report.formatting import percent, profile_shares, ranked_items
from mmembed.report.thumbnails import jpeg_data_uri, load_thumbnail

#: JPEG quality of the medoid thumbnails embedded in the cards.
JPEG_QUALITY = 80

_KIND_ORDER = {"account": 0, "source": 1, "group": 2, "cluster": 3}
_KIND_TITLES = {
    "account": "Accounts",
    "source": "Hashtag sources",
    "group": "Groups",
    "cluster": "Clusters",
}


def _format_size(value: Any) -> str:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return str(value) if value not in (None, "") else ""
    return f"{n:,} post{'s' if n != 1 else ''}"


def _medoid_thumbs(
    info: Mapping[str, Any], posts: Sequence[Any] | None, limit: int
) -> list[tuple[str, str]]:
    """(image path, caption) of a community's medoids: post indices, post ids or image paths."""
    by_id = {str(getattr(p, "post_id", "")): p for p in posts} if posts else {}
    out: list[tuple[str, str]] = []
    for m in list(info.get("medoids") or [])[:limit]:
        post = None
        if isinstance(m, (int, np.integer)) and not isinstance(m, bool):
            if posts is not None and 0 <= int(m) < len(posts):
                post = posts[int(m)]
            else:
                continue
        elif str(m) in by_id:
            post = by_id[str(m)]
        if post is not None:
            out.append((str(post.image_path), str(getattr(post, "caption", "") or "")))
        else:
            out.append((str(m), Path(str(m)).name))
    return out


def _thumb_uri(path: str, thumb: int, cache: dict[str, str | None]) -> str | None:
    """A small JPEG of ``path`` as a ``data:`` URI (None when the image cannot be read)."""
    key = f"{path}|{thumb}"
    if key not in cache:
        img = load_thumbnail(path, thumb)
        cache[key] = None if isinstance(img, ImageError) else jpeg_data_uri(img, JPEG_QUALITY)
    return cache[key]


def cards_context(
    communities: Mapping[str, Mapping[str, Any]],
    cluster_names: Sequence[str],
    thumbs: Mapping[str, Sequence[str]] | None = None,
    *,
    posts: Sequence[Any] | None = None,
    title: str = "Communities",
    thumb: int = 72,
    max_thumbs: int = 6,
    max_clusters: int = 6,
    max_tags: int = 12,
) -> dict[str, Any]:
    """What ``communities.j2`` renders: ``title``, ``groups`` of ``cards``, ``legend``, ...

    Each card holds the community's name, kind, size, a colour strip of its whole profile,
    bars for its ``max_clusters`` largest clusters (the rest summed as "other clusters"), its
    top hashtags and mentions and its medoid thumbnails as ``data:`` URIs (None when a file
    cannot be read). Cards are grouped by kind (accounts, hashtag sources, groups, clusters),
    largest first. See :func:`community_cards_html` for ``thumbs`` and ``posts``.
    """
    k = len(cluster_names)
    max_profile = max((len(c.get("profile") or []) for c in communities.values()), default=0)
    colors = cluster_colors(max(k, max_profile))
    caption_of = {str(p.image_path): str(p.caption or "") for p in posts} if posts else {}
    cache: dict[str, str | None] = {}

    cards = []
    for name, info in communities.items():
        info = info if isinstance(info, Mapping) else {}
        kind = str(info.get("kind") or "")
        profile = profile_shares(info.get("profile"), k)
        order = [int(i) for i in np.argsort(-profile, kind="stable") if profile[i] > 0]
        bars = [
            {"name": cluster_name(cluster_names, i), "pct": percent(profile[i]),
             "width": f"{100 * profile[i]:.1f}", "color": colors[i], "other": False}
            for i in order[:max_clusters]
        ]
        rest = float(profile[order[max_clusters:]].sum()) if len(order) > max_clusters else 0.0
        if rest > 0:
            n_rest = len(order) - max_clusters
            bars.append({"name": f"{n_rest} other cluster{'s' if n_rest != 1 else ''}",
                         "pct": percent(rest), "width": f"{100 * rest:.1f}", "color": "#b0b4ba",
                         "other": True})
        strip = [{"name": cluster_name(cluster_names, i), "pct": percent(profile[i]),
                  "width": f"{100 * profile[i]:.3f}", "color": colors[i]}
                 for i in order if profile[i] >= 0.002]
        if thumbs is not None and name in thumbs:
            pairs = [(str(p), caption_of.get(str(p), Path(str(p)).name))
                     for p in list(thumbs[name])[:max_thumbs]]
        else:
            pairs = _medoid_thumbs(info, posts, max_thumbs)
        card_thumbs = [{"uri": _thumb_uri(p, thumb, cache),
                        "caption": " ".join(cap.split())[:300]} for p, cap in pairs]
        try:
            size_key = -float(info.get("size") or 0)
        except (TypeError, ValueError):
            size_key = 0.0
        cards.append({
            "name": str(name),
            "kind": kind or "community",
            "kind_class": re.sub(r"[^a-z]", "", kind.lower()) or "other",
            "size": _format_size(info.get("size")),
            "bars": bars,
            "strip": strip,
            "hashtags": ranked_items(info.get("top_hashtags"), max_tags),
            "mentions": ranked_items(info.get("top_mentions"), max_tags // 2),
            "thumbs": card_thumbs,
            "_sort": (_KIND_ORDER.get(kind, len(_KIND_ORDER)), size_key, str(name)),
        })
    cards.sort(key=lambda c: c["_sort"])
    groups: list[dict[str, Any]] = []
    for card in cards:
        kind = card["kind"]
        if not groups or groups[-1]["kind"] != kind:
            groups.append({"kind": kind, "title": _KIND_TITLES.get(kind, kind.title()),
                           "cards": []})
        groups[-1]["cards"].append(card)
    legend = [{"index": i, "name": cluster_name(cluster_names, i),
               "short": short_name(cluster_name(cluster_names, i), 28), "color": colors[i]}
              for i in range(k)]
    return {"title": title, "groups": groups, "legend": legend, "thumb": int(thumb),
            "n_communities": len(cards), "n_clusters": k}


def render_community_cards(
    communities: Mapping[str, Mapping[str, Any]],
    cluster_names: Sequence[str],
    thumbs: Mapping[str, Sequence[str]] | None = None,
    **options: Any,
) -> str:
    """The community cards page as an HTML string (options as in :func:`cards_context`)."""
    return templating.render(
        "communities.j2", cards_context(communities, cluster_names, thumbs, **options))


def community_cards_html(
    communities: Mapping[str, Mapping[str, Any]],
    cluster_names: Sequence[str],
    path: str | Path,
    thumbs: Mapping[str, Sequence[str]] | None = None,
    *,
    posts: Sequence[Any] | None = None,
    title: str = "Communities",
    thumb: int = 72,
    max_thumbs: int = 6,
    max_clusters: int = 6,
    max_tags: int = 12,
) -> Path:
    """A self-contained HTML page with one card per community; returns ``path``.

    Each card shows the community's name, kind, size, a colour strip of its whole profile, bars
    for its ``max_clusters`` largest clusters (cluster name and percentage; the rest summed as
    "other clusters"), its top hashtags (and top mentions, if present) and medoid thumbnails.
    Cards are grouped by kind (accounts, hashtag sources, groups, clusters), largest first.

    Thumbnails are ``thumbs[name]`` (image paths) when given, else the community's ``medoids``:
    image paths, or post indices / post ids resolved through ``posts``. They are embedded as
    small JPEG ``data:`` URIs (an unreadable file becomes a grey "unreadable" box), so the page
    needs no other file. All text is escaped (jinja2 autoescape); captions become alt/title text.
    """
    path = output_path(path)
    html = render_community_cards(
        communities, cluster_names, thumbs, posts=posts, title=title, thumb=thumb,
        max_thumbs=max_thumbs, max_clusters=max_clusters, max_tags=max_tags)
    path.write_text(html, encoding="utf-8")
    return path


def community_cards_png(
    communities: Mapping[str, Mapping[str, Any]],
    cluster_names: Sequence[str],
    path: str | Path,
    title: str = "Community profiles",
    *,
    max_communities: int = 40,
    dpi: int = 100,
) -> Path:
    """Community profiles as 100 % stacked bars (one row per community, one colour per cluster).

    Rows are grouped by kind and sorted by size; at most ``max_communities`` (the largest) are
    drawn. Segments of 8 % or more are labelled with their cluster id. PNG 900 pixels wide.
    """
    path = output_path(path)
    k = len(cluster_names)
    items = []
    for name, info in communities.items():
        info = info if isinstance(info, Mapping) else {}
        try:
            size = float(info.get("size") or 0)
        except (TypeError, ValueError):
            size = 0.0
        items.append((str(name), str(info.get("kind") or ""), size,
                      profile_shares(info.get("profile"), k)))
    items.sort(key=lambda t: -t[2])
    hidden = max(0, len(items) - max_communities)
    items = items[:max_communities]
    items.sort(key=lambda t: (_KIND_ORDER.get(t[1], len(_KIND_ORDER)), -t[2], t[0]))
    width_k = max([k] + [len(t[3]) for t in items])
    colors = cluster_colors(width_k)
    rows = max(len(items), 1)
    legend_rows = math.ceil(min(width_k, 30) / 3)
    height = 1.3 + 0.34 * rows + 0.22 * legend_rows + 0.4
    with mpl_style():
        from matplotlib.patches import Patch

        fig = new_figure(9, height, dpi)
        bottom = (0.55 + 0.22 * legend_rows) / height
        fig.subplots_adjust(left=0.3, right=0.97, top=1 - 0.85 / height, bottom=bottom)
        ax = fig.add_subplot()
        fig.text(0.02, 1 - 0.32 / height, title, fontsize=14, fontweight="bold", va="center")
        sub = f"{len(items)} communities · share of posts per content cluster"
        if hidden:
            sub += f" · {hidden} smaller not shown"
        fig.text(0.02, 1 - 0.6 / height, sub, fontsize=9, color="#777777", va="center")
        if not items:
            ax.text(0.5, 0.5, "no communities", ha="center", va="center", color="#999999",
                    transform=ax.transAxes)
        y = np.arange(len(items))[::-1]
        for row, (_, _, _, prof) in zip(y, items):
            left = 0.0
            for i in range(len(prof)):
                share = float(prof[i])
                if share <= 0:
                    continue
                ax.barh(row, share, left=left, color=colors[i], height=0.72,
                        edgecolor="white", linewidth=0.5)
                if share >= 0.08:
                    ax.text(left + share / 2, row, str(i), ha="center", va="center",
                            fontsize=7.5, color="white", fontweight="bold")
                left += share
        labels = []
        for name, kind, size, _ in items:
            label = short_name(name, 26)
            labels.append(f"{label}  [{kind or '?'}, {int(size):,}]")
        ax.set_yticks(y, labels)
        ax.tick_params(axis="y", length=0, labelsize=8.5)
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.6, rows - 0.4)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"],
                      fontsize=8)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        shown = list(range(min(width_k, 30)))
        if shown:
            fig.legend(
                handles=[Patch(color=colors[i],
                               label=f"{i}  {short_name(cluster_name(cluster_names, i), 26)}")
                         for i in shown],
                loc="lower left", bbox_to_anchor=(0.02, 0.01), ncol=3, frameon=False,
                fontsize=8, handlelength=1.0, columnspacing=1.5, borderaxespad=0,
            )
        return save_png(fig, path, dpi)

