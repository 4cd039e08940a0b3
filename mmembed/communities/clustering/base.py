"""The clusterers' common ground: validation, the Student-t kernels, choosing K, the base class.

See :mod:`mmembed.communities.clustering` for the interface and the methods.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator

from mmembed.communities.metrics import SILHOUETTE_SAMPLE, silhouette

STATE_VERSION = 2
DEFAULT_K_RANGE = (3, 12)
KERNELS = ("dec", "multivariate")
#: Rows of latent the soft assignment and the clusters' radius convert to float64 at a time:
#: their memory is ``SOFT_ASSIGN_BLOCK × d × 8`` bytes a temporary whatever the number of posts
#: (a whole 32k × 256 latent in float64, with its square, was ~130 MB above the build's arrays).
SOFT_ASSIGN_BLOCK = 4096

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


def _check_k_range(k_range: Any) -> tuple[int, int | None]:
    """``(low, high)``; ``high`` is None for ``"auto"`` or None (see :func:`auto_k_max`)."""
    try:
        lo, hi = k_range
        lo = int(lo)
        auto = hi is None or (isinstance(hi, str) and hi.strip().lower() == "auto")
        hi = None if auto else int(hi)
    except (TypeError, ValueError):
        raise ValueError(f"k_range must be [low, high] with high an integer or 'auto', "
                         f"got {k_range!r}") from None
    if lo < 2 or (hi is not None and hi < lo):
        raise ValueError(f"k_range must satisfy 2 ≤ low ≤ high, got {k_range!r}")
    return lo, hi


def auto_k_max(n: int, low: int = 2) -> int:
    """The largest K an auto-K search tries on ``n`` posts when ``k_range``'s upper end is
    ``auto``: ``round(√(n / 2))`` (the rule of thumb K ≈ √(N/2)), at least ``low``.

    The silhouette of a contrastive latent keeps creeping up with K (on Tux Paint's 380 posts
    from 0.066 at K = 3 to 0.097 at K = 28), so a fixed wide range ends at its top; the cap
    grows with the corpus instead: 14 at 380 posts, 37 at 2,700 (EVALUATION.md).
    """
    return max(int(low), int(round(math.sqrt(n / 2))))


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


# --------------------------------------------------------------------------- shared pieces

def _float64_blocks(x) -> Iterator[tuple[slice, np.ndarray]]:
    """``(rows, x[rows] as float64)`` for consecutive blocks of :data:`SOFT_ASSIGN_BLOCK` rows."""
    for start in range(0, len(x), SOFT_ASSIGN_BLOCK):
        rows = slice(start, start + SOFT_ASSIGN_BLOCK)
        yield rows, np.asarray(x[rows], dtype=np.float64)


def student_t_log_soft_assign(latent: np.ndarray, centroids: np.ndarray,
                              alpha: float = 1.0, scale: float = 1.0,
                              kernel: str = "dec") -> np.ndarray:
    """log of :func:`student_t_soft_assign`, exact (computed in log space), float64 [n, K].

    Rows are converted to float64 :data:`SOFT_ASSIGN_BLOCK` at a time, so the memory beyond the
    [n, K] result does not grow with n."""
    if alpha <= 0:
        raise ValueError(f"alpha (Student-t degrees of freedom) must be > 0, got {alpha}")
    _check_kernel(kernel)
    mu = np.asarray(centroids, dtype=np.float64)
    mu_sq = (mu * mu).sum(1)[None, :]
    n, d = np.shape(latent)
    dof = alpha + (d if kernel == "multivariate" else 1.0)
    logits = np.empty((n, mu.shape[0]), dtype=np.float64)
    for rows, z in _float64_blocks(latent):
        d2 = (z * z).sum(1)[:, None] + mu_sq - 2.0 * (z @ mu.T)
        np.maximum(d2, 0.0, out=d2)
        block = -0.5 * dof * np.log1p(d2 / (alpha * scale * scale))
        block -= logsumexp(block, axis=1, keepdims=True)
        logits[rows] = block
    return logits


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
    return np.exp(student_t_log_soft_assign(latent, centroids, alpha, scale, kernel))


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
    centres = np.asarray(centres, np.float64)
    labels = np.asarray(labels)
    d2 = np.empty(len(labels), dtype=np.float64)
    for rows, z in _float64_blocks(x):
        d2[rows] = ((z - centres[labels[rows]]) ** 2).sum(1)
    return float(max(np.sqrt(d2.mean()), 1e-12)) if len(d2) else 1.0


def choose_k(latent: np.ndarray, fit_fn: Callable[..., Any], k_range: Sequence[int],
             criterion: str | Callable[[Any], float] = "silhouette", *,
             higher_is_better: bool = True, seed: int = 0,
             sample_size: int | None = SILHOUETTE_SAMPLE,
             fit_seeds: Sequence[int] | None = None) -> tuple[int, dict[int, float], Any]:
    """Fit every k in ``k_range`` (inclusive) and keep the best by ``criterion``.

    ``fit_fn(k)`` returns a fit result with a ``labels_`` attribute (a fitted clusterer will do).
    With ``fit_seeds``, ``fit_fn(k, s)`` is fitted once per seed ``s``: a k's score is the mean
    of its fits' scores (one fit's local optimum no longer decides K), and the best of those
    fits is the one kept.
    ``criterion`` is ``"silhouette"`` (of ``labels_`` in ``latent``, higher better, on a seeded
    sample of ``sample_size`` posts that is the same for every k), ``"bic"`` (the result's
    ``bic_``, lower better), or a callable ``result -> float`` ranked by ``higher_is_better``.
    The upper end may be ``"auto"`` (:func:`auto_k_max`) and is capped at N − 1. A NaN score
    (e.g. a degenerate fit with one cluster) never wins; ties go to the smaller k.

    Returns ``(best_k, curve, best_result)``; ``curve`` maps each k to its score, so a report
    can plot it, and ``best_result`` spares a refit.
    """
    x = _check_latent(latent)
    lo, hi = _check_k_range(k_range)
    n = x.shape[0]
    hi = min(auto_k_max(n, lo) if hi is None else hi, n - 1)
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
        if fit_seeds is None:
            result = fit_fn(k)
            score = float(score_fn(result))
        else:
            result, score = _mean_of_fits(k, fit_fn, fit_seeds, score_fn, higher_is_better)
        curve[k] = score
        better = (best_k is None or (math.isfinite(score) and (
            not math.isfinite(best_score)
            or (score > best_score if higher_is_better else score < best_score))))
        if better:
            best_k, best_score, best = k, score, result
    return best_k, curve, best


def _mean_of_fits(k: int, fit_fn: Callable[..., Any], fit_seeds: Sequence[int],
                  score_fn: Callable[[Any], float], higher_is_better: bool) -> tuple[Any, float]:
    """The best of ``fit_fn(k, s)`` over ``fit_seeds`` and the mean of their finite scores."""
    if not len(fit_seeds):
        raise ValueError("fit_seeds must hold at least one seed")
    fits = [fit_fn(k, s) for s in fit_seeds]
    scores = np.array([float(score_fn(f)) for f in fits])
    finite = np.isfinite(scores)
    if not finite.any():
        return fits[0], math.nan
    ranked = np.where(finite, scores if higher_is_better else -scores, -np.inf)
    return fits[int(np.argmax(ranked))], float(scores[finite].mean())


# --------------------------------------------------------------------------- base class

class Clusterer(BaseEstimator):
    """Common interface of the content clusterers: ``fit(latent, posts)``, ``soft_assign``.

    Constructor arguments are the configuration (``k``, ``k_range``, ``seed`` and the method's
    own), read back by scikit-learn's ``get_params`` (so :func:`sklearn.base.clone` makes an
    unfitted copy, and the bundle stores them); attributes ending in ``_`` exist after
    :meth:`fit` (or :meth:`from_state`, except ``labels_``, which belongs to the fitted posts
    only):

    - ``n_clusters_``: the K used (``k``, or the one chosen over ``k_range``);
    - ``labels_``: int64 [N] hard labels of the fitted posts;
    - ``k_curve_``: {k: score} of the auto-K search, None when ``k`` was fixed.

    Subclasses implement ``_fit_k`` (one fit at a given K, returning the fitted attributes),
    ``_soft_assign`` (or ``_log_soft_assign``), ``_permute`` and ``_state_arrays`` /
    ``_load_arrays``.
    """

    name: ClassVar[str] = "base"
    criterion: ClassVar[str] = "silhouette"

    def __init__(self, k: int | str | None = "auto", *,
                 k_range: Sequence[int] = DEFAULT_K_RANGE, seed: int = 0, k_seeds: int = 1):
        _check_k(k), _check_k_range(k_range)  # validated here, stored as given (scikit-learn)
        if isinstance(k_seeds, bool) or not isinstance(k_seeds, int | np.integer) or k_seeds < 1:
            raise ValueError(f"k_seeds must be an integer ≥ 1 (fits per candidate K), "
                             f"got {k_seeds!r}")
        self.k = k
        self.k_range = k_range
        self.seed = seed
        self.k_seeds = int(k_seeds)
        self.n_clusters_: int | None = None
        self.labels_: np.ndarray | None = None
        self.k_curve_: dict[int, float] | None = None
        self.dim_: int | None = None

    # -- fitting
    def fit(self, latent: np.ndarray, posts: Sequence[Any] | None = None) -> Clusterer:
        """Cluster the latents [N, d] of ``posts`` (the :class:`~mmembed.data.post.Post` of
        each row; methods that read text, such as LDA, need them)."""
        x = _check_latent(latent)
        self._select_k(x, lambda k, seed: self._fit_k(x, k, seed))
        return self

    def _fit_k(self, x: np.ndarray, k: int, seed: int) -> SimpleNamespace:
        raise NotImplementedError

    def _select_k(self, x: np.ndarray, fit_k: Callable[[int, int], SimpleNamespace]) -> None:
        """Fit ``fit_k(k, seed)`` at the configured K, or choose K (see :func:`choose_k`):
        ``k_seeds`` fits per candidate, with seeds ``seed, seed + 1, …``."""
        n = x.shape[0]
        k = _check_k(self.k)
        if k is None:
            seeds = [self.seed + r for r in range(self.k_seeds)]
            _, curve, best = choose_k(x, fit_k, _check_k_range(self.k_range), self.criterion,
                                      seed=self.seed, fit_seeds=seeds)
            self.k_curve_ = curve
        else:
            if k >= n:
                raise ValueError(f"k={k} clusters need more than {k} posts, got {n}; "
                                 "lower k or use k=auto")
            best = fit_k(k, self.seed)
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

    def log_soft_assign(self, latent: np.ndarray) -> np.ndarray:
        """log q [n, K] (float64, rows log-normalised). Kernels computed in log space give it
        exactly, so the ratios of clusters that q rounds to 0 survive (a calibration
        temperature needs them); others give ``log(max(q, 1e-300))``."""
        self._require_fitted()
        x = _check_latent(latent, dim=self.dim_)
        if x.shape[0] == 0:
            return np.zeros((0, self.n_clusters_))
        return np.asarray(self._log_soft_assign(x), dtype=np.float64)

    def _soft_assign(self, x: np.ndarray) -> np.ndarray:
        return np.exp(self._log_soft_assign(x))

    def _log_soft_assign(self, x: np.ndarray) -> np.ndarray:
        q = np.asarray(self._soft_assign(x), dtype=np.float64)
        return np.log(np.maximum(q / q.sum(axis=1, keepdims=True), 1e-300))

    def _require_fitted(self) -> None:
        if self.n_clusters_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(latent) or "
                               "rebuild it with load_clusterer(arrays, params)")

    # -- persistence
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
            "params": {key: (list(v) if isinstance(v, tuple) else v)
                       for key, v in self.get_params().items()},
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
        obj = cls(**params["params"])
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

