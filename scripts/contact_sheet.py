"""Contact sheet of the synthetic dataset: one row per topic, examples ordered by planted quality.

    python scripts/contact_sheet.py [--out docs/synthetic_contact_sheet.png] [--posts 300]

Shows at a glance that topics look distinct yet overlapping, and that the planted engagement
qualities (exposure, saturation, centring) are visible: within each row, photos go from the
lowest to the highest planted quality factor ``f``, printed under each photo.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mmembed.data.sources.synthetic import QUALITY_WEIGHTS, SyntheticSource, quality_factor

TILE = 128  # shown size of each photo (the 96 px images, upscaled for legibility)
LABEL_WIDTH = 160
PAD = 6
TEXT_HEIGHT = 18


def contact_sheet(posts: int, per_row: int, seed: int, cache_dir: str) -> Image.Image:
    source = SyntheticSource(num_posts=posts, seed=seed, cache_dir=cache_dir)
    corpus = source.load()
    topics = corpus.truth["topics"]
    qualities = corpus.truth["post_qualities"]
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=12)
    width = LABEL_WIDTH + per_row * (TILE + PAD) + PAD
    row_height = TILE + TEXT_HEIGHT + PAD
    sheet = Image.new("RGB", (width, len(topics) * row_height + PAD), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for row, topic in enumerate(topics):
        members = [p for p in corpus.posts if p.topic == topic]
        q = np.array([[qualities[p.post_id][k] for k in QUALITY_WEIGHTS] for p in members])
        factor = quality_factor(q)
        # Evenly spaced ranks from worst to best, so each row spans the quality range.
        picks = np.argsort(factor)[np.linspace(0, len(members) - 1, per_row).round().astype(int)]
        top = PAD + row * row_height
        counts = Counter(t for p in members for t in p.hashtags)
        tags = sorted(counts, key=lambda t: (-counts[t], t))[:3]
        draw.text((PAD, top + 20), topic, fill=(20, 20, 20), font=font)
        draw.text((PAD, top + 42), f"{len(members)} posts", fill=(90, 90, 90), font=small)
        for line, tag in enumerate(tags):
            draw.text((PAD, top + 62 + 15 * line), "#" + tag, fill=(90, 90, 90), font=small)
        for col, index in enumerate(picks):
            left = LABEL_WIDTH + col * (TILE + PAD)
            with Image.open(members[index].image_path) as img:
                sheet.paste(img.convert("RGB").resize((TILE, TILE), Image.Resampling.BICUBIC),
                            (left, top))
            draw.text((left, top + TILE + 2), f"f = {factor[index]:.2f}", fill=(60, 60, 60),
                      font=small)
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/synthetic_contact_sheet.png")
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--per-row", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sheet = contact_sheet(args.posts, args.per_row, args.seed, tmp)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # An adaptive, dithered 256-colour palette keeps the PNG under 500 KB (~3x smaller than
    # RGB); the sheet is for looking at, not for training.
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
