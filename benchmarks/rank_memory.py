"""Ranking memory (P7): peak RSS of ranking 5,000 photos ÷ ranking 500 photos.

    python benchmarks/rank_memory.py [--bundle index/NAME] [--small 500] [--large 5000]
                                     [--report]

Photos: ``--large`` copies of the bundle's own post images (cycled), generated once into a
temporary folder; the small folder hard-links the first ``--small`` of them. Each size is ranked
by the real CLI, ``python rank.py bundle=... images=FOLDER report=false``, in a fresh
subprocess; its peak resident set size comes from ``os.wait4`` (the child's own
``ru_maxrss``, not the running maximum over all children that ``RUSAGE_CHILDREN`` gives).
``--report`` adds a second pair of runs with the HTML report, which embeds a thumbnail of every
photo and so grows with the folder by design.

Ranking streams photos in batches (``rank.batch_size``) and keeps only O(#photos × K) numbers
plus a few suggestions per photo, so the ratio should stay near 1. Goal: <= 1.2.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _photos import bundle_photos  # benchmarks/ is on sys.path when run as a script

from mmembed.bundle import newest_bundle, read_bundle

ROOT = Path(__file__).resolve().parent.parent

GOAL = 1.2


def peak_rss(args: list[str], cwd: Path) -> tuple[float, float, int]:
    """(peak RSS in MiB, seconds, exit code) of ``python rank.py ARGS`` in a fresh process."""
    log = cwd / "rank_stderr.txt"
    start = time.perf_counter()
    with open(log, "wb") as err_file:  # a file, not a pipe: a full pipe would block the child
        proc = subprocess.Popen([sys.executable, str(ROOT / "rank.py"), *args], cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=err_file)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # reaped by wait4; keeps Popen from waiting again
    if code != 0:
        sys.exit(f"rank.py {' '.join(args)} failed ({code}):\n{log.read_text()[-2000:]}")
    return usage.ru_maxrss / 1024, seconds, code  # Linux: ru_maxrss in KiB


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default=None, help="bundle folder (default: newest in index/)")
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--report", action="store_true", help="also measure with report.html")
    args = parser.parse_args(argv)

    bundle = Path(args.bundle) if args.bundle else newest_bundle(ROOT / "index")
    if bundle is None:
        sys.exit("no bundle found in index/; run `python train.py` first")
    bundle = read_bundle(bundle).path.resolve()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rank_memory-") as tmp:
        tmp = Path(tmp)
        large = bundle_photos(bundle, args.large, tmp / f"photos_{args.large}")
        small_dir = tmp / f"photos_{args.small}"
        small_dir.mkdir()
        for p in large[: args.small]:
            os.link(p, small_dir / p.name)
        variants = [("rank (CSV + JSON)", ["report=false"])]
        if args.report:
            variants.append(("rank + report.html", ["report=true"]))
        for v, (label, extra) in enumerate(variants):
            measured = {}
            for n, folder in ((args.small, small_dir), (args.large, tmp / f"photos_{args.large}")):
                out = tmp / f"out_{n}_{v}"
                measured[n] = peak_rss([f"bundle={bundle}", f"images={folder}", f"out={out}",
                                        *extra], cwd=tmp)
                print(f"{label}, {n} photos: {measured[n][0]:.0f} MiB, {measured[n][1]:.1f} s",
                      file=sys.stderr)
            rows.append((label, measured))
    print(f"\n### P7: ranking memory (peak RSS, {args.large} ÷ {args.small} photos)\n")
    print(f"bundle `{bundle.name}`; each run `python rank.py` in a fresh process\n")
    print(f"| run | {args.small} photos (MiB) | {args.large} photos (MiB) | ratio | "
          f"{args.small} photos (s) | {args.large} photos (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, m in rows:
        small, big = m[args.small], m[args.large]
        print(f"| {label} | {small[0]:.0f} | {big[0]:.0f} | {big[0] / small[0]:.3f} | "
              f"{small[1]:.1f} | {big[1]:.1f} |")
    ratio = rows[0][1][args.large][0] / rows[0][1][args.small][0]
    print(f"\nrank ratio = **{ratio:.3f}**; goal <= {GOAL}: "
          f"{'meets' if ratio <= GOAL else 'MISSES'}")
    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`")


if __name__ == "__main__":
    main()
