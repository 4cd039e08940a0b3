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
  cluster), the clusters that drive the fit, suggested hashtags, mentions and caption ideas, and
  its nearest community posts (thumbnails and captions);
* every skipped input with its reason.

The page needs no other file, no network and no JavaScript: CSS is inline and every picture is
a small JPEG ``data:`` URI (an unreadable file becomes a grey "unreadable" tile). Pictures are
decoded one at a time through :func:`mmembed.data.images.load_image` (via the helpers of
:mod:`mmembed.report.pictures`, which also give clusters the same colours as every other
picture of the bundle). All text from the result (names, captions, hashtags, reasons) goes
through jinja2 with autoescape on; nothing scraped is ever marked safe.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmembed.report.pictures import (
    _broken_tile,
    _cluster_name,
    _load_thumb,
    _pct,
    _profile,
    _ranked_items,
    cluster_colors,
    short_name,
)

__all__ = ["DIVERGENCE_TEXT", "render_report", "write_report"]

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


# --------------------------------------------------------------------------------------------
# small formatting helpers (tolerant of None, NaN, numpy scalars and strings)


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _fmt(value: Any, digits: int = 2, signed: bool = False) -> str:
    x = _num(value)
    if x is None:
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _fit(value: Any) -> str:
    """A divergence in nats: 3 decimals, or 2 significant digits below 0.01."""
    x = _num(value)
    if x is None:
        return "–"
    return f"{x:.3f}" if abs(x) >= 0.01 or x == 0 else f"{x:.2g}"


def _rate(log_rate: Any) -> str:
    """A log engagement rate as a percentage of followers ("2.4%")."""
    x = _num(log_rate)
    if x is None:
        return "–"
    pct = 100.0 * math.exp(min(x, 50.0))
    if pct >= 10:
        return f"{pct:.0f}%"
    if pct >= 0.1:
        return f"{pct:.1f}%"
    return f"{pct:.2g}%"


def _count(value: Any) -> str:
    x = _num(value)
    if x is None:
        return ""
    if abs(x) >= 1e6:
        return f"{x / 1e6:.1f}M"
    return f"{round(x):,}"


def _clip01(value: Any) -> float:
    x = _num(value)
    return 0.0 if x is None else min(max(x, 0.0), 1.0)


def _one_line(text: Any, limit: int | None = None) -> str:
    text = " ".join(str(text or "").split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


# --------------------------------------------------------------------------------------------
# thumbnails: decoded one at a time, embedded as JPEG data URIs


def _jpeg_uri(img) -> str:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=82, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@functools.lru_cache(maxsize=8)
def _placeholder_uri(size: int, kind: str) -> str:
    return _jpeg_uri(_broken_tile(size, kind))


def _thumbs(path: Any, size: int, small: int | None = None) -> tuple[str, str | None, str | None]:
    """``(uri, small_uri, error)`` of the image at ``path``: a ``size`` px square thumbnail, and
    (when ``small`` is given) a ``small`` px one made from it. An unreadable or missing file
    gives the grey placeholder tile and its reason."""
    img = _load_thumb(path, size) if path not in (None, "") else None
    if img is None or not hasattr(img, "resize"):
        reason = getattr(img, "reason", None) or "missing: no image path"
        kind = reason.split(":")[0].strip()
        uri = _placeholder_uri(size, kind)
        return uri, (_placeholder_uri(small, kind) if small else None), reason
    small_uri = _jpeg_uri(img.resize((small, small))) if small else None
    return _jpeg_uri(img), small_uri, None


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
    alpha = _num(s.get("alpha"))
    div = str(s.get("divergence") or "kl_pq")
    if alpha is None:
        alpha_text = "Score blends content fit and predicted engagement."
    else:
        a = min(max(alpha, 0.0), 1.0)
        alpha_text = (
            f"α = {alpha:g}: the score is {100 * (1 - a):.0f}% content fit and "
            f"{100 * a:.0f}% predicted engagement, both standardised over "
            f"{'these ' + _plural(n_ranked, 'photo') if n_ranked else 'the photos ranked'}; "
            "higher is better.")
    eps = _num(s.get("eps"))
    followers = _num(s.get("followers"))
    return {
        "alpha": "–" if alpha is None else f"{alpha:g}",
        "alpha_text": alpha_text,
        "divergence": div,
        "divergence_text": DIVERGENCE_TEXT.get(div, f"divergence {div}") +
        " (fit, in nats; 0 = same mix, lower is better).",
        "eps": "" if eps is None else f"{eps:g}",
        "followers": _count(followers) if followers else "",
    }


def _pair_bars(p: np.ndarray, q: np.ndarray, names: Sequence[str], colors: Sequence[str],
               order: Sequence[int], max_clusters: int) -> tuple[list[dict], str]:
    """Two bars per cluster (photo ``q``, community ``p``) for the clusters that matter, in the
    community's order; the rest summarised in one line."""
    both = np.maximum(p, q)
    keep = [i for i in np.argsort(-both, kind="stable") if both[i] >= 0.01][:max_clusters]
    keep_set = set(int(i) for i in keep)
    rows = [{
        "name": _cluster_name(names, i), "short": short_name(_cluster_name(names, i), 34),
        "color": colors[i], "id": i,
        "q": f"{100 * q[i]:.1f}", "q_pct": _pct(q[i]),
        "p": f"{100 * p[i]:.1f}", "p_pct": _pct(p[i]),
    } for i in order if i in keep_set]
    rest = [i for i in range(len(p)) if i not in keep_set]
    note = ""
    if rest:
        note = (f"{_plural(len(rest), 'other cluster')}: photo {_pct(float(q[rest].sum()))}, "
                f"community {_pct(float(p[rest].sum()))}")
    return rows, note


def _drivers(photo: Mapping[str, Any], p: np.ndarray, q: np.ndarray, names: Sequence[str],
             colors: Sequence[str], divergence: str, limit: int = 4) -> list[dict]:
    items = []
    for d in list(photo.get("drivers") or []):
        if not isinstance(d, Mapping):
            continue
        value = _num(d.get("contribution"))
        try:
            cid = int(d.get("cluster"))
        except (TypeError, ValueError):
            cid = -1
        if value is None:
            continue
        items.append((cid, value, d.get("name")))
    items = items[:limit]
    scale = max([abs(v) for _, v, _ in items] + [1e-12])
    out = []
    for cid, value, name in items:
        known = 0 <= cid < len(p)
        name = str(name) if name not in (None, "") else _cluster_name(names, cid)
        if known:
            ps, qs = float(p[cid]), float(q[cid])
            if value > 0:
                why = "over-represented in the photo" if divergence == "kl_qp" and qs > ps \
                    else "under-represented in the photo" if ps > qs else "widens the gap"
            else:
                why = "well covered by the photo"
            detail = f"community {_pct(ps)} · photo {_pct(qs)}"
        else:
            why, detail = ("widens the gap" if value > 0 else "narrows the gap"), ""
        out.append({
            "name": name, "short": short_name(name, 34),
            "color": colors[cid] if 0 <= cid < len(colors) else "#b0b4ba",
            "value": f"{value:+.3f}", "width": f"{100 * abs(value) / scale:.1f}",
            "hurts": value > 0, "why": why, "detail": detail,
        })
    return out


def _photo_context(photo: Mapping[str, Any], p: np.ndarray, names: Sequence[str],
                   colors: Sequence[str], order: Sequence[int], divergence: str,
                   thumb: int, max_clusters: int, small: int = SMALL) -> dict[str, Any]:
    k = len(p)
    q = _profile(photo.get("q"), k)[:k] if k else np.zeros(0)
    image = str(photo.get("image") or "")
    uri, small_uri, error = _thumbs(image, thumb, small=small)
    top_raw = photo.get("top_cluster")
    if isinstance(top_raw, Mapping):  # {"id": int, "name": str}
        top_raw = top_raw.get("id")
    try:
        top = int(top_raw)
    except (TypeError, ValueError):
        top = int(np.argmax(q)) if k and q.sum() > 0 else -1
    pct = _num(photo.get("percentile"))
    likes = _num(photo.get("expected_likes"))
    bars, bars_note = _pair_bars(p, q, names, colors, order, max_clusters) if k else ([], "")
    captions = [_one_line(c) for c in (photo.get("captions") or []) if _one_line(c)]
    return {
        "rank": photo.get("rank", "?"),
        "anchor": f"photo-{photo.get('rank', '')}",
        "image": image,
        "filename": str(photo.get("name") or Path(image).name or image or "(no file name)"),
        "uri": uri, "small_uri": small_uri, "thumb_error": error,
        "score": _fmt(photo.get("score"), 2, signed=True),
        "fit": _fit(photo.get("fit")),
        "rate": _rate(photo.get("engagement")),
        "likes": _count(likes) if likes is not None else "",
        "percentile": None if pct is None else f"{min(max(pct, 0.0), 100.0):.0f}",
        "top": {"name": _cluster_name(names, top), "short": short_name(_cluster_name(names, top),
                                                                       30),
                "color": colors[top] if 0 <= top < len(colors) else "#b0b4ba"},
        "bars": bars, "bars_note": bars_note,
        "drivers": _drivers(photo, p, q, names, colors, divergence),
        "hashtags": _ranked_items(photo.get("hashtags"), 15),
        "mentions": _mentions(photo.get("mentions"), 8),
        "captions": captions[:3],
        "neighbours": list(photo.get("neighbours") or [])[:3],
    }


def _mentions(values: Any, limit: int) -> list[dict[str, Any]]:
    """``[{mention, count}]`` (or ``[[name, count]]``, or names) → ``[{tag, count}]``."""
    items = [{"tag": m.get("mention", m.get("tag", m.get("name", ""))), "count": m.get("count")}
             if isinstance(m, Mapping) else m for m in list(values or [])]
    return _ranked_items(items, limit)


def _neighbour_context(n: Any, size: int, cache: dict[str, str]) -> dict[str, Any]:
    n = n if isinstance(n, Mapping) else {}
    path = str(n.get("image_path") or "")
    if path not in cache:
        cache[path] = _thumbs(path, size)[0]
    sim = _num(n.get("similarity"))
    caption = _one_line(n.get("caption"))
    return {
        "uri": cache[path], "caption": _one_line(caption, _CAPTION_MAX), "full": caption,
        "post_id": str(n.get("post_id") or ""),
        "similarity": "" if sim is None else f"{sim:.2f}",
        "rate": _rate(n.get("engagement")) if _num(n.get("engagement")) is not None else "",
    }


def _community_context(result: Mapping[str, Any], names: Sequence[str], colors: Sequence[str],
                       p: np.ndarray, max_clusters: int) -> tuple[dict[str, Any], list[int]]:
    c = result.get("community") or {}
    order = [int(i) for i in np.argsort(-p, kind="stable")] if len(p) else []
    shown = [i for i in order if p[i] >= 0.005][: max(max_clusters, 1) + 4]
    rest = [i for i in order if i not in shown]
    top = max([float(p[i]) for i in shown] + [1e-12])
    bars = [{"name": _cluster_name(names, i), "short": short_name(_cluster_name(names, i), 40),
             "color": colors[i], "id": i, "pct": _pct(float(p[i])),
             "width": f"{100 * float(p[i]) / top:.1f}"} for i in shown]
    rest_note = ""
    if rest:
        rest_note = f"{_plural(len(rest), 'other cluster')}: {_pct(float(p[rest].sum()))}"
    kind = str(c.get("kind") or "")
    size = _num(c.get("size"))
    return {
        "name": str(c.get("name") or "community"),
        "kind": _KIND_LABELS.get(kind, kind or "community"),
        "size": _plural(int(size), "post") if size is not None else "",
        "bars": bars, "rest_note": rest_note,
        "strip": [{"name": b["name"], "pct": b["pct"], "color": b["color"],
                   "width": f"{100 * float(p[b['id']]):.2f}"} for b in bars],
        "hashtags": _ranked_items(c.get("top_hashtags"), 14),
        "mentions": _mentions(c.get("top_mentions"), 6),
        "defaulted": bool(c.get("defaulted")),
    }, order


def _skipped(result: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    for s in list(result.get("skipped") or []):
        if isinstance(s, Mapping):
            item, reason = s.get("image", s.get("item", "")), s.get("reason", "")
        else:
            item, reason = getattr(s, "item", s), getattr(s, "reason", "")
        reason = _one_line(reason) or "unknown reason"
        kind, _, detail = reason.partition(":")
        out.append({"image": str(item), "name": Path(str(item)).name or str(item),
                    "kind": kind.strip(), "detail": detail.strip()})
    return out


def _context(result: Mapping[str, Any], thumb: int, neighbour_thumb: int,
             max_clusters: int) -> dict[str, Any]:
    photos = [ph for ph in (result.get("photos") or []) if isinstance(ph, Mapping)
              and ph.get("status", "ranked") == "ranked"]

    def rank_key(ph: Mapping[str, Any]) -> float:
        r = _num(ph.get("rank"))
        return math.inf if r is None else r

    photos.sort(key=rank_key)
    community = result.get("community") or {}
    raw_profile = community.get("profile") or []
    k_hint = max([len(raw_profile)] + [len(ph.get("q") or []) for ph in photos])
    names = _cluster_table(result, k_hint)
    k = len(names)
    colors = cluster_colors(k)
    p = _profile(raw_profile, k)[:k]
    comm, order = _community_context(result, names, colors, p, max_clusters)
    settings = _settings(result, len(photos))
    cache: dict[str, str] = {}  # neighbour thumbnails: a post may be near several photos
    cards = []
    for ph in photos:  # one photo decoded at a time; only its small JPEG data URIs are kept
        card = _photo_context(ph, p, names, colors, order, settings["divergence"], thumb,
                              max_clusters)
        card["neighbours"] = [_neighbour_context(n, neighbour_thumb, cache)
                              for n in card["neighbours"]]
        cards.append(card)

    bundle = result.get("bundle") or ""
    if isinstance(bundle, Mapping):  # {"name", "path", "created", "k"}
        bundle = bundle.get("name") or Path(str(bundle.get("path") or "")).name
    return {
        "bundle": str(bundle or ""),
        "community": comm,
        "settings": settings,
        "n_ranked": len(photos),
        "cards": cards,
        "skipped": _skipped(result),
        "output_dir": str(result.get("output_dir") or ""),
        "thumb": int(thumb),
        "small": SMALL,
        "neighbour_thumb": int(neighbour_thumb),
    }


# --------------------------------------------------------------------------------------------
# rendering


@functools.lru_cache(maxsize=1)
def _template():
    from jinja2 import Environment, StrictUndefined

    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True)
    return env.from_string(_TEMPLATE)


def _render(ctx: Mapping[str, Any]):
    """Yield the page in chunks."""
    yield from _template().generate(**ctx)


def render_report(result: Mapping[str, Any], *, thumb: int = 200, neighbour_thumb: int = 96,
                  max_clusters: int = 8) -> str:
    """The report for ``result`` as an HTML string (see :func:`write_report`)."""
    return "".join(_render(_context(result, thumb, neighbour_thumb, max_clusters)))


def write_report(result: Mapping[str, Any], path: str | os.PathLike, *, thumb: int = 200,
                 neighbour_thumb: int = 96, max_clusters: int = 8) -> Path:
    """Write the self-contained HTML ranking report for ``result`` to ``path``; returns the path.

    ``result`` is the dict built by :mod:`mmembed.ranking.ranker` (``bundle``, ``community``,
    ``clusters``, ``settings``, ``photos`` sorted by rank, ``skipped``, ``output_dir``); missing
    keys and unreadable pictures degrade gracefully. ``thumb`` is the side of each photo's
    thumbnail, ``neighbour_thumb`` that of its nearest community posts, in pixels;
    ``max_clusters`` caps the clusters drawn in each photo's "content mix" bars (the rest are
    summed in one line). The file is written to a temporary name beside ``path`` and renamed
    into place, so a reader never sees half a report.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ctx = _context(result, thumb, neighbour_thumb, max_clusters)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for chunk in _render(ctx):
                fh.write(chunk)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Photo ranking for {{ community.name }}</title>
<style>
  :root { --ink: #1d2330; --muted: #667085; --faint: #98a2b3; --line: #e6e8ee;
          --bg: #f4f5f8; --card: #ffffff; --accent: #4f46e5; --good: #12805c; --bad: #c2410c; }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--ink);
         font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
               "DejaVu Sans", sans-serif; }
  .wrap { max-width: 1220px; margin: 0 auto; padding: 28px 28px 56px; }
  .muted { color: var(--muted); }
  .chip { display: inline-block; width: 10px; height: 10px; border-radius: 3px;
          margin-right: 6px; vertical-align: -1px; flex: none; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .08em; color: var(--muted);
       margin: 32px 0 12px; }
  .label { font-size: 11px; text-transform: uppercase; letter-spacing: .07em;
           color: var(--muted); font-weight: 600; margin: 0 0 6px; }

  /* header */
  .hero { background: linear-gradient(135deg, #1e1b4b 0%, #3730a3 55%, #6d28d9 100%);
          color: #fff; border-radius: 16px; padding: 26px 30px 24px;
          box-shadow: 0 6px 24px rgba(49, 46, 129, .18); }
  .eyebrow { font-size: 12px; letter-spacing: .12em; text-transform: uppercase; opacity: .75; }
  .hero h1 { margin: 4px 0 6px; font-size: 30px; line-height: 1.15; word-break: break-word; }
  .defaulted { font-size: 13px; opacity: .85; margin: 0 0 8px; }
  .defaulted code { background: rgba(255,255,255,.15); border-radius: 4px; padding: 0 5px; }
  .hero .meta { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
  .pill { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 12px;
          background: rgba(255,255,255,.16); color: #fff; white-space: nowrap; }
  .hero .strip { display: flex; height: 10px; border-radius: 5px; overflow: hidden;
                 margin: 18px 0 4px; background: rgba(255,255,255,.15); }
  .hero .strip span { display: block; height: 100%; }
  .overview { display: grid; grid-template-columns: minmax(0, 1.25fr) minmax(0, 1fr);
              gap: 16px; margin-top: 16px; }
  .panel { background: var(--card); border: 1px solid var(--line); border-radius: 12px;
           padding: 16px 18px; min-width: 0; }
  .pbar { display: grid; grid-template-columns: minmax(0, 46%) 1fr 54px; gap: 10px;
          align-items: center; font-size: 13px; margin: 4px 0; }
  .pbar .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .track { background: #eef0f4; border-radius: 4px; height: 10px; overflow: hidden; }
  .fill { display: block; height: 100%; border-radius: 4px; }
  .num { text-align: right; font-variant-numeric: tabular-nums; color: #344054; }
  .note { font-size: 12px; color: var(--muted); margin-top: 6px; }
  .settings dl { margin: 0; display: grid; grid-template-columns: 92px 1fr; gap: 8px 12px;
                 font-size: 13px; }
  .settings dt { color: var(--muted); font-weight: 600; }
  .settings dd { margin: 0; }
  .settings code { background: #f1f2f6; border-radius: 4px; padding: 0 5px; font-size: 12px; }
  .tags { display: flex; flex-wrap: wrap; gap: 5px; }
  .tag { background: #eef0ff; color: #3730a3; border-radius: 999px; padding: 2px 9px;
         font-size: 12.5px; max-width: 100%; overflow: hidden; text-overflow: ellipsis;
         white-space: nowrap; }
  .tag sup { color: #7c83b8; font-size: 10px; margin-left: 3px; }
  .tag.at { background: #ecfdf3; color: #05603a; }
  .tag.at sup { color: #5c9b7c; }

  /* contact grid */
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax({{ small + 8 }}px, 1fr));
          gap: 12px 8px; background: #fff; border: 1px solid var(--line); border-radius: 12px;
          padding: 14px; }
  .tile { display: flex; flex-direction: column; align-items: center; text-decoration: none;
          color: var(--ink); min-width: 0; }
  .tile .im { position: relative; display: block; border-bottom: 4px solid #b0b4ba;
              border-radius: 8px; overflow: hidden; }
  .tile img { width: {{ small }}px; height: {{ small }}px; object-fit: cover; display: block; }
  .tile .rk { position: absolute; top: 5px; left: 5px; min-width: 24px; height: 24px;
              padding: 0 6px; border-radius: 12px; background: rgba(29,35,48,.82); color: #fff;
              font-size: 12px; font-weight: 700; display: flex; align-items: center;
              justify-content: center; }
  .tile .rk.r1 { background: #d4920b; }
  .tile .rk.r2 { background: #8a94a6; }
  .tile .rk.r3 { background: #a8612f; }
  .tile .fn { font-size: 11.5px; font-weight: 600; margin-top: 5px; max-width: {{ small }}px;
              overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .tile .sc { font-size: 11px; color: var(--muted); font-variant-numeric: tabular-nums; }

  /* cards */
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 16px;
          margin: 0 0 20px; box-shadow: 0 1px 3px rgba(16,24,40,.05); overflow: hidden; }
  .card > header { display: flex; align-items: center; gap: 14px; padding: 14px 20px;
                   border-bottom: 1px solid var(--line); background: #fcfcfd; }
  .badge { flex: none; width: 46px; height: 46px; border-radius: 50%; display: flex;
           align-items: center; justify-content: center; font-weight: 800; font-size: 17px;
           color: #fff; background: #475467; }
  .badge.r1 { background: linear-gradient(135deg, #f6c453, #d4920b); }
  .badge.r2 { background: linear-gradient(135deg, #c9cfd8, #8a94a6); }
  .badge.r3 { background: linear-gradient(135deg, #e0a47a, #a8612f); }
  .card h3 { margin: 0; font-size: 17px; overflow: hidden; text-overflow: ellipsis;
             white-space: nowrap; min-width: 0; }
  .card .sub { font-size: 12.5px; color: var(--muted); display: flex; align-items: center;
               gap: 4px; min-width: 0; }
  .card .sub span.c { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .card .title { min-width: 0; flex: 1; }
  .verdict { margin-left: auto; flex: none; font-size: 13px; font-weight: 600; color: #344054;
             text-align: right; }
  .verdict b { font-size: 20px; color: var(--accent); font-variant-numeric: tabular-nums; }
  .body { display: grid; grid-template-columns: {{ thumb + 4 }}px minmax(0, 1.15fr)
          minmax(0, 1fr); gap: 22px; padding: 18px 20px; }
  .photo img { width: {{ thumb }}px; height: {{ thumb }}px; border-radius: 12px;
               object-fit: cover; display: block; box-shadow: 0 2px 8px rgba(16,24,40,.12); }
  .photo .err { font-size: 11.5px; color: var(--bad); margin-top: 6px; word-break: break-word; }
  .stats { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; margin-top: 12px; }
  .stat { background: #f7f8fa; border-radius: 9px; padding: 7px 10px; }
  .stat .k { font-size: 10.5px; text-transform: uppercase; letter-spacing: .06em;
             color: var(--muted); font-weight: 600; }
  .stat .v { font-size: 17px; font-weight: 700; font-variant-numeric: tabular-nums; }
  .stat .h { font-size: 11px; color: var(--faint); }
  .stat.wide { grid-column: span 2; }
  .beats { margin-top: 8px; font-size: 13px; }
  .beats .track { height: 8px; margin-top: 4px; }
  .beats .fill { background: linear-gradient(90deg, #818cf8, #4f46e5); }
  .legend { display: flex; gap: 16px; font-size: 12px; color: var(--muted); margin-bottom: 6px; }
  .sw { display: inline-block; width: 18px; height: 8px; border-radius: 2px;
        vertical-align: 0; margin-right: 5px; }
  .sw.q { background: #475467; }
  .sw.p { background: repeating-linear-gradient(135deg, #98a2b3 0 3px, #d0d5dd 3px 6px); }
  .pair { display: grid; grid-template-columns: minmax(0, 40%) 1fr 50px; gap: 2px 10px;
          align-items: center; font-size: 12.5px; margin: 0 0 7px; }
  .pair .name { grid-row: span 2; overflow: hidden; text-overflow: ellipsis;
                white-space: nowrap; }
  .pair .track { height: 9px; }
  .pair .fill.p { opacity: .45; background-image: repeating-linear-gradient(135deg,
                  rgba(255,255,255,.55) 0 3px, transparent 3px 6px); }
  .pair .num { font-size: 11.5px; line-height: 1.1; }
  .pair .num.p { color: var(--faint); }
  .driver { display: grid; grid-template-columns: minmax(0, 1fr) 100px 56px; gap: 2px 10px;
            align-items: center; font-size: 12.5px; margin: 0 0 8px; }
  .driver .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .driver .why { grid-column: 1 / span 3; font-size: 11.5px; color: var(--muted);
                 margin-top: -1px; }
  .driver .fill.bad { background: #fb923c; }
  .driver .fill.good { background: #34d399; }
  .driver .num.bad { color: var(--bad); }
  .driver .num.good { color: var(--good); }
  .section + .section { margin-top: 16px; }
  blockquote { margin: 0 0 7px; padding: 6px 10px 6px 12px; border-left: 3px solid #c7d2fe;
               background: #f8f9ff; border-radius: 0 8px 8px 0; font-size: 13px;
               color: #344054; word-break: break-word; }
  .near { border-top: 1px solid var(--line); padding: 14px 20px 16px; background: #fcfcfd; }
  .near .row { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 16px; }
  .nb { display: flex; gap: 10px; min-width: 0; }
  .nb img { width: {{ neighbour_thumb }}px; height: {{ neighbour_thumb }}px; border-radius: 8px;
            object-fit: cover; flex: none; display: block; }
  .nb .txt { min-width: 0; font-size: 12px; color: #344054; overflow: hidden;
             word-break: break-word; }
  .nb .m { font-size: 11px; color: var(--muted); margin-bottom: 3px; }
  .none { color: var(--faint); font-size: 12.5px; font-style: italic; }

  /* skipped */
  .skipped { background: #fff; border: 1px solid var(--line); border-radius: 12px;
             overflow: hidden; }
  .skipped div.s { display: grid; grid-template-columns: minmax(0, 1fr) 130px minmax(0, 1.4fr);
                   gap: 12px; padding: 8px 14px; border-bottom: 1px solid #f0f1f4;
                   font-size: 13px; align-items: baseline; }
  .skipped div.s:last-child { border-bottom: 0; }
  .skipped .f { overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
                font-weight: 600; }
  .skipped .k { display: inline-block; background: #fef3f2; color: #b42318; border-radius: 999px;
                padding: 1px 9px; font-size: 12px; font-weight: 600; justify-self: start; }
  .skipped .d { color: var(--muted); word-break: break-word; }
  footer.page { margin-top: 32px; font-size: 12px; color: var(--faint); }
  @media (max-width: 980px) {
    .overview, .body { grid-template-columns: 1fr; }
    .near .row { grid-template-columns: 1fr; }
  }
</style>
</head>
<body>
<div class="wrap">

<section class="hero">
  <div class="eyebrow">Photo ranking · which photos to post for</div>
  <h1>{{ community.name }}</h1>
  {% if community.defaulted %}<div class="defaulted">No community was given, so the default one is shown; choose another with <code>community=NAME</code>.</div>{% endif %}
  <div class="meta">
    <span class="pill">{{ community.kind }}</span>
    {% if community.size %}<span class="pill">{{ community.size }}</span>{% endif %}
    <span class="pill">{{ n_ranked }} photo{{ '' if n_ranked == 1 else 's' }} ranked</span>
    {% if skipped %}<span class="pill">{{ skipped|length }} skipped</span>{% endif %}
    {% if bundle %}<span class="pill">bundle {{ bundle }}</span>{% endif %}
  </div>
  {% if community.strip %}
  <div class="strip">
    {% for s in community.strip %}<span style="width: {{ s.width }}%; background: {{ s.color }}"
      title="{{ s.name }}: {{ s.pct }}"></span>{% endfor %}
  </div>
  {% endif %}
</section>

<div class="overview">
  <div class="panel">
    <div class="label">What this community posts · share of its posts per content cluster</div>
    {% for b in community.bars %}
    <div class="pbar">
      <span class="name" title="{{ b.name }}"><i class="chip" style="background: {{ b.color }}"></i>{{ b.short }}</span>
      <span class="track"><span class="fill" style="width: {{ b.width }}%; background: {{ b.color }}"></span></span>
      <span class="num">{{ b.pct }}</span>
    </div>
    {% else %}
    <div class="none">no profile</div>
    {% endfor %}
    {% if community.rest_note %}<div class="note">{{ community.rest_note }}</div>{% endif %}
    {% if community.hashtags or community.mentions %}
    <div class="label" style="margin-top: 14px">Community's top hashtags and mentions</div>
    <div class="tags">
      {% for t in community.hashtags %}<span class="tag" title="#{{ t.tag }}">#{{ t.tag }}{% if t.count is not none %}<sup>{{ t.count }}</sup>{% endif %}</span>{% endfor %}
      {% for t in community.mentions %}<span class="tag at" title="@{{ t.tag }}">@{{ t.tag }}{% if t.count is not none %}<sup>{{ t.count }}</sup>{% endif %}</span>{% endfor %}
    </div>
    {% endif %}
  </div>
  <div class="panel settings">
    <div class="label">How photos are scored</div>
    <dl>
      <dt>Score</dt><dd>{{ settings.alpha_text }}</dd>
      <dt>Fit</dt><dd>{{ settings.divergence_text }}
        <span class="muted">(<code>{{ settings.divergence }}</code>{% if settings.eps %},
        smoothing ε = {{ settings.eps }}{% endif %})</span></dd>
      <dt>Engagement</dt><dd>predicted interactions per follower, compared with this
        community's own posts (the percentile). {% if settings.followers %}Expected likes assume
        {{ settings.followers }} followers.{% else %}<span class="muted">Pass
        <code>followers=N</code> (your account's followers) to see expected likes.</span>{% endif %}</dd>
    </dl>
  </div>
</div>

{% if cards %}
<h2>Your photos, best first</h2>
<div class="grid">
  {% for c in cards %}
  <a class="tile" href="#{{ c.anchor }}" title="#{{ c.rank }} {{ c.image }} · main cluster: {{ c.top.name }}">
    <span class="im" style="border-bottom-color: {{ c.top.color }}"><img src="{{ c.small_uri }}" alt="{{ c.filename }}" width="{{ small }}" height="{{ small }}"><span class="rk{% if c.rank in (1, 2, 3) %} r{{ c.rank }}{% endif %}">{{ c.rank }}</span></span>
    <span class="fn">{{ c.filename }}</span>
    <span class="sc">{{ c.score }}{% if c.percentile is not none %} · {{ c.percentile }}%{% endif %}</span>
  </a>
  {% endfor %}
</div>
<div class="note">Thumbnail border: the photo's main content cluster. Under each photo: score · share of this community's posts its predicted engagement beats.</div>

<h2>Ranked photos</h2>
{% for c in cards %}
<article class="card" id="{{ c.anchor }}">
  <header>
    <div class="badge{% if c.rank in (1, 2, 3) %} r{{ c.rank }}{% endif %}">#{{ c.rank }}</div>
    <div class="title">
      <h3 title="{{ c.image }}">{{ c.filename }}</h3>
      <div class="sub"><i class="chip" style="background: {{ c.top.color }}"></i><span class="c" title="{{ c.top.name }}">mostly {{ c.top.name }}</span></div>
    </div>
    <div class="verdict">score <b>{{ c.score }}</b></div>
  </header>
  <div class="body">
    <div class="photo">
      <img src="{{ c.uri }}" alt="{{ c.filename }}" width="{{ thumb }}" height="{{ thumb }}">
      {% if c.thumb_error %}<div class="err">{{ c.thumb_error }}</div>{% endif %}
      <div class="stats">
        <div class="stat"><div class="k">Fit</div><div class="v">{{ c.fit }}</div><div class="h">lower is better</div></div>
        <div class="stat"><div class="k">Engagement</div><div class="v">{{ c.rate }}</div><div class="h">{% if c.likes %}≈ {{ c.likes }} likes{% else %}predicted rate{% endif %}</div></div>
      </div>
      {% if c.percentile is not none %}
      <div class="beats">beats <b>{{ c.percentile }}%</b> of this community's posts
        <div class="track"><span class="fill" style="width: {{ c.percentile }}%"></span></div>
      </div>
      {% endif %}
    </div>
    <div>
      <div class="section">
        <div class="label">Content mix: this photo vs the community</div>
        <div class="legend"><span><i class="sw q"></i>this photo</span><span><i class="sw p"></i>community</span></div>
        {% for b in c.bars %}
        <div class="pair">
          <span class="name" title="{{ b.name }}"><i class="chip" style="background: {{ b.color }}"></i>{{ b.short }}</span>
          <span class="track"><span class="fill" style="width: {{ b.q }}%; background: {{ b.color }}"></span></span>
          <span class="num">{{ b.q_pct }}</span>
          <span class="track"><span class="fill p" style="width: {{ b.p }}%; background-color: {{ b.color }}"></span></span>
          <span class="num p">{{ b.p_pct }}</span>
        </div>
        {% else %}
        <div class="none">no cluster distribution</div>
        {% endfor %}
        {% if c.bars_note %}<div class="note">{{ c.bars_note }}</div>{% endif %}
      </div>
      <div class="section">
        <div class="label">What drives the fit</div>
        {% for d in c.drivers %}
        <div class="driver">
          <span class="name" title="{{ d.name }}"><i class="chip" style="background: {{ d.color }}"></i>{{ d.short }}</span>
          <span class="track"><span class="fill {{ 'bad' if d.hurts else 'good' }}" style="width: {{ d.width }}%"></span></span>
          <span class="num {{ 'bad' if d.hurts else 'good' }}">{{ d.value }}</span>
          <span class="why">{{ d.why }}{% if d.detail %} · {{ d.detail }}{% endif %}</span>
        </div>
        {% else %}
        <div class="none">no drivers reported</div>
        {% endfor %}
      </div>
    </div>
    <div>
      <div class="section">
        <div class="label">Suggested hashtags</div>
        {% if c.hashtags %}
        <div class="tags">
          {% for t in c.hashtags %}<span class="tag" title="#{{ t.tag }}{% if t.count is not none %}: used {{ t.count }}× on similar posts{% endif %}">#{{ t.tag }}{% if t.count is not none %}<sup>{{ t.count }}</sup>{% endif %}</span>{% endfor %}
        </div>
        {% else %}<div class="none">none found</div>{% endif %}
      </div>
      {% if c.mentions %}
      <div class="section">
        <div class="label">Accounts to mention</div>
        <div class="tags">
          {% for t in c.mentions %}<span class="tag at" title="@{{ t.tag }}">@{{ t.tag }}{% if t.count is not none %}<sup>{{ t.count }}</sup>{% endif %}</span>{% endfor %}
        </div>
      </div>
      {% endif %}
      <div class="section">
        <div class="label">Caption ideas</div>
        {% for q in c.captions %}
        <blockquote>“{{ q }}”</blockquote>
        {% else %}
        <div class="none">none found</div>
        {% endfor %}
      </div>
    </div>
  </div>
  <div class="near">
    <div class="label">Closest posts in this community</div>
    {% if c.neighbours %}
    <div class="row">
      {% for n in c.neighbours %}
      <div class="nb">
        <img src="{{ n.uri }}" alt="{{ n.caption }}" title="{{ n.full }}" width="{{ neighbour_thumb }}" height="{{ neighbour_thumb }}">
        <div class="txt">
          <div class="m">{% if n.similarity %}similarity {{ n.similarity }}{% endif %}{% if n.rate %} · engagement {{ n.rate }}{% endif %}</div>
          <div title="{{ n.full }}">{{ n.caption or "(no caption)" }}</div>
        </div>
      </div>
      {% endfor %}
    </div>
    {% else %}<div class="none">no neighbours found</div>{% endif %}
  </div>
</article>
{% endfor %}
{% else %}
<h2>Ranked photos</h2>
<div class="panel none">No photo could be ranked{% if skipped %}: every input was skipped (see below){% endif %}.</div>
{% endif %}

<h2>Skipped ({{ skipped|length }})</h2>
{% if skipped %}
<div class="skipped">
  {% for s in skipped %}
  <div class="s">
    <span class="f" title="{{ s.image }}">{{ s.name }}</span>
    <span class="k">{{ s.kind }}</span>
    <span class="d">{{ s.detail }}{% if s.name != s.image %} <span class="muted">· {{ s.image }}</span>{% endif %}</span>
  </div>
  {% endfor %}
</div>
{% else %}
<div class="panel none">Every input was ranked.</div>
{% endif %}

<footer class="page">mmembed ranking report{% if bundle %} · bundle {{ bundle }}{% endif %}{% if output_dir %} · outputs in {{ output_dir }}{% endif %} · self-contained page: no scripts, no external files.</footer>
</div>
</body>
</html>
"""  # noqa: E501
