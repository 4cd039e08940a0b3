"""Inspect a source before training: ``python -m mmembed.data [overrides]``.

Loads the configured source (same overrides as ``train.py``, e.g. ``data=instaloader
data.root=DIR``), decodes every image at the datamodule's ``image_size`` (as training will), and
prints posts, accounts, sources, and the skipped inputs with their reasons: grouped, with the
first few of each reason (``verbose=true`` lists every one). Exits 0 when any post loaded, 1
otherwise.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from mmembed.cli.progress import RichProgress
from mmembed.config import compose
from mmembed.data import check_images, load_corpus
from mmembed.data.post import format_skipped
from mmembed.data.sources import SourceError


def main(argv: list[str]) -> int:
    console = Console()
    cfg = compose(argv)
    try:
        corpus = check_images(
            load_corpus(cfg.data), size=cfg.datamodule.image_size, progress=RichProgress(console)
        )
    except SourceError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    summary = corpus.summary()
    table = Table(title=f"{corpus.name or cfg.data._target_}", show_header=False)
    for key in ("posts", "accounts", "followers_unknown", "skipped"):
        table.add_row(key, str(summary[key]))
    for key, value in summary.items():
        if key not in (
            "name",
            "posts",
            "accounts",
            "followers_unknown",
            "skipped",
            "sources",
            "skipped_by_reason",
        ):
            table.add_row(key, str(value))
    for source, n in sorted(summary["sources"].items()):
        table.add_row(f"source {source}", str(n))
    for reason, n in summary["skipped_by_reason"].items():
        table.add_row(f"skipped: {reason}", str(n))
    console.print(table)
    if corpus.skipped:
        report = format_skipped(corpus.skipped, examples=None if cfg.get("verbose") else 5)
        console.print(report, markup=False, highlight=False, soft_wrap=True)
    if not corpus.posts:
        console.print("[red]no post loaded[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
