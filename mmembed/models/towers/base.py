"""The tower base classes: what every image and text tower gives, and freezing for LiT training."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmembed.models.towers.photo_stats import N_PHOTO_STATS, _as_float_images, photo_statistics

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _keep_eval(module: nn.Module, args) -> None:
    """Forward pre-hook of :func:`freeze`: undo a parent's ``.train()`` before every forward."""
    if module.training:
        module.eval()


def freeze(module: nn.Module) -> nn.Module:
    """Freeze ``module`` for LiT-style training: no gradients, eval mode, and it stays in eval.

    ``requires_grad_(False).eval()`` alone does not last: Lightning calls ``.train()`` on the whole
    LightningModule at the start of every training epoch, which would put a frozen tower's
    BatchNorm and dropout back into training mode (BatchNorm statistics drifting under frozen
    weights). A forward pre-hook switches the module back to eval mode before each forward, so
    towers need no freezing-aware code. Idempotent.
    """
    module.requires_grad_(False)
    module.eval()
    if not getattr(module, "_mmembed_frozen", False):
        module.register_forward_pre_hook(_keep_eval)
        module._mmembed_frozen = True
    return module


class ImageTower(nn.Module):
    """Base class: ``forward(images[B,3,H,W] in [0,1]) -> features[B, out_dim]``.

    Subclasses set ``feature_dim`` (the size of :meth:`features`), ``input_size``, the
    normalisation statistics and implement :meth:`features` on the normalised ``input_size`` ×
    ``input_size`` batch.

    ``photo_stats=True`` appends :func:`photo_statistics` (``N_PHOTO_STATS`` classic
    exposure/colour/sharpness/composition values, computed from the raw images) to the
    features: ``forward`` gives ``cat([features(preprocess(images)), photo_statistics(images)])``
    and ``out_dim`` is ``feature_dim + N_PHOTO_STATS``. They add no parameters, so a tower's
    weights (and a bundle's state dict) are the same either way.
    """

    feature_dim: int
    input_size: int
    photo_stats: bool = False

    def __init__(self, input_size: int, mean: Sequence[float], std: Sequence[float],
                 pretrained: bool, photo_stats: bool = False):
        super().__init__()
        self.input_size = int(input_size)
        self._pretrained = bool(pretrained)
        self.photo_stats = bool(photo_stats)
        # Non-persistent: constants of the architecture, not weights; keeping them out of the
        # state dict keeps bundles and weight hashes about the learned parameters only.
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def pretrained(self) -> bool:
        """Whether the weights came from a pretrained checkpoint (vs random initialisation)."""
        return self._pretrained

    def preprocess(self, images: Tensor) -> Tensor:
        """Resize to ``input_size`` (bilinear, antialiased) and normalise.

        uint8 images are accepted too (scaled by 1/255), so callers holding raw pixels need no
        conversion step of their own.
        """
        images = _as_float_images(images)
        if images.shape[-2:] != (self.input_size, self.input_size):
            images = F.interpolate(images, size=(self.input_size, self.input_size),
                                   mode="bilinear", align_corners=False, antialias=True)
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    @property
    def out_dim(self) -> int:
        """The size of :meth:`forward`'s output: ``feature_dim`` plus any photo statistics."""
        return int(self.feature_dim) + (N_PHOTO_STATS if self.photo_stats else 0)

    def features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def with_photo_stats(self, images: Tensor, features: Tensor) -> Tensor:
        """``features`` of ``images`` with their photo statistics appended, if the tower
        appends them (the last step of :meth:`forward`)."""
        if not self.photo_stats:
            return features
        stats = photo_statistics(images).to(device=features.device, dtype=features.dtype)
        return torch.cat([features, stats], dim=1)

    def forward(self, images: Tensor) -> Tensor:
        return self.with_photo_stats(images, self.features(self.preprocess(images)))


def _as_texts(captions: Sequence[str | None]) -> list[str]:
    """Captions as strings; a missing caption (None) is the empty caption."""
    return [c if isinstance(c, str) else "" if c is None else str(c) for c in captions]


class TextTower(nn.Module):
    """Base class: ``tokenize(captions) -> tokens``, ``forward(tokens) -> features[B, out_dim]``.

    ``tokenize`` pads to the longest caption in the batch and truncates at ``max_length``. For a
    DataLoader with worker processes prefer :meth:`tokenizer_fn`, which returns the same
    callable without the model attached (a bound ``tokenize`` would pickle the whole tower).
    """

    out_dim: int
    max_length: int
    #: Whether the tower fits its vocabulary on the corpus (:meth:`fit_tokenizer`), which a
    #: checkpoint and a bundle then store (:meth:`tokenizer_json`). False for towers whose
    #: tokenizer comes with the model (Hugging Face, open_clip), random weights or not.
    fits_vocabulary: bool = False

    @property
    def pretrained(self) -> bool:
        return self._pretrained

    def tokenizer_fn(self):
        """A small picklable callable ``captions -> dict[str, Tensor]`` (the collate hook)."""
        raise NotImplementedError

    def tokenize(self, captions: Sequence[str | None]) -> dict[str, Tensor]:
        return self.tokenizer_fn()(captions)

    def fit_tokenizer(self, captions: Sequence[str | None]) -> None:
        """Learn the vocabulary from the corpus captions; a no-op for pretrained towers."""

    def load_tokenizer(self, tokenizer_json: str) -> None:
        """Set the vocabulary that :meth:`tokenizer_json` wrote (towers with a fitted one)."""
        raise NotImplementedError(f"{type(self).__name__} has no fitted vocabulary to load")

    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError
