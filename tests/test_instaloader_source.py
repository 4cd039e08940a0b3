"""InstaloaderSource on folder trees written with instaloader's own structures and file naming.

The fixtures build ``instaloader.Post``/``instaloader.Profile`` objects from GraphQL-style nodes,
name their files with ``Instaloader.format_filename`` and save them with
``instaloader.save_structure_to_file``, so the loader is tested against what instaloader really
writes, not against a format guessed a second time in the test.

Every test runs with the network blocked (sockets and requests' adapter raise a BaseException that
no ``except Exception`` in instaloader can swallow) and asserts that nothing tried to connect.
"""

from __future__ import annotations

import inspect
import lzma
import math
import re
import socket
import time
import zlib
from pathlib import Path

import instaloader
import numpy as np
import pytest
import requests
from PIL import Image

from mmembed.data.post import engagement
from mmembed.data.sources import SourceError
from mmembed.data.sources import instaloader as source_module
from mmembed.data.sources.instaloader import InstaloaderSource
from mmembed.data.sources.instaloader_offline import NETWORK_METHODS, OfflineContext, OfflineError

TS = 1714566600  # 2024-05-01 12:30:00 UTC
PROFILE_ID = "787132"
FOLLOWERS = 50_000


class NetworkAttempt(BaseException):
    """Raised by the network guard; a BaseException so library code cannot swallow it."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Fail loudly on any attempt to open a connection; yield the list of attempts."""
    attempts: list[str] = []

    def guard(name):
        def refuse(*args, **kwargs):
            attempts.append(name)
            raise NetworkAttempt(name)

        return refuse

    monkeypatch.setattr(socket.socket, "connect", guard("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", guard("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", guard("socket.getaddrinfo"))
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", guard("HTTPAdapter.send"))
    yield attempts
    assert attempts == [], f"network access attempted: {attempts}"


# ---------------------------------------------------------------------------------------- fixtures

WRITER_CONTEXT = instaloader.InstaloaderContext(sleep=False, quiet=True)
LOADER = instaloader.Instaloader(quiet=True, sleep=False)


def post_node(shortcode, ts, caption, *, likes=10, comments=2, owner=None, typename="GraphImage",
              is_video=False, children=None, drop=()):
    """A GraphQL post node as instaloader saves it; ``drop`` removes fields."""
    node = {
        "__typename": typename,
        "id": str(zlib.crc32(shortcode.encode())),  # hash() is salted per process
        "shortcode": shortcode,
        "is_video": is_video,
        "taken_at_timestamp": ts,
        "display_url": f"https://example.invalid/{shortcode}.jpg",
        "edge_media_to_caption": {"edges": [{"node": {"text": caption}}]} if caption else
        {"edges": []},
        "edge_media_preview_like": {"count": likes},
        "edge_media_to_comment": {"count": comments},
        "owner": owner if owner is not None else {"id": PROFILE_ID, "username": "natgeo"},
    }
    if children is not None:
        node["edge_sidecar_to_children"] = {"edges": [
            {"node": {"is_video": v, "display_url": f"https://example.invalid/{shortcode}_{i}.jpg"}}
            for i, v in enumerate(children, 1)
        ]}
    for key in drop:
        node.pop(key)
    return node


def write_jpeg(path: Path, colour=(200, 80, 40)) -> None:
    Image.new("RGB", (8, 8), colour).save(path, "JPEG")


def write_post(folder: Path, node: dict, *, images=("",), mp4=(), caption_txt=True) -> str:
    """Save a post the way instaloader lays it out; return the file stem."""
    folder.mkdir(parents=True, exist_ok=True)
    post = instaloader.Post(WRITER_CONTEXT, node)
    stem = LOADER.format_filename(post, target=folder.name)
    instaloader.save_structure_to_file(post, str(folder / f"{stem}.json.xz"))
    for suffix in images:
        write_jpeg(folder / f"{stem}{suffix}.jpg")
    for suffix in mp4:
        (folder / f"{stem}{suffix}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    if caption_txt and post.caption:
        (folder / f"{stem}.txt").write_text(post.caption + "\n", encoding="utf-8")
    return stem


def write_profile(folder: Path, username="natgeo", userid=PROFILE_ID, followers=FOLLOWERS) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    profile = instaloader.Profile(WRITER_CONTEXT, {
        "id": userid, "username": username, "full_name": username.title(), "is_private": False,
        "edge_followed_by": {"count": followers}, "edge_follow": {"count": 12},
    })
    instaloader.save_structure_to_file(profile, str(folder / f"{username}_{userid}.json.xz"))


@pytest.fixture
def tree(tmp_path) -> Path:
    """A root with a profile target ``natgeo`` and a hashtag target ``#climbing``."""
    root = tmp_path / "downloads"
    natgeo = root / "natgeo"
    write_profile(natgeo)
    caption = "Sunset at the crag #Travel #nature #travel @Friend.1"
    write_post(natgeo, post_node("PHOTO1", TS, caption, likes=120, comments=8))
    write_post(natgeo, post_node("CAROUSEL", TS + 60, "Three views #alps", typename="GraphSidecar",
                                 children=[False, False, True]),
               images=("_1", "_2", "_3"), mp4=("_3",))
    write_post(natgeo, post_node("VIDEO1", TS + 120, "A clip #alps", typename="GraphVideo",
                                 is_video=True), mp4=("",))
    write_post(natgeo, post_node("NOLIKES", TS + 180, "Hidden like count",
                                 drop=("edge_media_preview_like",)))
    write_post(natgeo, post_node("NOIMAGE", TS + 240, "Image never downloaded"), images=())

    climbing = root / "#climbing"
    write_post(climbing, post_node("HT1", TS + 300, "Send it #climbing #boulder",
                                   likes=40, comments=1, owner={"id": "111", "username": "alice"}))
    write_post(climbing, post_node("HT2", TS + 360, "#climbing at dawn", likes=3, comments=0,
                                   owner={"id": "222"}))
    write_post(climbing, post_node("HT3", TS + 420, "#climbing #crag", likes=900, comments=50,
                                   owner={"id": "333", "username": "bob"}))
    return root


def by_id(corpus):
    return {p.post_id: p for p in corpus.posts}


def reasons(corpus):
    return {Path(s.item).name: s.reason for s in corpus.skipped}


# ------------------------------------------------------------------------------------------- tests

def test_module_uses_the_pypi_instaloader():
    assert source_module.instaloader is instaloader
    assert "site-packages" in instaloader.__file__ or "dist-packages" in instaloader.__file__


def test_profile_target_posts_get_followers_account_and_fields(tree):
    corpus = InstaloaderSource(tree).load()
    post = by_id(corpus)["PHOTO1"]
    assert post.source == "natgeo"
    assert post.account == "natgeo"
    assert post.followers == FOLLOWERS
    assert (post.likes, post.comments) == (120, 8)
    assert post.caption.startswith("Sunset at the crag")
    assert post.hashtags == ["travel", "nature"]  # lower-cased, deduplicated, in order
    assert post.mentions == ["friend.1"]
    assert post.timestamp == "2024-05-01T12:30:00+00:00"
    assert post.image_path == str(tree.resolve() / "natgeo" / "2024-05-01_12-30-00_UTC.jpg")
    assert Path(post.image_path).is_file()
    assert corpus.counts["targets"] == 2


def test_hashtag_target_has_unknown_followers_and_hashtag_source(tree):
    posts = by_id(InstaloaderSource(tree).load())
    hashtag_posts = [posts[k] for k in ("HT1", "HT2", "HT3")]
    assert all(p.source == "#climbing" for p in hashtag_posts)
    assert all(p.followers is None for p in hashtag_posts)
    assert posts["HT1"].account == "alice"
    assert posts["HT2"].account == ""  # owner not named in the saved node: unknown, not guessed
    assert posts["HT1"].hashtags == ["climbing", "boulder"]


def test_engagement_fallback_is_finite_for_hashtag_posts(tree):
    posts = InstaloaderSource(tree).load().posts
    values = engagement(posts)
    assert np.isfinite(values).all()
    ht = [v for p, v in zip(posts, values) if p.source == "#climbing"]
    assert len(ht) == 3 and len(set(ht)) == 3  # per-source normalisation keeps their order


def test_sidecar_uses_first_image(tree):
    posts = by_id(InstaloaderSource(tree).load())
    carousel = posts["CAROUSEL"]
    assert carousel.image_path.endswith("2024-05-01_12-31-00_UTC_1.jpg")
    assert not any(k.startswith("CAROUSEL_") for k in posts)


def test_include_sidecars_gives_one_post_per_image_without_video_items(tree):
    posts = by_id(InstaloaderSource(tree, include_sidecars=True).load())
    assert {k for k in posts if k.startswith("CAROUSEL")} == {"CAROUSEL_1", "CAROUSEL_2"}
    assert posts["CAROUSEL_2"].image_path.endswith("_UTC_2.jpg")
    assert posts["CAROUSEL_2"].hashtags == ["alps"]
    assert "PHOTO1" in posts  # single-image posts keep the plain shortcode


def test_video_is_skipped_and_counted(tree):
    corpus = InstaloaderSource(tree).load()
    assert "VIDEO1" not in by_id(corpus)
    assert corpus.counts["videos_skipped"] == 1
    video = [s for s in corpus.skipped if s.reason.startswith("video:")]
    assert len(video) == 1 and "VIDEO1" in video[0].reason
    assert corpus.summary()["videos_skipped"] == 1


def test_a_mp4_beside_the_post_marks_a_video_even_if_the_node_says_image(tmp_path):
    folder = tmp_path / "natgeo"
    write_profile(folder)
    write_post(folder, post_node("REEL", TS, "reel"), mp4=("",))
    write_post(folder, post_node("PIC", TS + 1, "pic"))
    corpus = InstaloaderSource(folder).load()
    assert list(by_id(corpus)) == ["PIC"]
    assert corpus.counts["videos_skipped"] == 1


def test_instaloader_would_fetch_a_missing_field(no_network):
    """Guard the premise of the next test: with an ordinary context, instaloader goes online."""
    context = instaloader.InstaloaderContext(sleep=False, quiet=True, max_connection_attempts=1)
    node = post_node("NOLIKES", TS, "x", drop=("edge_media_preview_like",))
    post = instaloader.Post(context, node)
    with pytest.raises(NetworkAttempt):
        _ = post.likes
    assert no_network  # it did try
    no_network.clear()


def test_missing_field_is_skipped_offline_and_fast(tree, no_network):
    start = time.perf_counter()
    corpus = InstaloaderSource(tree).load()
    elapsed = time.perf_counter() - start
    assert "NOLIKES" not in by_id(corpus)
    reason = reasons(corpus)["2024-05-01_12-33-00_UTC.json.xz"]
    assert reason.startswith("missing field: likes")
    assert "offline" in reason
    assert no_network == []
    assert elapsed < 10, f"load took {elapsed:.1f}s; something waited on the network"


def test_offline_context_refuses_every_request_at_once():
    context = OfflineContext()
    for name in NETWORK_METHODS:
        with pytest.raises(OfflineError):
            getattr(context, name)("x", {})
    with pytest.raises(OfflineError):
        context.get_anonymous_session().post("https://www.instagram.com/")


def test_a_request_method_missing_from_network_methods_is_still_refused():
    """The backstop: a request method that NETWORK_METHODS misses (here instaloader's own
    get_json and do_sleep, put back) sends through the context's session, which refuses it."""

    class Missed(OfflineContext):
        do_sleep = instaloader.InstaloaderContext.do_sleep
        get_json = instaloader.InstaloaderContext.get_json

    with pytest.raises(OfflineError, match=r"refused GET https://www\.instagram\.com/x"):
        Missed().get_json("x", {})


#: InstaloaderContext methods that mention sessions/requests but only touch local objects.
LOCAL_METHODS = {
    "__init__", "anonymous_copy", "user_id", "close", "_default_http_header",
    "get_anonymous_session", "save_session", "update_cookies", "save_session_to_file",
    "_response_error", "_rate_limit_key", "_raise_if_login_redirect", "write_raw",
}
NETWORK_HINT = re.compile(
    r"session|requests\.|get_json\(|graphql|_get_page\(|get_raw\(|\.head\(|sleep\("
)


def test_network_methods_cover_the_installed_instaloader():
    """A request method added in a newer instaloader must be added to NETWORK_METHODS."""
    uncovered = []
    for name, member in vars(instaloader.InstaloaderContext).items():
        func = member.fget if isinstance(member, property) else member
        func = getattr(func, "__func__", func)
        if not inspect.isfunction(func) or name in LOCAL_METHODS or name in NETWORK_METHODS:
            continue
        body = re.sub(r'"""[\s\S]*?"""', "", inspect.getsource(func).split("\n", 1)[1])
        if NETWORK_HINT.search(body):
            uncovered.append(name)
    assert uncovered == []
    assert all(hasattr(instaloader.InstaloaderContext, n) for n in NETWORK_METHODS)


def test_missing_image_is_skipped(tree):
    corpus = InstaloaderSource(tree).load()
    assert "NOIMAGE" not in by_id(corpus)
    assert reasons(corpus)["2024-05-01_12-34-00_UTC.json.xz"].startswith("missing image:")


def test_corrupt_metadata_is_skipped_and_named(tree):
    folder = tree / "#climbing"
    (folder / "2024-06-01_00-00-00_UTC.json.xz").write_bytes(b"this is not xz")
    write_jpeg(folder / "2024-06-01_00-00-00_UTC.jpg")
    with lzma.open(folder / "2024-06-02_00-00-00_UTC.json.xz", "wt") as fp:
        fp.write('{"node": {"shortcode": ')  # truncated JSON inside valid xz
    corpus = InstaloaderSource(tree).load()
    got = reasons(corpus)
    for name in ("2024-06-01_00-00-00_UTC.json.xz", "2024-06-02_00-00-00_UTC.json.xz"):
        assert got[name].startswith("corrupt metadata:") and name in got[name]
    assert {"HT1", "HT2", "HT3"} <= set(by_id(corpus))  # the rest of the folder still loads


def test_single_target_root(tree):
    corpus = InstaloaderSource(tree / "#climbing").load()
    assert {p.source for p in corpus.posts} == {"#climbing"}
    assert len(corpus.posts) == 3


def test_stray_json_in_the_root_does_not_hide_the_targets(tree):
    (tree / "session-alice.json").write_text('{"sessionid": "x"}')
    (tree / "notes.json").write_text('["shoot list"]')
    with lzma.open(tree / "resume_info.json.xz", "wt") as fp:
        fp.write('{"node": {}, "instaloader": {"node_type": "FrozenNodeIterator"}}')
    corpus = InstaloaderSource(tree).load()
    assert {"PHOTO1", "CAROUSEL", "HT1", "HT2", "HT3"} <= set(by_id(corpus))
    assert corpus.counts["targets"] == 2
    for name in ("session-alice.json", "notes.json", "resume_info.json.xz"):
        assert reasons(corpus)[name].startswith("not a post file"), name
    (tree / "#climbing" / "notes.json").write_text("{}")  # inside a target: reported, not fatal
    assert reasons(InstaloaderSource(tree / "#climbing").load())["notes.json"]


def test_caption_falls_back_to_txt_and_date_to_file_name(tmp_path):
    folder = tmp_path / "natgeo"
    write_profile(folder)
    stem = write_post(folder, post_node("NOCAP", TS, None))
    (folder / f"{stem}.txt").write_text("From the txt #Fallback @someone\n", encoding="utf-8")
    post = by_id(InstaloaderSource(tmp_path).load())["NOCAP"]
    assert post.caption == "From the txt #Fallback @someone"
    assert post.hashtags == ["fallback"] and post.mentions == ["someone"]


def test_profile_target_with_anonymous_owner_uses_folder_name_and_profile(tmp_path):
    folder = tmp_path / "natgeo"
    write_profile(folder)
    write_post(folder, post_node("ANON", TS, "no owner name", owner={"id": PROFILE_ID}))
    write_post(folder, post_node("NOOWNER", TS + 1, "no owner at all", drop=("owner",)))
    posts = by_id(InstaloaderSource(tmp_path).load())
    assert posts["ANON"].account == "natgeo" and posts["ANON"].followers == FOLLOWERS
    assert posts["NOOWNER"].account == "natgeo" and posts["NOOWNER"].followers == FOLLOWERS


def test_followers_embedded_in_the_post_when_no_profile_file(tmp_path):
    folder = tmp_path / "#climbing"
    folder.mkdir()
    owner = instaloader.Profile(WRITER_CONTEXT, {"id": "9", "username": "carol",
                                                 "edge_followed_by": {"count": 777}})
    post = instaloader.Post(WRITER_CONTEXT, post_node("EMB", TS, "#climbing", owner={"id": "9"}),
                            owner_profile=owner)
    stem = LOADER.format_filename(post, target=folder.name)
    instaloader.save_structure_to_file(post, str(folder / f"{stem}.json.xz"))
    write_jpeg(folder / f"{stem}.jpg")
    got = by_id(InstaloaderSource(tmp_path).load())["EMB"]
    assert (got.account, got.followers) == ("carol", 777)


def test_duplicate_post_across_targets_is_kept_once(tree):
    write_post(tree / "#climbing", post_node("PHOTO1", TS, "again #climbing"))
    corpus = InstaloaderSource(tree).load()
    assert [p.post_id for p in corpus.posts].count("PHOTO1") == 1
    assert corpus.counts["duplicates_skipped"] == 1
    assert any(s.reason.startswith("duplicate:") for s in corpus.skipped)


def test_missing_root_raises_with_the_path_and_fix(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(SourceError, match=re.escape(str(missing))) as info:
        InstaloaderSource(missing).load()
    assert "data.root" in str(info.value)


def test_root_without_metadata_raises_and_names_the_fix(tmp_path):
    (tmp_path / "natgeo").mkdir()
    write_jpeg(tmp_path / "natgeo" / "2024-05-01_12-30-00_UTC.jpg")
    with pytest.raises(SourceError, match="no-metadata-json"):
        InstaloaderSource(tmp_path).load()


def test_hydra_config_instantiates(tree):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    conf = OmegaConf.load(Path(__file__).parents[1] / "conf" / "data" / "instaloader.yaml")
    conf.root = str(tree)
    source = instantiate(conf)
    assert isinstance(source, InstaloaderSource)
    assert not source.include_sidecars
    posts = source.load().posts
    assert {p.post_id for p in posts} == {"PHOTO1", "CAROUSEL", "HT1", "HT2", "HT3"}
    assert math.isfinite(float(engagement(posts).sum()))
