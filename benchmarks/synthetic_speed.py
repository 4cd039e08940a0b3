"""Speed of the synthetic source: generate N posts (images written to disk) and reload them.

    python benchmarks/synthetic_speed.py [--posts 2000] [--dir FOLDER]

Prints a markdown table for BENCHMARKS.md. The first load generates everything (posts, their
images, the default 60-photo shoot); the second load reads the cache. ``--dir`` chooses where
the temporary cache lives: file creation speed differs a lot between file systems. CPU
seconds are reported next to wall seconds because a busy machine inflates the latter.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from mmembed.data.sources.synthetic import SyntheticSource


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--dir", default=None, help="parent of the temporary cache folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        start, cpu_start = time.perf_counter(), time.process_time()
        corpus = SyntheticSource(num_posts=args.posts, cache_dir=tmp).load()
        generate, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        start = time.perf_counter()
        SyntheticSource(num_posts=args.posts, cache_dir=tmp).load()
        reload = time.perf_counter() - start
    print("| posts | seconds | posts/s | CPU seconds | cached reload (s) | CPUs |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {len(corpus.posts)} | {generate:.2f} | {len(corpus.posts) / generate:.0f} "
          f"| {cpu:.2f} | {reload:.3f} | {os.cpu_count()} |")


if __name__ == "__main__":
    main()
