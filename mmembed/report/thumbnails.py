"""Thumbnails for the pictures and pages: decoded safely, one at a time, never fatal.

Every picture goes through :func:`mmembed.data.images.load_image` (:func:`load_thumbnail`), so
a broken, huge or missing file becomes an :class:`~mmembed.data.images.ImageError` with its
reason instead of an exception: a contact sheet draws it as the grey "unreadable" tile
(:func:`broken_tile`), a page embeds that tile or a grey box. Pages need no other file because
each thumbnail is embedded as a small JPEG ``data:`` URI (:func:`jpeg_data_uri`).
"""

from __future__ import annotations

import base64
import functools
import io
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from mmembed.data.images import ImageError, decode_image, load_image

#: JPEG quality of the thumbnails embedded in the ranking report.
JPEG_QUALITY = 82


@functools.lru_cache(maxsize=16)
def load_font(size: int, bold: bool = False):
    """DejaVu Sans (shipped with matplotlib) at ``size`` px; Pillow's default font otherwise."""
    try:
        import matplotlib

        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name),
                                  size)
    except Exception:
        try:
            return ImageFont.load_default(size=size)
        except Exception:
            return ImageFont.load_default()


def fit_text(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> str:
    """``text`` on one line, cut with "…" so that it is at most ``width`` pixels wide."""
    text = " ".join(str(text).split())
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def broken_tile(thumb: int, reason: str) -> Image.Image:
    """A grey ``thumb`` px square saying "unreadable" and the kind of ``reason`` ("corrupt")."""
    tile = Image.new("RGB", (thumb, thumb), (208, 208, 208))
    draw = ImageDraw.Draw(tile)
    draw.rectangle((0, 0, thumb - 1, thumb - 1), outline=(176, 176, 176))
    big = load_font(max(9, thumb // 9), bold=True)
    small = load_font(max(8, thumb // 11))
    kind = reason.split(":")[0].strip() if reason else ""
    lines = [("unreadable", big, (90, 90, 90))]
    if kind:
        lines.append((fit_text(draw, kind, small, thumb - 6), small, (120, 120, 120)))
    heights = [f.getbbox("Ag")[3] + 3 for _, f, _ in lines]
    y = (thumb - sum(heights)) / 2
    for (text, f, fill), h in zip(lines, heights):
        text = fit_text(draw, text, f, thumb - 6)
        draw.text(((thumb - draw.textlength(text, font=f)) / 2, y), text, font=f, fill=fill)
        y += h
    return tile


def load_thumbnail(path: Any, thumb: int) -> Image.Image | ImageError:
    """``load_image(path, size=thumb)`` that also turns unexpected exceptions into errors; a
    post streamed from tar shards (``SHARD#KEY``) is read from its shard."""
    try:
        if ".tar#" in str(path):
            return _shard_thumbnail(str(path), thumb)
        return load_image(str(path), size=thumb)
    except Exception as exc:  # never crash a report on one picture
        return ImageError(str(path), f"unreadable: {type(exc).__name__}: {exc}")


def _shard_thumbnail(path: str, thumb: int) -> Image.Image | ImageError:
    from mmembed.data.shards import is_member, member_bytes

    data = member_bytes(path) if is_member(path) else None
    if data is None:
        return ImageError(path, "missing: no such image in the shard")
    return decode_image(data, path, size=thumb)


def jpeg_data_uri(img: Image.Image, quality: int = JPEG_QUALITY) -> str:
    """``img`` as a ``data:image/jpeg;base64,...`` URI, to embed in a self-contained page."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@functools.lru_cache(maxsize=8)
def _placeholder_uri(size: int, kind: str) -> str:
    return jpeg_data_uri(broken_tile(size, kind))


def thumbnail_uris(path: Any, size: int,
                   small: int | None = None) -> tuple[str, str | None, str | None]:
    """``(uri, small_uri, error)`` of the image at ``path``: a ``size`` px square thumbnail, and
    (when ``small`` is given) a ``small`` px one made from it. An unreadable or missing file
    gives the grey placeholder tile and its reason."""
    img = load_thumbnail(path, size) if path not in (None, "") else None
    if img is None or not hasattr(img, "resize"):
        reason = getattr(img, "reason", None) or "missing: no image path"
        kind = reason.split(":")[0].strip()
        uri = _placeholder_uri(size, kind)
        return uri, (_placeholder_uri(small, kind) if small else None), reason
    small_uri = jpeg_data_uri(img.resize((small, small))) if small else None
    return jpeg_data_uri(img), small_uri, None
