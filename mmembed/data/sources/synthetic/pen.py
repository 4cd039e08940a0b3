"""Drawing primitives of the synthetic photos: smooth noise, gradients, a pen in unit coordinates.

Everything here is deterministic given its random generator, so images are byte-identical for
the same seed.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from mmembed.data.sources.synthetic.details import Colour


@lru_cache(maxsize=32)
def _grid(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1] as (rows, columns) arrays, cached per size."""
    t = (np.arange(width, dtype=np.float32) + 0.5) / width
    return t[:, None], t[None, :]


def _blotches(
    rng: np.random.Generator, width: int, amp: float, rows: int, cols: int, mono: bool = False
):
    """Smooth noise: a rows x cols grid of random values, bilinearly stretched to the image.

    ``mono`` varies brightness only (stone, haze) instead of colour (mottled surfaces).

    Pillow's resize does the stretch: it is fast for tiny inputs and works in fixed point on
    8-bit data (tiny BLAS products were slower, and their rounding can depend on BLAS
    threading, which would break byte-identical images).
    """
    noise = rng.standard_normal((rows, cols, 1 if mono else 3))
    small = np.clip(np.broadcast_to(noise, (rows, cols, 3)) * amp + 128, 0, 255).astype(np.uint8)
    big = Image.fromarray(small, "RGB").resize((width, width), Image.Resampling.BILINEAR)
    return np.asarray(big, dtype=np.float32) - 128


def _gradient(width: int, stops: list[tuple[float, Colour]]) -> np.ndarray:
    """A vertical colour gradient through ``(position, colour)`` stops, as one float column."""
    pos = np.array([p for p, _ in stops], dtype=np.float32)
    cols = np.array([c for _, c in stops], dtype=np.float32)
    rows, _ = _grid(width)
    column = np.stack([np.interp(rows[:, 0], pos, cols[:, k]) for k in range(3)], axis=-1)
    return column[:, None, :].astype(np.float32)  # (width, 1, 3): broadcasts over columns


class _Pen:
    """ImageDraw in unit coordinates (0..1 of the image width), so styles ignore resolution."""

    def __init__(
        self, img: Image.Image, rng: np.random.Generator, subject: tuple[float, float] = (0.5, 0.5)
    ):
        self.draw = ImageDraw.Draw(img)
        self.w = img.width
        self.rng = rng
        self.subject = subject  # where the subject will stand, so details can stay clear of it

    def pick(self, colours: list[Colour]) -> Colour:
        return colours[int(self.rng.integers(len(colours)))]

    def u(self, *lo_hi: float) -> float:
        return float(self.rng.uniform(*lo_hi))

    def polygon(self, pts, fill, outline=None):
        self.draw.polygon([(x * self.w, y * self.w) for x, y in pts], fill=fill, outline=outline)

    def ellipse(self, cx, cy, rx, ry, fill=None, outline=None, width=0.0):
        box = ((cx - rx) * self.w, (cy - ry) * self.w, (cx + rx) * self.w, (cy + ry) * self.w)
        self.draw.ellipse(box, fill=fill, outline=outline, width=max(1, round(width * self.w)))

    def rect(self, x0, y0, x1, y1, fill, radius=0.0):
        box = (x0 * self.w, y0 * self.w, x1 * self.w, y1 * self.w)
        self.draw.rounded_rectangle(box, radius=radius * self.w, fill=fill)

    def line(self, pts, fill, width):
        self.draw.line(
            [(x * self.w, y * self.w) for x, y in pts],
            fill=fill,
            width=max(1, round(width * self.w)),
            joint="curve",
        )


def _jagged(rng, x0, x1, base, low, high, step=(0.06, 0.14)):
    """Points of a jagged ridge from x0 to x1 whose peaks lie between base-high and base-low."""
    pts, x = [], x0
    while x < x1:
        pts.append((x, base - float(rng.uniform(low, high))))
        x += float(rng.uniform(*step))
    pts.append((x1, base - float(rng.uniform(low, high))))
    return pts


def _mix(colour, other, t: float) -> Colour:
    """``colour`` moved a fraction ``t`` of the way toward ``other``."""
    return tuple(int(a + t * (b - a)) for a, b in zip(colour, other))


def _dim(colour, factor: float) -> Colour:
    return tuple(int(c * factor) for c in colour)
