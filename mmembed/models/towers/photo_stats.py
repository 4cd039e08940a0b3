"""Photo statistics: the classic exposure, colour, sharpness and composition features of a photo.

An :class:`~mmembed.models.towers.ImageTower` built with ``photo_stats=True`` appends them to
its features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: The side of the square thumbnail :func:`photo_statistics` works on.
PHOTO_STATS_SIZE = 64
#: The grid (``PHOTO_STATS_GRID`` × ``PHOTO_STATS_GRID`` cells) of the composition features.
PHOTO_STATS_GRID = 4
#: Names of :func:`photo_statistics`' columns, in order.
PHOTO_STATS_NAMES: tuple[str, ...] = (
    "luminance_mean", "luminance_std", "saturation_mean", "saturation_std", "colourfulness",
    "red_mean", "green_mean", "blue_mean", "sharpness", "shadow_clipping", "highlight_clipping",
    *(f"luminance_grid_{r}{c}" for r in range(PHOTO_STATS_GRID) for c in range(PHOTO_STATS_GRID)),
    *(f"saturation_grid_{r}{c}" for r in range(PHOTO_STATS_GRID) for c in range(PHOTO_STATS_GRID)),
)
#: How many values :func:`photo_statistics` gives per image.
N_PHOTO_STATS = len(PHOTO_STATS_NAMES)


def _as_float_images(images: Tensor) -> Tensor:
    """``[B, 3, H, W]`` images as floats in [0, 1] (uint8 scaled by 1/255); checks the shape."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape [B, 3, H, W], got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    if not images.is_floating_point():
        return images.float()
    return images


def photo_statistics(images: Tensor) -> Tensor:
    """Classic photo-quality statistics ``[B, N_PHOTO_STATS]`` of RGB images in [0, 1].

    The hand-crafted global features of photo aesthetics and engagement work (exposure, colour,
    sharpness, composition; e.g. Datta et al. 2006, Ke et al. 2006, Khosla et al. 2014), which
    pooled CNN features keep only partly: global average pooling of an ImageNet classifier is
    built to be invariant to exactly these. Computed on a ``PHOTO_STATS_SIZE`` px square
    thumbnail (bilinear, antialiased), so they are cheap and do not depend on the input size.
    Pure torch, no parameters; uint8 images are accepted (scaled by 1/255).

    Columns (:data:`PHOTO_STATS_NAMES`), each scaled to roughly [0, 1]:

    - luminance (Rec. 601 luma) mean and 2 × standard deviation (brightness, global contrast);
    - HSV saturation mean and 2 × standard deviation;
    - Hasler–Süsstrunk colourfulness (2003) on the [0, 1] scale, × 2
      (``σ_rgyb + 0.3 μ_rgyb`` with ``rg = R − G``, ``yb = (R + G) / 2 − B``);
    - mean R, G, B (colour cast / warmth);
    - sharpness: 4 × mean absolute Laplacian of the luminance (focus, texture);
    - shadow and highlight clipping: fraction of pixels with luminance < 0.05 / > 0.95;
    - composition: luminance and saturation means of each cell of a
      ``PHOTO_STATS_GRID`` × ``PHOTO_STATS_GRID`` grid, row-major.
    """
    x = _as_float_images(images)
    size = (PHOTO_STATS_SIZE, PHOTO_STATS_SIZE)
    if x.shape[-2:] != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    x = x.clamp(0.0, 1.0)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b                                 # [B, S, S]
    high, low = x.amax(1), x.amin(1)
    sat = torch.where(high > 0, (high - low) / high.clamp_min(1e-6), torch.zeros_like(high))

    def mean_std(t: Tensor) -> tuple[Tensor, Tensor]:
        flat = t.flatten(1)
        return flat.mean(1), flat.std(1, unbiased=False)

    luma_mean, luma_std = mean_std(luma)
    sat_mean, sat_std = mean_std(sat)
    rg_mean, rg_std = mean_std(r - g)
    yb_mean, yb_std = mean_std(0.5 * (r + g) - b)
    colourfulness = (rg_std.square() + yb_std.square()).sqrt() \
        + 0.3 * (rg_mean.square() + yb_mean.square()).sqrt()
    laplace = luma.new_tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    lap = F.conv2d(F.pad(luma[:, None], (1, 1, 1, 1), mode="replicate"), laplace.view(1, 1, 3, 3))
    sharpness = lap.abs().flatten(1).mean(1)
    shadows = (luma < 0.05).to(x.dtype).flatten(1).mean(1)
    highlights = (luma > 0.95).to(x.dtype).flatten(1).mean(1)
    grid = PHOTO_STATS_GRID
    luma_grid = F.adaptive_avg_pool2d(luma[:, None], grid).flatten(1)
    sat_grid = F.adaptive_avg_pool2d(sat[:, None], grid).flatten(1)
    scalars = torch.stack([
        luma_mean, 2 * luma_std, sat_mean, 2 * sat_std, 2 * colourfulness,
        r.flatten(1).mean(1), g.flatten(1).mean(1), b.flatten(1).mean(1),
        4 * sharpness, shadows, highlights,
    ], dim=1)
    return torch.cat([scalars, luma_grid, sat_grid], dim=1)
