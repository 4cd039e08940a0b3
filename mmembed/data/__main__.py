"""Inspect a source before training: ``python -m mmembed.data [overrides]``.

Loads the configured source (same overrides as ``train.py``, e.g. ``data=instaloader
data.root=DIR``), decodes every image at the datamodule's ``image_size`` (as training will), and
prints posts, accounts, sources, and the skipped inputs with their reasons: grouped, with the
first few of each reason (``verbose=true`` lists every one). Exits 0 when any post loaded, 1
otherwise.

``shards=DIR`` writes the source as WebDataset tar shards instead
(:func:`mmembed.data.shards.write_shards`): ``python -m mmembed.data data=instaloader
data.root=SCRAPE shards=DIR [maxsize=1000000000] [maxcount=N]``, then train with
``python train.py data=shards data.urls='DIR/shard-{000000..000099}.tar'``. The images are
read one at a time, each decoded once to be sure it can be; the skipped ones are listed.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from mmembed.cli.argv import prepare
from mmembed.cli.progress import RichProgress
from mmembed.cli.terminal import make_console
from mmembed.config import CONF_DIR, compose
from mmembed.data import check_images, load_corpus
from mmembed.data.post import format_skipped
from mmembed.data.sources import SourceError

#: The shard writer's own arguments (not config keys): ``shards=DIR maxsize=BYTES maxcount=N``.
SHARD_ARGS = ("shards", "maxsize", "maxcount")


def split_shard_args(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """``argv`` without the shard writer's arguments, and those arguments."""
    rest, shard = [], {}
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key in SHARD_ARGS:
            shard[key] = value
        else:
            rest.append(arg)
    return rest, shard


def write(cfg, args: dict[str, str], console: Console) -> int:
    """Write the configured source as shards (``shards=DIR``) and print what was written."""
    from mmembed.data.shards import MAXSIZE, write_shards

    corpus = load_corpus(cfg.data)
    summary = write_shards(corpus, args["shards"], maxsize=int(float(args.get("maxsize", MAXSIZE))),
                           maxcount=int(args["maxcount"]) if args.get("maxcount") else None,
                           progress=RichProgress(console))
    table = Table(title=f"shards of {corpus.name or cfg.data._target_} in {summary.folder}",
                  show_header=False)
    table.add_row("posts", str(summary.posts))
    table.add_row("shards", str(len(summary.index["shards"])))
    table.add_row("bytes", str(sum(s["bytes"] for s in summary.index["shards"])))
    table.add_row("skipped", str(len(summary.index["skipped"])))
    console.print(table)
    if summary.skipped:
        report = format_skipped(summary.skipped, examples=None if cfg.get("verbose") else 5)
        console.print(report, markup=False, highlight=False, soft_wrap=True)
    last = len(summary.index["shards"]) - 1
    console.print(f"train with: python train.py data=shards "
                  f"data.urls='{summary.folder}/shard-{{000000..{last:06d}}}.tar'",
                  markup=False, highlight=False, soft_wrap=True)
    return 0 if summary.posts else 1


def print_error(console: Console, exc: Exception) -> None:
    """``error: <message>`` on one logical line: not wrapped at the terminal's width (a path in
    it stays whole for copying), and brackets in it are text, not rich markup."""
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)


def main(argv: list[str]) -> int:
    console = make_console()
    argv, shard_args = split_shard_args(argv)
    cfg = compose(prepare(argv, CONF_DIR / "train.yaml"))
    if "shards" in shard_args:
        try:
            return write(cfg, shard_args, console)
        except (SourceError, ValueError) as exc:
            print_error(console, exc)
            return 1
    try:
        corpus = check_images(
            load_corpus(cfg.data), size=cfg.datamodule.image_size, progress=RichProgress(console)
        )
    except SourceError as exc:
        print_error(console, exc)
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
