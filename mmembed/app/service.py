"""The served app's one ranker and the rankings it answered: what the routes call.

:class:`RankService` loads the bundle's :class:`~mmembed.ranking.ranker.Ranker` once, model
and fast image tower included, and ranks each request's photos exactly as ``rank.py`` does: the same
``Ranker.rank`` with the same ``rank.*`` settings (:func:`mmembed.cli.rank.settings_of`), with
only ``alpha`` and ``followers`` taken from the request. A request's photos live in their own
temporary folder under names the server made (:mod:`mmembed.app.uploads`) for as long as the
ranking and its thumbnails take, and the folder is deleted when the request ends, whatever
happened. The result then speaks of each photo by the name the client gave it.

Each ranking is kept in memory (the newest ``app.keep_results``) as its ``ranking.json`` dict
and its report context (:func:`mmembed.report.html.report_context`, thumbnails made while the
files existed), so its page and downloads need no file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mmembed.app.settings import AppSettings
from mmembed.app.uploads import Refused, Upload, save_uploads
from mmembed.data.images import display_path
from mmembed.ranking.ranker import Ranker
from mmembed.ranking.result import SkippedInput
from mmembed.ranking.settings import RankError, RankSettings
from mmembed.report.html import report_context

__all__ = ["RankService", "Ranking"]


@dataclass
class Ranking:
    """One answered request: ``id`` (its page is ``/results/<id>``), ``result`` (the
    ``ranking.json`` dict) and ``report`` (what ``report.j2`` renders)."""

    id: str
    result: dict[str, Any]
    report: dict[str, Any]


class RankService:
    """The ranker of one bundle, loaded once, and the rankings it answered."""

    def __init__(self, ranker: Ranker, settings: RankSettings | None = None,
                 app: AppSettings | None = None):
        self.ranker = ranker
        self.settings = settings or RankSettings()
        self.app = app or AppSettings()
        _ = ranker.model, ranker.posts(), ranker.latents()  # loaded here, not by a request
        # The fast image tower (ONNX Runtime on a CPU) is entered once and held: each ranking
        # would otherwise build its own and, leaving, take it away from one still running.
        self._towers = contextlib.ExitStack()
        self._towers.enter_context(ranker.model.fast_towers(cache_dir=ranker.tower_cache_dir))
        self._turns = threading.BoundedSemaphore(self.app.concurrent_rankings)
        self._lock = threading.Lock()
        self._rankings: OrderedDict[str, Ranking] = OrderedDict()

    @classmethod
    def from_bundle(cls, path: str | Path, settings: RankSettings | None = None,
                    app: AppSettings | None = None,
                    tower_cache_dir: str | Path | None = None) -> RankService:
        """The service of the bundle at ``path``; ``tower_cache_dir`` keeps the image tower's
        ONNX export (``rank.py``'s is ``paths.cache_dir/features``)."""
        settings = settings or RankSettings()
        return cls(Ranker.from_bundle(path, device=settings.device,
                                      tower_cache_dir=tower_cache_dir), settings, app)

    def close(self) -> None:
        """Let go of the fast image tower (the model's own tower serves after this)."""
        self._towers.close()

    # ------------------------------------------------------------------ the bundle
    @property
    def bundle_name(self) -> str:
        return self.ranker.bundle.name

    def communities(self) -> list[dict[str, Any]]:
        """Every community's summary (``rank.py community=list``'s), largest first by kind."""
        order = {"account": 0, "source": 1, "group": 2, "cluster": 3}
        names = sorted(self.ranker.communities, key=lambda n: (
            order.get(self.ranker.communities[n].kind, 9), -self.ranker.communities[n].size, n))
        return [self.ranker.community_summary(n) for n in names]

    @cached_property
    def community_thumbs(self) -> dict[str, list[str]]:
        """Each community's four most typical posts (image paths), as on its card in the
        bundle's ``communities.html``."""
        from mmembed.build import typical

        posts = self.ranker.posts()
        latent = self.ranker.latents()["latent"]
        row_of = {row["post_id"]: i for i, row in enumerate(posts)}
        return {name: [str(posts[i]["image_path"]) for i in typical(
            latent, np.array([row_of[m] for m in c.members if m in row_of], dtype=int), 4)]
            for name, c in self.ranker.communities.items()}

    def cluster_picture(self, cluster: int) -> Path | None:
        """The bundle's contact sheet of ``cluster`` (its typical posts), if it has one."""
        if not 0 <= cluster < self.ranker.k:
            return None
        name = f"{self.ranker.bundle.PICTURES}/cluster_{cluster:02d}.png"
        return self.ranker.bundle.file(name) if self.ranker.bundle.has(name) else None

    # ------------------------------------------------------------------ ranking
    def request_settings(self, alpha: float | None, followers: float | None) -> RankSettings:
        """The served ``rank.*`` settings with the request's ``alpha`` and ``followers``."""
        changes = {k: v for k, v in (("alpha", alpha), ("followers", followers))
                   if v is not None}
        try:
            return dataclasses.replace(self.settings, **changes)
        except RankError as exc:
            raise Refused(422, str(exc)) from None

    def rank(self, files: Iterable[tuple[str | None, BinaryIO]], community: str,
             alpha: float | None = None, followers: float | None = None) -> Ranking:
        """Rank uploaded ``files`` (client name, binary file) for ``community`` (full name or
        short id); raises :class:`~mmembed.app.uploads.Refused` for a request that cannot be
        answered (past a limit, unknown community, no readable photo)."""
        try:
            name = self.ranker.resolve_community(str(community))
        except RankError as exc:
            raise Refused(422, f"{exc}; GET /api/communities lists them") from None
        settings = self.request_settings(alpha, followers)
        with tempfile.TemporaryDirectory(prefix="mmembed-upload-",
                                         dir=self.app.upload_dir) as folder:
            uploads, skipped = save_uploads(files, folder, self.app)
            if not uploads:
                raise Refused(422, "no photo could be read: every upload was skipped", skipped)
            with self._turns:
                try:
                    ranked = self.ranker.rank([u.path for u in uploads], name, settings,
                                              skipped=skipped,
                                              names={u.path: u.name for u in uploads})
                except RankError as exc:
                    raise _unreadable(uploads, skipped, self.ranker.image_size, Path(folder),
                                      exc) from None
            result = _client_names(ranked.to_dict(), uploads, Path(folder))
            report = report_context(result, pixels={u.name: u.path for u in uploads})
        ranking = Ranking(secrets.token_urlsafe(12), result, report)
        with self._lock:
            self._rankings[ranking.id] = ranking
            while len(self._rankings) > self.app.keep_results:
                self._rankings.popitem(last=False)
        return ranking

    def ranking(self, ranking_id: str) -> Ranking | None:
        with self._lock:
            return self._rankings.get(ranking_id)


def _unreadable(uploads: list[Upload], skipped: list[SkippedInput], size: int, folder: Path,
                error: RankError) -> Refused:
    """The refusal of a request none of whose photos could be read, each with why (decoded
    again here: the ranker stops at the first); or ``error`` itself when some could be."""
    from mmembed.data.images import ImageError, load_image

    reasons = [(u, load_image(u.path, size=size)) for u in uploads]
    if not all(isinstance(r, ImageError) for _, r in reasons):
        return Refused(422, str(error).replace(display_path(folder), "upload"))
    return Refused(422, "no photo could be read: none of the uploads is a JPEG, PNG, WebP or "
                   "other image the safe decoder accepts", skipped + [
                       SkippedInput(u.name, r.reason.replace(display_path(u.path), u.name))
                       for u, r in reasons])


def _client_names(result: dict[str, Any], uploads: list[Upload], folder: Path
                  ) -> dict[str, Any]:
    """``result`` speaking of each photo by its client name instead of its server file
    (``image``, "post these", skip reasons; the ranker already named each photo, its
    duplicate flags and its caption drafts by the client's name)."""
    by_path = {display_path(u.path): u.name for u in uploads}
    prefix = display_path(folder)

    def hide(text: str) -> str:
        for path, name in by_path.items():
            text = text.replace(path, name)
        return text.replace(prefix, "upload")

    for photo in result["photos"]:
        photo["image"] = by_path.get(photo["image"], photo["image"])
    result["post"] = [by_path.get(p, p) for p in result["post"]]
    result["skipped"] = [{**s, "image": by_path.get(s["image"], s["image"]),
                          "reason": hide(s["reason"])} for s in result["skipped"]]
    result["community"]["defaulted"] = False
    result["output_dir"] = None
    return result
