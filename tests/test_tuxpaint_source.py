"""TuxpaintSource: on a fake package tree built here (fast, offline), and once on the real package.

The fake tree mimics ``tuxpaint-stamps-default``: RGBA cut-outs in category folders, ``.txt``
captions with translation lines, ``.dat``/``.ogg`` side files, ``_mirror``/``_flip`` copies, an SVG,
``cartoon`` and ``symbols`` folders. No Tux Paint file is ever written inside the repository.
"""

from __future__ import annotations

import inspect
import os
import shutil
import stat
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from mmembed.data.sources import SourceError
from mmembed.data.sources.tuxpaint import STAMPS_SUBDIR, TuxpaintSource

CONF = Path(__file__).resolve().parent.parent / "conf" / "data" / "tuxpaint.yaml"
RED = (220, 20, 20)


def _cutout(path: Path, colour=RED, size=(40, 20)) -> None:
    """A transparent canvas with an opaque coloured block in the middle (a stamp cut-out)."""
    img = Image.new("RGBA", size, (0, 0, 0, 0))  # transparent *black*: must come out white
    w, h = size
    img.paste(Image.new("RGBA", (w // 2, h // 2), (*colour, 255)), (w // 4, h // 4))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _caption(path: Path, english: str) -> None:
    path.write_text(
        f"{english}\nach.utf8=Winyo.\nen_GB.UTF-8={english}\nfr.utf8=Un oiseau.\n", encoding="utf-8"
    )


def make_tree(root: Path) -> Path:
    """A miniature package tree under ``root``; returns ``root`` (it holds usr/share/...)."""
    s = root / STAMPS_SUBDIR
    photos = {
        "animals/birds/crow": ("A crow.", RED),
        "animals/birds/blue_tit": ("A blue tit, a small bird.", (20, 40, 220)),
        "animals/mammals/cat": ("A cat.", (200, 150, 50)),
        "food/fruit/apple": ("A red apple.", (200, 10, 30)),
        "food/fruit/pear": ("A pear.", (120, 200, 40)),
        "food/pizza": ("A slice of pizza.", (230, 180, 60)),
        "vehicles/auto/sedan": ("A sedan car.", (30, 30, 30)),
    }
    for stem, (caption, colour) in photos.items():
        _cutout(s / f"{stem}.png", colour)
        _caption(s / f"{stem}.txt", caption)
    (s / "animals/birds/crow.dat").write_text("noflip\n")
    (s / "animals/birds/crow_desc_fr.ogg").write_bytes(b"OggS fake")
    _cutout(s / "animals/birds/crow_mirror.png")  # hand-mirrored copies: dropped
    _cutout(s / "food/fruit/apple_flip.png")
    (s / "food/fruit/banana.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    _caption(s / "food/fruit/banana.txt", "A banana.")
    _cutout(s / "vehicles/cartoon/bus.png")  # drawings and symbols: excluded
    _caption(s / "vehicles/cartoon/bus.txt", "A cartoon bus.")
    _cutout(s / "symbols/math/1.png")
    _cutout(s / "vehicles/auto/truck.png")  # no caption file: caption from the name
    (s / "food/fruit/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # corrupt
    _caption(s / "food/fruit/broken.txt", "A broken image.")
    return root


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "tree")


def _source(tmp_path: Path, **kw) -> TuxpaintSource:
    kw.setdefault("cache_dir", tmp_path / "cache")
    kw.setdefault("image_size", 32)
    return TuxpaintSource(**kw)


def _build_deb(tree: Path, out_dir: Path, compression: str = "xz") -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    control = tree / "DEBIAN" / "control"
    control.parent.mkdir(parents=True, exist_ok=True)
    control.write_text(
        "Package: tuxpaint-stamps-default\nVersion: 0.0-test\nArchitecture: all\n"
        "Maintainer: test <test@example.org>\nDescription: fake stamps for tests\n"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    deb = out_dir / "tuxpaint-stamps-default_0.0-test_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "-b", str(tree), str(deb)],
        check=True, capture_output=True,
    )
    shutil.rmtree(control.parent)
    return deb


def _fake_apt(tmp_path: Path, body: str) -> str:
    script = tmp_path / "bin" / "apt-get"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_loads_posts_from_a_package_tree(tmp_path, tree):
    corpus = _source(tmp_path, package_root=tree).load()
    by_id = {p.post_id: p for p in corpus.posts}
    assert set(by_id) == {
        "tux-animals-birds-crow", "tux-animals-birds-blue-tit", "tux-animals-mammals-cat",
        "tux-food-fruit-apple", "tux-food-fruit-pear", "tux-food-pizza",
        "tux-vehicles-auto-sedan", "tux-vehicles-auto-truck",
    }
    crow = by_id["tux-animals-birds-crow"]
    assert crow.caption == "A crow."  # the plain line, not a translation
    assert crow.topic == "animals"
    assert crow.hashtags[:2] == ["animals", "birds"] and "crow" in crow.hashtags
    assert "small" in by_id["tux-animals-birds-blue-tit"].hashtags  # caption words
    assert "a" not in by_id["tux-animals-birds-blue-tit"].hashtags
    assert by_id["tux-vehicles-auto-truck"].caption == "Truck."
    assert by_id["tux-food-pizza"].topic == "food"
    for post in corpus.posts:
        assert post.source == "tuxpaint"
        assert Path(post.image_path).is_absolute() and Path(post.image_path).is_file()
        assert Path(post.image_path).is_relative_to(tmp_path / "cache")
        assert post.followers and post.followers > 0 and post.account.startswith("tux_account_")
        assert post.true_engagement is not None and np.isfinite(post.true_engagement)
    assert corpus.counts["mirrored_copies"] == 2
    assert corpus.counts["excluded_folders"] == 2
    assert corpus.counts["captions_from_name"] == 1
    assert [Path(s.item).name for s in corpus.skipped] == ["broken.png"]
    assert corpus.skipped[0].reason.startswith(("corrupt", "truncated", "not an image"))
    assert corpus.truth["topics"] == ["animals", "food", "vehicles"]
    accounts = {f"tux_account_{i:02d}" for i in range(8)}
    assert set(corpus.truth["account_mixtures"]) == accounts
    assert {p.account for p in corpus.posts} <= accounts
    for mixture in corpus.truth["account_mixtures"].values():
        assert sum(mixture.values()) == pytest.approx(1.0)


def test_alpha_is_composited_on_white_and_padded_square(tmp_path, tree):
    corpus = _source(tmp_path, package_root=tree, image_size=32).load()
    crow = next(p for p in corpus.posts if p.post_id == "tux-animals-birds-crow")
    img = Image.open(crow.image_path)
    assert img.size == (32, 32) and img.mode == "RGB"
    pixels = np.asarray(img, dtype=int)
    assert (pixels[0, 0] >= 245).all(), "a transparent corner must become white, not black"
    assert np.abs(pixels[16, 16] - np.array(RED)).max() < 30, "the opaque centre stays red"
    # the 40x20 stamp is padded (not cropped) to a square: top rows are white padding
    assert (pixels[:6] >= 245).all()


def test_deterministic_and_seeded(tmp_path, tree):
    first = _source(tmp_path, package_root=tree, seed=3).load()
    again = _source(tmp_path, package_root=tree, seed=3).load()  # from the image cache
    assert [p.to_dict() for p in first.posts] == [p.to_dict() for p in again.posts]
    assert first.truth == again.truth
    other = _source(tmp_path, package_root=tree, seed=4).load()
    assert [p.likes for p in other.posts] != [p.likes for p in first.posts]
    assert [p.caption for p in other.posts] == [p.caption for p in first.posts]


def test_topic_depth_and_min_category_size(tmp_path, tree):
    deep = _source(tmp_path, package_root=tree, topic_depth=2).load()
    assert deep.truth["topics"] == [
        "animals/birds", "animals/mammals", "food", "food/fruit", "vehicles/auto"
    ]
    pruned = _source(tmp_path, package_root=tree, min_category_size=3).load()
    assert {p.topic for p in pruned.posts} == {"animals", "food"}
    small = [s for s in pruned.skipped if s.reason.startswith("small category")]
    assert len(small) == 2 and "vehicles" in small[0].reason
    with pytest.raises(SourceError, match="min_category_size"):
        _source(tmp_path, package_root=tree, min_category_size=100).load()


def test_deb_in_cache_is_used_without_apt(tmp_path, tree):
    cache = tmp_path / "cache"
    _build_deb(tree, cache)
    never = _fake_apt(tmp_path, "echo apt must not run >&2; exit 1\n")
    corpus = _source(tmp_path, apt_get=never).load()
    assert len(corpus.posts) == 8
    assert (cache / "pkg" / STAMPS_SUBDIR / "animals/birds/crow.txt").is_file()
    assert not list((cache / "pkg").rglob("*.ogg")), "only stamps' png/txt are unpacked"


def test_deb_unpacks_without_dpkg_deb(tmp_path, tree):
    """A .deb copied to a system without dpkg: read in Python (xz and gzip data archives)."""
    for compression in ("xz", "gzip"):
        cache = tmp_path / f"cache-{compression}"
        _build_deb(tree, cache, compression)
        corpus = _source(tmp_path, cache_dir=cache, dpkg_deb="/nonexistent/dpkg-deb").load()
        assert len(corpus.posts) == 8


def test_fetches_with_apt_get_download(tmp_path, tree):
    deb = _build_deb(tree, tmp_path / "mirror")
    log = tmp_path / "apt.log"
    apt = _fake_apt(tmp_path, f'echo "$@" > "{log}"\ncp "{deb}" .\n')
    corpus = _source(tmp_path, apt_get=apt).load()
    assert log.read_text().split() == ["download", "tuxpaint-stamps-default"]
    assert len(corpus.posts) == 8
    assert (tmp_path / "cache" / deb.name).is_file(), "the .deb is kept for offline reuse"
    assert not list((tmp_path / "cache").glob("download-*")), "no temporary folder is left"


def test_clear_error_when_apt_cannot_find_the_package(tmp_path):
    apt = _fake_apt(
        tmp_path, "echo 'E: Unable to locate package tuxpaint-stamps-default' >&2; exit 100\n"
    )
    with pytest.raises(SourceError) as err:
        _source(tmp_path, apt_get=apt).load()
    message = str(err.value)
    assert "Unable to locate package" in message
    assert "sudo apt-get update" in message
    assert str(tmp_path / "cache") in message
    assert not (tmp_path / "cache" / "pkg").exists()


def test_clear_error_without_apt_get(tmp_path):
    with pytest.raises(SourceError, match="not available.*by hand"):
        _source(tmp_path, apt_get=str(tmp_path / "no-such-apt-get")).load()


def test_damaged_deb_in_cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tuxpaint-stamps-default_0_all.deb").write_bytes(b"!<arch>\ngarbage")
    for dpkg in ("dpkg-deb", "/nonexistent/dpkg-deb"):
        with pytest.raises(SourceError, match="delete it and retry"):
            _source(tmp_path, dpkg_deb=dpkg).load()


def test_package_root_must_exist(tmp_path):
    with pytest.raises(SourceError, match="package_root"):
        _source(tmp_path, package_root=tmp_path / "nothing").load()


def test_conf_matches_the_class(tmp_path, tree):
    conf = OmegaConf.load(CONF)
    assert conf._target_ == "mmembed.data.sources.tuxpaint.TuxpaintSource"
    params = set(inspect.signature(TuxpaintSource).parameters)
    assert set(conf) - {"_target_"} == params

    from hydra.utils import instantiate

    from mmembed.config import compose

    cfg = compose(["data=tuxpaint", f"data.package_root={tree}",
                   f"data.cache_dir={tmp_path / 'cache'}", "data.image_size=32"])
    corpus = instantiate(cfg.data).load()
    assert len(corpus.posts) == 8


@pytest.mark.slow
def test_real_package(tmp_path):
    """Fetch the real tuxpaint-stamps-default with apt-get and load it (~160 MB download)."""
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not available")
    start = time.perf_counter()
    source = TuxpaintSource(cache_dir=tmp_path / "cache")
    try:
        corpus = source.load()
    except SourceError as exc:
        if "Unable to locate" in str(exc) or "no candidate" in str(exc):
            pytest.skip(f"apt does not know the package here: {exc}")
        raise
    elapsed = time.perf_counter() - start
    topics = Counter(p.topic for p in corpus.posts)
    print(f"\n{len(corpus.posts)} photos, {len(topics)} topics in {elapsed:.1f}s: "
          f"{dict(topics.most_common())}; skipped {len(corpus.skipped)}; {corpus.counts}")
    assert 380 <= len(corpus.posts) <= 520
    assert {"animals", "food", "plants", "vehicles"} <= set(topics)
    assert not {"symbols", "cartoon"} & set(topics)
    assert not any("mirror" in p.post_id or "flip" in p.post_id for p in corpus.posts)
    assert all(p.caption and not p.caption.startswith(("en_", "fr.")) for p in corpus.posts)
    assert corpus.counts["captions_from_name"] <= 5
    assert len({p.account for p in corpus.posts}) == 8
    sample = Image.open(corpus.posts[0].image_path)
    assert sample.size == (128, 128)
    start = time.perf_counter()
    again = TuxpaintSource(cache_dir=tmp_path / "cache").load()
    assert [p.to_dict() for p in again.posts] == [p.to_dict() for p in corpus.posts]
    assert time.perf_counter() - start < 30, "later loads reuse the cache"
    assert os.path.getsize(corpus.posts[0].image_path) > 0
