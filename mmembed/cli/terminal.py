"""Tables in the terminal (rich): a ranking, a bundle's communities, a build's summary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def print_ranking(result: Mapping[str, Any], console, rows: int = 20) -> None:
    """The ranked photos (first ``rows``) and every skipped input with its reason."""
    from rich.table import Table

    photos = result["photos"]
    settings = result["settings"]
    likes = settings["followers"] is not None
    c = result["community"]
    table = Table(title=f"ranking for {c['name']!r} ({c['kind']}, {c['size']} posts), "
                        f"alpha={settings['alpha']}, fit={settings['divergence']}",
                  caption="score: higher is better; fit: divergence to the community, lower is "
                          "better; pct: predicted engagement's percentile among its posts")
    fixed = {"justify": "right", "no_wrap": True}
    table.add_column("rank", min_width=4, **fixed)
    table.add_column("image", no_wrap=True, overflow="ellipsis", min_width=12, max_width=28)
    table.add_column("score", min_width=5, **fixed)
    table.add_column("fit", min_width=5, **fixed)
    table.add_column("likes" if likes else "eng.", min_width=6 if likes else 5, **fixed)
    table.add_column("pct", min_width=4, **fixed)
    table.add_column("cluster", no_wrap=True, overflow="ellipsis", min_width=7, max_width=14)
    table.add_column("hashtags", min_width=8)
    for p in photos[:rows]:
        eng = (f"{p['expected_likes']:,.0f}" if likes else f"{p['engagement']:.2f}")
        table.add_row(str(p["rank"]), p["name"], f"{p['score']:+.2f}", f"{p['fit']:.3f}", eng,
                      f"{p['percentile']:.0f}%", p["top_cluster"]["name"].split(" · ")[0],
                      " ".join(f"#{h['tag']}" for h in p["hashtags"][:3]))
    console.print(table)
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

    table = Table(title=f"communities in bundle {ranker.bundle.name}")
    for col in ("community", "kind", "size", "top clusters", "top hashtags"):
        table.add_column(col, justify="right" if col == "size" else "left")
    order = sorted(ranker.communities.values(),
                   key=lambda c: (c.kind == "cluster", -c.size, c.name))
    for c in order:
        top = ", ".join(f"{ranker.clusters[i].short_name} {c.profile[i]:.2f}"
                        for i in c.top_clusters)
        tags = " ".join(f"#{t}" for t, _ in c.top_hashtags[:3])
        table.add_row(c.name, c.kind, str(c.size), top, tags)
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
    table = Table("metric", "value", title="build metrics")
    for key, value in m.items():
        if key in ("k", "method"):
            continue
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)


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
