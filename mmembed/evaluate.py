"""Evaluate a bundle on its held-out posts: ``python -m mmembed.evaluate bundle=index/NAME``.

The held-out posts (``split == "test"`` in the bundle's ``posts.jsonl``) are treated as new,
caption-less photos: their image files go through exactly the path ``rank.py`` uses
(:meth:`mmembed.ranking.ranker.Ranker.rank_photos`: decode → image tower → latent → soft
assignment ``q`` → predicted engagement). Measured:

``nmi``, ``ari``
    the bundle's clusters of the held-out posts (full posts, image + text) against the planted
    topic (``topic``); ``None`` when the data has no truth.
``image_only_nmi``, ``image_only_ari``
    the same for the image-only cluster ``argmax q``: how much of the text's knowledge reached
    the image path.
``image_only_agreement``
    share of held-out posts whose image-only cluster equals their full-post cluster.
``profile_tv``, ``profile_tv_max``
    total-variation error of the community profiles against the planted mixtures, copied from
    the bundle's build metrics (``profile_tv_shares``: against the topic shares each account
    actually posted; ``profile_tv_sampling``: those shares against the planted mixtures, the
    part no model can remove; see :func:`mmembed.build.measure`).
``engagement_src``
    Spearman rank correlation of the image-only predicted engagement with the actual
    engagement (``engagement_src_full``: the same for the full-post prediction of the build).
``pairwise_accuracy``
    over all pairs of held-out posts of one account with different actual engagement, the
    share the image-only prediction orders correctly (prediction ties count half).
``ndcg@K``, ``precision@K`` and ``baselines``
    ranking quality. For each account community the candidates are *all* held-out posts; a
    candidate's relevance is ``member × percentile``, where ``member`` is 1 when the post is
    the community's own (its account) and ``percentile`` (0..1) is its actual engagement's
    percentile among the held-out posts. NDCG@K uses that graded relevance; precision@K is the
    share of members in the top K. Both are averaged over the account communities (those with
    at least one held-out post). ``ndcg@K``/``precision@K`` are mmembed's score
    (:func:`mmembed.ranking.score.score`) at the default ``rank.alpha``; ``baselines`` holds
    ``random`` (mean over ``random_repeats`` seeded shuffles), ``engagement_only`` (alpha=1),
    ``fit_only`` (alpha=0) and ``alpha_sweep`` ({alpha: {...}}).

Writes ``eval.json`` and ``eval.md`` into ``out`` (default: the bundle folder; they are not
listed in the bundle's manifest, so :func:`mmembed.bundle.read_bundle` still accepts the bundle)
and updates the summary of an active W&B run, if there is one (none is created).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from mmembed.bundle import dumps_json
from mmembed.communities.metrics import truth_metrics
from mmembed.config import CONF_DIR
from mmembed.ranking import divergence
from mmembed.ranking.ranker import Ranker, RankError, RankSettings, resolve_bundle
from mmembed.ranking.score import percentile_among, rank_order, score

__all__ = ["EvalSettings", "dcg_at_k", "default_alpha", "evaluate", "frozen_feature_kmeans",
           "main", "ndcg_at_k", "pairwise_accuracy", "precision_at_k", "write_markdown"]

DEFAULT_ALPHAS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)


def default_alpha() -> float:
    """``rank.alpha`` of ``conf/rank.yaml`` (what ``rank.py`` uses), else RankSettings' default."""
    try:
        return float(OmegaConf.load(CONF_DIR / "rank.yaml").rank.alpha)
    except Exception:  # noqa: BLE001 - the packaged default is a fine fallback
        return float(RankSettings().alpha)


@dataclass(frozen=True)
class EvalSettings:
    """What ``conf/evaluate.yaml`` sets (see there)."""

    alpha: float | None = None  # None = default_alpha()
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
        alpha = default_alpha() if self.alpha is None else float(self.alpha)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "alphas", tuple(float(a) for a in self.alphas))
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be an integer >= 1, got {self.k!r}")
        if self.random_repeats < 1:
            raise ValueError(f"random_repeats must be >= 1, got {self.random_repeats!r}")
        for a in (alpha, *self.alphas):
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
def dcg_at_k(relevance_in_order: np.ndarray, k: int) -> float:
    """``sum_{i<k} rel_i / log2(i + 2)`` of relevances listed best-ranked first."""
    rel = np.asarray(relevance_in_order, dtype=np.float64)[:k]
    return float(np.sum(rel / np.log2(np.arange(2, rel.size + 2))))


def ndcg_at_k(scores: np.ndarray, relevance: np.ndarray, k: int) -> float:
    """NDCG@k of ranking by ``scores`` (higher first, ties in input order); NaN if no relevance."""
    rel = np.asarray(relevance, dtype=np.float64)
    ideal = dcg_at_k(np.sort(rel)[::-1], k)
    if ideal <= 0:
        return math.nan
    order = np.argsort(rank_order(scores))
    return dcg_at_k(rel[order], k) / ideal


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
    from scipy.stats import spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ------------------------------------------------------------------------------ evaluate
def _posts(ranker: Ranker) -> list[dict[str, Any]]:
    """Every post of the bundle (``posts.jsonl`` rows)."""
    with ranker.bundle.file("posts.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _held_out(ranker: Ranker) -> list[dict[str, Any]]:
    return [row for row in _posts(ranker) if row.get("split") == "test"]


def _image_only(ranker: Ranker, posts: list[dict], settings: EvalSettings,
                community: str) -> tuple[list[dict], np.ndarray, np.ndarray, int]:
    """Run the held-out image files through ``rank_photos``; the readable posts, their ``q``
    ``[n, K]`` and predicted engagement ``[n]``, and how many were skipped."""
    result = ranker.rank_photos([p["image_path"] for p in posts], community, settings.rank)
    by_image = {ph["image"]: ph for ph in result["photos"]}
    kept, q, eng = [], [], []
    for p in posts:
        ph = by_image.get(str(Path(p["image_path"])))
        if ph is not None:
            kept.append(p)
            q.append(ph["q"])
            eng.append(ph["engagement"])
    k = ranker.k
    return (kept, np.asarray(q, dtype=np.float64).reshape(-1, k), np.asarray(eng),
            len(posts) - len(kept))


def evaluate(bundle_path: str | Path, settings: EvalSettings | DictConfig | dict | None = None,
             out: str | Path | None = None, ranker: Ranker | None = None,
             write: bool = True) -> dict[str, Any]:
    """Evaluate the bundle at ``bundle_path`` on its held-out posts (see the module docstring).

    ``settings``: an :class:`EvalSettings`, or a config/dict with its fields (extra keys are
    ignored). Writes ``eval.json`` and ``eval.md`` into ``out`` (default: the bundle folder)
    unless ``write=False``. Returns the eval dict (plain JSON values; ``None`` where a metric
    is undefined, e.g. no planted topics).
    """
    if not isinstance(settings, EvalSettings):
        settings = EvalSettings.from_cfg(settings)
    if ranker is None:
        ranker = Ranker.from_bundle(bundle_path, device=settings.device)
    posts = _held_out(ranker)
    if not posts:
        raise RankError(f"{ranker.bundle.path / 'posts.jsonl'} has no held-out (split == test) "
                        "post to evaluate on")
    accounts = sorted(n for n, c in ranker.communities.items() if c["kind"] == "account")
    anchor = accounts[0] if accounts else ranker.default_community()
    posts, q, pred, skipped = _image_only(ranker, posts, settings, anchor)
    n = len(posts)
    full_labels = np.asarray([int(p["cluster"]) for p in posts])
    image_labels = q.argmax(axis=1)
    actual = np.asarray([float(p["engagement"]) for p in posts])
    topics = [p.get("topic") for p in posts]
    has_truth = bool(topics) and all(t is not None for t in topics)

    res: dict[str, Any] = {"bundle": {"name": ranker.bundle.name,
                                      "path": str(ranker.bundle.path.resolve()),
                                      "created": ranker.bundle.created, "k": ranker.k},
                           "settings": settings.to_dict(),
                           "held_out": n, "skipped": skipped}
    full_truth = truth_metrics(full_labels, topics) if has_truth else {}
    image_truth = truth_metrics(image_labels, topics) if has_truth else {}
    res["nmi"] = full_truth.get("nmi")
    res["ari"] = full_truth.get("ari")
    res["image_only_nmi"] = image_truth.get("nmi")
    res["image_only_ari"] = image_truth.get("ari")
    res["image_only_agreement"] = float(np.mean(image_labels == full_labels))
    build = ranker.bundle.metrics
    res["profile_tv"] = build.get("profile_tv")
    res["profile_tv_max"] = build.get("profile_tv_max")
    res["profile_tv_shares"] = build.get("profile_tv_shares")
    res["profile_tv_sampling"] = build.get("profile_tv_sampling")
    res["engagement_src"] = _spearman(pred, actual)
    full_pred = [p.get("engagement_pred") for p in posts]
    res["engagement_src_full"] = (_spearman(np.asarray(full_pred, dtype=np.float64), actual)
                                  if all(v is not None for v in full_pred) else None)
    res["pairwise_accuracy"] = _clean(pairwise_accuracy(
        pred, actual, np.asarray([str(p.get("account")) for p in posts])))

    # ---------------------------------------------------------------- ranking quality
    k = settings.k
    percentile = percentile_among(actual, actual) / 100.0
    alphas = sorted({settings.alpha, 0.0, 1.0, *settings.alphas})
    per_alpha: dict[float, dict[str, list[float]]] = {a: {"ndcg": [], "precision": []}
                                                      for a in alphas}
    rand = {"ndcg": [], "precision": []}
    rng = np.random.default_rng(settings.seed)
    used = []
    for name in accounts:
        members = set(ranker.communities[name].get("members") or [])
        member = np.asarray([p["post_id"] in members for p in posts], dtype=np.float64)
        relevance = member * percentile
        if relevance.sum() <= 0:
            continue  # no held-out post of this account: nothing to find
        used.append(name)
        profile = np.asarray(ranker.communities[name]["profile"], dtype=np.float64)
        fit = divergence.fit(profile, q, settings.divergence, settings.eps)
        for a in alphas:
            s = score(fit, pred, a)
            per_alpha[a]["ndcg"].append(ndcg_at_k(s, relevance, k))
            per_alpha[a]["precision"].append(precision_at_k(s, member, k))
        nd, pr = [], []
        for _ in range(settings.random_repeats):
            s = rng.permutation(n).astype(np.float64)
            nd.append(ndcg_at_k(s, relevance, k))
            pr.append(precision_at_k(s, member, k))
        rand["ndcg"].append(float(np.mean(nd)))
        rand["precision"].append(float(np.mean(pr)))

    def summary(vals: dict[str, list[float]]) -> dict[str, float | None]:
        return {f"ndcg@{k}": _mean(vals["ndcg"]), f"precision@{k}": _mean(vals["precision"])}

    mine = summary(per_alpha[settings.alpha])
    res[f"ndcg@{k}"] = mine[f"ndcg@{k}"]
    res[f"precision@{k}"] = mine[f"precision@{k}"]
    res["communities"] = used
    res["baselines"] = {
        "random": summary(rand),
        "engagement_only": summary(per_alpha[1.0]),
        "fit_only": summary(per_alpha[0.0]),
        "alpha_sweep": {str(a): summary(per_alpha[a]) for a in settings.alphas},
    }
    if write:
        target = Path(out) if out is not None else ranker.bundle.path
        target.mkdir(parents=True, exist_ok=True)
        (target / "eval.json").write_text(dumps_json(res), encoding="utf-8")
        write_markdown(res, target / "eval.md")
        res["output_dir"] = str(target.resolve())
    log_wandb(res)
    return res


@torch.no_grad()
def frozen_feature_kmeans(bundle_path: str | Path, ks: list[int], seed: int = 0,
                          batch_size: int = 64, ranker: Ranker | None = None) -> dict[str, Any]:
    """Reference clustering: k-means on the bundle's image-tower features, no learning at all.

    Every post of the bundle (``posts.jsonl``) is decoded as ``rank.py`` decodes photos and
    put through the bundle's image tower alone (for a frozen pretrained tower: the features
    before any projection, without appended photo statistics); the L2-normalised features are
    clustered with the project's k-means
    (:class:`~mmembed.communities.clustering.KMeansClusterer`, fitted on all posts like the
    bundle's own clusters) once per ``k``. Returns ``{"tower", "frozen", "held_out",
    "by_k": {k: {"nmi", "ari"}}}`` measured on the held-out posts against their planted topic.
    """
    from mmembed.communities.clustering import KMeansClusterer
    from mmembed.ranking.ranker import decode_batches

    ranker = ranker or Ranker.from_bundle(bundle_path)
    rows = _posts(ranker)
    if any(r.get("topic") is None for r in rows):
        raise RankError(f"{ranker.bundle.path / 'posts.jsonl'} has posts without a planted topic; "
                        "the reference needs data with truth (synthetic or tuxpaint)")
    by_path = {str(Path(r["image_path"])): r for r in rows}
    tower, content_dim = ranker.model.image_tower, ranker.model.content_dim
    feats, kept, errors = [], [], []
    for ok, images, bad in decode_batches([Path(r["image_path"]) for r in rows],
                                          ranker.image_size, batch_size):
        errors += bad
        if images is not None:
            out = tower(images.to(ranker.device))[:, :content_dim]  # no photo statistics
            feats.append(out.float().cpu().numpy())
            kept += [by_path[str(p)] for p in ok]
    if not feats:
        raise RankError(f"none of the {len(rows)} photos of {ranker.bundle.path / 'posts.jsonl'} "
                        f"could be read (first: {errors[0].path}: {errors[0].reason}); rebuild "
                        "the bundle where its data is")
    x = np.concatenate(feats)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    held = np.asarray([r.get("split") == "test" for r in kept])
    topics = [r["topic"] for r, h in zip(kept, held) if h]
    by_k = {}
    for k in ks:
        labels = np.asarray(KMeansClusterer(k=int(k), seed=seed).fit(x).labels_)
        by_k[int(k)] = truth_metrics(labels[held], topics)
    model_cfg = ranker.bundle.config.get("model") or {}
    return {"tower": type(tower).__name__, "frozen": bool(model_cfg.get("freeze_towers", False)),
            "held_out": int(held.sum()), "skipped": len(errors), "by_k": by_k}


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def write_markdown(res: dict[str, Any], path: str | Path) -> None:
    """``eval.md``: the metrics and the ranking table (mmembed vs baselines) in markdown."""
    k = res["settings"]["k"]
    lines = [f"# Evaluation of bundle `{res['bundle']['name']}`", "",
             f"{res['held_out']} held-out posts ({res['skipped']} unreadable), evaluated as "
             f"image-only photos; {len(res['communities'])} account communities.", "",
             "| metric | value |", "|---|---|"]
    for key in ("nmi", "ari", "image_only_nmi", "image_only_ari", "image_only_agreement",
                "profile_tv", "profile_tv_max", "profile_tv_shares", "profile_tv_sampling",
                "engagement_src", "engagement_src_full",
                "pairwise_accuracy", f"ndcg@{k}", f"precision@{k}"):
        lines.append(f"| {key} | {_fmt(res.get(key))} |")
    b = res["baselines"]
    rows = [(f"mmembed (alpha={res['settings']['alpha']:g})",
             {f"ndcg@{k}": res[f"ndcg@{k}"], f"precision@{k}": res[f"precision@{k}"]}),
            ("random", b["random"]), ("engagement only (alpha=1)", b["engagement_only"]),
            ("fit only (alpha=0)", b["fit_only"])]
    rows += [(f"alpha={float(a):g}", v) for a, v in b["alpha_sweep"].items()]
    lines += ["", f"| ranking | NDCG@{k} | precision@{k} |", "|---|---|---|"]
    lines += [f"| {name} | {_fmt(v[f'ndcg@{k}'])} | {_fmt(v[f'precision@{k}'])} |"
              for name, v in rows]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def log_wandb(res: dict[str, Any]) -> None:
    """Put the scalar metrics into the active W&B run's summary (``eval/...``); no run, no-op."""
    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None) if wandb is not None else None
    if run is None:
        return
    k = res["settings"]["k"]
    flat = {f"eval/{key}": v for key, v in res.items() if isinstance(v, int | float)}
    for name, v in res["baselines"].items():
        if name != "alpha_sweep":
            flat.update({f"eval/{name}/{m}": x for m, x in v.items() if x is not None})
    for a, v in res["baselines"]["alpha_sweep"].items():
        flat[f"eval/alpha_{a}/ndcg@{k}"] = v[f"ndcg@{k}"]
    run.summary.update({key: v for key, v in flat.items() if v is not None})


# ------------------------------------------------------------------------------ the entry
def evaluate_cfg(cfg: DictConfig) -> dict[str, Any]:
    """``python -m mmembed.evaluate``: resolve ``bundle=``, evaluate, print the table."""
    path = resolve_bundle(cfg.get("bundle"), cfg.paths.index_dir)
    res = evaluate(path, EvalSettings.from_cfg(cfg), out=cfg.get("out"))
    md = Path(res["output_dir"]) / "eval.md"
    print(md.read_text(encoding="utf-8"))
    print(f"wrote {Path(res['output_dir']) / 'eval.json'} and {md}")
    return res


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    from mmembed.cli import run
    from mmembed.config import compose

    cfg = compose(list(sys.argv[1:] if argv is None else argv), config_name="evaluate")
    return run(evaluate_cfg, cfg)


if __name__ == "__main__":
    main()
