import io

import numpy as np
import pytest
from PIL import Image

from mmembed.data import ImageError, check_images, list_images, load_image
from mmembed.data.images import format_skipped
from mmembed.data.post import Corpus, Post


def test_good_image_is_rgb_and_resized(tmp_path, make_image):
    path = make_image(tmp_path / "a.png", size=(40, 20), mode="L")
    img = load_image(path, size=16)
    assert img.mode == "RGB" and img.size == (16, 16)


def test_alpha_is_composited_on_white(tmp_path):
    arr = np.zeros((8, 8, 4), dtype=np.uint8)
    arr[:4, :, :] = (255, 0, 0, 255)  # opaque red top half, transparent bottom half
    Image.fromarray(arr, "RGBA").save(tmp_path / "cut.png")
    img = np.asarray(load_image(tmp_path / "cut.png"))
    assert tuple(img[0, 0]) == (255, 0, 0)
    assert tuple(img[7, 7]) == (255, 255, 255)


def test_palette_with_transparency_and_16bit(tmp_path):
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([0, 0, 0] * 256)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    assert tuple(np.asarray(load_image(tmp_path / "p.png"))[0, 0]) == (255, 255, 255)
    Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)).save(tmp_path / "i16.png")
    assert np.asarray(load_image(tmp_path / "i16.png")).min() >= 250


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (30, 10), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    img.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "rot.jpg").size == (10, 30)


@pytest.mark.parametrize("kind", ["zero", "truncated", "corrupt", "text", "missing", "bomb"])
def test_bad_files_become_errors_naming_file_and_reason(tmp_path, make_image, kind):
    path = tmp_path / f"{kind}.jpg"
    if kind == "zero":
        path.write_bytes(b"")
    elif kind == "truncated":
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
                        ).save(buf, "JPEG")
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif kind == "corrupt":
        path.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 50)
    elif kind == "text":
        path.write_text("this is not an image")
    elif kind == "bomb":
        make_image(path, size=(400, 300))
    result = load_image(path, max_pixels=10_000 if kind == "bomb" else 64_000_000)
    assert isinstance(result, ImageError), kind
    assert result.path == str(path)
    expected = {"zero": "empty", "truncated": "truncated", "corrupt": "", "text": "not an image",
                "missing": "missing", "bomb": "too large"}[kind]
    assert result.reason.startswith(expected) and result.reason


def test_folder_with_broken_files_reports_each(tmp_path, make_image):
    make_image(tmp_path / "good1.jpg")
    make_image(tmp_path / "sub" / "good2.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "fake.png").write_text("nope")
    files, skipped = list_images(tmp_path)
    assert {f.name for f in files} == {"good1.jpg", "good2.png", "empty.jpg", "fake.png"}
    assert [s.item for s in skipped] == [str(tmp_path / "notes.txt")]
    corpus = Corpus(posts=[Post(f.stem, str(f)) for f in files], skipped=skipped)
    checked = check_images(corpus, progress=False)
    assert sorted(p.post_id for p in checked.posts) == ["good1", "good2"]
    report = format_skipped(checked.skipped)
    for name, reason in [("empty.jpg", "empty"), ("fake.png", "not an image"),
                         ("notes.txt", "not an image")]:
        line = next(line for line in report.splitlines() if name in line)
        assert reason in line


def test_list_images_glob_and_missing(tmp_path, make_image, monkeypatch):
    make_image(tmp_path / "a.jpg")
    make_image(tmp_path / "b.jpg")
    monkeypatch.chdir(tmp_path)
    files, skipped = list_images(["*.jpg", "nope/", str(tmp_path / "a.jpg")])
    assert [f.name for f in files] == ["a.jpg", "b.jpg"]
    assert len(skipped) == 1 and skipped[0].reason.startswith("missing")
