"""Ranking speed (P3): ranking photos end to end against the image tower's forward pass alone.

    python benchmarks/rank_speed.py [--bundle index/NAME] [--photos 1000] [--rounds 3]
                                    [--community NAME] [--device cpu] [--report]

Prints a markdown table for BENCHMARKS.md with the command and the machine.

Photos: ``--photos`` copies of the bundle's own post images (its ``posts.jsonl`` image paths,
cycled if there are fewer), written once into a temporary folder, so both arms read the same
JPEG files from disk.

- **tower**: the pure image-tower forward. The photos are decoded the way ``rank.py`` decodes
  them (:func:`mmembed.data.photos.photo_loader`: ``load_image`` at the datamodule's image
  size, in DataLoader workers ahead of the model, batches of 64) and only the image tower
  runs on each batch, as ``rank.py`` runs it (``model.fast_towers()``: ONNX Runtime or a
  ``channels_last`` copy, see :mod:`mmembed.models.towers.runtime`).
- **rank**: ``Ranker.rank`` on the same files (same decode, then tower, projection,
  autoencoder, engagement head, soft assignment, fit, FAISS neighbours in the community and
  the suggestions, score and ranks) plus writing ``ranking.csv`` and ``ranking.json``. The HTML
  report is *not* included unless ``--report`` (then it is a third row; its thumbnails are a
  cost of the report, not of ranking). Loading the bundle is a one-off and is excluded from
  both arms.

Each round times both arms back to back, alternating which goes first (the machine is shared
and noisy); the table reports the median time of each arm and the median of the per-round
ratios to the tower arm of the same round. Goal: rank / tower <= 1.3.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from _photos import bundle_photos  # noqa: E402  (benchmarks/ is on sys.path)

from mmembed.bundle import newest_bundle  # noqa: E402
from mmembed.cli.rank import write_outputs  # noqa: E402
from mmembed.data.photos import photo_loader  # noqa: E402
from mmembed.ranking.ranker import Ranker  # noqa: E402
from mmembed.ranking.settings import RankSettings  # noqa: E402

GOAL = 1.3


@torch.no_grad()
def tower_only(ranker: Ranker, paths: list[Path], settings: RankSettings) -> float:
    start = time.perf_counter()
    with ranker.model.fast_towers(cache_dir=ranker.tower_cache_dir) as fast:
        tower = fast or ranker.model.image_tower
        for batch in photo_loader(paths, ranker.image_size, settings.batch_size,
                                  settings.decode_workers, settings.decode_memory_mb):
            if batch["image"] is not None:
                tower(batch["image"].to(ranker.device))
    if ranker.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def rank_and_write(ranker: Ranker, paths: list[Path], community: str, settings: RankSettings,
                   out: Path, report: bool) -> float:
    """Seconds to rank ``paths`` and write CSV/JSON (and report.html with ``report``)."""
    start = time.perf_counter()
    ranked = ranker.rank(paths, community, settings)
    ranked.output_dir = str(out)
    write_outputs(ranked.to_dict(), out, report=report)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default=None, help="bundle folder (default: newest in index/)")
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--community", default=None, help="default: the largest account")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--report", action="store_true", help="also time rank + HTML report")
    args = parser.parse_args(argv)

    bundle = Path(args.bundle) if args.bundle else newest_bundle("index")
    if bundle is None:
        sys.exit("no bundle found in index/; run `python train.py` first")
    ranker = Ranker.from_bundle(bundle, device=args.device)
    community = args.community or ranker.default_community()
    settings = RankSettings(batch_size=args.batch_size, device=args.device)
    with tempfile.TemporaryDirectory(prefix="rank_speed-") as tmp:
        paths = bundle_photos(ranker.bundle.path, args.photos, Path(tmp) / "photos")
        out = Path(tmp) / "out"
        out.mkdir()
        ranker.tower_cache_dir = Path(tmp) / "towers"  # the ONNX export: once, in the warm-up
        tower_only(ranker, paths[: settings.batch_size * 2], settings)  # warm-up
        arms = {"tower": [], "rank": [], "rank + report": []}
        for r in range(args.rounds):
            order = ["tower", "rank"] if r % 2 == 0 else ["rank", "tower"]
            for arm in order:
                if arm == "tower":
                    arms[arm].append(tower_only(ranker, paths, settings))
                else:
                    arms[arm].append(rank_and_write(ranker, paths, community, settings, out,
                                                    report=False))
            if args.report:
                arms["rank + report"].append(rank_and_write(ranker, paths, community, settings,
                                                            out, report=True))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in arms.items()
                                                 if v), file=sys.stderr)
    per_round = {arm: [t / tw for t, tw in zip(times, arms["tower"])]
                 for arm, times in arms.items()}
    ratios = per_round["rank"]
    n = len(paths)
    print(f"\n### P3: ranking speed ({n} photos, batch {settings.batch_size}, "
          f"{ranker.device.type})\n")
    print(f"bundle `{ranker.bundle.name}` (image size {ranker.image_size}, "
          f"{type(ranker.model.image_tower).__name__} at {ranker.model.image_tower.input_size} px, "
          f"K={ranker.k}), community `{community}`; median of {args.rounds} alternating rounds\n")
    print("| arm | seconds | photos/s | ÷ tower |")
    print("|---|---:|---:|---:|")
    for arm, times in arms.items():
        if not times:
            continue
        t = statistics.median(times)
        print(f"| {arm} | {t:.2f} | {n / t:.0f} | {statistics.median(per_round[arm]):.3f} |")
    verdict = "meets" if statistics.median(ratios) <= GOAL else "MISSES"
    print(f"\nrank ÷ tower = **{statistics.median(ratios):.3f}** (per-round "
          f"{', '.join(f'{x:.3f}' for x in ratios)}); goal <= {GOAL}: {verdict}")
    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")
    print(f"command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`")


if __name__ == "__main__":
    main()
