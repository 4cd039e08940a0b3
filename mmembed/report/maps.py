"""The 2-D map of a bundle: every post's latent placed in the plane, coloured by cluster.

* :func:`map_2d` — 2-D coordinates of the post latents (UMAP if installed, else t-SNE, else PCA).
* :func:`plot_map` — the scatter of those coordinates coloured by cluster, with a legend.

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

#: Above this many posts, ``method="auto"`` uses PCA instead of t-SNE when UMAP is missing.
TSNE_MAX = 5000
METHODS = ("auto", "umap", "tsne", "pca")
METHOD_LABELS = {"umap": "UMAP", "tsne": "t-SNE", "pca": "PCA"}
#: The map's legend lists at most this many clusters (the largest); the rest are summarised.
LEGEND_MAX = 40


def map_2d(
    latent: np.ndarray, seed: int = 0, method: str = "auto", tsne_max: int = TSNE_MAX
) -> tuple[np.ndarray, str]:
    """2-D coordinates of ``latent`` [N, d] for the map; returns ``(coords [N, 2], method_used)``.

    ``method="auto"`` uses UMAP when ``umap`` (umap-learn) is importable, else t-SNE (scikit-learn,
    PCA-initialised, seeded) for N ≤ ``tsne_max``, else PCA. ``"umap"``, ``"tsne"`` or ``"pca"``
    force one (``"umap"`` raises ImportError when umap-learn is missing). With fewer than 5
    posts, or when a method yields non-finite output, PCA is used and ``method_used`` says so.
    Non-finite latents are replaced by 0 with a warning. ``coords`` is float32.
    """
    if method not in METHODS:
        raise ValueError(f"map_2d: method must be one of {METHODS}, got {method!r}")
    x = np.asarray(latent, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"map_2d: latent must be [N, d], got shape {x.shape}")
    if not np.isfinite(x).all():
        warnings.warn("map_2d: non-finite latent values replaced by 0", stacklevel=2)
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    n = x.shape[0]
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
        method = "tsne" if n <= tsne_max else "pca"
    if method == "tsne":
        coords = _tsne(x, seed)
        if np.isfinite(coords).all():
            return coords, "tsne"
    return _pca(x, seed), "pca"


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
