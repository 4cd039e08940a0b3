"""The files instaloader writes: post metadata, and each target folder's images and captions.

instaloader writes one folder per *target*: a profile (``natgeo/``) or a hashtag
(``#rockclimbing/``). Each post is a group of files that share a stem, by default the post's UTC
date::

    natgeo/2024-05-01_12-30-00_UTC.jpg        the image (or the video's thumbnail)
    natgeo/2024-05-01_12-30-00_UTC_1.jpg      ..._1, _2, ...: the images of a carousel (sidecar)
    natgeo/2024-05-01_12-30-00_UTC.mp4        a video, beside its thumbnail
    natgeo/2024-05-01_12-30-00_UTC.txt        the caption
    natgeo/2024-05-01_12-30-00_UTC.json.xz    the metadata, {"node": ..., "instaloader": ...}
    natgeo/natgeo_787132.json.xz              the profile (node_type "Profile"): follower count

Nothing here reads a structure's fields; that is :mod:`mmembed.data.sources.instaloader_offline`.
"""

from __future__ import annotations

import json
import lzma
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mmembed.data.images import IMAGE_SUFFIXES

__all__ = [
    "TargetFolder",
    "has_posts",
    "is_post_file",
    "is_profile_target",
    "metadata_files",
    "metadata_stem",
    "stem_timestamp",
]

_STEM_DATE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})")
_NUMBERED_RE = re.compile(r"^(?P<base>.+)_(?P<n>\d+)\.(?P<ext>[A-Za-z0-9]+)$")
_PROFILE_TARGET_RE = re.compile(r"[\w.]+")  # instagram usernames; '#tag', ':feed', '%loc' are not


def metadata_stem(path: Path) -> str:
    """``2024-05-01_12-30-00_UTC`` for ``2024-05-01_12-30-00_UTC.json.xz`` (or ``.json``)."""
    name = path.name
    return name[: -len(".json.xz")] if name.endswith(".json.xz") else name[: -len(".json")]


def metadata_files(folder: Path) -> list[Path]:
    """The instaloader metadata files in ``folder`` (``.json.xz``, or ``.json`` as written with
    ``--no-compress-json``; comment dumps ``*_comments.json`` are not structures)."""
    try:
        children = list(folder.iterdir())
    except OSError:
        return []
    return sorted(
        p
        for p in children
        if p.is_file()
        and not p.name.startswith(".")
        and (
            p.name.endswith(".json.xz")
            or (p.name.endswith(".json") and not p.name.endswith("_comments.json"))
        )
    )


def is_post_file(path: Path) -> bool:
    """Whether ``path`` holds an instaloader Post: ``{"node": ..., "instaloader": {"node_type":
    "Post"}}`` as ``save_structure_to_file`` writes it, or the bare shortcode of instaloader v3.

    Targets are recognised by these files, not by "any JSON here": a session, resume or notes
    file beside the target folders must not turn the root into the only target.
    """
    try:
        opener = lzma.open if path.name.endswith(".xz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, EOFError, lzma.LZMAError, ValueError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    meta = data.get("instaloader")
    if isinstance(meta, dict) and "node" in data:
        return meta.get("node_type") == "Post"
    return "node" not in data and isinstance(data.get("shortcode"), str)


def has_posts(folder: Path) -> bool:
    return any(is_post_file(p) for p in metadata_files(folder))


def stem_timestamp(stem: str) -> str:
    """ISO UTC time from instaloader's default file stem, for nodes without a date."""
    match = _STEM_DATE_RE.match(stem)
    if not match:
        return ""
    try:
        when = datetime.strptime(match.group(1), "%Y-%m-%d_%H-%M-%S")
    except ValueError:
        return ""
    return when.replace(tzinfo=UTC).isoformat()


def is_profile_target(name: str) -> bool:
    """Whether a target folder is named after a profile (an Instagram username), not a hashtag
    (``#tag``), the feed (``:feed``) or a location (``%loc``)."""
    return _PROFILE_TARGET_RE.fullmatch(name) is not None


@dataclass
class TargetFolder:
    """One target folder's file names, listed once (existence checks stay O(1) per post)."""

    path: Path
    names: set[str]
    numbered: dict[str, list[tuple[int, str]]]  # stem -> [(n, file name)] for <stem>_<n>.<ext>

    @classmethod
    def scan(cls, path: Path) -> TargetFolder:
        names = {p.name for p in path.iterdir() if p.is_file()}
        numbered: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for name in names:
            match = _NUMBERED_RE.match(name)
            if match:
                numbered[match["base"]].append((int(match["n"]), name))
        for items in numbered.values():
            items.sort()
        return cls(path, names, dict(numbered))

    def image(self, stem: str) -> Path | None:
        """``<stem>.jpg`` (or another image suffix), if present."""
        for suffix in (".jpg", *sorted(IMAGE_SUFFIXES - {".jpg"})):
            if stem + suffix in self.names:
                return self.path / (stem + suffix)
        return None

    def sidecar_images(self, stem: str) -> list[tuple[int, Path]]:
        """The carousel's images ``<stem>_<n>.<ext>`` in order, leaving out the video items
        (those whose ``<stem>_<n>.mp4`` exists: their ``.jpg`` is only a thumbnail)."""
        found = []
        for n, name in self.numbered.get(stem, []):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES and f"{stem}_{n}.mp4" not in self.names:
                found.append((n, self.path / name))
        return found

    def has(self, name: str) -> bool:
        return name in self.names

    def caption(self, stem: str) -> str:
        """The text of ``<stem>.txt`` without its final newline ('' if absent or unreadable)."""
        if not self.has(f"{stem}.txt"):
            return ""
        try:
            text = (self.path / f"{stem}.txt").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return text.rstrip("\r\n")
