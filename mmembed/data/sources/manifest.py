"""Manifest source: posts listed in a JSONL or CSV file.

Each row carries the Post fields (``post_id`` and ``image_path`` required; the rest optional).
Relative image paths resolve against the manifest's folder, and a path that escapes that folder
(``../../etc/passwd``, an absolute path elsewhere) is rejected for its row. A bad row is reported
with its row number and field and skipped; the other rows load.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from mmembed.data.post import Corpus, PostError, Skipped, make_post, resolve_inside
from mmembed.data.sources import SourceError


def _rows(path: Path):
    """Yield ``(row_number, record_or_error)`` from a JSONL or CSV manifest."""
    suffix = path.suffix.lower()
    with path.open(encoding="utf-8", newline="") as fh:
        if suffix in (".jsonl", ".ndjson", ".json"):
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, PostError(f"{path.name} row {number}: invalid JSON ({exc.msg})")
                    continue
                if not isinstance(record, dict):
                    yield number, PostError(f"{path.name} row {number}: expected a JSON object")
                    continue
                yield number, record
        elif suffix in (".csv", ".tsv"):
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            for number, record in enumerate(reader, start=2):  # row 1 is the header
                yield number, record
        else:
            raise SourceError(
                f"{path}: unknown manifest type {suffix!r}; use a .jsonl or .csv file"
            )


class ManifestSource:
    """Posts from a JSONL/CSV manifest. ``source`` defaults to the manifest's file stem."""

    def __init__(self, path: str, check_images: bool = True):
        self.path = Path(path).expanduser()
        self.check_images = check_images

    def load(self) -> Corpus:
        if not self.path.is_file():
            raise SourceError(
                f"manifest not found: {self.path}. Pass an existing .jsonl or .csv file with "
                "data=manifest data.path=FILE"
            )
        base = self.path.parent
        posts, skipped, seen = [], [], set()
        for number, record in _rows(self.path):
            where = f"{self.path.name} row {number}"
            if isinstance(record, PostError):
                skipped.append(Skipped(where, f"invalid row: {record}"))
                continue
            try:
                post = make_post(record, where)
                post.image_path = str(resolve_inside(base, post.image_path))
            except PostError as exc:
                skipped.append(Skipped(where, f"invalid row: {exc}"))
                continue
            if post.post_id in seen:
                skipped.append(Skipped(where, f"duplicate post_id: {post.post_id!r}"))
                continue
            if self.check_images and not Path(post.image_path).is_file():
                skipped.append(Skipped(where, f"missing image: {post.image_path}"))
                continue
            seen.add(post.post_id)
            post.source = post.source or self.path.stem
            posts.append(post)
        return Corpus(posts=posts, skipped=skipped, name=f"manifest:{self.path.name}")
