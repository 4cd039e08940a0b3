"""The HTML ranking report: self-contained, in rank order, escaped, lists skipped inputs."""

from __future__ import annotations

import base64
import re

import pytest

from mmembed.report.html import render_report, write_report

XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def photo(rank, image, **extra):
    out = {
        "image": str(image), "status": "ranked", "rank": rank, "score": 1.5 - rank,
        "fit": 0.1 * rank, "fit_cluster": 0.3, "fit_local": 0.3 - 0.1 * rank,
        "engagement": -3.5, "expected_likes": 1234.0 if rank == 1 else None,
        "audience_score": 83.0 if rank == 1 else 40.0, "flags": [], "duplicate_group": None,
        "q": [0.7, 0.2, 0.1], "top_cluster": 0,
        "explanation": {"cluster": {"id": 0, "name": "climbing · crag"}, "share": 0.7,
                        "community_share": 0.6, "cluster_engagement_ratio": 1.25,
                        "local_ratio": 2.0, "runner_up": None},
        "neighbours": [], "hashtags": [{"tag": "bouldering", "weight": 0.9, "count": 12}],
        "mentions": [{"mention": "cragworks", "weight": 0.5, "count": 3}],
        "captions": ["Send it!"],
    }
    out.update(extra)
    return out


@pytest.fixture
def result(tmp_path, make_image):
    good = make_image(tmp_path / "shoot" / "alpha_first.jpg", size=(40, 30))
    second = make_image(tmp_path / "shoot" / "beta_second.png", size=(30, 50), color=(20, 90, 200))
    broken = tmp_path / "shoot" / "gamma_broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    neighbour = make_image(tmp_path / "posts" / "p1.jpg", size=(20, 20), color=(10, 200, 10))
    return {
        "bundle": "dev",
        "community": {"name": "rockclimbing", "kind": "source", "size": 321,
                      "profile": [0.6, 0.3, 0.1],
                      "top_hashtags": [["climbing", 40], ["crag", 12]]},
        "clusters": [{"id": 0, "name": "climbing · crag"}, {"id": 1, "name": "nightlife · club"},
                     {"id": 2, "name": "food · plate"}],
        "settings": {"alpha": 0.3, "divergence": "kl_pq", "eps": 1e-3, "followers": 10000,
                     "lift_weight": 1.0},
        "reference": {"posts": 30, "source": "30 held-out posts"},
        "post": [str(good)],
        "photos": [
            photo(1, good, neighbours=[
                {"post_id": "p1", "caption": "Top out at dawn", "similarity": 0.91,
                 "image_path": str(neighbour), "engagement": -3.1},
                {"post_id": "p2", "caption": "missing picture", "similarity": 0.8,
                 "image_path": str(tmp_path / "posts" / "gone.jpg"), "engagement": -3.3},
            ]),
            photo(2, second),
        ],
        "skipped": [{"image": str(broken), "status": "skipped",
                     "reason": "corrupt: cannot identify image file"}],
        "output_dir": str(tmp_path / "out"),
    }


def test_report_is_self_contained_in_rank_order(result, tmp_path):
    path = write_report(result, tmp_path / "out" / "report.html")
    assert path == tmp_path / "out" / "report.html" and path.is_file()
    assert not [p for p in path.parent.iterdir() if p.name != "report.html"]  # no temp left
    html = path.read_text(encoding="utf-8")
    assert "rockclimbing" in html and "dev" in html
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower()
    assert html.index("alpha_first.jpg") < html.index("beta_second.png")
    first_card = html.index('id="photo-1"')
    assert first_card < html.index('id="photo-2"')
    # every <img> is an embedded JPEG that decodes
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert srcs and all(s.startswith("data:image/jpeg;base64,") for s in srcs)
    for s in set(srcs):
        assert base64.b64decode(s.split(",", 1)[1])[:2] == b"\xff\xd8"
    # numbers a social media manager reads
    assert "beats <b>83%</b> of this community" in html
    # "post these" leads, in plain words; nats are in the details
    assert "Post this for rockclimbing:" in html
    assert "mostly climbing · crag (70%)" in html and "1.2× their usual engagement" in html
    assert html.index("Post this for rockclimbing") < html.index("Ranked photos")
    assert "≈ 1,234 likes" in html
    assert "3.0%" in html  # exp(-3.5) = 3.0 % engagement rate
    assert "#bouldering" in html and "@cragworks" in html and "Send it!" in html
    assert "Top out at dawn" in html and "similarity 0.91" in html
    assert "nightlife · club" in html and "α = 0.3" in html


def test_skipped_section_lists_broken_file_with_reason(result, tmp_path):
    html = write_report(result, tmp_path / "report.html").read_text(encoding="utf-8")
    skipped = html[html.index("Skipped (1)"):]
    assert "gamma_broken.jpg" in skipped
    assert "corrupt" in skipped and "cannot identify image file" in skipped


def test_unreadable_ranked_photo_gets_placeholder(result, tmp_path):
    result["photos"][1]["image"] = str(tmp_path / "shoot" / "vanished.jpg")
    html = render_report(result)
    card = html[html.index('id="photo-2"'):]
    assert card.startswith('id="photo-2"')
    assert "missing: no such file" in card
    assert re.search(r'<img src="data:image/jpeg;base64,', card)


def test_scraped_text_is_escaped(result, tmp_path):
    result["community"]["name"] = XSS
    result["community"]["top_hashtags"] = [[XSS, 3]]
    result["community"]["top_mentions"] = [{"mention": XSS, "count": 2}]
    result["clusters"][0]["name"] = XSS
    ph = result["photos"][0]
    ph["captions"] = [XSS]
    ph["hashtags"] = [{"tag": XSS, "weight": 1.0, "count": 2}]
    ph["mentions"] = [{"mention": XSS, "weight": 1.0, "count": 1}]
    ph["neighbours"][0]["caption"] = XSS
    ph["image"] = str(tmp_path / "shoot" / f"{XSS}.jpg")  # not a valid path on any system
    result["skipped"][0]["reason"] = f"corrupt: {XSS}"
    result["bundle"] = XSS
    html = write_report(result, tmp_path / "report.html").read_text(encoding="utf-8")
    assert XSS_ESCAPED in html
    assert "<script" not in html.lower()
    assert "http://" not in html and "https://" not in html


def test_empty_result_renders(tmp_path):
    html = write_report({"community": {"name": "nobody"}, "photos": [], "skipped": []},
                        tmp_path / "r.html").read_text(encoding="utf-8")
    assert "nobody" in html and "No photo could be ranked" in html
    assert "Every input was ranked" in html


def test_ranker_shape_is_accepted(result):
    """The shape mmembed.ranking.ranker writes: bundle and top_cluster as dicts, mentions."""
    result["bundle"] = {"name": "bundle-x", "path": "/idx/bundle-x", "created": "now", "k": 3}
    result["community"]["top_hashtags"] = [{"tag": "climbing", "count": 40}]
    result["community"]["top_mentions"] = [{"mention": "cragworks", "count": 6}]
    result["community"]["defaulted"] = True
    for ph in result["photos"]:
        ph["top_cluster"] = {"id": 1, "name": "nightlife · club"}
        ph["name"] = "shown-" + ph["image"].rsplit("/", 1)[-1]
    html = render_report(result)
    assert "bundle-x" in html and "/idx/bundle-x" not in html
    assert "#climbing" in html and "@cragworks" in html and "community=ID" in html
    assert "mostly nightlife · club" in html and "shown-alpha_first.jpg" in html


def test_screenshot_script_names_install_command_when_chromium_missing(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "report_screenshot.py"
    spec = importlib.util.spec_from_file_location("report_screenshot", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    report = tmp_path / "report.html"
    report.write_text("<html></html>")
    code = mod.main([str(report), "--out", str(tmp_path / "x.png"),
                     "--chromium", str(tmp_path / "no-chromium")])
    assert code == 3 and not (tmp_path / "x.png").exists()
    assert "apt-get install -y chromium" in capsys.readouterr().err


@pytest.mark.slow
def test_screenshot_script_renders_a_png(result, tmp_path):
    import importlib.util
    from pathlib import Path

    from PIL import Image

    script = Path(__file__).resolve().parents[1] / "scripts" / "report_screenshot.py"
    spec = importlib.util.spec_from_file_location("report_screenshot", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    chromium = mod.find_chromium()
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    report = write_report(result, tmp_path / "report.html")
    out = mod.screenshot(report, tmp_path / "shot.png", chromium, (800, 600))
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (800, 600)


def test_a_page_can_extend_the_report_template(result):
    """The web app renders the same context through a template that extends report.j2."""
    from mmembed.report.html import report_context
    from mmembed.report.templating import environment

    page = environment().from_string(
        '{% extends "report.j2" %}{% block footer %}<footer>served {{ n_ranked }}</footer>'
        '{% endblock %}')
    html = page.render(report_context(result))
    report = render_report(result)
    footer = report[report.index('<footer class="page">'):report.index("</footer>") + 9]
    assert "mmembed ranking report" in footer
    # everything but the overridden block is the report itself
    assert html == report.replace(footer + "\n", "<footer>served 2</footer>")


def test_no_html_in_python_sources():
    """Pages live in mmembed/report/templates/*.j2, not in strings inside Python modules."""
    from pathlib import Path

    import mmembed

    tag = re.compile(r"<(!doctype|html|head|body|div|span|section|article|img|style)\b", re.I)
    offenders = [str(p) for p in Path(mmembed.__file__).parent.rglob("*.py")
                 if tag.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
