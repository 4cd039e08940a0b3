"""Rank new photos for a target community from a bundle: ``rank(cfg)`` behind ``rank.py``.

:class:`Ranker` loads a verified bundle once (model rebuilt from its config, weights from
``model.safetensors``, clusterer, communities, FAISS index). :meth:`Ranker.rank_photos` then
streams the photos in batches of ``rank.batch_size``: decode (``load_image`` at the datamodule's
image size, in a thread pool one batch ahead) → ``embed_images`` (image-only path: ``z_image``,
latent, predicted engagement) → soft assignment ``q`` → fit ``D(p_c, q)`` and its per-cluster
contributions → suggestions from the photo's nearest community posts
(:mod:`mmembed.ranking.suggest`). Only per-photo numbers and a few short lists are kept, never
pixels, so memory stays flat as the folder grows. Once every photo is seen::

    score = (1 - alpha) * (-z(fit)) + alpha * z(engagement)     z over the candidate photos

(``rank.alpha`` = 0.3 by default: fit leads, predicted engagement breaks near-ties; see
``conf/rank.yaml``), ranks (1 = best), the predicted engagement's percentile among the
community's own posts' predictions, and expected likes ``followers * exp(engagement)`` when
``followers=`` is given. Unreadable inputs are skipped with their reason, never fatal, unless
none is readable.

The result dict (what ``ranking.json`` holds and what
``mmembed.report.html.write_report(result, path)`` consumes), every value plain JSON::

    {
      "bundle": {"name": str, "path": str, "created": str (ISO time), "k": int},
      "community": {
        "name": str, "kind": "account" | "source" | "group" | "cluster", "size": int,
        "profile": [K floats],                  # p_c, sums to 1
        "top_clusters": [int, ...],             # ids of its 3 heaviest clusters
        "top_hashtags": [{"tag": str, "count": int}, ...],   # without '#', most used first
        "top_mentions": [{"mention": str, "count": int}, ...],  # without '@'
        "defaulted": bool,                      # true when community= was not given
      },
      "clusters": [{"id": int, "name": str}, ...],          # K entries, id = index
      "settings": {"alpha": float, "divergence": "kl_pq" | "kl_qp" | "js", "eps": float,
                   "followers": int | None, "neighbours": int, "batch_size": int},
      "photos": [                               # ranked photos only, sorted by rank (1 = best)
        {
          "image": str,                         # the path as found (absolute or as given)
          "name": str,                          # file name
          "status": "ranked",
          "rank": int, "score": float,          # higher is better
          "fit": float,                         # divergence to p_c, lower is better
          "engagement": float,                  # predicted log engagement rate
          "expected_likes": float | None,       # followers * exp(engagement), None w/o followers
          "percentile": float,                  # 0..100 among the community's own posts
          "q": [K floats],                      # soft assignment, sums to 1
          "top_cluster": {"id": int, "name": str},
          "drivers": [{"cluster": int, "name": str, "contribution": float}, ...],  # ≤ 3, > 0
          "neighbours": [{"post_id": str, "caption": str, "similarity": float,
                          "image_path": str, "engagement": float}, ...],     # ≤ 3, nearest first
          "hashtags": [{"tag": str, "weight": float, "count": int}, ...],    # without '#'
          "mentions": [{"mention": str, "weight": float, "count": int}, ...],  # without '@'
          "captions": [str, ...],               # ≤ 3 community captions, verbatim
        }, ...
      ],
      "skipped": [{"image": str, "status": "skipped", "reason": str}, ...],
      "counts": {"inputs": int, "ranked": int, "skipped": int},
      "output_dir": str,
    }
"""

from __future__ import annotations

import copy
import csv
import difflib
import json
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from mmembed.bundle import Bundle, BundleError, dumps_json, newest_bundle, read_bundle
from mmembed.communities.clustering import Clusterer, load_clusterer
from mmembed.data.images import (
    DecodeBudget,
    ImageError,
    display_path,
    list_images,
    load_image,
)
from mmembed.ranking import divergence
from mmembed.ranking.score import expected_likes, percentile_among, rank_order, score
from mmembed.ranking.suggest import CommunityPosts, suggest
from mmembed.search.index import PostIndex

CSV_COLUMNS = ("image", "status", "reason", "rank", "score", "fit", "engagement",
               "expected_likes", "percentile", "top_cluster", "hashtags", "mentions")
#: How many contributions and neighbours explain each photo.
EXPLAIN = 3


class RankError(RuntimeError):
    """Ranking cannot proceed: no photo readable, an unknown community, a bad setting."""


@dataclass(frozen=True)
class RankSettings:
    """The ``rank:`` block of ``conf/rank.yaml`` plus ``followers`` (see there for meanings)."""

    alpha: float = 0.3
    divergence: str = "kl_pq"
    eps: float = 1e-3
    batch_size: int = 64
    decode_workers: int = 4
    decode_memory_mb: int = 768
    neighbours: int = 20
    suggest_hashtags: int = 10
    suggest_mentions: int = 5
    captions: int = 3
    table_rows: int = 20
    device: str = "cpu"
    followers: int | None = None

    def __post_init__(self) -> None:
        alpha = self.alpha
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
            raise RankError(f"rank.alpha must be a number in [0, 1] (0 = pure fit, 1 = pure "
                            f"engagement), got {alpha!r}")
        if self.divergence not in divergence.METHODS:
            raise RankError(f"rank.divergence must be one of {', '.join(divergence.METHODS)}, "
                            f"got {self.divergence!r}")
        if not (isinstance(self.eps, int | float) and math.isfinite(self.eps) and self.eps > 0):
            raise RankError(f"rank.eps must be a number > 0 (the smoothing that keeps the fit "
                            f"finite), got {self.eps!r}")
        for name in ("batch_size", "decode_workers", "decode_memory_mb", "neighbours"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RankError(f"rank.{name} must be an integer >= 1, got {value!r}")
        for name in ("suggest_hashtags", "suggest_mentions", "captions", "table_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RankError(f"rank.{name} must be an integer >= 0, got {value!r}")
        f = self.followers
        if f is not None and (isinstance(f, bool) or not isinstance(f, int | float) or f < 0):
            raise RankError(f"followers must be a number >= 0 (the account's follower count), "
                            f"got {f!r}")

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> RankSettings:
        block = OmegaConf.to_container(cfg.get("rank") or {}, resolve=True)
        known = set(cls.__dataclass_fields__) - {"followers"}
        unknown = sorted(set(block) - known)
        if unknown:
            raise RankError(f"unknown rank setting(s) {unknown}; known: {sorted(known)}")
        return cls(**block, followers=cfg.get("followers"))

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": float(self.alpha), "divergence": self.divergence, "eps": float(self.eps),
                "followers": self.followers, "neighbours": self.neighbours,
                "batch_size": self.batch_size}


# ------------------------------------------------------------------------------------ decoding
def _decode(path: Path, image_size: int, budget: DecodeBudget | None = None
            ) -> np.ndarray | ImageError:
    """``[S, S, 3]`` uint8 pixels of one photo, or why it cannot be used."""
    try:
        img = load_image(path, size=image_size, budget=budget)
    except Exception as exc:  # noqa: BLE001 - load_image should not raise; one file never sinks a run
        return ImageError(str(path), f"unreadable: {exc}")
    if isinstance(img, ImageError):
        return img
    return np.asarray(img, dtype=np.uint8)


def decode_batches(paths: Sequence[Path], image_size: int, batch_size: int = 64,
                   workers: int = 4, memory_mb: int = 768
                   ) -> Iterator[tuple[list[Path], torch.Tensor | None, list[ImageError]]]:
    """Decode photos in batches: ``(decoded paths, uint8 [b, 3, S, S] or None, errors)``.

    Decoding (:func:`mmembed.data.images.load_image`, resized and centre-cropped to the
    datamodule's ``image_size``, as in training) runs in a thread pool, one batch ahead of the
    consumer, so decoding overlaps the model's forward pass while at most two batches of
    pixels are ever held. The threads share a :class:`~mmembed.data.images.DecodeBudget` of
    ``memory_mb``: a decode waits until the full-size pixels it needs fit beside the others',
    so a folder of huge images is decoded a few at a time instead of ``workers`` at once.
    """
    chunks = [list(paths[i:i + batch_size]) for i in range(0, len(paths), batch_size)]
    if not chunks:
        return
    budget = DecodeBudget(memory_mb * 2**20)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        def submit(chunk):
            return [pool.submit(_decode, p, image_size, budget) for p in chunk]

        futures = submit(chunks[0])
        for i, chunk in enumerate(chunks):
            following = submit(chunks[i + 1]) if i + 1 < len(chunks) else None
            ok, arrays, errors = [], [], []
            for path, future in zip(chunk, futures):
                result = future.result()
                if isinstance(result, ImageError):
                    errors.append(result)
                else:
                    ok.append(path)
                    arrays.append(result)
            images = (torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
                      if arrays else None)
            del arrays
            yield ok, images, errors
            futures = following


# ------------------------------------------------------------------------------------ loading
def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_model(bundle: Bundle, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the bundle's JointEmbedding from its config and load ``model.safetensors``.

    Pretrained image-tower weights are not fetched (``weights``/``pretrained`` are switched
    off): every parameter comes from the bundle's own weights, loaded with
    ``load_state_dict(strict=True)``, so a bundle never needs the network. A from-scratch
    text tower gets the bundle's ``tokenizer.json``. Weights are read with safetensors only
    (never a pickle).
    """
    from safetensors.torch import load_file

    from mmembed.allowlist import UnsafeConfigError, build

    config = copy.deepcopy(bundle.config.get("model"))
    if not isinstance(config, dict) or "_target_" not in config:
        raise BundleError(f"{bundle.path / 'manifest.json'} has no model config; "
                          "rebuild the bundle with `python train.py`")
    for key in ("optimizer", "scheduler"):
        config[key] = None  # training-only; not needed to embed
    image_tower = config.get("image_tower")
    if isinstance(image_tower, dict):
        if "weights" in image_tower:
            image_tower["weights"] = None
        if "pretrained" in image_tower:
            image_tower["pretrained"] = False
    text_tower = config.get("text_tower")
    if (isinstance(text_tower, dict) and bundle.has("tokenizer.json")
            and ("tokenizer_json" in text_tower
                 or str(text_tower.get("_target_", "")).endswith("ScratchTextTower"))):
        text_tower["tokenizer_json"] = bundle.file("tokenizer.json").read_text(encoding="utf-8")
    if isinstance(text_tower, dict):
        _quiet_transformers()
    try:
        model = build(config, str(bundle.path / "manifest.json"), "config.model")
    except UnsafeConfigError as err:
        raise BundleError(str(err)) from err
    except Exception as err:
        raise BundleError(f"cannot rebuild the model described in {bundle.path / 'manifest.json'}"
                          f" ({type(err).__name__}: {err}); rebuild the bundle with this "
                          "version of mmembed") from err
    weights = bundle.file("model.safetensors")
    try:
        state = load_file(str(weights), device="cpu")
        model.load_state_dict(state, strict=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0][:300]
        raise BundleError(f"{weights} does not fit the model its config describes ({first}); "
                          "rebuild the bundle") from err
    return model.to(device).eval()


def _quiet_transformers() -> None:
    """No per-tensor "Loading weights" bar from Hugging Face: the bundle's weights replace them."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()


class Ranker:
    """Everything needed to rank photos, loaded once from a bundle.

    ``Ranker.from_bundle("index/dev")`` then :meth:`rank_photos`. Nothing here prints or
    writes files; :func:`rank` does the terminal and the outputs.
    """

    def __init__(self, bundle: Bundle, model: torch.nn.Module | None, clusterer: Clusterer,
                 cluster_names: list[str], communities: dict[str, dict], index: PostIndex,
                 image_size: int, device: torch.device):
        self.bundle = bundle
        self._model = model
        self.clusterer = clusterer
        self.cluster_names = cluster_names
        self.communities = communities
        self.index = index
        self.image_size = int(image_size)
        self.device = device

    @classmethod
    def from_bundle(cls, path: str | Path, device: str = "cpu", verify: bool = True,
                    load_weights: bool = True) -> Ranker:
        """Read and verify the bundle (hashes, format version), rebuild model and clusterer.

        ``load_weights=False`` defers rebuilding the model to the first use of :attr:`model`
        (listing communities needs only the JSON files).
        """
        bundle = read_bundle(path, verify=verify)
        dev = _device(device)
        try:
            image_size = int(bundle.config["datamodule"]["image_size"])
        except (KeyError, TypeError, ValueError) as err:
            raise BundleError(f"{bundle.path / 'manifest.json'} has no datamodule.image_size "
                              "in its config; rebuild the bundle") from err
        model = load_model(bundle, dev) if load_weights else None
        clusters = bundle.json("clusters.json")
        try:
            clusterer = load_clusterer(bundle.npz("clusters.npz"), clusters["method"])
        except (KeyError, ValueError) as err:
            raise BundleError(f"{bundle.path / 'clusters.npz'} cannot be read back ({err}); "
                              "rebuild the bundle") from err
        names = [c["name"] for c in sorted(clusters["clusters"], key=lambda c: c["id"])]
        try:
            index = PostIndex.load(bundle.path, use_gpu=False)
        except (OSError, ValueError, RuntimeError) as err:
            raise BundleError(f"the post index in {bundle.path} cannot be read ({err}); "
                              "rebuild the bundle") from err
        return cls(bundle, model, clusterer, names, bundle.json("communities.json"), index,
                   image_size, dev)

    @property
    def model(self) -> torch.nn.Module:
        """The JointEmbedding in eval mode (rebuilt from the bundle on first use)."""
        if self._model is None:
            self._model = load_model(self.bundle, self.device)
        return self._model

    @property
    def k(self) -> int:
        return len(self.cluster_names)

    # ---------------------------------------------------------------- communities
    def default_community(self) -> str:
        """The largest account community (else the largest non-cluster one, else any)."""
        def size(name):
            return (self.communities[name]["size"], name)

        for kinds in (("account",), ("source", "group"), ("cluster",)):
            names = [n for n, c in self.communities.items() if c["kind"] in kinds]
            if names:
                return min(names, key=lambda n: (-size(n)[0], n))
        raise BundleError(f"{self.bundle.path / 'communities.json'} lists no community; "
                          "rebuild the bundle")

    def closest_communities(self, name: str, n: int = 3) -> list[str]:
        names = list(self.communities)
        lower = {c.lower(): c for c in names}
        close = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)
        found = [lower[c] for c in close]
        found += [c for c in names if name.lower() in c.lower() and c not in found]
        return found[:n]

    def community_posts(self, name: str) -> CommunityPosts:
        """The community's posts (from ``posts.jsonl``) aligned with their index rows."""
        members = set(self.communities[name].get("members") or [])
        records = []
        with self.bundle.file("posts.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                row = json.loads(line)
                if row.get("post_id") in members:
                    records.append({k: row.get(k) for k in ("post_id", "caption", "hashtags",
                                                            "mentions", "image_path",
                                                            "engagement")})
        return CommunityPosts.from_records(self.index, records)

    def engagement_reference(self, name: str) -> np.ndarray:
        """The community's posts' *predicted* engagement (what a photo's prediction is placed
        among); falls back to ``latents.npz`` predictions of its members, then to the actual
        engagement (``engagement.sorted``)."""
        stats = self.communities[name].get("engagement") or {}
        if stats.get("predicted_sorted"):
            return np.asarray(stats["predicted_sorted"], dtype=np.float64)
        if self.bundle.has("latents.npz"):
            pred = self.bundle.npz("latents.npz").get("engagement_pred")
            members = self.communities[name].get("members") or []
            if pred is not None and members:
                rows = self.index.rows_of(members)
                return np.sort(pred[rows].astype(np.float64))
        return np.asarray(stats.get("sorted") or [0.0], dtype=np.float64)

    # ---------------------------------------------------------------- embedding
    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> dict[str, np.ndarray]:
        """Image-only path: ``z_image`` [b, D], ``latent`` [b, d], ``engagement`` [b]."""
        out = self.model.embed_images(images.to(self.device, non_blocking=True))
        return {k: v.float().cpu().numpy() for k, v in out.items()}

    # ---------------------------------------------------------------- ranking
    def rank_photos(self, paths: Sequence[str | Path], community: str,
                    settings: RankSettings | None = None,
                    skipped: Sequence[dict] = (), progress: bool = False,
                    console=None) -> dict[str, Any]:
        """Rank ``paths`` for ``community``; the result dict of the module docstring (without
        ``output_dir``). Photos are decoded and embedded in batches; only O(#photos × K)
        numbers are kept. Raises :class:`RankError` when no photo could be read."""
        settings = settings or RankSettings()
        if community not in self.communities:
            raise RankError(f"unknown community {community!r}")
        record = self.communities[community]
        p_c = np.asarray(record["profile"], dtype=np.float64)
        members = self.community_posts(community)
        paths = [Path(p) for p in paths]
        photos: list[dict[str, Any]] = []
        fits: list[float] = []
        engagement: list[float] = []
        skipped_rows = [dict(s) for s in skipped]
        bar = _progress(console) if progress else None
        task = bar.add_task("ranking photos", total=len(paths)) if bar else None
        try:
            if bar:
                bar.start()
            for ok, images, errors in decode_batches(paths, self.image_size, settings.batch_size,
                                                     settings.decode_workers,
                                                     settings.decode_memory_mb):
                skipped_rows += [_skip(e.path, e.reason) for e in errors]
                if images is not None:
                    self._rank_batch(ok, images, p_c, members, settings, photos, fits,
                                     engagement)
                if bar:
                    bar.advance(task, len(ok) + len(errors))
        finally:
            if bar:
                bar.stop()
        if not photos:
            n = len(paths) + len(skipped)
            first = (f" (first: {skipped_rows[0]['image']}: {skipped_rows[0]['reason']})"
                     if skipped_rows else "")
            raise RankError(f"no photo could be read: {n} input(s), all skipped{first}; "
                            "pass images= a folder, glob, file or list of JPEG/PNG/WebP photos")
        fit_arr = np.asarray(fits)
        eng_arr = np.asarray(engagement)
        scores = score(fit_arr, eng_arr, settings.alpha)
        ranks = rank_order(scores)
        pct = percentile_among(eng_arr, self.engagement_reference(community))
        likes = (expected_likes(eng_arr, settings.followers) if settings.followers is not None
                 else [None] * len(photos))
        for i, photo in enumerate(photos):
            photo.update(rank=int(ranks[i]), score=float(scores[i]), percentile=float(pct[i]),
                         expected_likes=None if likes[i] is None else float(likes[i]))
        photos.sort(key=lambda p: p["rank"])
        return {
            "bundle": {"name": self.bundle.name, "path": str(self.bundle.path.resolve()),
                       "created": self.bundle.created, "k": self.k},
            "community": self.community_summary(community),
            "clusters": [{"id": c, "name": n} for c, n in enumerate(self.cluster_names)],
            "settings": settings.to_dict(),
            "photos": photos,
            "skipped": skipped_rows,
            "counts": {"inputs": len(photos) + len(skipped_rows), "ranked": len(photos),
                       "skipped": len(skipped_rows)},
        }

    def _rank_batch(self, ok: list[Path], images: torch.Tensor, p_c: np.ndarray,
                    members: CommunityPosts, settings: RankSettings, photos: list,
                    fits: list, engagement: list) -> None:
        """Rank one decoded batch; every step runs on exactly ``settings.batch_size`` rows.

        Float kernels (convolutions, matrix products in torch, BLAS and faiss) pick their
        blocking and code path by the number of rows, so the same photo came out up to ~7e-7
        apart (predicted engagement) when embedded alone or beside others. A short batch is
        therefore padded with blank images to ``batch_size`` rows and the padding rows are
        dropped at the end: a photo's q, fit, engagement and neighbours are then bit-identical
        whatever photos share its batch, and wherever it sits in it (``tests/test_rank.py``).
        They still depend on ``rank.batch_size``, the device and the thread count, by ~1e-7
        relative (README, "Reproducibility").
        """
        emb = self.embed(_pad_rows(images, settings.batch_size))
        q = self.clusterer.soft_assign(emb["latent"])
        batch_fit = divergence.fit(p_c, q, settings.divergence, settings.eps)
        contributions = divergence.fit_contributions(p_c, q, settings.divergence, settings.eps)
        ideas = suggest(self.index, members, emb["z_image"], neighbours=settings.neighbours,
                        hashtags=settings.suggest_hashtags, mentions=settings.suggest_mentions,
                        captions=settings.captions, explain=EXPLAIN)
        for j, path in enumerate(ok):
            top = int(q[j].argmax())
            drivers = [{"cluster": int(c), "name": self.cluster_names[c],
                        "contribution": float(contributions[j, c])}
                       for c in np.argsort(-contributions[j])[:EXPLAIN]
                       if contributions[j, c] > 0]
            photos.append({
                "image": display_path(path), "name": display_path(path.name),
                "status": "ranked",
                "fit": float(batch_fit[j]), "engagement": float(emb["engagement"][j]),
                "q": [float(v) for v in q[j]],
                "top_cluster": {"id": top, "name": self.cluster_names[top]},
                "drivers": drivers, **ideas[j],
            })
            fits.append(float(batch_fit[j]))
            engagement.append(float(emb["engagement"][j]))

    def community_summary(self, name: str, defaulted: bool = False) -> dict[str, Any]:
        c = self.communities[name]
        return {
            "name": name, "kind": c["kind"], "size": int(c["size"]),
            "profile": [float(v) for v in c["profile"]],
            "top_clusters": [int(v) for v in c.get("top_clusters", [])],
            "top_hashtags": [{"tag": t, "count": int(n)} for t, n in c.get("top_hashtags", [])],
            "top_mentions": [{"mention": m, "count": int(n)}
                             for m, n in c.get("top_mentions", [])],
            "defaulted": defaulted,
        }


def _pad_rows(images: torch.Tensor, rows: int) -> torch.Tensor:
    """``images`` [b, ...] followed by blank (zero) rows up to ``rows`` (unchanged if b >= rows)."""
    missing = rows - images.shape[0]
    if missing <= 0:
        return images
    return torch.cat([images, images.new_zeros((missing, *images.shape[1:]))])


def _skip(image: str, reason: str) -> dict[str, str]:
    return {"image": display_path(image), "status": "skipped", "reason": display_path(reason)}


def _progress(console=None):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, transient=True)


# ------------------------------------------------------------------------------------ the entry
def resolve_bundle(bundle: str | None, index_dir: str | Path) -> Path:
    """``bundle=`` as a folder (or a name under ``index_dir``), else the newest in ``index_dir``."""
    index_dir = Path(index_dir)
    if bundle:
        path = Path(str(bundle)).expanduser()
        if not path.exists() and (index_dir / str(bundle)).exists():
            path = index_dir / str(bundle)
        return path
    path = newest_bundle(index_dir)
    if path is None:
        raise BundleError(f"no bundle found in {index_dir}/; run `python train.py` first")
    return path


def default_images(bundle: Bundle, cache_dir: str | Path) -> Path:
    """The held-out shoot of the bundle's synthetic dataset (the default input of rank.py),
    generated under ``cache_dir`` if this machine has not got it yet."""
    from mmembed.allowlist import UnsafeConfigError, build
    from mmembed.data.sources.synthetic import SyntheticSource

    data = dict(bundle.config.get("data") or {})
    target = str(data.get("_target_", ""))
    if target != f"{SyntheticSource.__module__}.{SyntheticSource.__qualname__}":
        raise RankError(f"no images given, and the bundle's data source ({target or 'unknown'}) "
                        "has no held-out shoot; pass images=FOLDER (or a glob, a file, or a list "
                        "like images=[a.jpg,b.jpg])")
    # The shoot is regenerated (deterministically) under this machine's cache, never written
    # where a bundle's config points.
    data["cache_dir"] = str(Path(cache_dir) / "synthetic")
    try:
        source = build(data, str(bundle.path / "manifest.json"), "config.data")
    except UnsafeConfigError as err:
        raise BundleError(str(err)) from err
    return Path(source.shoot_dir)


def output_dir(cfg: DictConfig) -> Path:
    """``out=`` if given, else Hydra's run folder (``outputs/<date>/<time>/``)."""
    if cfg.get("out"):
        return Path(str(cfg.out)).expanduser()
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:  # composed without a Hydra app (tests, notebooks)
        import datetime as dt

        return Path("outputs") / dt.datetime.now().strftime("%Y-%m-%d/%H-%M-%S-rank")


def rank(cfg: DictConfig, ranker: Ranker | None = None) -> dict[str, Any]:
    """``rank.py``: load the bundle, rank the photos, print, write CSV/JSON/HTML; the result.

    ``community=list`` prints the communities and returns ``{"communities": [...]}``. Errors
    are exceptions with one clear message (:func:`mmembed.cli.run` prints it).
    """
    from rich.console import Console

    console = Console()
    settings = RankSettings.from_cfg(cfg)
    if ranker is None:
        path = resolve_bundle(cfg.get("bundle"), cfg.paths.index_dir)
        with console.status(f"reading bundle {path}"):
            ranker = Ranker.from_bundle(path, device=settings.device, load_weights=False)
    requested = cfg.get("community")
    if requested is not None and str(requested) == "list":
        print_communities(ranker, console)
        return {"communities": [ranker.community_summary(n) for n in ranker.communities]}
    if requested is None:
        community, defaulted = ranker.default_community(), True
        size = ranker.communities[community]["size"]
        console.print(f"community not given: ranking for [bold]{community!r}[/bold] (largest "
                      f"{ranker.communities[community]['kind']} community, {size} posts); pass "
                      "community=NAME (community=list shows them all)")
    else:
        community, defaulted = str(requested), False
        if community not in ranker.communities:
            print_communities(ranker, console)
            close = ranker.closest_communities(community)
            hint = (f"did you mean {', '.join(repr(c) for c in close)}?" if close
                    else "no similar name")
            raise RankError(f"unknown community {community!r}: {hint} Pass community=NAME from "
                            f"the list above.")
    with console.status(f"loading the model of bundle {ranker.bundle.name}"):
        _ = ranker.model
    images = cfg.get("images")
    if images is None:
        images = default_images(ranker.bundle, cfg.paths.cache_dir)
        console.print(f"images not given: ranking the held-out shoot {images}")
    if OmegaConf.is_config(images):
        images = OmegaConf.to_container(images, resolve=True)
    paths, listed_skips = list_images(images)
    skipped = [_skip(s.item, s.reason) for s in listed_skips]
    result = ranker.rank_photos(paths, community, settings, skipped=skipped, progress=True,
                                console=console)
    result["community"]["defaulted"] = defaulted
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    result["output_dir"] = str(out.resolve())
    report = bool(cfg.get("report", True))
    with console.status("writing outputs"):
        files = write_outputs(result, out, report=report)
    print_ranking(result, console, rows=settings.table_rows)
    console.print(f"outputs: {out}  ({', '.join(f.name for f in files)})")
    return result


def write_outputs(result: dict[str, Any], out: Path, report: bool = True) -> list[Path]:
    """``ranking.csv``, ``ranking.json`` and (with ``report``) ``report.html`` into ``out``."""
    files = [out / "ranking.csv", out / "ranking.json"]
    write_csv(result, files[0])
    files[1].write_text(dumps_json(result), encoding="utf-8")
    if report:
        from mmembed.report.html import write_report

        write_report(result, out / "report.html")
        files.append(out / "report.html")
    return files


def csv_rows(result: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One row per input: the ranked photos by rank, then the skipped ones."""
    for p in result["photos"]:
        yield {
            "image": p["image"], "status": "ranked", "reason": "", "rank": p["rank"],
            "score": _num(p["score"]), "fit": _num(p["fit"]), "engagement": _num(p["engagement"]),
            "expected_likes": "" if p["expected_likes"] is None else round(p["expected_likes"]),
            "percentile": f"{p['percentile']:.1f}", "top_cluster": p["top_cluster"]["name"],
            "hashtags": " ".join(f"#{h['tag']}" for h in p["hashtags"]),
            "mentions": " ".join(f"@{m['mention']}" for m in p["mentions"]),
        }
    for s in result["skipped"]:
        yield {"image": s["image"], "status": "skipped", "reason": s["reason"]}


def write_csv(result: dict[str, Any], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(csv_rows(result))


def _num(x: float) -> str:
    return f"{x:.6g}"


def print_ranking(result: dict[str, Any], console, rows: int = 20) -> None:
    from rich.table import Table

    photos = result["photos"]
    settings = result["settings"]
    likes = settings["followers"] is not None
    c = result["community"]
    table = Table(title=f"ranking for {c['name']!r} ({c['kind']}, {c['size']} posts), "
                        f"alpha={settings['alpha']}, fit={settings['divergence']}",
                  caption="score: higher is better; fit: divergence to the community, lower is "
                          "better; pct: predicted engagement's percentile among its posts")
    fixed = {"justify": "right", "no_wrap": True}
    table.add_column("rank", min_width=4, **fixed)
    table.add_column("image", no_wrap=True, overflow="ellipsis", min_width=12, max_width=28)
    table.add_column("score", min_width=5, **fixed)
    table.add_column("fit", min_width=5, **fixed)
    table.add_column("likes" if likes else "eng.", min_width=6 if likes else 5, **fixed)
    table.add_column("pct", min_width=4, **fixed)
    table.add_column("cluster", no_wrap=True, overflow="ellipsis", min_width=7, max_width=14)
    table.add_column("hashtags", min_width=8)
    for p in photos[:rows]:
        eng = (f"{p['expected_likes']:,.0f}" if likes else f"{p['engagement']:.2f}")
        table.add_row(str(p["rank"]), p["name"], f"{p['score']:+.2f}", f"{p['fit']:.3f}", eng,
                      f"{p['percentile']:.0f}%", p["top_cluster"]["name"].split(" · ")[0],
                      " ".join(f"#{h['tag']}" for h in p["hashtags"][:3]))
    console.print(table)
    more = len(photos) - rows
    if more > 0:
        console.print(f"… {more} more ranked photo(s) in ranking.csv")
    skipped = result["skipped"]
    if skipped:
        console.print(f"[yellow]{len(skipped)} input(s) skipped[/yellow]:")
        for s in skipped[:rows]:
            console.print(f"  {s['image']}: {s['reason']}", markup=False, highlight=False)
        if len(skipped) > rows:
            console.print(f"  … {len(skipped) - rows} more in ranking.csv")


def print_communities(ranker: Ranker, console) -> None:
    """The bundle's communities: name, kind, size, top clusters, top hashtags."""
    from rich.table import Table

    table = Table(title=f"communities in bundle {ranker.bundle.name}")
    for col in ("community", "kind", "size", "top clusters", "top hashtags"):
        table.add_column(col, justify="right" if col == "size" else "left")
    order = sorted(ranker.communities.items(),
                   key=lambda kv: (kv[1]["kind"] == "cluster", -kv[1]["size"], kv[0]))
    for name, c in order:
        top = ", ".join(f"{ranker.cluster_names[i].split(' · ')[0]} {c['profile'][i]:.2f}"
                        for i in c.get("top_clusters", []))
        tags = " ".join(f"#{t}" for t, _ in c.get("top_hashtags", [])[:3])
        table.add_row(name, c["kind"], str(c["size"]), top, tags)
    console.print(table)


__all__ = ["CSV_COLUMNS", "RankError", "RankSettings", "Ranker", "decode_batches",
           "default_images", "load_model", "rank", "resolve_bundle", "write_outputs"]
