"""Training throughput: Lightning's ``Trainer.fit`` against a bare PyTorch loop (P1), and the
input pipeline against the training step (P2).

    python benchmarks/train_throughput.py [--posts 400] [--steps 100] [--scratch-steps 20]
        [--rounds 3] [--workers 0 2] [--configs default scratch_clip] [--threads N]

Prints two markdown tables for BENCHMARKS.md, with the command and the machine, for two
configs: the plain ``python train.py`` model (frozen pretrained towers, features cached once per
post) and ``+experiment=scratch_clip`` (both towers trained end to end).

P1 runs the SAME model (a copy of one initial state), on the SAME batches (the datamodule's
train DataLoader, same seed so same order and same modality-dropout masks), with the same
optimizer, scheduler, gradient clipping and logit-scale clamp, for the same number of steps,
once through ``Trainer.fit`` and once through a hand-written loop. The per-step losses of both
arms are compared, so the table also shows that the bare loop computes the same thing. Rates are
steady-state steps/s (the first tenth of the steps and the one-off setup are excluded); the
machine is shared and noisy, so each round times both arms back to back, alternating which goes
first, and the table reports the median of the per-round ratios. Goal: Lightning/bare >= 0.90.
Two more columns: the same ratio in steps per CPU second of this process (all its threads),
which other processes on the machine disturb far less than wall time, and the ratio of the
whole calls (``Trainer.fit`` against the loop, each with its one-off start: optimizer, the
feature cache read from disk, Lightning's setup).

P2 divides (i) the train DataLoader's rate alone (images read from the decoded-image cache,
collate, tokenisation hook) by (ii) the bare training step rate on batches already in memory.
Goal: >= 3, so data loading is never what a training step waits for.

Threads: torch gets the threads :func:`mmembed.training.train` gives it (``--threads`` to
change), and OpenMP's wait policy defaults to PASSIVE before torch loads, as ``import mmembed``
sets it for ``python train.py``: with OpenMP's spin-waiting, on a machine shared with other
CPU-bound processes, every parallel op waits for a descheduled thread and a 30 ms step takes
1-3 s. A wait policy set by the caller is kept and echoed in the printed command.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import logging
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

# Threading settings that change the timings, as the caller set them (echoed in the command).
ENV = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "TOKENIZERS_PARALLELISM")
CALLER_ENV = {k: os.environ[k] for k in ENV if k in os.environ}
# What `python train.py` runs with (mmembed/__init__.py); OpenMP reads it when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import lightning as L  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402

from mmembed.config import compose  # noqa: E402
from mmembed.training import attach_tokenizer, setup_datamodule  # noqa: E402

# key: (table label, Hydra overrides, the flag holding its step count)
CONFIGS = {
    "default": ("default: `python train.py` (frozen towers, cached features)", [], "steps"),
    "scratch_clip": ("`+experiment=scratch_clip` (towers trained end to end)",
                     ["+experiment=scratch_clip"], "scratch_steps"),
}


def quiet() -> None:
    """Silence the expected warnings: ``self.log`` outside a Trainer (a no-op there), frozen
    towers kept in eval mode on purpose, and Lightning's advice about DataLoader workers."""
    warnings.filterwarnings("ignore", message=r".*self\.log\(\)` but the `self\.trainer`")
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode")
    warnings.filterwarnings("ignore", message=r".*does not have many workers")
    warnings.filterwarnings("ignore", message=r".*number of training batches.*smaller than")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


@dataclass
class Run:
    """One timed training run: wall time of the whole call and a timestamp per step."""

    wall: float = 0.0
    stamps: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # process CPU time (all threads) per step
    losses: list[float] = field(default_factory=list)
    first_index: list[int] = field(default_factory=list)

    def rate(self, warmup: int) -> float:
        """Steady-state steps/s: steps after ``warmup`` over the time they took."""
        n = len(self.stamps)
        return (n - warmup) / (self.stamps[-1] - self.stamps[warmup - 1])

    def cpu_rate(self, warmup: int) -> float:
        """Steps per CPU second after ``warmup``: far less sensitive to other processes."""
        n = len(self.cpu)
        return (n - warmup) / (self.cpu[-1] - self.cpu[warmup - 1])

    def tick(self, loss: torch.Tensor, batch) -> None:
        self.stamps.append(time.perf_counter())
        self.cpu.append(time.process_time())
        self.losses.append(loss.item())
        self.first_index.append(int(batch["index"][0]))


def build(overrides: list[str], posts: int, cache_dir: Path, out_dir: Path):
    """Config, model and set-up datamodule, built the way :func:`mmembed.training.train` does."""
    cfg = compose([f"data.num_posts={posts}", f"paths.cache_dir={cache_dir}",
                   f"paths.output_dir={out_dir}",
                   "print_config=false", *overrides])
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = setup_datamodule(cfg)
    model = instantiate(cfg.model)
    attach_tokenizer(model, datamodule)
    return cfg, model, datamodule


def optimizers(model):
    """``configure_optimizers`` unpacked into (optimizer, epoch scheduler or None)."""
    conf = model.configure_optimizers()
    if isinstance(conf, dict):
        return conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    return conf, None


def bare_step(model, optimizer, params, batch, i, clip: float) -> torch.Tensor:
    loss = model.training_step(batch, i)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()
    model.on_train_batch_end(None, batch, i)  # the logit-scale clamp
    return loss


def bare_run(model, datamodule, steps: int, seed: int, clip: float) -> Run:
    """The hand-written loop: same batches, optimizer, clipping and clamp as the Trainer."""
    run = Run()
    torch.manual_seed(seed)
    start = time.perf_counter()
    model.setup("fit")
    model.prepare(datamodule)
    optimizer, scheduler = optimizers(model)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    loader = datamodule.train_dataloader()
    model.train()
    step = 0
    while step < steps:
        for i, batch in enumerate(loader):
            run.tick(bare_step(model, optimizer, params, batch, i, clip), batch)
            step += 1
            if step == steps:
                break
        else:
            if scheduler is not None:
                scheduler.step()
    run.wall = time.perf_counter() - start
    return run


class StepClock(Callback):
    """Records a timestamp, the loss and the batch's first post after every training step."""

    def __init__(self, run: Run):
        self.run = run

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.run.tick(outputs["loss"], batch)


def lightning_run(cfg, model, datamodule, steps: int, seed: int, root: Path) -> Run:
    run = Run()
    trainer = instantiate(
        cfg.trainer, logger=False, callbacks=[StepClock(run)], enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0, max_steps=steps, max_epochs=-1, default_root_dir=str(root),
    )
    torch.manual_seed(seed)
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    run.wall = time.perf_counter() - start
    if trainer.global_step != steps:
        raise RuntimeError(f"Lightning ran {trainer.global_step} steps, expected {steps}")
    return run


def p1(name, cfg, model, datamodule, steps: int, rounds: int, root: Path) -> dict:
    """Alternating rounds of Lightning and bare loop on copies of one initial model."""
    clip = float(cfg.trainer.gradient_clip_val)
    seed = int(cfg.seed)
    warmup = warmup_steps(steps)

    def arm(kind: str, n: int) -> Run:
        fresh = copy.deepcopy(model)
        if kind == "lightning":
            return lightning_run(cfg, fresh, datamodule, n, seed, root)
        return bare_run(fresh, datamodule, n, seed, clip)

    arm("lightning", warmup + 2), arm("bare", warmup + 2)  # imports, allocator, page cache
    ratios, cpu_ratios, whole, rates = [], [], [], {"lightning": [], "bare": []}
    max_diff, same_batches = 0.0, True
    for r in range(rounds):
        order = ("lightning", "bare") if r % 2 == 0 else ("bare", "lightning")
        runs = {kind: arm(kind, steps) for kind in order}
        lit, bare = runs["lightning"], runs["bare"]
        for kind in runs:
            rates[kind].append(runs[kind].rate(warmup))
        ratios.append(lit.rate(warmup) / bare.rate(warmup))
        cpu_ratios.append(lit.cpu_rate(warmup) / bare.cpu_rate(warmup))
        whole.append(bare.wall / lit.wall)
        same_batches &= lit.first_index == bare.first_index
        max_diff = max(max_diff, float(np.max(np.abs(np.subtract(lit.losses, bare.losses)))))
        log(f"  P1 round {r + 1}: Lightning {rates['lightning'][-1]:.2f} steps/s, "
            f"bare {rates['bare'][-1]:.2f} steps/s, ratio {ratios[-1]:.3f} "
            f"(CPU time {cpu_ratios[-1]:.3f})")
    return {"name": name, "steps": steps, "warmup": warmup,
            "lightning": statistics.median(rates["lightning"]),
            "bare": statistics.median(rates["bare"]), "ratio": statistics.median(ratios),
            "cpu_ratio": statistics.median(cpu_ratios),
            "ratios": ratios, "whole": statistics.median(whole), "same": same_batches,
            "diff": max_diff, "batch": int(cfg.datamodule.batch_size),
            "train": len(datamodule.datasets["train"]),
            "per_epoch": len(datamodule.train_dataloader())}


def pipeline_rate(datamodule, num_workers: int, batches: int) -> float:
    """Batches/s of the train DataLoader alone, after one untimed epoch (worker start-up)."""
    saved = datamodule.num_workers
    datamodule.num_workers = num_workers
    loader = datamodule.train_dataloader()
    datamodule.num_workers = saved
    for _ in loader:
        pass
    count, start = 0, time.perf_counter()
    while count < batches:
        for _ in loader:
            count += 1
            if count == batches:
                break
    rate = count / (time.perf_counter() - start)
    del loader  # stops persistent workers
    return rate


class InMemorySteps:
    """Bare training steps on batches materialised once (one epoch, cycled): no data loading."""

    def __init__(self, cfg, model, datamodule):
        self.model = copy.deepcopy(model)
        torch.manual_seed(int(cfg.seed))
        self.model.setup("fit")
        self.model.prepare(datamodule)
        self.optimizer, _ = optimizers(self.model)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.clip = float(cfg.trainer.gradient_clip_val)
        saved = datamodule.num_workers
        datamodule.num_workers = 0
        self.batches = itertools.cycle(list(datamodule.train_dataloader()))
        datamodule.num_workers = saved
        self.model.train()

    def rate(self, steps: int) -> float:
        warmup, stamps = warmup_steps(steps), []
        for i in range(steps):
            bare_step(self.model, self.optimizer, self.params, next(self.batches), i, self.clip)
            stamps.append(time.perf_counter())
        return (steps - warmup) / (stamps[-1] - stamps[warmup - 1])


def p2(name, cfg, model, datamodule, steps: int, rounds: int, workers, batches: int) -> list:
    """Per round: the loader's rate for each ``num_workers``, then the in-memory step rate;
    the ratio is taken within a round and the median over rounds is reported."""
    trainer = InMemorySteps(cfg, model, datamodule)
    steps = max(5, steps // 2)
    trainer.rate(warmup_steps(steps) + 2)
    per = {nw: {"pipe": [], "step": [], "ratio": []} for nw in workers}
    for r in range(rounds):
        pipes = {nw: pipeline_rate(datamodule, nw, batches) for nw in workers}
        step = trainer.rate(steps)
        for nw, pipe in pipes.items():
            per[nw]["pipe"].append(pipe)
            per[nw]["step"].append(step)
            per[nw]["ratio"].append(pipe / step)
        log(f"  P2 round {r + 1}: step {step:.2f} steps/s, pipeline "
            + ", ".join(f"{pipe:.1f} batches/s ({nw} workers)" for nw, pipe in pipes.items()))
    return [{"name": name, "workers": nw, "steps": steps,
             **{k: statistics.median(v) for k, v in m.items()}} for nw, m in per.items()]


def warmup_steps(steps: int) -> int:
    """Untimed first steps of a timed run: a tenth, at least two."""
    return max(2, steps // 10)


def floor3(x: float) -> float:
    """Rounded down to 3 decimals, so a printed 0.900 never stands for a missed 0.8996."""
    return math.floor(x * 1000) / 1000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=400, help="synthetic posts (data.num_posts)")
    parser.add_argument("--steps", type=int, default=100,
                        help="training steps per timed run, default config")
    parser.add_argument("--scratch-steps", type=int, default=20,
                        help="training steps per timed run, scratch_clip (~1 s a step on 2 CPUs)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (P1 and P2)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="DataLoader num_workers values for P2")
    parser.add_argument("--pipeline-batches", type=int, default=60,
                        help="batches timed per P2 pipeline measurement")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="extra Hydra overrides for every config (datamodule.batch_size=256)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: what mmembed.training.train sets)")
    parser.add_argument("--cache-dir", default=None,
                        help="paths.cache_dir (default: a temporary folder, removed afterwards)")
    args = parser.parse_args()
    if min(args.steps, args.scratch_steps) < 5:
        parser.error("--steps and --scratch-steps need at least 5 steps")
    quiet()
    torch.set_num_threads(args.threads or max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    load_before = os.getloadavg()

    p1_rows, p2_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache_dir) if args.cache_dir else Path(tmp) / "cache"
        for key in args.configs:
            name, overrides, steps_arg = CONFIGS[key]
            steps = getattr(args, steps_arg)
            log(f"{name}: setting up (data, feature cache)...")
            cfg, model, dm = build([*overrides, *args.set], args.posts, cache, Path(tmp) / "run")
            probe = copy.deepcopy(model)
            probe.prepare(dm)  # one-off, untimed: computes and stores the feature cache
            del probe
            p1_rows.append(p1(name, cfg, model, dm, steps, args.rounds, Path(tmp) / "fit"))
            p2_rows += p2(name, cfg, model, dm, steps, args.rounds, args.workers,
                          args.pipeline_batches)

    load_after = os.getloadavg()
    env = [f"{k}={v}" for k, v in CALLER_ENV.items()]
    print("command: " + " ".join([*env, "python", *map(shlex.quote, sys.argv)]))
    print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, lightning {L.__version__}; "
          f"load average (1 min) {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after; {args.posts} synthetic posts")
    print()
    print("P1: steady-state training steps/s, Lightning Trainer.fit vs a bare PyTorch loop on "
          "the same model, batches and optimizer (first tenth of the steps untimed; median of "
          f"{args.rounds} alternating rounds; ratio = Lightning / bare, wall time unless "
          "labelled CPU). Goal: ratio >= 0.90.")
    print()
    print("| config | train posts (batch, batches/epoch) | steps | bare loop (steps/s) "
          "| Lightning (steps/s) | ratio (median) | ratio per round | CPU-time ratio "
          "| whole-call ratio | same batches; max abs loss diff | goal |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---|---|")
    for row in p1_rows:
        per_round = ", ".join(f"{floor3(r):.3f}" for r in row["ratios"])
        print(f"| {row['name']} | {row['train']} ({row['batch']}, {row['per_epoch']}) "
              f"| {row['steps']} | {row['bare']:.2f} | {row['lightning']:.2f} "
              f"| {floor3(row['ratio']):.3f} | {per_round} | {floor3(row['cpu_ratio']):.3f} "
              f"| {floor3(row['whole']):.3f} "
              f"| {'yes' if row['same'] else 'NO'}; {row['diff']:.1e} "
              f"| {'met' if row['ratio'] >= 0.90 else 'missed'} |")
    print()
    print("P2: train DataLoader alone (batches/s) vs bare training steps/s on batches already in "
          f"memory (half as many steps as P1; median of {args.rounds} rounds, ratio taken within "
          "a round). Goal: ratio >= 3.")
    print()
    print("| config | num_workers | pipeline (batches/s) | training step (steps/s) "
          "| ratio | goal |")
    print("|---|---:|---:|---:|---:|---|")
    for row in p2_rows:
        print(f"| {row['name']} | {row['workers']} | {row['pipe']:.1f} | {row['step']:.2f} "
              f"| {floor3(row['ratio']):.2f} | {'met' if row['ratio'] >= 3 else 'missed'} |")


if __name__ == "__main__":
    main()
