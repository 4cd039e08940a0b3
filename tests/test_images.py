import io
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from mmembed.data import ImageError, check_images, list_images, load_image
from mmembed.data.images import DecodeBudget, format_skipped
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
    checked = check_images(corpus)
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


# ------------------------------------------------------------------ inputs that used to vanish

def test_folder_reports_directories_broken_links_and_follows_linked_folders(tmp_path, make_image):
    make_image(tmp_path / "shoot" / "a.jpg")
    (tmp_path / "shoot" / "x.jpg").mkdir()
    (tmp_path / "shoot" / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    make_image(tmp_path / "elsewhere" / "b.jpg")
    (tmp_path / "shoot" / "more").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "shoot" / "more" / "loop").symlink_to(tmp_path / "shoot")
    files, skipped = list_images(tmp_path / "shoot")
    assert [f.name for f in files] == ["a.jpg", "b.jpg"]
    reasons = {Path(s.item).name: s.reason for s in skipped}
    assert reasons["x.jpg"] == "not a file: a directory"
    assert reasons["gone.jpg"] == f"missing: broken symbolic link to {tmp_path / 'deleted.jpg'}"
    assert reasons["loop"].startswith("not followed")
    files, skipped = list_images([str(tmp_path / "shoot" / "*.jpg"),
                                  str(tmp_path / "shoot" / "gone.jpg")])
    assert [f.name for f in files] == ["a.jpg"]
    assert sorted(Path(s.item).name for s in skipped) == ["gone.jpg", "gone.jpg", "x.jpg"]


def test_load_image_names_a_directory_and_a_broken_link(tmp_path):
    (tmp_path / "x.jpg").mkdir()
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    assert load_image(tmp_path / "x.jpg").reason == "not a file: a directory"
    assert load_image(tmp_path / "gone.jpg").reason.startswith("missing: broken symbolic link")


def _decode_as_before(path, size):
    """The one-step decode: flatten at full size, then one bicubic resize and crop."""
    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        if im.mode != "RGB":
            rgba = im.convert("RGBA")
            im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255,) * 4), rgba)
        rgb = im.convert("RGB")
    return np.asarray(ImageOps.fit(rgb, (size, size), Image.Resampling.BICUBIC), dtype=float)


def _disc(side_x, side_y, mode):
    """A grey or colour gradient with a soft-edged alpha disc."""
    x, y = np.meshgrid(np.linspace(-1, 1, side_x), np.linspace(-1, 1, side_y))
    grey = ((x + 1) * 100 + (y + 1) * 27).astype(np.uint8)
    alpha = np.clip((0.8 - np.hypot(x, y)) * 1000, 0, 255).astype(np.uint8)
    if mode == "LA":
        return Image.fromarray(np.dstack([grey, alpha]), "LA")
    return Image.fromarray(np.dstack([grey, 255 - grey, grey // 2]), "RGB")


_PEAK_SCRIPT = """
import resource, sys
from concurrent.futures import ThreadPoolExecutor
from mmembed.data.images import DecodeBudget, load_image
paths, budget = sys.argv[2:], DecodeBudget(int(sys.argv[1]))
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
base = rss()
with ThreadPoolExecutor(4) as pool:
    images = list(pool.map(lambda p: load_image(p, size=64, budget=budget), paths))
print(rss() - base, budget.peak, {im.size for im in images})
"""


def test_four_threads_decoding_huge_pngs_hold_about_one_decoded_copy(tmp_path):
    """Four 3072² LA PNGs (36 MiB each once decoded) on four threads with a budget of one
    decode: the peak grows by about two copies of one image, not five copies of four."""
    side = 3072
    first = tmp_path / "h0.png"
    _disc(side, side, "LA").save(first, compress_level=1)
    paths = [first] + [tmp_path / f"h{i}.png" for i in range(1, 4)]
    for p in paths[1:]:
        os.link(first, p)
    decoded = side * side * 4
    proc = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(2 * decoded),
                           *map(str, paths)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr
    grew, peak, sizes = proc.stdout.split(maxsplit=2)
    assert sizes.strip() == "{(64, 64)}"
    assert int(peak) == 2 * decoded  # the budget let one decode run at a time
    assert int(grew) < 3 * decoded, int(grew) / decoded  # one-step decode: 4 × 5 copies


def test_a_large_image_is_reduced_first_and_decodes_like_the_one_step_resize(tmp_path):
    """Shrinking before flattening alpha changes the pixels by a fraction of a grey level, and
    an image under PREREDUCE × size takes the one-step path exactly."""
    _disc(2000, 1500, "LA").save(tmp_path / "huge.png")
    _disc(2000, 1500, "RGB").save(tmp_path / "huge.jpg", quality=95)
    _disc(200, 150, "LA").save(tmp_path / "small.png")
    budget = DecodeBudget()
    for name in ("huge.png", "huge.jpg"):
        got = np.asarray(load_image(tmp_path / name, size=64, budget=budget), dtype=float)
        diff = np.abs(got - _decode_as_before(tmp_path / name, 64))
        assert got.shape == (64, 64, 3) and diff.mean() < 0.25 and diff.max() <= 2, name
    small = np.asarray(load_image(tmp_path / "small.png", size=64), dtype=float)
    assert np.array_equal(small, _decode_as_before(tmp_path / "small.png", 64))  # under 8x


def test_decode_budget_makes_decodes_take_turns_and_never_deadlocks():
    budget = DecodeBudget(100)
    running, most = [0], [0]
    lock = threading.Lock()

    def work(n):
        with budget.hold(n):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, [60, 60, 60, 500, 30, 30]))  # 500: more than the budget, runs alone
    assert budget.peak <= 100 and budget.held == 0
    assert most[0] <= 2  # 60 + 30 at most, never two of 60
