"""The synthetic source: accounts, posts and the shoot generated from the seed, cached, loaded.

See the package docstring (:mod:`mmembed.data.sources.synthetic`) for the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmembed.data.post import Corpus, Post, make_post, parse_hashtags, parse_mentions
from mmembed.data.sources.synthetic.details import (
    ATTRIBUTES,
    DETAIL_RATE,
    MOOD_RATE,
    describe,
    draw_attributes,
)
from mmembed.data.sources.synthetic.engagement import COMMENT_RATE, QUALITY_WEIGHTS, quality_factor
from mmembed.data.sources.synthetic.render import render_photo
from mmembed.data.sources.synthetic.topics import (
    ACCOUNT_SUFFIXES,
    GENERIC_HASHTAGS,
    GENERIC_WORDS,
    TEMPLATES,
    Topic,
    make_topics,
)

log = logging.getLogger(__name__)

#: Bump whenever the generated data changes for the same parameters; it is part of the cache
#: fingerprint, so stale caches are never reused.
GENERATOR_VERSION = "3"

#: Timestamps are spread over one year from this date.
START_DATE = datetime(2024, 1, 1, tzinfo=UTC)

# Independent random streams, so that e.g. the shoot does not change when num_posts does.
_ACCOUNTS, _POSTS, _POST_IMAGES, _SHOOT, _SHOOT_IMAGES = range(5)


def _names(folder: Path) -> set[str]:
    """File names in ``folder`` (empty if it does not exist); one scandir, no per-file stat."""
    return {e.name for e in os.scandir(folder)} if folder.is_dir() else set()


def _save(array: np.ndarray, path: Path) -> None:
    # JPEG at quality 90 measured 0.4 ms per 96 px image against 2.0 ms for PNG (0.9 ms at
    # compress_level=1), and files are ~5x smaller.
    Image.fromarray(array, "RGB").save(path, format="JPEG", quality=90)


class _ImageWriter:
    """Encodes and writes images on a few threads while the caller draws the next one.

    Creating a file takes up to a millisecond or more on a busy disk, as long as drawing an
    image; JPEG encoding and file I/O release the GIL, so the two overlap. Each file's bytes
    depend only on its own array, so the output stays deterministic.
    """

    def __init__(self, threads: int = 4):
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="synthetic-io")
        self.pending: list[Future] = []

    def write(self, array: np.ndarray, path: Path) -> None:
        self.pending.append(self.pool.submit(_save, array, path))

    def __enter__(self) -> _ImageWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.pool.shutdown(wait=True)
        if exc_type is None:
            for future in self.pending:
                future.result()  # re-raise the first failed write (e.g. a full disk)


# ----------------------------------------------------------------------------------------------
# The source
# ----------------------------------------------------------------------------------------------


class SyntheticSource:
    """Generate (once) and load the synthetic corpus; see the module docstring for the model.

    Usable without Hydra: ``SyntheticSource(num_posts=200, cache_dir=tmp).load()``.

    Args:
        num_posts: posts to generate.
        num_topics: planted topics (six named; more are recoloured variants).
        num_accounts: accounts posting; account ``i`` has topic ``i % num_topics`` as its
            dominant topic so that every topic is some account's focus when accounts >= topics.
        image_size: side of the square images in pixels.
        seed: everything (posts, images, shoot) is a function of the seed and the parameters.
        cache_dir: where ``<fingerprint>/`` folders are written.
        shoot_size: caption-less photos in the held-out ``shoot/`` folder.
        dirichlet_alpha: concentration of the account topic mixtures (small = focused accounts).
        followers_median, followers_sigma: log-normal follower counts of accounts.
        base_rate: like rate of an average-quality post on a perfectly fitting topic (f=1, fit=1).
        noise_sigma: sigma of the log-normal noise on likes.
        overlap: probability that an image borrows a decor element from another topic, and that
            a caption borrows a hashtag from another topic.
        caption_detail_rate, caption_mood_rate: how often a caption names a visible detail
            (the door's colour, golden hour) or an extreme exposure/saturation. The details
            are in the pixels whatever these rates are.
    """

    def __init__(
        self,
        num_posts: int = 2000,
        num_topics: int = 6,
        num_accounts: int = 8,
        image_size: int = 96,
        seed: int = 0,
        cache_dir: str | Path = ".cache/mmembed/synthetic",
        shoot_size: int = 60,
        dirichlet_alpha: float = 0.3,
        followers_median: float = 20000.0,
        followers_sigma: float = 1.0,
        base_rate: float = 0.03,
        noise_sigma: float = 0.3,
        overlap: float = 0.15,
        caption_detail_rate: float = 0.0,
        caption_mood_rate: float = 0.0,
        hashtag_audiences: Sequence[str] = (),
    ):
        if num_posts < 1 or num_topics < 1 or num_accounts < 1 or shoot_size < 0:
            raise ValueError("num_posts, num_topics and num_accounts must be >= 1, shoot_size >= 0")
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
        self.params: dict[str, Any] = {
            "num_posts": int(num_posts),
            "num_topics": int(num_topics),
            "num_accounts": int(num_accounts),
            "image_size": int(image_size),
            "seed": int(seed),
            "shoot_size": int(shoot_size),
            "dirichlet_alpha": float(dirichlet_alpha),
            "followers_median": float(followers_median),
            "followers_sigma": float(followers_sigma),
            "base_rate": float(base_rate),
            "noise_sigma": float(noise_sigma),
            "overlap": float(overlap),
            "caption_detail_rate": float(caption_detail_rate),
            "caption_mood_rate": float(caption_mood_rate),
        }
        self.cache_dir = Path(cache_dir).expanduser()
        self.topics = make_topics(num_topics)
        # Read, not generated: a different list reuses the cached dataset.
        self.hashtag_audiences = [str(t).lstrip("#").lower() for t in hashtag_audiences]

    # -- cache --------------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """Readable prefix plus a hash of every parameter and the generator version."""
        blob = json.dumps({**self.params, "version": GENERATOR_VERSION}, sort_keys=True)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
        p = self.params
        return f"n{p['num_posts']}-t{p['num_topics']}-a{p['num_accounts']}-s{p['seed']}-{digest}"

    @property
    def root(self) -> Path:
        """The dataset folder, ``<cache_dir>/<fingerprint>`` (absolute)."""
        return (self.cache_dir / self.fingerprint).resolve()

    @property
    def shoot_dir(self) -> Path:
        """The held-out folder of caption-less photos, generated with the dataset if needed."""
        return self._ensure() / "shoot"

    def _is_complete(self, root: Path) -> bool:
        """True when every file a load needs is present (metadata files and all images)."""
        needed = [root / "posts.jsonl", root / "truth.json", root / "shoot_truth.json"]
        if not all(p.is_file() for p in needed):
            return False
        images = {f"syn-{i:06d}.jpg" for i in range(self.params["num_posts"])}
        shoot = {f"IMG_{i + 1:04d}.jpg" for i in range(self.params["shoot_size"])}
        return images <= _names(root / "images") and shoot <= _names(root / "shoot")

    def _ensure(self) -> Path:
        """Return the complete dataset folder, generating it first if it is missing or partial.

        The data is written into a private temporary folder and renamed into place, so readers
        (and concurrent generators, e.g. several DDP ranks) never see a partial dataset.
        """
        root = self.root
        if self._is_complete(root):
            return root
        log.info(
            "generating the synthetic dataset (%d posts) into %s", self.params["num_posts"], root
        )
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_dir / f".{self.fingerprint}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            self._generate(tmp)
            if root.exists() and not self._is_complete(root):
                shutil.rmtree(root)
            try:
                os.rename(tmp, root)
            except OSError:
                if not self._is_complete(root):  # another process won the race only if complete
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return root

    # -- generation ---------------------------------------------------------------------------

    def _accounts(self) -> tuple[list[str], np.ndarray, np.ndarray, list[list[str]]]:
        """Account names, topic mixtures (A, T), followers (A,) and whom each account mentions."""
        p = self.params
        n_acc, n_top = p["num_accounts"], p["num_topics"]
        rng = np.random.default_rng([p["seed"], _ACCOUNTS])
        mixtures = rng.dirichlet(np.full(n_top, p["dirichlet_alpha"]), size=n_acc)
        mixtures = np.maximum(mixtures, 1e-12)
        mixtures /= mixtures.sum(axis=1, keepdims=True)
        for i in range(n_acc):  # make topic i % T the dominant one (swap it with the argmax)
            dominant, top = i % n_top, int(mixtures[i].argmax())
            mixtures[i, [dominant, top]] = mixtures[i, [top, dominant]]
        followers = np.maximum(
            50,
            np.round(rng.lognormal(math.log(p["followers_median"]), p["followers_sigma"], n_acc)),
        ).astype(np.int64)
        names = []
        for i in range(n_acc):
            suffix = ACCOUNT_SUFFIXES[i % len(ACCOUNT_SUFFIXES)]
            lap = i // len(ACCOUNT_SUFFIXES)
            names.append(f"{self.topics[i % n_top].stem}_{suffix}" + (str(lap + 1) if lap else ""))
        friends = []
        for i in range(n_acc):
            others = [j for j in range(n_acc) if j != i]
            k = min(len(others), int(rng.integers(1, 4)))
            friends.append(
                [names[j] for j in rng.choice(others, size=k, replace=False)] if k else []
            )
        return names, mixtures, followers, friends

    def _caption(
        self, rng, topic: Topic, friends: list[str], attributes: dict[str, str], qualities
    ) -> tuple[str, list[str]]:
        """A caption and the names of the details it mentions.

        A short sentence with the topic's words and an optional @mention, phrases for some of
        the photo's visible details (before or after the sentence), then hashtags (mostly the
        topic's own).
        """
        template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
        words = []
        for token in template.split():
            core = token.rstrip(",")
            if core == "{t}":
                vocab = topic.words if rng.random() < 0.9 else GENERIC_WORDS
            elif core == "{g}":
                vocab = GENERIC_WORDS
            else:
                words.append(token)
                continue
            words.append(vocab[int(rng.integers(len(vocab)))] + token[len(core) :])
        sentence = " ".join(words)
        if rng.random() < 0.35:
            pool = topic.brands if (rng.random() < 0.6 or not friends) else friends
            sentence += f" with @{pool[int(rng.integers(len(pool)))]}"
        punct = (".", "!", "")[int(rng.integers(3))]
        # the details draw from their own stream, so their rates change nothing else
        detail_rng = np.random.default_rng(int(rng.integers(2**63)))
        details, mentioned = describe(
            topic,
            attributes,
            qualities,
            detail_rng,
            self.params["caption_detail_rate"],
            self.params["caption_mood_rate"],
        )
        details_first = rng.random() < 0.5
        if not details:
            text = sentence + punct
        elif details_first:  # "Red door, golden hour. Cottage garden today!"
            text = ", ".join(details) + ". " + sentence[0].upper() + sentence[1:] + punct
        else:  # "Cottage garden today, red door, golden hour!"
            text = sentence + ", " + ", ".join(details) + punct
        text = text[0].upper() + text[1:]
        tags = list(rng.choice(topic.hashtags, size=int(rng.integers(2, 6)), replace=False))
        tags += list(rng.choice(GENERIC_HASHTAGS, size=int(rng.integers(0, 3)), replace=False))
        others = [t for t in self.topics if t.name != topic.name]
        if others and rng.random() < self.params["overlap"]:
            other = others[int(rng.integers(len(others)))]
            tags.append(other.hashtags[int(rng.integers(len(other.hashtags)))])
        return text + "\n\n" + " ".join("#" + t for t in dict.fromkeys(tags)), mentioned

    def _borrow(self, rng, topic_index: int) -> Topic | None:
        """Another topic to borrow a decor element from, with probability ``overlap``."""
        if len(self.topics) < 2 or rng.random() >= self.params["overlap"]:
            return None
        other = int(rng.integers(len(self.topics) - 1))
        return self.topics[other + (other >= topic_index)]

    def _generate(self, folder: Path) -> None:
        """Write images, ``truth.json``, ``posts.jsonl``, the shoot and ``shoot_truth.json``."""
        p = self.params
        n, size, seed = p["num_posts"], p["image_size"], p["seed"]
        names, mixtures, followers, friends = self._accounts()
        rng = np.random.default_rng([seed, _POSTS])
        account = rng.integers(len(names), size=n)
        cumulative = np.cumsum(mixtures, axis=1)[account]
        topic = np.minimum((cumulative < rng.random(n)[:, None]).sum(axis=1), len(self.topics) - 1)
        qualities = rng.uniform(0, 1, size=(n, 3))
        fit = 0.5 + mixtures[account, topic]
        true_rate = p["base_rate"] * quality_factor(qualities) * fit
        likes = np.round(
            followers[account] * true_rate * rng.lognormal(0, p["noise_sigma"], n)
        ).astype(np.int64)
        comments = rng.poisson(likes * COMMENT_RATE * rng.lognormal(0, 0.5, n))
        seconds = np.sort(rng.uniform(0, 365 * 86400, n))

        (folder / "images").mkdir(parents=True)
        records, attributes, mentioned = [], [], []
        with _ImageWriter() as writer:
            for i in range(n):
                top = self.topics[topic[i]]
                image_rng = np.random.default_rng([seed, _POST_IMAGES, i])
                rel = f"images/syn-{i:06d}.jpg"
                attributes.append(draw_attributes(top, image_rng))
                borrow = self._borrow(image_rng, int(topic[i]))
                writer.write(
                    render_photo(top, tuple(qualities[i]), image_rng, size, borrow, attributes[i]),
                    folder / rel,
                )
                caption, said = self._caption(
                    rng, top, friends[account[i]], attributes[i], qualities[i]
                )
                mentioned.append(said)
                post = Post(
                    post_id=f"syn-{i:06d}",
                    image_path=rel,
                    caption=caption,
                    hashtags=parse_hashtags(caption),
                    mentions=parse_mentions(caption),
                    likes=int(likes[i]),
                    comments=int(comments[i]),
                    followers=int(followers[account[i]]),
                    account=names[account[i]],
                    timestamp=(START_DATE + timedelta(seconds=float(seconds[i]))).isoformat(
                        timespec="seconds"
                    ),
                    source="synthetic",
                    topic=top.name,
                    true_engagement=float(true_rate[i]),
                )
                records.append(post.to_dict())
            self._generate_shoot(folder, writer)

        truth = {
            "topics": [t.name for t in self.topics],
            "account_mixtures": {
                name: {t.name: float(w) for t, w in zip(self.topics, mixtures[a])}
                for a, name in enumerate(names)
            },
            "account_followers": {name: int(f) for name, f in zip(names, followers)},
            "quality_weights": QUALITY_WEIGHTS,
            "post_qualities": {
                r["post_id"]: dict(zip(QUALITY_WEIGHTS, map(float, q)))
                for r, q in zip(records, qualities)
            },
            "attributes": {
                t.name: {a.name: list(a.values) for a in ATTRIBUTES[t.style]} for t in self.topics
            },
            "caption_detail_rate": DETAIL_RATE,
            "caption_mood_rate": MOOD_RATE,
            "post_attributes": {r["post_id"]: a for r, a in zip(records, attributes)},
            "post_caption_details": {r["post_id"]: m for r, m in zip(records, mentioned)},
            "engagement_model": "likes = followers * base_rate * f * (0.5 + mixture[account]"
            "[topic]) * LogNormal(0, noise_sigma); f = exp(sum w (q - 0.5))",
            "params": p,
            "seed": seed,
            "generator_version": GENERATOR_VERSION,
        }
        (folder / "truth.json").write_text(json.dumps(truth, indent=1), encoding="utf-8")
        with (folder / "posts.jsonl").open("w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    def _generate_shoot(self, folder: Path, writer: _ImageWriter) -> None:
        """Caption-less photos, balanced over topics, from a stream independent of the posts."""
        p = self.params
        n, seed = p["shoot_size"], p["seed"]
        rng = np.random.default_rng([seed, _SHOOT])
        topic = rng.permutation(np.arange(n) % len(self.topics))
        qualities = rng.uniform(0, 1, size=(n, 3))
        factor = quality_factor(qualities)
        (folder / "shoot").mkdir(parents=True)
        photos = {}
        for i in range(n):
            image_rng = np.random.default_rng([seed, _SHOOT_IMAGES, i])
            name = f"IMG_{i + 1:04d}.jpg"
            top = self.topics[topic[i]]
            attributes = draw_attributes(top, image_rng)
            borrow = self._borrow(image_rng, int(topic[i]))
            writer.write(
                render_photo(
                    top, tuple(qualities[i]), image_rng, p["image_size"], borrow, attributes
                ),
                folder / "shoot" / name,
            )
            photos[name] = {
                "topic": top.name,
                **dict(zip(QUALITY_WEIGHTS, map(float, qualities[i]))),
                "true_engagement_factor": float(factor[i]),
                "attributes": attributes,
            }
        shoot_truth = {
            "photos": photos,
            "quality_weights": QUALITY_WEIGHTS,
            "seed": seed,
            "generator_version": GENERATOR_VERSION,
        }
        (folder / "shoot_truth.json").write_text(
            json.dumps(shoot_truth, indent=1), encoding="utf-8"
        )

    # -- loading ------------------------------------------------------------------------------

    def _audience(self, post: Post) -> str:
        """``#tag`` for the first of ``hashtag_audiences`` the post carries (as a scrape of that
        hashtag's page would have found it), else ``synthetic``."""
        tags = {t.lower() for t in post.hashtags}
        return next((f"#{t}" for t in self.hashtag_audiences if t in tags), "synthetic")

    def load(self) -> Corpus:
        """Generate the dataset if the cache lacks it, then read it back as a Corpus."""
        root = self._ensure()
        posts = []
        with (root / "posts.jsonl").open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                post = make_post(json.loads(line), f"posts.jsonl row {number}")
                post.image_path = str(root / post.image_path)
                post.source = self._audience(post)
                posts.append(post)
        truth = json.loads((root / "truth.json").read_text(encoding="utf-8"))
        return Corpus(
            posts=posts, truth=truth, name="synthetic", counts={"topics": len(self.topics)}
        )
