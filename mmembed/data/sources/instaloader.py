"""Posts from folders written by instaloader (https://instaloader.github.io).

instaloader writes one folder per *target*: a profile (``natgeo/``) or a hashtag
(``#rockclimbing/``), each post a group of files sharing a stem (image, carousel images, caption
``.txt``, metadata ``.json.xz``), plus the profile's own metadata; see
:mod:`mmembed.data.sources.instaloader_layout`.

The metadata is read with instaloader's own :func:`instaloader.load_structure_from_file` and its
``Post``/``Profile`` properties, so the many node layouts Instagram has used over the years are
instaloader's problem, not a hand-written GraphQL parser's.

Those properties fetch whatever the saved node lacks from Instagram; a loader of training data
must never do that, so the structures are bound to an offline context that refuses every request
(:mod:`mmembed.data.sources.instaloader_offline`). A post whose required field (likes, comments)
is not in the saved node is then reported as skipped, naming the field.

Decisions, so that results do not depend on what happens to be cached:

- ``source`` is the target folder's name (``natgeo``, ``#rockclimbing``): it is what defines a
  hashtag community.
- ``account`` is the owner's username when the saved node has it; else, when the owner's id
  matches a profile file in the folder, that profile's username; else, for a profile target, the
  folder name (instaloader only puts the profile's own posts there and names the folder after it);
  else (a hashtag or other special target with an anonymous owner) ``""``, i.e. unknown. A wrong
  guess would merge strangers into one account; an empty one just leaves the post out of
  per-account statistics.
- ``followers`` comes from the profile file in the same folder, matched by owner id, then owner
  username, then (for a profile target whose owner is unknown) the folder name; failing that, from
  the owner profile embedded in the post's node when instaloader saved one; else ``None``. Posts
  are never dropped for that: :func:`mmembed.data.post.engagement` falls back to a per-source
  normalisation.
- Videos (``is_video``, typename ``GraphVideo`` or a ``.mp4`` beside the post) are skipped and
  counted in ``Corpus.counts["videos_skipped"]``: their thumbnails are not the content people
  engaged with. Video items inside a carousel are skipped, the carousel's images are kept.
- A post found in two targets keeps its first occurrence (targets in sorted order); the others are
  reported as duplicates, since one ``post_id`` twice would leak between train and test splits.
- Images are only checked to exist here; decoding happens later through
  :func:`mmembed.data.images.load_image`, which reports broken files itself.
"""

from __future__ import annotations

import lzma
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import instaloader  # the PyPI package: absolute imports never resolve to this module

from mmembed.data.images import IMAGE_SUFFIXES
from mmembed.data.post import Corpus, Post, PostError, Skipped, make_post
from mmembed.data.sources import SourceError
from mmembed.data.sources.instaloader_layout import (
    TargetFolder,
    has_posts,
    is_profile_target,
    metadata_files,
    metadata_stem,
    stem_timestamp,
)
from mmembed.data.sources.instaloader_offline import (
    FieldUnavailable,
    OfflineContext,
    OfflineError,
    get_field,
    optional_field,
)

__all__ = ["InstaloaderSource"]


class _Skip(Exception):
    """One post becomes a :class:`Skipped` entry; ``video`` also counts it in videos_skipped."""

    def __init__(self, reason: str, video: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.video = video


@dataclass
class _ProfileInfo:
    """What a target's profile file tells offline (``None`` where the saved node lacks it)."""

    username: str | None
    userid: int | None
    followers: int | None


class InstaloaderSource:
    """Posts from a folder tree written by instaloader, read offline.

    ``root`` holds target folders (``natgeo/``, ``#rockclimbing/``), or is one target folder
    itself. With ``include_sidecars`` every image of a carousel becomes its own Post
    (``post_id`` ``<shortcode>_<n>``), sharing the caption and counts; otherwise a carousel gives
    one Post, its first image. See the module docstring for how fields are filled.
    """

    def __init__(self, root: str | Path, include_sidecars: bool = False) -> None:
        self.root = root
        self.include_sidecars = bool(include_sidecars)

    # ------------------------------------------------------------------ folders

    def _root(self) -> Path:
        root = Path(str(self.root)).expanduser()
        if not root.exists():
            raise SourceError(
                f"instaloader root {root} does not exist. Set data.root to the folder in which "
                "instaloader wrote its target folders (e.g. the one holding natgeo/ and "
                "'#rockclimbing/'), or to one target folder."
            )
        if not root.is_dir():
            raise SourceError(
                f"instaloader root {root} is a file, not a folder. Set data.root to the folder "
                "holding instaloader's target folders, or to one target folder."
            )
        return root.resolve()

    def _targets(self, root: Path, skipped: list[Skipped]) -> list[Path]:
        """``[root]`` if it holds post files itself, else its subfolders that do.

        A folder is a target when one of its metadata files is an instaloader Post
        (:func:`~mmembed.data.sources.instaloader_layout.is_post_file`). Other JSON files in a
        root of targets are reported as skipped, as are subfolders with images but no post
        metadata.
        """
        if has_posts(root):
            return [root]
        for path in metadata_files(root):
            skipped.append(
                Skipped(
                    str(path),
                    (
                        "not a post file: no instaloader Post in it "
                        "(a session, resume or notes file?); "
                        "ignored"
                    ),
                )
            )
        targets = []
        for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if has_posts(child):
                targets.append(child)
            elif metadata_files(child):
                skipped.append(
                    Skipped(
                        str(child),
                        (
                            "no post metadata: its *.json(.xz) files hold no instaloader Post "
                            "(corrupt, "
                            "or session and notes files only)"
                        ),
                    )
                )
            elif any(p.suffix.lower() in IMAGE_SUFFIXES for p in child.iterdir() if p.is_file()):
                skipped.append(
                    Skipped(
                        str(child),
                        "no metadata: images without *.json.xz files; rerun instaloader without "
                        "--no-metadata-json",
                    )
                )
        if not targets:
            raise SourceError(
                f"no instaloader post metadata (*.json.xz) in {root} or its subfolders. Point "
                "data.root at the folder holding instaloader's target folders (natgeo/, "
                "'#rockclimbing/', ...), or at one of them, and run instaloader without "
                "--no-metadata-json."
            )
        return targets

    # ------------------------------------------------------------------ loading

    def load(self) -> Corpus:
        """Read every target folder under ``root``; see the class and module docstrings."""
        root = self._root()
        skipped: list[Skipped] = []
        targets = self._targets(root, skipped)
        posts: list[Post] = []
        seen: dict[str, str] = {}  # shortcode -> target where it was first loaded
        videos = duplicates = 0
        context = OfflineContext()
        try:
            for target in targets:
                folder = TargetFolder.scan(target)
                for json_path, structure, profiles in self._read_target(target, context, skipped):
                    item = str(json_path)
                    try:
                        shortcode, new_posts = self._posts_of(
                            json_path, structure, target, profiles, folder
                        )
                    except _Skip as skip:
                        videos += skip.video
                        skipped.append(Skipped(item, skip.reason))
                        continue
                    if shortcode in seen:
                        duplicates += 1
                        skipped.append(
                            Skipped(
                                item,
                                f"duplicate: post {shortcode} was already loaded from target "
                                f"{seen[shortcode]!r}",
                            )
                        )
                        continue
                    seen[shortcode] = target.name
                    posts.extend(new_posts)
        finally:
            context.close()
        counts = {"targets": len(targets), "videos_skipped": videos}
        if duplicates:
            counts["duplicates_skipped"] = duplicates
        return Corpus(posts=posts, skipped=skipped, counts=counts, name=f"instaloader:{root.name}")

    def _read_target(self, target: Path, context: OfflineContext, skipped: list[Skipped]):
        """Load the target's structures; yield ``(path, Post structure, profiles)``.

        Profiles are read first so every post can find its owner's follower count.
        """
        posts: list[tuple[Path, instaloader.Post]] = []
        profiles: list[_ProfileInfo] = []
        for path in metadata_files(target):
            try:
                structure = instaloader.load_structure_from_file(context, str(path))
            except OfflineError:
                # instaloader v3 files hold only a shortcode and are resolved by a fetch.
                skipped.append(
                    Skipped(
                        str(path),
                        (
                            f"missing field: node (the metadata in {path.name} is only a "
                            "shortcode, an "
                            "instaloader v3 file that needs a fetch; this loader is offline)"
                        ),
                    )
                )
                continue
            except AssertionError:
                skipped.append(
                    Skipped(
                        str(path),
                        (
                            f"corrupt metadata: {path.name}: instaloader rejected the node "
                            "(a Post needs "
                            "'shortcode', a Profile 'username' and 'id')"
                        ),
                    )
                )
                continue
            except (
                OSError,
                EOFError,
                lzma.LZMAError,
                ValueError,
                TypeError,
                AttributeError,
                instaloader.InstaloaderException,
            ) as exc:
                skipped.append(
                    Skipped(
                        str(path), f"corrupt metadata: {path.name}: {type(exc).__name__}: {exc}"
                    )
                )
                continue
            if isinstance(structure, instaloader.Post):
                posts.append((path, structure))
            elif isinstance(structure, instaloader.Profile):
                profiles.append(
                    _ProfileInfo(
                        username=optional_field(structure, "username"),
                        userid=optional_field(structure, "userid"),
                        followers=optional_field(structure, "followers"),
                    )
                )
            elif isinstance(structure, instaloader.Hashtag):
                continue  # describes a hashtag target itself; nothing to train on
            else:
                skipped.append(
                    Skipped(
                        str(path), f"not a post: {type(structure).__name__} metadata is not used"
                    )
                )
        for path, post in posts:
            yield path, post, profiles

    def _posts_of(
        self,
        json_path: Path,
        post: instaloader.Post,
        target: Path,
        profiles: list[_ProfileInfo],
        folder: TargetFolder,
    ) -> tuple[str, list[Post]]:
        """Turn one instaloader Post into mmembed Posts, or raise :class:`_Skip`."""
        stem = metadata_stem(json_path)
        shortcode = str(optional_field(post, "shortcode", stem))

        typename = optional_field(post, "typename")
        is_video = optional_field(post, "is_video", False)
        if is_video or typename == "GraphVideo" or folder.has(f"{stem}.mp4"):
            kind = typename or ("is_video" if is_video else f"{stem}.mp4 beside it")
            raise _Skip(f"video: {shortcode} ({kind}); only photos are used", video=True)

        try:
            likes = get_field(post, "likes")
            comments = get_field(post, "comments")
        except FieldUnavailable as missing:
            raise _Skip(missing.reason) from None

        main = folder.image(stem)
        if main is not None:
            images = [(0, main)]
        else:
            images = folder.sidecar_images(stem)
            if not images:
                if folder.numbered.get(stem):
                    raise _Skip(f"video: {shortcode} (every carousel item is a video)", video=True)
                raise _Skip(
                    f"missing image: neither {stem}.jpg nor {stem}_1.jpg is in {folder.path}"
                )
            if not self.include_sidecars:
                images = images[:1]

        caption = optional_field(post, "caption")
        if caption is not None:
            hashtags = list(dict.fromkeys(optional_field(post, "caption_hashtags", [])))
            mentions = list(dict.fromkeys(optional_field(post, "caption_mentions", [])))
        else:  # no caption in the node: the .txt beside it; make_post parses tags from it
            caption = folder.caption(stem)
            hashtags, mentions = [], []

        date = optional_field(post, "date_utc")
        timestamp = (
            date.replace(tzinfo=UTC).isoformat()
            if isinstance(date, datetime)
            else stem_timestamp(stem)
        )

        owner = _owner_username(post)
        owner_id = optional_field(post, "owner_id")
        profile_target = is_profile_target(target.name)
        profile = _match_profile(
            profiles, owner_id, owner, target.name if profile_target and owner is None else None
        )
        account = owner or (profile.username if profile and profile.username else None)
        if account is None:
            account = target.name if profile_target else ""
        followers = profile.followers if profile else None
        if followers is None:
            followers = _embedded_followers(post)

        record: dict[str, Any] = {
            "caption": caption,
            "hashtags": hashtags,
            "mentions": mentions,
            "likes": likes,
            "comments": comments,
            "followers": followers,
            "account": account,
            "timestamp": timestamp,
            "source": target.name,
        }
        out = []
        for n, image in images:
            post_id = f"{shortcode}_{n}" if self.include_sidecars and n else shortcode
            try:
                out.append(
                    make_post(
                        {**record, "post_id": post_id, "image_path": str(image)},
                        where=str(json_path),
                    )
                )
            except PostError as exc:
                raise _Skip(f"invalid post: {exc.detail}") from None
        return shortcode, out


def _owner_username(post: instaloader.Post) -> str | None:
    """The owner's username if the saved node has it (``Post.owner_username`` would otherwise
    fetch the full post)."""
    name = optional_field(post, "owner_username")
    return str(name).lower() if name else None


def _embedded_followers(post: instaloader.Post) -> int | None:
    """Followers from the owner profile instaloader embeds in posts saved from a profile."""
    owner = optional_field(post, "owner_profile")
    return optional_field(owner, "followers") if owner is not None else None


def _match_profile(
    profiles: list[_ProfileInfo], owner_id: Any, owner: str | None, folder_name: str | None
) -> _ProfileInfo | None:
    """The folder's profile file for this post's owner: by id, then username, then (for a profile
    target whose owner the node does not name) the folder's own name."""
    if owner_id is not None:
        try:
            owner_id = int(owner_id)
        except (TypeError, ValueError):
            owner_id = None
    for key, value in (
        ("userid", owner_id),
        ("username", owner),
        ("username", folder_name.lower() if folder_name else None),
    ):
        if value is None:
            continue
        for profile in profiles:
            if getattr(profile, key) is not None and getattr(profile, key) == value:
                return profile
    return None
