"""Deep Embedded Clustering as a refinement of the model (Xie, Girshick & Farhadi 2016).

DEC does not only cluster: it trains the encoder that makes the latent. So it is a stage of the
model, run by the build after a k-means fit (``cluster=dec`` selects both), not a clusterer:

1. Centroids μ from the k-means fit (K chosen there; refinement keeps K). The clusterer must
   use DEC's kernel (``kernel: dec``, ``scaled: false``), since the loss is defined on it.
2. Minimise KL(P ‖ Q) = Σ_i Σ_j p_ij log(p_ij / q_ij) over mini-batches, where Q is the
   Student-t soft assignment (α = ``alpha``) and P the sharpened target
   p_ij = (q_ij² / f_j) / Σ_j' (q_ij'² / f_j'), f_j = Σ_i q_ij (soft cluster sizes, so
   large clusters do not swallow the rest). P is recomputed from the whole data every
   ``update_interval`` steps and held fixed in between; training stops when fewer than a
   fraction ``tol`` of hard labels changed between two target updates, or after
   ``max_iter`` steps. Adam with learning rate ``lr`` on encoder and centroids.

**With ``encoder`` and ``inputs``** (a torch module mapping inputs [N, D_in] to latents
[N, d]; ``latent`` should be ``encoder(inputs)``), the encoder's parameters are refined
**in place**: the caller must recompute every latent with it afterwards and save the refined
weights in the bundle. The encoder runs in eval mode (no dropout or batch-norm updates) during
refinement and its train/eval mode is restored. **Without them**, only the centroids move.

``history_`` records, per target update, the step, KL(P‖Q) when P was set (``kl_start``), the
same KL with that P at the next update (``kl_end``, what the steps in between minimised) and
the fraction of labels that changed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmembed.communities.clustering import KMeansClusterer
from mmembed.communities.clustering.base import _check_latent

__all__ = ["DECRefinement"]


class DECRefinement:
    """Refines a fitted k-means clusterer (and the encoder behind its latent) by DEC."""

    name = "dec"

    def __init__(self, alpha: float = 1.0, max_iter: int = 1000, update_interval: int = 50,
                 batch_size: int = 256, lr: float = 1e-3, tol: float = 1e-3, seed: int = 0):
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
        self.seed = int(seed)
        self.history_: list[dict[str, Any]] = []
        self.n_steps_ = 0

    def refine(self, clusterer: KMeansClusterer, latent: np.ndarray, encoder: Any = None,
               inputs: Any = None) -> np.ndarray:
        """Refine ``clusterer`` (fitted on ``latent``) and ``encoder`` in place; returns the
        refined latents of the fitted posts, which ``clusterer.labels_`` now refer to."""
        if not isinstance(clusterer, KMeansClusterer) or clusterer.kernel != "dec":
            raise ValueError("DEC refines a k-means clusterer with its own kernel: use "
                             "cluster=dec (kmeans with kernel: dec, scaled: false)")
        if clusterer.alpha != self.alpha:
            raise ValueError(f"the clusterer's alpha ({clusterer.alpha}) must be DEC's "
                             f"({self.alpha})")
        import torch
        from torch.nn import functional as F

        x = _check_latent(latent)
        n = x.shape[0]
        if (encoder is None) != (inputs is None):
            raise ValueError("DEC needs both encoder and inputs (to refine the encoder) or "
                             "neither (to refine only the centroids)")

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

        mu = torch.nn.Parameter(torch.from_numpy(clusterer.centroids_.copy()).to(device))
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
                    latent = refined.detach().float().cpu().numpy()
                else:
                    latent = x
        finally:
            if encoder is not None:
                encoder.train(was_training)

        clusterer.centroids_ = np.ascontiguousarray(mu.detach().float().cpu().numpy())
        clusterer.scale_ = 1.0  # DEC's kernel works in the latent's own units
        clusterer.labels_ = clusterer.soft_assign(latent).argmax(axis=1)
        clusterer._canonicalise(latent)
        self.history_ = history
        self.n_steps_ = step
        return latent

