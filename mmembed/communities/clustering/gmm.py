"""Gaussian mixture (scikit-learn); q = the posterior responsibilities, K by BIC."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from mmembed.communities.clustering.base import DEFAULT_K_RANGE, Clusterer


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
                 seed: int = 0, k_seeds: int = 1, covariance_type: str = "diag", n_init: int = 3,
                 max_iter: int = 200, reg_covar: float = 1e-6):
        super().__init__(k, k_range=k_range, seed=seed, k_seeds=k_seeds)
        if covariance_type not in ("full", "tied", "diag", "spherical"):
            raise ValueError("covariance_type must be full, tied, diag or spherical, got "
                             f"{covariance_type!r}")
        self.covariance_type = covariance_type
        self.n_init = int(n_init)
        self.max_iter = int(max_iter)
        self.reg_covar = float(reg_covar)

    def _new_model(self, k: int, seed: int | None = None):
        from sklearn.mixture import GaussianMixture

        return GaussianMixture(n_components=k, covariance_type=self.covariance_type,
                               n_init=self.n_init, max_iter=self.max_iter,
                               reg_covar=self.reg_covar,
                               random_state=self.seed if seed is None else seed)

    def _fit_k(self, x: np.ndarray, k: int, seed: int) -> SimpleNamespace:
        model = self._new_model(k, seed).fit(x)
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
