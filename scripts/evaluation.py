"""Regenerate EVALUATION.md from scratch: every experiment on synthetic and Tux Paint data.

    python scripts/evaluation.py [--seeds 0 1 2] [--out outputs/evaluation] [--md EVALUATION.md]

For each data source (``data=synthetic``: planted topics, account mixtures and engagement;
``data=tuxpaint``: real photos and captions in real categories, synthetic likes) and each seed,
it trains every experiment with ``python train.py`` at the CPU sizes of the plain command,
evaluates each bundle with :func:`mmembed.evaluate.evaluate` (held-out posts as caption-less
photos), and clusters the frozen image-tower features with k-means as a reference. The rows:

- ``joint_clip``: the plain ``python train.py`` (joint_clip's towers at CPU sizes);
- ``scratch_clip``, ``image_ae``, ``seed_baseline``: ``+experiment=NAME``;
- ``k-means on frozen features``: :func:`mmembed.evaluate.frozen_feature_kmeans` on the
  joint_clip bundle's image tower, at the joint_clip bundle's K and at the true number of topics.

Everything goes under ``--out`` (bundles, run folders, logs, a fresh data/feature cache, and
``evaluation.json`` with every number), then the markdown tables are written to ``--md``. Every
number in it comes from this one run. A failed training is reported in the table and the log,
and the script goes on (exit status 1 at the end).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

EXPERIMENTS: dict[str, list[str]] = {
    "joint_clip": [],  # the plain command is joint_clip at CPU sizes
    # Both towers train end to end: ~27 s per epoch on 2 cores, so a CPU budget of 10 epochs
    # (the experiment's own 40 are for a GPU).
    "scratch_clip": ["+experiment=scratch_clip", "trainer.max_epochs=10"],
    "image_ae": ["+experiment=image_ae"],
    "seed_baseline": ["+experiment=seed_baseline"],
}
DATA = {"synthetic": "Synthetic (planted truth)", "tuxpaint": "Tux Paint (real photos)"}
REFERENCE = "k-means on frozen features"

# Goals of the synthetic default (joint_clip): (key, goal text, test).
GOALS = [
    ("nmi", "≥ 0.90", lambda v: v >= 0.90, 0.90),
    ("profile_tv", "≤ 0.10", lambda v: v <= 0.10, 0.10),
    ("image_only_agreement", "≥ 0.90", lambda v: v >= 0.90, 0.90),
    ("engagement_src", "≥ 0.60", lambda v: v >= 0.60, 0.60),
]
COLUMNS = [("k", "K"), ("nmi", "NMI"), ("image_only_nmi", "image-only NMI"),
           ("image_only_agreement", "image-only agreement"), ("profile_tv", "profile TV ↓"),
           ("profile_tv_shares", "profile TV vs posted ↓"),
           ("engagement_src", "engagement SRC"), ("pairwise_accuracy", "pairwise acc."),
           ("ndcg@10", "NDCG@10"), ("precision@10", "precision@10"), ("train_s", "train s")]


# ------------------------------------------------------------------------------ running
def train_command(experiment: str, data: str, seed: int, out: Path, cache: Path) -> list[str]:
    name = f"{experiment}-{data}-s{seed}"
    return [sys.executable, "train.py", *EXPERIMENTS[experiment], f"data={data}", f"seed={seed}",
            f"experiment_name={experiment}", f"bundle_name={name}",
            f"paths.index_dir={out / 'index'}", f"paths.cache_dir={cache}",
            f"hydra.run.dir={out / 'runs' / name}", "logger=csv", "print_config=false",
            "trainer.enable_progress_bar=false"]


def run_one(experiment: str, data: str, seed: int, out: Path, cache: Path) -> dict[str, Any]:
    """Train one bundle, then evaluate it; the eval dict plus ``train_s`` (or ``error``)."""
    from mmembed.evaluate import EvalSettings, evaluate

    cmd = train_command(experiment, data, seed, out, cache)
    name = f"{experiment}-{data}-s{seed}"
    log = out / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"[{time.strftime('%H:%M:%S')}] {name}: training …", flush=True)
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                              env={**os.environ, "WANDB_MODE": "offline"})
    train_s = time.perf_counter() - start
    if proc.returncode != 0:
        print(f"  failed (exit {proc.returncode}); see {log}", flush=True)
        return {"error": f"train.py exited with {proc.returncode}; see {log}",
                "command": " ".join(cmd[1:]), "train_s": train_s}
    res = evaluate(out / "index" / name, EvalSettings())
    res["train_s"] = train_s
    res["k"] = res["bundle"]["k"]
    res["command"] = "python " + " ".join(cmd[1:])
    print(f"  {train_s:.0f} s; NMI {res['nmi']:.3f}, NDCG@10 {res['ndcg@10']:.3f}", flush=True)
    return res


def reference(joint: dict[str, Any], seed: int) -> dict[str, Any]:
    """k-means on the joint_clip bundle's frozen image-tower features, at its K and at the
    number of true topics."""
    from mmembed.bundle import Bundle
    from mmembed.evaluate import frozen_feature_kmeans

    path = Path(joint["bundle"]["path"])
    topics = {row.get("topic") for row in Bundle.load(path).posts()}
    ks = sorted({int(joint["k"]), len(topics)})
    ref = frozen_feature_kmeans(path, ks, seed=seed)
    ref["k_bundle"], ref["k_topics"] = int(joint["k"]), len(topics)
    return ref


# ------------------------------------------------------------------------------ summarising
def _values(runs: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in runs if r.get(key) is not None and "error" not in r]


def _cell(values: list[float], digits: int = 3) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _k_cell(values: list[float]) -> str:
    return ", ".join(str(int(v)) for v in values) if values else "–"


def _baseline(runs: list[dict], name: str, metric: str = "ndcg@10") -> list[float]:
    return [r["baselines"][name][metric] for r in runs
            if "error" not in r and r["baselines"][name][metric] is not None]


def _best_alpha(runs: list[dict]) -> list[float]:
    out = []
    for r in runs:
        if "error" in r:
            continue
        sweep = r["baselines"]["alpha_sweep"]
        out.append(max(sweep.values(), key=lambda v: v["ndcg@10"] or -1)["ndcg@10"])
    return out


def metric_table(results: dict[str, list[dict]], refs: list[dict]) -> list[str]:
    lines = ["| experiment | " + " | ".join(h for _, h in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for experiment, runs in results.items():
        failed = [r for r in runs if "error" in r]
        cells = []
        for key, _ in COLUMNS:
            values = _values(runs, key)
            cells.append(_k_cell(values) if key == "k" else
                         _cell(values, 0) if key == "train_s" else _cell(values))
        note = f" ({len(failed)} of {len(runs)} runs failed)" if failed else ""
        lines.append(f"| {experiment}{note} | " + " | ".join(cells) + " |")
    if refs:
        same_k = all(ref["k_bundle"] == ref["k_topics"] for ref in refs)
        for which in ("k_bundle",) if same_k else ("k_bundle", "k_topics"):
            ks = [ref[which] for ref in refs]
            nmi = [ref["by_k"][ref[which]]["nmi"] for ref in refs]
            label = ("joint_clip's K = number of topics" if same_k else
                     "joint_clip's K" if which == "k_bundle" else "K = number of topics")
            cells = ["–"] * len(COLUMNS)
            cells[0], cells[1], cells[2] = _k_cell(ks), _cell(nmi), _cell(nmi)
            lines.append(f"| {REFERENCE} ({label}) | " + " | ".join(cells) + " |")
    return lines


def ranking_table(results: dict[str, list[dict]]) -> list[str]:
    lines = ["| experiment | mmembed (α = 0.3) | random | engagement only (α = 1) | "
             "fit only (α = 0) | best α of the sweep | above every baseline |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for experiment, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        if not ok:
            lines.append(f"| {experiment} | failed | | | | | |")
            continue
        mine = _values(ok, "ndcg@10")
        base = {n: _baseline(ok, n) for n in ("random", "engagement_only", "fit_only")}
        wins = sum(all(r["ndcg@10"] > r["baselines"][n]["ndcg@10"] for n in base) for r in ok)
        lines.append(f"| {experiment} | {_cell(mine)} | {_cell(base['random'])} | "
                     f"{_cell(base['engagement_only'])} | {_cell(base['fit_only'])} | "
                     f"{_cell(_best_alpha(ok))} | {wins} of {len(ok)} seeds |")
    return lines


def goals_table(results: dict[str, dict[str, list[dict]]],
                refs: dict[str, list[dict]]) -> list[str]:
    runs = [r for r in results.get("synthetic", {}).get("joint_clip", []) if "error" not in r]
    lines = ["| goal (synthetic default unless noted) | target | result (mean over seeds) | |",
             "|---|---|---:|---|"]
    for key, target, test, bound in GOALS:
        values = _values(runs, key)
        if not values:
            lines.append(f"| {key} | {target} | – | not measured |")
            continue
        mean = float(np.mean(values))
        met = test(mean)
        per_seed = sum(test(v) for v in values)
        verdict = "met" if met else f"missed by {abs(mean - bound):.3f}"
        lines.append(f"| {key} | {target} | {mean:.3f} | **{verdict}** "
                     f"({per_seed} of {len(values)} seeds) |")
    wins = [all(r["ndcg@10"] > r["baselines"][n]["ndcg@10"]
                for n in ("random", "engagement_only", "fit_only")) for r in runs]
    if runs:
        lines.append(f"| NDCG@10 above random, engagement-only and fit-only | all three | "
                     f"{float(np.mean(_values(runs, 'ndcg@10'))):.3f} | "
                     f"**{'met' if all(wins) else 'missed'}** ({sum(wins)} of {len(runs)} "
                     "seeds) |")
    tux = [r for r in results.get("tuxpaint", {}).get("joint_clip", []) if "error" not in r]
    tux_refs = refs.get("tuxpaint", [])
    if tux and tux_refs:
        mine = [r["nmi"] for r in tux]
        theirs = [ref["by_k"][ref["k_bundle"]]["nmi"] for ref in tux_refs]
        wins = sum(a > b for a, b in zip(mine, theirs))
        lines.append(f"| Tux Paint NMI above {REFERENCE} (same K) | above | "
                     f"{np.mean(mine):.3f} vs {np.mean(theirs):.3f} | "
                     f"**{'met' if np.mean(mine) > np.mean(theirs) else 'missed'}** "
                     f"({wins} of {len(mine)} seeds) |")
    return lines


def environment() -> dict[str, Any]:
    """Where and from what the numbers came (recorded when the run starts)."""
    import torch

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()

    return {"date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "commit": git("rev-parse", "--short", "HEAD") or "unknown",
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__}


def _environment_line(env: dict[str, Any], seeds: list[int], minutes: float) -> str:
    return (f"Generated {env['date']} by `python scripts/evaluation.py --seeds "
            f"{' '.join(map(str, seeds))}` at commit `{env['commit']}`"
            f"{' (with uncommitted changes)' if env['dirty'] else ''}, in {minutes:.0f} min on "
            f"{env['cpus']} CPU cores (Python {env['python']}, torch {env['torch']}, no GPU).")


def write_markdown(path: Path, results: dict[str, dict[str, list[dict]]],
                   refs: dict[str, list[dict]], seeds: list[int], minutes: float,
                   env: dict[str, Any]) -> None:
    n = len(seeds)
    spread = (f"mean ± standard deviation over {n} seeds" if n > 1 else "result of one seed")
    lines = ["# Evaluation", "", _environment_line(env, seeds, minutes), "",
             "Each experiment is trained with the plain command's CPU sizes (2,000 synthetic posts "
             "at 96 px, or the ~430 Tux Paint photos), then its bundle is evaluated on its "
             "held-out posts (`split == test`), which go through `rank.py`'s path as "
             "caption-less photos. Cells are the " + spread + f" "
             f"({', '.join(map(str, seeds))}); the seed also draws the data. The numbers per "
             "seed, and the command of every run, are in `evaluation.json` under the output "
             "folder.", "",
             "| row | `python train.py` overrides (plus `data=… seed=…`) |", "|---|---|",
             *[f"| {e} | {' '.join(f'`{o}`' for o in o_) or '(none: the plain command)'} |"
               for e, o_ in EXPERIMENTS.items() if any(e in d for d in results.values())],
             f"| {REFERENCE} | the joint_clip bundle's image tower (EfficientNet-Lite0, frozen "
             "ImageNet weights), L2-normalised features, k-means on all posts |", "",
             "## What the numbers mean for you", "",
             "- **NMI** (0–1): how well the content clusters recover the true topics; "
             "**image-only NMI** is the same for new photos without a caption, which is what "
             "you rank. **Image-only agreement**: how often a photo alone lands in the cluster "
             "its full post (photo + caption) lands in.",
             "- **Profile TV** (0–1, lower is better): how far a community's profile is from "
             "its planted topic mixture; 0.10 means 10% of the profile's mass sits on the wrong "
             "topics. Part of it is not the model's: an account's few hundred posts are a finite "
             "sample of its mixture. **Profile TV vs posted** compares the profile with the "
             "topics the account actually posted, which is the model's own error.",
             "- **Engagement SRC** (−1–1): Spearman correlation of the predicted engagement "
             "of a photo with the engagement it really got; **pairwise accuracy**: for two "
             "posts of one account, how often the one that did better is predicted better "
             "(0.5 is chance).",
             "- **NDCG@10 / precision@10**: for each account, rank all held-out photos; the "
             "right answers are that account's own posts, weighted by how well they did. "
             "Compare the score with the random, engagement-only and fit-only rankings.", "",
             "## Goals", "", *goals_table(results, refs), ""]
    for data, title in DATA.items():
        if data not in results:
            continue
        note = ([] if data != "tuxpaint" else [
            "On Tux Paint the planted mixture is each audience's *taste*, which decides who "
            "posts a photo but is not the share of topics posted (the 15 categories differ "
            "greatly in size), so read *profile TV vs posted* here.", ""])
        lines += [f"## {title}", "", *note, *metric_table(results[data], refs.get(data, [])),
                  "",
                  f"Ranking quality on {title.split(' (')[0]} (NDCG@10; the baselines rank the "
                  "same photos for the same communities):", "",
                  *ranking_table(results[data]), ""]
    lines += ["## Reproduce", "", "```", "python scripts/evaluation.py --seeds "
              + " ".join(map(str, seeds)), "```", "",
              "One experiment alone: `python train.py [+experiment=NAME] data=synthetic|tuxpaint "
              "seed=S`, then `python -m mmembed.evaluate bundle=index/NAME` (writes "
              "`eval.json` and `eval.md` beside the bundle)."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------ the entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", nargs="+", choices=list(DATA), default=list(DATA))
    parser.add_argument("--experiments", nargs="+", choices=list(EXPERIMENTS),
                        default=list(EXPERIMENTS))
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "evaluation",
                        help="bundles, runs, logs and evaluation.json (emptied first)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="data and feature cache (default: a fresh one under --out)")
    parser.add_argument("--md", type=Path, default=ROOT / "EVALUATION.md")
    parser.add_argument("--render", type=Path, default=None, metavar="EVALUATION_JSON",
                        help="only rewrite --md from the evaluation.json of an earlier run")
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads(args.render.read_text(encoding="utf-8"))
        refs = {d: [{**r, "by_k": {int(k): v for k, v in r["by_k"].items()}} for r in rs]
                for d, rs in saved["reference"].items()}
        write_markdown(args.md, saved["results"], refs, saved["seeds"], saved["minutes"],
                       saved["environment"])
        print(f"wrote {args.md} from {args.render}")
        return 0

    started = time.perf_counter()
    env = environment()
    out = args.out.resolve()
    if out.exists() and any(out.iterdir()):
        if not (out / ".mmembed-evaluation").is_file():
            parser.error(f"--out {out} is not empty and is not an earlier evaluation folder; "
                         "choose a new folder (it is emptied before every run)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / ".mmembed-evaluation").write_text("written by scripts/evaluation.py\n")
    cache = (args.cache or out / "cache").resolve()
    results: dict[str, dict[str, list[dict]]] = {}
    refs: dict[str, list[dict]] = {}
    for data in args.data:
        results[data] = {e: [] for e in args.experiments}
        for seed in args.seeds:
            for experiment in args.experiments:
                results[data][experiment].append(run_one(experiment, data, seed, out, cache))
            joint = results[data].get("joint_clip", [])
            if joint and "error" not in joint[-1] and joint[-1].get("nmi") is not None:
                refs.setdefault(data, []).append(reference(joint[-1], seed))
    minutes = (time.perf_counter() - started) / 60
    (out / "evaluation.json").write_text(json.dumps(
        {"seeds": args.seeds, "minutes": minutes, "environment": env, "results": results,
         "reference": refs}, indent=1, default=str), encoding="utf-8")
    write_markdown(args.md, results, refs, args.seeds, minutes, env)
    print(f"wrote {args.md} and {out / 'evaluation.json'}")
    failed = [r["error"] for d in results.values() for runs in d.values() for r in runs
              if "error" in r]
    for error in failed:
        print(f"FAILED: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
