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


class RidgeEngagementHead(nn.Module):
    """Predicts a post's log engagement rate from its image features by ridge regression,
    fitted in closed form on the training posts before the first epoch (:meth:`fit`).

    It reads what :class:`EngagementHead` reads, but does not train by gradient. With frozen
    towers the MLP head memorises its few thousand training posts (Spearman 0.84–0.99 with
    their engagement, 0.27–0.66 on the validation posts); standardised features and one
    penalty chosen by scikit-learn's leave-one-out ``RidgeCV`` on the training posts alone
    predicted the validation posts better in all 9 source × seed runs of the evaluation
    (synthetic, Tux Paint, Openclipart; Spearman 0.35–0.73 against the MLP's 0.27–0.66).
    It needs features that stay fixed while the model trains, so
    :class:`~mmembed.models.joint.JointEmbedding` accepts it only with frozen towers.

    ``alphas``: the penalties ``RidgeCV`` chooses from. ``max_rows``: above this many training
    posts it is fitted on a seeded sample of that many (``in_dim`` + 1 numbers need no more;
    the fit holds ``max_rows × in_dim`` floats).
    """

    def __init__(self, in_dim: int, alphas: tuple[float, ...] | list[float] = tuple(
                     10.0 ** (e / 4) for e in range(-4, 21)), max_rows: int = 5000):
        super().__init__()
        if not alphas or min(alphas) <= 0:
            raise ValueError(f"alphas must be positive penalties, got {alphas!r}")
        self.alphas = tuple(float(a) for a in alphas)
        self.max_rows = int(max_rows)
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(in_dim))
        self.register_buffer("weight", torch.zeros(in_dim))
        self.register_buffer("bias", torch.zeros(()))
        self.register_buffer("alpha", torch.zeros(()))  # the chosen penalty; 0 = not fitted

    @property
    def fitted(self) -> bool:
        return bool(self.alpha > 0)

    def fit(self, features: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """Fit on ``features`` [n, in_dim] and ``target`` [n] (at most ``max_rows`` rows, see
        :meth:`sample`); the chosen penalty and the number of rows."""
        from sklearn.linear_model import RidgeCV
        from sklearn.preprocessing import StandardScaler

        x = features.detach().cpu().double().numpy()
        y = target.detach().cpu().double().numpy()
        if len(x) < 3:
            raise ValueError(f"the ridge engagement head needs at least 3 training posts, got "
                             f"{len(x)}")
        scaler = StandardScaler().fit(x)
        ridge = RidgeCV(alphas=self.alphas).fit(scaler.transform(x), y)
        self.mean.copy_(torch.from_numpy(scaler.mean_))
        self.scale.copy_(torch.from_numpy(scaler.scale_))
        self.weight.copy_(torch.from_numpy(ridge.coef_))
        self.bias.fill_(float(ridge.intercept_))
        self.alpha.fill_(float(ridge.alpha_))
        return {"alpha": float(ridge.alpha_), "rows": len(x)}

    def sample(self, rows: torch.Tensor) -> torch.Tensor:
        """``rows`` (training-post indices), or a sample of ``max_rows`` of them, sorted, the
        same on every run and every rank."""
        if len(rows) <= self.max_rows:
            return rows
        keep = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))
        return rows[keep[:self.max_rows].sort().values]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return ((features - self.mean) / self.scale) @ self.weight + self.bias
