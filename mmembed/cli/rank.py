"""``rank.py``: load a bundle, rank the photos for a community, print, write the outputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmembed.bundle import BundleError, list_bundles
from mmembed.data.images import display_path, list_images
from mmembed.ranking.ranker import Ranker
from mmembed.ranking.result import SkippedInput
from mmembed.ranking.settings import RankError, RankSettings

__all__ = ["bundles_with", "default_images", "output_dir", "rank", "resolve_bundle",
           "settings_of", "write_outputs"]


def resolve_bundle(bundle: str | None, index_dir: str | Path) -> tuple[Path, str]:
    """The bundle folder to rank with, and why it is that one: ``bundle=`` as a folder (or a
    name under ``index_dir``), else the newest complete bundle in ``index_dir``."""
    index_dir = Path(index_dir)
    if bundle:
        path = Path(str(bundle)).expanduser()
        if not path.exists() and (index_dir / str(bundle)).exists():
            path = index_dir / str(bundle)
        return path, "given by bundle="
    bundles = list_bundles(index_dir)
    if not bundles:
        raise BundleError(f"no bundle found in {index_dir}/; run `python train.py` first")
    if len(bundles) == 1:
        return bundles[0], f"the only bundle in {index_dir}/"
    others = ", ".join(b.name for b in bundles[1:4]) + (", …" if len(bundles) > 4 else "")
    return bundles[0], (f"the newest of {len(bundles)} bundles in {index_dir}/; the others: "
                        f"{others}; choose one with bundle=NAME")


def bundles_with(community: str, index_dir: str | Path, but: Path | None = None) -> list[str]:
    """The names of the bundles in ``index_dir`` (other than ``but``) that have ``community``
    (by full name or short id), each as ``name (community=ID)``."""
    from mmembed.bundle import Bundle
    from mmembed.communities.ids import community_ids, resolve_community

    found = []
    for path in list_bundles(index_dir):
        if but is not None and path.resolve() == but.resolve():
            continue
        try:
            kinds = {n: c.kind for n, c in Bundle.load(path, verify=False).communities().items()}
        except (BundleError, OSError, ValueError, KeyError):
            continue  # a broken bundle is reported when it is used, not here
        name = resolve_community(community, kinds)
        if name is not None:
            found.append(f"{path.name} (community={community_ids(kinds)[name]})")
    return found


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
    """``out=`` if given, else ``outputs/<date>/<time>/`` under the current folder (made only
    when something is written there)."""
    if cfg.get("out"):
        return Path(str(cfg.out)).expanduser()
    import datetime as dt

    return Path("outputs") / dt.datetime.now().strftime("%Y-%m-%d/%H-%M-%S")


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
    from mmembed.cli.progress import RichProgress
    from mmembed.cli.terminal import make_console, print_communities, print_ranking

    console = make_console()
    settings = settings_of(cfg)
    if ranker is None:
        path, why = resolve_bundle(cfg.get("bundle"), cfg.paths.index_dir)
        console.print(f"bundle [bold]{path}[/bold] ({why})", highlight=False)
        with console.status(f"reading bundle {path}"):
            ranker = Ranker.from_bundle(path, device=settings.device, load_weights=False,
                                        tower_cache_dir=Path(cfg.paths.cache_dir) / "features")
    requested = cfg.get("community")
    if requested is not None and str(requested) == "list":
        print_communities(ranker, console)
        return {"communities": [ranker.community_summary(n) for n in ranker.communities]}
    if requested is None:
        community, defaulted = ranker.default_community(), True
        c = ranker.communities[community]
        console.print(f"community not given: ranking for [bold]{community!r}[/bold] (largest "
                      f"{c.kind} community, {c.size} posts); pass community=ID "
                      "(community=list shows them all)", highlight=False)
    else:
        defaulted = False
        try:
            community = ranker.resolve_community(str(requested))
        except RankError as exc:
            elsewhere = bundles_with(str(requested), cfg.paths.index_dir, ranker.bundle.path)
            where = (f" It is in: {'; '.join(elsewhere)}: pass bundle=NAME." if elsewhere else
                     " `python rank.py community=list` lists this bundle's communities.")
            raise RankError(f"{exc} (bundle {ranker.bundle.name}).{where}") from None
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
