"""Image-tower FLOP/s against the machine's GEMM FLOP/s (P4).

    python benchmarks/tower_flops.py [--rounds 5] [--batch 64] [--gemm-n 2048]

Prints the machine and a markdown table for BENCHMARKS.md, with the command.

- **FLOPs per image**: counted with :class:`torch.utils.flop_counter.FlopCounterMode` on one
  forward of the tower (batch ``--batch``, divided by the batch). The counter counts matrix
  multiplies and convolutions (2 FLOPs per multiply-add, grouped convolutions by their real
  weight shape); elementwise work (BatchNorm, activations, the normalisation in
  ``preprocess``) is not counted. Images are fed at the tower's ``input_size``, so
  ``preprocess`` only normalises and never resizes.
- **achieved FLOP/s**: counted FLOPs ÷ the wall time of a forward (eval, ``torch.no_grad``,
  random ``[0, 1]`` images); one timed forward per tower per round after an untimed warm-up.
- **GEMM FLOP/s**: a float32 ``n × n @ n × n`` matmul (``2·n³`` FLOPs), timed ``--gemm-reps``
  times at the start of each round (median), so it is measured interleaved with the towers on
  the same machine state.
- **ratio**: median over rounds of (tower FLOP/s ÷ GEMM FLOP/s of the same round).
- **1×1-conv GEMM**: the same ``n × n @ n × n`` product run as a 1×1 convolution (input
  ``[1, n, n, 1]``, weight ``[n, n, 1, 1]``), which goes through oneDNN — the library the towers'
  convolutions use — instead of MKL's sgemm behind ``torch.mm``. On AMD CPUs MKL's sgemm does not
  take its AVX-512 path, so oneDNN's GEMM is the higher, fairer peak there; its ratio is the last
  column.

Also printed for EfficientNet-Lite0: the share of its FLOPs and of its forward time spent in
depthwise convolutions (timed with forward hooks on one extra forward), which shows where the
low ratio comes from — depthwise 3×3/5×5 convolutions do ~9–25 multiply-adds per element
loaded, so they run at memory bandwidth, not at GEMM speed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from mmembed.models.towers import (  # noqa: E402
    EfficientNetLite0Tower,
    SmallCNNTower,
    TorchvisionTower,
)


def build_towers(sizes_enet: list[int], sizes_resnet: list[int], sizes_small: list[int]):
    """``(label, input_size, tower)`` for every tower measured, all in eval mode."""
    towers = []
    for s in sizes_enet:
        # Pretrained weights: what the project runs (the weights do not change the FLOPs).
        towers.append(("EfficientNetLite0Tower", s, EfficientNetLite0Tower(input_size=s)))
    for s in sizes_resnet:
        towers.append(("TorchvisionTower resnet18 (random weights)", s,
                       TorchvisionTower("resnet18", weights=None, input_size=s)))
    for s in sizes_small:
        towers.append(("SmallCNNTower (width 32)", s, SmallCNNTower(input_size=s)))
    return [(label, s, t.eval()) for label, s, t in towers]


def count_flops(tower: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        tower(x)
    return int(counter.get_total_flops())


def depthwise_split(tower: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """FLOPs and wall time of depthwise vs other convolutions in one forward (forward hooks)."""
    flops = {"depthwise": 0, "other conv": 0}
    secs = {"depthwise": 0.0, "other conv": 0.0}
    starts: dict[int, float] = {}
    handles = []

    def kind(m: nn.Conv2d) -> str:
        return "depthwise" if m.groups > 1 and m.groups == m.in_channels else "other conv"

    def pre(m, args):
        starts[id(m)] = time.perf_counter()

    def post(m, args, out):
        secs[kind(m)] += time.perf_counter() - starts[id(m)]
        kh, kw = m.kernel_size
        flops[kind(m)] += 2 * out.numel() * (m.in_channels // m.groups) * kh * kw

    for m in tower.modules():
        if isinstance(m, nn.Conv2d):
            handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        with torch.no_grad():
            t0 = time.perf_counter()
            tower(x)
            total = time.perf_counter() - t0
    finally:
        for h in handles:
            h.remove()
    return {"total_s": total, **{f"{k}_flops": v for k, v in flops.items()},
            **{f"{k}_s": v for k, v in secs.items()}}


def gemm_flops_per_s(a: torch.Tensor, b: torch.Tensor, reps: int) -> float:
    n = a.shape[0]
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times)


def conv_gemm_flops_per_s(x: torch.Tensor, w: torch.Tensor, reps: int) -> float:
    n = w.shape[0]
    times = []
    with torch.no_grad():
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.nn.functional.conv2d(x, w)
            times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times)


def time_forward(tower: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        t0 = time.perf_counter()
        tower(x)
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--gemm-n", type=int, default=2048)
    p.add_argument("--gemm-reps", type=int, default=3)
    p.add_argument("--enet-sizes", type=int, nargs="*", default=[128, 224])
    p.add_argument("--resnet-sizes", type=int, nargs="*", default=[128, 224])
    p.add_argument("--small-sizes", type=int, nargs="*", default=[64, 128])
    args = p.parse_args(argv)

    torch.manual_seed(0)
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    towers = build_towers(args.enet_sizes, args.resnet_sizes, args.small_sizes)
    inputs = {s: torch.rand(args.batch, 3, s, s) for _, s, _ in towers}
    n = args.gemm_n
    a, b = torch.randn(n, n), torch.randn(n, n)
    cx, cw = a.view(1, n, n, 1), b.t().contiguous().view(n, n, 1, 1)

    flops = [count_flops(t, inputs[s]) for _, s, t in towers]  # per batch
    for _, s, t in towers:  # warm-up (allocator, oneDNN primitive caches)
        time_forward(t, inputs[s])
    torch.mm(a, b)
    conv_gemm_flops_per_s(cx, cw, 1)

    conv_gemm = []  # per round
    gemm = []  # per round
    secs: list[list[float]] = [[] for _ in towers]  # per tower, per round
    order = list(range(len(towers)))
    for r in range(args.rounds):
        gemm.append(gemm_flops_per_s(a, b, args.gemm_reps))
        conv_gemm.append(conv_gemm_flops_per_s(cx, cw, args.gemm_reps))
        # Rotate the tower order so no tower always runs right after the GEMM.
        for i in order[r % len(order):] + order[:r % len(order)]:
            _, s, t = towers[i]
            secs[i].append(time_forward(t, inputs[s]))

    splits = [(label, s, depthwise_split(t, inputs[s])) for label, s, t in towers
              if label.startswith("EfficientNet")]
    load_after = os.getloadavg()
    elapsed = time.perf_counter() - t_start

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after; {elapsed:.0f} s in all")
    print(f"batch {args.batch}, {args.rounds} rounds (medians), GEMM {n}×{n} @ {n}×{n} float32 "
          f"×{args.gemm_reps} per round: {statistics.median(gemm) / 1e9:.1f} GFLOP/s median "
          f"(per round: {', '.join(f'{g / 1e9:.1f}' for g in gemm)}); as a 1×1 conv (oneDNN): "
          f"{statistics.median(conv_gemm) / 1e9:.1f} GFLOP/s median "
          f"(per round: {', '.join(f'{g / 1e9:.1f}' for g in conv_gemm)})\n")
    print("| tower | input | GFLOPs/image | images/s | achieved GFLOP/s | GEMM GFLOP/s | ratio "
          "| 1×1-conv GEMM GFLOP/s | ratio to it |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (label, s, _), f, ts in zip(towers, flops, secs):
        med = statistics.median(ts)
        ratio = statistics.median(f / t / g for t, g in zip(ts, gemm))
        ratio_c = statistics.median(f / t / g for t, g in zip(ts, conv_gemm))
        print(f"| {label} | {s} | {f / args.batch / 1e9:.3f} | {args.batch / med:.0f} | "
              f"{f / med / 1e9:.1f} | {statistics.median(gemm) / 1e9:.1f} | {ratio:.3f} | "
              f"{statistics.median(conv_gemm) / 1e9:.1f} | {ratio_c:.3f} |")

    print("\nEfficientNet-Lite0, one forward timed with hooks on every convolution:\n")
    print("| input | conv kind | share of FLOPs | share of forward time | GFLOP/s |")
    print("|---:|---|---:|---:|---:|")
    for _, s, d in splits:
        conv_flops = d["depthwise_flops"] + d["other conv_flops"]
        for k in ("depthwise", "other conv"):
            rate = d[f"{k}_flops"] / d[f"{k}_s"] / 1e9 if d[f"{k}_s"] else float("nan")
            print(f"| {s} | {k} | {d[f'{k}_flops'] / conv_flops:.1%} | "
                  f"{d[f'{k}_s'] / d['total_s']:.1%} | {rate:.1f} |")
        rest = d["total_s"] - d["depthwise_s"] - d["other conv_s"]
        print(f"| {s} | rest (BN, activations, pooling, preprocess) | – | "
              f"{rest / d['total_s']:.1%} | – |")

    print(f"\ncommand: `OMP_WAIT_POLICY=PASSIVE "
          f"{shlex.join([Path(sys.executable).name, *sys.argv])}`")


if __name__ == "__main__":
    main()
