"""Image-tower feature extraction: today's eager path against the fast one, side by side.

    python benchmarks/tower_speed.py [--posts 512] [--image-size 96] [--input-size 128]
        [--rounds 3] [--batch 64] [--backends onnx torch] [--sweep 16 32 64 128 256]

Prints a markdown table for BENCHMARKS.md, with the command, the machine and the load.

Both arms embed the same synthetic posts (the default source, ``--posts`` of them, decoded once
into the datamodule's image cache at ``--image-size`` px, as ``python train.py`` does) with
the same EfficientNet-Lite0 tower (pretrained, ``--input-size`` px input, photo statistics on,
as in ``conf/model/image_tower/efficientnet_lite0.yaml``), inside an image-only
``JointEmbedding``:

- **eager** (the baseline, the code before this change): ``predict(model,
  datamodule.all_dataloader())`` at the datamodule's batch size ``--batch``, the tower as a
  plain module under ``torch.no_grad``, the loader read in the same thread;
- **new**: :func:`mmembed.models.features.compute_features`, what the feature cache now runs:
  the loader read one batch ahead in a thread, the tower through
  :class:`mmembed.models.towers.runtime.FastImageTower` with each ``--backends`` (``onnx``:
  ONNX Runtime; ``torch``: a ``channels_last`` copy under ``inference_mode``), batch
  :data:`~mmembed.models.towers.runtime.BATCH_SIZE` ``["cpu"]``. The one-off ONNX export and
  session start are timed apart (``start s``) and not in img/s.

Each round runs every arm once, in a rotated order, on a machine shared with other jobs; the
ratio of each round is new ÷ eager of that round, and the table gives the median ratio; the
same in images per CPU second of this process (all its threads), which other jobs disturb
less than wall time. ``max
1 − cos``: the largest cosine deviation of a post's features (1323 values: 1280 network
features and 43 photo statistics) from the eager features. ``--sweep``: one more pass of the
first backend per batch size, for choosing ``BATCH_SIZE``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `import mmembed` sets it

import torch  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from mmembed.config import compose  # noqa: E402
from mmembed.models.features import compute_features  # noqa: E402
from mmembed.models.joint import JointEmbedding  # noqa: E402
from mmembed.models.predict import predict  # noqa: E402
from mmembed.models.towers.runtime import BATCH_SIZE, FastImageTower  # noqa: E402
from mmembed.training import setup_datamodule  # noqa: E402


def eager_features(model, datamodule, batch: int) -> torch.Tensor:
    """Today's feature pass, as ``compute_features`` ran it before the fast path."""
    out = predict(model, datamodule.all_dataloader(batch_size=batch), keys=("image_features",))
    return out["image_features"]


def new_features(model, datamodule, backend: str, batch: int, onnx_dir: Path) -> torch.Tensor:
    loader = datamodule.all_dataloader(batch_size=batch)
    return compute_features(model, loader, backend=backend, cache_dir=str(onnx_dir))["image"]


def timed(fn):
    """``fn()``, its wall seconds and this process's CPU seconds (all threads)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def max_deviation(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((1 - torch.nn.functional.cosine_similarity(a.double(), b.double())).max())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--posts", type=int, default=512)
    p.add_argument("--image-size", type=int, default=96, help="decoded-image cache size (px)")
    p.add_argument("--input-size", type=int, default=128, help="the tower's input size (px)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=64, help="the eager arm's batch size")
    p.add_argument("--backends", nargs="+", default=["onnx", "torch"])
    p.add_argument("--sweep", type=int, nargs="*", default=[])
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where the synthetic posts and decoded images go (default: a temp dir)")
    args = p.parse_args(argv)

    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    tmp = tempfile.TemporaryDirectory(prefix="tower_speed-")
    root = Path(tmp.name)
    cache_dir = args.cache_dir or root / "cache"
    cfg = compose([f"data.num_posts={args.posts}", f"data.image_size={args.image_size}",
                   f"datamodule.image_size={args.image_size}", f"paths.cache_dir={cache_dir}",
                   f"paths.output_dir={root / 'run'}", f"datamodule.batch_size={args.batch}",
                   f"model.image_tower.input_size={args.input_size}", "print_config=false"])
    datamodule = setup_datamodule(cfg)
    model = JointEmbedding(image_tower=instantiate(cfg.model.image_tower)).eval()
    n = len(datamodule.posts)
    onnx_dir = root / "onnx"
    new_batch = BATCH_SIZE["cpu"]

    # One-off costs: the ONNX export and session (cached after the first), the torch copy.
    starts = {}
    for backend in args.backends:
        t0 = time.perf_counter()
        FastImageTower(model.image_tower, backend, onnx_dir)
        starts[backend] = time.perf_counter() - t0
    # Warm-up of every arm (allocator, oneDNN primitives, ORT arenas), on a few posts' worth.
    eager_features(model, datamodule, args.batch)

    load = [os.getloadavg()[0]]
    arms = ["eager", *args.backends]
    secs: dict[str, list[float]] = {a: [] for a in arms}
    cpu: dict[str, list[float]] = {a: [] for a in arms}
    dev: dict[str, float] = {a: 0.0 for a in args.backends}
    for r in range(args.rounds):
        order = arms[r % len(arms):] + arms[:r % len(arms)]
        feats = {}
        for arm in order:
            if arm == "eager":
                feats[arm], s, c = timed(lambda: eager_features(model, datamodule, args.batch))
            else:
                feats[arm], s, c = timed(lambda arm=arm: new_features(model, datamodule, arm,
                                                                      new_batch, onnx_dir))
            secs[arm].append(s)
            cpu[arm].append(c)
            load.append(os.getloadavg()[0])
        for backend in args.backends:
            dev[backend] = max(dev[backend], max_deviation(feats[backend], feats["eager"]))

    sweep = []
    for b in args.sweep:
        _, s, c = timed(lambda b=b: new_features(model, datamodule, args.backends[0], b,
                                                 onnx_dir))
        sweep.append((b, s, c))
        load.append(os.getloadavg()[0])

    threads = torch.get_num_threads()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{threads} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; load average "
          f"{min(load):.1f}–{max(load):.1f} during the run")
    print(f"{n} synthetic posts decoded at {args.image_size} px, EfficientNet-Lite0 at "
          f"{args.input_size} px input with photo statistics; {args.rounds} rounds, medians\n")
    print("| path | backend | batch | threads | img/s (median) | img/s per round | ratio to eager "
          "(median of rounds) | ratios per round | img per CPU s | ratio in CPU time | "
          "max 1 − cos | start s |")
    print("|---|---|---:|---:|---:|---|---:|---|---:|---:|---:|---:|")
    eager_rate = [n / s for s in secs["eager"]]
    eager_cpu = [n / c for c in cpu["eager"]]
    print(f"| today (eager) | torch, no_grad | {args.batch} | {threads} | "
          f"{statistics.median(eager_rate):.1f} | {', '.join(f'{x:.1f}' for x in eager_rate)} | "
          f"1.00 | – | {statistics.median(eager_cpu):.1f} | 1.00 | 0 | – |")
    for backend in args.backends:
        rate = [n / s for s in secs[backend]]
        ratios = [a / b for a, b in zip(rate, eager_rate)]
        per_cpu = [n / c for c in cpu[backend]]
        cpu_ratio = statistics.median(a / b for a, b in zip(per_cpu, eager_cpu))
        label = {"onnx": "ONNX Runtime", "torch": "torch, channels_last, inference_mode"}
        print(f"| new | {label.get(backend, backend)} | {new_batch} | {threads} | "
              f"{statistics.median(rate):.1f} | {', '.join(f'{x:.1f}' for x in rate)} | "
              f"**{statistics.median(ratios):.2f}** | {', '.join(f'{x:.2f}' for x in ratios)} | "
              f"{statistics.median(per_cpu):.1f} | {cpu_ratio:.2f} | {dev[backend]:.1e} | "
              f"{starts[backend]:.1f} |")
    if sweep:
        print(f"\nBatch size, new path with {args.backends[0]} (one pass each):\n")
        print("| batch | img/s | img per CPU s |")
        print("|---:|---:|---:|")
        for b, s, c in sweep:
            print(f"| {b} | {n / s:.1f} | {n / c:.1f} |")
    print(f"\ncommand: `OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} "
          f"{shlex.join([Path(sys.executable).name, *sys.argv])}`")
    tmp.cleanup()


if __name__ == "__main__":
    main()
