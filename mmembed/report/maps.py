"""The 2-D map of a bundle: every post's latent placed in the plane, coloured by cluster.

* :func:`map_2d` — 2-D coordinates of the post latents (UMAP if installed, else t-SNE, else PCA).
* :func:`map_sample` — the seeded, cluster-stratified posts that t-SNE lays out on a big corpus.
* :func:`plot_map` — the scatter of those coordinates coloured by cluster, with a legend.

t-SNE costs far more than linear time, so above :data:`TSNE_SAMPLE` posts it lays out only a
seeded sample of that many (stratified by cluster, so small clusters are on the map) and every
other post is placed at the distance-weighted mean of the 2-D points of its
:data:`MAP_NEIGHBORS` nearest sampled posts in the latent. The map's cost is then bounded
(t-SNE of the sample, plus a nearest-neighbour query per post) and big corpora keep a t-SNE map
instead of falling back to PCA, whose two axes mix the clusters. At N ≤ ``TSNE_SAMPLE`` every
post is in t-SNE.

UMAP is optional and imported lazily (its first import compiles with numba).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from mmembed.report.colors import NOISE_COLOR, cluster_colors, cluster_name, short_name
from mmembed.report.figures import mpl_style, new_figure, output_path, save_png

#: t-SNE lays out at most this many posts; the rest are placed by their nearest sampled posts.
TSNE_SAMPLE = 2000
#: t-SNE iterations (scikit-learn's ``max_iter``; the first 250 are early exaggeration). At 2,000
#: posts 400 is within 0.004 of the default 1,000's trustworthiness at 0.4–0.5 of its CPU time;
#: 300 lost 0.01–0.03 (``benchmarks/map_quality.py --iters``, BENCHMARKS.md).
TSNE_ITER = 400
#: A post outside the t-SNE sample is placed by this many nearest sampled posts.
MAP_NEIGHBORS = 5
#: Nearest-neighbour queries run this many rows at a time (bounds the distance blocks' memory).
QUERY_BLOCK = 8192
METHODS = ("auto", "umap", "tsne", "pca")
METHOD_LABELS = {"umap": "UMAP", "tsne": "t-SNE", "pca": "PCA"}
#: The map's legend lists at most this many clusters (the largest); the rest are summarised.
LEGEND_MAX = 40


def map_2d(
    latent: np.ndarray,
    seed: int = 0,
    method: str = "auto",
    tsne_sample: int = TSNE_SAMPLE,
    labels: Sequence[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """2-D coordinates of ``latent`` [N, d] for the map; returns ``(coords [N, 2], method_used)``.

    ``method="auto"`` uses UMAP when ``umap`` (umap-learn) is importable, else t-SNE
    (scikit-learn, PCA-initialised, seeded, :data:`TSNE_ITER` iterations). Above ``tsne_sample``
    posts (at least 5) t-SNE lays out only :func:`map_sample`'s rows (stratified by the cluster
    ``labels`` [N] when given) and places every other post at the mean of the 2-D points of its
    :data:`MAP_NEIGHBORS` nearest sampled posts in the latent, weighted by 1 / distance.
    ``"umap"``, ``"tsne"`` or ``"pca"`` force one (``"umap"`` raises ImportError when
    umap-learn is missing). With fewer than 5 posts, or when a method yields non-finite output,
    PCA is used and ``method_used`` says so. Non-finite latents are replaced by 0 with a
    warning. ``coords`` is float32.
    """
    if method not in METHODS:
        raise ValueError(f"map_2d: method must be one of {METHODS}, got {method!r}")
    x = np.asarray(latent, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"map_2d: latent must be [N, d], got shape {x.shape}")
    n = x.shape[0]
    if labels is not None and len(labels) != n:
        raise ValueError(f"map_2d: {n} latents but {len(labels)} labels; pass one label a post")
    if not np.isfinite(x).all():
        warnings.warn("map_2d: non-finite latent values replaced by 0", stacklevel=2)
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    if n < 5 or method == "pca" or float(np.ptp(x, axis=0).max(initial=0.0)) == 0.0:
        return _pca(x, seed), "pca"

    if method in ("auto", "umap"):
        try:
            import umap  # noqa: F401  (lazy: its first import compiles with numba)
        except Exception as exc:  # ImportError, or a broken numba install
            if method == "umap":
                raise ImportError(
                    "map_2d(method='umap') needs umap-learn (pip install umap-learn); "
                    "use method='auto' to fall back to t-SNE/PCA"
                ) from exc
        else:
            coords = _umap(x, seed)
            if np.isfinite(coords).all():
                return coords, "umap"
            return _pca(x, seed), "pca"
    rows = map_sample(n, seed, labels, max(5, tsne_sample))  # t-SNE needs a few points
    coords = _sampled_tsne(x, seed, rows)
    if np.isfinite(coords).all():
        return coords, "tsne"
    return _pca(x, seed), "pca"


def map_sample(
    n: int,
    seed: int,
    labels: Sequence[int] | np.ndarray | None = None,
    size: int = TSNE_SAMPLE,
) -> np.ndarray:
    """The sorted rows (of ``n`` posts) that t-SNE lays out: all of them when ``n ≤ size``.

    Otherwise ``size`` rows drawn with ``seed``. With cluster ``labels`` [n] the draw is
    stratified: every cluster (each distinct label, noise included) gets one row, the other
    ``size − K`` are shared in proportion to the clusters' sizes beyond that first row (rounded
    down), and the few left by the rounding are drawn from all the remaining posts. When there
    are more clusters than ``size`` the draw is uniform.
    """
    if size < 1:
        raise ValueError(f"map_sample: size must be ≥ 1, got {size}")
    if n <= size:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(n, size, replace=False)).astype(np.int64)
    lab = np.asarray(labels).reshape(-1)
    if len(lab) != n:
        raise ValueError(f"map_sample: {n} posts but {len(lab)} labels")
    groups, inverse, counts = np.unique(lab, return_inverse=True, return_counts=True)
    k = len(groups)
    if k > size:
        return np.sort(rng.choice(n, size, replace=False)).astype(np.int64)
    extra = size - k
    quotas = 1 + (extra * (counts - 1)) // (n - k)  # ≤ counts, as extra < n − k
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    chosen = np.zeros(n, dtype=bool)
    for g in range(k):
        members = order[starts[g]:starts[g + 1]]
        chosen[rng.choice(members, int(quotas[g]), replace=False)] = True
    left = size - int(quotas.sum())
    if left > 0:
        chosen[rng.choice(np.flatnonzero(~chosen), left, replace=False)] = True
    return np.flatnonzero(chosen).astype(np.int64)


def _sampled_tsne(x: np.ndarray, seed: int, rows: np.ndarray) -> np.ndarray:
    """t-SNE of ``x[rows]``; every other row at the 1/distance-weighted mean of its neighbours."""
    n = x.shape[0]
    if len(rows) == n:
        return _tsne(x, seed)
    out = np.empty((n, 2), dtype=np.float32)
    out[rows] = _tsne(x[rows], seed)
    if not np.isfinite(out[rows]).all():
        return np.full((n, 2), np.nan, dtype=np.float32)
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=min(MAP_NEIGHBORS, len(rows))).fit(x[rows])
    sampled = out[rows]
    rest = np.setdiff1d(np.arange(n), rows, assume_unique=True)
    for start in range(0, len(rest), QUERY_BLOCK):
        block = rest[start:start + QUERY_BLOCK]
        dist, idx = nn.kneighbors(x[block])
        weights = 1.0 / np.maximum(dist, 1e-12)  # a post equal to a sampled one lands on it
        weights /= weights.sum(axis=1, keepdims=True)
        out[block] = np.einsum("bk,bkc->bc", weights, sampled[idx])
    return out


def _pca(x: np.ndarray, seed: int) -> np.ndarray:
    n, d = x.shape
    out = np.zeros((n, 2), dtype=np.float32)
    if n < 2 or d == 0:
        return out
    centred = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    if not np.any(centred):
        return out
    from sklearn.decomposition import PCA

    m = min(2, n, d)
    out[:, :m] = PCA(n_components=m, random_state=seed).fit_transform(centred)
    return out


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = x.shape[0]
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        init="pca",
        learning_rate="auto",
        max_iter=TSNE_ITER,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tsne.fit_transform(x).astype(np.float32)


def _umap(x: np.ndarray, seed: int) -> np.ndarray:
    import umap

    reducer = umap.UMAP(
        n_components=2, n_neighbors=min(15, x.shape[0] - 1), min_dist=0.1, random_state=seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(reducer.fit_transform(x), dtype=np.float32)


def plot_map(
    coords: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    names: Sequence[str],
    path: str | Path,
    title: str = "Content clusters",
    method_used: str = "",
    *,
    highlight: Iterable[int] | None = None,
    seed: int = 0,
    dpi: int = 100,
) -> Path:
    """Scatter of ``coords`` [N, 2] coloured by cluster ``labels`` [N]; PNG of 900×700 pixels.

    ``names[k]`` names cluster k (shortened in the legend; clusters beyond ``names`` are called
    "cluster k", negative labels "unassigned"). Each cluster's id is written at its median point.
    The legend lists the largest :data:`LEGEND_MAX` clusters with their sizes. ``highlight``
    (e.g. the medoid post indices) are circled. Points are drawn in a seeded random order so no
    cluster hides another.
    """
    path = output_path(path)
    xy = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(lab) != len(xy):
        raise ValueError(f"plot_map: {len(xy)} coordinates but {len(lab)} labels")
    n = len(xy)
    present = sorted(int(k) for k in np.unique(lab)) if n else []
    k_total = max(len(names), (max(present) + 1) if present else 0)
    colors = cluster_colors(k_total)
    color_of = {k: (colors[k] if k >= 0 else NOISE_COLOR) for k in present}
    counts = {k: int((lab == k).sum()) for k in present}

    with mpl_style():
        from matplotlib.lines import Line2D
        from matplotlib.patheffects import withStroke

        fig = new_figure(9, 7, dpi)
        ax = fig.add_axes((0.03, 0.05, 0.60, 0.82))
        fig.text(0.03, 0.955, title, fontsize=15, fontweight="bold", va="center", color="#222")
        label = METHOD_LABELS.get(method_used, method_used or "2-D map")
        fig.text(
            0.03, 0.915,
            f"{n:,} posts · {len([k for k in present if k >= 0])} clusters · {label}",
            fontsize=10, color="#777777", va="center",
        )
        if n == 0:
            ax.text(0.5, 0.5, "no posts", ha="center", va="center", color="#999999",
                    fontsize=14, transform=ax.transAxes)
        else:
            order = np.random.default_rng(seed).permutation(n)
            size = float(np.clip(40.0 * math.sqrt(300.0 / n), 2.0, 40.0))
            alpha = float(np.clip(0.9 - 0.12 * math.log10(max(n, 1) / 300.0), 0.35, 0.9))
            point_colors = np.array([color_of[int(k)] for k in lab[order]])
            ax.scatter(xy[order, 0], xy[order, 1], c=point_colors, s=size, alpha=alpha,
                       linewidths=0, rasterized=True)
            if highlight is not None:
                idx = np.array([i for i in highlight if 0 <= int(i) < n], dtype=np.int64)
                if len(idx):
                    ax.scatter(xy[idx, 0], xy[idx, 1], s=max(size * 3, 40), facecolors="none",
                               edgecolors="#111111", linewidths=1.1)
            stroke = [withStroke(linewidth=3, foreground="white")]
            for k in present:
                if k < 0:
                    continue
                centre = np.median(xy[lab == k], axis=0)
                ax.text(centre[0], centre[1], str(k), fontsize=9, fontweight="bold",
                        ha="center", va="center", color="#111111", path_effects=stroke)
            ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{label} 1" if method_used else "")
        ax.set_ylabel(f"{label} 2" if method_used else "")

        shown = sorted(present, key=lambda k: -counts[k])[:LEGEND_MAX]
        shown.sort(key=lambda k: (k < 0, k))
        if shown:
            many = len(shown) > 20
            max_len = 24 if many else 30
            handles = [
                Line2D([], [], marker="o", linestyle="", markersize=7, color=color_of[k],
                       label=(f"{k}  " if k >= 0 else "")
                       + f"{short_name(cluster_name(names, k), max_len)}  ({counts[k]:,})")
                for k in shown
            ]
            if highlight is not None:
                handles.append(Line2D([], [], marker="o", linestyle="", markersize=8,
                                      markerfacecolor="none", markeredgecolor="#111111",
                                      label="medoid"))
            hidden = len(present) - len(shown)
            legend = fig.legend(
                handles=handles, loc="upper left", bbox_to_anchor=(0.655, 0.87),
                frameon=False, fontsize=7.5 if many else 9, ncol=1,
                handletextpad=0.3, labelspacing=0.35 if many else 0.55, borderaxespad=0,
                title=f"clusters (+{hidden} smaller not listed)" if hidden else "clusters",
                title_fontsize=9, alignment="left",
            )
            legend.get_title().set_color("#555555")
        return save_png(fig, path, dpi)
