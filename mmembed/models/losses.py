"""Training losses of the joint embedding: contrastive, reconstruction, engagement.

Everything here is a pure function or a small ``nn.Module`` on tensors: no Lightning, no config.
The LightningModule (:mod:`mmembed.models.joint`) combines them with weights.

- :class:`ContrastiveLoss`: symmetric CLIP InfoNCE between image and text embeddings, exact
  under DDP (features gathered across ranks with gradients, "local" loss).
- :func:`learnable_logit_scale`, :func:`clamp_logit_scale_`: the learned log-temperature.
- :func:`modality_dropout`: the fused ``[image, text]`` input with the text zeroed at random,
  so that image-only photos land where their full posts land.
- :func:`reconstruction_loss`: the autoencoder's loss on fused embeddings.
- :func:`engagement_loss`: regression on the log engagement rate, or a within-account ranking.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = [
    "ContrastiveLoss",
    "clamp_logit_scale_",
    "engagement_loss",
    "gather_features",
    "learnable_logit_scale",
    "modality_dropout",
    "reconstruction_loss",
]

#: CLIP's initial temperature 0.07, stored as a log inverse temperature: ln(1/0.07) ≈ 2.659.
INIT_LOGIT_SCALE = math.log(1 / 0.07)
#: Largest allowed log inverse temperature: ln 100, i.e. logits at most 100 × cosine.
MAX_LOGIT_SCALE = math.log(100)


# --------------------------------------------------------------------------- contrastive


def gather_features(features: Tensor, rank: int, world_size: int, with_grad: bool = True) -> Tensor:
    """Concatenate every rank's ``features`` [B, D] into [world_size·B, D], in rank order.

    With ``with_grad`` the gather is differentiable
    (``torch.distributed.nn.functional.all_gather``): its backward sums, over all ranks, the
    gradient each rank computed for rank r's block, and hands that sum to rank r (a
    reduce-scatter). So rank r's features receive ``Σ_r' ∂L_r'/∂x_r``, where ``L_r'`` is the
    loss computed on rank r'.

    Without it the other ranks' blocks are constants; this rank's block is the local tensor itself,
    so the local features still receive the gradient of this rank's loss.

    Every rank must pass the same shape (use ``drop_last=True`` for the training loader).
    """
    if with_grad:
        import torch.distributed.nn.functional as dist_nn

        # Deprecated in favour of a private API (torch.distributed._functional_collectives); the
        # public function is what we rely on, and the DDP test checks its gradients.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*all_gather is deprecated",
                                    category=FutureWarning)
            parts = list(dist_nn.all_gather(features))
    else:
        parts = [torch.empty_like(features) for _ in range(world_size)]
        dist.all_gather(parts, features.contiguous())
        parts[rank] = features
    return torch.cat(parts, dim=0)


class ContrastiveLoss(nn.Module):
    r"""Symmetric CLIP InfoNCE loss between paired image and text embeddings.

    Inputs are L2-normalised features ``x_i`` (image) and ``y_i`` (text), [B, D], where row i of
    each comes from the same post, and the learned log-temperature ``τ`` (``logit_scale``), so the
    logits are ``s · x_i·y_j`` with ``s = exp(τ)``. Over a batch of N pairs::

        ℓ_i^I = −log( exp(s x_i·y_i) / Σ_j exp(s x_i·y_j) )      (image i → its text)
        ℓ_i^T = −log( exp(s y_i·x_i) / Σ_j exp(s y_i·x_j) )      (text i → its image)
        L     = 1/(2N) Σ_i (ℓ_i^I + ℓ_i^T)

    **Single process** (``world_size == 1``): ``L`` on the given batch; the same value as
    ``open_clip.loss.ClipLoss()(x, y, exp(τ))``.

    **Distributed** (``world_size = W > 1``, each rank holding a shard ``S_r`` of ``B`` pairs
    of the global batch of ``N = W·B``): features are all-gathered in rank order, so the negatives
    of every pair come from the global batch. With ``local_loss`` (the default) rank r computes
    only its own rows against all gathered columns, ``B × N`` logits instead of ``N × N``,
    with labels ``arange(B) + r·B``::

        L_r = 1/(2B) Σ_{i∈S_r} (ℓ_i^I + ℓ_i^T)        (each ℓ over all N columns)

    What then holds exactly, with ``L`` the single-process loss on the concatenated global batch:

    - value: ``(1/W) Σ_r L_r = L``: the mean over ranks (what ``self.log(..., sync_dist=True)``
      reports) is the global loss; each ``L_r`` alone is not.
    - gradients, with ``gather_with_grad=True`` (the default): the gradient that reaches rank
      r's features is ``Σ_r' ∂L_r'/∂x_r = W · ∂L/∂x_r`` (the gather's backward sums the
      contributions of all ranks; likewise for ``y_r``). A tower parameter θ on rank r gets
      ``(∂x_r/∂θ)ᵀ W ∂L/∂x_r``, and DDP's *mean* over ranks gives
      ``Σ_r (∂x_r/∂θ)ᵀ ∂L/∂x_r = ∂L/∂θ``. ``τ`` is replicated and not gathered: rank r gets
      ``∂L_r/∂τ``, whose DDP mean is ``∂L/∂τ``. So after DDP's averaging every gradient equals
      the single-process gradient of ``L`` on the global batch: training on W ranks of B pairs is
      training on one batch of W·B pairs.
    - ``local_loss=False`` computes the full ``N × N`` loss ``L`` on every rank (so each rank's
      value is already ``L``); the gradients are the same as above at W times the logits' cost.
    - ``gather_with_grad=False`` saves the backward communication but is *not* the global
      gradient: the other ranks' features are constants, so rank r's features get
      ``∂L_r/∂x_r`` (local loss; the gradient through other ranks' rows is lost) or ``∂L/∂x_r``
      (``local_loss=False``, i.e. ``1/W`` of the tower gradient after DDP's mean, while ``τ``
      still gets the full ``∂L/∂τ``). The loss value is exact in both cases.

    All ranks must hold the same number of pairs (``drop_last=True`` in the training loader).
    Build the loss once the process group exists (Lightning: in ``setup``), e.g. with
    :meth:`from_process_group`; a loss built for ``world_size=1`` inside a multi-rank group warns,
    because it silently contrasts each rank's shard only.
    """

    def __init__(self, rank: int = 0, world_size: int = 1, local_loss: bool = True,
                 gather_with_grad: bool = True):
        super().__init__()
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"ContrastiveLoss got rank={rank}, world_size={world_size}; need world_size >= 1 "
                "and 0 <= rank < world_size (pass trainer.global_rank and trainer.world_size)"
            )
        self.rank = rank
        self.world_size = world_size
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self._warned = False

    @classmethod
    def from_process_group(cls, local_loss: bool = True,
                           gather_with_grad: bool = True) -> ContrastiveLoss:
        """The loss for this process: rank and world size of the default process group, or 0/1."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), local_loss, gather_with_grad)
        return cls(0, 1, local_loss, gather_with_grad)

    def extra_repr(self) -> str:
        return (f"rank={self.rank}, world_size={self.world_size}, local_loss={self.local_loss}, "
                f"gather_with_grad={self.gather_with_grad}")

    def _check_process_group(self) -> None:
        initialised = dist.is_available() and dist.is_initialized()
        if self.world_size > 1:
            if not initialised:
                raise RuntimeError(
                    f"ContrastiveLoss(world_size={self.world_size}) needs an initialised "
                    "torch.distributed process group; build it with world_size=1 for one process"
                )
            if (dist.get_world_size(), dist.get_rank()) != (self.world_size, self.rank):
                raise RuntimeError(
                    f"ContrastiveLoss was built for rank {self.rank} of {self.world_size}, but "
                    f"this process is rank {dist.get_rank()} of {dist.get_world_size()}; build it "
                    "with ContrastiveLoss.from_process_group() once the process group exists"
                )
        elif initialised and dist.get_world_size() > 1 and not self._warned:
            self._warned = True
            warnings.warn(
                f"ContrastiveLoss(world_size=1) used in a process group of "
                f"{dist.get_world_size()} ranks: each rank contrasts only its own shard, so the "
                "loss is not the global-batch loss. Build it with "
                "ContrastiveLoss.from_process_group() (in LightningModule.setup) to gather "
                "features across ranks.",
                RuntimeWarning,
                stacklevel=3,
            )

    def forward(self, image_features: Tensor, text_features: Tensor, logit_scale: Tensor) -> Tensor:
        """Loss of this rank (see the class docstring); a scalar tensor."""
        if image_features.ndim != 2 or image_features.shape != text_features.shape:
            raise ValueError(
                "ContrastiveLoss needs image_features and text_features of the same shape "
                f"[B, D]; got {tuple(image_features.shape)} and {tuple(text_features.shape)}"
            )
        if image_features.shape[0] == 0:
            raise ValueError("ContrastiveLoss got an empty batch (B = 0)")
        if logit_scale.numel() != 1:
            raise ValueError("logit_scale must be a scalar log-temperature; got shape "
                             f"{tuple(logit_scale.shape)}")
        self._check_process_group()
        scale = logit_scale.exp()
        batch = image_features.shape[0]
        labels = torch.arange(batch, device=image_features.device)

        if self.world_size == 1:
            logits_image = scale * (image_features @ text_features.T)
            logits_text = logits_image.T
        else:
            all_image = gather_features(image_features, self.rank, self.world_size,
                                        self.gather_with_grad)
            all_text = gather_features(text_features, self.rank, self.world_size,
                                       self.gather_with_grad)
            if self.local_loss:
                logits_image = scale * (image_features @ all_text.T)  # [B, N]
                logits_text = scale * (text_features @ all_image.T)  # [B, N]
                labels = labels + self.rank * batch
            else:
                logits_image = scale * (all_image @ all_text.T)  # [N, N]
                logits_text = logits_image.T
                labels = torch.arange(all_image.shape[0], device=image_features.device)

        return (F.cross_entropy(logits_image, labels) + F.cross_entropy(logits_text, labels)) / 2


def learnable_logit_scale(init: float = INIT_LOGIT_SCALE) -> nn.Parameter:
    """The learned log inverse temperature ``τ`` of :class:`ContrastiveLoss` (logits × ``exp(τ)``).

    Stored as a log so that it stays positive and its steps are relative; starts at CLIP's
    ``ln(1/0.07)``. Log ``exp(τ)`` during training: it should rise from 14.3 and settle; stuck at
    the cap of 100 or falling to 1 means the contrastive task is too easy or collapsing.
    """
    if not math.isfinite(init):
        raise ValueError(f"learnable_logit_scale init must be finite; got {init}")
    return nn.Parameter(torch.tensor(float(init)))


def clamp_logit_scale_(param: Tensor, max_value: float = MAX_LOGIT_SCALE,
                       min_value: float = 0.0) -> Tensor:
    """Clamp the log-temperature in place to ``[min_value, max_value]``; returns ``param``.

    Call after every optimiser step. The cap ``ln 100`` (logits at most 100 × cosine) is CLIP's:
    beyond it the softmax saturates and training becomes unstable. The floor ``0`` keeps the
    scale at least 1, i.e. logits no flatter than the raw cosines.
    """
    if min_value > max_value:
        raise ValueError(f"clamp_logit_scale_ needs min_value <= max_value; got {min_value} > "
                         f"{max_value}")
    with torch.no_grad():
        param.clamp_(min=min_value, max=max_value)
    return param


# --------------------------------------------------------------------------- autoencoder


def modality_dropout(image_emb: Tensor, text_emb: Tensor, p_drop_text: float,
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Fuse ``[image_emb, text_emb]`` with each post's text zeroed with probability ``p_drop_text``.

    Returns ``(fused, text_mask)``: ``fused`` is [B, D_image + D_text] and ``text_mask`` is a
    boolean [B], True where the post kept its text::

        m_i ~ Bernoulli(1 − p)      fused_i = [x_i, m_i · y_i]

    Why: new photos have no caption, yet they must land in the latent space where their full
    post would. At inference an image-only photo is fused as ``[x, 0]``, exactly the dropped
    case, so the autoencoder, trained to reconstruct (and encode) the *full* post from an input
    whose text may be missing, learns to fill the text in from the image. For the same reason
    the kept text is not rescaled by ``1/(1−p)`` as in ordinary dropout: the input of a full
    post must look the same in training and at inference.

    This always drops; pass ``p_drop_text=0`` in evaluation. ``generator`` makes the mask
    reproducible (it is drawn on the generator's device, then moved to the embeddings').
    """
    if not 0.0 <= p_drop_text <= 1.0:
        raise ValueError(f"p_drop_text must be a probability in [0, 1]; got {p_drop_text}")
    if image_emb.ndim != 2 or text_emb.ndim != 2 or image_emb.shape[0] != text_emb.shape[0]:
        raise ValueError(
            "modality_dropout needs image_emb [B, D_image] and text_emb [B, D_text] with the "
            f"same B; got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}"
        )
    device = generator.device if generator is not None else image_emb.device
    u = torch.rand(image_emb.shape[0], generator=generator, device=device)
    text_mask = (u >= p_drop_text).to(image_emb.device)  # p=0 keeps all; p=1 drops all (u < 1)
    text = torch.where(text_mask[:, None], text_emb, torch.zeros_like(text_emb))
    return torch.cat([image_emb, text], dim=1), text_mask


def reconstruction_loss(reconstruction: Tensor, target: Tensor) -> Tensor:
    """Squared error per post, summed over the embedding and averaged over the batch.

    ::

        L = 1/B Σ_i ‖r_i − t_i‖²

    Squared error rather than cosine, although the targets are (concatenations of) unit
    embeddings: for a unit target and a unit reconstruction ``‖r − t‖² = 2 − 2 cos(r, t)``,
    so it *is* the cosine loss plus a penalty on the norm, which keeps the decoder on the
    targets' scale and matches each half (image, text) of a fused target separately, where a
    cosine over the concatenation could trade one half against the other. It also stays
    defined and smooth at a zero output or target (an empty caption), where the cosine's
    gradient blows up. Summing over dimensions (not ``F.mse_loss``'s mean) keeps the value
    O(1) whatever the width (at most 4 per unit half), on the scale of the other losses.

    Computed in at least float32.
    """
    if reconstruction.shape != target.shape or reconstruction.ndim < 2:
        raise ValueError(
            "reconstruction_loss needs reconstruction and target of the same shape [B, D]; got "
            f"{tuple(reconstruction.shape)} and {tuple(target.shape)}"
        )
    r = _at_least_float32(reconstruction)
    return (r - target.to(r.dtype)).pow(2).sum(dim=-1).mean()


# --------------------------------------------------------------------------- engagement

EngagementKind = Literal["regression", "pairwise"]


def engagement_loss(pred: Tensor, target: Tensor, account: Tensor | None = None,
                    kind: EngagementKind = "regression", *, delta: float = 1.0) -> Tensor:
    """Loss of the engagement head: predicted vs observed log engagement rate, both [B].

    ``target`` is the log engagement rate ``log((likes + comments + 1) / followers)`` of
    :func:`mmembed.data.post.engagement` (possibly standardised).

    ``kind="regression"`` (default): Huber loss on the log rate, ``e = pred − target``::

        L = 1/B Σ_i h(e_i),   h(e) = e²/2 if |e| ≤ δ else δ (|e| − δ/2)

    quadratic within ``delta`` log units (δ = 1: a factor e), linear beyond so that a few viral
    posts do not dominate. ``account`` is ignored.

    ``kind="pairwise"``: RankNet's logistic ranking loss over the ordered pairs of posts from the
    same account whose targets differ (``account=None``: all posts form one group)::

        P = {(i, j) : account_i = account_j, target_i > target_j}
        L = 1/|P| Σ_(i,j)∈P log(1 + exp(−(pred_i − pred_j)))

    Only the order within an account matters: the loss is unchanged by adding any constant per
    account to ``pred`` (or ``target``). A batch without a valid pair gives ``0``, still connected
    to ``pred``'s graph so ``backward`` works (the gradient is zero). Costs O(B²) memory.

    Why regression is the default: ranking new photos needs the *expected* engagement on a common
    scale (likes ≈ exp(ŷ) · followers at a given follower count), and the rate already divides out
    the follower count, so posts of different accounts are comparable and all of them train one
    scale. The pairwise loss ignores scale (it leaves each account's offset unidentified, so it
    cannot predict likes), but it is insensitive to how an account's baseline differs; it is the
    within-account ordering that the evaluation (pairwise accuracy, Spearman) measures.

    Computed in at least float32.
    """
    if pred.ndim != 1 or pred.shape != target.shape:
        raise ValueError(
            f"engagement_loss needs pred and target of the same shape [B]; got "
            f"{tuple(pred.shape)} and {tuple(target.shape)} (squeeze the head's last dimension)"
        )
    pred = _at_least_float32(pred)
    target = target.to(pred.dtype)
    if kind == "regression":
        if delta <= 0:
            raise ValueError(f"engagement_loss delta must be positive; got {delta}")
        if pred.numel() == 0:
            return pred.sum()
        return F.huber_loss(pred, target, delta=delta)
    if kind == "pairwise":
        if account is not None and account.shape != pred.shape:
            raise ValueError(
                f"engagement_loss account must have shape [B] = {tuple(pred.shape)}; "
                f"got {tuple(account.shape)}"
            )
        valid = target[:, None] > target[None, :]
        if account is not None:
            account = account.to(pred.device)
            valid = valid & (account[:, None] == account[None, :])
        per_pair = F.softplus(-(pred[:, None] - pred[None, :]))
        total = torch.where(valid, per_pair, torch.zeros_like(per_pair)).sum()
        return total / valid.sum().clamp(min=1)
    raise ValueError(f"engagement_loss kind must be 'regression' or 'pairwise'; got {kind!r}")


def _at_least_float32(t: Tensor) -> Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()
