"""The Ranker: rank new photos for a target community from a bundle.

:class:`Ranker` loads a verified bundle once (the model, the clusterer and its calibration,
the clusters, the communities, the FAISS indexes). Ranking is two steps:

1. :meth:`Ranker.embed` streams the photos in batches of ``rank.batch_size``: decode
   (:mod:`mmembed.data.photos`, in DataLoader workers) → the model's ``predict_step`` on the
   image alone → per photo: its image embedding, its latent, its predicted engagement, its
   distance to the nearest training post (latent and tower features, for the
   ``unlike_training_data`` flag), a perceptual hash and its sharpness and exposure (for
   near-duplicates). Only these numbers are kept, never pixels, so memory stays flat.
2. :meth:`Ranker.score` ranks them for one community, in DESIGN's terms::

       q(x)   = softmax(log q_raw(x) / T)                     calibrated soft assignment
       fit(x) = KL(p~_c || q~(x)) − w · lift_c(x)             nats, lower is better
       score  = (1 − α) · (−z_R(fit)) + α · z_R(ŷ(x))         higher is better
       audience_score(x) = percentile of score(x) among score(R)

   ``T`` the temperature fitted on held-out posts; ``lift_c`` the local lift
   (:mod:`mmembed.ranking.density`): how much more often than posts in general the posts
   around the photo are the community's; ``w`` = ``rank.lift_weight``; ``ŷ`` the predicted
   engagement, clipped into the training range; ``z_R`` standardised against ``R``, the
   community's own held-out posts scored the same way (:meth:`Ranker.reference`), so a score
   means the same for one photo as for a thousand.

   Then the trust flags (:mod:`mmembed.ranking.trust`), the near-duplicate groups
   (:mod:`mmembed.ranking.duplicates`), the order (clean photos first by score, optionally
   re-ranked for diversity; then photos unlike the training data; then near-copies of a
   better photo), the explanation of each photo, its suggestions, its caption drafts
   (:mod:`mmembed.ranking.captions`, from the community's posts in the photo's top
   cluster), and "post these".

Every model and search step runs on exactly ``rank.batch_size`` rows (a short batch is padded,
the padding dropped at the end): float kernels pick their blocking by the number of rows, so
a photo's numbers are bit-identical whatever photos share its batch. Nothing here prints or
writes files.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from mmembed.bundle import Bundle, BundleError
from mmembed.communities.ids import community_ids, resolve_community
from mmembed.communities.profiles import Community
from mmembed.data.images import display_path
from mmembed.data.photos import photo_loader
from mmembed.models.predict import predict_batches
from mmembed.models.towers.photo_stats import PHOTO_STATS_NAMES, photo_statistics
from mmembed.progress import QUIET, Progress
from mmembed.ranking import divergence
from mmembed.ranking.blend import (
    GIVEN,
    MAX_CANDIDATES,
    MAX_COMMUNITIES,
    Case,
    ChosenAlpha,
    choose_alpha,
)
from mmembed.ranking.calibration import temper
from mmembed.ranking.captions import (
    CopyGuard,
    Vocabulary,
    community_vocabulary,
    compose_drafts,
    draft_seed,
)
from mmembed.ranking.density import local_lift
from mmembed.ranking.diversity import display_order
from mmembed.ranking.duplicates import (
    duplicate_groups,
    group_leaders,
    perceptual_hash,
    photo_quality,
)
from mmembed.ranking.result import RankedPhoto, RankingResult, SkippedInput
from mmembed.ranking.score import (
    Reference,
    audience_score,
    expected_likes,
    percentile_among,
    score,
)
from mmembed.ranking.settings import RankError, RankSettings
from mmembed.ranking.suggest import SELF_SIMILARITY, CommunityPosts, suggest
from mmembed.ranking.trust import (
    DUPLICATE,
    UNLIKE,
    UNRELIABLE,
    NearestL2,
    Novelty,
    clip_engagement,
)

__all__ = ["EXPLAIN", "Photos", "Ranker", "RankError", "device_of"]

#: How many neighbours explain each photo.
EXPLAIN = 3
#: An audience score of at least this (better than the community's typical post) is needed
#: to be recommended in "post these".
POST_MIN_SCORE = 50.0
_PHOTO_KEYS = ("z_image", "latent_image", "engagement", "image_features")
_STAT = {name: i for i, name in enumerate(PHOTO_STATS_NAMES)}


def device_of(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (cuda when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def in_chunks(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, rows: int) -> np.ndarray:
    """``fn`` over ``x`` in chunks of exactly ``rows`` rows (the last padded with zeros), so
    every row goes through the same kernels whatever rows surround it."""
    out = []
    for start in range(0, len(x), rows):
        chunk = x[start:start + rows]
        n = len(chunk)
        if n < rows:
            chunk = np.concatenate([chunk, np.zeros((rows - n, *x.shape[1:]), x.dtype)])
        out.append(np.asarray(fn(chunk))[:n])
    return np.concatenate(out) if out else fn(x[:0])


@dataclass
class Photos:
    """Embedded photos, the readable ones in input order, and the inputs that were not."""

    paths: list[Path]
    z_image: np.ndarray      # [n, D] image embedding
    latent: np.ndarray       # [n, d] latent of the image alone
    engagement: np.ndarray   # [n] predicted log engagement rate, as the model gave it
    novelty: np.ndarray      # [n, 2] distance to the nearest training post: latent, features
    unlike: np.ndarray       # [n] bool: farther than nearly every held-out post
    hashes: np.ndarray       # [n, 64] bool perceptual hashes
    quality: np.ndarray      # [n, 3] sharpness, −clipping, −|exposure − mid-grey|
    skipped: list[SkippedInput] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class FitParts:
    """A community's fit of n photos: ``kl`` (cluster level), ``lift`` (local), ``fit``, the
    calibrated ``q`` and the (clipped) engagement with its ``unreliable`` flags."""

    q: np.ndarray
    kl: np.ndarray
    lift: np.ndarray
    fit: np.ndarray
    engagement: np.ndarray
    unreliable: np.ndarray


class Ranker:
    """Everything needed to rank photos, loaded once from a bundle.

    ``Ranker.from_bundle("index/dev")`` then :meth:`rank`. ``load_weights=False`` defers
    rebuilding the model to the first use of :attr:`model` (listing communities needs only
    the JSON files).
    """

    def __init__(self, bundle: Bundle, device: str | torch.device = "cpu",
                 load_weights: bool = True, tower_cache_dir: str | Path | None = None):
        self.bundle = bundle
        # Where the image tower's ONNX export is kept between runs (None: made in memory).
        self.tower_cache_dir = tower_cache_dir
        self.device = device_of(device) if isinstance(device, str) else device
        self.image_size = bundle.image_size
        self.clusterer = bundle.clusterer()
        self.clusters = bundle.clusters()
        self.communities: dict[str, Community] = bundle.communities()
        # On a GPU device the FAISS indexes go to the GPUs FAISS sees (faiss-gpu); with
        # faiss-cpu, or on the CPU device, they stay on the CPU.
        self.index_on_gpu: bool | str = "auto" if self.device.type == "cuda" else False
        self.index = bundle.index(use_gpu=self.index_on_gpu)
        self.calibration = bundle.calibration()
        self.temperature = float(self.calibration["temperature"])
        self.novelty = Novelty(**self.calibration["novelty"])
        self._model = bundle.model(self.device) if load_weights else None
        self._posts: list[dict] | None = None
        self._latents: dict[str, np.ndarray] | None = None
        self._features = None
        self._references: dict[tuple, Reference] = {}
        self._alphas: dict[tuple, ChosenAlpha] = {}
        self._vocabularies: dict[tuple[str, int], Vocabulary] = {}

    @classmethod
    def from_bundle(cls, path: str | Path, device: str = "cpu", verify: bool = True,
                    load_weights: bool = True,
                    tower_cache_dir: str | Path | None = None) -> Ranker:
        """Read and verify the bundle (hashes, format version), rebuild model and clusterer."""
        return cls(Bundle.load(path, verify=verify), device, load_weights, tower_cache_dir)

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

    # ---------------------------------------------------------------- the bundle's posts
    def posts(self) -> list[dict]:
        """The bundle's post rows (read once), every split."""
        if self._posts is None:
            self._posts = list(self.bundle.posts())
        return self._posts

    def latents(self) -> dict[str, np.ndarray]:
        """Every post's vectors, rows as :meth:`posts`."""
        if self._latents is None:
            self._latents = self.bundle.latents()
        return self._latents

    def _split_rows(self, split: str) -> np.ndarray:
        return np.flatnonzero([row.get("split") == split for row in self.posts()])

    # ---------------------------------------------------------------- communities
    def default_community(self) -> str:
        """The largest account community (else the largest non-cluster one, else any)."""
        for kinds in (("account",), ("source", "group"), ("cluster",)):
            names = [n for n, c in self.communities.items() if c.kind in kinds]
            if names:
                return min(names, key=lambda n: (-self.communities[n].size, n))
        raise BundleError(f"{self.bundle.path} lists no community; rebuild the bundle")

    @cached_property
    def community_ids(self) -> dict[str, str]:
        """Community name → its short id (:mod:`mmembed.communities.ids`)."""
        return community_ids({n: c.kind for n, c in self.communities.items()})

    def resolve_community(self, query: str) -> str:
        """The full name of the community ``query`` names: its full name, its short id, or a
        hashtag's bare word. Raises :class:`RankError` naming the closest names otherwise."""
        name = resolve_community(str(query), {n: c.kind for n, c in self.communities.items()})
        if name is None:
            close = self.closest_communities(str(query))
            hint = (f"did you mean {', '.join(repr(self.community_ids[c]) for c in close)}?"
                    if close else "no similar name in this bundle")
            raise RankError(f"unknown community {query!r}: {hint}")
        return name

    def closest_communities(self, name: str, n: int = 3) -> list[str]:
        names = list(self.communities)
        lower = {c.lower(): c for c in names}
        lower.update({i: c for c, i in self.community_ids.items()})
        close = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)
        found = [lower[c] for c in close]
        found += [c for c in names if name.lower() in c.lower() and c not in found]
        return found[:n]

    def community_posts(self, name: str) -> CommunityPosts:
        """The community's posts aligned with their index rows."""
        members = set(self.communities[name].members)
        records = [row for row in self.posts() if row.get("post_id") in members]
        return CommunityPosts.from_records(self.index, records)

    def caption_vocabulary(self, community: str, cluster: int) -> Vocabulary:
        """What ``community``'s posts in ``cluster`` say (phrases, hashtags, mentions), for
        caption drafts; with fewer than :data:`MIN_VOCABULARY_POSTS` of them, what every
        community's posts in that cluster say. Held-out posts never count, and an account
        community's drafts never mention the account itself."""
        key = (community, int(cluster))
        if key not in self._vocabularies:
            c = self.communities[community]
            self._vocabularies[key] = community_vocabulary(
                self.posts(), set(c.members), int(cluster),
                itself=community if c.kind == "account" else None)
        return self._vocabularies[key]

    @cached_property
    def copy_guard(self) -> CopyGuard:
        """Every caption of the bundle (every post, every split): no draft repeats a run of
        :data:`~mmembed.ranking.captions.RUN` of its words."""
        return CopyGuard(r.get("caption") for r in self.posts())

    def caption_drafts(self, community: str, cluster: int, name: str, n: int) -> list[str]:
        """Up to ``n`` caption drafts for the photo ``name`` whose top cluster is ``cluster``
        (:func:`~mmembed.ranking.captions.compose_drafts`, seeded by the file name)."""
        if n <= 0:
            return []
        return compose_drafts(self.caption_vocabulary(community, cluster), n,
                              draft_seed(name), self.copy_guard)

    def community_summary(self, name: str, defaulted: bool = False) -> dict:
        return {**self.communities[name].summary(), "id": self.community_ids[name],
                "defaulted": defaulted}

    # ---------------------------------------------------------------- embedding
    def _feature_index(self):
        if self._features is None:
            self._features = self.bundle.feature_index(use_gpu=self.index_on_gpu)
        return self._features

    def embed(self, paths: Sequence[str | Path], settings: RankSettings | None = None,
              skipped: Sequence[SkippedInput] = (), progress: Progress = QUIET) -> Photos:
        """Decode and embed ``paths`` (step 1 of the module docstring)."""
        settings = settings or RankSettings()
        rows = settings.batch_size
        nearest = NearestL2(self.latents()["latent_image"][self._split_rows("train")])
        features = self._feature_index()
        content_dim = self.model.content_dim
        parts: dict[str, list[np.ndarray]] = {k: [] for k in (
            "z_image", "latent", "engagement", "novelty", "hashes", "quality")}
        ok: list[Path] = []
        skipped_rows = list(skipped)
        loader = photo_loader([Path(p) for p in paths], self.image_size, rows,
                              settings.decode_workers, settings.decode_memory_mb)
        with self.model.fast_towers(cache_dir=self.tower_cache_dir):
            batches = predict_batches(self.model, loader, _PHOTO_KEYS, pad_to=rows,
                                      keep_padding=True)
            for batch, out in progress.track(batches, len(loader), "ranking photos"):
                skipped_rows += [SkippedInput(display_path(e.path), display_path(e.reason))
                                 for e in batch["errors"]]
                if not out:
                    continue
                n = len(batch["paths"])
                ok += batch["paths"]
                latent = out["latent_image"].numpy()
                content = out["image_features"][:, :content_dim].numpy()
                latent_d = nearest.distance(latent)
                feature_d = 1.0 - features.search(content, 1)[0][:, 0].astype(np.float64)
                parts["z_image"].append(out["z_image"].numpy()[:n])
                parts["latent"].append(latent[:n])
                parts["engagement"].append(out["engagement"].numpy()[:n].astype(np.float64))
                parts["novelty"].append(np.stack([latent_d, feature_d], axis=1)[:n])
                pixels = batch["image"]
                parts["hashes"].append(np.stack([perceptual_hash(im.permute(1, 2, 0).numpy())
                                                 for im in pixels]))
                stats = photo_statistics(pixels).numpy().astype(np.float64)
                parts["quality"].append(photo_quality(
                    stats[:, _STAT["sharpness"]],
                    stats[:, _STAT["shadow_clipping"]] + stats[:, _STAT["highlight_clipping"]],
                    stats[:, _STAT["luminance_mean"]] - 0.5))
        if not ok:
            n = len(paths) + len(skipped)
            first = (f" (first: {skipped_rows[0].image}: {skipped_rows[0].reason})"
                     if skipped_rows else "")
            raise RankError(f"no photo could be read: {n} input(s), all skipped{first}; "
                            "pass images= a folder, glob, file or list of JPEG/PNG/WebP photos")
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        return Photos(paths=ok, unlike=self.novelty.unlike(arrays["novelty"][:, 0],
                                                           arrays["novelty"][:, 1]),
                      skipped=skipped_rows, **arrays)

    # ---------------------------------------------------------------- fit
    def _neighbours(self, z_image: np.ndarray, rows: int,
                    own_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, index rows)`` ``[n, k]`` of the ``lift.neighbours`` nearest posts of
        each ``z_image`` (no copy of the photo itself); ``own_rows`` (index rows of posts scored
        as references) are left out of their own neighbourhoods."""
        k = int(self.calibration["lift"]["neighbours"])

        def search(z: np.ndarray) -> np.ndarray:
            sims, _, found = self.index.search(z, k + 1)
            return np.concatenate([sims.astype(np.float64), found.astype(np.float64)], axis=1)

        got = in_chunks(search, z_image.astype(np.float32), rows)
        sims, found = got[:, :k + 1], got[:, k + 1:].astype(np.int64)
        drop = (found < 0) | (sims >= SELF_SIMILARITY)
        if own_rows is not None:
            drop |= found == own_rows[:, None]
        sims = np.where(drop, -np.inf, sims)
        order = np.argsort(drop, axis=1, kind="stable")[:, :k]  # the k nearest kept ones
        return np.take_along_axis(sims, order, axis=1), np.take_along_axis(found, order, axis=1)

    def _lift(self, neighbours: tuple[np.ndarray, np.ndarray], community: str) -> np.ndarray:
        """The local lift for ``community`` of photos with these :meth:`_neighbours`."""
        sims, found = neighbours
        member = np.zeros(self.index.ntotal, dtype=bool)
        member[self.index.rows_of(self.communities[community].members)] = True
        prior = max(member.mean(), 1.0 / self.index.ntotal)
        is_member = np.where(found >= 0, member[np.maximum(found, 0)], False)
        return local_lift(sims, is_member, prior, float(self.calibration["lift"]["bandwidth"]))

    def fit_parts(self, latent: np.ndarray, z_image: np.ndarray, engagement: np.ndarray,
                  community: str, settings: RankSettings, unlike: np.ndarray | None = None,
                  own_rows: np.ndarray | None = None) -> FitParts:
        """Every part of the fit and the clipped engagement of n photos or posts."""
        return self.fit_parts_by_community(latent, z_image, engagement, [community], settings,
                                           unlike, own_rows)[community]

    def fit_parts_by_community(self, latent: np.ndarray, z_image: np.ndarray,
                               engagement: np.ndarray, communities: Sequence[str],
                               settings: RankSettings, unlike: np.ndarray | None = None,
                               own_rows: np.ndarray | None = None) -> dict[str, FitParts]:
        """:meth:`fit_parts` for each of ``communities``; what does not depend on the community
        (the soft assignment, the neighbour search, the clipped engagement) is computed once."""
        rows = settings.batch_size
        q = in_chunks(lambda z: temper(self.clusterer.log_soft_assign(z), self.temperature),
                      latent, rows)
        neighbours = self._neighbours(z_image, rows, own_rows)
        low, high = self.calibration["engagement_range"]
        eng, unreliable = clip_engagement(
            engagement, low, high, np.zeros(len(engagement), bool) if unlike is None else unlike)
        out = {}
        for name in communities:
            p_c = np.asarray(self.communities[name].profile, dtype=np.float64)
            kl = divergence.fit(p_c, q, settings.divergence, settings.eps)
            lift = self._lift(neighbours, name)
            out[name] = FitParts(q=q, kl=kl, lift=lift, fit=kl - settings.lift_weight * lift,
                                 engagement=eng, unreliable=unreliable)
        return out

    def reference(self, community: str, settings: RankSettings) -> Reference:
        """The community's own held-out (validation) posts scored as new photos; with fewer
        than ``min_reference``, its training posts join them (left out of their own
        neighbourhoods)."""
        key = (community, settings.divergence, settings.eps, settings.lift_weight,
               settings.batch_size)
        if key not in self._references:
            members = set(self.communities[community].members)
            posts = self.posts()
            held = [i for i, r in enumerate(posts) if r.get("split") == "val"
                    and r.get("post_id") in members]
            rows, source = held, f"{len(held)} held-out posts"
            if len(held) < int(self.calibration.get("min_reference", 20)):
                rows = [i for i, r in enumerate(posts) if r.get("split") in ("val", "train")
                        and r.get("post_id") in members]
                source = f"{len(rows)} posts: {len(held)} held out, the rest training posts"
            if not rows:
                raise RankError(f"community {community!r} has no post to score against; "
                                "rebuild the bundle with more of its posts")
            lat = self.latents()
            own = self.index.rows_of([posts[i]["post_id"] for i in rows])
            parts = self.fit_parts(lat["latent_image"][rows], lat["z_image"][rows],
                                   lat["engagement_pred"][rows].astype(np.float64), community,
                                   settings, own_rows=own)
            self._references[key] = Reference(parts.fit, parts.engagement, source)
        return self._references[key]

    def chosen_alpha(self, settings: RankSettings) -> ChosenAlpha:
        """The blend weight that best ranks the accounts' own validation posts
        (:mod:`mmembed.ranking.blend`); computed once per fit setting."""
        key = (settings.divergence, settings.eps, settings.lift_weight, settings.batch_size)
        if key not in self._alphas:
            posts = self.posts()
            rows = np.asarray([i for i, r in enumerate(posts) if r.get("split") == "val"],
                              dtype=np.int64)
            if rows.size > MAX_CANDIDATES:
                rng = np.random.default_rng(0)
                rows = np.sort(rng.choice(rows, size=MAX_CANDIDATES, replace=False))
            ids = [posts[i]["post_id"] for i in rows]
            actual = np.asarray([float(posts[i]["engagement"]) for i in rows])
            percentile = percentile_among(actual, actual) / 100.0 if rows.size else actual
            members = {}
            for n, c in self.communities.items():
                if c.kind == "account":
                    own_posts = set(c.members)
                    members[n] = np.asarray([i in own_posts for i in ids], dtype=np.float64)
            judged = sorted((n for n in members if members[n].any()),
                            key=lambda n: (-members[n].sum(), n))[:MAX_COMMUNITIES]
            lat = self.latents()
            parts = self.fit_parts_by_community(
                lat["latent_image"][rows], lat["z_image"][rows],
                lat["engagement_pred"][rows].astype(np.float64), judged, settings,
                own_rows=self.index.rows_of(ids)) if judged else {}
            cases = [Case(parts[n].fit, parts[n].engagement, self.reference(n, settings),
                          members[n] * percentile) for n in judged]
            self._alphas[key] = choose_alpha(cases, posts=int(rows.size))
        return self._alphas[key]

    def blend_alpha(self, settings: RankSettings) -> tuple[float, str]:
        """``(alpha, where it came from)``: ``rank.alpha`` when given, else the chosen one."""
        if settings.alpha is not None:
            return float(settings.alpha), GIVEN
        chosen = self.chosen_alpha(settings)
        return chosen.alpha, chosen.source

    # ---------------------------------------------------------------- ranking
    def rank(self, paths: Sequence[str | Path], community: str,
             settings: RankSettings | None = None, skipped: Sequence[SkippedInput] = (),
             progress: Progress = QUIET,
             names: Mapping[str | Path, str] | None = None) -> RankingResult:
        """:meth:`embed` then :meth:`score`."""
        settings = settings or RankSettings()
        community = self.resolve_community(community)
        return self.score(self.embed(paths, settings, skipped, progress), community, settings,
                          names)

    def score(self, photos: Photos, community: str, settings: RankSettings | None = None,
              names: Mapping[str | Path, str] | None = None) -> RankingResult:
        """Rank embedded ``photos`` for ``community`` (step 2 of the module docstring).

        ``names``: the name each photo is shown and referred to by (duplicate flags) and whose
        hash seeds its caption drafts, by path; default its file name. The app passes the
        client's names for the files it saved under names of its own."""
        from mmembed.ranking.explain import explain

        settings = settings or RankSettings()
        community = self.resolve_community(community)
        parts = self.fit_parts(photos.latent, photos.z_image, photos.engagement, community,
                               settings, unlike=photos.unlike)
        reference = self.reference(community, settings)
        alpha, alpha_source = self.blend_alpha(settings)
        scores = score(parts.fit, parts.engagement, alpha, reference)
        audience = audience_score(scores, reference, alpha)
        groups = duplicate_groups(photos.hashes, photos.z_image)
        leaders = group_leaders(groups, scores, parts.engagement, photos.quality)
        sizes = np.bincount(groups)
        shown = {Path(k): v for k, v in (names or {}).items()}
        names = [shown.get(p) or display_path(p.name) for p in photos.paths]
        members = self.community_posts(community)
        ideas = []
        for start in range(0, len(photos), settings.batch_size):
            chunk = photos.z_image[start:start + settings.batch_size]
            pad = np.zeros((settings.batch_size - len(chunk), chunk.shape[1]), chunk.dtype)
            ideas += suggest(self.index, members, np.concatenate([chunk, pad]),
                             neighbours=settings.neighbours, hashtags=settings.suggest_hashtags,
                             mentions=settings.suggest_mentions,
                             explain=EXPLAIN)[:len(chunk)]
        likes = (expected_likes(parts.engagement, settings.followers)
                 if settings.followers is not None else [None] * len(photos))
        context = explain(self, community)
        ranked = []
        for i, path in enumerate(photos.paths):
            flags = [UNLIKE] if photos.unlike[i] else []
            if parts.unreliable[i]:
                flags.append(UNRELIABLE)
            if leaders[i] != i:
                flags.append(f"{DUPLICATE}:{names[leaders[i]]}")
            top = int(parts.q[i].argmax())
            idea = ideas[i] if not photos.unlike[i] else {"neighbours": ideas[i]["neighbours"],
                                                         "hashtags": [], "mentions": []}
            drafts = ([] if photos.unlike[i]
                      else self.caption_drafts(community, top, names[i], settings.captions))
            ranked.append(RankedPhoto(
                image=display_path(path), name=names[i], fit=float(parts.fit[i]),
                fit_cluster=float(parts.kl[i]), fit_local=float(parts.lift[i]),
                engagement=float(parts.engagement[i]), q=[float(v) for v in parts.q[i]],
                top_cluster={"id": top, "name": self.clusters[top].name},
                explanation=context(parts.q[i], float(parts.lift[i])),
                flags=flags, duplicate_group=int(groups[i]) if sizes[groups[i]] > 1 else None,
                score=float(scores[i]),
                audience_score=None if photos.unlike[i] else float(audience[i]),
                expected_likes=(None if likes[i] is None or photos.unlike[i]
                                else float(likes[i])), captions=drafts, **idea))
        for rank, i in enumerate(display_order(scores, photos.z_image, photos.unlike, leaders,
                                                  settings.diversity), 1):
            ranked[i].rank = rank
        ranked.sort(key=lambda p: p.rank)
        post = [p.image for p in ranked if not p.flags and p.audience_score is not None
                and p.audience_score >= POST_MIN_SCORE][:settings.post_top]
        return RankingResult(
            bundle={"name": self.bundle.name, "path": str(self.bundle.path.resolve()),
                    "created": self.bundle.created, "k": self.k},
            community=self.community_summary(community),
            clusters=[{"id": c.id, "name": c.name} for c in self.clusters],
            settings={**settings.to_dict(), "alpha": alpha, "alpha_source": alpha_source},
            photos=ranked, skipped=list(photos.skipped),
            reference={"posts": len(reference), "source": reference.source}, post=post)
