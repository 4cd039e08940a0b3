"""The ranking report: one self-contained HTML page that answers "which photos should I post?".

:func:`write_report` turns the ``result`` dict that :mod:`mmembed.ranking.ranker` builds into
``report.html``:

* a header: the target community (name, kind, size), its profile as bars over the named content
  clusters, its top hashtags, and the settings (``alpha`` and the divergence, each explained in
  one line) and bundle name;
* "at a glance": one table row per ranked photo (small thumbnail, score, fit, engagement,
  percentile, main cluster), linking to its card;
* one card per ranked photo, in rank order: rank badge, a ~200 px thumbnail, score, fit,
  predicted engagement (a rate in %, and expected likes when known), its percentile among the
  community's posts, its cluster mix ``q`` beside the community profile ``p_c`` (two bars per
  cluster), the clusters that drive the fit, suggested hashtags, mentions and caption drafts, and
  its nearest community posts (thumbnails and captions);
* every skipped input with its reason.

:func:`report_context` is the page as plain data; ``templates/report.j2`` renders it (a page of
the web app can extend that template and render the same context). The page needs no other
file, no network and no JavaScript: CSS is inline and every picture is a small JPEG ``data:``
URI (an unreadable file becomes a grey "unreadable" tile), decoded one at a time through
:mod:`mmembed.report.thumbnails`. Clusters have the same colours as every other picture of the
bundle (:mod:`mmembed.report.colors`). All text from the result (names, captions, hashtags,
reasons) goes through jinja2 with autoescape on; nothing scraped is ever marked safe.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmembed.fileio import atomic_write
from mmembed.ranking.blend import GIVEN
from mmembed.report import formatting as fmt
from mmembed.report import templating, wording
from mmembed.report.colors import cluster_colors, cluster_name, short_name
from mmembed.report.thumbnails import thumbnail_uris

__all__ = ["DIVERGENCE_TEXT", "render_report", "report_context", "skipped_context",
           "write_report"]

#: One line per divergence (config ``rank.divergence``), shown in the report's header.
DIVERGENCE_TEXT = {
    "kl_pq": "KL(community ‖ photo): penalises photos that miss the content this community "
             "posts most",
    "kl_qp": "KL(photo ‖ community): penalises photos with content this community rarely posts",
    "js": "Jensen–Shannon: a symmetric distance between the photo's and the community's "
          "content mix",
}
_KIND_LABELS = {"account": "account", "source": "hashtag audience", "group": "group of accounts",
                "cluster": "content cluster"}
#: Side in pixels of the thumbnails in the "best first" grid at the top of the report.
SMALL = 80
_CAPTION_MAX = 220  # characters of a neighbour's caption shown (the full text is its tooltip)
#: The template of the page, under ``mmembed/report/templates/``.
TEMPLATE = "report.j2"


# --------------------------------------------------------------------------------------------
# the context for the template


def _cluster_table(result: Mapping[str, Any], k_hint: int) -> list[str]:
    """Cluster names indexed by cluster id (``result["clusters"]`` is ``[{id, name}]``)."""
    clusters = result.get("clusters") or []
    names: dict[int, str] = {}
    for pos, c in enumerate(clusters):
        if isinstance(c, Mapping):
            cid, name = c.get("id", pos), c.get("name")
        else:
            cid, name = pos, c
        try:
            names[int(cid)] = str(name) if name not in (None, "") else ""
        except (TypeError, ValueError):
            continue
    k = max([k_hint, len(clusters)] + [i + 1 for i in names])
    return [names.get(i, "") for i in range(k)]


def _settings(result: Mapping[str, Any], n_ranked: int) -> dict[str, Any]:
    s = result.get("settings") or {}
    alpha = fmt.number(s.get("alpha"))
    div = str(s.get("divergence") or "kl_pq")
    if alpha is None:
        alpha_text = "Score blends content fit and predicted engagement."
    else:
        a = min(max(alpha, 0.0), 1.0)
        alpha_text = (
            f"α = {alpha:g}: the score is {100 * (1 - a):.0f}% content fit and "
            f"{100 * a:.0f}% predicted engagement, both measured against this community's "
            "own posts, so the audience score (the share of them a photo beats) means the "
            "same for one photo as for a thousand.")
        source = s.get("alpha_source")
        if isinstance(source, str) and source != GIVEN:
            alpha_text += f" α was {source}."
    eps = fmt.number(s.get("eps"))
    followers = fmt.number(s.get("followers"))
    lift = fmt.number(s.get("lift_weight"))
    return {
        "lift_weight": "" if lift is None else f"{lift:g}",
        "alpha": "–" if alpha is None else f"{alpha:g}",
        "alpha_text": alpha_text,
        "divergence": div,
        "divergence_text": DIVERGENCE_TEXT.get(div, f"divergence {div}") +
        " (fit, in nats; 0 = same mix, lower is better).",
        "eps": "" if eps is None else f"{eps:g}",
        "followers": fmt.count(followers) if followers else "",
    }


def _pair_bars(p: np.ndarray, q: np.ndarray, names: Sequence[str], colors: Sequence[str],
               order: Sequence[int], max_clusters: int) -> tuple[list[dict], str]:
    """Two bars per cluster (photo ``q``, community ``p``) for the clusters that matter, in the
    community's order; the rest summarised in one line."""
    both = np.maximum(p, q)
    keep = [i for i in np.argsort(-both, kind="stable") if both[i] >= 0.01][:max_clusters]
    keep_set = set(int(i) for i in keep)
    rows = [{
        "name": cluster_name(names, i), "short": short_name(cluster_name(names, i), 34),
        "color": colors[i], "id": i,
        "q": f"{100 * q[i]:.1f}", "q_pct": fmt.percent(q[i]),
        "p": f"{100 * p[i]:.1f}", "p_pct": fmt.percent(p[i]),
    } for i in order if i in keep_set]
    rest = [i for i in range(len(p)) if i not in keep_set]
    note = ""
    if rest:
        note = (f"{fmt.plural(len(rest), 'other cluster')}: "
                f"photo {fmt.percent(float(q[rest].sum()))}, "
                f"community {fmt.percent(float(p[rest].sum()))}")
    return rows, note


def _photo_context(photo: Mapping[str, Any], p: np.ndarray, names: Sequence[str],
                   colors: Sequence[str], order: Sequence[int], community: str,
                   thumb: int, max_clusters: int, small: int = SMALL,
                   pixels: Mapping[str, Any] | None = None) -> dict[str, Any]:
    k = len(p)
    q = fmt.profile_shares(photo.get("q"), k)[:k] if k else np.zeros(0)
    image = str(photo.get("image") or "")
    source = image if pixels is None else pixels.get(image)
    uri, small_uri, error = thumbnail_uris(source, thumb, small=small)
    top_raw = photo.get("top_cluster")
    if isinstance(top_raw, Mapping):  # {"id": int, "name": str}
        top_raw = top_raw.get("id")
    try:
        top = int(top_raw)
    except (TypeError, ValueError):
        top = int(np.argmax(q)) if k and q.sum() > 0 else -1
    audience = fmt.number(photo.get("audience_score"))
    likes = fmt.number(photo.get("expected_likes"))
    bars, bars_note = _pair_bars(p, q, names, colors, order, max_clusters) if k else ([], "")
    captions = [fmt.one_line(c) for c in (photo.get("captions") or []) if fmt.one_line(c)]
    return {
        "rank": photo.get("rank", "?"),
        "anchor": f"photo-{photo.get('rank', '')}",
        "image": image,
        "filename": str(photo.get("name") or Path(image).name or image or "(no file name)"),
        "uri": uri, "small_uri": small_uri, "thumb_error": error,
        "score": fmt.fixed(photo.get("score"), 2, signed=True),
        "fit": fmt.divergence(photo.get("fit")),
        "fit_cluster": fmt.divergence(photo.get("fit_cluster")),
        "fit_local": fmt.fixed(photo.get("fit_local"), 2, signed=True),
        "audience": None if audience is None else f"{min(max(audience, 0.0), 100.0):.0f}",
        "why": wording.explanation(photo, community),
        "flags": [{"flag": str(f), "text": wording.flag_text(str(f)),
                   "duplicate": str(f).startswith("duplicate_of:")}
                  for f in (photo.get("flags") or [])],
        "copies": [],
        "rate": fmt.rate(photo.get("engagement")),
        "likes": fmt.count(likes) if likes is not None else "",
        "top": {"name": cluster_name(names, top), "short": short_name(cluster_name(names, top),
                                                                       30),
                "color": colors[top] if 0 <= top < len(colors) else "#b0b4ba"},
        "bars": bars, "bars_note": bars_note,
        "hashtags": fmt.ranked_items(photo.get("hashtags"), 15),
        "mentions": fmt.mentions(photo.get("mentions"), 8),
        "captions": captions[:3],
        "neighbours": list(photo.get("neighbours") or [])[:3],
    }


def _neighbour_context(n: Any, size: int, cache: dict[str, str]) -> dict[str, Any]:
    n = n if isinstance(n, Mapping) else {}
    path = str(n.get("image_path") or "")
    if path not in cache:
        cache[path] = thumbnail_uris(path, size)[0]
    sim = fmt.number(n.get("similarity"))
    engagement = n.get("engagement")
    caption = fmt.one_line(n.get("caption"))
    return {
        "uri": cache[path], "caption": fmt.one_line(caption, _CAPTION_MAX), "full": caption,
        "post_id": str(n.get("post_id") or ""),
        "similarity": "" if sim is None else f"{sim:.2f}",
        "rate": fmt.rate(engagement) if fmt.number(engagement) is not None else "",
    }


def _community_context(result: Mapping[str, Any], names: Sequence[str], colors: Sequence[str],
                       p: np.ndarray, max_clusters: int) -> tuple[dict[str, Any], list[int]]:
    c = result.get("community") or {}
    order = [int(i) for i in np.argsort(-p, kind="stable")] if len(p) else []
    shown = [i for i in order if p[i] >= 0.005][: max(max_clusters, 1) + 4]
    rest = [i for i in order if i not in shown]
    top = max([float(p[i]) for i in shown] + [1e-12])
    bars = [{"name": cluster_name(names, i), "short": short_name(cluster_name(names, i), 40),
             "color": colors[i], "id": i, "pct": fmt.percent(float(p[i])),
             "width": f"{100 * float(p[i]) / top:.1f}"} for i in shown]
    rest_note = ""
    if rest:
        rest_note = f"{fmt.plural(len(rest), 'other cluster')}: {fmt.percent(float(p[rest].sum()))}"
    kind = str(c.get("kind") or "")
    size = fmt.number(c.get("size"))
    return {
        "name": str(c.get("name") or "community"),
        "kind": _KIND_LABELS.get(kind, kind or "community"),
        "size": fmt.plural(int(size), "post") if size is not None else "",
        "bars": bars, "rest_note": rest_note,
        "strip": [{"name": b["name"], "pct": b["pct"], "color": b["color"],
                   "width": f"{100 * float(p[b['id']]):.2f}"} for b in bars],
        "hashtags": fmt.ranked_items(c.get("top_hashtags"), 14),
        "mentions": fmt.mentions(c.get("top_mentions"), 6),
        "defaulted": bool(c.get("defaulted")),
    }, order


def skipped_context(result: Mapping[str, Any]) -> list[dict[str, str]]:
    """``result["skipped"]`` as ``partials/skipped.j2`` shows it: image, name, and the kind
    and detail of the reason."""
    out = []
    for s in list(result.get("skipped") or []):
        if isinstance(s, Mapping):
            item, reason = s.get("image", s.get("item", "")), s.get("reason", "")
        else:
            item, reason = getattr(s, "item", s), getattr(s, "reason", "")
        reason = fmt.one_line(reason) or "unknown reason"
        kind, _, detail = reason.partition(":")
        out.append({"image": str(item), "name": Path(str(item)).name or str(item),
                    "kind": kind.strip(), "detail": detail.strip()})
    return out


def report_context(result: Mapping[str, Any], thumb: int = 200, neighbour_thumb: int = 96,
                   max_clusters: int = 8, pixels: Mapping[str, Any] | None = None
                   ) -> dict[str, Any]:
    """The report for ``result`` as plain data, what ``report.j2`` renders (options as in
    :func:`write_report`).

    ``pixels`` maps a photo's ``image`` to the file its thumbnail is read from, when
    ``image`` is only a name to show (the web app's uploads: the client's file name, never
    opened); a photo missing from it gets the grey placeholder. ``None``: ``image`` is the
    file.

    Keys: ``bundle``, ``community`` (name, kind, size, profile ``bars`` and ``strip``, top
    hashtags and mentions), ``settings`` (alpha and divergence explained), ``n_ranked``,
    ``cards`` (one per ranked photo in rank order, thumbnails as ``data:`` URIs), ``skipped``
    (image, name, kind and detail of the reason), ``output_dir`` and the thumbnail sizes
    ``thumb``, ``small`` and ``neighbour_thumb``. Photos are decoded one at a time; only their
    small JPEG URIs are kept.
    """
    photos = [ph for ph in (result.get("photos") or []) if isinstance(ph, Mapping)
              and ph.get("status", "ranked") == "ranked"]

    def rank_key(ph: Mapping[str, Any]) -> float:
        r = fmt.number(ph.get("rank"))
        return math.inf if r is None else r

    photos.sort(key=rank_key)
    community = result.get("community") or {}
    raw_profile = community.get("profile") or []
    k_hint = max([len(raw_profile)] + [len(ph.get("q") or []) for ph in photos])
    names = _cluster_table(result, k_hint)
    k = len(names)
    colors = cluster_colors(k)
    p = fmt.profile_shares(raw_profile, k)[:k]
    comm, order = _community_context(result, names, colors, p, max_clusters)
    settings = _settings(result, len(photos))
    cache: dict[str, str] = {}  # neighbour thumbnails: a post may be near several photos
    cards = []
    for ph in photos:  # one photo decoded at a time; only its small JPEG data URIs are kept
        card = _photo_context(ph, p, names, colors, order, comm["name"], thumb, max_clusters,
                              pixels=pixels)
        card["neighbours"] = [_neighbour_context(n, neighbour_thumb, cache)
                              for n in card["neighbours"]]
        cards.append(card)
    by_name = {c["filename"]: c for c in cards}
    for c in cards:  # each group's leader lists its near-copies
        for f in c["flags"]:
            if f["duplicate"] and f["flag"].split(":", 1)[1] in by_name:
                by_name[f["flag"].split(":", 1)[1]]["copies"].append(c["filename"])

    bundle = result.get("bundle") or ""
    if isinstance(bundle, Mapping):  # {"name", "path", "created", "k"}
        bundle = bundle.get("name") or Path(str(bundle.get("path") or "")).name
    ref = result.get("reference") or {}
    return {
        "bundle": str(bundle or ""),
        "headline": wording.headline(result) if photos else [],
        "reference": str(ref.get("source") or ""),
        "community": comm,
        "settings": settings,
        "n_ranked": len(photos),
        "cards": cards,
        "skipped": skipped_context(result),
        "output_dir": str(result.get("output_dir") or ""),
        "thumb": int(thumb),
        "small": SMALL,
        "neighbour_thumb": int(neighbour_thumb),
    }




# --------------------------------------------------------------------------------------------
# rendering


def _chunks(ctx: Mapping[str, Any]) -> Iterator[str]:
    """The page in chunks."""
    return templating.generate(TEMPLATE, ctx)


def render_report(result: Mapping[str, Any], *, thumb: int = 200, neighbour_thumb: int = 96,
                  max_clusters: int = 8) -> str:
    """The report for ``result`` as an HTML string (see :func:`write_report`)."""
    return "".join(_chunks(report_context(result, thumb, neighbour_thumb, max_clusters)))


def write_report(result: Mapping[str, Any], path: str | os.PathLike, *, thumb: int = 200,
                 neighbour_thumb: int = 96, max_clusters: int = 8) -> Path:
    """Write the self-contained HTML ranking report for ``result`` to ``path``; returns the path.

    ``result`` is a ranking's dict (:meth:`mmembed.ranking.result.RankingResult.to_dict`:
    ``bundle``, ``community``, ``clusters``, ``settings``, ``photos`` sorted by rank,
    ``skipped``, ``output_dir``); missing
    keys and unreadable pictures degrade gracefully. ``thumb`` is the side of each photo's
    thumbnail, ``neighbour_thumb`` that of its nearest community posts, in pixels;
    ``max_clusters`` caps the clusters drawn in each photo's "content mix" bars (the rest are
    summed in one line). The file is written to a temporary name beside ``path`` and renamed
    into place, so a reader never sees half a report.
    """
    ctx = report_context(result, thumb, neighbour_thumb, max_clusters)

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            for chunk in _chunks(ctx):
                fh.write(chunk)

    return atomic_write(path, write)

