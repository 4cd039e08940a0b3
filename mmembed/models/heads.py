"""Small heads on top of the towers: projection, autoencoder, engagement.

:class:`~mmembed.models.joint.JointEmbedding` takes each head as an argument (a module, or a
factory called with the input size, as Hydra's ``_partial_: true`` gives), so a recipe that
needs other heads is a config, not a subclass. The seed's recipe, for example, uses
:class:`Normalize` projections and the :class:`IdentityAutoencoder`: its latent is the
concatenated tag and word vectors themselves.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ProjectionHead(nn.Module):
    """Tower features → the shared embedding space (L2-normalised), as CLIP's projections.

    A two-layer MLP rather than CLIP's single linear map: with frozen towers (LiT-style) the
    projection is the only trainable part of each modality, so it needs some capacity.
    """

    def __init__(self, in_dim: int, out_dim: int = 256, hidden_dim: int | None = 512,
                 dropout: float = 0.1):
        super().__init__()
        self.out_dim = int(out_dim)
        if hidden_dim:
            self.net = nn.Sequential(
                nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden_dim), nn.GELU(),
                nn.Dropout(dropout), nn.Linear(hidden_dim, out_dim),
            )
        else:
            self.net = nn.Linear(in_dim, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(features), dim=-1)


class Normalize(nn.Module):
    """A projection with nothing to learn: L2-normalise, then scale by ``weight``.

    The seed baseline's heads: each modality keeps its own space (ImageNet tags, a bag of
    words), and ``weight`` sets how much the words count against the tags in distances.
    """

    def __init__(self, in_dim: int, weight: float = 1.0):
        super().__init__()
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight!r}")
        self.out_dim = int(in_dim)
        self.weight = float(weight)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.weight * F.normalize(features, dim=-1)


class IdentityAutoencoder(nn.Module):
    """An autoencoder that is the identity: the latent is the fused vector itself."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.latent_dim = int(in_dim)

    def encode(self, fused: torch.Tensor) -> torch.Tensor:
        return fused

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return latent


class PostAutoencoder(nn.Module):
    """Encodes a fused post embedding ``[z_image, z_text]`` into the latent space that is clustered.

    The input's text half may be zero (an image-only photo); the encoder must still put the post
    where its full version lands. That is what modality dropout in training enforces (see
    :func:`mmembed.models.losses.modality_dropout`).
    """

    def __init__(self, in_dim: int, latent_dim: int = 32, hidden_dim: int = 256):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.encoder = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim),
            nn.GELU(), nn.Linear(hidden_dim, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim),
            nn.GELU(), nn.Linear(hidden_dim, in_dim),
        )

    def encode(self, fused: torch.Tensor) -> torch.Tensor:
        return self.encoder(fused)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder(latent)


class ContrastiveLatent(nn.Module):
    """The clustered latent is the contrastive space itself: ``normalize(z_image + w · z_text)``.

    Nothing to learn and no bottleneck: a post sits where its photo and its caption agree in the
    space the contrastive loss shaped, and a caption-less photo (a zero text half) at its own
    ``z_image``, in the same space. On real data the compressed :class:`PostAutoencoder` latent
    clustered worse than its own frozen inputs; this one beats k-means on them on Open Clip Art
    and is about level with it on Tux Paint (EVALUATION.md).
    ``text_weight`` (w) sets how much the caption moves a post. ``decode`` returns the latent
    itself, so a config using this head sets the reconstruction weight to 0.
    """

    def __init__(self, in_dim: int, text_weight: float = 1.0):
        super().__init__()
        if in_dim % 2:
            raise ValueError(f"ContrastiveLatent needs [z_image, z_text] halves of one size; "
                             f"got a fused size of {in_dim}")
        if text_weight < 0:
            raise ValueError(f"text_weight must be >= 0, got {text_weight!r}")
        self.latent_dim = in_dim // 2
        self.text_weight = float(text_weight)

    def encode(self, fused: torch.Tensor) -> torch.Tensor:
        z_image, z_text = fused[..., :self.latent_dim], fused[..., self.latent_dim:]
        return F.normalize(z_image + self.text_weight * z_text, dim=-1)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return latent


class EngagementHead(nn.Module):
    """Predicts a post's log engagement rate from its image alone.

    It reads the image tower's features (not the contrastive embedding), because what drives
    engagement beyond topic (exposure, colour, framing) is visual and need not be described by
    captions, so the contrastive projection is free to discard it.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 256, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden_dim, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1)
