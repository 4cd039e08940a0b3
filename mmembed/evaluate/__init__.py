"""Evaluate a bundle on its held-out posts: ``python -m mmembed.evaluate bundle=index/NAME``.

The held-out posts (``split == "test"`` in the bundle's posts) entered nothing the bundle fitted
or searches: not the clusters, the profiles, the index, the calibration or the reference of the
audience scores (:func:`mmembed.build.build_bundle`). They are treated as new, caption-less
photos: their image files go through exactly the path ``rank.py`` uses
(:meth:`mmembed.ranking.ranker.Ranker.embed` and :meth:`~mmembed.ranking.ranker.Ranker.score`).
Measured, with the build's figures on the fitted posts beside them (``*_train``):

``nmi``, ``ari``
    the clusters of the held-out posts (full posts, image + text) against the planted topic;
    ``None`` when the data has no truth.
``image_only_nmi``, ``image_only_ari``, ``image_only_agreement``
    the same for the image-only cluster ``argmax q``, and how often it is the full post's.
``calibration_ece_before``, ``calibration_ece``
    the expected calibration error of ``q`` on the held-out photos before and after the
    temperature the build fitted on the validation posts.
``profile_tv`` …
    the community profiles against the planted mixtures (the build's metrics, see
    :func:`mmembed.build.metrics.measure`).
``engagement_src``, ``pairwise_accuracy``
    Spearman correlation of the image-only predicted engagement with the actual one; over
    all pairs of held-out posts of one account, the share ordered correctly (ties: half).
``ndcg@K``, ``precision@K``, ``baselines`` and ``tied_fit_top20``
    ranking quality. For each account community the candidates are *all* held-out posts; a
    candidate's relevance is ``member × percentile``: ``member`` is 1 when the post is the
    community's own (its account), ``percentile`` (0..1) its actual engagement's percentile
    among the held-out posts. NDCG@K uses that graded relevance (scikit-learn's
    ``ndcg_score``, tied scores sharing their gain); precision@K is the share of members in
    the top K. Both are averaged over the account communities with a held-out post.
    ``ndcg@K`` is the default ranking, in ``rank.py``'s order (flags and near-copies
    included); ``baselines``: ``random`` (mean of ``random_repeats`` shuffles),
    ``engagement_only`` (α = 1), ``cluster_kl_only`` (the uncalibrated cluster-level
    KL(p_c ‖ q) alone, the fit before the local lift), ``fit_only`` (the fit alone, α = 0)
    and ``alpha_sweep``. Every baseline's scores are shown in ``rank.py``'s display order
    too: photos unlike the training data, and near-copies of a better photo (by that
    baseline's own scores), after the rest. ``rank.py`` moves a near-copy down because a
    manager posts one of them, while NDCG counts each held-out copy as another hit; judged
    without the same rule, a baseline would gain those hits back (on Open Clip Art, whose
    drawings come in near-identical variants, 0.01–0.04 NDCG@10) and the comparison would
    measure the rule instead of the scores. ``tied_fit_top20``: the share of the default
    ranking's top 20 whose fit equals another top-20 photo's within 1e-6.
    ``ndcg@K_by_community``: the NDCG@K of the default ranking and of each baseline but the
    sweep, one value per community of ``communities``, in that order (for paired comparisons).

``python -m mmembed.evaluate`` writes ``eval.json`` and ``eval.md`` into ``out`` (default: the
bundle folder; they are not listed in the bundle's manifest, so the bundle still reads) and
updates the summary of an active W&B run, if there is one (none is created).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mmembed.communities.metrics import chance_nmi, subsample_nmi, truth_metrics
from mmembed.data.photos import photo_loader
from mmembed.models.predict import predict_batches
from mmembed.ranking import divergence
from mmembed.ranking.blend import ndcg_at_k
from mmembed.ranking.diversity import display_order
from mmembed.ranking.duplicates import duplicate_groups, group_leaders
from mmembed.ranking.ranker import Ranker
from mmembed.ranking.score import percentile_among, rank_order, score
from mmembed.ranking.settings import RankError, RankSettings
from mmembed.stats import spearman

__all__ = ["EvalSettings", "evaluate", "frozen_feature_kmeans", "ndcg_at_k",
           "pairwise_accuracy", "precision_at_k"]

DEFAULT_ALPHAS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)


@dataclass(frozen=True)
class EvalSettings:
    """What ``conf/evaluate.yaml`` sets (see there)."""

    alpha: float | None = None  # None = rank.py's default: chosen on the validation posts
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    k: int = 10
    seed: int = 0
    random_repeats: int = 20
    divergence: str = "kl_pq"
    eps: float = 1e-3
    batch_size: int = 64
    device: str = "cpu"
    rank: RankSettings = field(init=False, repr=False)

    def __post_init__(self) -> None:
        alpha = None if self.alpha is None else float(self.alpha)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "alphas", tuple(float(a) for a in self.alphas))
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be an integer >= 1, got {self.k!r}")
        if self.random_repeats < 1:
            raise ValueError(f"random_repeats must be >= 1, got {self.random_repeats!r}")
        for a in [a for a in (alpha, *self.alphas) if a is not None]:
            if not 0.0 <= a <= 1.0:
                raise ValueError(f"alphas must lie in [0, 1], got {a!r}")
        # Validates divergence/eps/batch_size/device exactly as rank.py does.
        object.__setattr__(self, "rank", RankSettings(
            alpha=alpha, divergence=self.divergence, eps=float(self.eps),
            batch_size=int(self.batch_size), neighbours=1, suggest_hashtags=0,
            suggest_mentions=0, captions=0, device=self.device))

    @classmethod
    def from_cfg(cls, cfg: DictConfig | dict | None) -> EvalSettings:
        if cfg is None:
            return cls()
        block = (OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg)
                 else dict(cfg))
        known = set(cls.__dataclass_fields__) - {"rank"}
        kwargs = {k: v for k, v in block.items() if k in known}
        if "alphas" in kwargs:
            kwargs["alphas"] = tuple(kwargs["alphas"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "alphas": list(self.alphas), "k": self.k, "seed": self.seed,
                "random_repeats": self.random_repeats, "divergence": self.divergence,
                "eps": float(self.eps)}


# ------------------------------------------------------------------------------ metrics
def precision_at_k(scores: np.ndarray, member: np.ndarray, k: int) -> float:
    """Share of the top ``k`` (by ``scores``) that are members."""
    order = np.argsort(rank_order(scores))[:k]
    return float(np.mean(np.asarray(member, dtype=np.float64)[order])) if order.size else math.nan


def pairwise_accuracy(predicted: np.ndarray, actual: np.ndarray, groups: np.ndarray) -> float:
    """Over all pairs within a group with different ``actual``: share ordered the same way by
    ``predicted`` (a tie in the prediction counts half). NaN when there is no such pair."""
    pred = np.asarray(predicted, dtype=np.float64)
    act = np.asarray(actual, dtype=np.float64)
    groups = np.asarray(groups)
    correct, total = 0.0, 0
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        if idx.size < 2:
            continue
        da = np.sign(act[idx][:, None] - act[idx][None, :])
        dp = np.sign(pred[idx][:, None] - pred[idx][None, :])
        upper = np.triu(np.ones_like(da, dtype=bool), 1) & (da != 0)
        total += int(upper.sum())
        correct += float(np.sum((da == dp)[upper])) + 0.5 * float(np.sum((dp == 0)[upper]))
    return correct / total if total else math.nan


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    return _clean(spearman(a, b))


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ------------------------------------------------------------------------------ evaluate
def tied_fraction(values: np.ndarray, tol: float = 1e-6) -> float:
    """Share of ``values`` equal (within ``tol``) to at least one other of them."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    if v.size < 2:
        return 0.0
    close = np.diff(v) <= tol
    tied = np.zeros(v.size, dtype=bool)
    tied[1:] |= close
    tied[:-1] |= close
    return float(tied.mean())


def evaluate(bundle_path: str | Path, settings: EvalSettings | DictConfig | dict | None = None,
             ranker: Ranker | None = None) -> dict[str, Any]:
    """Evaluate the bundle at ``bundle_path`` on its held-out posts (see the module docstring).

    ``settings``: an :class:`EvalSettings`, or a config/dict with its fields (extra keys are
    ignored). Returns the eval dict (plain JSON values; ``None`` where a metric is undefined,
    e.g. no planted topics); :func:`mmembed.evaluate.report.write_evaluation` writes it.
    """
    if not isinstance(settings, EvalSettings):
        settings = EvalSettings.from_cfg(settings)
    if ranker is None:
        ranker = Ranker.from_bundle(bundle_path, device=settings.device)
    held = [row for row in ranker.posts() if row.get("split") == "test"]
    if not held:
        raise RankError(f"bundle {ranker.bundle.path} has no held-out (split == test) post "
                        "to evaluate on")
    photos = ranker.embed([row["image_path"] for row in held], settings.rank)
    by_path = {str(Path(r["image_path"])): r for r in held}
    posts = [by_path[str(p)] for p in photos.paths]
    n = len(posts)
    q_raw = ranker.clusterer.soft_assign(photos.latent)
    full_labels = np.asarray([int(p["cluster"]) for p in posts])
    image_labels = q_raw.argmax(axis=1)
    actual = np.asarray([float(p["engagement"]) for p in posts])
    topics = [p.get("topic") for p in posts]
    has_truth = bool(topics) and all(t is not None for t in topics)
    build = ranker.bundle.metrics

    res: dict[str, Any] = {"bundle": {"name": ranker.bundle.name,
                                      "path": str(ranker.bundle.path.resolve()),
                                      "created": ranker.bundle.created, "k": ranker.k},
                           "settings": settings.to_dict(),
                           "held_out": n, "skipped": len(photos.skipped),
                           "unlike_training_data": float(photos.unlike.mean())}
    full_truth = truth_metrics(full_labels, topics) if has_truth else {}
    image_truth = truth_metrics(image_labels, topics) if has_truth else {}
    res["nmi"], res["ari"] = full_truth.get("nmi"), full_truth.get("ari")
    res["image_only_nmi"], res["image_only_ari"] = image_truth.get("nmi"), image_truth.get("ari")
    res["image_only_agreement"] = float(np.mean(image_labels == full_labels))
    for key in ("nmi_train", "ari_train", "image_only_nmi_train", "image_only_agreement_train",
                "calibration_temperature", "calibration_ece_before", "calibration_ece",
                "profile_tv", "profile_tv_max", "profile_tv_shares", "profile_tv_sampling"):
        res[key] = build.get(key)
    res["engagement_src"] = _spearman(photos.engagement, actual)
    res["pairwise_accuracy"] = _clean(pairwise_accuracy(
        photos.engagement, actual, np.asarray([str(p.get("account")) for p in posts])))

    # ---------------------------------------------------------------- ranking quality
    k = settings.k
    percentile = percentile_among(actual, actual) / 100.0
    alpha, res["settings"]["alpha_source"] = ranker.blend_alpha(settings.rank)
    res["settings"]["alpha"] = alpha
    alphas = sorted({alpha, 0.0, 1.0, *settings.alphas})
    rows = ("default", "cluster_kl_only", "random", *[f"a{a}" for a in alphas])
    got: dict[str, dict[str, list[float]]] = {r: {"ndcg": [], "precision": []} for r in rows}
    ties = []
    rng = np.random.default_rng(settings.seed)
    index_of = {p: i for i, p in enumerate(photos.paths)}
    used = []
    accounts = sorted(name for name, c in ranker.communities.items() if c.kind == "account")
    groups = duplicate_groups(photos.hashes, photos.z_image)
    fits = ranker.fit_parts_by_community(photos.latent, photos.z_image, photos.engagement,
                                         accounts, settings.rank, unlike=photos.unlike)

    def displayed(s: np.ndarray, engagement: np.ndarray) -> np.ndarray:
        """``s`` in rank.py's display order (flagged photos and near-copies last), as a score."""
        leaders = group_leaders(groups, s, engagement, photos.quality)
        order = display_order(s, photos.z_image, photos.unlike, leaders, settings.rank.diversity)
        out = np.empty(n)
        out[order] = -np.arange(n, dtype=np.float64)
        return out

    for name in accounts:
        member = np.asarray([p.get("account") == name for p in posts], dtype=np.float64)
        relevance = member * percentile
        if relevance.sum() <= 0:
            continue  # no held-out post of this account: nothing to find
        used.append(name)
        result = ranker.score(photos, name, settings.rank)
        order = [index_of[Path(p.image)] for p in result.photos]
        default = np.empty(n)
        default[order] = -np.arange(n, dtype=np.float64)  # rank.py's order as a score
        profile = np.asarray(ranker.communities[name].profile, dtype=np.float64)
        parts = fits[name]
        reference = ranker.reference(name, settings.rank)
        kl_only = -divergence.fit(profile, q_raw, settings.divergence, settings.eps)
        candidates = {"default": default,
                      "cluster_kl_only": displayed(kl_only, parts.engagement)}
        for a in alphas:
            candidates[f"a{a}"] = displayed(score(parts.fit, parts.engagement, a, reference),
                                            parts.engagement)
        for row, s in candidates.items():
            got[row]["ndcg"].append(ndcg_at_k(s, relevance, k))
            got[row]["precision"].append(precision_at_k(s, member, k))
        nd, pr = [], []
        for _ in range(settings.random_repeats):
            s = displayed(rng.permutation(n).astype(np.float64), parts.engagement)
            nd.append(ndcg_at_k(s, relevance, k))
            pr.append(precision_at_k(s, member, k))
        got["random"]["ndcg"].append(float(np.mean(nd)))
        got["random"]["precision"].append(float(np.mean(pr)))
        ties.append(tied_fraction([p.fit for p in result.photos[:20]]))

    def summary(vals: dict[str, list[float]]) -> dict[str, float | None]:
        return {f"ndcg@{k}": _mean(vals["ndcg"]), f"precision@{k}": _mean(vals["precision"])}

    mine = summary(got["default"])
    res[f"ndcg@{k}"] = mine[f"ndcg@{k}"]
    res[f"precision@{k}"] = mine[f"precision@{k}"]
    res["tied_fit_top20"] = _mean(ties)
    res["communities"] = used
    named = {"default": "default", "random": "random", "engagement_only": "a1.0",
             "cluster_kl_only": "cluster_kl_only", "fit_only": "a0.0"}
    res["baselines"] = {
        **{name: summary(got[row]) for name, row in named.items() if name != "default"},
        "alpha_sweep": {str(a): summary(got[f"a{a}"]) for a in sorted({alpha, *settings.alphas})},
    }
    res[f"ndcg@{k}_by_community"] = {name: got[row]["ndcg"] for name, row in named.items()}
    return res


class _WithTokens:
    """A photo loader whose batches also carry the posts' tokenised captions."""

    def __init__(self, loader, captions: dict[str, str], tokenize):
        self.loader, self.captions, self.tokenize = loader, captions, tokenize

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if batch["image"] is not None:
                batch["tokens"] = self.tokenize([self.captions[str(p)] for p in batch["paths"]])
            yield batch


def frozen_feature_kmeans(bundle_path: str | Path, ks: list[int], seed: int = 0,
                          batch_size: int = 64, ranker: Ranker | None = None,
                          text: bool = True) -> dict[str, Any]:
    """Reference clustering: k-means on the bundle's frozen tower features, no learning at all.

    Every post of the bundle is decoded as ``rank.py`` decodes photos and put through the
    bundle's towers alone (``predict_step``; for frozen pretrained towers: the features before
    any projection, without appended photo statistics): the image tower's content features and,
    with ``text`` and a text tower, the text tower's features of the caption, each
    L2-normalised and then concatenated. They are clustered with the project's k-means
    (:class:`~mmembed.communities.clustering.KMeansClusterer`) once per ``k``, fitted like the
    bundle's own clusters on every post but the held-out ones, which are then assigned to their
    nearest centroid. Returns ``{"tower", "text_tower", "frozen", "held_out", "skipped",
    "by_k": {k: {"nmi", "ari", "nmi_chance", "nmi_train", "nmi_train_chance",
    "nmi_train_at_held_size"}}}``: NMI and ARI of the held-out posts against their planted
    topic, and the NMI of the fitted posts' own labels (so the reference has a
    train-versus-held-out gap too), each NMI with its chance level
    (:func:`~mmembed.communities.metrics.chance_nmi`), and the fitted posts' NMI on samples of
    the held-out size (:func:`~mmembed.communities.metrics.subsample_nmi`).
    """
    from mmembed.communities.clustering import KMeansClusterer

    ranker = ranker or Ranker.from_bundle(bundle_path)
    rows = ranker.posts()
    if any(r.get("topic") is None for r in rows):
        raise RankError(f"bundle {ranker.bundle.path} has posts without a planted topic; the "
                        "reference needs data with truth (synthetic, tuxpaint, openclipart)")
    by_path = {str(Path(r["image_path"])): r for r in rows}
    model = ranker.model
    use_text = text and model.text_tower is not None
    loader = photo_loader([Path(r["image_path"]) for r in rows], ranker.image_size, batch_size)
    if use_text:
        loader = _WithTokens(loader, {p: r.get("caption") or "" for p, r in by_path.items()},
                             model.text_tower.tokenizer_fn())
    parts: list[np.ndarray] = []
    kept, errors = [], []
    for batch, out in predict_batches(model, loader, ("image_features", "text_features")):
        errors += batch["errors"]
        if not out:
            continue
        pieces = [out["image_features"][:, :model.content_dim].numpy()]
        if use_text:
            pieces.append(out["text_features"].numpy())
        parts.append(np.concatenate(
            [x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) for x in pieces],
            axis=1))
        kept += [by_path[str(p)] for p in batch["paths"]]
    if not parts:
        raise RankError(f"none of the {len(rows)} photos of bundle {ranker.bundle.path} could "
                        f"be read (first: {errors[0].path}: {errors[0].reason}); rebuild the "
                        "bundle where its data is")
    x = np.concatenate(parts).astype(np.float32)
    held = np.asarray([r.get("split") == "test" for r in kept])
    topics = [r["topic"] for r, h in zip(kept, held) if h]
    train_topics = [r["topic"] for r, h in zip(kept, held) if not h]
    by_k = {}
    for k in ks:
        clusterer = KMeansClusterer(k=int(k), seed=seed).fit(x[~held])
        labels = clusterer.soft_assign(x[held]).argmax(axis=1)
        by_k[int(k)] = {**truth_metrics(labels, topics),
                        "nmi_chance": chance_nmi(labels, topics, seed=seed),
                        "nmi_train": truth_metrics(clusterer.labels_, train_topics)["nmi"],
                        "nmi_train_chance": chance_nmi(clusterer.labels_, train_topics,
                                                       seed=seed),
                        "nmi_train_at_held_size": subsample_nmi(
                            clusterer.labels_, train_topics, len(topics), seed=seed)}
    model_cfg = ranker.bundle.config.get("model") or {}
    return {"tower": type(model.image_tower).__name__,
            "text_tower": type(model.text_tower).__name__ if use_text else None,
            "frozen": bool(model_cfg.get("freeze_towers", False)),
            "held_out": int(held.sum()), "skipped": len(errors), "by_k": by_k}
