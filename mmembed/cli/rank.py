"""``rank.py``: load a bundle, rank the photos for a community, print, write the outputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmembed.bundle import BundleError, newest_bundle
from mmembed.data.images import display_path, list_images
from mmembed.ranking.ranker import Ranker
from mmembed.ranking.result import SkippedInput
from mmembed.ranking.settings import RankError, RankSettings

__all__ = ["default_images", "output_dir", "rank", "resolve_bundle", "settings_of",
           "write_outputs"]


def resolve_bundle(bundle: str | None, index_dir: str | Path) -> Path:
    """``bundle=`` as a folder (or a name under ``index_dir``), else the newest in ``index_dir``."""
    index_dir = Path(index_dir)
    if bundle:
        path = Path(str(bundle)).expanduser()
        if not path.exists() and (index_dir / str(bundle)).exists():
            path = index_dir / str(bundle)
        return path
    path = newest_bundle(index_dir)
    if path is None:
        raise BundleError(f"no bundle found in {index_dir}/; run `python train.py` first")
    return path


def default_images(bundle, cache_dir: str | Path) -> Path:
    """The held-out shoot of the bundle's dataset (the default input of rank.py), generated
    under this machine's ``cache_dir`` if it is not there yet."""
    source = bundle.data_source(cache_dir)
    if not hasattr(source, "shoot_dir"):
        raise RankError(f"no images given, and the bundle's data source "
                        f"({type(source).__name__}) has no held-out shoot; pass images=FOLDER "
                        "(or a glob, a file, or a list like images=[a.jpg,b.jpg])")
    return Path(source.shoot_dir)


def output_dir(cfg: DictConfig) -> Path:
    """``out=`` if given, else Hydra's run folder (``outputs/<date>/<time>/``)."""
    if cfg.get("out"):
        return Path(str(cfg.out)).expanduser()
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:  # composed without a Hydra app (tests, notebooks)
        import datetime as dt

        return Path("outputs") / dt.datetime.now().strftime("%Y-%m-%d/%H-%M-%S-rank")


def settings_of(cfg: DictConfig) -> RankSettings:
    """The ``rank.*`` settings plus ``followers``."""
    settings = OmegaConf.to_object(cfg.rank)
    return dataclasses.replace(settings, followers=cfg.get("followers"))


def write_outputs(result: dict[str, Any], out: Path, report: bool = True) -> list[Path]:
    """``ranking.csv``, ``ranking.json`` and (with ``report``) ``report.html`` into ``out``."""
    from mmembed.report.files import write_csv, write_json

    files = [write_csv(result, out / "ranking.csv"), write_json(result, out / "ranking.json")]
    if report:
        from mmembed.report.html import write_report

        files.append(write_report(result, out / "report.html"))
    return files


def rank(cfg: DictConfig, ranker: Ranker | None = None) -> dict[str, Any]:
    """``rank.py``: load the bundle, rank the photos, print, write CSV/JSON/HTML; the result
    as a dict. ``community=list`` prints the communities and returns ``{"communities": ...}``.
    Errors are exceptions with one clear message (:func:`mmembed.cli.run` prints it)."""
    from rich.console import Console

    from mmembed.cli.progress import RichProgress
    from mmembed.cli.terminal import print_communities, print_ranking

    console = Console()
    settings = settings_of(cfg)
    if ranker is None:
        path = resolve_bundle(cfg.get("bundle"), cfg.paths.index_dir)
        with console.status(f"reading bundle {path}"):
            ranker = Ranker.from_bundle(path, device=settings.device, load_weights=False)
    requested = cfg.get("community")
    if requested is not None and str(requested) == "list":
        print_communities(ranker, console)
        return {"communities": [ranker.community_summary(n) for n in ranker.communities]}
    if requested is None:
        community, defaulted = ranker.default_community(), True
        c = ranker.communities[community]
        console.print(f"community not given: ranking for [bold]{community!r}[/bold] (largest "
                      f"{c.kind} community, {c.size} posts); pass community=NAME "
                      "(community=list shows them all)")
    else:
        community, defaulted = str(requested), False
        if community not in ranker.communities:
            print_communities(ranker, console)
            close = ranker.closest_communities(community)
            hint = (f"did you mean {', '.join(repr(c) for c in close)}?" if close
                    else "no similar name")
            raise RankError(f"unknown community {community!r}: {hint} Pass community=NAME from "
                            f"the list above.")
    with console.status(f"loading the model of bundle {ranker.bundle.name}"):
        _ = ranker.model
    images = cfg.get("images")
    if images is None:
        images = default_images(ranker.bundle, cfg.paths.cache_dir)
        console.print(f"images not given: ranking the held-out shoot {images}")
    if OmegaConf.is_config(images):
        images = OmegaConf.to_container(images, resolve=True)
    paths, listed_skips = list_images(images)
    skipped = [SkippedInput(display_path(s.item), display_path(s.reason)) for s in listed_skips]
    ranked = ranker.rank(paths, community, settings, skipped=skipped,
                         progress=RichProgress(console))
    ranked.community["defaulted"] = defaulted
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    ranked.output_dir = str(out.resolve())
    result = ranked.to_dict()
    with console.status("writing outputs"):
        files = write_outputs(result, out, report=bool(cfg.get("report", True)))
    print_ranking(result, console, rows=settings.table_rows)
    console.print(f"outputs: {out}  ({', '.join(f.name for f in files)})")
    return result
