"""Safe image decoding, in one place.

Every image that mmembed reads (training posts, new photos to rank) goes through
:func:`load_image`. It never raises for a bad file: a truncated, corrupt, zero-byte, oversized
or non-image file becomes an :class:`ImageError` value that names the file and the reason, so one
broken photo never sinks a batch.

Memory: a decoded image costs ``width × height × bytes per pixel`` (Pillow keeps every multi-band
mode, LA and RGB included, at 4 bytes a pixel), whatever its file size: a 142 kB grey+alpha PNG
of 7999×7999 pixels is 256 MB once decoded. So when a target ``size`` is asked for,
:func:`load_image` shrinks the image *before* it flattens alpha or converts the mode, and
concurrent decoders can share a :class:`DecodeBudget` that bounds the bytes they hold together.
"""

from __future__ import annotations

import glob
import io
import os
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mmembed.data.post import Skipped, format_skipped  # noqa: F401 - re-exported
from mmembed.fileio import atomic_write

#: Refuse images with more pixels than this (decompression-bomb guard). 64 MP covers any camera.
MAX_PIXELS = 64_000_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
#: An image whose shorter side is at least ``PREREDUCE × size`` is first shrunk by an integer
#: factor (JPEG: DCT scaling while decoding; others: :meth:`PIL.Image.Image.reduce`, a box
#: average) to no less than ``REDUCING_GAP × size``, then resized bicubically as before. This is
#: Pillow's own two-step ``reducing_gap`` resize; with a gap of 4 it differs from the one-step
#: resize by 0.1 grey level on average (at most 1) on the test images. Images under the threshold
#: take the one-step path unchanged, pixel for pixel.
PREREDUCE = 8
REDUCING_GAP = 4
#: Bytes that concurrent decodes sharing the default :class:`DecodeBudget` may hold together.
DECODE_BUDGET_BYTES = 768 * 2**20

# Pillow allocates pixels in blocks of 16 MiB by default. glibc serves blocks under 32 MiB from
# per-thread arenas that keep what is freed, so four decode threads came to hold four huge images'
# worth even while a budget made them take turns (1.7 GB instead of 0.5 GB for eight 7999² LA
# PNGs). Blocks of 64 MiB are always mapped and unmapped: a decode's memory goes back when it
# ends. Small images are unaffected (a block is never larger than the image). PILLOW_BLOCK_SIZE,
# when set, wins.
if "PILLOW_BLOCK_SIZE" not in os.environ:
    Image.core.set_block_size(64 * 2**20)


@dataclass(frozen=True)
class ImageError:
    """Why a file could not be used as an image."""

    path: str
    reason: str

    def as_skipped(self) -> Skipped:
        return Skipped(self.path, self.reason)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not a regular file to read, as a skip reason; ``None`` when it is one.

    ``"missing: no such file"``, ``"missing: broken symbolic link to TARGET"``,
    ``"not a file: a directory"``, ``"not a file: a FIFO, socket or device"``, ...
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            return f"missing: broken symbolic link to {os.readlink(path)}"
        return "missing: no such file"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    except ValueError as exc:  # a NUL in the name
        return f"unreadable: {exc}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "not a file: a directory"
    return "not a file: a FIFO, socket or device"


def display_path(path: str | Path) -> str:
    """``path`` as text that any UTF-8 writer accepts (CSV, JSON, the terminal).

    A file name that is not UTF-8 (copied from an old Latin-1 system, say) reaches Python with
    its odd bytes as lone surrogates, which would crash the writer of ranking.csv after every
    photo was ranked. Those bytes are shown as ``\\xNN`` instead: ``caf\\xe9.jpg``.
    """
    text = str(path)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file system decoder makes: show its code
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def decoded_bytes(img: Image.Image) -> int:
    """Bytes Pillow holds for ``img`` once decoded: width × height × 1 (modes 1, L, P),
    2 (16-bit grey) or 4 (every other mode, LA and RGB included)."""
    width, height = img.size
    per_pixel = 1 if img.mode in ("1", "L", "P") else 2 if img.mode.startswith("I;16") else 4
    return width * height * per_pixel


class DecodeBudget:
    """Bounds the memory that concurrent decodes hold together, across threads and processes.

    A decode that needs ``n`` bytes waits until ``held + n <= max_bytes``; one that needs more
    than the whole budget waits until it can run alone, so nothing deadlocks. ``peak`` records
    the most bytes ever held at once. The counters live in shared memory, so one budget made
    before a DataLoader starts its worker processes bounds them all together.
    """

    def __init__(self, max_bytes: int = DECODE_BUDGET_BYTES):
        import multiprocessing

        self.max_bytes = int(max_bytes)
        self._cond = multiprocessing.Condition()
        self._held = multiprocessing.RawValue("q", 0)
        self._peak = multiprocessing.RawValue("q", 0)

    @property
    def held(self) -> int:
        return int(self._held.value)

    @property
    def peak(self) -> int:
        return int(self._peak.value)

    @contextmanager
    def hold(self, n: int) -> Iterator[None]:
        n = min(int(n), self.max_bytes)
        with self._cond:
            self._cond.wait_for(lambda: self._held.value + n <= self.max_bytes)
            self._held.value += n
            self._peak.value = max(self._peak.value, self._held.value)
        try:
            yield
        finally:
            with self._cond:
                self._held.value -= n
                self._cond.notify_all()


def _reduce(img: Image.Image, size: int) -> Image.Image:
    """``img`` shrunk by an integer factor so its shorter side stays >= REDUCING_GAP × size,
    when it is at least PREREDUCE × size; else ``img`` itself. In the image's own mode (alpha is
    averaged premultiplied, so flattening afterwards matches flattening first)."""
    factor = min(img.size) // (REDUCING_GAP * size)
    if min(img.size) < PREREDUCE * size or factor < 2:
        return img
    return img.reduce(factor)


def _flatten(img: Image.Image) -> Image.Image:
    """Any mode to RGB; transparency is composited on white."""
    if img.mode == "RGB":
        return img
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
    path: str | Path,
    size: int | None = None,
    max_pixels: int = MAX_PIXELS,
    budget: DecodeBudget | None = None,
) -> Image.Image | ImageError:
    """Decode ``path`` into an RGB image, or return an :class:`ImageError`.

    Applies the EXIF orientation, composites alpha on white, and refuses images above
    ``max_pixels`` before decoding them. With ``size``, the image is resized so its shorter side
    is ``size`` and centre-cropped to a square; one much larger than that is first reduced in its
    own mode (see :data:`PREREDUCE`), so a huge file costs one decoded copy, not five. With a
    ``budget``, the decode waits until its bytes (twice :func:`decoded_bytes`: the decoded image
    and the one copy made while reducing it) fit in what the other decodes hold.
    """
    path = Path(path)
    problem = file_problem(path)
    if problem:
        return ImageError(str(path), problem)
    try:
        empty = path.stat().st_size == 0
    except OSError as exc:
        return ImageError(str(path), f"unreadable: {exc}")
    if empty:
        return ImageError(str(path), "empty: zero-byte file")
    return _decode(path, str(path), size, max_pixels, budget)


def decode_image(
    data: bytes,
    name: str,
    size: int | None = None,
    max_pixels: int = MAX_PIXELS,
    budget: DecodeBudget | None = None,
) -> Image.Image | ImageError:
    """:func:`load_image` for an image held as bytes (a member of a tar shard); ``name`` says
    where the bytes came from, for the :class:`ImageError`."""
    if not data:
        return ImageError(name, "empty: zero-byte file")
    return _decode(io.BytesIO(data), name, size, max_pixels, budget)


def _decode(source, name: str, size: int | None, max_pixels: int,
            budget: DecodeBudget | None) -> Image.Image | ImageError:
    """The decode behind :func:`load_image` and :func:`decode_image` (``source``: a path or a
    binary file object)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                width, height = img.size
                if width * height > max_pixels:
                    return ImageError(
                        name,
                        f"too large: {width}x{height} exceeds {max_pixels} pixels "
                        "(decompression-bomb guard; downscale the file)",
                    )
                if size is not None and min(img.size) >= PREREDUCE * size:
                    img.draft(img.mode, (REDUCING_GAP * size, REDUCING_GAP * size))  # JPEG only
                with budget.hold(2 * decoded_bytes(img)) if budget else _nothing():
                    img.load()
                    if size is not None:
                        img = _reduce(img, size)
                    ImageOps.exif_transpose(img, in_place=True)
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


@contextmanager
def _nothing() -> Iterator[None]:
    yield


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
    return atomic_write(dst, lambda tmp: img.save(tmp, format="JPEG", quality=95))


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


def _folder_files(folder: Path, skipped: list[Skipped]) -> list[Path]:
    """Every file under ``folder`` (hidden names left out), following symbolic links to folders
    once each. A directory whose name looks like an image (``x.jpg/``) is reported as skipped."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()

    def unreadable(err: OSError) -> None:
        skipped.append(Skipped(str(err.filename), f"unreadable: {err.strerror or err}"))

    for root, dirs, files in os.walk(folder, followlinks=True, onerror=unreadable):
        here = Path(root)
        st = here.stat()
        if (st.st_dev, st.st_ino) in seen:  # a link back to a folder already listed
            skipped.append(
                Skipped(root, "not followed: a symbolic link to a folder already listed")
            )
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs.sort()
        for name in dirs:
            if is_image_file(Path(name)) and not name.startswith("."):
                skipped.append(Skipped(str(here / name), "not a file: a directory"))
        found.extend(here / name for name in files if not name.startswith("."))
    return sorted(found)


def list_images(spec: str | Path | list) -> tuple[list[Path], list[Skipped]]:
    """Expand a folder, glob, file or list of those into candidate image files.

    Nothing given is dropped silently: files with a non-image suffix, directories named like
    images, broken symbolic links, FIFOs and paths that do not exist are reported as skipped,
    each with its reason. Folders are searched recursively, following symbolic links; names
    starting with '.' (``.DS_Store``) are not inputs.
    """
    specs = spec if isinstance(spec, (list, tuple)) else [spec]
    found: list[Path] = []
    skipped: list[Skipped] = []

    def consider(path: Path) -> None:
        problem = file_problem(path)
        if problem:
            skipped.append(Skipped(str(path), problem))
        elif is_image_file(path):
            found.append(path)
        else:
            skipped.append(Skipped(str(path), "not an image: unsupported file type"))

    for item in specs:
        item = str(item)
        path = Path(item).expanduser()
        if path.is_dir():
            for child in _folder_files(path, skipped):
                consider(child)
        elif path.is_file():
            found.append(path)
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
            files = [p for p in matches if not p.is_dir()]
            if not files:
                skipped.append(Skipped(item, "missing: the pattern matches no file"))
            for match in matches:
                problem = file_problem(match)
                if problem == "not a file: a directory" and not is_image_file(match):
                    continue  # a folder the pattern happens to match, not a photo
                if problem:
                    skipped.append(Skipped(str(match), problem))
                else:
                    found.append(match)
        else:
            problem = file_problem(path)
            reason = (
                "missing: no such file or folder" if problem == "missing: no such file" else problem
            )
            skipped.append(Skipped(item, reason))
    unique = {p.resolve(): p for p in reversed(found)}  # first spelling of each file wins
    return sorted(unique.values(), key=found.index), skipped
