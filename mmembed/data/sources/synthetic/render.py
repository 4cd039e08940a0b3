"""One synthetic photo: a topic's scene drawn with its visible details and latent qualities."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from mmembed.data.sources.synthetic.details import NAMED_COLOURS, Colour, draw_attributes
from mmembed.data.sources.synthetic.pen import _Pen
from mmembed.data.sources.synthetic.scenes import STYLES, _Style
from mmembed.data.sources.synthetic.topics import Topic

#: How far (in image widths) the subject moves off centre when centring quality is 0.
MAX_OFF_CENTRE = 0.3
Palette = dict[str, list[Colour]]
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _jitter(
    style: _Style, perm: tuple[int, int, int], rng: np.random.Generator, named: Colour | None = None
) -> Palette:
    """The style's palette recoloured for one image: a global colour cast plus per-colour noise.

    The cast makes mean colour an unreliable cue on its own (topics overlap in colour space).
    ``named`` (the colour detail, e.g. a red door) gets the cast and milder noise but not the
    variant's channel permutation: a red door stays red in every topic.
    """
    cast = rng.normal(0, 14, 3)
    out = {}
    for key, colours in style.palette.items():
        arr = np.asarray(colours, dtype=np.float64)[:, perm]
        arr = arr + cast + rng.normal(0, 10, arr.shape)
        out[key] = [tuple(int(v) for v in row) for row in np.clip(arr, 0, 255)]
    if named is not None:
        arr = np.clip(np.asarray(named, dtype=np.float64) + cast + rng.normal(0, 8, 3), 0, 255)
        out["named"] = [tuple(int(v) for v in arr)]
    return out


def render_photo(
    topic: Topic,
    qualities: tuple[float, float, float],
    rng: np.random.Generator,
    size: int,
    borrow_from: Topic | None = None,
    attributes: dict[str, str] | None = None,
) -> np.ndarray:
    """Draw one ``size`` x ``size`` RGB photo of ``topic`` as a uint8 array.

    ``qualities`` = (exposure, saturation, centring), each in [0, 1], are rendered into the
    pixels: exposure scales brightness (x0.4 .. x1.05), saturation blends toward grey (10% ..
    100% of the colour), centring moves the subject up to ``MAX_OFF_CENTRE`` image widths off
    centre. ``attributes`` are the photo's visible details (``draw_attributes``; drawn from
    ``rng`` when omitted). ``borrow_from`` adds a decor element from another topic's
    vocabulary. Shapes are drawn at twice the size and reduced, which anti-aliases them
    cheaply; the smooth background is computed at the final size and stretched, which keeps
    the float work small.
    """
    if attributes is None:
        attributes = draw_attributes(topic, rng)
    exposure, saturation, centring = qualities
    style = STYLES[topic.style]
    pal = _jitter(style, topic.perm, rng, NAMED_COLOURS[attributes["colour"]])
    arr, horizon = style.background(rng, size, pal, attributes)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    img = img.resize((2 * size, 2 * size), Image.Resampling.BILINEAR)
    angle = rng.uniform(0, 2 * math.pi)
    offset = (1 - centring) * MAX_OFF_CENTRE
    cx, cy = 0.5 + offset * math.cos(angle), 0.5 + offset * math.sin(angle)
    pen = _Pen(img, rng, (cx, cy))
    style.decor(pen, pal, horizon, attributes)
    if borrow_from is not None:
        other = STYLES[borrow_from.style]
        other.decor(pen, _jitter(other, borrow_from.perm, rng), horizon, None)
    style.subject(pen, pal, cx, cy, float(rng.uniform(0.85, 1.15)), horizon, attributes)
    out = np.asarray(img.reduce(2), dtype=np.float32)
    # Uniform grain with the same standard deviation as Gaussian grain looks alike and is
    # several times cheaper to draw.
    out += (rng.random(out.shape, dtype=np.float32) - 0.5) * (style.grain * math.sqrt(12))
    grey = (out * _LUMA).sum(axis=-1, keepdims=True)  # elementwise: no BLAS in the pixel path
    out = grey + (0.1 + 0.9 * saturation) * (out - grey)
    out *= 0.4 + 0.65 * exposure
    return np.clip(out, 0, 255).astype(np.uint8)
