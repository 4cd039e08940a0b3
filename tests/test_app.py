"""The served app (``rank.py serve=true``) on the session's tiny bundle: the JSON API and the
pages through FastAPI's TestClient, the limits, escaping, concurrency, and one real browser
(Playwright driving Debian's Chromium) uploading photos through the form."""

import base64
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from mmembed.app.server import create_app, running
from mmembed.app.service import RankService
from mmembed.app.settings import AppSettings
from mmembed.bundle.folder import sha256_file
from mmembed.cli.rank import rank
from mmembed.config import compose
from mmembed.ranking.ranker import Ranker
from mmembed.ranking.settings import RankSettings

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def upload_dir(tmp_path):
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


def client_for(ranker, upload_dir, **limits) -> TestClient:
    service = RankService(ranker, RankSettings(), AppSettings(upload_dir=str(upload_dir),
                                                              **limits))
    return TestClient(create_app(service))


@pytest.fixture
def client(ranker, upload_dir):
    return client_for(ranker, upload_dir)


def files_of(paths, extra=()):
    """``files`` form parts: each path under its own name, then ``extra`` (name, bytes)."""
    return ([("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]
            + [("files", (name, data, "application/octet-stream")) for name, data in extra])


def account(ranker) -> tuple[str, str]:
    """The default (largest account) community: (name, short id)."""
    name = ranker.default_community()
    return name, ranker.community_ids[name]


def essence(result: dict) -> dict:
    """What a ranking says of each input: every field but the file's path."""
    photos = [{k: v for k, v in p.items() if k != "image"} for p in result["photos"]]
    skipped = [(Path(s["image"]).name, s["reason"]) for s in result["skipped"]]
    return {"photos": photos, "skipped": skipped, "community": result["community"]["name"],
            "post": [Path(p).name for p in result["post"]], "counts": result["counts"]}


def differences(got: dict, want: dict) -> list[str]:
    """Where two essences differ: ``photo N: key`` or a top-level key."""
    out = [k for k in want if k != "photos" and got[k] != want[k]]
    if len(got["photos"]) != len(want["photos"]):
        return out + ["number of photos"]
    for i, (a, b) in enumerate(zip(got["photos"], want["photos"])):
        out += [f"photo {i} ({b['name']}): {k}: {a[k]!r} != {b[k]!r}" for k in b if a[k] != b[k]]
    return out


def rank_py(ranker, tmp_path, images, community, *overrides) -> dict:
    """What ``rank.py`` answers (its function, on the same loaded ranker)."""
    cfg = compose([f"out={tmp_path / 'out'}", f"community={community}",
                   "images=[" + ",".join(str(p) for p in images) + "]", *overrides],
                  config_name="rank")
    return rank(cfg, ranker=ranker)


# ------------------------------------------------------------------------------ the API
def test_health_and_communities(client, ranker):
    health = client.get("/api/health").json()
    assert health == {"status": "ok", "bundle": ranker.bundle.name, "k": ranker.k,
                      "communities": len(ranker.communities)}
    listed = client.get("/api/communities").json()["communities"]
    assert {c["name"] for c in listed} == set(ranker.communities)
    for c in listed:  # each id names its community
        assert ranker.resolve_community(c["id"]) == c["name"]
        assert len(c["profile"]) == ranker.k
    assert "/api/rank" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


def test_api_rank_is_rank_py_with_broken_files_skipped(client, ranker, shoot, tmp_path,
                                                       upload_dir):
    photos = shoot[:6]
    broken = tmp_path / "notes.jpg"
    broken.write_text("not a photo\n")
    name, cid = account(ranker)
    got = client.post("/api/rank", files=files_of(photos, [("notes.jpg", broken.read_bytes())]),
                      data={"community": cid, "followers": "5000", "alpha": "0.5"})
    assert got.status_code == 200, got.text
    result = got.json()
    expected = rank_py(ranker, tmp_path, [*photos, broken], cid, "followers=5000",
                       "rank.alpha=0.5")
    on_disk = json.loads((tmp_path / "out" / "ranking.json").read_text())
    assert set(result) == set(on_disk)  # ranking.json's schema
    assert differences(essence(result), essence(expected)) == []
    assert result["counts"] == {"inputs": 7, "ranked": 6, "skipped": 1}
    assert result["skipped"] == [{"image": "notes.jpg", "status": "skipped",
                                  "reason": "not an image: Pillow cannot identify the file"}]
    assert [p["image"] for p in result["photos"]] == [p["name"] for p in result["photos"]]
    assert {p["image"] for p in result["photos"]} == {p.name for p in photos}
    assert result["community"]["name"] == name and result["settings"]["followers"] == 5000
    assert all(p["expected_likes"] is not None or p["audience_score"] is None
               for p in result["photos"])
    assert list(upload_dir.iterdir()) == []  # the request's folder is gone


def test_model_is_loaded_once(ranker, upload_dir, shoot, monkeypatch):
    client = client_for(ranker, upload_dir)
    loads = []
    monkeypatch.setattr(type(ranker.bundle), "model", lambda *a, **k: loads.append(1))
    for _ in range(2):
        assert client.post("/api/rank", files=files_of(shoot[:2]),
                           data={"community": account(ranker)[1]}).status_code == 200
    assert loads == []


def test_zip_upload_takes_its_photos_by_name_only(client, ranker, shoot, tmp_path, upload_dir):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("shoot/", b"")
        zf.writestr("__MACOSX/shoot/._a.jpg", b"resource fork")
        zf.write(shoot[0], "shoot/a.jpg")
        zf.write(shoot[1], "../../escape.jpg")
        zf.write(shoot[2], "C:\\Users\\me\\b.jpg")
    got = client.post("/api/rank", files=[("files", ("shoot.zip", buf.getvalue(),
                                                     "application/zip"))],
                      data={"community": account(ranker)[1]})
    assert got.status_code == 200, got.text
    assert sorted(p["name"] for p in got.json()["photos"]) == ["a.jpg", "b.jpg", "escape.jpg"]
    assert not (upload_dir.parent / "escape.jpg").exists()
    assert list(upload_dir.iterdir()) == []


@pytest.mark.parametrize("limits, send, needle", [
    ({"max_files": 2}, 3, "app.max_files"),                       # three parts for two
    ({"max_files": 2}, "zip", "app.max_files"),                   # three zip members
    ({"max_file_mb": 0.001}, 1, "app.max_file_mb"),               # one photo past 1 kB
    ({"max_upload_mb": 0.002}, 3, "app.max_upload_mb"),           # three photos past 2 kB
    ({"max_upload_mb": 0.01, "max_files": 5}, "big", "app.max_upload_mb"),  # 300 kB declared
])
@pytest.mark.parametrize("route", ["/api/rank", "/rank"])
def test_limits_answer_413(ranker, shoot, upload_dir, limits, send, needle, route):
    client = client_for(ranker, upload_dir, **limits)
    if send == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for p in shoot[:3]:
                zf.write(p, p.name)
        files = [("files", ("three.zip", buf.getvalue(), "application/zip"))]
    elif send == "big":
        files = files_of([], [("big.jpg", os.urandom(300_000))])
    else:
        files = files_of(shoot[:send])
    got = client.post(route, files=files, data={"community": account(ranker)[1]})
    assert got.status_code == 413, got.text
    if route.startswith("/api"):
        assert needle in got.json()["detail"]
    else:
        assert "Upload too large" in got.text and needle in got.text
    assert list(upload_dir.iterdir()) == []


def test_a_streamed_body_past_the_limit_answers_413(ranker, upload_dir):
    """A chunked body declares no length: it is stopped while it streams in."""
    client = client_for(ranker, upload_dir, max_upload_mb=0.01)
    request = httpx.Request("POST", "http://app/api/rank", data={"community": "x"},
                            files=[("files", ("big.jpg", os.urandom(400_000)))])
    body = request.read()
    got = client.post("/api/rank", headers={"content-type": request.headers["content-type"]},
                      content=(body[i:i + 65536] for i in range(0, len(body), 65536)))
    assert "content-length" not in got.request.headers
    assert got.status_code == 413 and "app.max_upload_mb" in got.json()["detail"]
    assert list(upload_dir.iterdir()) == []


def test_requests_that_cannot_be_ranked_answer_422(client, ranker, shoot, upload_dir):
    cid = account(ranker)[1]
    no_community = client.post("/api/rank", files=files_of(shoot[:1]))
    assert no_community.status_code == 422
    unknown = client.post("/api/rank", files=files_of(shoot[:1]), data={"community": cid + "x"})
    assert unknown.status_code == 422 and "unknown community" in unknown.json()["detail"]
    assert cid in unknown.json()["detail"]  # the close name
    alpha = client.post("/api/rank", files=files_of(shoot[:1]),
                        data={"community": cid, "alpha": "2"})
    assert alpha.status_code == 422
    form_alpha = client.post("/rank", files=files_of(shoot[:1]),
                             data={"community": cid, "alpha": "2"})
    assert form_alpha.status_code == 422 and "rank.alpha must be" in form_alpha.text
    broken = client.post("/api/rank", data={"community": cid},
                         files=files_of([], [("a.jpg", b""), ("b.png", b"\x89PNG broken")]))
    assert broken.status_code == 422, broken.text
    body = broken.json()
    assert "no photo could be read" in body["detail"]
    assert [(s["image"], s["reason"].split(":")[0]) for s in body["skipped"]] == [
        ("a.jpg", "empty"), ("b.png", "not an image")]
    assert list(upload_dir.iterdir()) == []


# ------------------------------------------------------------------------------ pages
def test_form_upload_results_page_and_downloads(client, ranker, shoot):
    name, cid = account(ranker)
    form = client.get(f"/?community={cid}")
    assert form.status_code == 200
    assert f'<option value="{cid}" selected>' in form.text
    assert 'name="files" multiple' in form.text
    copy = ("copy of first.jpg", shoot[0].read_bytes())  # a near-duplicate in the shoot
    sent = client.post("/rank", files=files_of(shoot[:4], [copy, ("readme.txt", b"hello")]),
                       data={"community": cid, "followers": "", "alpha": ""},
                       follow_redirects=False)
    assert sent.status_code == 303, sent.text
    page = client.get(sent.headers["location"])
    assert page.status_code == 200
    assert f"Photo ranking for {name}" in page.text
    for p in shoot[:4]:
        assert p.name in page.text
    assert "readme.txt" in page.text and "Skipped (1)" in page.text
    as_json = client.get(sent.headers["location"] + "/ranking.json").json()
    assert as_json["counts"] == {"inputs": 6, "ranked": 5, "skipped": 1}
    pair = {shoot[0].name, copy[0]}
    flagged = [p for p in as_json["photos"] if p["duplicate_of"]]
    assert [{p["name"], p["duplicate_of"]} for p in flagged] == [pair]
    assert f"a near-copy of {flagged[0]['duplicate_of']}, which ranks above it" in page.text
    csv_text = client.get(sent.headers["location"] + "/ranking.csv").text
    rows = csv_text.strip().splitlines()
    assert len(rows) == 1 + 6 and rows[-1].startswith("readme.txt,skipped,")
    assert f"duplicate_of:{flagged[0]['duplicate_of']}" in csv_text
    assert client.get("/results/nope").status_code == 404


def test_communities_page_is_searchable_with_cluster_pictures(client, ranker):
    page = client.get("/communities").text
    for name in ranker.communities:
        assert f'title="{name}"' in page or name in page
    assert page.count('class="community"') == len(ranker.communities)
    name, cid = account(ranker)
    found = client.get("/communities", params={"q": cid}).text
    shown = re.findall(r'class="community" data-search="([^"]*)"', found)
    assert f"community={cid}" in found and 1 <= len(shown) < len(ranker.communities)
    assert all(cid in text for text in shown)  # its name, or a mention of it
    assert client.get("/communities", params={"q": "zzzz-nothing"}).text.count(
        'class="community"') == 0
    assert "/pictures/clusters/0.png" in page
    picture = client.get("/pictures/clusters/0.png")
    assert picture.status_code == 200 and picture.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/pictures/clusters/{ranker.k}.png").status_code == 404


@pytest.fixture(scope="module")
def hostile_ranker(tiny_bundle, tmp_path_factory):
    """The tiny bundle with a community, a hashtag and every caption made of markup."""
    folder = tmp_path_factory.mktemp("hostile") / "bundle"
    shutil.copytree(tiny_bundle, folder)
    communities = json.loads((folder / "communities.json").read_text())
    name = max((n for n, c in communities.items() if c["kind"] == "account"),
               key=lambda n: communities[n]["size"])
    record = communities.pop(name)
    record["top_hashtags"] = [["<img src=x onerror=alert(1)>", 9]] + record["top_hashtags"]
    communities[HOSTILE] = record
    (folder / "communities.json").write_text(json.dumps(communities))
    rows = [json.loads(line) for line in (folder / "posts.jsonl").read_text().splitlines()]
    for row in rows:
        row["caption"] = "<b onmouseover=alert(2)>great climb</b> #crag"
    (folder / "posts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in ("communities.json", "posts.jsonl"):  # the files as the build would list them
        manifest["files"][name].update(bytes=(folder / name).stat().st_size,
                                       sha256=sha256_file(folder / name))
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return Ranker.from_bundle(folder)


def test_scraped_strings_are_escaped_in_every_page(hostile_ranker, shoot, upload_dir):
    client = client_for(hostile_ranker, upload_dir)
    cid = hostile_ranker.community_ids[HOSTILE]
    sent = client.post("/rank", data={"community": cid}, follow_redirects=False,
                       files=files_of(shoot[:3], [("<svg onload=alert(3)>.jpg", b"x")]))
    assert sent.status_code == 303, sent.text
    pages = {"upload": client.get("/").text, "communities": client.get("/communities").text,
             "results": client.get(sent.headers["location"]).text,
             "error": client.post("/rank", data={"community": HOSTILE + "?"},
                                  files=files_of(shoot[:1])).text}
    for page, html in pages.items():
        assert "<script>alert" not in html, page
        assert "onerror=alert" not in html.replace("onerror=alert(1)&gt;", ""), page
        assert "<b onmouseover" not in html and "<svg onload" not in html, page
        assert "<img src=x" not in html, page
        assert "&lt;script&gt;alert(" in html, page
    assert "&lt;b onmouseover=alert(2)&gt;" in pages["results"]  # a neighbour's caption
    assert "&lt;svg onload=alert(3)&gt;.jpg" in pages["results"]  # the skipped file's name


# ------------------------------------------------------------------------------ served
def test_concurrent_requests_give_rank_py_answers(ranker, shoot, upload_dir, tmp_path):
    service = RankService(ranker, RankSettings(), AppSettings(upload_dir=str(upload_dir),
                                                              concurrent_rankings=4))
    communities = [n for n in ranker.communities][:2]
    ids = [ranker.community_ids[n] for n in communities]
    photos = shoot[:4]
    expected = {cid: essence(rank_py(ranker, tmp_path / cid, photos, cid)) for cid in ids}

    with running(create_app(service)) as url:
        def post(cid):
            with httpx.Client(base_url=url, timeout=120) as http:
                got = http.post("/api/rank", files=files_of(photos), data={"community": cid})
                assert got.status_code == 200, got.text
                return cid, got.json()

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(post, ids * 2))
    for cid, result in answers:
        assert differences(essence(result), expected[cid]) == [], cid
    assert list(upload_dir.iterdir()) == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # a new process loads the model: ~50 s on a loaded 2-core machine
def test_rank_py_serve_true_serves(tiny_bundle, tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "rank.py"), "serve=true",
                             f"bundle={tiny_bundle}", f"port={port}"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not answer in 300 s"
                time.sleep(0.2)
        assert health.json()["bundle"] == Path(tiny_bundle).name
        assert "Which photos should you post?" in httpx.get(f"http://127.0.0.1:{port}/").text
        proc.send_signal(signal.SIGINT)  # Ctrl+C
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{port}/" in out and "given by bundle=" in out
    assert "Traceback" not in out


def test_browser_uploads_photos_and_reads_the_ranking(ranker, shoot, upload_dir, tmp_path):
    """Chromium opens the form, chooses photos and a community, submits, and reads the
    ranking; then searches the communities page."""
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: .ci/run installs it (apt-get install -y chromium)")
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    name, cid = account(ranker)
    service = RankService(ranker, RankSettings(), AppSettings(upload_dir=str(upload_dir)))
    with running(create_app(service)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            page.goto(url + "/")
            dropped = page.evaluate_handle("""files => {
                const dt = new DataTransfer();
                for (const [name, b64] of files) {
                    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                    dt.items.add(new File([bytes], name, {type: "image/jpeg"}));
                }
                return dt;
            }""", [[p.name, base64.b64encode(p.read_bytes()).decode()]
                   for p in [*shoot[:5], broken]])
            page.dispatch_event("#drop", "drop", {"dataTransfer": dropped})  # drag and drop
            assert page.inner_text("#chosen") == "6 files chosen"
            page.select_option("#community", cid)
            page.fill("#followers", "2500")
            page.click("#rank")
            page.wait_for_url(url + "/results/*", timeout=120_000)
            assert page.inner_text("h1") == name
            tiles = page.locator(".tile .fn").all_inner_texts()
            assert sorted(tiles) == sorted(p.name for p in shoot[:5])
            first = page.locator("article.card").first
            assert first.locator(".badge").inner_text() == "#1"
            assert "likes" in first.inner_text()  # followers were taken
            assert page.locator(".skipped .f").all_inner_texts() == ["broken.jpg"]
            with page.expect_download() as download:
                page.click("text=Download CSV")
            lines = Path(download.value.path()).read_text().splitlines()
            assert lines[1].split(",")[0] == tiles[0]

            page.goto(url + "/communities")
            every = page.locator(".community").count()
            page.fill("#q", cid)  # filtered as one types: its own card, and those mentioning it
            assert 1 <= page.locator(".community:visible").count() < every
            card = page.locator(".community:visible", has=page.locator(f"h3[title='{name}']"))
            card.locator(".rank-for").click()
            assert page.locator("#community").input_value() == cid

            page.goto(url + "/docs")  # Swagger UI from the package's files, no network
            page.locator('[data-path="/api/rank"]').first.wait_for(timeout=30_000)
        finally:
            browser.close()
    assert list(upload_dir.iterdir()) == []
