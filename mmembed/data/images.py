"""Safe image decoding, in one place.

Every image that mmembed reads (training posts, new photos to rank) goes through
:func:`load_image`. It never raises for a bad file: a truncated, corrupt, zero-byte, oversized
or non-image file becomes an :class:`ImageError` value that names the file and the reason, so one
broken photo never sinks a batch.
"""

from __future__ import annotations

import glob
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mmembed.data.post import Skipped

#: Refuse images with more pixels than this (decompression-bomb guard). 64 MP covers any camera.
MAX_PIXELS = 64_000_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


@dataclass(frozen=True)
class ImageError:
    """Why a file could not be used as an image."""

    path: str
    reason: str

    def as_skipped(self) -> Skipped:
        return Skipped(self.path, self.reason)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _flatten(img: Image.Image) -> Image.Image:
    """Any mode to RGB; transparency is composited on white."""
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v * (1 / 256)).convert("L")
    return img.convert("RGB")


def load_image(
    path: str | Path, size: int | None = None, max_pixels: int = MAX_PIXELS
) -> Image.Image | ImageError:
    """Decode ``path`` into an RGB image, or return an :class:`ImageError`.

    Applies the EXIF orientation, composites alpha on white, and refuses images above
    ``max_pixels`` before decoding them. With ``size``, the image is resized so its shorter side
    is ``size`` and centre-cropped to a square.
    """
    path = Path(path)
    name = str(path)
    try:
        if not path.is_file():
            return ImageError(name, "missing: no such file")
        if path.stat().st_size == 0:
            return ImageError(name, "empty: zero-byte file")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    return ImageError(
                        name,
                        f"too large: {width}x{height} exceeds {max_pixels} pixels "
                        "(decompression-bomb guard; downscale the file)",
                    )
                img.load()
                img = ImageOps.exif_transpose(img)
                img = _flatten(img)
    except UnidentifiedImageError:
        return ImageError(name, "not an image: Pillow cannot identify the file")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return ImageError(name, f"too large: {exc}")
    except OSError as exc:  # truncated or corrupt data, unreadable file
        text = str(exc)
        kind = "truncated" if "truncated" in text.lower() else "corrupt"
        return ImageError(name, f"{kind}: {text}")
    except (ValueError, SyntaxError, EOFError) as exc:  # broken headers in some decoders
        return ImageError(name, f"corrupt: {exc}")
    if size is not None:
        img = ImageOps.fit(img, (size, size), Image.Resampling.BICUBIC)
    return img


def cache_square(src: str | Path, dst: str | Path, side: int) -> Path | ImageError:
    """Write ``src`` on white, padded to a ``side`` square JPEG at ``dst``, once.

    For sources that ship cut-outs and drawings (transparent backgrounds, any aspect). Padding
    (not cropping) keeps long, thin objects (a pen, a giraffe) whole; the padding is white like
    the composited background, so it adds no edge. Written through a temporary file and
    renamed, so an interrupted run never leaves a half image in the cache; a cached image older
    than its source is written again. JPEG (quality 95) like real posts, and ~10x smaller than
    PNG at 224 px. A file that cannot be decoded comes back as its :class:`ImageError`.
    """
    src, dst = Path(src), Path(dst)
    try:
        if dst.stat().st_size > 0 and dst.stat().st_mtime >= src.stat().st_mtime:
            return dst
    except OSError:  # not cached yet
        pass
    img = load_image(src)
    if isinstance(img, ImageError):
        return img
    img = ImageOps.pad(img, (side, side), Image.Resampling.LANCZOS, color=(255, 255, 255))
    fd, tmp = tempfile.mkstemp(suffix=".jpg.tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            img.save(fh, format="JPEG", quality=95)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


def colourfulness(path: str | Path) -> float:
    """Hasler & Suesstrunk (2003) colourfulness of an image file::

        rg = R - G,  yb = (R + G) / 2 - B
        C  = hypot(std rg, std yb) + 0.3 * hypot(mean rg, mean yb)

    A pixel-level property that anyone looking at the image sees, used by the real-image sources
    to plant synthetic likes. Read from the file, so the first load and every later load of a
    cached image agree exactly.
    """
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(spec: str | Path | list) -> tuple[list[Path], list[Skipped]]:
    """Expand a folder, glob, file or list of those into candidate image files.

    Files with a non-image suffix inside a folder are reported as skipped rather than silently
    ignored; paths that do not exist are reported too.
    """
    specs = spec if isinstance(spec, (list, tuple)) else [spec]
    found: list[Path] = []
    skipped: list[Skipped] = []
    for item in specs:
        item = str(item)
        path = Path(item).expanduser()
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.name.startswith("."):
                    continue
                if is_image_file(child):
                    found.append(child)
                else:
                    skipped.append(Skipped(str(child), "not an image: unsupported file type"))
        elif path.is_file():
            found.append(path)
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matches:
                skipped.append(Skipped(item, "missing: the pattern matches no file"))
            found.extend(matches)
        else:
            skipped.append(Skipped(item, "missing: no such file or folder"))
    unique = {p.resolve(): p for p in reversed(found)}  # first spelling of each file wins
    return sorted(unique.values(), key=found.index), skipped


def format_skipped(skipped: list[Skipped]) -> str:
    """A human-readable report of skipped inputs, one line each, grouped by reason."""
    if not skipped:
        return "no inputs skipped"
    lines = [f"{len(skipped)} input(s) skipped:"]
    for s in sorted(skipped, key=lambda s: (s.reason.split(":")[0], s.item)):
        lines.append(f"  {s.item}: {s.reason}")
    return "\n".join(lines)
