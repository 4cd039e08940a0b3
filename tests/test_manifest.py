import csv
import json
import subprocess
import sys

import pytest

from mmembed.data.sources import SourceError
from mmembed.data.sources.manifest import ManifestSource


def _records(folder, make_image):
    make_image(folder / "img" / "a.jpg")
    make_image(folder / "img" / "b.jpg")
    return [
        {"post_id": "a", "image_path": "img/a.jpg", "caption": "Crag day #climbing @alex",
         "likes": 120, "followers": 5000, "account": "crag_co"},
        {"post_id": "b", "image_path": "img/b.jpg", "caption": "Night out", "likes": "7",
         "account": "club"},
        {"post_id": "c", "image_path": "../outside.jpg", "likes": 1},
        {"post_id": "d", "image_path": "img/missing.jpg"},
        {"post_id": "e", "image_path": "img/a.jpg", "likes": "lots"},
        {"post_id": "a", "image_path": "img/b.jpg"},
    ]


def test_jsonl_manifest(tmp_path, make_image):
    records = _records(tmp_path, make_image)
    lines = [json.dumps(r) for r in records] + ["{not json", "[1, 2]"]
    (tmp_path / "posts.jsonl").write_text("\n".join(lines) + "\n")
    corpus = ManifestSource(str(tmp_path / "posts.jsonl")).load()
    assert [p.post_id for p in corpus.posts] == ["a", "b"]
    a = corpus.posts[0]
    assert a.image_path == str((tmp_path / "img" / "a.jpg").resolve())
    assert a.hashtags == ["climbing"] and a.mentions == ["alex"] and a.followers == 5000
    assert a.source == "posts"
    reasons = {s.item: s.reason for s in corpus.skipped}
    assert "escapes" in reasons["posts.jsonl row 3"]
    assert reasons["posts.jsonl row 4"].startswith("missing image")
    assert "likes" in reasons["posts.jsonl row 5"]
    assert reasons["posts.jsonl row 6"].startswith("duplicate post_id")
    assert "invalid JSON" in reasons["posts.jsonl row 7"]
    assert "JSON object" in reasons["posts.jsonl row 8"]


def test_csv_manifest_rows_numbered_like_a_spreadsheet(tmp_path, make_image):
    records = _records(tmp_path, make_image)
    with open(tmp_path / "posts.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["post_id", "image_path", "caption", "likes",
                                                "followers", "account"])
        writer.writeheader()
        writer.writerows(records)
    corpus = ManifestSource(str(tmp_path / "posts.csv")).load()
    assert [p.post_id for p in corpus.posts] == ["a", "b"]
    assert corpus.posts[1].followers is None and corpus.posts[1].likes == 7
    assert "escapes" in {s.item: s.reason for s in corpus.skipped}["posts.csv row 4"]


def test_missing_manifest_names_the_fix(tmp_path):
    with pytest.raises(SourceError, match="data.path"):
        ManifestSource(str(tmp_path / "nope.jsonl")).load()


def test_inspector_reports_broken_files(tmp_path, make_image):
    records = _records(tmp_path, make_image)[:2]
    (tmp_path / "img" / "broken.jpg").write_bytes(b"\xff\xd8 broken")
    records.append({"post_id": "x", "image_path": "img/broken.jpg"})
    (tmp_path / "posts.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    result = subprocess.run(
        [sys.executable, "-m", "mmembed.data", "data=manifest",
         f"data.path={tmp_path / 'posts.jsonl'}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    line = next(t for t in result.stdout.splitlines() if "broken.jpg" in t)
    assert "not an image" in line
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"post_id": "x", "image_path": "img/broken.jpg"}) + "\n")
    result = subprocess.run([sys.executable, "-m", "mmembed.data", "data=manifest",
                             f"data.path={empty}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "no post loaded" in result.stdout
