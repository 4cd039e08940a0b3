"""Report pictures: 2-D map, PNG plots, contact sheets, community cards, bundle writers, W&B."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from mmembed.data.post import Post
from mmembed.report.cards import community_cards_html, community_cards_png
from mmembed.report.maps import map_2d, map_sample, plot_map
from mmembed.report.pictures import bundle_pictures
from mmembed.report.sheets import cluster_contact_sheet, top_terms_chart
from mmembed.report.wandb import log_pictures_to_wandb

XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def blobs(n=200, k=4, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (k, d))
    labels = np.arange(n) % k
    return (centres[labels] + rng.normal(0, 1, (n, d))).astype(np.float32), labels


def assert_png(path, min_size=(50, 50)):
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.load()
        assert img.size[0] >= min_size[0] and img.size[1] >= min_size[1]
        return img.size


def test_map_2d_pca_forced_is_finite_and_does_not_import_umap():
    x, _ = blobs(300)
    had_umap = "umap" in sys.modules
    coords, used = map_2d(x, seed=0, method="pca")
    assert used == "pca"
    assert coords.shape == (300, 2) and coords.dtype == np.float32
    assert np.isfinite(coords).all() and coords.std() > 0
    assert ("umap" in sys.modules) == had_umap  # forcing pca never imports umap


def test_map_2d_tsne_small_is_finite_seeded_and_separates_blobs():
    x, labels = blobs(200, k=4)
    coords, used = map_2d(x, seed=3, method="tsne")
    assert used == "tsne"
    assert coords.shape == (200, 2) and np.isfinite(coords).all()
    again, _ = map_2d(x, seed=3, method="tsne")
    np.testing.assert_allclose(coords, again, rtol=1e-4, atol=1e-4)
    # each blob's points are closer to their own centre than to any other centre
    centres = np.stack([coords[labels == k].mean(0) for k in range(4)])
    nearest = np.argmin(((coords[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.95


def test_map_2d_auto_without_umap_falls_back(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` raise ImportError
    x, _ = blobs(40)
    coords, used = map_2d(x, method="auto", tsne_sample=10)
    assert used == "tsne"  # no umap: t-SNE of a sample of 10, the other 30 placed beside it
    assert coords.shape == (40, 2) and np.isfinite(coords).all()
    with pytest.raises(ImportError, match="umap-learn"):
        map_2d(x, method="umap")


def knn_label_agreement(coords, labels, k=10):
    d = ((coords[:, None] - coords[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :k]
    return (labels[nearest] == labels[:, None]).mean()


def test_map_sample_is_seeded_stratified_and_bounded():
    labels = np.repeat([0, 1, 2, 3, 4], [900, 60, 30, 7, 3])  # two clusters of under 1%
    rows = map_sample(1000, seed=4, labels=labels, size=50)
    assert len(rows) == 50 and len(np.unique(rows)) == 50
    assert (np.diff(rows) > 0).all() and rows.min() >= 0 and rows.max() < 1000
    assert set(labels[rows]) == {0, 1, 2, 3, 4}  # every cluster is on the map
    assert 40 <= (labels[rows] == 0).sum() <= 46  # the rest in proportion (~45 of 50)
    np.testing.assert_array_equal(rows, map_sample(1000, seed=4, labels=labels, size=50))
    assert not np.array_equal(rows, map_sample(1000, seed=5, labels=labels, size=50))
    plain = map_sample(1000, seed=4, size=50)
    assert len(np.unique(plain)) == 50 and (np.diff(plain) > 0).all()
    np.testing.assert_array_equal(map_sample(30, seed=0, labels=labels[:30], size=50),
                                  np.arange(30))  # N ≤ size: every post
    many = map_sample(100, seed=0, labels=np.arange(100), size=10)  # more clusters than rows
    assert len(np.unique(many)) == 10
    with pytest.raises(ValueError, match="labels"):
        map_sample(1000, seed=0, labels=labels[:10], size=50)


def test_map_2d_samples_tsne_above_tsne_sample_and_places_the_rest(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)
    x, labels = blobs(600, k=4)
    coords, used = map_2d(x, seed=1, labels=labels, tsne_sample=150)
    assert used == "tsne" and coords.shape == (600, 2) and coords.dtype == np.float32
    assert np.isfinite(coords).all()
    assert knn_label_agreement(coords, labels) > 0.9  # separated blobs stay separated
    again, _ = map_2d(x, seed=1, labels=labels, tsne_sample=150)
    np.testing.assert_allclose(coords, again, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="labels"):
        map_2d(x, labels=labels[:10])


def test_map_2d_at_most_tsne_sample_posts_lays_out_every_post():
    x, labels = blobs(120, k=3)
    full, used = map_2d(x, seed=2, method="tsne", labels=labels, tsne_sample=120)
    assert used == "tsne"
    bigger, _ = map_2d(x, seed=2, method="tsne", tsne_sample=5000)  # no sample either way
    np.testing.assert_allclose(full, bigger, rtol=1e-4, atol=1e-4)
    sampled, _ = map_2d(x, seed=2, method="tsne", labels=labels, tsne_sample=119)
    assert not np.allclose(full, sampled, atol=1e-2)


def test_map_2d_edge_cases():
    assert map_2d(np.zeros((0, 8)))[0].shape == (0, 2)
    coords, used = map_2d(np.ones((3, 8)), method="tsne")  # too few points, constant
    assert used == "pca" and coords.shape == (3, 2) and np.isfinite(coords).all()
    x, _ = blobs(20)
    x[0, 0] = np.nan
    with pytest.warns(UserWarning, match="non-finite"):
        coords, _ = map_2d(x, method="pca")
    assert np.isfinite(coords).all()
    with pytest.raises(ValueError):
        map_2d(x, method="mds")


def test_plot_map_writes_png(tmp_path):
    x, labels = blobs(300, k=5)
    labels[:3] = -1  # noise points are allowed
    coords, used = map_2d(x, method="pca")
    names = ["rockclimbing · crag · sendit", "nightlife · club", "$5 " + XSS, "a", "b"]
    out = plot_map(coords, labels, names, tmp_path / "sub" / "map.png", "Clusters", used,
                     highlight=[0, 10, 20])
    assert out == tmp_path / "sub" / "map.png"
    assert assert_png(out) == (900, 700)
    with pytest.raises(ValueError):
        plot_map(coords, labels[:10], names, tmp_path / "bad.png", "x", used)


def test_contact_sheet_with_broken_image_renders(tmp_path, make_image):
    good = [str(make_image(tmp_path / f"img{i}.jpg", color=(40 * i, 90, 160))) for i in range(4)]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    paths = good[:2] + [str(broken), str(tmp_path / "missing.png")] + good[2:]
    out = cluster_contact_sheet(paths, tmp_path / "sheet.png", "Cluster 0 · " + XSS,
                                  thumb=64, cols=3, captions=["@a"] * 6, color="#1f77b4")
    w, h = assert_png(out)
    assert w >= 3 * 64 and h >= 2 * 64
    with Image.open(out) as img:  # the broken tile (row 0, col 2) is grey
        img = img.convert("RGB")
        left = (w - (3 * 64 + 2 * 6)) // 2
        tile = np.asarray(img.crop((left + 2 * 70 + 2, 64 + 2, left + 2 * 70 + 10, 64 + 10)))
        assert np.allclose(tile, 208, atol=30)
    assert_png(cluster_contact_sheet([], tmp_path / "empty.png", "empty"))


def test_top_terms_chart_writes_png(tmp_path):
    terms = [("rockclimbing", 0.31), ("crag", 0.2), ("sendit", 0.12), (XSS, 0.05)]
    assert_png(top_terms_chart(terms, tmp_path / "terms.png", "Cluster 0", color="#ff7f0e"))
    assert_png(top_terms_chart({"a": 1.0, "b": float("nan")}, tmp_path / "t2.png", "dict"))
    assert_png(top_terms_chart([], tmp_path / "none.png", "no terms"))


def communities_fixture(tmp_path, make_image):
    imgs = [str(make_image(tmp_path / f"m{i}.png", color=(30, 60 * i, 90))) for i in range(3)]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"")
    posts = [Post(post_id=f"p{i}", image_path=imgs[i % 3], caption=f"{XSS} caption {i}")
             for i in range(6)]
    communities = {
        XSS: {"kind": "source", "size": 12, "profile": [0.99, 0.0, 0.01],
              "top_hashtags": [[XSS, 5], ["rockclimbing", 3]], "medoids": [0, 1]},
        "acc": {"kind": "account", "size": 40, "profile": [0.2, 0.5, 0.3],
                "top_hashtags": [["food", 9]], "medoids": [imgs[2], str(broken)]},
        "cl": {"kind": "cluster", "size": 3, "profile": None, "top_hashtags": [],
               "medoids": []},
    }
    names = ["rockclimbing · crag", "nightlife · " + XSS, "foodporn"]
    return communities, names, posts, imgs


def test_community_cards_html_escapes_and_embeds_thumbnails(tmp_path, make_image):
    communities, names, posts, imgs = communities_fixture(tmp_path, make_image)
    out = community_cards_html(communities, names, tmp_path / "cards.html", posts=posts)
    html = out.read_text(encoding="utf-8")
    assert XSS not in html and "<script" not in html.lower()
    assert XSS_ESCAPED in html
    assert html.count('src="data:image/jpeg;base64,') == 3  # 2 post medoids + 1 path medoid
    assert "unreadable" in html  # the zero-byte medoid
    assert "http://" not in html and "https://" not in html  # self-contained
    assert "99.0%" in html and "rockclimbing · crag" in html
    assert html.index(">acc<") < html.index(XSS_ESCAPED + "</h3>")  # accounts before sources

    thumbs = {"acc": [imgs[0]]}
    html2 = community_cards_html(communities, names, tmp_path / "c2.html", thumbs).read_text()
    assert html2.count("data:image/jpeg;base64,") == 1  # no posts: index medoids are skipped


def test_community_cards_png(tmp_path, make_image):
    communities, names, _, _ = communities_fixture(tmp_path, make_image)
    assert_png(community_cards_png(communities, names, tmp_path / "cards.png"))


def test_bundle_pictures_are_writers_for_every_picture(tmp_path, make_image):
    x, labels = blobs(60, k=3)
    communities, names, _, imgs = communities_fixture(tmp_path, make_image)
    posts = [Post(post_id=f"p{i}", image_path=imgs[i % 3], account="a") for i in range(60)]
    files = bundle_pictures(
        x, labels, names, [[("a", 1.0), ("b", 0.5)]] * 3, [[0, 3], [1], [2, 5]], posts,
        communities, seed=0, community_thumbs={"acc": [imgs[0], imgs[1]]},
    )
    assert set(files) == {"map.png", "communities.html"} | {
        f"cluster_{c:02d}{kind}.png" for c in range(3) for kind in ("", "_terms")}
    for name, writer in files.items():  # the bundle calls each writer with its own path
        path = tmp_path / "bundle" / "pictures" / name
        writer(path)
        if name.endswith(".png"):
            assert_png(path)
    html = (tmp_path / "bundle" / "pictures" / "communities.html").read_text(encoding="utf-8")
    assert XSS not in html and XSS_ESCAPED in html
    # "acc" shows its two given thumbnails; the others fall back to their medoids, which
    # without posts resolve only where they are image paths (none here besides "acc")
    assert html.count('src="data:image/jpeg;base64,') == 2


def test_log_pictures_to_wandb_none_is_noop(tmp_path):
    assert log_pictures_to_wandb(None, {"map": tmp_path / "missing.png"}) == {}


def test_log_pictures_to_wandb_offline(tmp_path, monkeypatch, make_image):
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        (tmp_path / var).mkdir()
        monkeypatch.setenv(var, str(tmp_path / var))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb = pytest.importorskip("wandb")
    png = top_terms_chart([("a", 1.0)], tmp_path / "terms.png", "t")
    html = community_cards_html({"c": {"kind": "group", "size": 1, "profile": [1.0]}},
                                  ["x"], tmp_path / "cards.html")
    run = wandb.init(project="mmembed-test", mode="offline", dir=str(tmp_path / "WANDB_DIR"))
    try:
        with pytest.warns(UserWarning, match="does not exist"):
            logged = log_pictures_to_wandb(
                run, {"terms": png, "communities": html, "gone": tmp_path / "gone.png"})
    finally:
        run.finish()
    assert set(logged) == {"bundle/terms", "bundle/communities"}
    assert isinstance(logged["bundle/terms"], wandb.Image)
    assert isinstance(logged["bundle/communities"], wandb.Html)
    assert list((tmp_path / "WANDB_DIR").rglob("*.png"))  # the image went into the run's media
