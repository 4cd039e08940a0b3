"""Real drawings by real authors, from the Open Clip Art Library (Debian's openclipart packages).

``openclipart-svg`` holds about 7,500 public-domain SVG drawings filed in 22 category folders
(some nested; 8,121 paths with the links), each with metadata: a title (``dc:title``), subject
keywords (``rdf:li`` under ``dc:subject``), a creator (``dc:creator``, about 500 real authors)
and sometimes a date.
``openclipart-png`` holds the same drawings rasterised by the packagers, one PNG at the same
path as each SVG. So every post here has real pixels, a real caption, real hashtags, a real
topic *and a real account*:

- title → caption; keywords → hashtags (normalised, capped); category folder → topic;
- creator → account. Creators post real topic mixtures, so ``Corpus.truth["account_mixtures"]``
  holds each creator's actual topic shares (what they posted): a community profile of a creator
  is checked against real truth, not a planted one.

**What is synthetic.** Followers and likes: the package has no social data. Each account gets
``followers ~ LogNormal(log followers_median, followers_sigma)`` and each post
``likes = round(followers * base_rate * exp(quality_strength * z) * noise)``, where ``z`` is the
standardised colourfulness of the cached image (a property anyone sees) and
``noise ~ LogNormal(0, noise_sigma)``. ``Post.true_engagement`` is the noise-free rate on the
scale of :func:`mmembed.data.post.engagement`. Deterministic given ``seed``.

**Pixels.** Rasterising is left to the packagers: every SVG has its PNG (8,121 paths in both
packages), so no SVG is rendered here. The PNGs are small (median longest side ~220 px; 38 %
under 128 px, upsampled when cached); 15 exceed the 64-megapixel decode guard and are skipped.
Transparency is composited on white and each drawing padded to a square (``image_size``).

**Duplicates.** A drawing filed in several folders is a link in the PNG package (1,221 links,
43 % of them to another top-level folder). It becomes one post, at the path of the real
file, and the links are counted as ``linked_copies``.

**Creators with few drawings.** Of the 498 creators, 261 made a single drawing and 444 fewer
than 10; alone they can never be a community (``communities.min_size``). Creators with fewer
than ``min_account_posts`` drawings are folded into one account, ``other_creators`` (listed in
``truth["folded_creators"]``), rather than dropped: their drawings still teach the embedding and
the clusters, and that account's truth is still exactly what its posts are.

**Keywords that name the folder.** 60 % of the drawings carry their own top-level folder as a
keyword (``computer``, ``signs_and_symbols``, ``unsorted``): tags of the library's filing, not of
the drawing. Kept, they hand the topic label to the text tower, so ``drop_folder_keywords``
(default on) removes keywords equal to one of the drawing's folder names.

**Metadata.** Read from each SVG's ``cc:Work`` block, as untrusted input, by
:mod:`mmembed.data.sources.openclipart_metadata`; a file with unreadable or missing metadata (no
title, no creator) is skipped with its reason.
Layout of the packages (1:0.18+dfsg-19 on Debian bookworm)::

    usr/share/openclipart/svg/<category>/<sub>/.../<name>.svg   drawing + metadata
    usr/share/openclipart/png/<category>/<sub>/.../<name>.png   the same drawing, rasterised
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from mmembed.data.images import ImageError, cache_square, colourfulness
from mmembed.data.post import Corpus, Post, Skipped, make_post
from mmembed.data.sources import SourceError, debian
from mmembed.data.sources.debian import DebianPackage
from mmembed.data.sources.openclipart_metadata import SvgMetadata, SvgMetadataCache

SVG_PACKAGE = DebianPackage("openclipart-svg", size_mb=25)
PNG_PACKAGE = DebianPackage("openclipart-png", size_mb=131)
ROOT_SUBDIR = "usr/share/openclipart"
SVG_SUBDIR = f"{ROOT_SUBDIR}/svg"
PNG_SUBDIR = f"{ROOT_SUBDIR}/png"
#: The account that holds the drawings of creators with fewer than ``min_account_posts``.
OTHER_ACCOUNT = "other_creators"


@dataclass(frozen=True)
class _Drawing:
    rel: PurePosixPath  # below png/, e.g. animals/birds/crow_01.png
    png: Path
    meta: SvgMetadata

    @property
    def folders(self) -> tuple[str, ...]:
        return self.rel.parent.parts


class OpenclipartSource:
    """Load Openclipart's drawings as Posts: real captions, hashtags, creators and topics.

    Parameters
    ----------
    cache_dir:
        Where the two .debs, the extracted tree (``pkg/``) and the cached images
        (``images/<size>px/``) live. ``openclipart-svg_*.deb`` and ``openclipart-png_*.deb``
        already placed here are used as they are, so the source works offline.
    image_size:
        Side of the square JPEGs written to the cache (drawings padded on white).
    seed:
        Seed of the synthetic followers and likes, and of the ``max_posts`` subsample.
    max_posts:
        Keep a seeded random subsample of this many drawings (``null``: all), for quick runs.
        Account folding and truth are computed on what is kept.
    min_account_posts:
        Creators with fewer drawings than this (after the subsample) are folded into the
        ``other_creators`` account. 1 keeps every creator as an account.
    topic_depth:
        How many folder levels name the topic: 1 gives ``animals``; 2 gives ``animals/birds``.
    exclude:
        Folder names whose drawings are left out wherever they occur; ``unsorted`` names no
        topic.
    drop_folder_keywords:
        Drop keywords equal to one of the drawing's folder names (the library's filing tags,
        which would leak the topic into the text).
    max_hashtags:
        Keep at most this many hashtags per post, in the SVG's keyword order.
    package_root:
        Use this extracted tree instead of the cache (a folder holding ``usr/share/openclipart``,
        or that folder itself, e.g. ``/usr/share/openclipart`` with both packages installed).
    base_rate, quality_strength, noise_sigma, followers_median, followers_sigma:
        The synthetic like model (see the module docstring).
    workers:
        Threads that composite the PNGs into the cache on first load.
    apt_get, dpkg_deb, timeout_s:
        The tools used to fetch and unpack the packages, and the time allowed for each.
    """

    def __init__(
        self,
        cache_dir: str | Path = ".cache/mmembed/openclipart",
        image_size: int = 128,
        seed: int = 0,
        max_posts: int | None = None,
        min_account_posts: int = 10,
        topic_depth: int = 1,
        exclude: tuple[str, ...] | list[str] = ("unsorted",),
        drop_folder_keywords: bool = True,
        max_hashtags: int = 10,
        package_root: str | Path | None = None,
        base_rate: float = 0.03,
        quality_strength: float = 0.25,
        noise_sigma: float = 0.3,
        followers_median: float = 5_000.0,
        followers_sigma: float = 1.0,
        workers: int = 4,
        apt_get: str = "apt-get",
        dpkg_deb: str = "dpkg-deb",
        timeout_s: float = 900.0,
    ) -> None:
        if image_size < 8:
            raise ValueError(f"image_size must be at least 8, got {image_size}")
        if max_posts is not None and max_posts < 1:
            raise ValueError(f"max_posts must be at least 1 (or null for all), got {max_posts}")
        if min_account_posts < 1:
            raise ValueError(f"min_account_posts must be at least 1, got {min_account_posts}")
        if topic_depth < 1:
            raise ValueError(f"topic_depth must be at least 1, got {topic_depth}")
        if max_hashtags < 0:
            raise ValueError(f"max_hashtags must be at least 0, got {max_hashtags}")
        self.cache_dir = Path(cache_dir).expanduser().resolve()
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.max_posts = None if max_posts is None else int(max_posts)
        self.min_account_posts = int(min_account_posts)
        self.topic_depth = int(topic_depth)
        self.exclude = frozenset(str(e).lower() for e in exclude)
        self.drop_folder_keywords = bool(drop_folder_keywords)
        self.max_hashtags = int(max_hashtags)
        self.package_root = Path(package_root).expanduser().resolve() if package_root else None
        self.base_rate = float(base_rate)
        self.quality_strength = float(quality_strength)
        self.noise_sigma = float(noise_sigma)
        self.followers_median = float(followers_median)
        self.followers_sigma = float(followers_sigma)
        self.workers = max(1, int(workers))
        self.apt_get = apt_get
        self.dpkg_deb = dpkg_deb
        self.timeout_s = float(timeout_s)

    # ------------------------------------------------------------------ public

    def load(self) -> Corpus:
        """Fetch the packages if needed, read the metadata, cache the images, build the Posts."""
        root = self.package_dir()
        drawings, skipped, counts = self._scan(root)
        if self.max_posts is not None and len(drawings) > self.max_posts:
            rng = np.random.default_rng([self.seed, 1])  # its own stream: likes stay comparable
            keep = np.sort(rng.choice(len(drawings), self.max_posts, replace=False))
            counts["subsampled_out"] = len(drawings) - self.max_posts
            drawings = [drawings[i] for i in keep]
        images_dir = self.cache_dir / "images" / f"{self.image_size}px"
        images_dir.mkdir(parents=True, exist_ok=True)
        ids = _post_ids(drawings)

        def cache(item: tuple[_Drawing, str]) -> tuple[Path, float] | ImageError:
            drawing, post_id = item
            image = cache_square(drawing.png, images_dir / f"{post_id}.jpg", self.image_size)
            return image if isinstance(image, ImageError) else (image, colourfulness(image))

        with ThreadPoolExecutor(self.workers) as pool:
            results = list(pool.map(cache, zip(drawings, ids)))
        kept: list[tuple[_Drawing, str, Path, float]] = []
        for drawing, post_id, result in zip(drawings, ids, results):
            if isinstance(result, ImageError):
                skipped.append(Skipped(str(drawing.png), result.reason))
            else:
                kept.append((drawing, post_id, *result))
        if not kept:
            example = skipped[-1].reason if skipped else "no drawing found"
            raise SourceError(
                f"none of the drawings under {root} could be loaded (e.g. {example}); delete "
                f"{self.cache_dir} to fetch the packages again"
            )
        posts, truth = self._posts(kept, counts)
        counts.update(drawings=len(posts), topics=len(truth["topics"]))
        return Corpus(posts=posts, skipped=skipped, counts=counts, truth=truth, name="openclipart")

    def package_dir(self) -> Path:
        """The extracted ``usr/share/openclipart`` folder (holding ``svg/`` and ``png/``),
        fetching and unpacking both packages on first use."""
        if self.package_root is not None:
            nested = self.package_root / ROOT_SUBDIR
            root = nested if nested.is_dir() else self.package_root
            if not ((root / "svg").is_dir() and (root / "png").is_dir()):
                raise SourceError(
                    f"package_root {self.package_root} holds no svg/ and png/ folders; point it "
                    f"at an extracted tree of {SVG_PACKAGE.name} and {PNG_PACKAGE.name} (holding "
                    f"{ROOT_SUBDIR}) or leave it unset to fetch them"
                )
            return root
        pkg = self.cache_dir / "pkg"
        if not ((pkg / SVG_SUBDIR).is_dir() and (pkg / PNG_SUBDIR).is_dir()):
            debs = [
                (debian.fetch(p, self.cache_dir, self.apt_get, self.timeout_s), sub)
                for p, sub in ((SVG_PACKAGE, SVG_SUBDIR), (PNG_PACKAGE, PNG_SUBDIR))
            ]
            debian.unpack(debs, pkg, _is_drawing_file, self.dpkg_deb, self.timeout_s, links=True)
        return pkg / ROOT_SUBDIR

    # ------------------------------------------------------------------ reading

    def _scan(self, root: Path) -> tuple[list[_Drawing], list[Skipped], dict[str, int]]:
        """One drawing per real PNG file, with its SVG's metadata; sorted by path."""
        png_dir, svg_dir = root / "png", root / "svg"
        metadata = SvgMetadataCache(self.cache_dir / "metadata.json")
        counts = {"pngs": 0, "linked_copies": 0, "excluded_folders": 0}
        drawings: list[_Drawing] = []
        skipped: list[Skipped] = []
        for png in sorted(png_dir.rglob("*.png")):
            if png.is_symlink():  # the same drawing, filed in one more folder
                counts["linked_copies"] += 1
                continue
            if not png.is_file():
                continue
            rel = PurePosixPath(png.relative_to(png_dir).as_posix())
            counts["pngs"] += 1
            if not rel.parent.parts or any(p.lower() in self.exclude for p in rel.parent.parts):
                counts["excluded_folders"] += 1  # loose at the top (no category), or excluded
                continue
            svg = svg_dir / rel.with_suffix(".svg")
            if not svg.is_file():
                skipped.append(Skipped(str(png), f"no SVG: {svg} is missing, so no metadata"))
                continue
            meta = metadata.read(svg)
            if isinstance(meta, str):
                skipped.append(Skipped(str(svg), meta))
                continue
            drawings.append(_Drawing(rel, png, meta))
        metadata.save()
        if not drawings:
            raise SourceError(
                f"no drawing with metadata found under {root} ({counts['pngs']} PNGs, "
                f"{len(skipped)} skipped); is it the tree of {SVG_PACKAGE.name} and "
                f"{PNG_PACKAGE.name}? (delete the cache folder to fetch the packages again)"
            )
        return drawings, skipped, counts

    def _topic(self, drawing: _Drawing) -> str:
        return "/".join(drawing.folders[: self.topic_depth])

    def _hashtags(self, drawing: _Drawing) -> list[str]:
        """Keywords lower-cased, runs of spaces/hyphens → ``_``, other punctuation removed,
        deduplicated in order, capped at ``max_hashtags``."""
        folders = {f.lower() for f in drawing.folders} if self.drop_folder_keywords else set()
        tags = []
        for keyword in drawing.meta.keywords:
            tag = re.sub(r"[\s\-]+", "_", keyword.lower())
            tag = re.sub(r"[^\w]", "", tag).strip("_")
            if tag and tag not in folders:
                tags.append(tag)
        return list(dict.fromkeys(tags))[: self.max_hashtags]

    # ------------------------------------------------------------------ posts and truth

    def _posts(
        self, kept: list[tuple[_Drawing, str, Path, float]], counts: dict[str, int]
    ) -> tuple[list[Post], dict]:
        """Accounts from creators (small ones folded), synthetic followers and likes, truth."""
        creators = [_account_name(d.meta.creator) for d, *_ in kept]
        per_creator = Counter(creators)
        folded = sorted(c for c, n in per_creator.items() if n < self.min_account_posts)
        folded_set = set(folded)
        accounts = [OTHER_ACCOUNT if c in folded_set else c for c in creators]
        names = sorted(set(accounts))
        rng = np.random.default_rng(self.seed)
        followers = dict(
            zip(
                names,
                np.maximum(
                    np.round(
                        rng.lognormal(
                            np.log(self.followers_median), self.followers_sigma, len(names)
                        )
                    ),
                    1,
                ).astype(int),
            )
        )
        colour = np.array([c for *_, c in kept], dtype=np.float64)
        z = (
            (colour - colour.mean()) / colour.std()
            if len(kept) > 1 and colour.std() > 0
            else np.zeros(len(kept))
        )
        noise = rng.lognormal(0.0, self.noise_sigma, len(kept))

        topics = sorted({self._topic(d) for d, *_ in kept})
        shares = {a: Counter() for a in names}
        posts: list[Post] = []
        for (drawing, post_id, image, _), account, z_i, noise_i in zip(kept, accounts, z, noise):
            f = int(followers[account])
            expected = self.base_rate * np.exp(self.quality_strength * z_i)
            topic = self._topic(drawing)
            shares[account][topic] += 1
            record = {
                "post_id": post_id,
                "image_path": str(image),
                "caption": drawing.meta.title,
                "hashtags": self._hashtags(drawing),
                "likes": int(round(f * expected * noise_i)),
                "comments": 0,
                "followers": f,
                "account": account,
                "timestamp": drawing.meta.timestamp,
                "source": "openclipart",
                "topic": topic,
                "true_engagement": float(np.log((f * expected + 1.0) / f)),
            }
            posts.append(make_post(record, where=f"openclipart drawing {drawing.rel}"))
        mixtures = {
            a: {t: n / sum(c.values()) for t, n in sorted(c.items())} for a, c in shares.items()
        }
        counts.update(
            creators=len(per_creator),
            accounts=len(names),
            folded_creators=len(folded),
            folded_posts=sum(a == OTHER_ACCOUNT for a in accounts),
            dated=sum(bool(p.timestamp) for p in posts),
        )
        truth = {
            "topics": topics,
            "topic_depth": self.topic_depth,
            "synthetic": ["followers", "likes"],
            # real: what each creator posted; the truth a community profile should recover
            "account_mixtures": mixtures,
            "account_topic_shares": mixtures,
            "folded_account": OTHER_ACCOUNT if folded else None,
            "folded_creators": folded,
        }
        return posts, truth


# ---------------------------------------------------------------------- helpers


def _account_name(creator: str) -> str:
    """``Nicu Buculei`` → ``nicu_buculei``: case and punctuation variants of a name merge."""
    return re.sub(r"[^\w]+", "_", creator.lower()).strip("_") or "unknown_creator"


def _post_ids(drawings: list[_Drawing]) -> list[str]:
    """``oc-animals-birds-crow-01``; a short hash settles the rare slug collision."""
    ids: list[str] = []
    seen: set[str] = set()
    for d in drawings:
        slug = re.sub(r"[^a-z0-9]+", "-", str(d.rel.with_suffix("")).lower()).strip("-")
        post_id = f"oc-{slug}"
        if post_id in seen:
            post_id += "-" + hashlib.sha1(str(d.rel).encode()).hexdigest()[:6]
        seen.add(post_id)
        ids.append(post_id)
    return ids


def _is_drawing_file(name: PurePosixPath) -> bool:
    """The package members a drawing needs: the SVGs (metadata) and the PNGs (pixels)."""
    text = str(name)
    return (text.startswith(SVG_SUBDIR + "/") and name.suffix.lower() == ".svg") or (
        text.startswith(PNG_SUBDIR + "/") and name.suffix.lower() == ".png"
    )
