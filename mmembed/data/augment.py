"""Augmented views of a post's photo, for the frozen-feature cache.

With frozen towers every epoch sees the same feature vector of a post, so the projection heads
can memorise one vector per post. ``model.feature_views = V`` caches the image tower's features
of ``V`` augmented views of every photo as well (:func:`mmembed.models.features.tower_features`),
and training projects one of the ``V + 1`` (the photo itself or a view) drawn per post and step.

A view is a random resized crop (60–100 % of the area), a horizontal flip half the time and a
mild colour jitter (torchvision's transforms). View ``v`` of post ``i`` is drawn from its own
seed, so a cache computed twice, in any batch order or worker, holds the same views.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

__all__ = ["augmented_view"]

_SEED_STRIDE = 1_000_003  # a prime above any corpus this runs on: (view, index) → one seed


def _transform(size: int) -> v2.Compose:
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02),
    ])


def augmented_view(image: torch.Tensor, view: int, index: int) -> torch.Tensor:
    """View ``view`` (≥ 1) of the photo of post ``index``: ``image`` [3, H, W] float in [0, 1]
    → the same shape, deterministic in ``(view, index)``; the global random state is left as
    it was."""
    if view < 1:
        raise ValueError(f"augmented_view: view must be ≥ 1 (0 is the photo itself), got {view}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(view * _SEED_STRIDE + int(index))
        return _transform(image.shape[-1])(image).clamp_(0.0, 1.0)
