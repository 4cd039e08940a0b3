"""Photos for the rank benchmarks: copies of a bundle's own post images."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path


def bundle_photos(bundle: Path, n: int, folder: Path) -> list[Path]:
    """``n`` copies of the bundle's post images in ``folder`` (cycled when it has fewer)."""
    sources = []
    with (Path(bundle) / "posts.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            path = Path(json.loads(line)["image_path"])
            if path.is_file():
                sources.append(path)
            if len(sources) >= n:
                break
    if not sources:
        sys.exit(f"the images of {bundle}/posts.jsonl are not on this machine; rebuild the "
                 "bundle here with `python train.py`")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        src = sources[i % len(sources)]
        paths.append(folder / f"photo_{i:05d}{src.suffix}")
        shutil.copyfile(src, paths[-1])
    return paths
