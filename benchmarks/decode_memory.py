"""Decode memory: peak RSS of ranking huge grey+alpha PNGs ÷ ranking ordinary photos.

    python benchmarks/decode_memory.py [--bundle index/NAME] [--huge 8] [--side 7999]
                                       [--ordinary 6] [--camera 6]

Folders, generated once into a temporary folder:

- ``ordinary``: ``--ordinary`` copies of the bundle's own post images (the baseline);
- ``huge``: ``--huge`` grey+alpha (mode LA) PNGs of ``--side``² pixels, a soft-edged disc on a
  gradient: 1.6 MB on disk each and under the 64 MP decompression-bomb guard, yet 256 MB each
  once Pillow decodes them (4 bytes a pixel);
- ``camera`` (with ``--camera`` > 0): 4000×3000 JPEGs, the size a phone or camera writes.

Each folder is ranked by the real CLI, ``python rank.py bundle=... images=FOLDER report=false``,
in a fresh subprocess; its peak resident set size is the child's own ``ru_maxrss`` from
``os.wait4`` (see ``rank_memory.py``). Goal: huge ÷ ordinary <= 1.5.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from _photos import bundle_photos  # benchmarks/ is on sys.path when run as a script
from PIL import Image
from rank_memory import peak_rss

from mmembed.bundle import newest_bundle, read_bundle

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1.5


def huge_la_png(path: Path, side: int) -> Path:
    """A ``side``² LA PNG: grey gradient, alpha a disc with a soft edge."""
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    grey = ((ramp[None, :] + ramp[:, None]) / 2).astype(np.uint8)
    r = np.hypot(*np.ogrid[-1:1:side * 1j, -1:1:side * 1j])
    alpha = np.clip((0.9 - r) * 2550, 0, 255).astype(np.uint8)
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(path)
    return path


def camera_jpeg(path: Path, seed: int) -> Path:
    """A 4000×3000 JPEG with smooth colour fields and noise, like a photo of a scene."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small, "RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
    noise = rng.integers(-12, 12, (3000, 4000, 3))
    Image.fromarray(np.clip(np.asarray(img) + noise, 0, 255).astype(np.uint8)).save(
        path, quality=90)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default=None, help="bundle folder (default: newest in index/)")
    parser.add_argument("--huge", type=int, default=8)
    parser.add_argument("--side", type=int, default=7999)
    parser.add_argument("--ordinary", type=int, default=6)
    parser.add_argument("--camera", type=int, default=6)
    args = parser.parse_args(argv)

    bundle = Path(args.bundle) if args.bundle else newest_bundle(ROOT / "index")
    if bundle is None:
        sys.exit("no bundle found in index/; run `python train.py` first")
    bundle = read_bundle(bundle).path.resolve()
    rows = []
    with tempfile.TemporaryDirectory(prefix="decode_memory-") as tmp:
        tmp = Path(tmp)
        folders = {"ordinary": (bundle_photos(bundle, args.ordinary, tmp / "ordinary"), "")}
        huge = tmp / "huge"
        huge.mkdir()
        first = huge_la_png(huge / "huge_0.png", args.side)
        for i in range(1, args.huge):
            shutil.copyfile(first, huge / f"huge_{i}.png")
        size_kb = first.stat().st_size / 1024
        folders["huge"] = (sorted(huge.iterdir()),
                           f"{args.side}×{args.side} LA PNG, {size_kb:.0f} kB each")
        if args.camera:
            camera = tmp / "camera"
            camera.mkdir()
            folders["camera"] = ([camera_jpeg(camera / f"cam_{i}.jpg", i)
                                  for i in range(args.camera)], "4000×3000 JPEG")
        for label, (paths, what) in folders.items():
            folder = paths[0].parent
            mib, seconds, _ = peak_rss([f"bundle={bundle}", f"images={folder}",
                                        f"out={tmp / ('out_' + label)}", "report=false"],
                                       cwd=tmp)
            print(f"{label}: {mib:.0f} MiB, {seconds:.1f} s", file=sys.stderr)
            rows.append((label, len(paths), what or "the bundle's post images", mib, seconds))
    base = rows[0][3]
    print("\n### Decode memory: peak RSS of `python rank.py`, one fresh process per folder\n")
    print(f"bundle `{bundle.name}`; ratio = peak ÷ the ordinary folder's peak\n")
    print("| folder | photos | what | peak RSS (MiB) | ratio | time (s) |")
    print("|---|---:|---|---:|---:|---:|")
    for label, n, what, mib, seconds in rows:
        print(f"| {label} | {n} | {what} | {mib:.0f} | {mib / base:.2f} | {seconds:.1f} |")
    ratio = rows[1][3] / base
    print(f"\nhuge ÷ ordinary = **{ratio:.2f}**; goal <= {GOAL}: "
          f"{'meets' if ratio <= GOAL else 'MISSES'}")
    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`")


if __name__ == "__main__":
    main()
