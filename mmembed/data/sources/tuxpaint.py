"""Real photos with captions and categories, from Tux Paint's stamp collection.

The Debian package ``tuxpaint-stamps-default`` ships a few hundred real photographs (animals,
food, plants, vehicles, ...) cut out on transparent backgrounds, each in a category folder and
with a one-line English caption in a sibling ``.txt``. That gives real pixels, real captions and
a real topic label for every image, with no scraping and no credentials, which is what the
pipeline needs for an end-to-end run whose clustering can be checked against known topics.

**What is real and what is not.** Images, captions and categories are real. Accounts,
followers, likes and timestamps are *synthetic*: the package has no social data. Each post is
given to one of ``num_accounts`` made-up accounts whose audience prefers some topics (a seeded
Dirichlet mixture), and its likes are drawn from that preference; the ground truth is kept in
``Post.topic``, ``Post.true_engagement`` and ``Corpus.truth``. Everything is deterministic given
``seed``.

**Licence.** The stamps are GPL-2. They are never part of this repository: they are fetched at
run time into the (git-ignored) cache folder.

Layout of the package (2022.06.04-1 on Debian bookworm)::

    usr/share/tuxpaint/stamps/<category>/<sub>/.../<name>.png   the stamp (RGBA, ~150 px)
                                              <name>.txt        "A crow." then locale=lines
                                              <name>.dat        Tux Paint flags (ignored)
                                              <name>*.ogg|wav   sounds (ignored)
                                              <name>_mirror.png hand-made mirrored copy (dropped)
                                              <name>.svg        vector drawing (ignored)

Of its 796 PNGs, 430 remain once mirrored/flipped copies, ``cartoon`` folders (drawings) and the
``symbols`` category (letters, digits, coins, signs) are set aside; most are photographs, with
some clip-art (road signs, clothes templates, a few seasonal items). At ``topic_depth=1`` they
fall into 15 topics from 128 (animals) down to 3 (naturalforces); small topics are kept (see
``min_category_size``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import numpy as np

from mmembed.data.images import ImageError, cache_square, colourfulness
from mmembed.data.post import Corpus, Post, Skipped, make_post
from mmembed.data.sources import SourceError, debian
from mmembed.data.sources.debian import DebianPackage

PACKAGE = DebianPackage("tuxpaint-stamps-default", size_mb=160, cache_glob="tuxpaint-stamps*.deb")
STAMPS_SUBDIR = "usr/share/tuxpaint/stamps"
#: Stamp files Tux Paint mirrors or flips by hand; they duplicate their original.
_COPY_RE = re.compile(r"_(mirror|flip)$", re.IGNORECASE)
#: ``fr.utf8=...`` / ``en_GB.UTF-8=...``: translations; the English caption is the plain line.
_LOCALE_LINE_RE = re.compile(r"^[A-Za-z]{2,3}(_[A-Za-z]{2})?(@\w+)?\.(utf8|utf-8)=", re.IGNORECASE)
_WORD_RE = re.compile(r"[a-z]+")
_STOPWORDS = frozenset(
    "the and for with that this from are was were its it's his her has have had not but you "
    "your our their they them one two some very also used made make often into out who what "
    "which when where there here than then like just can will may been being called kind type "
    "sort part yum".split()
)
_EPOCH = datetime(2023, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class _Stamp:
    """One usable stamp photo in the package tree."""

    rel: PurePosixPath  # path below the stamps folder, e.g. animals/birds/crow.png
    path: Path
    caption: str
    caption_from_name: bool

    @property
    def folders(self) -> tuple[str, ...]:
        return self.rel.parent.parts


class TuxpaintSource:
    """Load Tux Paint's stamp photos as Posts with synthetic accounts and likes.

    Parameters
    ----------
    cache_dir:
        Where the .deb, the extracted stamps (``pkg/``) and the composited images
        (``images/<size>px/``) live. A ``tuxpaint-stamps*.deb`` already placed here is used as
        is, so the source works offline.
    image_size:
        Side of the square images written to the cache. The stamps are ~150 px, so larger sizes
        only upsample.
    num_accounts, seed:
        Number of synthetic accounts and the seed of everything synthetic.
    min_category_size:
        Topics with fewer photos than this are left out (reported in ``skipped``). The default 1
        keeps them all: at ``topic_depth=1`` the smallest are naturalforces (3), people (4) and
        medical (5). They are real, distinct topics; they only make topic NMI a little noisier.
    topic_depth:
        How many folder levels name the topic: 1 gives ``animals``; 2 gives ``animals/birds``
        (stamps directly in a top folder keep the top folder as topic).
    exclude:
        Folder names whose stamps are left out wherever they occur: ``cartoon`` folders hold
        drawings and ``symbols`` holds letters, digits and signs, not photos.
    package_root:
        Use this extracted tree instead of the cache (a folder holding ``usr/share/tuxpaint/
        stamps``, or the stamps folder itself, e.g. ``/usr/share/tuxpaint/stamps`` when Tux
        Paint's stamps are installed).
    mixture_concentration:
        Dirichlet concentration of the accounts' topic preferences; small values make each
        account's audience care about few topics.
    base_rate, fit_strength, quality_strength, noise_sigma, followers_median, followers_sigma:
        The like model, see :meth:`_synthesize`.
    max_caption_tags:
        Content words of the caption added as hashtags, after the folder names.
    apt_get, dpkg_deb, timeout_s:
        The tools used to fetch and unpack the package, and the time allowed for each.
    """

    def __init__(
        self,
        cache_dir: str | Path = ".cache/mmembed/tuxpaint",
        image_size: int = 128,
        num_accounts: int = 8,
        seed: int = 0,
        min_category_size: int = 1,
        topic_depth: int = 1,
        exclude: tuple[str, ...] | list[str] = ("cartoon", "symbols"),
        package_root: str | Path | None = None,
        mixture_concentration: float = 0.5,
        base_rate: float = 0.03,
        fit_strength: float = 0.5,
        quality_strength: float = 0.25,
        noise_sigma: float = 0.3,
        followers_median: float = 20_000.0,
        followers_sigma: float = 1.0,
        max_caption_tags: int = 3,
        apt_get: str = "apt-get",
        dpkg_deb: str = "dpkg-deb",
        timeout_s: float = 900.0,
    ) -> None:
        if image_size < 8:
            raise ValueError(f"image_size must be at least 8, got {image_size}")
        if num_accounts < 1:
            raise ValueError(f"num_accounts must be at least 1, got {num_accounts}")
        if topic_depth < 1:
            raise ValueError(f"topic_depth must be at least 1, got {topic_depth}")
        self.cache_dir = Path(cache_dir).expanduser().resolve()
        self.image_size = int(image_size)
        self.num_accounts = int(num_accounts)
        self.seed = int(seed)
        self.min_category_size = int(min_category_size)
        self.topic_depth = int(topic_depth)
        self.exclude = frozenset(str(e).lower() for e in exclude)
        self.package_root = Path(package_root).expanduser().resolve() if package_root else None
        self.mixture_concentration = float(mixture_concentration)
        self.base_rate = float(base_rate)
        self.fit_strength = float(fit_strength)
        self.quality_strength = float(quality_strength)
        self.noise_sigma = float(noise_sigma)
        self.followers_median = float(followers_median)
        self.followers_sigma = float(followers_sigma)
        self.max_caption_tags = int(max_caption_tags)
        self.apt_get = apt_get
        self.dpkg_deb = dpkg_deb
        self.timeout_s = float(timeout_s)

    # ------------------------------------------------------------------ public

    def load(self) -> Corpus:
        """Fetch the package if needed, composite the photos, and build the Posts."""
        stamps_dir = self.stamps_dir()
        stamps, counts = self._scan(stamps_dir)
        stamps, skipped = self._drop_small_topics(stamps)
        if not stamps:
            raise SourceError(
                f"min_category_size={self.min_category_size} leaves no photos: every topic under "
                f"{stamps_dir} is smaller; lower it (1 keeps every topic)"
            )
        images_dir = self.cache_dir / "images" / f"{self.image_size}px"
        images_dir.mkdir(parents=True, exist_ok=True)
        ids = _post_ids(stamps)
        kept: list[tuple[_Stamp, str, Path, float]] = []
        for stamp, post_id in zip(stamps, ids):
            result = cache_square(stamp.path, images_dir / f"{post_id}.jpg", self.image_size)
            if isinstance(result, ImageError):
                skipped.append(Skipped(str(stamp.path), result.reason))
                continue
            kept.append((stamp, post_id, result, colourfulness(result)))
        if not kept:
            raise SourceError(
                f"none of the {len(stamps)} stamp photos under {stamps_dir} could be decoded "
                f"(e.g. {skipped[-1].reason}); delete {self.cache_dir} to fetch them again"
            )
        posts, truth = self._synthesize(kept)
        counts.update(
            photos=len(posts),
            topics=len(truth["topics"]),
            captions_from_name=sum(s.caption_from_name for s, *_ in kept),
        )
        return Corpus(posts=posts, skipped=skipped, counts=counts, truth=truth, name="tuxpaint")

    def stamps_dir(self) -> Path:
        """The extracted stamps folder, fetching and unpacking the package on first use."""
        if self.package_root is not None:
            if not self.package_root.is_dir():
                raise SourceError(
                    f"package_root {self.package_root} is not a folder; point it at an extracted "
                    f"{PACKAGE.name} tree (holding {STAMPS_SUBDIR}) or leave it unset to fetch one"
                )
            return _stamps_under(self.package_root)
        pkg = self.cache_dir / "pkg"
        if not (pkg / STAMPS_SUBDIR).is_dir():
            deb = debian.fetch(PACKAGE, self.cache_dir, self.apt_get, self.timeout_s)
            debian.unpack(
                [(deb, STAMPS_SUBDIR)], pkg, _is_stamp_file, self.dpkg_deb, self.timeout_s
            )
        return pkg / STAMPS_SUBDIR

    # ------------------------------------------------------------------ reading

    def _scan(self, stamps_dir: Path) -> tuple[list[_Stamp], dict[str, int]]:
        """Every usable stamp PNG, sorted by path so that order never depends on the disk."""
        counts = {"stamp_pngs": 0, "mirrored_copies": 0, "excluded_folders": 0}
        stamps: list[_Stamp] = []
        for path in sorted(stamps_dir.rglob("*.png")):
            if not path.is_file():
                continue
            rel = PurePosixPath(path.relative_to(stamps_dir).as_posix())
            counts["stamp_pngs"] += 1
            if _COPY_RE.search(rel.stem):
                counts["mirrored_copies"] += 1
                continue
            if any(part.lower() in self.exclude for part in rel.parent.parts):
                counts["excluded_folders"] += 1
                continue
            if not rel.parent.parts:  # loose file at the top: no category
                counts["excluded_folders"] += 1
                continue
            caption = _read_caption(path.with_suffix(".txt"))
            stamps.append(_Stamp(rel, path, caption or _name_caption(rel.stem), caption is None))
        if not stamps:
            raise SourceError(
                f"no stamp photos found under {stamps_dir}; is it the stamps folder of "
                f"{PACKAGE.name}? (delete the cache folder to fetch the package again)"
            )
        return stamps, counts

    def _topic(self, stamp: _Stamp) -> str:
        return "/".join(stamp.folders[: self.topic_depth])

    def _drop_small_topics(self, stamps: list[_Stamp]) -> tuple[list[_Stamp], list[Skipped]]:
        sizes: dict[str, int] = {}
        for s in stamps:
            sizes[self._topic(s)] = sizes.get(self._topic(s), 0) + 1
        kept = [s for s in stamps if sizes[self._topic(s)] >= self.min_category_size]
        skipped = [
            Skipped(
                str(s.path),
                f"small category: '{self._topic(s)}' has {sizes[self._topic(s)]} photo(s), "
                f"fewer than min_category_size={self.min_category_size}",
            )
            for s in stamps
            if sizes[self._topic(s)] < self.min_category_size
        ]
        return kept, skipped

    # ------------------------------------------------------------------ synthetic social layer

    def _synthesize(self, kept: list[tuple[_Stamp, str, Path, float]]) -> tuple[list[Post], dict]:
        """Give each photo an account, followers, likes and a timestamp (all synthetic).

        Each account ``a`` has an audience taste ``theta_a ~ Dirichlet(mixture_concentration)``
        over the T topics and ``followers_a ~ LogNormal(log followers_median, followers_sigma)``.
        A photo of topic ``t`` is posted by account ``a`` with probability proportional to
        ``theta_a[t]`` (accounts post what their audience likes), and earns::

            rate  = base_rate * fit**fit_strength * exp(quality_strength * z) * noise
            fit   = max(T * theta_a[t], 0.01)        # 1 = an average topic for this audience
            z     = standardised colourfulness of the composited image (a pixel-level signal
                    that varies within a topic, so predicting engagement needs the image)
            noise = LogNormal(0, noise_sigma)
            likes = round(followers_a * rate)

        ``true_engagement`` is the noise-free ``log((expected likes + 1) / followers)``, on the
        scale of :func:`mmembed.data.post.engagement`. Comments are 0.
        """
        rng = np.random.default_rng(self.seed)
        topics = sorted({self._topic(s) for s, *_ in kept})
        index = {t: i for i, t in enumerate(topics)}
        n_topics = len(topics)
        accounts = [f"tux_account_{i:02d}" for i in range(self.num_accounts)]
        theta = rng.dirichlet(np.full(n_topics, self.mixture_concentration), self.num_accounts)
        followers = np.maximum(
            np.round(
                rng.lognormal(
                    np.log(self.followers_median), self.followers_sigma, self.num_accounts
                )
            ),
            1,
        ).astype(int)
        colour = np.array([c for *_, c in kept], dtype=np.float64)
        z = (
            (colour - colour.mean()) / colour.std()
            if len(kept) > 1 and colour.std() > 0
            else np.zeros(len(kept))
        )

        posts: list[Post] = []
        shares = np.zeros((self.num_accounts, n_topics))
        for (stamp, post_id, image, _), z_i in zip(kept, z):
            t = index[self._topic(stamp)]
            weights = (theta[:, t] + 1e-12) / (theta[:, t] + 1e-12).sum()
            a = int(rng.choice(self.num_accounts, p=weights))
            noise = rng.lognormal(0.0, self.noise_sigma)
            seconds = int(rng.integers(0, 365 * 24 * 3600))
            fit = max(n_topics * theta[a, t], 0.01)
            expected = self.base_rate * fit**self.fit_strength * np.exp(self.quality_strength * z_i)
            likes = int(round(followers[a] * expected * noise))
            shares[a, t] += 1
            record = {
                "post_id": post_id,
                "image_path": str(image),
                "caption": stamp.caption,
                "hashtags": self._hashtags(stamp),
                "likes": likes,
                "comments": 0,
                "followers": int(followers[a]),
                "account": accounts[a],
                "timestamp": (_EPOCH + timedelta(seconds=seconds)).isoformat(),
                "source": "tuxpaint",
                "topic": topics[t],
                "true_engagement": float(np.log((followers[a] * expected + 1.0) / followers[a])),
            }
            posts.append(make_post(record, where=f"tuxpaint stamp {stamp.rel}"))

        totals = shares.sum(axis=1, keepdims=True)
        shares = np.divide(shares, totals, out=np.zeros_like(shares), where=totals > 0)
        truth = {
            "topics": topics,
            "topic_depth": self.topic_depth,
            "synthetic": ["account", "followers", "likes", "timestamp"],
            # audience taste: drives who posts a topic and how well it does
            "account_mixtures": {
                acc: {t: float(theta[i, j]) for j, t in enumerate(topics)}
                for i, acc in enumerate(accounts)
            },
            # what each account actually posted (what a community profile should recover)
            "account_topic_shares": {
                acc: {t: float(shares[i, j]) for j, t in enumerate(topics)}
                for i, acc in enumerate(accounts)
            },
        }
        return posts, truth

    def _hashtags(self, stamp: _Stamp) -> list[str]:
        """Folder names (``#animals #birds``), then a few content words of the caption."""
        tags = [re.sub(r"\W+", "", f.lower()) for f in stamp.folders]
        words = [
            w
            for w in _WORD_RE.findall(stamp.caption.lower())
            if len(w) >= 3 and w not in _STOPWORDS
        ]
        tags += words[: self.max_caption_tags] if self.max_caption_tags > 0 else []
        return list(dict.fromkeys(t for t in tags if t))


# ---------------------------------------------------------------------- helpers


def _stamps_under(root: Path) -> Path:
    nested = root / STAMPS_SUBDIR
    return nested if nested.is_dir() else root


def _read_caption(path: Path) -> str | None:
    """The English caption: the first non-empty line that is not a ``locale=`` translation."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        line = line.strip().lstrip("\ufeff")
        if line and not _LOCALE_LINE_RE.match(line):
            return line
    for line in text.splitlines():  # only translations: prefer an English one
        if re.match(r"^en(_[A-Za-z]{2})?\.", line.strip(), re.IGNORECASE):
            return line.split("=", 1)[1].strip() or None
    return None


def _name_caption(stem: str) -> str:
    """A caption from a file name, for a stamp without ``.txt``: ``party-horn_in`` -> ``Party
    horn in.``"""
    words = " ".join(w for w in re.split(r"[-_\s\d]+", stem) if w)
    return (words[:1].upper() + words[1:] + ".") if words else stem


def _post_ids(stamps: list[_Stamp]) -> list[str]:
    """``tux-animals-birds-crow``; a short hash settles the rare slug collision."""
    ids: list[str] = []
    seen: set[str] = set()
    for s in stamps:
        slug = re.sub(r"[^a-z0-9]+", "-", str(s.rel.with_suffix("")).lower()).strip("-")
        post_id = f"tux-{slug}"
        if post_id in seen:
            post_id += "-" + hashlib.sha1(str(s.rel).encode()).hexdigest()[:6]
        seen.add(post_id)
        ids.append(post_id)
    return ids


def _is_stamp_file(name: PurePosixPath) -> bool:
    """The package members a stamp needs: its ``.png`` and ``.txt`` (not sounds, not SVGs)."""
    return str(name).startswith(STAMPS_SUBDIR + "/") and name.suffix.lower() in (".png", ".txt")
