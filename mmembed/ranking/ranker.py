"""The Ranker: rank new photos for a target community from a bundle.

:class:`Ranker` loads a verified bundle once (the model rebuilt from its config and weights,
the clusterer, the clusters, the communities, the FAISS index). :meth:`Ranker.rank` then
streams the photos in batches of ``rank.batch_size``: decode (:mod:`mmembed.data.photos`, in
DataLoader workers) → the model's ``predict_step`` on the image alone (``z_image``, latent,
predicted engagement) → soft assignment ``q`` → fit ``D(p_c, q)`` and its per-cluster
contributions → suggestions from the photo's nearest community posts
(:mod:`mmembed.ranking.suggest`). Only per-photo numbers and a few short lists are kept, never
pixels, so memory stays flat as the folder grows. Once every photo is seen::

    score = (1 - alpha) * (-z(fit)) + alpha * z(engagement)     z over the candidate photos

(:mod:`mmembed.ranking.score`), ranks (1 = best), the predicted engagement's percentile among
the community's own posts' predictions, and expected likes ``followers * exp(engagement)``
when ``followers`` is given. Unreadable inputs are skipped with their reason, never fatal,
unless none is readable. It returns a :class:`~mmembed.ranking.result.RankingResult`; nothing
here prints or writes files.

Every model and search step runs on exactly ``rank.batch_size`` rows (a short batch is padded
with blank images, the padding dropped at the end): float kernels pick their blocking by the
number of rows, so a photo's numbers are then bit-identical whatever photos share its batch.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mmembed.bundle import Bundle, BundleError
from mmembed.communities.profiles import Community
from mmembed.data.images import display_path
from mmembed.data.photos import photo_loader
from mmembed.models.predict import predict_batches
from mmembed.progress import QUIET, Progress
from mmembed.ranking import divergence
from mmembed.ranking.result import RankedPhoto, RankingResult, SkippedInput
from mmembed.ranking.score import expected_likes, percentile_among, rank_order, score
from mmembed.ranking.settings import RankError, RankSettings
from mmembed.ranking.suggest import CommunityPosts, suggest

__all__ = ["EXPLAIN", "Ranker", "RankError", "device_of"]

#: How many contributions and neighbours explain each photo.
EXPLAIN = 3
_PHOTO_KEYS = ("z_image", "latent_image", "engagement")


def device_of(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (cuda when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Ranker:
    """Everything needed to rank photos, loaded once from a bundle.

    ``Ranker.from_bundle("index/dev")`` then :meth:`rank`. ``load_weights=False`` defers
    rebuilding the model to the first use of :attr:`model` (listing communities needs only
    the JSON files).
    """

    def __init__(self, bundle: Bundle, device: str | torch.device = "cpu",
                 load_weights: bool = True):
        self.bundle = bundle
        self.device = device_of(device) if isinstance(device, str) else device
        self.image_size = bundle.image_size
        self.clusterer = bundle.clusterer()
        self.clusters = bundle.clusters()
        self.communities: dict[str, Community] = bundle.communities()
        self.index = bundle.index(use_gpu=False)
        self._model = bundle.model(self.device) if load_weights else None
        self._posts: list[dict] | None = None

    @classmethod
    def from_bundle(cls, path: str | Path, device: str = "cpu", verify: bool = True,
                    load_weights: bool = True) -> Ranker:
        """Read and verify the bundle (hashes, format version), rebuild model and clusterer."""
        return cls(Bundle.load(path, verify=verify), device, load_weights)

    @property
    def model(self) -> torch.nn.Module:
        """The JointEmbedding in eval mode (rebuilt from the bundle on first use)."""
        if self._model is None:
            self._model = self.bundle.model(self.device)
        return self._model

    @property
    def k(self) -> int:
        return len(self.clusters)

    @property
    def cluster_names(self) -> list[str]:
        return [c.name for c in self.clusters]

    # ---------------------------------------------------------------- communities
    def default_community(self) -> str:
        """The largest account community (else the largest non-cluster one, else any)."""
        for kinds in (("account",), ("source", "group"), ("cluster",)):
            names = [n for n, c in self.communities.items() if c.kind in kinds]
            if names:
                return min(names, key=lambda n: (-self.communities[n].size, n))
        raise BundleError(f"{self.bundle.path} lists no community; rebuild the bundle")

    def closest_communities(self, name: str, n: int = 3) -> list[str]:
        names = list(self.communities)
        lower = {c.lower(): c for c in names}
        close = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)
        found = [lower[c] for c in close]
        found += [c for c in names if name.lower() in c.lower() and c not in found]
        return found[:n]

    def posts(self) -> list[dict]:
        """The bundle's post rows (read once)."""
        if self._posts is None:
            self._posts = list(self.bundle.posts())
        return self._posts

    def community_posts(self, name: str) -> CommunityPosts:
        """The community's posts aligned with their index rows."""
        members = set(self.communities[name].members)
        records = [row for row in self.posts() if row.get("post_id") in members]
        return CommunityPosts.from_records(self.index, records)

    def engagement_reference(self, name: str) -> np.ndarray:
        """The community's posts' *predicted* engagement (what a photo's prediction is placed
        among), else their actual engagement."""
        stats = self.communities[name].engagement
        if stats.get("predicted_sorted"):
            return np.asarray(stats["predicted_sorted"], dtype=np.float64)
        return np.asarray(stats.get("sorted") or [0.0], dtype=np.float64)

    def community_summary(self, name: str, defaulted: bool = False) -> dict:
        return {**self.communities[name].summary(), "defaulted": defaulted}

    # ---------------------------------------------------------------- ranking
    def rank(self, paths: Sequence[str | Path], community: str,
             settings: RankSettings | None = None, skipped: Sequence[SkippedInput] = (),
             progress: Progress = QUIET) -> RankingResult:
        """Rank ``paths`` for ``community`` (see the module docstring). Raises
        :class:`RankError` for an unknown community or when no photo could be read."""
        settings = settings or RankSettings()
        if community not in self.communities:
            raise RankError(f"unknown community {community!r}")
        p_c = np.asarray(self.communities[community].profile, dtype=np.float64)
        members = self.community_posts(community)
        paths = [Path(p) for p in paths]
        photos: list[RankedPhoto] = []
        skipped_rows = list(skipped)
        loader = photo_loader(paths, self.image_size, settings.batch_size,
                              settings.decode_workers, settings.decode_memory_mb)
        batches = predict_batches(self.model, loader, _PHOTO_KEYS, pad_to=settings.batch_size,
                                  keep_padding=True)
        for batch, out in progress.track(batches, len(loader), "ranking photos"):
            skipped_rows += [SkippedInput(display_path(e.path), display_path(e.reason))
                             for e in batch["errors"]]
            if out:
                photos += self._rank_batch(batch["paths"], out, p_c, members, settings)
        if not photos:
            n = len(paths) + len(skipped)
            first = (f" (first: {skipped_rows[0].image}: {skipped_rows[0].reason})"
                     if skipped_rows else "")
            raise RankError(f"no photo could be read: {n} input(s), all skipped{first}; "
                            "pass images= a folder, glob, file or list of JPEG/PNG/WebP photos")
        fits = np.asarray([p.fit for p in photos])
        eng = np.asarray([p.engagement for p in photos])
        scores = score(fits, eng, settings.alpha)
        ranks = rank_order(scores)
        pct = percentile_among(eng, self.engagement_reference(community))
        likes = (expected_likes(eng, settings.followers) if settings.followers is not None
                 else [None] * len(photos))
        for i, photo in enumerate(photos):
            photo.rank, photo.score, photo.percentile = int(ranks[i]), float(scores[i]), float(
                pct[i])
            photo.expected_likes = None if likes[i] is None else float(likes[i])
        photos.sort(key=lambda p: p.rank)
        return RankingResult(
            bundle={"name": self.bundle.name, "path": str(self.bundle.path.resolve()),
                    "created": self.bundle.created, "k": self.k},
            community=self.community_summary(community),
            clusters=[{"id": c.id, "name": c.name} for c in self.clusters],
            settings=settings.to_dict(), photos=photos, skipped=skipped_rows)

    def _rank_batch(self, paths: list[Path], out: dict[str, torch.Tensor], p_c: np.ndarray,
                    members: CommunityPosts, settings: RankSettings) -> list[RankedPhoto]:
        """One batch (padded to ``batch_size`` rows; the padding dropped here)."""
        q = self.clusterer.soft_assign(out["latent_image"].numpy())
        batch_fit = divergence.fit(p_c, q, settings.divergence, settings.eps)
        contributions = divergence.fit_contributions(p_c, q, settings.divergence, settings.eps)
        ideas = suggest(self.index, members, out["z_image"].numpy(),
                        neighbours=settings.neighbours, hashtags=settings.suggest_hashtags,
                        mentions=settings.suggest_mentions, captions=settings.captions,
                        explain=EXPLAIN)
        names = self.cluster_names
        engagement = out["engagement"].numpy()
        photos = []
        for j, path in enumerate(paths):
            top = int(q[j].argmax())
            drivers = [{"cluster": int(c), "name": names[c],
                        "contribution": float(contributions[j, c])}
                       for c in np.argsort(-contributions[j])[:EXPLAIN]
                       if contributions[j, c] > 0]
            photos.append(RankedPhoto(
                image=display_path(path), name=display_path(path.name),
                fit=float(batch_fit[j]), engagement=float(engagement[j]),
                q=[float(v) for v in q[j]], top_cluster={"id": top, "name": names[top]},
                drivers=drivers, **ideas[j]))
        return photos
