"""Scaling: wall time, CPU time and peak RSS per phase, from 2k to 128k synthetic posts, trained
from tar shards (goals: peak RSS at 32k within 1.2× of 2k; time per post flat within 1.5× from
2k to 128k).

    python benchmarks/scaling.py [--sizes 2000,8000,32000,128000] [--image-size 32]
        [--epochs 2] [--batch-size 256] [--workdir DIR] [--keep]

Each size runs in two fresh processes, so that no size inherits another's memory:

1. **prepare**: generate the synthetic corpus (``SyntheticSource``, ``--image-size`` px JPEGs)
   and write it as tar shards (:func:`mmembed.data.shards.write_shards`, at most
   ``--shard-posts`` posts and 64 MB a shard: the features phase holds one shard's features at
   a time, so the cap is what bounds it).
2. **pipeline**, from the shards as ``train.py data=shards`` runs it: ``load`` (the posts'
   metadata, split, engagement), ``features`` (frozen-tower features written per shard and
   merged, memory-mapped: :mod:`mmembed.models.feature_shards`), ``train`` (``Trainer.fit``,
   ``--epochs`` epochs, validation each epoch) and ``build`` (embed, cluster K=6, profile,
   calibrate, FAISS index, pictures, bundle written).

Towers: a frozen random ``SmallCNNTower`` (width 32, 256-d) at the image size and the
bag-of-words text tower, so that the towers cost little and the table shows how the rest of the
pipeline scales (the default EfficientNet-Lite0 + MiniLM cost about 0.16 s a post on this CPU:
see BENCHMARKS.md P4 and the extrapolation there). One process, ``num_workers=0``.
``--override model/image_tower=efficientnet_lite0 --override model/text_tower=minilm`` runs
the packaged pretrained towers instead, at the same ``--image-size`` (the tower's input too):
the pipeline ``train.py`` runs, with the towers' cost in it (BENCHMARKS.md, run 8).

Times: wall (``time.perf_counter``) and CPU (user + system of the process and its reaped
children, ``resource.getrusage``) per phase; µs/post = wall / posts. Peak RSS: ``ru_maxrss`` of
each process as its parent collects it (``os.wait4``), so each size's number is its own. The
ratios compare each size with the smallest in the same run. On a shared machine (load above the
CPU count) wall time measures the other jobs too: read the CPU columns.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

PHASES = ("load", "features", "train", "build")
GOAL_RSS, GOAL_TIME = 1.2, 1.5
#: Posts per shard at most (``--shard-posts``).
SHARD_POSTS = 2000


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class AnonPeak:
    """The peak of ``RssAnon`` (/proc/self/status), sampled every 50 ms by a thread: resident
    memory that is not file-backed. ``ru_maxrss`` also counts the pages of memory-mapped files
    (the merged features), which the kernel can drop and read again."""

    def __init__(self):
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def now() -> float:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.now())

    def take(self) -> float:
        """The peak since the last call, and start again."""
        peak, self.peak = max(self.peak, self.now()), 0.0
        return peak


ANON: AnonPeak | None = None


class PhaseClock:
    """A :class:`mmembed.progress.Progress` that records the CPU seconds and the peak
    anonymous RSS of each phase the build announces (embedding, clustering, ..., writing)."""

    def __init__(self):
        self.phases: dict[str, dict[str, float]] = {}
        self._name, self._cpu = None, cpu_seconds()

    def track(self, iterable, total=None, description=""):
        return iterable

    def phase(self, description):
        now = cpu_seconds()
        if self._name is not None:
            anon = ANON.take() if ANON is not None else float("nan")
            self.phases[self._name] = {"cpu": now - self._cpu, "anon_mb": anon}
        elif ANON is not None:
            ANON.take()
        self._name, self._cpu = description, now


@contextmanager
def timed(phases: dict, name: str):
    wall, cpu = time.perf_counter(), cpu_seconds()
    if ANON is not None:
        ANON.take()
    yield
    phases[name] = {"wall": time.perf_counter() - wall, "cpu": cpu_seconds() - cpu,
                    "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                    "anon_mb": ANON.take() if ANON is not None else float("nan")}


def prepare(n: int, workdir: Path, image_size: int, shard_posts: int = SHARD_POSTS) -> dict:
    from mmembed.data.shards import write_shards
    from mmembed.data.sources.synthetic import SyntheticSource

    phases: dict = {}
    with timed(phases, "generate"):
        corpus = SyntheticSource(num_posts=n, image_size=image_size, seed=0,
                                 cache_dir=workdir / "synthetic", shoot_size=8).load()
    with timed(phases, "shards"):
        write_shards(corpus, workdir / "shards", maxsize=64_000_000, maxcount=shard_posts)
    return phases


def overrides(workdir: Path, image_size: int, epochs: int, batch_size: int) -> list[str]:
    return [
        "data=shards", f"data.urls={workdir / 'shards'}",
        "model/image_tower=small_cnn", f"model.image_tower.input_size={image_size}",
        "model/text_tower=bag_of_words", f"datamodule.image_size={image_size}",
        f"datamodule.batch_size={batch_size}", "datamodule.num_workers=0",
        f"trainer.max_epochs={epochs}", f"trainer.min_epochs={epochs}",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "callbacks.early_stopping=null", "callbacks.best_checkpoint=null", "cluster.k=6",
        "logger=none", "print_config=false", f"paths.output_dir={workdir / 'run'}",
        f"paths.cache_dir={workdir / 'cache'}", f"paths.index_dir={workdir / 'index'}",
        "bundle_name=scaling",
    ]


def pipeline(workdir: Path, image_size: int, epochs: int, batch_size: int,
             extra: Sequence[str] = ()) -> dict:
    import logging
    import warnings

    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from mmembed.build import build_bundle
    from mmembed.config import compose
    from mmembed.models.features import tower_features
    from mmembed.training import attach_tokenizer, bundle_target, fit, setup_datamodule

    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    cfg = compose(overrides(workdir, image_size, epochs, batch_size) + list(extra))
    phases: dict = {}
    with timed(phases, "load"):
        datamodule = setup_datamodule(cfg)
        model = instantiate(cfg.model)
        datamodule.stream_images = not model.freeze_towers
        attach_tokenizer(model, datamodule)
    with timed(phases, "features"):
        tower_features(model, datamodule, cache_dir=cfg.model.feature_cache_dir)
    with timed(phases, "train"):
        fit(cfg, model, datamodule, False, Path(cfg.paths.output_dir), None)
    clock = PhaseClock()
    with timed(phases, "build"):
        result = build_bundle(
            model, datamodule, instantiate(cfg.cluster), bundle_target(cfg),
            communities=OmegaConf.to_object(cfg.communities),
            search=OmegaConf.to_object(cfg.search), trust=OmegaConf.to_object(cfg.trust),
            config=OmegaConf.to_container(cfg, resolve=True), seed=cfg.seed,
            feature_cache_dir=cfg.model.feature_cache_dir, progress=clock)
    phases["_build_phases"] = clock.phases
    # the clock took the anonymous peak phase by phase: the build's is the largest of them
    phases["build"]["anon_mb"] = max([phases["build"]["anon_mb"]]
                                     + [p["anon_mb"] for p in clock.phases.values()])
    phases["_posts"] = len(datamodule.posts)
    phases["_bundle_mb"] = sum(f.stat().st_size for f in result.path.rglob("*")
                               if f.is_file()) / 2**20
    return phases


def run_child(args: list[str]) -> tuple[dict, float]:
    """Run this script as a child with ``args``; its JSON result and its peak RSS (MB)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    proc = subprocess.Popen([sys.executable, __file__, *args, "--out", str(out)])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed with exit code {proc.returncode}")
    result = json.loads(out.read_text())
    out.unlink()
    return result, usage.ru_maxrss / 1024


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2000,8000,32000,128000")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--shard-posts", type=int, default=SHARD_POSTS,
                        help="posts per shard at most (default %(default)s)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep each size's files")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a Hydra override added to the pipeline's (repeatable), e.g. "
                             "model/autoencoder=post")
    parser.add_argument("--child", choices=("prepare", "pipeline"), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        global ANON
        ANON = AnonPeak()
        workdir = args.workdir
        result = (prepare(args.n, workdir, args.image_size, args.shard_posts)
                  if args.child == "prepare" else
                  pipeline(workdir, args.image_size, args.epochs, args.batch_size,
                           args.override))
        args.out.write_text(json.dumps(result))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    root = args.workdir or Path(tempfile.mkdtemp(prefix="mmembed-scaling-"))
    common = ["--image-size", str(args.image_size), "--epochs", str(args.epochs),
              "--batch-size", str(args.batch_size), "--shard-posts", str(args.shard_posts),
              *(a for o in args.override for a in ("--override", o))]
    rows = []
    for n in sizes:
        workdir = root / f"n{n}"
        shutil.rmtree(workdir, ignore_errors=True)
        load = os.getloadavg()[0]
        prep, prep_rss = run_child(["--child", "prepare", "--n", str(n),
                                    "--workdir", str(workdir), *common])
        shards_mb = dir_mb(workdir / "shards")
        shutil.rmtree(workdir / "synthetic", ignore_errors=True)  # the shards hold the posts
        pipe, pipe_rss = run_child(["--child", "pipeline", "--workdir", str(workdir), *common])
        rows.append({"n": n, "load": load, "prepare": prep, "prepare_rss": prep_rss,
                     "pipeline": pipe, "pipeline_rss": pipe_rss, "shards_mb": shards_mb,
                     "features_mb": dir_mb(workdir / "cache")})
        print(f"done {n} posts: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report(rows, args)


def report(rows: list[dict], args) -> None:
    base = rows[0]
    loads = ", ".join(f"{r['n']:,}: {r['load']:.1f}" for r in rows)
    print(f"`python {' '.join(shlex.quote(a) for a in sys.argv)}`  ")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.image_size}px images, "
          f"{args.epochs} epochs, batch {args.batch_size}, at most {args.shard_posts} posts a "
          f"shard; load average (1 min) as each size started: {loads}\n")
    cols = (["posts", "shards wall / CPU s"] + [f"{p} wall / CPU s" for p in PHASES]
            + ["wall µs/post", "CPU µs/post", "CPU/post × 1st", "peak RSS MB", "× 1st",
               "shards MB", "features MB", "bundle MB"])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    base_cpu = sum(base["pipeline"][p]["cpu"] for p in PHASES) / base["n"]
    for r in rows:
        n, pipe, shards = r["n"], r["pipeline"], r["prepare"]["shards"]
        wall = sum(pipe[p]["wall"] for p in PHASES)
        cpu = sum(pipe[p]["cpu"] for p in PHASES)
        cells = [f"{n:,}", f"{shards['wall']:.1f} / {shards['cpu']:.1f}"]
        cells += [f"{pipe[p]['wall']:.1f} / {pipe[p]['cpu']:.1f}" for p in PHASES]
        cells += [f"{1e6 * wall / n:.0f}", f"{1e6 * cpu / n:.0f}", f"{cpu / n / base_cpu:.2f}",
                  f"{r['pipeline_rss']:.0f}", f"{r['pipeline_rss'] / base['pipeline_rss']:.2f}",
                  f"{r['shards_mb']:.0f}", f"{r['features_mb']:.0f}", f"{pipe['_bundle_mb']:.0f}"]
        print("| " + " | ".join(cells) + " |")
    print("\nPeak RSS after each phase (MB; ru_maxrss so far) / peak anonymous RSS during "
          "the phase (not file-backed), and the prepare process (generator + shard writer):\n")
    print("| posts | " + " | ".join(f"{p} RSS / anon" for p in PHASES)
          + " | peak anon MB | × 1st | prepare peak RSS MB | generate wall s |")
    print("|" + "---|" * (len(PHASES) + 5))
    anon0 = max(base["pipeline"][p]["anon_mb"] for p in PHASES)
    for r in rows:
        pipe = r["pipeline"]
        anon = max(pipe[p]["anon_mb"] for p in PHASES)
        print(f"| {r['n']:,} | " + " | ".join(f"{pipe[p]['maxrss_mb']:.0f} / "
                                              f"{pipe[p]['anon_mb']:.0f}" for p in PHASES)
              + f" | {anon:.0f} | {anon / anon0:.2f} | {r['prepare_rss']:.0f} | "
              f"{r['prepare']['generate']['wall']:.1f} |")
    names = list(base["pipeline"]["_build_phases"])
    print("\nThe build's own phases, CPU µs per post / peak anonymous RSS MB during the phase "
          "(``PhaseClock``; the map's t-SNE is in \"drawing the pictures\", the thumbnails in "
          "\"writing the bundle\"):\n")
    print("| posts | " + " | ".join(names) + " |")
    print("|" + "---|" * (len(names) + 1))
    for r in rows:
        build = r["pipeline"]["_build_phases"]
        print(f"| {r['n']:,} | " + " | ".join(
            f"{1e6 * build[b]['cpu'] / r['n']:.0f} / {build[b]['anon_mb']:.0f}" if b in build
            else "–" for b in names) + " |")
    by_n = {r["n"]: r for r in rows}
    print()
    if 2000 in by_n and 32000 in by_n:
        ratio = by_n[32000]["pipeline_rss"] / by_n[2000]["pipeline_rss"]
        print(f"peak RSS 32k / 2k = {ratio:.2f} (goal ≤ {GOAL_RSS}): "
              f"{'met' if ratio <= GOAL_RSS else 'NOT met'}")
        own = (by_n[32000]["pipeline"]["build"]["maxrss_mb"]
               / by_n[2000]["pipeline"]["build"]["maxrss_mb"])
        print(f"the pipeline's own peak RSS (ru_maxrss at the end of the build, before the "
              f"interpreter exits) 32k / 2k = {own:.2f}: "
              f"{'met' if own <= GOAL_RSS else 'NOT met'}")
    names = ", ".join(f"{r['n']:,}" for r in rows)
    for kind in ("cpu", "wall"):
        per_post = [sum(r["pipeline"][p][kind] for p in PHASES) / r["n"] for r in rows]
        spread = max(per_post) / min(per_post)
        print(f"{kind} time per post, max / min over {names} = {spread:.2f} "
              f"(goal ≤ {GOAL_TIME} from 2k to 128k): "
              f"{'met' if spread <= GOAL_TIME else 'NOT met'} over the sizes run")
    from mmembed.report.maps import TSNE_SAMPLE

    pictures = "drawing the pictures"
    per_post = [(sum(r["pipeline"][p]["cpu"] for p in PHASES)
                 - r["pipeline"]["_build_phases"].get(pictures, {}).get("cpu", 0.0)) / r["n"]
                for r in rows]
    print(f"cpu time per post without \"{pictures}\" (the map: t-SNE of at most "
          f"{TSNE_SAMPLE:,} sampled posts, the rest placed by their neighbours), "
          f"max / min = {max(per_post) / min(per_post):.2f}")


if __name__ == "__main__":
    main()
