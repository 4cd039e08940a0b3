"""Posts from folders written by instaloader (https://instaloader.github.io).

instaloader writes one folder per *target*: a profile (``natgeo/``) or a hashtag
(``#rockclimbing/``). Each post is a group of files that share a stem, by default the post's UTC
date::

    natgeo/2024-05-01_12-30-00_UTC.jpg        the image (or the video's thumbnail)
    natgeo/2024-05-01_12-30-00_UTC_1.jpg      ..._1, _2, ...: the images of a carousel (sidecar)
    natgeo/2024-05-01_12-30-00_UTC.mp4        a video, beside its thumbnail
    natgeo/2024-05-01_12-30-00_UTC.txt        the caption
    natgeo/2024-05-01_12-30-00_UTC.json.xz    the metadata, {"node": ..., "instaloader": ...}
    natgeo/natgeo_787132.json.xz              the profile (node_type "Profile"): follower count

The metadata is read with instaloader's own :func:`instaloader.load_structure_from_file` and its
``Post``/``Profile`` properties, so the many node layouts Instagram has used over the years are
instaloader's problem, not a hand-written GraphQL parser's.

Those properties fetch whatever the saved node lacks from Instagram. A loader of training data
must never do that (it would hang on rate limits, need a login, and make a corpus depend on the
day it was read), so the structures are bound to an :class:`OfflineContext` whose every request
method raises :class:`OfflineError` at once. A post whose required field (likes, comments) is not
in the saved node is then reported as skipped, naming the field.

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

import json
import lzma
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import instaloader  # the PyPI package: absolute imports never resolve to this module
import requests

from mmembed.data.images import IMAGE_SUFFIXES
from mmembed.data.post import Corpus, Post, PostError, Skipped, make_post
from mmembed.data.sources import SourceError

__all__ = ["InstaloaderSource", "OfflineContext", "OfflineError", "NETWORK_METHODS"]


class OfflineError(RuntimeError):
    """instaloader tried to reach Instagram while reading saved folders.

    Deliberately not an ``InstaloaderException`` nor a ``requests`` exception: instaloader catches
    and retries or logs those, and this must surface at once, untouched.
    """


#: Every :class:`instaloader.InstaloaderContext` method that sends a request, logs in, or builds a
#: real HTTP session. :class:`OfflineContext` replaces each with one that raises
#: :class:`OfflineError`. ``tests/test_instaloader_source.py`` checks this list against the
#: installed instaloader, so a new request method in a future version is noticed.
NETWORK_METHODS: tuple[str, ...] = (
    "test_login",
    "login",
    "two_factor_login",
    "load_session",
    "load_session_from_file",
    "do_sleep",
    "_follow_redirects",
    "get_json",
    "_graphql_session",
    "_csrf_token",
    "_web_api_tokens",
    "graphql_query",
    "doc_id_graphql_query",
    "graphql_node_list",
    "get_iphone_json",
    "_get_page",
    "get_page_data",
    "get_raw",
    "get_and_write_raw",
    "head",
)


class _OfflineSession(requests.Session):
    """A ``requests.Session`` that refuses every request: the backstop should a request method
    that :data:`NETWORK_METHODS` misses reach the session directly."""

    def request(self, method, url, *args, **kwargs):  # noqa: D102 - see class docstring
        raise OfflineError(f"refused {method} {url}: the instaloader source reads saved files only")

    def send(self, request, **kwargs):  # noqa: D102
        raise OfflineError(
            f"refused {request.method} {request.url}: the instaloader source reads saved files only"
        )


def _refuse(name: str):
    def refused(self, *args, **kwargs):
        raise OfflineError(
            f"InstaloaderContext.{name}() would contact Instagram; the instaloader source reads "
            "saved files only"
        )

    refused.__name__ = refused.__qualname__ = name
    refused.__doc__ = f"Raise :class:`OfflineError` instead of ``InstaloaderContext.{name}``."
    return refused


class OfflineContext(instaloader.InstaloaderContext):
    """An instaloader context that never touches the network.

    Structures loaded with it behave as usual for everything in the saved node; anything that
    would need a fetch raises :class:`OfflineError` immediately (no retries, no rate-limit sleep).
    """

    def __init__(self) -> None:
        super().__init__(sleep=False, quiet=True, max_connection_attempts=1, iphone_support=False)

    def get_anonymous_session(self) -> requests.Session:
        return _OfflineSession()


for _name in NETWORK_METHODS:
    setattr(OfflineContext, _name, _refuse(_name))
del _name


class _Unavailable(Exception):
    """A field that the saved node lacks (and that would need a fetch to get)."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(name, detail)
        self.name = name
        self.detail = detail

    @property
    def reason(self) -> str:
        return f"missing field: {self.name} ({self.detail})"


#: What a property of an instaloader structure raises when the saved node lacks the data.
_FIELD_ERRORS = (
    KeyError, TypeError, ValueError, AttributeError, IndexError, AssertionError, ArithmeticError,
    OSError, instaloader.InstaloaderException,
)


def _get(structure: Any, name: str) -> Any:
    """Read property ``name`` of an instaloader structure, or raise :class:`_Unavailable`."""
    try:
        return getattr(structure, name)
    except OfflineError:
        raise _Unavailable(
            name, "not in the saved metadata; instaloader would fetch it from Instagram, and this "
            "loader is offline"
        ) from None
    except _FIELD_ERRORS as exc:
        detail = f"not in the saved metadata: {type(exc).__name__}: {exc}"
        raise _Unavailable(name, detail) from None


def _optional(structure: Any, name: str, default: Any = None) -> Any:
    """Like :func:`_get`, but ``default`` when the field is unavailable offline."""
    try:
        value = _get(structure, name)
    except _Unavailable:
        return default
    return default if value is None else value


_STEM_DATE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})")
_NUMBERED_RE = re.compile(r"^(?P<base>.+)_(?P<n>\d+)\.(?P<ext>[A-Za-z0-9]+)$")
_PROFILE_TARGET_RE = re.compile(r"[\w.]+")  # instagram usernames; '#tag', ':feed', '%loc' are not


def _metadata_stem(path: Path) -> str:
    name = path.name
    return name[: -len(".json.xz")] if name.endswith(".json.xz") else name[: -len(".json")]


def _metadata_files(folder: Path) -> list[Path]:
    """The instaloader metadata files in ``folder`` (``.json.xz``, or ``.json`` as written with
    ``--no-compress-json``; comment dumps ``*_comments.json`` are not structures)."""
    try:
        children = list(folder.iterdir())
    except OSError:
        return []
    return sorted(
        p for p in children
        if p.is_file() and not p.name.startswith(".")
        and (p.name.endswith(".json.xz")
             or (p.name.endswith(".json") and not p.name.endswith("_comments.json")))
    )


def _is_post_file(path: Path) -> bool:
    """Whether ``path`` holds an instaloader Post: ``{"node": ..., "instaloader": {"node_type":
    "Post"}}`` as ``save_structure_to_file`` writes it, or the bare shortcode of instaloader v3.

    Targets are recognised by these files, not by "any JSON here": a session, resume or notes
    file beside the target folders must not turn the root into the only target.
    """
    try:
        opener = lzma.open if path.name.endswith(".xz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, EOFError, lzma.LZMAError, ValueError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    meta = data.get("instaloader")
    if isinstance(meta, dict) and "node" in data:
        return meta.get("node_type") == "Post"
    return "node" not in data and isinstance(data.get("shortcode"), str)


def _has_posts(folder: Path) -> bool:
    return any(_is_post_file(p) for p in _metadata_files(folder))


def _stem_timestamp(stem: str) -> str:
    """ISO UTC time from instaloader's default file stem, for nodes without a date."""
    match = _STEM_DATE_RE.match(stem)
    if not match:
        return ""
    try:
        when = datetime.strptime(match.group(1), "%Y-%m-%d_%H-%M-%S")
    except ValueError:
        return ""
    return when.replace(tzinfo=UTC).isoformat()


@dataclass
class _Folder:
    """One target folder's file names, listed once (existence checks stay O(1) per post)."""

    path: Path
    names: set[str]
    numbered: dict[str, list[tuple[int, str]]]  # stem -> [(n, file name)] for <stem>_<n>.<ext>

    @classmethod
    def scan(cls, path: Path) -> _Folder:
        names = {p.name for p in path.iterdir() if p.is_file()}
        numbered: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for name in names:
            match = _NUMBERED_RE.match(name)
            if match:
                numbered[match["base"]].append((int(match["n"]), name))
        for items in numbered.values():
            items.sort()
        return cls(path, names, dict(numbered))

    def image(self, stem: str) -> Path | None:
        """``<stem>.jpg`` (or another image suffix), if present."""
        for suffix in (".jpg", *sorted(IMAGE_SUFFIXES - {".jpg"})):
            if stem + suffix in self.names:
                return self.path / (stem + suffix)
        return None

    def sidecar_images(self, stem: str) -> list[tuple[int, Path]]:
        """The carousel's images ``<stem>_<n>.<ext>`` in order, leaving out the video items
        (those whose ``<stem>_<n>.mp4`` exists: their ``.jpg`` is only a thumbnail)."""
        found = []
        for n, name in self.numbered.get(stem, []):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES and f"{stem}_{n}.mp4" not in self.names:
                found.append((n, self.path / name))
        return found

    def has(self, name: str) -> bool:
        return name in self.names


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
        (:func:`_is_post_file`). Other JSON files in a root of targets are reported as skipped,
        as are subfolders with images but no post metadata.
        """
        if _has_posts(root):
            return [root]
        for path in _metadata_files(root):
            skipped.append(Skipped(str(path), (
                "not a post file: no instaloader Post in it (a session, resume or notes file?); "
                "ignored")))
        targets = []
        for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if _has_posts(child):
                targets.append(child)
            elif _metadata_files(child):
                skipped.append(Skipped(str(child), (
                    "no post metadata: its *.json(.xz) files hold no instaloader Post (corrupt, "
                    "or session and notes files only)")))
            elif any(p.suffix.lower() in IMAGE_SUFFIXES for p in child.iterdir() if p.is_file()):
                skipped.append(Skipped(
                    str(child),
                    "no metadata: images without *.json.xz files; rerun instaloader without "
                    "--no-metadata-json",
                ))
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
                folder = _Folder.scan(target)
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
                        skipped.append(Skipped(
                            item, f"duplicate: post {shortcode} was already loaded from target "
                            f"{seen[shortcode]!r}"
                        ))
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
        for path in _metadata_files(target):
            try:
                structure = instaloader.load_structure_from_file(context, str(path))
            except OfflineError:
                # instaloader v3 files hold only a shortcode and are resolved by a fetch.
                skipped.append(Skipped(str(path), (
                    f"missing field: node (the metadata in {path.name} is only a shortcode, an "
                    "instaloader v3 file that needs a fetch; this loader is offline)"
                )))
                continue
            except AssertionError:
                skipped.append(Skipped(str(path), (
                    f"corrupt metadata: {path.name}: instaloader rejected the node (a Post needs "
                    "'shortcode', a Profile 'username' and 'id')"
                )))
                continue
            except (OSError, EOFError, lzma.LZMAError, ValueError, TypeError, AttributeError,
                    instaloader.InstaloaderException) as exc:
                skipped.append(Skipped(
                    str(path), f"corrupt metadata: {path.name}: {type(exc).__name__}: {exc}"
                ))
                continue
            if isinstance(structure, instaloader.Post):
                posts.append((path, structure))
            elif isinstance(structure, instaloader.Profile):
                profiles.append(_ProfileInfo(
                    username=_optional(structure, "username"),
                    userid=_optional(structure, "userid"),
                    followers=_optional(structure, "followers"),
                ))
            elif isinstance(structure, instaloader.Hashtag):
                continue  # describes a hashtag target itself; nothing to train on
            else:
                skipped.append(Skipped(
                    str(path), f"not a post: {type(structure).__name__} metadata is not used"
                ))
        for path, post in posts:
            yield path, post, profiles

    def _posts_of(
        self,
        json_path: Path,
        post: instaloader.Post,
        target: Path,
        profiles: list[_ProfileInfo],
        folder: _Folder,
    ) -> tuple[str, list[Post]]:
        """Turn one instaloader Post into mmembed Posts, or raise :class:`_Skip`."""
        stem = _metadata_stem(json_path)
        shortcode = str(_optional(post, "shortcode", stem))

        typename = _optional(post, "typename")
        is_video = _optional(post, "is_video", False)
        if is_video or typename == "GraphVideo" or folder.has(f"{stem}.mp4"):
            kind = typename or ("is_video" if is_video else f"{stem}.mp4 beside it")
            raise _Skip(f"video: {shortcode} ({kind}); only photos are used", video=True)

        try:
            likes = _get(post, "likes")
            comments = _get(post, "comments")
        except _Unavailable as missing:
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

        caption = _optional(post, "caption")
        if caption is not None:
            hashtags = list(dict.fromkeys(_optional(post, "caption_hashtags", [])))
            mentions = list(dict.fromkeys(_optional(post, "caption_mentions", [])))
        else:  # no caption in the node: the .txt beside it; make_post parses tags from it
            caption = _read_caption(folder, stem)
            hashtags, mentions = [], []

        date = _optional(post, "date_utc")
        timestamp = (date.replace(tzinfo=UTC).isoformat() if isinstance(date, datetime)
                     else _stem_timestamp(stem))

        owner = _owner_username(post)
        owner_id = _optional(post, "owner_id")
        profile_target = _PROFILE_TARGET_RE.fullmatch(target.name) is not None
        profile = _match_profile(profiles, owner_id, owner,
                                 target.name if profile_target and owner is None else None)
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
                out.append(make_post(
                    {**record, "post_id": post_id, "image_path": str(image)}, where=str(json_path)
                ))
            except PostError as exc:
                raise _Skip(f"invalid post: {exc.detail}") from None
        return shortcode, out


def _read_caption(folder: _Folder, stem: str) -> str:
    if not folder.has(f"{stem}.txt"):
        return ""
    try:
        text = (folder.path / f"{stem}.txt").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text.rstrip("\r\n")


def _owner_username(post: instaloader.Post) -> str | None:
    """The owner's username if the saved node has it (``Post.owner_username`` would otherwise
    fetch the full post)."""
    name = _optional(post, "owner_username")
    return str(name).lower() if name else None


def _embedded_followers(post: instaloader.Post) -> int | None:
    """Followers from the owner profile instaloader embeds in posts saved from a profile."""
    owner = _optional(post, "owner_profile")
    return _optional(owner, "followers") if owner is not None else None


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
    for key, value in (("userid", owner_id), ("username", owner),
                       ("username", folder_name.lower() if folder_name else None)):
        if value is None:
            continue
        for profile in profiles:
            if getattr(profile, key) is not None and getattr(profile, key) == value:
                return profile
    return None
