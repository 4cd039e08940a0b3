"""Build the bundle ``index/<name>/`` that ``rank.py`` serves from.

Embed every post (fused and image-only latents), cluster the latent space, name the clusters,
profile the communities, measure the clustering, draw the pictures, index the posts with FAISS,
and write it all atomically (see :mod:`mmembed.bundle`).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_file

from mmembed.bundle import default_bundle_name, dumps_json, write_bundle
from mmembed.communities import metrics as cluster_metrics_mod
from mmembed.communities.naming import cluster_names, cluster_terms
from mmembed.communities.profiles import build_communities
from mmembed.models.features import tower_features
from mmembed.report.pictures import bundle_pictures
from mmembed.search.index import PostIndex

log = logging.getLogger(__name__)


@dataclass
class Embeddings:
    """Every post's vectors, rows in the datamodule's post order."""

    z_image: np.ndarray        # [N, D] image embedding (the FAISS index holds these)
    latent: np.ndarray         # [N, d] latent of the full post (image + caption)
    latent_image: np.ndarray   # [N, d] latent of the image alone
    engagement_pred: np.ndarray  # [N] predicted log engagement rate
    fused: np.ndarray          # [N, F] fused input of the autoencoder (DEC refines on it)


@torch.no_grad()
def embed_posts(model, datamodule, cache_dir: str | None = None,
                batch_size: int = 512) -> Embeddings:
    """Embed every post without gradients: tower features (cached), then the heads in batches."""
    model.eval()
    feats = tower_features(model, datamodule, cache_dir=cache_dir)
    device = model.device
    out: dict[str, list[torch.Tensor]] = {k: [] for k in Embeddings.__dataclass_fields__}
    n = len(feats["image"])
    from rich.progress import track

    for start in track(range(0, n, batch_size), description="embedding posts", transient=True):
        img = feats["image"][start:start + batch_size].to(device)
        z_image = model.project_image(img)
        z_text = None
        if "text" in feats:
            z_text = model.proj_text(feats["text"][start:start + batch_size].to(device))
        fused = model.fuse(z_image, z_text)
        out["z_image"].append(z_image.cpu())
        out["fused"].append(fused.cpu())
        out["latent"].append(model.autoencoder.encode(fused).cpu())
        out["latent_image"].append(model.encode(z_image).cpu())
        out["engagement_pred"].append(model.predict_engagement(img).cpu())
    return Embeddings(**{k: torch.cat(v).numpy().astype(np.float32) for k, v in out.items()})


def post_text(post) -> str:
    """The text LDA reads: hashtags (with '#') and the caption."""
    return " ".join([post.caption or ""] + [f"#{t}" for t in post.hashtags])


def _typical(latent: np.ndarray, idx: np.ndarray, n: int) -> list[int]:
    """The ``n`` posts among ``idx`` closest to their mean latent (the group's most typical)."""
    if len(idx) == 0:
        return []
    d = np.linalg.norm(latent[idx] - latent[idx].mean(axis=0), axis=1)
    return [int(i) for i in idx[np.argsort(d)[:n]]]


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in metrics.items()}


def measure(emb: Embeddings, labels: np.ndarray, q_image: np.ndarray, split: np.ndarray,
            posts, communities: dict, truth: dict | None, make_clusterer, fit_kwargs: dict,
            seed: int) -> dict[str, Any]:
    """The build's metrics: internal quality, stability, and agreement with truth where known.

    - silhouette, Davies–Bouldin (on the full latents), stability (mean ARI over 3 seeds);
    - ``image_only_agreement``: on held-out (test) posts, the share whose image-only cluster is
      the cluster of their full post;
    - with planted topics: ``nmi``/``ari`` of the clusters, ``image_only_nmi`` on held-out
      photos, and ``profile_tv`` (mean total-variation error of account profiles against the
      planted account mixtures); ``profile_tv_shares``, the same against the topic shares each
      account actually posted (the error of the clustering and soft assignment alone), and
      ``profile_tv_sampling``, those shares against the planted mixtures (the part of
      ``profile_tv`` that comes from an account's finite sample of posts, not from the model).
    """
    metrics: dict[str, Any] = dict(cluster_metrics_mod.cluster_metrics(emb.latent, labels, seed))
    metrics["stability_ari"] = cluster_metrics_mod.stability(make_clusterer, emb.latent,
                                                             **fit_kwargs)
    held_out = split == "test"
    image_labels = q_image.argmax(axis=1)
    metrics["image_only_agreement"] = float((image_labels[held_out] == labels[held_out]).mean())
    topics = [p.topic for p in posts]
    if all(t is not None for t in topics):
        metrics.update(cluster_metrics_mod.truth_metrics(labels, topics))
        image_truth = cluster_metrics_mod.truth_metrics(
            image_labels[held_out], [t for t, h in zip(topics, held_out) if h])
        metrics["image_only_nmi"] = image_truth["nmi"]
        mixtures = (truth or {}).get("account_mixtures")
        if mixtures:
            profiles = {name: c["profile"] for name, c in communities.items()
                        if c["kind"] == "account" and name in mixtures}
            tv = cluster_metrics_mod.profile_tv_error(profiles, mixtures, labels, topics)
            metrics["profile_tv"] = tv["mean"]
            metrics["profile_tv_max"] = tv["max"]
            shares = topic_shares(posts, profiles)
            metrics["profile_tv_shares"] = cluster_metrics_mod.profile_tv_error(
                profiles, shares, labels, topics)["mean"]
            metrics["profile_tv_sampling"] = float(np.mean([
                0.5 * sum(abs(shares[a].get(t, 0.0) - w) for t, w in mixtures[a].items())
                for a in profiles]))
    return _finite(metrics)


def topic_shares(posts, accounts) -> dict[str, dict[str, float]]:
    """Each account's share of its posts per planted topic (what it actually posted)."""
    counts: dict[str, dict[str, float]] = {a: {} for a in accounts}
    for p in posts:
        if p.account in counts:
            counts[p.account][p.topic] = counts[p.account].get(p.topic, 0.0) + 1.0
    return {a: {t: n / sum(c.values()) for t, n in c.items()} for a, c in counts.items() if c}


def bundle_name(cfg: DictConfig) -> str:
    if cfg.get("bundle_name"):
        return str(cfg.bundle_name)
    data_name = str(cfg.data._target_).split(".")[-2]
    return default_bundle_name(cfg.get("experiment_name"), data_name)


@dataclass
class BuildResult:
    path: Path
    metrics: dict[str, Any]
    cluster_names: list[str]
    communities: dict[str, dict]


def build_bundle(cfg: DictConfig, model, datamodule, wandb_run=None) -> BuildResult:
    """Write ``index/<name>/`` for a trained model."""
    cluster_cfg = cfg.cluster
    emb = embed_posts(model, datamodule, cache_dir=cfg.model.get("feature_cache_dir"))
    posts = datamodule.posts
    clusterer = instantiate(cluster_cfg)
    fit_kwargs: dict[str, Any] = {}
    if clusterer.name == "lda":
        fit_kwargs["texts"] = [post_text(p) for p in posts]
    if clusterer.name == "dec":
        fit_kwargs.update(encoder=model.autoencoder.encoder, inputs=torch.from_numpy(emb.fused))
    clusterer.fit(emb.latent, **fit_kwargs)
    if clusterer.name == "dec":  # DEC refined the encoder in place: embed again with it
        emb = embed_posts(model, datamodule, cache_dir=cfg.model.get("feature_cache_dir"))
    labels = np.asarray(clusterer.labels_)
    q = clusterer.soft_assign(emb.latent)
    q_image = clusterer.soft_assign(emb.latent_image)
    k = q.shape[1]

    terms = cluster_terms(posts, labels, k, top_n=cfg.communities.top_terms)
    names = cluster_names(terms, n_terms=cfg.communities.name_terms)
    medoids = [_typical(emb.latent, np.flatnonzero(labels == c), cfg.communities.medoids)
               for c in range(k)]
    communities = build_communities(
        posts, q, labels, datamodule.engagement, names,
        groups=OmegaConf.to_container(cfg.communities.groups, resolve=True),
        weighting=cfg.communities.weighting, min_size=cfg.communities.min_size,
        predicted=emb.engagement_pred,
    )
    def make_clusterer(seed: int):
        return instantiate(cluster_cfg, k=k, seed=seed)

    metrics = measure(emb, labels, q_image, datamodule.split, posts, communities,
                      datamodule.corpus.truth, make_clusterer, fit_kwargs, cfg.seed)
    metrics["k"] = k
    metrics["method"] = clusterer.name

    index = PostIndex.build(emb.z_image, [p.post_id for p in posts], **cfg.search)
    arrays, params = clusterer.state()
    sizes = np.bincount(labels, minlength=k)
    clusters_json = {
        "method": params, "k": k,
        "clusters": [{"id": c, "name": names[c], "size": int(sizes[c]),
                      "top_terms": terms[c],
                      "medoids": [posts[i].post_id for i in medoids[c]],
                      "engagement_mean": (float(datamodule.engagement[labels == c].mean())
                                          if sizes[c] else None)}
                     for c in range(k)],
    }
    posts_rows = []
    for i, p in enumerate(posts):
        row = p.to_dict()
        row.update(engagement=float(datamodule.engagement[i]),
                   engagement_pred=float(emb.engagement_pred[i]),
                   cluster=int(labels[i]), split=str(datamodule.split[i]))
        posts_rows.append(row)
    files: dict[str, Any] = {
        "model.safetensors": lambda path: save_file(
            {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path)),
        "clusters.npz": lambda path: np.savez(path, **arrays),
        "clusters.json": dumps_json(clusters_json).encode(),
        "communities.json": dumps_json(communities).encode(),
        "posts.jsonl": "\n".join(json.dumps(r) for r in posts_rows).encode() + b"\n",
        "latents.npz": lambda path: np.savez(
            path, latent=emb.latent, latent_image=emb.latent_image, z_image=emb.z_image,
            engagement_pred=emb.engagement_pred, q=q.astype(np.float32)),
        **index.bundle_files(),
    }
    if model.text_tower is not None and not model.text_tower.pretrained:
        files["tokenizer.json"] = model.text_tower.tokenizer_json().encode()
    row_of = {p.post_id: i for i, p in enumerate(posts)}
    thumbs = {name: [posts[i].image_path for i in _typical(
        emb.latent, np.array([row_of[m] for m in c["members"]], dtype=int), 4)]
        for name, c in communities.items()}
    pictures = bundle_pictures(emb.latent, labels, names, terms, medoids, posts, communities,
                               seed=cfg.seed, community_thumbs=thumbs)
    files.update(pictures)

    target = Path(cfg.paths.index_dir) / bundle_name(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    write_bundle(target, files, config=config, data_fingerprint=datamodule.array_path.stem,
                 metrics=metrics, extra={"k_curve": params.get("k_curve")})
    if wandb_run is not None:
        log_build(wandb_run, target, metrics, pictures)
    return BuildResult(target, metrics, names, communities)


def print_summary(result: BuildResult, console=None) -> None:
    """Where the bundle is, K, the cluster names, the communities and the metrics."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    m = result.metrics
    console.print(f"\n[bold]bundle[/bold] {result.path}  (K={m['k']}, method {m['method']})")
    clusters = Table("cluster", "name", title="content clusters")
    for c, name in enumerate(result.cluster_names):
        clusters.add_row(str(c), name)
    console.print(clusters)
    communities = Table("community", "kind", "size", "top clusters", title="communities")
    for name, c in result.communities.items():
        if c["kind"] == "cluster":
            continue
        top = ", ".join(f"{result.cluster_names[i].split(' · ')[0]} {c['profile'][i]:.2f}"
                        for i in c["top_clusters"])
        communities.add_row(name, c["kind"], str(c["size"]), top)
    console.print(communities)
    table = Table("metric", "value", title="build metrics")
    for key, value in m.items():
        if key in ("k", "method"):
            continue
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)


def log_build(run, target: Path, metrics: dict, pictures: dict) -> None:
    """Send the build's metrics and pictures to the W&B run."""
    from mmembed.report.wandb import log_pictures_to_wandb

    run.summary.update({f"bundle/{k}": v for k, v in metrics.items() if v is not None})
    log_pictures_to_wandb(run, {name: target / name for name in pictures})
