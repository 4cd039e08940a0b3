"""k-medoids with FasterPAM (the seed's method); q by a Student-t kernel on the medoids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from mmembed.communities.clustering.base import (
    DEFAULT_K_RANGE,
    Clusterer,
    _check_kernel,
    _check_latent,
    cluster_radius,
    kernel_scale,
    student_t_log_soft_assign,
    student_t_soft_assign,
)


class PAMClusterer(Clusterer):
    """k-medoids with FasterPAM (the ``kmedoids`` package), the seed's method.

    Medoids are actual posts, minimising Σ_i ‖z_i − m_{c(i)}‖ (Euclidean, not squared, so
    outliers pull less than in k-means). FasterPAM needs the full distance matrix: O(N²)
    memory, N²·4 bytes in float32 (1.6 GB at N = 20 000). Above ``max_points`` posts the
    medoids are found on a seeded random sample of ``max_points`` posts (as CLARA does) and
    every post is labelled by its nearest medoid. ``n_cpu=1`` keeps results reproducible
    (the parallel variant's swap order depends on thread timing).

    ``medoid_indices_`` index the rows of the fitted latent (i.e. the posts passed to fit), so
    ``clusters.json`` can name each cluster's medoid post; the state stores the medoid
    vectors, and q is the Student-t kernel on them.
    """

    name = "pam"

    def __init__(self, k: int | str | None = "auto", *, k_range: Sequence[int] = DEFAULT_K_RANGE,
                 seed: int = 0, k_seeds: int = 1, max_iter: int = 100, init: str = "build",
                 max_points: int = 20000, alpha: float = 5.0, scaled: bool = True,
                 n_cpu: int = 1, kernel: str = "multivariate"):
        super().__init__(k, k_range=k_range, seed=seed, k_seeds=k_seeds)
        if init not in ("build", "random", "first"):
            raise ValueError(f"init must be build, random or first, got {init!r}")
        if max_points < 2 or alpha <= 0:
            raise ValueError(f"need max_points ≥ 2 and alpha > 0, got {max_points}, {alpha}")
        self.max_iter = int(max_iter)
        self.init = init
        self.max_points = int(max_points)
        self.alpha = float(alpha)
        self.scaled = bool(scaled)
        self.n_cpu = int(n_cpu)
        self.kernel = _check_kernel(kernel)

    def fit(self, latent: np.ndarray, posts: Sequence[Any] | None = None) -> PAMClusterer:
        import kmedoids
        from sklearn.metrics import pairwise_distances

        x = _check_latent(latent)
        n = x.shape[0]
        if n > self.max_points:
            rng = np.random.default_rng(self.seed)
            rows = np.sort(rng.choice(n, size=self.max_points, replace=False))
        else:
            rows = np.arange(n)
        diss = np.ascontiguousarray(pairwise_distances(x[rows], metric="euclidean"),
                                    dtype=np.float32)

        def fit_k(k: int, seed: int) -> SimpleNamespace:
            if k >= rows.shape[0]:
                raise ValueError(f"k={k} medoids need more than max_points={rows.shape[0]} "
                                 "sampled posts; raise max_points")
            result = kmedoids.fasterpam(diss, k, max_iter=self.max_iter, init=self.init,
                                        random_state=seed, n_cpu=self.n_cpu)
            medoid_indices = rows[np.asarray(result.medoids, dtype=np.int64)]
            medoids = np.ascontiguousarray(x[medoid_indices])
            labels = student_t_soft_assign(x, medoids, self.alpha).argmax(axis=1)  # nearest
            scale = (kernel_scale(cluster_radius(x, medoids, labels), x.shape[1], self.kernel)
                     if self.scaled else 1.0)
            return SimpleNamespace(medoids_=medoids, medoid_indices_=medoid_indices,
                                   labels_=labels, n_clusters_=k, scale_=scale,
                                   loss_=float(result.loss))

        self._select_k(x, fit_k)
        return self

    def _log_soft_assign(self, x: np.ndarray) -> np.ndarray:
        return student_t_log_soft_assign(x, self.medoids_, self.alpha, self.scale_, self.kernel)

    def _permute(self, order: np.ndarray) -> None:
        self.medoids_ = np.ascontiguousarray(self.medoids_[order])
        self.medoid_indices_ = self.medoid_indices_[order]

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"medoids": self.medoids_, "medoid_indices": self.medoid_indices_,
                "scale": np.array([self.scale_])}

    def _load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.medoids_ = np.ascontiguousarray(arrays["medoids"], dtype=np.float32)
        self.scale_ = float(arrays["scale"][0])
        self.medoid_indices_ = np.asarray(arrays["medoid_indices"], dtype=np.int64)
