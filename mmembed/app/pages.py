"""The served app's pages as HTML, rendered from plain contexts with the templates every mmembed
page shares (:mod:`mmembed.report.templating`, ``templates/app/``):

* ``upload.j2``: the upload form;
* ``communities.j2``: the bundle's communities as the cards of its ``communities.html``
  (:func:`mmembed.report.cards.cards_context`), searchable, and its content clusters with
  their contact sheets;
* ``results.j2``: a ranking, ``report.j2`` itself with the app's bar and the downloads;
* ``error.j2``: why a request was refused.

Autoescape is on in every template, so names, captions and hashtags from the bundle and file
names from the client are shown as text, never as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from mmembed.app.service import Ranking, RankService
from mmembed.ranking.result import SkippedInput
from mmembed.report import templating
from mmembed.report.cards import cards_context
from mmembed.report.colors import cluster_colors
from mmembed.report.html import skipped_context

__all__ = ["communities_page", "error_page", "results_page", "upload_page"]

_KINDS = {"account": "account", "source": "hashtag", "group": "group", "cluster": "cluster"}


def upload_page(service: RankService, selected: str | None = None) -> str:
    """The upload form, ``selected`` (a community's name or id) chosen in its list, else the
    community ``rank.py`` defaults to."""
    communities = service.communities()
    try:
        chosen = service.ranker.resolve_community(selected) if selected else None
    except Exception:  # noqa: BLE001 - an unknown name in the address just selects nothing
        chosen = None
    chosen = chosen or service.ranker.default_community()
    app = service.app
    return templating.render("app/upload.j2", {
        "page": "upload", "bundle": service.bundle_name,
        "communities": [{"id": c["id"], "name": c["name"], "size": c["size"],
                         "kind": _KINDS.get(c["kind"], c["kind"])} for c in communities],
        "selected": service.ranker.community_ids[chosen],
        "alpha": f"{service.ranker.blend_alpha(service.settings)[0]:g}",
        "limits": {"files": app.max_files, "file_mb": f"{app.max_file_mb:g}",
                   "upload_mb": f"{app.max_upload_mb:g}"},
    })


@lru_cache(maxsize=4)
def _cards(service: RankService) -> dict[str, Any]:
    """The community cards of ``service``'s bundle (thumbnails decoded once)."""
    ranker = service.ranker
    names = ranker.cluster_names
    communities = {n: c.to_dict() for n, c in ranker.communities.items()}
    ctx = cards_context(communities, names, service.community_thumbs, title="Communities")
    for group in ctx["groups"]:
        for card in group["cards"]:
            c = ranker.communities[card["name"]]
            card["id"] = ranker.community_ids[card["name"]]
            words = [card["name"], card["id"], c.kind, *(t for t, _ in c.top_hashtags),
                     *(m for m, _ in c.top_mentions), *(names[i] for i in c.top_clusters)]
            card["search"] = " ".join(words).lower()
    return ctx


def _matches(card: dict[str, Any], query: str) -> bool:
    return all(word in card["search"] for word in query.lower().split())


def communities_page(service: RankService, query: str = "") -> str:
    """The communities page, only the communities whose name, id, kind, top hashtags,
    mentions or main clusters hold every word of ``query``."""
    ctx = _cards(service)
    query = " ".join(str(query or "").split())[:200]
    groups = [{**g, "cards": [c for c in g["cards"] if _matches(c, query)]}
              for g in ctx["groups"]]
    groups = [g for g in groups if g["cards"]]
    colors = cluster_colors(service.ranker.k)
    clusters = [{"id": c.id, "name": c.name, "size": c.size, "color": colors[c.id],
                 "terms": [t for t, _ in c.top_terms[:6]],
                 "picture": (f"/pictures/clusters/{c.id}.png"
                             if service.cluster_picture(c.id) else None)}
                for c in service.ranker.clusters]
    return templating.render("app/communities.j2", {
        **ctx, "page": "communities", "bundle": service.bundle_name, "query": query,
        "groups": groups, "n_shown": sum(len(g["cards"]) for g in groups),
        "clusters": clusters})


def results_page(service: RankService, ranking: Ranking) -> str:
    """A ranking's page: ``report.html``'s content with the app's bar and downloads."""
    return "".join(templating.generate("app/results.j2", {
        **ranking.report, "page": "results", "ranking_id": ranking.id,
        "bundle": service.bundle_name}))


def error_page(service: RankService, status: int, message: str,
               skipped: Sequence[SkippedInput] = ()) -> str:
    """Why a request was refused, and the inputs that could not be read if that is why."""
    titles = {404: "Not found", 413: "Upload too large", 422: "Cannot rank this request"}
    return templating.render("app/error.j2", {
        "page": "error", "bundle": service.bundle_name, "status": status,
        "title": titles.get(status, "Request refused"), "message": message,
        "skipped": skipped_context({"skipped": [s.to_dict() for s in skipped]})})
