"""k-means with faiss on all posts; soft assignment by a Student-t kernel on the centroids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import SimpleNamespace

import numpy as np

from mmembed.communities.clustering.base import (
    Clusterer,
    _check_kernel,
    _normalize_rows,
    cluster_radius,
    kernel_scale,
    student_t_log_soft_assign,
    student_t_soft_assign,
)


class KMeansClusterer(Clusterer):
    """k-means with faiss, trained on **all** posts; soft assignment by the Student-t kernel.

    faiss subsamples to ``max_points_per_centroid`` (default 256) points per centroid; here it
    is raised to ⌈N/k⌉ (at least 256) for every fit, so faiss never subsamples and the centroids
    are those of the full data. ``n_init`` restarts (faiss ``nredo``) from k-means++ seeds
    keep the lowest objective. ``spherical=True`` clusters L2-normalised latents with
    normalised centroids (cosine k-means); latents are then normalised in ``soft_assign`` too.
    """

    name = "kmeans"

    def __init__(self, k: int | str | None = "auto", *,
                 k_range: Sequence[int | str] = (3, "auto"), seed: int = 0, k_seeds: int = 5,
                 n_init: int = 5,
                 max_iter: int = 50, spherical: bool = False, alpha: float = 5.0,
                 scaled: bool = True, init: str = "k-means++", kernel: str = "multivariate"):
        super().__init__(k, k_range=k_range, seed=seed, k_seeds=k_seeds)
        if init not in ("k-means++", "random"):
            raise ValueError(f"init must be 'k-means++' or 'random', got {init!r}")
        if n_init < 1 or max_iter < 1 or alpha <= 0:
            raise ValueError(f"need n_init ≥ 1, max_iter ≥ 1 and alpha > 0, got "
                             f"n_init={n_init}, max_iter={max_iter}, alpha={alpha}")
        self.n_init = int(n_init)
        self.max_iter = int(max_iter)
        self.spherical = bool(spherical)
        self.alpha = float(alpha)
        self.scaled = bool(scaled)
        self.init = init
        self.kernel = _check_kernel(kernel)

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        return _normalize_rows(x) if self.spherical else x

    def _fit_k(self, x: np.ndarray, k: int, seed: int) -> SimpleNamespace:
        import faiss

        x = self._prepare(x)
        n, d = x.shape
        max_points = max(256, -(-n // k))
        init_method = (faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS if self.init == "k-means++"
                       else faiss.ClusteringInitMethod_RANDOM)
        km = faiss.Kmeans(d, k, niter=self.max_iter, nredo=self.n_init, seed=seed,
                          spherical=self.spherical, max_points_per_centroid=max_points,
                          min_points_per_centroid=1, init_method=init_method, verbose=False)
        km.train(x)
        centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
        labels = student_t_soft_assign(x, centroids, self.alpha).argmax(axis=1)  # nearest
        scale = (kernel_scale(cluster_radius(x, centroids, labels), d, self.kernel)
                 if self.scaled else 1.0)
        return SimpleNamespace(centroids_=centroids, labels_=labels, n_clusters_=k, scale_=scale,
                               max_points_per_centroid_=max_points,
                               train_objective_=float(km.obj[-1]))

    def _log_soft_assign(self, x: np.ndarray) -> np.ndarray:
        return student_t_log_soft_assign(self._prepare(x), self.centroids_, self.alpha,
                                         self.scale_, self.kernel)

    def _permute(self, order: np.ndarray) -> None:
        self.centroids_ = np.ascontiguousarray(self.centroids_[order])

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"centroids": self.centroids_, "scale": np.array([self.scale_])}

    def _load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.centroids_ = np.ascontiguousarray(arrays["centroids"], dtype=np.float32)
        self.scale_ = float(arrays["scale"][0])
