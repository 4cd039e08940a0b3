"""Uploaded photos into one request's temporary folder, under names the server makes.

A client sends file names, and a zip sends member names, which may be ``../../etc/passwd``,
``C:\\x.jpg`` or ``<script>.jpg``. None of them ever becomes a path: each photo is written as
``photo-0001.jpg`` (the number in upload order, the suffix kept only when it is an image
suffix), and the client's name survives only as text to show (:func:`client_name`), escaped
by the templates like any other scraped string. Whether a file is a photo is left to the
safe decoder (:func:`mmembed.data.images.load_image`), which reads every file the ranker gets.

Limits (:class:`~mmembed.app.settings.AppSettings`) are checked while copying, so a zip bomb
is stopped at the limit, not after it filled the disk: too many photos, or one or all of them
too large, refuse the whole request with :class:`Refused` (HTTP 413).
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from mmembed.app.settings import MIB, AppSettings
from mmembed.data.images import IMAGE_SUFFIXES
from mmembed.ranking.result import SkippedInput

__all__ = ["Upload", "Refused", "client_name", "save_uploads"]

_CHUNK = MIB
_NAME_MAX = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Refused(Exception):
    """A request the app refuses: ``status`` is its HTTP status (413: past a limit; 422: not
    usable as sent), ``message`` says why and what to do, ``skipped`` lists the inputs that
    could not be read when that is why."""

    def __init__(self, status: int, message: str, skipped: list[SkippedInput] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.skipped = list(skipped or [])


@dataclass(frozen=True)
class Upload:
    """One uploaded photo: ``name`` as the client called it (text only), ``path`` the file the
    server wrote."""

    name: str
    path: Path


def client_name(raw: str | None, fallback: str) -> str:
    """The last component of a client-supplied name (``/`` and ``\\`` both separate), without
    control characters, at most 200 characters; ``fallback`` when nothing is left."""
    text = _CONTROL.sub("", str(raw or "")).replace("\\", "/").rstrip("/")
    text = text.rsplit("/", 1)[-1].strip()
    if text in ("", ".", ".."):
        return fallback
    if len(text) > _NAME_MAX:
        suffix = PurePosixPath(text).suffix[:10]
        text = text[:_NAME_MAX - len(suffix) - 1] + "…" + suffix
    return text


class _Saver:
    """Writes the photos of one request into ``folder``, counting them against the limits."""

    def __init__(self, folder: Path, settings: AppSettings):
        self.folder = folder
        self.settings = settings
        self.uploads: list[Upload] = []
        self.skipped: list[SkippedInput] = []
        self.total = 0
        self.names: set[str] = set()

    def _unique(self, name: str) -> str:
        """``name``, or ``name (2).jpg``, ... when an earlier photo of the request has it."""
        stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
        candidate, n = name, 1
        while candidate in self.names:
            n += 1
            candidate = f"{stem} ({n}){suffix}"
        self.names.add(candidate)
        return candidate

    def _count(self, name: str) -> None:
        if len(self.uploads) + len(self.skipped) >= self.settings.max_files:
            raise Refused(413, f"too many photos: {name!r} is past the limit of "
                                f"{self.settings.max_files} per request (app.max_files); "
                                "send them in several requests")

    def _too_large(self, name: str, what: str) -> Refused:
        s = self.settings
        limit = (f"{s.max_file_mb:g} MiB per photo (app.max_file_mb)" if what == "file" else
                 f"{s.max_upload_mb:g} MiB per request (app.max_upload_mb)")
        return Refused(413, f"upload too large: {name!r} goes past the limit of {limit}; "
                             "send fewer or smaller photos")

    def add(self, name: str, src: BinaryIO, source: str | None = None) -> None:
        """Copy one photo from ``src``, at most the limits allow; one whose bytes cannot be
        read (a damaged zip member of ``source``) is skipped with why."""
        self._count(name)
        name = self._unique(name)
        suffix = PurePosixPath(name).suffix.lower()
        number = len(self.uploads) + len(self.skipped) + 1
        path = self.folder / f"photo-{number:04d}{suffix if suffix in IMAGE_SUFFIXES else ''}"
        size = 0
        try:
            with open(path, "xb") as dst:
                while chunk := src.read(_CHUNK):
                    size += len(chunk)
                    if size > self.settings.max_file_bytes:
                        raise self._too_large(name, "file")
                    if self.total + size > self.settings.max_upload_bytes:
                        raise self._too_large(name, "request")
                    dst.write(chunk)
        except (zipfile.BadZipFile, NotImplementedError, EOFError, OSError, zlib.error) as exc:
            where = f" in {source}" if source else ""
            self.skipped.append(SkippedInput(name, f"corrupt: cannot be read{where} ({exc})"))
            return
        self.total += size
        self.uploads.append(Upload(name, path))

    def skip(self, name: str, reason: str) -> None:
        self._count(name)
        self.skipped.append(SkippedInput(self._unique(name), reason))

    def add_zip(self, name: str, src: BinaryIO) -> None:
        """Every photo inside the zip ``src`` (folders, hidden files and ``__MACOSX`` left
        out); a member that cannot be read is skipped with its reason."""
        try:
            archive = zipfile.ZipFile(src)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            self.skip(name, f"corrupt: not a readable zip archive ({exc})")
            return
        with archive:
            for info in archive.infolist():
                parts = PurePosixPath(info.filename.replace("\\", "/")).parts
                if info.is_dir() or not parts or "__MACOSX" in parts or \
                        parts[-1].startswith("."):
                    continue
                member = client_name(parts[-1], f"{name}-member")
                if info.flag_bits & 0x1:
                    self.skip(member, "unreadable: an encrypted zip member")
                    continue
                if info.file_size > self.settings.max_file_bytes:
                    self._count(member)
                    raise self._too_large(member, "file")
                try:
                    fh = archive.open(info)
                except (zipfile.BadZipFile, NotImplementedError, OSError, ValueError) as exc:
                    self.skip(member, f"corrupt: cannot be read in {name} ({exc})")
                    continue
                with fh:
                    self.add(member, fh, source=name)


def save_uploads(files: Iterable[tuple[str | None, BinaryIO]], folder: str | Path,
                 settings: AppSettings) -> tuple[list[Upload], list[SkippedInput]]:
    """Write ``files`` (client name, readable binary file) into ``folder``: the photos, and
    the inputs already known to be unusable (an unreadable zip, an encrypted member).

    A file named ``*.zip`` is opened as a zip and its photos taken instead. A part with no
    name and no bytes (a form sent without choosing a file) is not an input. Raises
    :class:`Refused` past a limit, or (422) when nothing was uploaded.
    """
    saver = _Saver(Path(folder), settings)
    for i, (raw, src) in enumerate(files, start=1):
        name = client_name(raw, f"upload-{i}")
        if not raw:
            head = src.read(1)
            if not head:
                continue
            src.seek(0)
        if name.lower().endswith(".zip"):
            saver.add_zip(name, src)
        else:
            saver.add(name, src)
    if not saver.uploads and not saver.skipped:
        raise Refused(422, "no photo uploaded: send one or more image files (or a zip "
                            "of them) in the form field `files`")
    return saver.uploads, saver.skipped
