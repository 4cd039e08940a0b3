"""Content clusters of the post latents, behind one small interface (as BERTopic swaps clusterers).

After training every post has a latent vector z (float32 [N, d]). The bundle build groups the
latents into K content clusters; at ranking time a new photo, which has no caption, gets a
latent through the image-only path and needs a **soft assignment** q(z), a distribution over
the K clusters. Each method here is a small class with the same surface::

    c = make_clusterer("kmeans", k="auto", k_range=(3, 12), seed=0).fit(latent)
    c.labels_                      # hard labels of the fitted posts [N]
    c.soft_assign(new_latent)      # [n, K], rows sum to 1, always finite
    arrays, params = c.state()     # -> clusters.npz (plain arrays) + JSON params
    c2 = load_clusterer(arrays, params)   # rebuilt for soft_assign, no pickle anywhere

**Cluster numbering is canonical.** A fit numbers its clusters in whatever order faiss,
scikit-learn or kmedoids produced them, so two fits that find the same partition (a resumed
training run, another thread count) could still call a cluster 0 in one and 3 in the other,
and every file that names clusters would differ. After every fit the clusters are renumbered by
the smallest post index they contain: cluster 0 holds post 0, cluster 1 the first post not in
cluster 0, and so on. The key depends on the partition alone (not on coordinates, which move a
little between equivalent fits), so the same partition of the same posts always gets the same
labels. Clusters that no post is assigned to (possible for k-means and DEC) come last, ordered
by the post with the highest soft assignment to them. Centroids, medoids, mixture components and
topics are permuted with the labels, so the saved state and the columns of ``soft_assign``
follow the same numbering (:meth:`Clusterer._canonicalise`).

Methods (``method`` name → class):

- ``kmeans``: faiss k-means on all posts; q by the Student-t kernel.
- ``gmm``: scikit-learn Gaussian mixture; q = posterior responsibilities.
- ``pam``: k-medoids with FasterPAM (the seed's method); q by the Student-t kernel on medoids.
- ``dec``: Deep Embedded Clustering: k-means, then refines the encoder and centroids.
- ``lda``: the seed's text baseline, LDA topics over captions and hashtags; new photos are
  placed through their nearest fitted posts in the latent space.

**Choosing K.** ``k`` is an int or ``"auto"`` (``None`` means auto too). Auto fits every k in
``k_range`` (inclusive) and keeps the best by the method's criterion, recorded in ``k_curve_``:

- kmeans, pam, dec: silhouette of the hard labels (higher better; a seeded sample of 5000
  posts above that size); dec chooses K at its k-means initialisation.
- gmm: BIC (lower better), the likelihood-based criterion that fits a probabilistic model.
- lda: silhouette *of the topic labels in the latent space*, not held-out perplexity, which
  tends to improve steadily with K and agrees poorly with how coherent topics are (Chang et
  al., "Reading tea leaves", 2009). What ranking needs is topics that are coherent regions
  of the latent space, since that is how caption-less photos are mapped onto them.

**Student-t soft assignment** (DEC, Xie et al. 2016, eq. 1), used by kmeans, pam and dec::

    q_ij = (1 + ‖z_i − μ_j‖² / α)^(−(α+1)/2)  /  Σ_j' (1 + ‖z_i − μ_j'‖² / α)^(−(α+1)/2)

with α = 1 by default (a Cauchy kernel). Its heavy tails keep q informative far from every
centroid, and a photo very far from all of them gets a nearly uniform q rather than an
arbitrary one-hot. It is computed in log space, so q is finite for any finite latent.

That kernel (``kernel="dec"``) is the one-dimensional t density applied to the distance: it
ignores the latent's dimension d. In d dimensions a post lies about one cluster radius r from
its own centroid *and* about √(r² + D²) from a centroid D away, so in units of r the ratio of
the kernel values stays small, and q comes out soft (max q ≈ 0.5 for six clusters at
D ≈ 1.7 r in 32-d) even for clusters that never swap a post. ``kmeans`` and ``pam`` therefore
offer ``kernel="multivariate"``: the density of the d-dimensional Student-t with per-dimension
scale σ (``scaled``: σ = r/√d, the clusters' pooled within-cluster standard deviation)::

    q_ij ∝ (1 + ‖z_i − μ_j‖² / (α σ²))^(−(α+d)/2)

i.e. q is the posterior of an equal-weight mixture of isotropic t distributions centred on the
centroids (α → ∞: the Gaussian mixture posterior). It is as sharp as the clusters are
separated, whatever d is, so a community profile (the mean q of its posts) counts its posts'
clusters rather than smearing them. DEC keeps its own kernel (its loss is defined on it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mmembed.communities.metrics import SILHOUETTE_SAMPLE, silhouette

if TYPE_CHECKING:
    import torch

STATE_VERSION = 1
DEFAULT_K_RANGE = (3, 12)

__all__ = [
    "Clusterer", "KMeansClusterer", "GMMClusterer", "PAMClusterer", "DECClusterer",
    "LDAClusterer", "METHODS", "choose_k", "make_clusterer", "load_clusterer",
    "student_t_soft_assign",
]


# --------------------------------------------------------------------------- validation

def _check_latent(latent: Any, name: str = "latent", dim: int | None = None) -> np.ndarray:
    """A C-contiguous float32 [n, d] copy-or-view of ``latent``, with a clear error otherwise."""
    x = np.asarray(latent)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [n, d], got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} must hold numbers, got dtype {x.dtype}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} has dimension {x.shape[1]} but the clusterer was fitted on "
                         f"dimension {dim}; pass latents from the same encoder")
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} row(s) with NaN or inf (first: row "
                         f"{int(np.flatnonzero(bad)[0])}), or values too large for float32; "
                         "drop or fix those posts first")
    return x


def _check_kernel(kernel: Any) -> str:
    """``kernel`` if it names a soft-assignment kernel (:data:`KERNELS`), else a clear error."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    return kernel


def _check_k(k: Any) -> int | None:
    """``k`` as an int ≥ 2, or None for auto ("auto", None)."""
    if k is None or (isinstance(k, str) and k.strip().lower() == "auto"):
        return None
    if isinstance(k, str) and k.strip().isdigit():
        k = int(k.strip())
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 2:
        raise ValueError(f"k must be an integer ≥ 2 or 'auto', got {k!r}")
    return int(k)


def _check_k_range(k_range: Any) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in k_range)
    except (TypeError, ValueError):
        raise ValueError(f"k_range must be two integers [low, high], got {k_range!r}") from None
    if lo < 2 or hi < lo:
        raise ValueError(f"k_range must satisfy 2 ≤ low ≤ high, got {k_range!r}")
    return lo, hi


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


# --------------------------------------------------------------------------- shared pieces

KERNELS = ("dec", "multivariate")


def student_t_soft_assign(latent: np.ndarray, centroids: np.ndarray,
                          alpha: float = 1.0, scale: float = 1.0,
                          kernel: str = "dec") -> np.ndarray:
    """Soft assignment of latents to centroids by a Student-t kernel.

    ``kernel="dec"`` (DEC, eq. 1): q_ij ∝ (1 + ‖z_i − μ_j‖²/(α s²))^(−(α+1)/2), normalised over
    j, with ``scale`` s the unit of distance (DEC uses s = 1 on a latent trained for the kernel).

    ``kernel="multivariate"``: the d-dimensional Student-t density with per-dimension scale s,
    q_ij ∝ (1 + ‖z_i − μ_j‖²/(α s²))^(−(α+d)/2) with d the latent's dimension: the posterior of
    an equal-weight isotropic t mixture (see the module docstring).

    Computed in float64 and in log space (log q = −e · log1p(d²/(α s²)), then a log-sum-exp
    normalisation), so every row is finite and sums to 1 even for latents far from all
    centroids. Returns float64 [n, K].
    """
    if alpha <= 0:
        raise ValueError(f"alpha (Student-t degrees of freedom) must be > 0, got {alpha}")
    _check_kernel(kernel)
    z = np.asarray(latent, dtype=np.float64)
    mu = np.asarray(centroids, dtype=np.float64)
    d2 = (z * z).sum(1)[:, None] + (mu * mu).sum(1)[None, :] - 2.0 * (z @ mu.T)
    np.maximum(d2, 0.0, out=d2)
    dof = alpha + (z.shape[1] if kernel == "multivariate" else 1.0)
    logits = -0.5 * dof * np.log1p(d2 / (alpha * scale * scale))
    if logits.shape[0]:
        logits -= logits.max(axis=1, keepdims=True)
    q = np.exp(logits)
    q /= q.sum(axis=1, keepdims=True)
    return q


def kernel_scale(radius: float, dim: int, kernel: str) -> float:
    """The kernel's unit of distance for clusters of RMS ``radius`` in ``dim`` dimensions: the
    radius itself for ``dec``, the per-dimension standard deviation r/√d for ``multivariate``."""
    return radius / math.sqrt(dim) if kernel == "multivariate" else radius


def cluster_radius(x: np.ndarray, centres: np.ndarray, labels: np.ndarray) -> float:
    """RMS distance of points to their own centre: the kernel's unit of distance when scaled.

    The latent space has no natural scale, and a Student-t kernel on raw distances is as sharp
    or as flat as that arbitrary scale makes it. Measured in units of the clusters' own radius,
    a post at a typical distance from its centre gets the same weight whatever the scale.
    """
    d2 = ((np.asarray(x, np.float64) - np.asarray(centres, np.float64)[labels]) ** 2).sum(1)
    return float(max(np.sqrt(d2.mean()), 1e-12)) if len(d2) else 1.0


def choose_k(latent: np.ndarray, fit_fn: Callable[[int], Any], k_range: Sequence[int],
             criterion: str | Callable[[Any], float] = "silhouette", *,
             higher_is_better: bool = True, seed: int = 0,
             sample_size: int | None = SILHOUETTE_SAMPLE) -> tuple[int, dict[int, float], Any]:
    """Fit every k in ``k_range`` (inclusive) and keep the best by ``criterion``.

    ``fit_fn(k)`` returns a fit result with a ``labels_`` attribute (a fitted clusterer will do).
    ``criterion`` is ``"silhouette"`` (of ``labels_`` in ``latent``, higher better, on a seeded
    sample of ``sample_size`` posts that is the same for every k), ``"bic"`` (the result's
    ``bic_``, lower better), or a callable ``result -> float`` ranked by ``higher_is_better``.
    The upper end is capped at N − 1. A NaN score (e.g. a degenerate fit with one cluster)
    never wins; ties go to the smaller k.

    Returns ``(best_k, curve, best_result)``; ``curve`` maps each k to its score, so a report
    can plot it, and ``best_result`` spares a refit.
    """
    x = _check_latent(latent)
    lo, hi = _check_k_range(k_range)
    n = x.shape[0]
    hi = min(hi, n - 1)
    if lo > hi:
        raise ValueError(f"k_range {tuple(k_range)} has no candidate K for {n} posts "
                         "(K must be < N); lower k_range or pass more posts")
    if criterion == "silhouette":
        def score_fn(result: Any) -> float:
            return silhouette(x, result.labels_, seed=seed, sample_size=sample_size)
    elif criterion == "bic":
        def score_fn(result: Any) -> float:
            return float(result.bic_)
        higher_is_better = False
    elif callable(criterion):
        score_fn = criterion
    else:
        raise ValueError(f"criterion must be 'silhouette', 'bic' or a callable, got {criterion!r}")

    curve: dict[int, float] = {}
    best_k, best_score, best = None, math.nan, None
    for k in range(lo, hi + 1):
        result = fit_fn(k)
        score = float(score_fn(result))
        curve[k] = score
        better = (best_k is None or (math.isfinite(score) and (
            not math.isfinite(best_score)
            or (score > best_score if higher_is_better else score < best_score))))
        if better:
            best_k, best_score, best = k, score, result
    return best_k, curve, best


# --------------------------------------------------------------------------- base class

class Clusterer:
    """Common interface of the content clusterers.

    Constructor arguments are the configuration (``k``, ``k_range``, ``seed`` and the method's
    own); attributes ending in ``_`` exist after :meth:`fit` (or :meth:`from_state`, except
    ``labels_``, which belongs to the fitted posts only):

    - ``n_clusters_``: the K used (``k``, or the one chosen over ``k_range``);
    - ``labels_``: int64 [N] hard labels of the fitted posts;
    - ``k_curve_``: {k: score} of the auto-K search, None when ``k`` was fixed.

    Subclasses implement ``_fit_k`` (one fit at a given K, returning the fitted attributes),
    ``_soft_assign``, ``_state_arrays`` / ``_load_arrays`` and ``_config``.
    """

    name: ClassVar[str] = "base"
    criterion: ClassVar[str] = "silhouette"

    def __init__(self, k: int | str | None = "auto", *,
                 k_range: Sequence[int] = DEFAULT_K_RANGE, seed: int = 0):
        self.k = _check_k(k)
        self.k_range = _check_k_range(k_range)
        self.seed = int(seed)
        self.n_clusters_: int | None = None
        self.labels_: np.ndarray | None = None
        self.k_curve_: dict[int, float] | None = None
        self.dim_: int | None = None

    def __repr__(self) -> str:
        k = "auto" if self.k is None else self.k
        extra = "".join(f", {key}={value!r}" for key, value in self._config().items())
        return f"{type(self).__name__}(k={k!r}, k_range={self.k_range}, seed={self.seed}{extra})"

    # -- fitting
    def fit(self, latent: np.ndarray, *, texts: list[str] | None = None,
            encoder: torch.nn.Module | None = None,
            inputs: torch.Tensor | None = None) -> Clusterer:
        """Cluster the latents [N, d]. ``texts``/``encoder``/``inputs`` are used by LDA/DEC only."""
        x = _check_latent(latent)
        self._select_k(x, lambda k: self._fit_k(x, k))
        return self

    def _fit_k(self, x: np.ndarray, k: int) -> SimpleNamespace:
        raise NotImplementedError

    def _select_k(self, x: np.ndarray, fit_k: Callable[[int], SimpleNamespace]) -> None:
        n = x.shape[0]
        if self.k is None:
            _, curve, best = choose_k(x, fit_k, self.k_range, self.criterion, seed=self.seed)
            self.k_curve_ = curve
        else:
            if self.k >= n:
                raise ValueError(f"k={self.k} clusters need more than {self.k} posts, got {n}; "
                                 "lower k or use k=auto")
            best = fit_k(self.k)
            self.k_curve_ = None
        for attr, value in vars(best).items():
            setattr(self, attr, value)
        self.labels_ = np.asarray(self.labels_, dtype=np.int64)
        self.dim_ = int(x.shape[1])
        self._canonicalise(x)

    # -- canonical numbering
    def canonical_order(self, x: np.ndarray) -> np.ndarray:
        """``order[j]`` = the fitted cluster that becomes cluster j (see the module docstring).

        Non-empty clusters sort by their smallest post index; empty ones follow, by the index of
        the post whose soft assignment to them is highest, then by that assignment (higher
        first), then (only on exact ties) by their fitted number.
        """
        k = int(self.n_clusters_)
        labels = np.asarray(self.labels_, dtype=np.int64)
        first = np.full(k, labels.shape[0], dtype=np.int64)
        np.minimum.at(first, labels, np.arange(labels.shape[0]))
        empty = first == labels.shape[0]
        closest, weight = np.zeros(k, dtype=np.int64), np.zeros(k)
        if empty.any():
            q = np.asarray(self._soft_assign(x), dtype=np.float64)
            closest = q.argmax(axis=0)
            weight = q[closest, np.arange(k)]
        return np.lexsort((np.arange(k), -weight, closest, np.where(empty, 0, first), empty))

    def _canonicalise(self, x: np.ndarray) -> None:
        """Renumber the fitted clusters canonically: parameters and ``labels_`` alike."""
        order = self.canonical_order(x)
        if np.array_equal(order, np.arange(order.shape[0])):
            return
        self._permute(order)
        new_label = np.empty_like(order)
        new_label[order] = np.arange(order.shape[0])
        self.labels_ = new_label[self.labels_]

    def _permute(self, order: np.ndarray) -> None:
        """Reorder the fitted parameters so that new cluster j is old cluster ``order[j]``."""
        raise NotImplementedError

    # -- soft assignment
    def soft_assign(self, latent: np.ndarray) -> np.ndarray:
        """q [n, K] (float64): each row a distribution over the clusters, finite, summing to 1."""
        self._require_fitted()
        x = _check_latent(latent, dim=self.dim_)
        if x.shape[0] == 0:
            return np.zeros((0, self.n_clusters_))
        q = np.asarray(self._soft_assign(x), dtype=np.float64)
        return q / q.sum(axis=1, keepdims=True)

    def _soft_assign(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _require_fitted(self) -> None:
        if self.n_clusters_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(latent) or "
                               "rebuild it with load_clusterer(arrays, params)")

    # -- persistence
    def _config(self) -> dict[str, Any]:
        """Constructor arguments other than k, k_range and seed (JSON-able)."""
        return {}

    def _state_arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _info(self) -> dict[str, Any]:
        """Fitted facts worth recording but not needed to rebuild (JSON-able)."""
        return {}

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays for ``clusters.npz`` (plain numeric/str numpy, no object arrays, so they load
        with ``allow_pickle=False``) and JSON-able params that :func:`load_clusterer` needs."""
        self._require_fitted()
        arrays = {key: np.ascontiguousarray(value) for key, value in self._state_arrays().items()}
        for key, value in arrays.items():
            if value.dtype.hasobject:
                raise TypeError(f"state array {key!r} has object dtype and would need pickle")
        params = {
            "method": self.name,
            "state_version": STATE_VERSION,
            "n_clusters": int(self.n_clusters_),
            "dim": int(self.dim_),
            "k": "auto" if self.k is None else self.k,
            "k_range": list(self.k_range),
            "seed": self.seed,
            "config": self._config(),
            "k_curve": (None if self.k_curve_ is None
                        else {str(k): float(v) for k, v in self.k_curve_.items()}),
            "info": self._info(),
        }
        return arrays, params

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> Clusterer:
        """Rebuild a clusterer written by :meth:`state`, ready for :meth:`soft_assign`."""
        method = params.get("method")
        if method != cls.name:
            raise ValueError(f"params are for method {method!r}, not {cls.name!r}; "
                             "use load_clusterer(arrays, params) to dispatch")
        version = params.get("state_version")
        if version != STATE_VERSION:
            raise ValueError(f"cluster state version {version!r} is not {STATE_VERSION}; "
                             "rebuild the bundle with this version of mmembed")
        obj = cls(k=params["k"], k_range=params["k_range"], seed=params["seed"],
                  **params.get("config", {}))
        obj.n_clusters_ = int(params["n_clusters"])
        obj.dim_ = int(params["dim"])
        curve = params.get("k_curve")
        obj.k_curve_ = None if curve is None else {int(k): float(v) for k, v in curve.items()}
        try:
            obj._load_arrays(arrays)
        except KeyError as err:
            raise ValueError(f"cluster state for {cls.name!r} lacks array {err}; the "
                             "clusters.npz is incomplete, rebuild the bundle") from None
        return obj


# --------------------------------------------------------------------------- k-means

class KMeansClusterer(Clusterer):
    """k-means with faiss, trained on **all** posts; soft assignment by the Student-t kernel.

    faiss subsamples to ``max_points_per_centroid`` (default 256) points per centroid; here it
    is raised to ⌈N/k⌉ (at least 256) for every fit, so faiss never subsamples and the centroids
    are those of the full data. ``n_init`` restarts (faiss ``nredo``) from k-means++ seeds
    keep the lowest objective. ``spherical=True`` clusters L2-normalised latents with
    normalised centroids (cosine k-means); latents are then normalised in ``soft_assign`` too.
    """

    name = "kmeans"

    def __init__(self, k: int | str | None = "auto", *, k_range: Sequence[int] = DEFAULT_K_RANGE,
                 seed: int = 0, n_init: int = 5, max_iter: int = 50, spherical: bool = False,
                 alpha: float = 1.0, scaled: bool = True, init: str = "k-means++",
                 kernel: str = "dec"):
        super().__init__(k, k_range=k_range, seed=seed)
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

    def _config(self) -> dict[str, Any]:
        return {"n_init": self.n_init, "max_iter": self.max_iter, "spherical": self.spherical,
                "alpha": self.alpha, "scaled": self.scaled, "init": self.init,
                "kernel": self.kernel}

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        return _normalize_rows(x) if self.spherical else x

    def _fit_k(self, x: np.ndarray, k: int) -> SimpleNamespace:
        import faiss

        x = self._prepare(x)
        n, d = x.shape
        max_points = max(256, -(-n // k))
        init_method = (faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS if self.init == "k-means++"
                       else faiss.ClusteringInitMethod_RANDOM)
        km = faiss.Kmeans(d, k, niter=self.max_iter, nredo=self.n_init, seed=self.seed,
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

    def _soft_assign(self, x: np.ndarray) -> np.ndarray:
        return student_t_soft_assign(self._prepare(x), self.centroids_, self.alpha, self.scale_,
                                     self.kernel)

    def _permute(self, order: np.ndarray) -> None:
        self.centroids_ = np.ascontiguousarray(self.centroids_[order])

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"centroids": self.centroids_, "scale": np.array([self.scale_])}

    def _load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.centroids_ = np.ascontiguousarray(arrays["centroids"], dtype=np.float32)
        self.scale_ = float(arrays["scale"][0])


# --------------------------------------------------------------------------- GMM

class GMMClusterer(Clusterer):
    """Gaussian mixture (scikit-learn); q = posterior responsibilities, auto-K by BIC.

    q_ij = π_j N(z_i; μ_j, Σ_j) / Σ_j' π_j' N(z_i; μ_j', Σ_j') (``predict_proba``, computed
    with log-sum-exp, so finite). BIC = −2 log L + p log N, lower better. ``diag`` covariances
    by default: per-dimension spreads at O(K·d) parameters, where ``full`` costs O(K·d²).
    The state stores weights, means, covariances and Cholesky precisions, from which the
    sklearn model is rebuilt without pickle.
    """

    name = "gmm"
    criterion = "bic"

    def __init__(self, k: int | str | None = "auto", *, k_range: Sequence[int] = DEFAULT_K_RANGE,
                 seed: int = 0, covariance_type: str = "diag", n_init: int = 3,
                 max_iter: int = 200, reg_covar: float = 1e-6):
        super().__init__(k, k_range=k_range, seed=seed)
        if covariance_type not in ("full", "tied", "diag", "spherical"):
            raise ValueError("covariance_type must be full, tied, diag or spherical, got "
                             f"{covariance_type!r}")
        self.covariance_type = covariance_type
        self.n_init = int(n_init)
        self.max_iter = int(max_iter)
        self.reg_covar = float(reg_covar)

    def _config(self) -> dict[str, Any]:
        return {"covariance_type": self.covariance_type, "n_init": self.n_init,
                "max_iter": self.max_iter, "reg_covar": self.reg_covar}

    def _new_model(self, k: int):
        from sklearn.mixture import GaussianMixture

        return GaussianMixture(n_components=k, covariance_type=self.covariance_type,
                               n_init=self.n_init, max_iter=self.max_iter,
                               reg_covar=self.reg_covar, random_state=self.seed)

    def _fit_k(self, x: np.ndarray, k: int) -> SimpleNamespace:
        model = self._new_model(k).fit(x)
        return SimpleNamespace(model_=model, labels_=model.predict(x), n_clusters_=k,
                               bic_=float(model.bic(x)), converged_=bool(model.converged_))

    def _soft_assign(self, x: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(x)

    def _permute(self, order: np.ndarray) -> None:
        m = self.model_
        m.weights_, m.means_ = m.weights_[order], m.means_[order]
        if self.covariance_type != "tied":  # tied: one covariance shared by every component
            for attr in ("covariances_", "precisions_cholesky_", "precisions_"):
                setattr(m, attr, getattr(m, attr)[order])

    def _info(self) -> dict[str, Any]:
        info = {}
        if getattr(self, "bic_", None) is not None:
            info["bic"] = self.bic_
        if getattr(self, "converged_", None) is not None:
            info["converged"] = self.converged_
        return info

    def _state_arrays(self) -> dict[str, np.ndarray]:
        m = self.model_
        return {"weights": m.weights_, "means": m.means_, "covariances": m.covariances_,
                "precisions_cholesky": m.precisions_cholesky_}

    def _load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        model = self._new_model(self.n_clusters_)
        model.weights_ = np.asarray(arrays["weights"])
        model.means_ = np.asarray(arrays["means"])
        model.covariances_ = np.asarray(arrays["covariances"])
        model.precisions_cholesky_ = np.asarray(arrays["precisions_cholesky"])
        model.n_features_in_ = model.means_.shape[1]
        model.converged_ = True
        model.n_iter_ = 0
        model.lower_bound_ = math.nan
        self.model_ = model
        self.bic_ = None
        self.converged_ = None


# --------------------------------------------------------------------------- PAM

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
                 seed: int = 0, max_iter: int = 100, init: str = "build",
                 max_points: int = 20000, alpha: float = 1.0, scaled: bool = True,
                 n_cpu: int = 1, kernel: str = "dec"):
        super().__init__(k, k_range=k_range, seed=seed)
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

    def _config(self) -> dict[str, Any]:
        return {"max_iter": self.max_iter, "init": self.init, "max_points": self.max_points,
                "alpha": self.alpha, "scaled": self.scaled, "n_cpu": self.n_cpu,
                "kernel": self.kernel}

    def fit(self, latent: np.ndarray, *, texts: list[str] | None = None,
            encoder: torch.nn.Module | None = None,
            inputs: torch.Tensor | None = None) -> PAMClusterer:
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

        def fit_k(k: int) -> SimpleNamespace:
            if k >= rows.shape[0]:
                raise ValueError(f"k={k} medoids need more than max_points={rows.shape[0]} "
                                 "sampled posts; raise max_points")
            result = kmedoids.fasterpam(diss, k, max_iter=self.max_iter, init=self.init,
                                        random_state=self.seed, n_cpu=self.n_cpu)
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

    def _soft_assign(self, x: np.ndarray) -> np.ndarray:
        return student_t_soft_assign(x, self.medoids_, self.alpha, self.scale_, self.kernel)

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


# --------------------------------------------------------------------------- DEC

class DECClusterer(Clusterer):
    """Deep Embedded Clustering (Xie, Girshick & Farhadi 2016).

    1. Centroids μ from k-means on ``latent`` (auto-K: silhouette, at this step; refinement
       keeps K).
    2. Minimise KL(P ‖ Q) = Σ_i Σ_j p_ij log(p_ij / q_ij) over mini-batches, where Q is the
       Student-t soft assignment (α = ``alpha``) and P the sharpened target
       p_ij = (q_ij² / f_j) / Σ_j' (q_ij'² / f_j'), f_j = Σ_i q_ij (soft cluster sizes, so
       large clusters do not swallow the rest). P is recomputed from the whole data every
       ``update_interval`` steps and held fixed in between; training stops when fewer than a
       fraction ``tol`` of hard labels changed between two target updates, or after
       ``max_iter`` steps. Adam with learning rate ``lr`` on encoder and centroids.

    **With ``encoder`` and ``inputs``** (a torch module mapping inputs [N, D_in] to latents
    [N, d]; ``latent`` should be ``encoder(inputs)``), the encoder's parameters are refined
    **in place**: the caller must recompute every latent with it afterwards (fitted and new
    posts alike) and save the refined weights in the bundle, since ``soft_assign`` is only
    meaningful on latents from the refined encoder. The encoder runs in eval mode (no
    dropout or batch-norm updates) during refinement and its train/eval mode is restored.
    ``latent_`` holds the refined latents of the fitted posts, which ``labels_`` refer to.

    **Without them**, only the centroids move, on the fixed latent.

    ``history_`` records, per target update, the step, KL(P‖Q) when P was set (``kl_start``),
    the same KL with that P at the next update (``kl_end``, what the steps in between
    minimised) and the fraction of labels that changed.
    """

    name = "dec"

    def __init__(self, k: int | str | None = "auto", *, k_range: Sequence[int] = DEFAULT_K_RANGE,
                 seed: int = 0, alpha: float = 1.0, max_iter: int = 1000,
                 update_interval: int = 50, batch_size: int = 256, lr: float = 1e-3,
                 tol: float = 1e-3, n_init: int = 5):
        super().__init__(k, k_range=k_range, seed=seed)
        if alpha <= 0 or max_iter < 0 or update_interval < 1 or batch_size < 1 or lr <= 0:
            raise ValueError("need alpha > 0, max_iter ≥ 0, update_interval ≥ 1, "
                             f"batch_size ≥ 1 and lr > 0, got alpha={alpha}, "
                             f"max_iter={max_iter}, update_interval={update_interval}, "
                             f"batch_size={batch_size}, lr={lr}")
        self.alpha = float(alpha)
        self.max_iter = int(max_iter)
        self.update_interval = int(update_interval)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.tol = float(tol)
        self.n_init = int(n_init)

    def _config(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "max_iter": self.max_iter,
                "update_interval": self.update_interval, "batch_size": self.batch_size,
                "lr": self.lr, "tol": self.tol, "n_init": self.n_init}

    def fit(self, latent: np.ndarray, *, texts: list[str] | None = None,
            encoder: torch.nn.Module | None = None,
            inputs: torch.Tensor | None = None) -> DECClusterer:
        import torch
        from torch.nn import functional as F

        x = _check_latent(latent)
        n = x.shape[0]
        if (encoder is None) != (inputs is None):
            raise ValueError("DEC needs both encoder and inputs (to refine the encoder) or "
                             "neither (to refine only the centroids)")
        init = KMeansClusterer(self.k, k_range=self.k_range, seed=self.seed,
                               n_init=self.n_init, alpha=self.alpha).fit(x)
        k = init.n_clusters_

        if encoder is not None:
            inputs = torch.as_tensor(inputs)
            if inputs.shape[0] != n:
                raise ValueError(f"inputs has {inputs.shape[0]} rows but latent has {n}; "
                                 "latent must be encoder(inputs), row for row")
            param = next(iter(encoder.parameters()), None)
            device = param.device if param is not None else inputs.device
        else:
            device = torch.device("cpu")
            fixed = torch.from_numpy(x).to(device)

        mu = torch.nn.Parameter(torch.from_numpy(init.centroids_.copy()).to(device))
        params = [mu] + (list(encoder.parameters()) if encoder is not None else [])
        optimizer = torch.optim.Adam(params, lr=self.lr)
        generator = torch.Generator().manual_seed(self.seed)
        alpha = self.alpha

        def embed(idx: torch.Tensor) -> torch.Tensor:
            if encoder is None:
                return fixed[idx.to(device)]
            z = encoder(inputs[idx.to(inputs.device)].to(device))
            if z.ndim != 2 or z.shape[1] != x.shape[1]:
                raise ValueError(f"encoder output has shape {tuple(z.shape)}, expected "
                                 f"[batch, {x.shape[1]}] like latent")
            return z

        def log_q_of(z: torch.Tensor) -> torch.Tensor:
            # ‖z‖² + ‖μ‖² − 2 z·μ: unlike cdist, its gradient is defined at zero distance
            d2 = (z.pow(2).sum(1, keepdim=True) + mu.pow(2).sum(1)[None, :]
                  - 2.0 * z @ mu.T).clamp_min(0.0)
            return torch.log_softmax(-0.5 * (alpha + 1.0) * torch.log1p(d2 / alpha), dim=1)

        def all_log_q() -> torch.Tensor:
            with torch.no_grad():
                chunks = [log_q_of(embed(idx)) for idx in torch.arange(n).split(4096)]
            return torch.cat(chunks)

        def kl(p: torch.Tensor, log_q: torch.Tensor) -> float:
            return float((torch.xlogy(p, p) - p * log_q).sum() / p.shape[0])

        was_training = encoder.training if encoder is not None else False
        if encoder is not None:
            encoder.eval()
        history: list[dict[str, Any]] = []
        step, target, prev_labels = 0, None, None
        order, pos = torch.randperm(n, generator=generator), 0
        try:
            while True:
                if step % self.update_interval == 0 or step >= self.max_iter:
                    log_q = all_log_q()
                    labels = log_q.argmax(dim=1)
                    changed = None
                    if target is not None:
                        history[-1]["kl_end"] = kl(target, log_q)
                        changed = float((labels != prev_labels).float().mean())
                        history[-1]["label_change"] = changed
                    if step >= self.max_iter or (changed is not None and changed < self.tol):
                        break
                    log_p = 2.0 * log_q - torch.logsumexp(log_q, dim=0, keepdim=True)
                    target = torch.softmax(log_p, dim=1)
                    history.append({"step": step, "kl_start": kl(target, log_q)})
                    prev_labels = labels
                if pos >= n:
                    order, pos = torch.randperm(n, generator=generator), 0
                idx = order[pos:pos + self.batch_size]
                pos += self.batch_size
                loss = F.kl_div(log_q_of(embed(idx)), target[idx.to(target.device)],
                                reduction="batchmean")
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
            with torch.no_grad():
                if encoder is not None:
                    refined = torch.cat([embed(idx) for idx in torch.arange(n).split(4096)])
                    self.latent_ = _check_latent(refined.detach().cpu().numpy(),
                                                 "refined latent")
                else:
                    self.latent_ = x
        finally:
            if encoder is not None:
                encoder.train(was_training)

        self.centroids_ = np.ascontiguousarray(mu.detach().cpu().numpy(), dtype=np.float32)
        self.labels_ = student_t_soft_assign(self.latent_, self.centroids_, alpha).argmax(1)
        self.n_clusters_ = k
        self.k_curve_ = init.k_curve_
        self.dim_ = int(x.shape[1])
        self.history_ = history
        self.n_steps_ = step
        self.refined_encoder_ = encoder is not None
        self._canonicalise(self.latent_)
        return self

    def _soft_assign(self, x: np.ndarray) -> np.ndarray:
        return student_t_soft_assign(x, self.centroids_, self.alpha)

    def _permute(self, order: np.ndarray) -> None:
        self.centroids_ = np.ascontiguousarray(self.centroids_[order])

    def _info(self) -> dict[str, Any]:
        if getattr(self, "n_steps_", None) is None:
            return {}
        return {"refined_encoder": self.refined_encoder_, "n_steps": self.n_steps_}

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"centroids": self.centroids_}

    def _load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.centroids_ = np.ascontiguousarray(arrays["centroids"], dtype=np.float32)
        self.n_steps_ = None


# --------------------------------------------------------------------------- LDA

class LDAClusterer(Clusterer):
    """The seed's text baseline: LDA topics over caption words and hashtags.

    ``texts`` (one string per post, caption plus hashtags written as ``#tag``) are counted by
    a ``CountVectorizer`` (lowercase, English stop words, tokens of ≥ 2 word characters with an
    optional leading ``#``, so ``#climbing`` and ``climbing`` are different words), then
    scikit-learn's ``LatentDirichletAllocation`` (batch variational Bayes) gives each post a
    doc-topic mix θ_i; ``labels_`` = argmax θ_i. Variational LDA has local optima (two topics
    merged, one split), so ``n_init`` restarts with seeds ``seed, seed+1, ...`` keep the one
    with the highest approximate log-likelihood (the variational bound, ``lda.score``).

    New photos have no text, so ``soft_assign`` goes through the latent space:
    q(z) = mean of θ over the ``n_neighbors`` fitted posts nearest to z (Euclidean, faiss
    ``IndexFlatL2``). The state therefore stores the fitted latents and θ (plus the topic-word
    matrix and vocabulary, to describe topics). Auto-K: silhouette of the topic labels in the
    latent space (see the module docstring for why not perplexity).
    """

    name = "lda"

    def __init__(self, k: int | str | None = "auto", *, k_range: Sequence[int] = DEFAULT_K_RANGE,
                 seed: int = 0, n_neighbors: int = 10, max_features: int | None = 20000,
                 min_df: int = 1, max_iter: int = 20, n_init: int = 3,
                 doc_topic_prior: float | None = None,
                 topic_word_prior: float | None = None, stop_words: str | None = "english"):
        super().__init__(k, k_range=k_range, seed=seed)
        if n_neighbors < 1 or n_init < 1:
            raise ValueError(f"need n_neighbors ≥ 1 and n_init ≥ 1, got {n_neighbors}, {n_init}")
        self.n_neighbors = int(n_neighbors)
        self.max_features = None if max_features is None else int(max_features)
        self.min_df = int(min_df)
        self.max_iter = int(max_iter)
        self.n_init = int(n_init)
        self.doc_topic_prior = None if doc_topic_prior is None else float(doc_topic_prior)
        self.topic_word_prior = None if topic_word_prior is None else float(topic_word_prior)
        self.stop_words = stop_words
        self._index = None

    def _config(self) -> dict[str, Any]:
        return {"n_neighbors": self.n_neighbors, "max_features": self.max_features,
                "min_df": self.min_df, "max_iter": self.max_iter, "n_init": self.n_init,
                "doc_topic_prior": self.doc_topic_prior,
                "topic_word_prior": self.topic_word_prior, "stop_words": self.stop_words}

    def fit(self, latent: np.ndarray, *, texts: list[str] | None = None,
            encoder: torch.nn.Module | None = None,
            inputs: torch.Tensor | None = None) -> LDAClusterer:
        from sklearn.decomposition import LatentDirichletAllocation
        from sklearn.feature_extraction.text import CountVectorizer

        from mmembed.text import caption_terms

        x = _check_latent(latent)
        if texts is None:
            raise ValueError("LDA clusters posts by their words: pass texts=[caption and "
                             "#hashtags of each post] to fit(); for latent-only clustering use "
                             "kmeans, gmm, pam or dec")
        texts = ["" if t is None else str(t) for t in texts]
        if len(texts) != x.shape[0]:
            raise ValueError(f"texts has {len(texts)} entries but latent has {x.shape[0]} rows; "
                             "pass one text per post, in the same order")
        vectorizer = CountVectorizer(lowercase=True, token_pattern=None,
                                     tokenizer=lambda t: caption_terms(t, signs="#", min_length=2),
                                     stop_words=self.stop_words, max_features=self.max_features,
                                     min_df=self.min_df)
        try:
            counts = vectorizer.fit_transform(texts)
        except ValueError as err:
            raise ValueError(f"LDA found no usable words in texts ({err}); check that captions "
                             "and hashtags are passed") from None

        def fit_k(k: int) -> SimpleNamespace:
            lda, best_score = None, -math.inf
            for restart in range(self.n_init):
                candidate = LatentDirichletAllocation(
                    n_components=k, doc_topic_prior=self.doc_topic_prior,
                    topic_word_prior=self.topic_word_prior, learning_method="batch",
                    max_iter=self.max_iter, random_state=self.seed + restart).fit(counts)
                score = float(candidate.score(counts))
                if lda is None or score > best_score:
                    lda, best_score = candidate, score
            doc_topic = np.asarray(lda.transform(counts), dtype=np.float64)
            topic_word = lda.components_ / lda.components_.sum(axis=1, keepdims=True)
            return SimpleNamespace(doc_topic_=doc_topic, topic_word_=topic_word,
                                   labels_=doc_topic.argmax(axis=1), n_clusters_=k,
                                   log_likelihood_=best_score)

        self.latent_ = x.copy()  # before _select_k: the canonical order may soft-assign
        self._index = None
        self._select_k(x, fit_k)
        self.vocabulary_ = np.asarray(vectorizer.get_feature_names_out(), dtype=str)
        return self

    def _info(self) -> dict[str, Any]:
        score = getattr(self, "log_likelihood_", None)
        return {} if score is None else {"log_likelihood": score}

    def _neighbour_index(self):
        if self._index is None:
            import faiss

            self._index = faiss.IndexFlatL2(self.latent_.shape[1])
            self._index.add(self.latent_)
        return self._index

    def _soft_assign(self, x: np.ndarray) -> np.ndarray:
        m = min(self.n_neighbors, self.latent_.shape[0])
        _, neighbours = self._neighbour_index().search(x, m)
        return self.doc_topic_[neighbours].mean(axis=1)

    def _permute(self, order: np.ndarray) -> None:
        self.doc_topic_ = self.doc_topic_[:, order]
        self.topic_word_ = self.topic_word_[order]

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"latent": self.latent_, "doc_topic": self.doc_topic_,
                "topic_word": self.topic_word_, "vocabulary": self.vocabulary_}

    def _load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.latent_ = np.ascontiguousarray(arrays["latent"], dtype=np.float32)
        self.doc_topic_ = np.asarray(arrays["doc_topic"], dtype=np.float64)
        self.topic_word_ = np.asarray(arrays["topic_word"])
        self.vocabulary_ = np.asarray(arrays["vocabulary"], dtype=str)
        self.log_likelihood_ = None
        self._index = None


# --------------------------------------------------------------------------- registry

METHODS: dict[str, type[Clusterer]] = {
    cls.name: cls
    for cls in (KMeansClusterer, GMMClusterer, PAMClusterer, DECClusterer, LDAClusterer)
}


def make_clusterer(method: str, **kwargs: Any) -> Clusterer:
    """An unfitted clusterer by method name (kmeans, gmm, pam, dec, lda) with its kwargs."""
    if method not in METHODS:
        raise ValueError(f"unknown clustering method {method!r}; choose one of "
                         f"{', '.join(METHODS)}")
    return METHODS[method](**kwargs)


def load_clusterer(arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> Clusterer:
    """Rebuild the clusterer saved by ``state()``, dispatching on ``params["method"]``."""
    method = params.get("method")
    if method not in METHODS:
        raise ValueError(f"cluster state names method {method!r}, which this version does not "
                         f"know (known: {', '.join(METHODS)}); rebuild the bundle")
    return METHODS[method].from_state(arrays, params)
