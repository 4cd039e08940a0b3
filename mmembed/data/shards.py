"""WebDataset tar shards: a corpus written once, then streamed by every rank and worker.

Layout of a shard folder (``python -m mmembed.data <source overrides> shards=DIR``):

- ``shard-000000.tar``, ``shard-000001.tar``, ...: one sample per post, keyed by a 9-digit
  running number: ``<key>.<ext>`` holds the image file's bytes as they were (never re-encoded),
  ``<key>.json`` the post's metadata (:meth:`~mmembed.data.post.Post.to_dict`, with the image's
  original path). A shard closes before it would pass ``maxsize`` bytes (about 1 GB by default)
  or ``maxcount`` posts.
- ``shard-000000.jsonl`` beside each tar: the same metadata, one line per sample in tar order,
  with the sample's ``__key__``. Loading the posts' metadata reads these small files, not the
  images.
- ``index.json``: the format, the total post count, every shard's name, post count and bytes,
  the source's name, dataset-level ground truth (synthetic data) and the inputs skipped while
  writing. It is written last: a folder without it is an interrupted write.
- ``truth-posts.json``, where the source has per-post ground truth (the ``truth`` keys that begin
  with ``post_``, a map of post id to value, :class:`~mmembed.data.post.Corpus`): kept out of
  the index, which every load reads and holds, so that the index stays small.

Every file is written under a temporary name and renamed into place. Posts stream through the
writer one at a time: it never holds more than one image.
"""

from __future__ import annotations

import functools
import json
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import braceexpand
import fsspec
import webdataset as wds
from webdataset.tariterators import group_by_keys, tar_file_expander

from mmembed.data.images import file_problem, load_image
from mmembed.data.post import Corpus, Skipped
from mmembed.fileio import atomic_write, dumps_json
from mmembed.progress import QUIET, Progress

__all__ = [
    "INDEX_NAME",
    "ShardSummary",
    "expand_urls",
    "read_index",
    "read_metadata",
    "read_samples",
    "write_shards",
]

FORMAT = 1
INDEX_NAME = "index.json"
POST_TRUTH_NAME = "truth-posts.json"
SHARD_NAME = "shard-{:06d}.tar"
#: Default shard size: about 1 GB, as webdataset recommends (large sequential reads).
MAXSIZE = 1_000_000_000


@dataclass
class ShardSummary:
    """What :func:`write_shards` wrote: the folder, the index it wrote and the skipped posts."""

    folder: Path
    index: dict[str, Any]
    skipped: list[Skipped]

    @property
    def posts(self) -> int:
        return int(self.index["posts"])


def _image_ext(path: str) -> str:
    ext = Path(path).suffix.lower().lstrip(".")
    return {"jpeg": "jpg", "tiff": "tif"}.get(ext, ext) or "img"


class _Shard:
    """One open shard: a TarWriter on a temporary file plus its metadata lines."""

    def __init__(self, folder: Path, number: int):
        self.path = folder / SHARD_NAME.format(number)
        self.tmp = folder / f".{self.path.name}.tmp"
        self.stream = open(self.tmp, "wb")
        self.writer = wds.TarWriter(self.stream, encoder=False)
        self.lines: list[str] = []

    @property
    def bytes(self) -> int:
        return self.stream.tell()

    def write(self, key: str, ext: str, image: bytes, meta: dict[str, Any]) -> None:
        text = dumps_json(meta, indent=None)
        self.writer.write({"__key__": key, ext: image, "json": text.encode("utf-8")})
        self.lines.append(dumps_json({"__key__": key, **meta}, indent=None))

    def close(self) -> dict[str, Any]:
        self.writer.close()
        self.stream.close()
        atomic_write(self.path.with_suffix(".jsonl"), "".join(line + "\n" for line in self.lines))
        self.tmp.replace(self.path)
        return {"name": self.path.name, "posts": len(self.lines), "bytes": self.path.stat().st_size}


def write_shards(corpus: Corpus, folder: str | Path, maxsize: int = MAXSIZE,
                 maxcount: int | None = None, check: bool = True,
                 progress: Progress = QUIET) -> ShardSummary:
    """Write ``corpus`` as tar shards in ``folder`` (see the module docstring).

    Each post's image file is read (and, with ``check``, decoded once to be sure it can be)
    and written at once, so memory holds one image at a time. A post whose image cannot be
    read or decoded is skipped with its reason, like everywhere else in mmembed; the skipped
    posts and the corpus's own are listed in the index. Raises ``ValueError`` when the folder
    holds shards of another write (delete them or pick another folder).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.glob("shard-*.tar")) or (folder / INDEX_NAME).exists():
        raise ValueError(f"{folder} already holds shards: delete them or choose another "
                         "shards=DIR")
    if maxsize <= 0 or (maxcount is not None and maxcount <= 0):
        raise ValueError(f"maxsize and maxcount must be positive (got {maxsize}, {maxcount})")
    skipped: list[Skipped] = []
    shards: list[dict[str, Any]] = []
    shard: _Shard | None = None
    key = 0
    for post in progress.track(corpus.posts, len(corpus.posts), "writing shards"):
        item = f"{post.post_id} ({post.image_path})"
        problem = file_problem(Path(post.image_path))
        if problem:
            skipped.append(Skipped(item, problem))
            continue
        if check:
            img = load_image(post.image_path)
            if not hasattr(img, "size"):
                skipped.append(Skipped(item, img.reason))
                continue
            img.close()
        data = Path(post.image_path).read_bytes()
        if shard is not None and (shard.bytes + len(data) + 2048 > maxsize
                                  or (maxcount is not None and len(shard.lines) >= maxcount)):
            shards.append(shard.close())
            shard = None
        if shard is None:
            shard = _Shard(folder, len(shards))
        shard.write(f"{key:09d}", _image_ext(post.image_path), data, post.to_dict())
        key += 1
    if shard is not None:
        shards.append(shard.close())
    truth, post_truth = split_truth(corpus.truth)
    if post_truth:
        atomic_write(folder / POST_TRUTH_NAME, dumps_json(post_truth))
    index = {"format": FORMAT, "posts": sum(s["posts"] for s in shards), "shards": shards,
             "name": corpus.name, "truth": truth, "counts": corpus.counts,
             "skipped": [s.__dict__ for s in list(corpus.skipped) + skipped]}
    atomic_write(folder / INDEX_NAME, dumps_json(index))
    return ShardSummary(folder, index, skipped)


def split_truth(truth: dict[str, Any] | None
                ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """``(dataset-level truth, per-post truth)``: the keys beginning with ``post_`` (maps of
    post id to value) apart from the rest."""
    if truth is None:
        return None, {}
    per_post = {k: v for k, v in truth.items() if k.startswith("post_")}
    return {k: v for k, v in truth.items() if k not in per_post}, per_post


# ----------------------------------------------------------------------------- reading


def expand_urls(urls: str | Iterable[str]) -> list[str]:
    """Shard URLs from a brace pattern (``DIR/shard-{000000..000099}.tar``) or a list; a
    folder (or a folder URL) stands for every shard its ``index.json`` lists."""
    if isinstance(urls, str):
        urls = [urls]
    out: list[str] = []
    for url in urls:
        url = str(url)
        if not url.endswith(".tar") and "{" not in url:
            index = read_index(url)
            out.extend(f"{url.rstrip('/')}/{s['name']}" for s in index["shards"])
        else:
            out.extend(braceexpand.braceexpand(url))
    return out


def read_index(folder: str) -> dict[str, Any]:
    """The ``index.json`` of a shard folder (local path or fsspec URL)."""
    url = f"{str(folder).rstrip('/')}/{INDEX_NAME}"
    try:
        with fsspec.open(url, "rt", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{url}: no shard index. Write the shards with `python -m mmembed.data "
            "<source overrides> shards=DIR`, or give the shard files as a pattern, e.g. "
            "data.urls='DIR/shard-{000000..000009}.tar'") from None


def sidecar_url(url: str) -> str:
    return url[:-len(".tar")] + ".jsonl" if url.endswith(".tar") else url + ".jsonl"


def read_metadata(url: str) -> list[dict[str, Any]]:
    """The metadata of one shard's posts, in tar order, each with its ``__key__``: from the
    ``.jsonl`` beside it, or (when that is missing) from the tar's ``.json`` members."""
    try:
        with fsspec.open(sidecar_url(url), "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        pass
    with fsspec.open(url, "rb") as f:
        return [{"__key__": s["__key__"], **json.loads(s["json"])}
                for s in _samples(url, f, select=lambda name: name.endswith(".json"))]


def _samples(url: str, stream, select=None) -> Iterator[dict[str, Any]]:
    files = tar_file_expander([{"url": url, "stream": stream}], select_files=select)
    yield from group_by_keys(files)


def read_samples(url: str) -> Iterator[tuple[str, str, bytes]]:
    """``(key, image name, image bytes)`` for every sample of one shard, streamed: one sample
    is in memory at a time. Local paths and any fsspec URL (``s3://``, ``gs://``, ...)."""
    with fsspec.open(url, "rb") as f:
        for sample in _samples(url, f):
            exts = [k for k in sample if not k.startswith("__") and k != "json"]
            if not exts:
                continue
            yield sample["__key__"], f"{url}#{sample['__key__']}.{exts[0]}", sample[exts[0]]


def post_from_metadata(meta: dict[str, Any], url: str) -> dict[str, Any]:
    """A post record of shard metadata, its ``image_path`` naming the member in the shard
    (``URL#KEY``): the image is read from the shard, not from the path it was written from."""
    record = {k: v for k, v in meta.items() if k != "__key__"}
    record["image_path"] = f"{url}#{meta['__key__']}"
    return record


def is_member(image_path: str) -> bool:
    """Whether ``image_path`` names an image inside a shard (``…/shard-000003.tar#KEY``)."""
    url, sep, key = str(image_path).rpartition("#")
    return bool(sep) and url.endswith(".tar") and "/" not in key


#: Shards whose member offsets :func:`member_bytes` keeps (one dict of key → offset per shard).
OFFSET_CACHE_SHARDS = 32


def _shard_version(url: str) -> tuple:
    """What tells one write of a shard file from another: its size and modification time."""
    fs, path = fsspec.core.url_to_fs(url)
    info = fs.info(path)
    return (info.get("size"), info.get("mtime", info.get("LastModified", info.get("ETag"))))


def _pax_records(data: bytes) -> dict[str, str]:
    """The ``key=value`` records of a pax extended header (``"<len> key=value\\n"`` each)."""
    records, pos = {}, 0
    while pos < len(data) and data[pos:pos + 1] != b"\0":
        length = int(data[pos:data.index(b" ", pos)])
        key, _, value = data[data.index(b" ", pos) + 1:pos + length - 1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8",
                                                                       "surrogateescape")
        pos += length
    return records


def _header_number(field: bytes) -> int:
    """A tar header's numeric field: octal digits, or base-256 when its top bit is set."""
    if field[0] & 0x80:
        raise ValueError("base-256 tar number")
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


def _scan_headers(f) -> Iterator[tuple[str, int, int]]:
    """``(name, data offset, size)`` of every regular member of an uncompressed tar, read
    header by header with a seek over each member's data (pax headers applied). Raises
    ``ValueError`` on a header it does not handle (GNU long names, sparse files, ...)."""
    pos, pax = 0, {}
    while True:
        f.seek(pos)
        buf = f.read(tarfile.BLOCKSIZE)
        if len(buf) < tarfile.BLOCKSIZE or buf.count(0) == tarfile.BLOCKSIZE:
            return
        kind, size = buf[156:157], _header_number(buf[124:136])
        data_at = pos + tarfile.BLOCKSIZE
        pos = data_at + -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        if kind in (tarfile.XHDTYPE, tarfile.XGLTYPE):
            records = _pax_records(f.read(size))
            if kind == tarfile.XHDTYPE:
                pax = records
            continue
        if kind not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                        tarfile.LNKTYPE):
            raise ValueError(f"tar header type {kind!r}")
        if "path" in pax:
            name = pax["path"]
        else:
            name = buf[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            prefix = buf[345:500].split(b"\0", 1)[0] if buf[257:262] == b"ustar" else b""
            if prefix:
                name = prefix.decode("utf-8", "surrogateescape") + "/" + name
        if "size" in pax:
            size = int(pax["size"])
            pos = data_at + -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        if kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
            yield name, data_at, size
        pax = {}


@functools.lru_cache(maxsize=OFFSET_CACHE_SHARDS)
def _member_offsets(url: str, version: tuple) -> dict[str, tuple[int, int]]:
    """``{key: (data offset, size)}`` of the image members of one shard: one scan of its tar
    headers, seeking over the data (:mod:`tarfile` itself where the headers are unusual)."""
    with fsspec.open(url, "rb") as f:
        try:
            members = list(_scan_headers(f))
        except (ValueError, tarfile.TarError):
            f.seek(0)
            with tarfile.open(fileobj=f, mode="r:") as tar:
                members = [(m.name, m.offset_data, m.size) for m in tar if m.isreg()]
    offsets: dict[str, tuple[int, int]] = {}
    for name, offset, size in members:
        stem, _, ext = name.partition(".")
        if ext != "json" and stem not in offsets:
            offsets[stem] = (offset, size)
    return offsets


def member_bytes(image_path: str) -> bytes | None:
    """The bytes of the image ``SHARD_URL#KEY`` names, or ``None`` when the shard lacks it.

    The first picture asked of a shard scans its tar headers once (seeking over the members'
    data) and keeps every member's offset (for the last :data:`OFFSET_CACHE_SHARDS` shards,
    keyed by the file's size and modification time); each picture then costs one seek and one
    read, whatever the shard's size.
    """
    url, _, key = str(image_path).rpartition("#")
    where = _member_offsets(url, _shard_version(url)).get(key)
    if where is None:
        return None
    with fsspec.open(url, "rb") as f:
        f.seek(where[0])
        return f.read(where[1])
