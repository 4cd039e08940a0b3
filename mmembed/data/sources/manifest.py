"""Manifest source: posts listed in a JSONL or CSV file.

Each row carries the Post fields (``post_id`` and ``image_path`` required; the rest optional).
``columns`` maps a Post field to the column that holds it when the export names it otherwise
(``data.columns.image_path=image``). Relative image paths resolve against the manifest's folder;
containment is judged on the path as written, normalised lexically (see
:func:`~mmembed.data.post.resolve_inside`), so ``../../etc/passwd`` or an absolute path elsewhere
is rejected for its row while a folder the user linked in is followed.

One bad row never sinks the load: invalid JSON, bytes that are not UTF-8, a field of the wrong
type, a CSV row with too many fields, a missing image, a duplicate id: each is reported with its
row number and reason, and the other rows load. The file is read as UTF-8 with or without a byte
order mark (Excel writes one). The load as a whole fails (:class:`SourceError`) only when no row
can load: no file, or a required column that no row has; the error then lists the columns found
and the closest one, instead of one identical line per row.
"""

from __future__ import annotations

import csv
import difflib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mmembed.data.images import file_problem
from mmembed.data.post import (
    POST_FIELDS,
    Corpus,
    PostError,
    Skipped,
    make_post,
    resolve_inside,
)
from mmembed.data.sources import SourceError

REQUIRED = ("post_id", "image_path")
#: How many column or key names a missing-column error lists.
_SHOW_COLUMNS = 30


def _not_utf8(line: str) -> str | None:
    """Where ``line`` (decoded with ``surrogateescape``) held a byte that is not UTF-8."""
    for i, ch in enumerate(line):
        if 0xDC80 <= ord(ch) <= 0xDCFF:
            return (
                f"not UTF-8 text (byte 0x{ord(ch) - 0xDC00:02x} at column {i + 1}); save the "
                "manifest as UTF-8"
            )
    return None


#: JSON's whitespace: a JSON Lines row holding only these is blank. Any other character, even
#: one ``str.strip`` would drop (a form feed, U+001C), is reported as a row that is not JSON.
_JSON_WHITESPACE = " \t\r\n"


def _jsonl_rows(fh) -> Iterator[tuple[int, dict[str, Any] | PostError]]:
    for number, line in enumerate(fh, start=1):
        if not line.strip(_JSON_WHITESPACE):
            continue
        bad = _not_utf8(line)
        if bad:
            yield number, PostError(bad)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, PostError(f"invalid JSON ({exc.msg} at column {exc.colno})")
            continue
        except RecursionError:
            yield number, PostError("invalid JSON (nested too deeply)")
            continue
        if not isinstance(record, dict):
            yield number, PostError(f"expected a JSON object, got {type(record).__name__}")
            continue
        yield number, record


def _csv_rows(reader, header: list[str]) -> Iterator[tuple[int, dict[str, Any] | PostError]]:
    number = 1  # row 1 is the header; rows are numbered like a spreadsheet's
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            number += 1
            yield number, PostError(f"unreadable CSV row ({exc})")
            continue
        if not fields:  # a blank line
            continue
        number += 1
        if len(fields) > len(header) and any(f.strip() for f in fields[len(header) :]):
            yield (
                number,
                PostError(
                    f"{len(fields)} fields but the header has {len(header)} columns "
                    "(a comma inside "
                    "an unquoted caption? quote the field)"
                ),
            )
            continue
        yield number, dict(zip(header, fields))


def _closest(name: str, candidates: list[str]) -> str | None:
    """The candidate most like ``name`` (difflib, ignoring case), else one that contains it or
    that it contains (``id`` for ``post_id``), else None."""
    lower = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.5)
    if match:
        return lower[match[0]]
    return next(
        (
            c
            for c in candidates
            if len(c) >= 2 and (name.lower() in c.lower() or c.lower() in name.lower())
        ),
        None,
    )


class ManifestSource:
    """Posts from a JSONL/CSV manifest. A row without a ``source`` has none (the file's name is
    not a community: a ``posts.jsonl`` made no "posts" community).

    ``columns`` maps Post fields to the manifest's own column names (``{"image_path": "image"}``);
    a field left out or mapped to ``None`` is read from the column of its own name.
    """

    def __init__(
        self, path: str, check_images: bool = True, columns: Mapping[str, str | None] | None = None
    ):
        self.path = Path(path).expanduser()
        self.check_images = check_images
        mapping = {str(k): str(v) for k, v in dict(columns or {}).items() if v not in (None, "")}
        unknown = sorted(set(mapping) - set(POST_FIELDS))
        if unknown:
            raise SourceError(
                f"data.columns: {', '.join(unknown)} is not a Post field; map one "
                f"of {', '.join(POST_FIELDS)} to your column name, e.g. "
                "data.columns.image_path=image"
            )
        self.columns = mapping

    def column(self, field: str) -> str:
        """The manifest column that holds Post ``field``."""
        return self.columns.get(field, field)

    def _record(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The row with the user's column names replaced by the Post fields they map to."""
        if not self.columns:
            return raw
        record = {k: v for k, v in raw.items() if k not in self.columns}
        for field, column in self.columns.items():
            if column in raw:
                record[field] = raw[column]
        return record

    def _missing_column(self, field: str, found: list[str], csv_header: bool) -> SourceError:
        """One error for a column that no row has, naming the columns found and the closest."""
        column = self.column(field)
        used = {self.column(f) for f in POST_FIELDS}
        close = _closest(column, [c for c in found if c not in used])
        shown = ", ".join(repr(c) for c in found[:_SHOW_COLUMNS])
        if len(found) > _SHOW_COLUMNS:
            shown += f", … ({len(found) - _SHOW_COLUMNS} more)"
        missing = (
            f"the header row has no column {column!r}"
            if csv_header
            else f"no row has the key {column!r}"
        )
        mapped = f" (data.columns.{field}={column})" if field in self.columns else ""
        need = "the required field" if field in REQUIRED else "the field"
        hint = (
            f"The closest is {close!r}: rename it to {field!r} or map it with "
            f"data.columns.{field}={close}."
            if close
            else f"Rename the column that holds it to {field!r} or map it with "
            f"data.columns.{field}=YOUR_COLUMN."
        )
        return SourceError(
            f"{self.path}: {missing}{mapped} for {need} {field!r}, so no row can "
            f"load. Columns found: {shown or 'none'}. {hint}"
        )

    def _rows(self) -> Iterator[tuple[int, dict[str, Any] | PostError]]:
        """``(row number, record or error)`` from a JSONL or CSV manifest, one bad row at a time.

        Read with ``utf-8-sig`` (a byte order mark is dropped, not glued to the first column) and
        ``surrogateescape``: a byte that is not UTF-8 is reported for its row instead of aborting
        the whole file with a UnicodeDecodeError.
        """
        suffix = self.path.suffix.lower()
        if suffix not in (".jsonl", ".ndjson", ".json", ".csv", ".tsv"):
            raise SourceError(
                f"{self.path}: unknown manifest type {suffix!r}; use a .jsonl or .csv file"
            )
        with self.path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
            if suffix in (".jsonl", ".ndjson", ".json"):
                keys: set[str] = set()
                objects = 0
                for number, record in _jsonl_rows(fh):
                    if isinstance(record, dict):
                        objects += 1
                        keys.update(record)
                        record = self._record(record)
                    yield number, record
                for field in REQUIRED + tuple(sorted(self.columns)):
                    if objects and self.column(field) not in keys:
                        raise self._missing_column(field, sorted(keys), csv_header=False)
                return
            reader = csv.reader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            try:
                header = [h.strip() for h in next(reader)]
            except (StopIteration, csv.Error):
                header = []
            for field in REQUIRED + tuple(sorted(self.columns)):
                if self.column(field) not in header:
                    raise self._missing_column(field, header, csv_header=True)
            for number, record in _csv_rows(reader, header):
                yield number, (record if isinstance(record, PostError) else self._record(record))

    def load(self) -> Corpus:
        if not self.path.is_file():
            raise SourceError(
                f"manifest not found: {self.path}. Pass an existing .jsonl or .csv file with "
                "data=manifest data.path=FILE"
            )
        base = Path(os.path.abspath(self.path.parent))
        posts, skipped, seen = [], [], set()
        for number, record in self._rows():
            where = f"{self.path.name} row {number}"
            if isinstance(record, PostError):
                skipped.append(Skipped(where, f"invalid row: {record.detail}"))
                continue
            try:
                post = make_post(record, where)
                post.image_path = str(resolve_inside(base, post.image_path))
            except PostError as exc:
                skipped.append(Skipped(where, f"invalid row: {exc.detail}"))
                continue
            if post.post_id in seen:
                skipped.append(Skipped(where, f"duplicate post_id: {post.post_id!r}"))
                continue
            if self.check_images and not os.path.isfile(post.image_path):
                why = (file_problem(Path(post.image_path)) or "unreadable").split(": ", 1)[-1]
                skipped.append(Skipped(where, f"missing image: {post.image_path} ({why})"))
                continue
            seen.add(post.post_id)
            posts.append(post)
        return Corpus(posts=posts, skipped=skipped, name=f"manifest:{self.path.name}")
