"""The metadata of Openclipart's SVG drawings: title, keywords, creator, date; and its cache.

Each SVG of ``openclipart-svg`` describes its drawing in a ``cc:Work`` block: a title
(``dc:title``), subject keywords (``rdf:li`` under ``dc:subject``), a creator (``dc:creator``)
and sometimes a date. :class:`~mmembed.data.sources.openclipart.OpenclipartSource` turns them into
a post's caption, hashtags, account and timestamp.

**Untrusted input.** SVGs are parsed with defusedxml (no entity expansion, no external
references, no DTD fetching); only the metadata block is read, stopping there. A file with
unreadable or missing metadata (no title, no creator) gives :class:`MetadataError` with the
reason, which the source reports as the file's skip reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from xml.etree.ElementTree import ParseError

import defusedxml
import defusedxml.ElementTree as SafeET

from mmembed.fileio import atomic_write

__all__ = ["MetadataError", "SvgMetadata", "SvgMetadataCache", "read_svg_metadata"]

_ISO_DATE_RE = re.compile(r"^\s*(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b")


class MetadataError(ValueError):
    """An SVG whose metadata cannot give a post; the message is the reason it is skipped."""


@dataclass(frozen=True)
class SvgMetadata:
    """What a drawing's ``cc:Work`` block says: title, subject keywords, creator, date."""

    title: str
    keywords: tuple[str, ...]
    creator: str
    date: str

    @property
    def timestamp(self) -> str:
        """``dc:date`` as ISO 8601 when it reads as year-month-day, else '' (unknown).

        The dates are free text ("19 08 2005", "September 2004", "2005/08/31"); only the
        unambiguous year-first forms are read.
        """
        match = _ISO_DATE_RE.match(self.date or "")
        if not match:
            return ""
        try:
            return datetime(*map(int, match.groups()), tzinfo=UTC).isoformat()
        except ValueError:
            return ""


def read_svg_metadata(path: str | Path) -> SvgMetadata:
    """The metadata of one SVG file, or :class:`MetadataError` saying why there is none.

    The file is untrusted: defusedxml refuses entity declarations (no "billion laughs"), external
    entities and DTD fetching, and parsing stops at the end of the first ``cc:Work`` element, so
    the drawing itself is never read. Elements are matched by local name, because about a fifth
    of the files declare no SVG namespace. Keywords are the ``rdf:li`` items under
    ``dc:subject`` (or its comma-separated text when it has none); the creator is the text under
    ``dc:creator`` (usually ``cc:Agent/dc:title``).
    """
    work = None
    try:
        for _, element in SafeET.iterparse(str(path), events=("end",)):
            if _local(element.tag) == "Work":
                work = element
                break
    except defusedxml.DefusedXmlException as exc:
        what = {
            "EntitiesForbidden": "XML entity declarations",
            "ExternalReferenceForbidden": "external XML references",
        }.get(type(exc).__name__, "forbidden XML constructs")
        raise MetadataError(
            f"refused SVG: it uses {what}, which are not expanded in untrusted input ({exc})"
        ) from None
    except (ParseError, OSError) as exc:
        raise MetadataError(f"unreadable SVG: {exc}") from None
    if work is None:
        raise MetadataError("no metadata: the SVG has no cc:Work block (dc:title, dc:creator)")
    children: dict[str, object] = {}
    for child in work:
        children.setdefault(_local(child.tag), child)
    title = _text(children.get("title"))
    if not title:
        raise MetadataError("no title: dc:title is missing or empty")
    creator = _text(children.get("creator"))
    if not creator:
        raise MetadataError("no creator: dc:creator is missing or empty")
    subject = children.get("subject")
    keywords: list[str] = []
    if subject is not None:
        items = [el for el in subject.iter() if _local(el.tag) == "li"]
        if items:
            keywords = [_text(el) for el in items]
        else:
            keywords = re.split(r"[,;]", _text(subject))
    return SvgMetadata(
        title=title,
        keywords=tuple(k for k in (k.strip() for k in keywords) if k),
        creator=creator,
        date=_text(children.get("date")),
    )


class SvgMetadataCache:
    """:func:`read_svg_metadata` of each SVG, kept in a JSON file between loads.

    Parsing ~6,700 SVGs takes ~10 s; this makes every load after the first skip it. An entry is
    used only while the file's size and modification time are unchanged. The file is ours
    (written by this class into the cache folder); a damaged one is ignored and rewritten.
    """

    VERSION = 1

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict] = {}
        self.changed = False
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") == self.VERSION:
                self.entries = dict(data["files"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass

    def read(self, svg: Path) -> SvgMetadata | str:
        """The metadata, or the reason the file has none."""
        key = str(svg)
        try:
            st = svg.stat()
        except OSError as exc:
            return f"unreadable SVG: {exc}"
        stamp = [st.st_size, st.st_mtime_ns]
        entry = self.entries.get(key)
        if isinstance(entry, dict) and entry.get("stamp") == stamp:
            if "error" in entry:
                return str(entry["error"])
            try:
                m = entry["meta"]
                return SvgMetadata(
                    str(m["title"]),
                    tuple(map(str, m["keywords"])),
                    str(m["creator"]),
                    str(m["date"]),
                )
            except (KeyError, TypeError):
                pass
        try:
            meta = read_svg_metadata(svg)
            self.entries[key] = {"stamp": stamp, "meta": asdict(meta)}
        except MetadataError as exc:
            meta = str(exc)
            self.entries[key] = {"stamp": stamp, "error": meta}
        self.changed = True
        return meta

    def save(self) -> None:
        if not self.changed:
            return
        atomic_write(self.path, json.dumps({"version": self.VERSION, "files": self.entries}))


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _text(element) -> str:
    """All text under ``element``, whitespace collapsed ('' for None)."""
    if element is None:
        return ""
    return " ".join(" ".join(element.itertext()).split())
