"""OpenclipartSource: on a small package tree written here (fast, offline), and once on the real
packages.

The fake tree mimics ``openclipart-svg`` + ``openclipart-png``: SVGs with Inkscape-style
``cc:Work`` metadata (with and without an SVG namespace), their PNGs at the same paths, a drawing
filed twice through links, an ``unsorted`` folder, and broken inputs (no title, no creator,
no metadata, malformed XML, an entity bomb, a PNG without SVG, a corrupt PNG). No Openclipart
file is ever written inside the repository.
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
from mmembed.data.sources.openclipart import OTHER_ACCOUNT, ROOT_SUBDIR, OpenclipartSource
from mmembed.data.sources.openclipart_metadata import MetadataError, read_svg_metadata

CONF = Path(__file__).resolve().parent.parent / "conf" / "data" / "openclipart.yaml"
RED = (220, 20, 20)
NS = (
    'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:cc="http://web.resource.org/cc/" '
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
)


def svg_text(title=None, keywords=(), creator=None, date=None, svg_ns=True, subject_text=None,
             body='<rect width="10" height="10"/>') -> str:
    """An Inkscape-style SVG with a cc:Work block (fields left out when None)."""
    work = []
    if title is not None:
        work.append(f"<dc:title>{title}</dc:title>")
    if keywords or subject_text is not None:
        items = "".join(f"<rdf:li>{k}</rdf:li>" for k in keywords)
        inner = f"<rdf:Bag>{items}</rdf:Bag>" if keywords else subject_text
        work.append(f"<dc:subject>{inner}</dc:subject>")
    work.append("<dc:publisher><cc:Agent><dc:title>Open Clip Art Library</dc:title>"
                "</cc:Agent></dc:publisher>")
    if creator is not None:
        work.append(f"<dc:creator><cc:Agent><dc:title>{creator}</dc:title></cc:Agent>"
                    "</dc:creator>")
    if date is not None:
        work.append(f"<dc:date>{date}</dc:date>")
    default_ns = 'xmlns="http://www.w3.org/2000/svg" ' if svg_ns else ""
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        f'<svg {default_ns}{NS} width="100" height="100"><metadata><rdf:RDF>'
        f'<cc:Work rdf:about="">{"".join(work)}</cc:Work></rdf:RDF></metadata>{body}</svg>'
    )


def _png(path: Path, colour=RED, size=(40, 20)) -> None:
    """A transparent canvas with an opaque block in the middle (clip art on no background)."""
    img = Image.new("RGBA", size, (0, 0, 0, 0))  # transparent *black*: must come out white
    w, h = size
    img.paste(Image.new("RGBA", (w // 2, h // 2), (*colour, 255)), (w // 4, h // 4))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


BOMB = """<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
<svg xmlns="http://www.w3.org/2000/svg" {ns}><metadata><rdf:RDF><cc:Work>
<dc:title>&c;</dc:title><dc:creator>x</dc:creator></cc:Work></rdf:RDF></metadata></svg>
""".replace("{ns}", NS)
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg" {ns}><metadata><rdf:RDF><cc:Work>
<dc:title>&secret;</dc:title><dc:creator>x</dc:creator></cc:Work></rdf:RDF></metadata></svg>
""".replace("{ns}", NS)

# path below svg/ and png/ (no suffix) -> (svg text, PNG colour or None for no PNG)
DRAWINGS = {
    "animals/birds/crow_01": (svg_text(
        "Crow", ["bird", "Black Bird", "animals", "bird", "black-bird", "  ", "birds"],
        "Alice Painter", "2005-08-19"), RED),
    "animals/cat_01": (svg_text("A cat", ["cat", "pet"], "alice painter", svg_ns=False),
                       (200, 150, 50)),
    "food/fruit/apple_01": (svg_text("Red apple", creator="Bob Drawer",
                                     subject_text="apple, red fruit; food"), (200, 10, 30)),
    "food/pear_01": (svg_text("Pear", ["pear"], "Bob Drawer", "19 08 2005"), (120, 200, 40)),
    "computer/icons/floppy": (svg_text("Floppy disk", ["disk", "computer", "save"],
                                       "Bob Drawer", "September 2004"), (30, 30, 30)),
    "shapes/star": (svg_text("Star", ["star", "shape"], "Carol"), (240, 200, 0)),
    "unsorted/thing": (svg_text("Thing", ["thing"], "Carol"), (0, 0, 0)),
    # broken inputs, each skipped with its reason
    "food/no_title": (svg_text(None, ["x"], "Bob Drawer"), (0, 0, 0)),
    "food/no_creator": (svg_text("Nobody's", ["x"]), (0, 0, 0)),
    "food/no_metadata": ('<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>', (0, 0, 0)),
    "food/malformed": ("<svg><metadata><unclosed></svg>", (0, 0, 0)),
    "food/bomb": (BOMB, (0, 0, 0)),
    "food/external": (EXTERNAL, (0, 0, 0)),
    "food/broken_png": (svg_text("Broken", ["x"], "Bob Drawer"), None),
}


def make_tree(root: Path) -> Path:
    """A miniature package tree under ``root``; returns ``root`` (it holds usr/share/...)."""
    base = root / ROOT_SUBDIR
    for stem, (text, colour) in DRAWINGS.items():
        svg = base / "svg" / f"{stem}.svg"
        svg.parent.mkdir(parents=True, exist_ok=True)
        svg.write_text(text, encoding="utf-8")
        png = base / "png" / f"{stem}.png"
        if colour is not None:
            _png(png, colour)
    (base / "png/food/broken_png.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _png(base / "png/food/orphan.png")  # a PNG whose SVG is missing: no metadata
    for kind in ("svg", "png"):  # the crow filed once more, as the packages do, by a link
        link = base / kind / "computer/icons" / f"crow_01.{kind}"
        link.symlink_to(f"../../animals/birds/crow_01.{kind}")
    return root


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "tree")


def _source(tmp_path: Path, **kw) -> OpenclipartSource:
    kw.setdefault("cache_dir", tmp_path / "cache")
    kw.setdefault("image_size", 32)
    kw.setdefault("min_account_posts", 1)
    return OpenclipartSource(**kw)


def test_loads_posts_from_a_package_tree(tmp_path, tree):
    corpus = _source(tmp_path, package_root=tree).load()
    by_id = {p.post_id: p for p in corpus.posts}
    assert set(by_id) == {"oc-animals-birds-crow-01", "oc-animals-cat-01",
                          "oc-food-fruit-apple-01", "oc-food-pear-01",
                          "oc-computer-icons-floppy", "oc-shapes-star"}
    crow = by_id["oc-animals-birds-crow-01"]
    assert crow.caption == "Crow"
    # lower-cased, spaces/hyphens -> '_', blanks and duplicates dropped, folder names dropped
    assert crow.hashtags == ["bird", "black_bird"]
    assert crow.account == "alice_painter" and crow.topic == "animals"
    assert crow.timestamp == "2005-08-19T00:00:00+00:00"
    cat = by_id["oc-animals-cat-01"]  # an SVG without namespace still gives its metadata
    assert (cat.caption, cat.hashtags, cat.account) == ("A cat", ["cat", "pet"], "alice_painter")
    assert by_id["oc-food-fruit-apple-01"].hashtags == ["apple", "red_fruit"]  # comma text
    assert by_id["oc-computer-icons-floppy"].hashtags == ["disk", "save"]
    assert by_id["oc-computer-icons-floppy"].timestamp == ""  # "September 2004": not a day
    assert by_id["oc-food-pear-01"].timestamp == ""  # "19 08 2005": day-first is not read
    assert {p.topic for p in corpus.posts} == {"animals", "food", "computer", "shapes"}
    assert corpus.truth["topics"] == ["animals", "computer", "food", "shapes"]
    for post in corpus.posts:
        assert post.source == "openclipart"
        assert Path(post.image_path).is_file()
        assert Path(post.image_path).is_relative_to(tmp_path / "cache")
        assert post.followers and post.followers > 0 and post.likes >= 0
        assert post.true_engagement is not None and np.isfinite(post.true_engagement)

    reasons = {Path(s.item).stem: s.reason for s in corpus.skipped}
    assert reasons["no_title"].startswith("no title")
    assert reasons["no_creator"].startswith("no creator")
    assert reasons["no_metadata"].startswith("no metadata")
    assert reasons["malformed"].startswith("unreadable SVG")
    assert reasons["bomb"].startswith("refused SVG") and "entity" in reasons["bomb"]
    assert reasons["external"].startswith("refused SVG")
    assert reasons["orphan"].startswith("no SVG")
    assert reasons["broken_png"].startswith(("corrupt", "truncated", "not an image"))
    assert len(corpus.skipped) == 8
    assert corpus.counts["linked_copies"] == 1  # the crow's second folder: one post
    assert corpus.counts["excluded_folders"] == 1  # unsorted/
    assert corpus.counts["creators"] == 3 and corpus.counts["folded_creators"] == 0


def test_truth_is_what_each_creator_posted(tmp_path, tree):
    corpus = _source(tmp_path, package_root=tree).load()
    posted: dict[str, Counter] = {}
    for p in corpus.posts:
        posted.setdefault(p.account, Counter())[p.topic] += 1
    assert set(corpus.truth["account_mixtures"]) == {"alice_painter", "bob_drawer", "carol"}
    for account, topics in posted.items():
        total = sum(topics.values())
        assert corpus.truth["account_mixtures"][account] == {
            t: n / total for t, n in topics.items()}
    assert corpus.truth["account_mixtures"]["bob_drawer"] == {"computer": 1 / 3, "food": 2 / 3}
    assert corpus.truth["synthetic"] == ["followers", "likes"]


def test_small_creators_are_folded(tmp_path, tree):
    corpus = _source(tmp_path, package_root=tree, min_account_posts=2).load()
    star = next(p for p in corpus.posts if p.post_id == "oc-shapes-star")
    assert star.account == OTHER_ACCOUNT  # Carol has one drawing (her other is unsorted)
    assert corpus.truth["folded_creators"] == ["carol"]
    assert corpus.truth["account_mixtures"][OTHER_ACCOUNT] == {"shapes": 1.0}
    assert corpus.counts["folded_posts"] == 1
    assert {p.account for p in corpus.posts} == {"alice_painter", "bob_drawer", OTHER_ACCOUNT}
    everyone = _source(tmp_path, package_root=tree, min_account_posts=100).load()
    assert {p.account for p in everyone.posts} == {OTHER_ACCOUNT}
    assert len(everyone.truth["folded_creators"]) == 3


def test_alpha_is_composited_on_white_and_padded_square(tmp_path, tree):
    corpus = _source(tmp_path, package_root=tree, image_size=32).load()
    crow = next(p for p in corpus.posts if p.post_id == "oc-animals-birds-crow-01")
    img = Image.open(crow.image_path)
    assert img.size == (32, 32) and img.mode == "RGB"
    pixels = np.asarray(img, dtype=int)
    assert (pixels[0, 0] >= 245).all(), "a transparent corner must become white, not black"
    assert np.abs(pixels[16, 16] - np.array(RED)).max() < 30, "the opaque centre stays red"
    assert (pixels[:6] >= 245).all(), "the 40x20 drawing is padded, not cropped"


def test_deterministic_seeded_and_subsampled(tmp_path, tree):
    first = _source(tmp_path, package_root=tree, seed=3).load()
    again = _source(tmp_path, package_root=tree, seed=3).load()  # from the caches
    assert [p.to_dict() for p in first.posts] == [p.to_dict() for p in again.posts]
    assert first.truth == again.truth
    other = _source(tmp_path, package_root=tree, seed=4).load()
    assert [p.likes for p in other.posts] != [p.likes for p in first.posts]
    assert [p.caption for p in other.posts] == [p.caption for p in first.posts]

    for kind in ("svg", "png"):  # six good drawings left
        (tree / ROOT_SUBDIR / kind / f"food/broken_png.{kind}").unlink(missing_ok=True)

    def subset(seed):
        c = _source(tmp_path, package_root=tree, seed=seed, max_posts=3).load()
        assert c.counts["subsampled_out"] == 3
        return [p.post_id for p in c.posts]

    assert len(subset(0)) == 3 and subset(0) == subset(0)
    assert len({tuple(subset(s)) for s in range(6)}) > 1, "the subsample follows the seed"


def test_likes_follow_colourfulness(tmp_path, tree):
    """The noise-free rate is planted from the image: base_rate * exp(quality_strength * z), z the
    standardised colourfulness; likes scatter around followers times that rate."""
    from mmembed.data.images import colourfulness

    corpus = _source(tmp_path, package_root=tree, base_rate=0.03, quality_strength=0.25).load()
    colour = np.array([colourfulness(p.image_path) for p in corpus.posts])
    z = (colour - colour.mean()) / colour.std()
    followers = np.array([p.followers for p in corpus.posts], dtype=float)
    rate = np.exp([p.true_engagement for p in corpus.posts]) - 1 / followers
    np.testing.assert_allclose(rate, 0.03 * np.exp(0.25 * z), rtol=1e-9)
    likes = np.array([p.likes for p in corpus.posts])
    assert np.all(np.abs(np.log((likes + 0.5) / (followers * rate))) < 5 * 0.3)
    assert len({p.followers for p in corpus.posts if p.account == "bob_drawer"}) == 1


def test_options_keep_folder_keywords_cap_and_depth(tmp_path, tree):
    corpus = _source(tmp_path, package_root=tree, drop_folder_keywords=False, max_hashtags=3,
                     topic_depth=2).load()
    crow = next(p for p in corpus.posts if p.post_id == "oc-animals-birds-crow-01")
    assert crow.hashtags == ["bird", "black_bird", "animals"]
    assert crow.topic == "animals/birds"
    assert corpus.truth["topics"] == ["animals", "animals/birds", "computer/icons", "food",
                                      "food/fruit", "shapes"]
    with_unsorted = _source(tmp_path, package_root=tree, exclude=[]).load()
    assert "unsorted" in {p.topic for p in with_unsorted.posts}


def test_changed_svg_is_read_again(tmp_path, tree):
    """Metadata is cached between loads, but never outlives a change to its file."""
    _source(tmp_path, package_root=tree).load()
    svg = tree / ROOT_SUBDIR / "svg/shapes/star.svg"
    svg.write_text(svg_text("A bright star", ["star"], "Carol"), encoding="utf-8")
    os.utime(svg, ns=(time.time_ns() + 10**9,) * 2)
    corpus = _source(tmp_path, package_root=tree).load()
    assert next(p for p in corpus.posts if p.post_id == "oc-shapes-star").caption == \
        "A bright star"
    (tmp_path / "cache" / "metadata.json").write_text("{not json")  # damaged cache: ignored
    assert len(_source(tmp_path, package_root=tree).load().posts) == 6


def test_untrusted_xml_is_never_expanded(tmp_path):
    bomb = tmp_path / "bomb.svg"
    bomb.write_text(BOMB)
    with pytest.raises(MetadataError, match="entity"):
        read_svg_metadata(bomb)
    external = tmp_path / "external.svg"
    external.write_text(EXTERNAL)
    with pytest.raises(MetadataError, match="refused"):
        read_svg_metadata(external)
    ok = tmp_path / "ok.svg"
    ok.write_text(svg_text(" Two   words ", ["a", "b"], "Me", "2001/02/03"))
    meta = read_svg_metadata(ok)
    assert (meta.title, meta.keywords, meta.creator, meta.date) == \
        ("Two words", ("a", "b"), "Me", "2001/02/03")


def _build_debs(tree: Path, out_dir: Path, compression: str = "xz") -> list[Path]:
    """The two packages, built from the tree's svg/ and png/ halves (links included)."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    out_dir.mkdir(parents=True, exist_ok=True)
    debs = []
    for kind in ("svg", "png"):
        staging = out_dir / f"staging-{kind}"
        target = staging / ROOT_SUBDIR / kind
        target.parent.mkdir(parents=True)
        shutil.copytree(tree / ROOT_SUBDIR / kind, target, symlinks=True)
        (staging / "DEBIAN").mkdir()
        (staging / "DEBIAN/control").write_text(
            f"Package: openclipart-{kind}\nVersion: 0.0-test\nArchitecture: all\n"
            "Maintainer: test <test@example.org>\nDescription: fake clip art for tests\n"
        )
        deb = out_dir / f"openclipart-{kind}_0.0-test_all.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", f"-Z{compression}", "-b",
                        str(staging), str(deb)], check=True, capture_output=True)
        shutil.rmtree(staging)
        debs.append(deb)
    return debs


def _fake_apt(tmp_path: Path, body: str) -> str:
    script = tmp_path / "bin" / "apt-get"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_debs_in_cache_are_used_without_apt_and_without_dpkg(tmp_path, tree):
    reference = [p.to_dict() for p in _source(tmp_path / "ref", package_root=tree).load().posts]
    never = _fake_apt(tmp_path, "echo apt must not run >&2; exit 1\n")
    # dpkg-deb, then the Python reader (a .deb copied to a system without dpkg)
    for dpkg, compression in (("dpkg-deb", "xz"), ("/nonexistent/dpkg-deb", "gzip")):
        cache = tmp_path / f"cache-{compression}"
        _build_debs(tree, cache, compression)
        corpus = _source(tmp_path, cache_dir=cache, apt_get=never, dpkg_deb=dpkg).load()
        assert [p.caption for p in corpus.posts] == [r["caption"] for r in reference]
        assert corpus.counts["linked_copies"] == 1
        link = cache / "pkg" / ROOT_SUBDIR / "png/computer/icons/crow_01.png"
        assert link.is_symlink() and link.resolve().is_relative_to((cache / "pkg").resolve())


def test_fetches_both_packages_with_apt_get_download(tmp_path, tree):
    svg_deb, png_deb = _build_debs(tree, tmp_path / "mirror")
    log = tmp_path / "apt.log"
    apt = _fake_apt(tmp_path, f'echo "$@" >> "{log}"\n'
                              f'case "$2" in openclipart-svg) cp "{svg_deb}" . ;; '
                              f'openclipart-png) cp "{png_deb}" . ;; *) exit 100 ;; esac\n')
    corpus = _source(tmp_path, apt_get=apt).load()
    assert log.read_text().splitlines() == ["download openclipart-svg",
                                            "download openclipart-png"]
    assert len(corpus.posts) == 6
    cache = tmp_path / "cache"
    assert (cache / svg_deb.name).is_file() and (cache / png_deb.name).is_file()
    assert not list(cache.glob("download-*")) and not list(cache.glob("pkg-*"))


def test_clear_errors(tmp_path):
    apt = _fake_apt(tmp_path,
                    "echo 'E: Unable to locate package openclipart-svg' >&2; exit 100\n")
    with pytest.raises(SourceError) as err:
        _source(tmp_path, apt_get=apt).load()
    assert "Unable to locate package" in str(err.value)
    assert "sudo apt-get update" in str(err.value)
    assert not (tmp_path / "cache" / "pkg").exists()
    with pytest.raises(SourceError, match="package_root"):
        _source(tmp_path, package_root=tmp_path / "nothing").load()
    empty = tmp_path / "empty" / ROOT_SUBDIR
    (empty / "svg").mkdir(parents=True)
    (empty / "png").mkdir()
    with pytest.raises(SourceError, match="no drawing with metadata"):
        _source(tmp_path, package_root=tmp_path / "empty").load()
    with pytest.raises(ValueError, match="max_posts"):
        OpenclipartSource(max_posts=0)


def test_conf_matches_the_class_and_the_data_command(tmp_path, tree, capsys):
    conf = OmegaConf.load(CONF)
    assert conf._target_ == "mmembed.data.sources.openclipart.OpenclipartSource"
    assert set(conf) - {"_target_"} == set(inspect.signature(OpenclipartSource).parameters)

    from mmembed.data.__main__ import main

    code = main(["data=openclipart", f"data.package_root={tree}",
                 f"data.cache_dir={tmp_path / 'cache'}", "data.image_size=32",
                 "data.min_account_posts=2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "openclipart" in out and "folded_creators" in out
    assert "no title: dc:title is missing" in out


@pytest.mark.slow
def test_real_packages(tmp_path):
    """Fetch the real openclipart-svg and openclipart-png with apt-get (~156 MB) and load them."""
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not available")
    start = time.perf_counter()
    source = OpenclipartSource(cache_dir=tmp_path / "cache")
    try:
        corpus = source.load()
    except SourceError as exc:
        if "Unable to locate" in str(exc) or "no candidate" in str(exc):
            pytest.skip(f"apt does not know the packages here: {exc}")
        raise
    elapsed = time.perf_counter() - start
    topics = Counter(p.topic for p in corpus.posts)
    print(f"\n{len(corpus.posts)} drawings, {len(topics)} topics, "
          f"{corpus.counts['creators']} creators in {elapsed:.1f}s: {dict(topics.most_common())}; "
          f"skipped {len(corpus.skipped)}; {corpus.counts}")
    assert 6000 <= len(corpus.posts) <= 7500
    assert len(topics) == 21 and "unsorted" not in topics
    assert {"animals", "food", "computer", "people"} <= set(topics)
    assert 400 <= corpus.counts["creators"] <= 600
    assert corpus.counts["linked_copies"] > 1000
    assert len(corpus.skipped) < 200
    assert all(p.caption for p in corpus.posts)
    accounts = {p.account for p in corpus.posts}
    assert {"nicu_buculei", "danny_allen", OTHER_ACCOUNT} <= accounts
    mixtures = corpus.truth["account_mixtures"]
    assert set(mixtures) == accounts
    assert all(abs(sum(m.values()) - 1) < 1e-9 for m in mixtures.values())
    assert Image.open(corpus.posts[0].image_path).size == (128, 128)
    start = time.perf_counter()
    again = OpenclipartSource(cache_dir=tmp_path / "cache").load()
    assert [p.to_dict() for p in again.posts] == [p.to_dict() for p in corpus.posts]
    assert time.perf_counter() - start < 120, "later loads reuse the caches"
