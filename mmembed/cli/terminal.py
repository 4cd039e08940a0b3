"""Tables in the terminal (rich): a ranking, a bundle's communities, a build's summary."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

# A piped or redirected run (``rank.py > log``, CI, ``| less``) has no terminal to measure;
# rich would then squeeze every table into 80 columns, wrapping the image names and hashtags
# into unreadable slivers. Such a run gets this width unless ``COLUMNS`` says otherwise.
PIPED_WIDTH = 160


def make_console(file: TextIO | None = None):
    """The apps' rich console: a terminal's own width, or :data:`PIPED_WIDTH` columns when the
    output is not a terminal and ``COLUMNS`` is not set."""
    from rich.console import Console

    stream = file or sys.stdout
    piped = not (hasattr(stream, "isatty") and stream.isatty())
    width = PIPED_WIDTH if piped and not os.environ.get("COLUMNS") else None
    return Console(file=file, width=width)


def print_ranking(result: Mapping[str, Any], console, rows: int = 20) -> None:
    """"Post these" in words, then the ranked photos (first ``rows``) and every skipped input
    with its reason."""
    from rich.table import Table

    from mmembed.report.wording import flag_text, headline, rate, weighting

    photos = result["photos"]
    settings = result["settings"]
    likes = settings["followers"] is not None
    c = result["community"]
    for line in headline(result):
        console.print(line, markup=False, highlight=False)
    ref = result.get("reference") or {}
    table = Table(title=f"ranking for {c['name']!r} ({c['kind']}, {c['size']} posts)",
                  caption=f"audience: the share of {c['name']}'s own posts (scored against "
                          f"{ref.get('source', 'its posts')}) a photo beats; engagement: "
                          "predicted rate; nats and z-scores are in ranking.csv")
    fixed = {"justify": "right", "no_wrap": True}
    table.add_column("rank", min_width=4, **fixed)
    table.add_column("image", no_wrap=True, overflow="ellipsis", min_width=12, max_width=28)
    table.add_column("audience", min_width=8, **fixed)
    table.add_column("likes" if likes else "engagement", min_width=6, **fixed)
    table.add_column("cluster", no_wrap=True, overflow="ellipsis", min_width=7, max_width=14)
    table.add_column("hashtags", min_width=8)
    table.add_column("note", min_width=6)
    for p in photos[:rows]:
        eng = (f"{p['expected_likes']:,.0f}" if likes and p["expected_likes"] is not None
               else rate(p["engagement"]))
        audience = "–" if p["audience_score"] is None else f"{p['audience_score']:.0f}"
        table.add_row(str(p["rank"]), p["name"], audience, eng,
                      p["top_cluster"]["name"].split(" · ")[0],
                      " ".join(f"#{h['tag']}" for h in p["hashtags"][:3]),
                      "; ".join(flag_text(f, short=True) for f in p["flags"]))
    console.print(table)
    weights = weighting(settings)
    if weights:
        console.print(weights, markup=False, highlight=False, soft_wrap=True)
    more = len(photos) - rows
    if more > 0:
        console.print(f"… {more} more ranked photo(s) in ranking.csv")
    skipped = result["skipped"]
    if skipped:
        console.print(f"[yellow]{len(skipped)} input(s) skipped[/yellow]:")
        for s in skipped[:rows]:
            console.print(f"  {s['image']}: {s['reason']}", markup=False, highlight=False)
        if len(skipped) > rows:
            console.print(f"  … {len(skipped) - rows} more in ranking.csv")


def print_communities(ranker, console) -> None:
    """The bundle's communities: name, kind, size, top clusters, top hashtags."""
    from rich.table import Table

    table = Table(title=f"communities in bundle {ranker.bundle.name}",
                  caption="pass community=ID (no quotes needed); the full name works too")
    table.add_column("ID", no_wrap=True, style="bold")
    for col in ("community", "kind", "size", "top clusters", "top hashtags"):
        table.add_column(col, justify="right" if col == "size" else "left")
    order = sorted(ranker.communities.values(),
                   key=lambda c: (c.kind == "cluster", -c.size, c.name))
    ids = ranker.community_ids
    for c in order:
        top = ", ".join(f"{ranker.clusters[i].short_name} {c.profile[i]:.2f}"
                        for i in c.top_clusters)
        tags = " ".join(f"#{t}" for t, _ in c.top_hashtags[:3])
        table.add_row(ids[c.name], c.name, c.kind, str(c.size), top, tags)
    console.print(table)


def print_build(result, console) -> None:
    """Where the bundle is, K, the cluster names, the communities and the metrics."""
    from rich.table import Table

    m = result.metrics
    console.print(f"\n[bold]bundle[/bold] {result.path}  (K={m['k']}, method {m['method']})")
    clusters = Table("cluster", "name", title="content clusters")
    for c in result.clusters:
        clusters.add_row(str(c.id), c.name)
    console.print(clusters)
    communities = Table("community", "kind", "size", "top clusters", title="communities")
    for c in result.communities.values():
        if c.kind == "cluster":
            continue
        top = ", ".join(f"{result.clusters[i].short_name} {c.profile[i]:.2f}"
                        for i in c.top_clusters)
        communities.add_row(c.name, c.kind, str(c.size), top)
    console.print(communities)
    table = Table("metric", "value", "on the training posts", title="build metrics",
                  caption="value: on the held-out posts where a training figure is beside it")

    def cell(value) -> str:
        return "" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    for key, value in m.items():
        if key in ("k", "method") or key.endswith("_train"):
            continue
        table.add_row(key, cell(value), cell(m.get(f"{key}_train")))
    console.print(table)
    cards = result.path / result.bundle.COMMUNITY_CARDS
    if cards.is_file():
        console.print(f"\nevery community with its clusters and typical posts: [bold]{cards}[/bold]"
                      " (open it in a browser)", highlight=False)
    from pathlib import Path

    name = result.path.name if result.path.parent.resolve() == Path("index").resolve() \
        else result.path
    console.print("rank new photos with it: [bold]python rank.py "
                  f"bundle={name} images=FOLDER community=ID[/bold] "
                  "(community=list shows the ids)", highlight=False)


def config_tree(cfg, console) -> None:
    """The resolved config as a tree, one branch per top-level group."""
    from omegaconf import DictConfig, OmegaConf
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    for key, value in cfg.items():
        branch = tree.add(str(key))
        text = (OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig)
                else str(value))
        branch.add(Syntax(text, "yaml"))
    console.print(tree)
