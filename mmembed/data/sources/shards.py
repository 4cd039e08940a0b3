"""Posts from WebDataset tar shards written by ``python -m mmembed.data ... shards=DIR``.

``load()`` reads the posts' metadata only (the small ``.jsonl`` beside each shard), so a corpus
of millions of posts loads without touching its images. The images stay in the shards and are
streamed by :class:`mmembed.data.datamodule.PostDataModule`: each rank and each DataLoader
worker reads only its own shards (see :mod:`mmembed.data.stream`). A post's ``image_path`` is
``SHARD_URL#KEY``, the member of its shard.

``urls``: a brace pattern (``DIR/shard-{000000..000099}.tar``), a list of shard URLs, or a
shard folder (every shard its ``index.json`` lists). Local paths and any fsspec URL work.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from mmembed.data.post import Corpus, PostError, Skipped, make_post
from mmembed.data.shards import expand_urls, post_from_metadata, read_index, read_metadata
from mmembed.data.sources import SourceError


class ShardSource:
    """Posts of a set of tar shards; ``shard_of[i]`` is the shard (an index into ``urls``) of
    the i-th loaded post, and ``keys[i]`` its key in that shard."""

    #: The datamodule streams this source's images from the shards instead of decoding them
    #: into one array.
    streams = True

    def __init__(self, urls: Any, name: str | None = None):
        if not urls:
            raise SourceError("data=shards needs data.urls='DIR/shard-{000000..000009}.tar' "
                              "(or a shard folder)")
        self.spec = urls if isinstance(urls, str) else [str(u) for u in urls]
        self.name = name
        self.urls: list[str] = []
        self.shard_of: list[int] = []
        self.keys: list[str] = []

    def _index(self) -> dict[str, Any]:
        """The index of the folder of the first shard, when there is one (ground truth)."""
        first = self.urls[0]
        try:
            return read_index(first.rsplit("/", 1)[0] if "/" in first else ".")
        except (FileNotFoundError, ValueError, OSError):
            return {}

    def load(self) -> Corpus:
        try:
            self.urls = expand_urls(self.spec)
        except (FileNotFoundError, ValueError) as exc:
            raise SourceError(str(exc)) from None
        if not self.urls:
            raise SourceError(f"data.urls={self.spec!r} names no shard")
        posts, skipped, self.shard_of, self.keys = [], [], [], []
        for s, url in enumerate(self.urls):
            try:
                metadata = read_metadata(url)
            except (OSError, ValueError) as exc:
                skipped.append(Skipped(url, f"unreadable shard: {exc}"))
                continue
            for meta in metadata:
                where = f"{url} sample {meta.get('__key__')}"
                try:
                    posts.append(make_post(post_from_metadata(meta, url), where))
                except (PostError, KeyError) as exc:
                    skipped.append(Skipped(where, str(exc)))
                    continue
                self.shard_of.append(s)
                self.keys.append(str(meta["__key__"]))
        if not posts:
            raise SourceError(f"no post could be read from the shards {self.spec!r}: "
                              + "; ".join(f"{s.item}: {s.reason}" for s in skipped[:3]))
        index = self._index()
        name = self.name or index.get("name") or PurePosixPath(self.urls[0]).parent.name
        return Corpus(posts=posts, skipped=skipped, truth=index.get("truth"),
                      counts={"shards": len(self.urls)}, name=name or "shards")
