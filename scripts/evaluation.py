"""Regenerate EVALUATION.md: every experiment on synthetic, Tux Paint and Open Clip Art data.

    python scripts/evaluation.py [--data synthetic tuxpaint openclipart] [--seeds 0 1 2]
                                 [--experiments joint_clip ...] [--out outputs/evaluation]
    python scripts/evaluation.py --render outputs/evaluation    # only rewrite the markdown

For each data source (``data=synthetic``: planted topics, account mixtures and engagement;
``data=tuxpaint``: real photos and captions in real categories, synthetic likes;
``data=openclipart``: real drawings, titles, keywords, categories and creators, synthetic
likes, capped at ``data.max_posts=3000`` drawings so it fits on 2 CPU cores) and each seed, it
trains every experiment with ``python train.py`` at the CPU sizes of the plain command, evaluates
each bundle with :func:`mmembed.evaluate.evaluate` (held-out posts, which entered nothing the
bundle fitted, as caption-less photos), and computes the references with
:func:`mmembed.evaluate.frozen_feature_kmeans` on the joint_clip bundle: k-means on the
concatenated frozen image + text features (each L2-normalised), and on the frozen image
features alone, fitted on the training posts and scored on the same held-out posts, at the
bundle's K and at the true number of categories. The rows:

- ``joint_clip``: the plain ``python train.py`` (joint_clip's towers at CPU sizes);
- ``scratch_clip``, ``image_ae``, ``seed_baseline``: ``+experiment=NAME``;
- the two k-means references.

Everything goes under ``--out``: bundles, run folders, logs, a data/feature cache (unless
``--cache``), and one ``results/<data>-s<seed>.json`` per data source and seed, written as soon
as that seed is done, with every number, the command, the commit and the wall time. Runs into
the same ``--out`` add up: a later ``--data openclipart`` run keeps the synthetic results and
replaces only the source and seeds it runs. The markdown (``--md``) is written from *all* result
files present, after every seed, each source's section stating its own command, commit and
wall time. A failed training is reported in the table and the log, and the script goes on
(exit status 1 at the end).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MARKER = ".mmembed-evaluation"

EXPERIMENTS: dict[str, list[str]] = {
    "joint_clip": [],  # the plain command is joint_clip at CPU sizes
    # Both towers train end to end: ~27 s per epoch on 2 cores, so a CPU budget of 10 epochs
    # (the experiment's own 40 are for a GPU).
    "scratch_clip": ["+experiment=scratch_clip", "trainer.max_epochs=10"],
    "image_ae": ["+experiment=image_ae"],
    "seed_baseline": ["+experiment=seed_baseline"],
}
OPENCLIPART_MAX_POSTS = 3000
DATA: dict[str, str] = {"synthetic": "Synthetic (planted truth)",
                        "tuxpaint": "Tux Paint (real photos)",
                        "openclipart": "Open Clip Art (real drawings by real creators)"}
#: Overrides a data source always gets (recorded in every command).
DATA_OVERRIDES: dict[str, list[str]] = {
    "openclipart": [f"data.max_posts={OPENCLIPART_MAX_POSTS}"]}
DATA_NOTES: dict[str, str] = {
    "synthetic": "2,000 synthetic posts at 96 px; 6 planted topics, planted account mixtures and "
                 "planted engagement.",
    "tuxpaint": "The ~430 photos of Debian's tuxpaint-stamps-default in 15 real categories, with "
                "real captions; accounts, followers and likes are synthetic. The planted mixture "
                "is each audience's *taste*, which decides who posts a photo but is not the share "
                "of topics posted (the 15 categories differ greatly in size), so read *profile "
                "TV vs posted* here.",
    "openclipart": f"A seeded subsample of {OPENCLIPART_MAX_POSTS:,} of the ~6,700 drawings of "
                   "Debian's openclipart-svg/-png (`data.max_posts="
                   f"{OPENCLIPART_MAX_POSTS}`, so a seed trains in minutes on 2 cores), in 21 "
                   "real top-level categories (a seed's subsample can miss a small one), "
                   "with real titles (captions), keywords (hashtags; "
                   "the ones naming the folder dropped) and real creators (accounts; creators "
                   "with fewer than 10 drawings share `other_creators`). Only followers and "
                   "likes are synthetic (from the drawing's colourfulness). A creator's "
                   "truth is what they actually posted, so *profile TV* is measured against "
                   "real topic mixtures.",
}
CONCAT = "k-means on concatenated frozen image + text features"
IMAGE_REF = "k-means on frozen image features alone"
BASELINES = {"random": "random", "engagement_only": "engagement only (α = 1)",
             "cluster_kl_only": "cluster KL only", "fit_only": "fit only (α = 0)"}

COLUMNS = [("held_out", "held-out posts"), ("k", "K"), ("nmi", "held-out NMI"),
           ("nmi_chance", "held-out NMI by chance"), ("nmi_train", "training NMI"),
           ("nmi_train_chance", "training NMI by chance"),
           ("nmi_gap", "gap ↓"), ("nmi_gap_above_chance", "chance-adjusted gap ↓"),
           ("nmi_train_at_held_size", "training NMI at the held-out size"),
           ("nmi_gap_same_size", "same-size gap ↓"),
           ("image_only_nmi", "image-only NMI"),
           ("image_ratio", "image-only ÷ full"),
           ("image_only_agreement", "image-only agreement"), ("profile_tv", "profile TV ↓"),
           ("profile_tv_shares", "profile TV vs posted ↓"),
           ("engagement_src", "engagement SRC"), ("pairwise_accuracy", "pairwise acc."),
           ("ndcg@10", "NDCG@10"), ("precision@10", "precision@10"),
           ("tied_fit_top20", "tied fits in top 20 ↓"), ("train_s", "train wall s")]


# ------------------------------------------------------------------------------ running
def train_command(experiment: str, data: str, seed: int, out: Path, cache: Path,
                  extra: list[str] = ()) -> list[str]:
    name = f"{experiment}-{data}-s{seed}"
    return [sys.executable, "train.py", *EXPERIMENTS[experiment], f"data={data}",
            *DATA_OVERRIDES.get(data, []), f"seed={seed}", *extra,
            f"experiment_name={experiment}", f"bundle_name={name}",
            f"paths.index_dir={out / 'index'}", f"paths.cache_dir={cache}",
            f"hydra.run.dir={out / 'runs' / name}", "logger=csv", "print_config=false",
            "trainer.enable_progress_bar=false"]


def run_one(experiment: str, data: str, seed: int, out: Path, cache: Path,
            extra: list[str] = ()) -> dict[str, Any]:
    """Train one bundle, then evaluate it; the eval dict plus ``train_s`` (or ``error``)."""
    from mmembed.evaluate import EvalSettings, evaluate

    cmd = train_command(experiment, data, seed, out, cache, extra)
    name = f"{experiment}-{data}-s{seed}"
    for old in (out / "index" / name, out / "runs" / name):
        shutil.rmtree(old, ignore_errors=True)  # an earlier run of the same seed
    log = out / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"[{time.strftime('%H:%M:%S')}] {name}: training …", flush=True)
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                              env={**os.environ, "WANDB_MODE": "offline"})
    train_s = time.perf_counter() - start
    command = "python " + shlex.join(cmd[1:])
    if proc.returncode != 0:
        print(f"  failed (exit {proc.returncode}); see {log}", flush=True)
        return {"error": f"train.py exited with {proc.returncode}; see {log}",
                "command": command, "train_s": train_s}
    try:
        res = evaluate(out / "index" / name, EvalSettings())
    except Exception as exc:  # one broken evaluation must not sink the run
        print(f"  evaluation failed: {exc!r}", flush=True)
        return {"error": f"evaluation failed: {exc!r}", "command": command, "train_s": train_s}
    from mmembed.bundle import Bundle

    res["train_s"] = train_s
    res["k"] = res["bundle"]["k"]
    cluster = Bundle.load(out / "index" / name, verify=False).config.get("cluster") or {}
    res["cluster"] = {key: cluster.get(key) for key in ("k", "k_range")}
    if res.get("nmi") is not None:
        res.update(small_sample_nmis(out / "index" / name, seed))
    res["command"] = command
    print(f"  {train_s:.0f} s; K {res['k']}, NMI {_fmt(res.get('nmi'))} (training posts "
          f"{_fmt(res.get('nmi_train'))}), NDCG@10 {_fmt(res.get('ndcg@10'))}", flush=True)
    return res


def reference(joint: dict[str, Any], seed: int) -> dict[str, Any]:
    """k-means on the joint_clip bundle's frozen features (image + text concatenated, and image
    alone), at its K and at the true number of categories, on its held-out posts."""
    from mmembed.evaluate import frozen_feature_kmeans
    from mmembed.ranking.ranker import Ranker

    path = Path(joint["bundle"]["path"])
    ranker = Ranker.from_bundle(path)
    topics = {row.get("topic") for row in ranker.posts()}
    ks = sorted({int(joint["k"]), len(topics)})
    out: dict[str, Any] = {"k_bundle": int(joint["k"]), "k_topics": len(topics)}
    for which, text in (("concat", True), ("image", False)):
        out[which] = frozen_feature_kmeans(path, ks, seed=seed, ranker=ranker, text=text)
    return out


def small_sample_nmis(bundle_path: Path, seed: int, repeats: int = 100,
                      sample_repeats: int = 200) -> dict[str, float]:
    """What the NMI's upward bias on few posts (e.g. Tux Paint's 50 held-out photos) is worth
    on the bundle's posts, from one read of them:

    - ``nmi_chance`` and ``nmi_train_chance``: the NMI chance alone reaches on the held-out and
      the training posts, their own cluster labels shuffled across them (same cluster sizes)
      against the true categories, averaged over ``repeats`` shuffles;
    - ``nmi_train_at_held_size``: the training posts' NMI on random samples as large as the
      held-out set, averaged over ``sample_repeats``
      (:func:`~mmembed.communities.metrics.subsample_nmi`), the same-size comparison.

    A held-out NMI means little without them."""
    from mmembed.bundle import Bundle
    from mmembed.communities.metrics import chance_nmi, subsample_nmi

    rows = [r for r in Bundle.load(bundle_path, verify=False).posts()
            if r.get("topic") is not None and r.get("cluster") is not None]
    held = [r for r in rows if r.get("split") == "test"]
    train = [r for r in rows if r.get("split") != "test"]
    out = {}
    for key, part in (("nmi_chance", held), ("nmi_train_chance", train)):
        if part:
            out[key] = chance_nmi([int(r["cluster"]) for r in part],
                                  [r["topic"] for r in part], repeats=repeats, seed=seed)
    if held and len(train) >= len(held):
        out["nmi_train_at_held_size"] = subsample_nmi(
            [int(r["cluster"]) for r in train], [r["topic"] for r in train], len(held),
            repeats=sample_repeats, seed=seed)
    return out


# figures that saved runs of older versions of this script lack, each with the marker
# --fill-chance leaves where it added them
LATER_FIGURES = {"nmi_chance": "chance_filled_later",
                 "nmi_train_at_held_size": "same_size_filled_later"}


def by_community_again(run: dict[str, Any], path: Path) -> dict[str, list[float]] | None:
    """The per-community NDCG@10 of a saved run, from evaluating its bundle again; None (with
    a message) when that evaluation no longer gives the saved NDCG@10 and baselines."""
    from mmembed.evaluate import EvalSettings, evaluate

    fresh = evaluate(path, EvalSettings())
    same = [fresh.get("ndcg@10"), *(fresh["baselines"][n]["ndcg@10"] for n in BASELINES)]
    saved = [run.get("ndcg@10"), *(baseline(run, n) for n in BASELINES)]
    if fresh["communities"] != run.get("communities") or not np.allclose(same, saved):
        print(f"{path.name}: evaluated again, NDCG@10 {same} differs from the saved {saved}; "
              "its per-community figures are left out", file=sys.stderr)
        return None
    return fresh[BY_COMMUNITY]


def fill_chance(folders: list[Path]) -> int:
    """Add the chance NMIs to saved runs that lack them, recompute references that lack their
    own training NMI, and evaluate again the runs that lack the per-community NDCG@10 (results
    of an older version of this script), from the bundles if still on disk; the number of runs
    and references filled."""
    filled = 0
    for folder in folders:
        for file in sorted((folder / "results").glob("*.json")):
            rec = json.loads(file.read_text(encoding="utf-8"))
            changed = False
            for run in rec["experiments"].values():
                path = Path((run.get("bundle") or {}).get("path", ""))
                if not (_ok(run) and (path / "manifest.json").is_file()):
                    continue
                missing = {key: marker for key, marker in LATER_FIGURES.items()
                           if key not in run}
                if run.get("nmi") is not None and missing:
                    run.update(small_sample_nmis(path, int(rec["seed"])),
                               **dict.fromkeys(missing.values(), True))
                    changed, filled = True, filled + 1
                if BY_COMMUNITY not in run and (again := by_community_again(run, path)):
                    run.update({BY_COMMUNITY: again, "by_community_filled_later": True})
                    changed, filled = True, filled + 1
            joint, ref = rec["experiments"].get("joint_clip"), rec.get("reference")
            if (ref and _ok(joint) and not _ref_has_gap(ref)
                    and (Path(joint["bundle"]["path"]) / "manifest.json").is_file()):
                rec["reference"] = {**reference(joint, int(rec["seed"])), "filled_later": True}
                changed, filled = True, filled + 1
            if changed:
                file.write_text(json.dumps(rec, indent=1, default=str), encoding="utf-8")
    return filled


def _ref_has_gap(ref: dict[str, Any]) -> bool:
    return all("nmi_train" in entry and "nmi_train_at_held_size" in entry
               for entry in ref["concat"]["by_k"].values())


def _fmt(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def environment() -> dict[str, Any]:
    """Where and from what the numbers came (recorded when the run starts)."""
    import torch

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()

    return {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git("rev-parse", "--short", "HEAD") or "unknown",
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "load_average": round(os.getloadavg()[0], 1)}


# ------------------------------------------------------------------------------ saved results
def result_path(out: Path, data: str, seed: int) -> Path:
    return out / "results" / f"{data}-s{seed}.json"


def _normalise(rec: dict[str, Any]) -> dict[str, Any]:
    """A record with its ``invocations`` list (records of one invocation may have the
    invocation's fields at the top)."""
    if "invocations" in rec:
        return rec
    inv = {"command": rec["command"], "environment": rec["environment"],
           "wall_s": rec["wall_s"], "experiments": list(rec["experiments"])}
    return {"data": rec["data"], "seed": rec["seed"], "experiments": rec["experiments"],
            "reference": rec.get("reference"), "invocations": [inv]}


def merge_record(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` on top of an earlier record of the same source and seed: rows it did not run
    stay, with the invocation that made them; the reference follows joint_clip."""
    new = _normalise(new)
    if old is None:
        return new
    old = _normalise(old)
    ran = set(new["experiments"])
    kept = []
    for inv in old["invocations"]:
        rest = [e for e in inv["experiments"] if e not in ran]
        if rest:
            kept.append({**inv, "experiments": rest})
    return {"data": new["data"], "seed": new["seed"],
            "experiments": {**{e: r for e, r in old["experiments"].items() if e not in ran},
                            **new["experiments"]},
            "reference": new["reference"] if "joint_clip" in ran else old.get("reference"),
            "invocations": kept + new["invocations"]}


def load_results(folders: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Every ``results/<data>-s<seed>.json`` under ``folders``: ``{data: [seed record, …]}``
    in seed order (a later folder's rows of the same source and seed win)."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for folder in folders:
        files = sorted((folder / "results").glob("*.json"))
        if not files:
            raise SystemExit(f"no results/*.json under {folder}; run scripts/evaluation.py "
                             "with --out there first")
        for file in files:
            try:
                rec = json.loads(file.read_text(encoding="utf-8"))
                key = (rec["data"], int(rec["seed"]))
                found[key] = merge_record(found.get(key), rec)
            except (ValueError, KeyError) as exc:
                print(f"skipping {file}: not a result file of this script ({exc!r})",
                      file=sys.stderr)
    by_data: dict[str, list[dict[str, Any]]] = {}
    for (data, _), rec in sorted(found.items(), key=lambda kv: kv[0][1]):
        by_data.setdefault(data, []).append(rec)
    return by_data


# ------------------------------------------------------------------------------ summarising
def _ok(run: dict[str, Any] | None) -> bool:
    return run is not None and "error" not in run


# a gap is a training NMI minus the held-out NMI: the training posts' own, or theirs on samples
# of the held-out size
TRAIN_NMI_OF_GAP = {"nmi_gap": "nmi_train", "nmi_gap_same_size": "nmi_train_at_held_size"}


def metric(run: dict[str, Any] | None, key: str) -> float | None:
    """A run's number, with the two derived ones: ``nmi_gap`` (training-post NMI minus
    held-out NMI) and ``image_ratio`` (image-only NMI ÷ full-post NMI)."""
    if not _ok(run):
        return None
    if key in TRAIN_NMI_OF_GAP:
        a, b = run.get(TRAIN_NMI_OF_GAP[key]), run.get("nmi")
        return None if a is None or b is None else float(a) - float(b)
    if key == "nmi_gap_above_chance":
        parts = [run.get(k) for k in ("nmi_train", "nmi_train_chance", "nmi", "nmi_chance")]
        if any(v is None for v in parts):
            return None
        train, train_c, held, held_c = map(float, parts)
        if max(train_c, held_c) >= 1.0:
            return None
        return (train - train_c) / (1 - train_c) - (held - held_c) / (1 - held_c)
    if key == "image_ratio":
        a, b = run.get("image_only_nmi"), run.get("nmi")
        return None if a is None or not b else float(a) / float(b)
    value = run.get(key)
    return None if value is None else float(value)


def ref_run(ref: dict[str, Any] | None, at: str) -> dict[str, Any] | None:
    """The concatenated-feature reference at ``at`` as a run's numbers (``nmi``, ``nmi_train``
    and their chance levels), so :func:`metric` gives its gaps; None without them."""
    if not ref or "concat" not in ref:
        return None
    by_k = ref["concat"]["by_k"]
    entry = by_k.get(ref[at], by_k.get(str(ref[at])))
    return dict(entry) if entry and "nmi_train" in entry else None


def ref_nmi(ref: dict[str, Any] | None, which: str, at: str) -> float | None:
    """The reference's held-out NMI: ``which`` is ``concat`` or ``image``, ``at`` is
    ``k_bundle`` or ``k_topics``."""
    if not ref or which not in ref:
        return None
    by_k = ref[which]["by_k"]
    entry = by_k.get(ref[at], by_k.get(str(ref[at])))
    return None if entry is None or entry.get("nmi") is None else float(entry["nmi"])


def baseline(run: dict[str, Any], name: str, key: str = "ndcg@10") -> float | None:
    if not _ok(run):
        return None
    value = (run.get("baselines", {}).get(name) or {}).get(key)
    return None if value is None else float(value)


def _cell(values: list[float | None], digits: int = 3) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _k_cell(values: list[float | None]) -> str:
    values = [v for v in values if v is not None]
    return ", ".join(str(int(v)) for v in values) if values else "–"


def _runs(records: list[dict[str, Any]], experiment: str) -> list[dict[str, Any] | None]:
    return [rec["experiments"].get(experiment) for rec in records]


def _experiments(records: list[dict[str, Any]]) -> list[str]:
    seen = {e for rec in records for e in rec["experiments"]}
    return [e for e in EXPERIMENTS if e in seen] + sorted(seen - set(EXPERIMENTS))


def _seeds_note(records: list[dict[str, Any]], experiment: str) -> str:
    """`` (seed 0 only)`` when a row has fewer seeds than its section."""
    seeds = [rec["seed"] for rec in records if experiment in rec["experiments"]]
    if len(seeds) == len(records):
        return ""
    return f" (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} only)"


def metric_table(records: list[dict[str, Any]]) -> list[str]:
    lines = ["| row | " + " | ".join(h for _, h in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for experiment in _experiments(records):
        runs = [r for r in _runs(records, experiment) if r is not None]
        failed = [r for r in runs if "error" in r]
        cells = []
        for key, _ in COLUMNS:
            values = [metric(r, key) for r in runs]
            cells.append(_k_cell(values) if key in ("k", "held_out") else
                         _cell(values, 0) if key == "train_s" else _cell(values))
        note = f" ({len(failed)} of {len(runs)} runs failed)" if failed else ""
        lines.append(f"| {experiment}{note}{_seeds_note(records, experiment)} | "
                     + " | ".join(cells) + " |")
    refs = [rec.get("reference") for rec in records if rec.get("reference")]
    if refs:
        col = {key: i for i, (key, _) in enumerate(COLUMNS)}
        same = all(ref["k_bundle"] == ref["k_topics"] for ref in refs)
        for at, label in ((("k_bundle", "joint_clip's K = true categories"),) if same else
                          (("k_bundle", "joint_clip's K"), ("k_topics", "K = true categories"))):
            for which, name, column in (("concat", CONCAT, "nmi"),
                                        ("image", IMAGE_REF, "image_only_nmi")):
                cells = ["–"] * len(COLUMNS)
                cells[col["k"]] = _k_cell([ref[at] for ref in refs])
                cells[col["held_out"]] = _k_cell([ref[which].get("held_out") for ref in refs])
                cells[col[column]] = _cell([ref_nmi(ref, which, at) for ref in refs])
                if which == "concat":
                    for key in ("nmi_chance", "nmi_train", "nmi_train_chance", "nmi_gap",
                                "nmi_gap_above_chance", "nmi_train_at_held_size",
                                "nmi_gap_same_size"):
                        cells[col[key]] = _cell([metric(ref_run(ref, at), key) for ref in refs])
                lines.append(f"| {name} ({label}) | " + " | ".join(cells) + " |")
    return lines


def _beats_all(run: dict[str, Any]) -> bool | None:
    mine = metric(run, "ndcg@10")
    others = [baseline(run, n) for n in BASELINES]
    if mine is None or any(v is None for v in others):
        return None
    return all(mine >= v for v in others)


def _alphas_used(runs: list[dict[str, Any]]) -> str:
    """The α of each seed's default ranking, marked when a run set it rather than chose it."""
    cells = []
    for r in runs:
        settings = r.get("settings") or {}
        alpha = settings.get("alpha")
        chosen = str(settings.get("alpha_source", "")).startswith("chosen")
        cells.append("–" if alpha is None else f"{alpha:g}" + ("" if chosen else " (fixed)"))
    return ", ".join(cells)


def ranking_table(records: list[dict[str, Any]]) -> list[str]:
    lines = ["| row | mmembed (default ranking) | α it used, per seed | "
             + " | ".join(BASELINES.values()) + " | best α of the sweep | at or above every "
             "baseline |", "|---|---:|---:|" + "---:|" * len(BASELINES) + "---:|---|"]
    for experiment in _experiments(records):
        ok = [r for r in _runs(records, experiment) if _ok(r)]
        if not ok:
            lines.append(f"| {experiment} | failed |" + " |" * (len(BASELINES) + 3))
            continue
        best = [max((v.get("ndcg@10") or -1.0) for v in r["baselines"]["alpha_sweep"].values())
                for r in ok if r.get("baselines", {}).get("alpha_sweep")]
        wins = [_beats_all(r) for r in ok]
        lines.append(f"| {experiment}{_seeds_note(records, experiment)} | "
                     f"{_cell([metric(r, 'ndcg@10') for r in ok])} | {_alphas_used(ok)} | "
                     + " | ".join(_cell([baseline(r, n) for r in ok]) for n in BASELINES)
                     + f" | {_cell(best)} | {sum(bool(w) for w in wins)} of {len(ok)} seeds |")
    return lines


#: Bootstrap resamples of the pooled ranking comparison.
POOLED_RESAMPLES = 10_000
BY_COMMUNITY = "ndcg@10_by_community"


def pooled_differences(records: list[dict[str, Any]],
                       experiment: str = "joint_clip") -> dict[str, np.ndarray] | None:
    """The default ranking's NDCG@10 minus each baseline's, one value per community of every
    seed (a seed's held-out photos ranked for one account); None unless every seed kept them."""
    runs = [r for r in _runs(records, experiment) if _ok(r)]
    if not runs or any(BY_COMMUNITY not in r for r in runs):
        return None
    return {name: np.concatenate([np.subtract(r[BY_COMMUNITY]["default"], r[BY_COMMUNITY][name])
                                  for r in runs]) for name in BASELINES}


def _interval(diffs: np.ndarray) -> tuple[float, float]:
    """The 95% BCa bootstrap interval of the mean of ``diffs`` (seeded)."""
    if len(diffs) < 2 or np.ptp(diffs) == 0:
        return float(diffs.mean()), float(diffs.mean())
    from scipy.stats import bootstrap

    ci = bootstrap((diffs,), np.mean, n_resamples=POOLED_RESAMPLES, confidence_level=0.95,
                   method="BCa", random_state=0).confidence_interval
    return float(ci.low), float(ci.high)


def pooled_ranking_table(records: list[dict[str, Any]]) -> list[str]:
    """The default ranking against each baseline over every seed's communities at once."""
    diffs = pooled_differences(records)
    if diffs is None:
        return ["The per-community figures of the pooled comparison were not kept by these "
                "runs (`--render OUT --fill-chance` adds them from the saved bundles)."]
    lines = ["| default ranking − baseline (NDCG@10) | pairs (seed × community) | mean | 95% "
             "interval | default ahead / level / behind | reading |",
             "|---|---:|---:|---|---|---|"]
    for name, label in BASELINES.items():
        d = diffs[name]
        low, high = _interval(d)
        ahead, behind = int((d > 1e-9).sum()), int((d < -1e-9).sum())
        reading = ("default ahead" if low > 0 else "default behind" if high < 0 else
                   "no difference these pairs can show")
        lines.append(f"| {label} | {len(d)} | {d.mean():+.3f} | {low:+.3f} to {high:+.3f} | "
                     f"{ahead} / {len(d) - ahead - behind} / {behind} | {reading} |")
    return lines


# ------------------------------------------------------------------------------ goals
#: A goal: (what, target, sources it applies to (None: all), check). ``check(run, ref)`` gives
#: the seed's cell text and whether it is met (None: not measured).
Check = Callable[[dict[str, Any], dict[str, Any] | None], tuple[str, bool | None]]


def _at_least(key: str, bound: float) -> Check:
    def check(run, ref):
        v = metric(run, key)
        return ("–", None) if v is None else (f"{v:.3f}", v >= bound)
    return check


def _at_most(key: str, bound: float) -> Check:
    def check(run, ref):
        v = metric(run, key)
        return ("–", None) if v is None else (f"{v:.3f}", v <= bound)
    return check


def _below(key: str, bound: float) -> Check:
    def check(run, ref):
        v = metric(run, key)
        return ("–", None) if v is None else (f"{v:.3f}", v < bound)
    return check


def _gap_beside_reference(key: str) -> Check:
    """A gap under 0.03, beside the frozen-feature reference's own at the same K (its k-means
    learns nothing from the posts but its centroids)."""
    def check(run, ref):
        text, met = _below(key, 0.03)(run, ref)
        theirs = metric(ref_run(ref, "k_bundle"), key)
        if met is not None and theirs is not None:
            text += f" (frozen-feature k-means: {theirs:.3f})"
        return text, met
    return check


def _gap(run, ref):
    text, met = _below("nmi_gap", 0.03)(run, ref)
    a, b = metric(run, "nmi_chance"), metric(run, "nmi_train_chance")
    if met is not None and a is not None and b is not None:
        text += f" (by chance alone {b:.2f} training, {a:.2f} held-out)"
    return text, met


def _vs_concat(run, ref):
    mine, theirs = metric(run, "nmi"), ref_nmi(ref, "concat", "k_bundle")
    if mine is None or theirs is None:
        return "–", None
    return f"{mine:.3f} vs {theirs:.3f}", mine >= theirs


def _auto_k(run, ref):
    k = metric(run, "k")
    if k is None or not ref:
        return "–", None
    true = ref["k_topics"]
    text = f"K = {int(k)} for {true}"
    searched = (run.get("cluster") or {}).get("k_range")
    if ((run.get("cluster") or {}).get("k") == "auto" and searched
            and not isinstance(searched[1], str) and not searched[0] <= true <= searched[1]):
        text += f" (auto-K searches {searched[0]}–{searched[1]} only)"
    return text, abs(k - true) <= 0.2 * true


def _ranking(run, ref):
    verdict = _beats_all(run)
    if verdict is None:
        return "–", None
    mine = metric(run, "ndcg@10")
    best_name = max(BASELINES, key=lambda n: baseline(run, n))
    return (f"{mine:.3f} vs {baseline(run, best_name):.3f} ({BASELINES[best_name]})",
            verdict)


REAL = ("tuxpaint", "openclipart")
GOALS: list[tuple[str, str, tuple[str, ...] | None, Check]] = [
    ("held-out NMI at or above " + CONCAT + " at the same K", "≥ reference", None, _vs_concat),
    ("image-only NMI ÷ full-post NMI", "≥ 0.90", None, _at_least("image_ratio", 0.90)),
    ("training-post NMI − held-out NMI", "< 0.03", None, _gap),
    ("the same gap in chance-adjusted NMI", "< 0.03", None,
     _gap_beside_reference("nmi_gap_above_chance")),
    ("the same gap with the training NMI measured on samples of the held-out size", "< 0.03",
     None, _gap_beside_reference("nmi_gap_same_size")),
    ("auto-K against the true number of categories", "within ±20%", None, _auto_k),
    ("default ranking's NDCG@10 against its best baseline (random, engagement only, "
     "cluster KL only, fit only)", "at or above all", None, _ranking),
    ("tied fits in the default ranking's top 20", "< 0.05", None,
     _below("tied_fit_top20", 0.05)),
    ("held-out NMI", "≥ 0.90", ("synthetic",), _at_least("nmi", 0.90)),
    ("profile TV", "≤ 0.10", ("synthetic",), _at_most("profile_tv", 0.10)),
    ("image-only agreement", "≥ 0.90", ("synthetic",), _at_least("image_only_agreement", 0.90)),
    ("engagement SRC", "≥ 0.60", ("synthetic",), _at_least("engagement_src", 0.60)),
]


def goal_rows(data: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each goal of the default (joint_clip) on ``data``, seed by seed: ``{"what", "target",
    "cells", "met"}``, ``met`` True only when it is met on every seed, ``None`` if unmeasured."""
    rows = []
    for what, target, sources, check in GOALS:
        if sources is not None and data not in sources:
            continue
        cells, verdicts = [], []
        for rec in records:
            run = rec["experiments"].get("joint_clip")
            if not _ok(run):
                cells.append("training failed" if run else "not run")
                verdicts.append(None)
                continue
            text, met = check(run, rec.get("reference"))
            verdicts.append(met)
            cells.append(text if met is None else f"{text}: {'met' if met else 'not met'}")
        measured = [v for v in verdicts if v is not None]
        n = len(verdicts)
        if not measured:
            met, verdict = None, "not measured"
        elif not all(measured):
            met, verdict = False, f"**not met** (met on {sum(measured)} of {n} seeds)"
        elif len(measured) < n:
            met, verdict = False, (f"**not shown**: met on the {len(measured)} seeds measured, "
                                   f"{n - len(measured)} not measured")
        else:
            met, verdict = True, ("**met** on its one seed" if n == 1 else
                                  f"**met** on every seed ({n} of {n})")
        rows.append({"what": what, "target": target, "cells": cells, "met": met,
                     "verdict": verdict})
    return rows


def goals_table(data: str, records: list[dict[str, Any]]) -> list[str]:
    lines = ["| goal (joint_clip, the default) | target | "
             + " | ".join(f"seed {rec['seed']}" for rec in records) + " | verdict |",
             "|---|---|" + "---|" * len(records) + "---|"]
    for row in goal_rows(data, records):
        lines.append(f"| {row['what']} | {row['target']} | " + " | ".join(row["cells"])
                     + f" | {row['verdict']} |")
    return lines


# ------------------------------------------------------------------------------ markdown
def _provenance(records: list[dict[str, Any]]) -> list[str]:
    """One line per invocation that produced these seeds: command, commit, wall time."""
    groups: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    for rec in records:
        for inv in rec["invocations"]:
            env = inv["environment"]
            key = (inv["command"], env["commit"] + ("+" if env["dirty"] else ""))
            groups.setdefault(key, []).append((rec["seed"], inv))
    lines = []
    for (command, commit), invs in groups.items():
        env = invs[0][1]["environment"]
        minutes = sum(inv["wall_s"] for _, inv in invs) / 60
        seeds = ", ".join(str(seed) for seed, _ in invs)
        rows = sorted({e for _, inv in invs for e in inv["experiments"]},
                      key=lambda e: list(EXPERIMENTS).index(e) if e in EXPERIMENTS else 99)
        loads = ", ".join(str(inv["environment"].get("load_average", "?")) for _, inv in invs)
        dirty = " (with uncommitted changes)" if commit.endswith("+") else ""
        lines.append(
            f"- {', '.join(rows)}, seed{'s' if len(invs) > 1 else ''} {seeds}: `{command}` at "
            f"commit `{commit.rstrip('+')}`{dirty}, started {env['date']}; {minutes:.0f} min "
            f"on {env['cpus']} CPU cores shared with other work (1-minute load average at each "
            f"seed's start: {loads}; Python {env['python']}, torch {env['torch']}, no GPU).")
    if any(run.get("chance_filled_later") for rec in records
           for run in rec["experiments"].values()):
        lines.append("- Some chance levels (*by chance* columns) were added afterwards, from "
                     "the saved bundles, by `--render OUT --fill-chance`.")
    if any(run.get("by_community_filled_later") for rec in records
           for run in rec["experiments"].values()):
        lines.append("- Some per-community NDCG@10 (the pooled comparison) were added "
                     "afterwards by `--render OUT --fill-chance`, which evaluated the saved "
                     "bundles again and kept them only where that gave the saved NDCG@10 and "
                     "baselines.")
    if any((rec.get("reference") or {}).get("filled_later") for rec in records):
        lines.append("- The frozen-feature references were computed again afterwards, from the "
                     "saved bundles and the same seeds, by `--render OUT --fill-chance`, to add "
                     "their own training NMI and chance levels (their gap).")
    return lines


def source_section(data: str, records: list[dict[str, Any]]) -> list[str]:
    seeds = [rec["seed"] for rec in records]
    title = DATA.get(data, data)
    listed = ", ".join(map(str, seeds))
    spread = (f"the mean ± standard deviation over {len(seeds)} seeds ({listed})"
              if len(seeds) > 1 else f"the result of one seed ({seeds[0]})")
    missing = [s for s in (0, 1, 2) if s not in seeds]
    lines = [f"## {title}", "", DATA_NOTES.get(data, ""), "", *_provenance(records), ""]
    if missing:
        was = "was" if len(seeds) == 1 else "were"
        lines += [f"**Only {len(seeds)} of the 3 seeds {was} run on this source** (seed"
                  f"{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} missing: "
                  "the run did not fit in the time available), so every verdict below rests on "
                  f"{'that seed' if len(seeds) == 1 else 'those seeds'} alone.", ""]
    skipped = [e for e in EXPERIMENTS if e not in _experiments(records)]
    if skipped:
        lines += [f"Not run on this source: {', '.join(skipped)} (the goals are the default's, "
                  "and the time available went to its seeds; numbers from earlier commits are "
                  "in this file's git history).", ""]
    lines += [f"Cells are {spread}; the seed also draws the data.", "",
              "### Goals", "", *goals_table(data, records), "",
              "### All numbers", "", *metric_table(records), "",
              f"Ranking quality on {title.split(' (')[0]} (NDCG@10; the baselines rank the same "
              "held-out photos for the same communities):", "", *ranking_table(records), "",
              "The default (joint_clip) against each baseline, pooled over every seed's "
              "communities (each pair: one seed's held-out photos ranked for one account):",
              "", *pooled_ranking_table(records), ""]
    return lines


K_CRITERIA_FILE = "k_criteria.json"
K_CRITERIA = {"silhouette": "silhouette, K ≤ 40",
              "capped": "mean silhouette of 5 fits, K ≤ √(N/2) (the default)",
              "capped1": "silhouette of one fit, K ≤ √(N/2) (the default before)",
              "bic": "BIC (diagonal GMM)", "stability": "stability", "gap": "gap statistic",
              "floor": "silhouette, K ≥ √(N/2)"}


def load_k_criteria(folders: list[Path]) -> list[dict[str, Any]]:
    """The rows of ``scripts/k_criteria.py --json OUT/k_criteria.json`` in any of ``folders``."""
    rows: list[dict[str, Any]] = []
    for folder in folders:
        file = folder / K_CRITERIA_FILE
        if file.is_file():
            rows += json.loads(file.read_text(encoding="utf-8"))
    return rows


def _k_provenance(rows: list[dict[str, Any]]) -> str:
    """When the table's bundles were built and at which commit the criteria ran."""
    created = sorted({str(r["created"])[:10] for r in rows if r.get("created")})
    commits = sorted({r["commit"] for r in rows if r.get("commit")})
    if not created and not commits:
        return ("Its bundles' dates and commit were not recorded: it may predate the runs "
                "in the sections above.")
    return (f"Bundles built {', '.join(created) or 'on an unrecorded date'}; criteria run at "
            f"commit {', '.join(f'`{c}`' for c in commits) or 'unrecorded'}.")


def k_criteria_section(rows: list[dict[str, Any]]) -> list[str]:
    """How each auto-K criterion does against the true number of categories."""
    if not rows:
        return []
    names = [n for n in K_CRITERIA if all(n in r["picked"] for r in rows)]
    k_max = max(max(map(int, r["curves"]["silhouette"])) for r in rows)
    lines = ["## Choosing K", "",
             "Each criterion's K on the joint_clip bundles' latents, k-means fitted on the "
             f"training posts at every K from 3 to {k_max} (`python scripts/k_criteria.py "
             f"BUNDLE … --k-max {k_max} --json OUT/{K_CRITERIA_FILE}`), with the held-out NMI "
             "at that K in brackets; **bold** is within ±20% of the true number of categories. "
             "The default (`cluster.k_range: [3, auto]`, `cluster.k_seeds: 5`) is the best "
             "mean silhouette of 5 k-means fits (seeds 0–4) among K ≤ round(√(N/2)) for N "
             "training posts; before `k_seeds` it was one fit's. " + _k_provenance(rows), "",
             "| bundle | training posts | true K | " + " | ".join(K_CRITERIA[n] for n in names)
             + " |", "|---|---:|---:|" + "---:|" * len(names)]
    for r in rows:
        cells = []
        for n in names:
            k, true = int(r["picked"][n]), int(r["true_k"])
            text = f"{k} ({r['held_out_nmi'][n]:.3f})"
            cells.append(f"**{text}**" if abs(k - true) <= 0.2 * true else text)
        lines.append(f"| {r['bundle']} | {r['posts']:,} | {r['true_k']} | " + " | ".join(cells)
                     + " |")
    within = {n: sum(abs(int(r["picked"][n]) - int(r["true_k"])) <= 0.2 * int(r["true_k"])
                     for r in rows) for n in names}
    lines += ["", "Within ±20% of the truth: " + "; ".join(
        f"{K_CRITERIA[n]} {within[n]} of {len(rows)}" for n in names) + ".", ""]
    return lines


def write_markdown(path: Path, by_data: dict[str, list[dict[str, Any]]],
                   k_rows: list[dict[str, Any]] | None = None) -> None:
    """EVALUATION.md from the per-source, per-seed records (see :func:`load_results`) and the
    auto-K criteria rows, if any (see :func:`load_k_criteria`)."""
    order = [d for d in DATA if d in by_data] + sorted(set(by_data) - set(DATA))
    overrides = {e: o for e, o in EXPERIMENTS.items()
                 if any(e in rec["experiments"] for recs in by_data.values() for rec in recs)}
    lines = ["# Evaluation", "",
             "Generated by `scripts/evaluation.py` from its saved results; each section below "
             "names the command, commit and wall time that produced it. Every experiment is "
             "trained with the plain command's CPU sizes, then its bundle is evaluated on its "
             "held-out posts (`split == test`), which entered nothing the bundle fitted or "
             "searches (clusters, profiles, index, calibration, percentiles) and go through "
             "`rank.py`'s path as caption-less photos. *Training NMI* is the build's figure on "
             "the posts it was fitted on; the *gap* is training minus held-out. The numbers "
             "per seed, and the command of every run, are in `results/<data>-s<seed>.json` "
             "under the output folder.", "",
             "| row | `python train.py` overrides (plus `data=… seed=…`) |", "|---|---|",
             *[f"| {e} | {' '.join(f'`{x}`' for x in o) or '(none: the plain command)'} |"
               for e, o in overrides.items()],
             f"| {CONCAT} | the joint_clip bundle's frozen towers (EfficientNet-Lite0 image "
             "features, MiniLM caption features), each L2-normalised, then concatenated; "
             "k-means fitted on the training posts, NMI on the same held-out posts as the "
             "model's |",
             f"| {IMAGE_REF} | the same with the image features only (compare with image-only "
             "NMI) |", "",
             "## What the numbers mean for you", "",
             "- **NMI** (0–1): how well the content clusters recover the true categories; "
             "**image-only NMI** is the same for new photos without a caption, which is what "
             "you rank. **Image-only agreement**: how often a photo alone lands in the cluster "
             "its full post (photo + caption) lands in. **NMI by chance**: the same clusters "
             "shuffled across the same posts (mean of 100 shuffles). NMI is biased upward on "
             "few posts: on Tux Paint's 50 held-out photos chance alone gives several times "
             "what it gives on its ~380 training photos, so there a held-out NMI above the "
             "training one (a negative gap) comes from the small held-out set, not from "
             "generalisation. "
             "The **chance-adjusted gap** compares chance-adjusted NMIs instead, (NMI − chance) / "
             "(1 − chance), the way ARI adjusts the Rand index: 0 is chance, 1 is perfect. "
             "The **same-size gap** removes the bias without a model of chance: the training "
             "posts' NMI is measured on random samples as large as the held-out set (mean of "
             "200), then compared with the held-out NMI, so both count the same number of "
             "posts and only which posts differs.",
             "- **Profile TV** (0–1, lower is better): how far a community's profile is from "
             "its true topic mixture; 0.10 means 10% of the profile's mass sits on the wrong "
             "topics. **Profile TV vs posted** compares the profile with the topics the account "
             "actually posted, which is the model's own error. Profiles are fitted on the training "
             "posts, so both are measured there.",
             "- **Engagement SRC** (−1–1): Spearman correlation of the predicted engagement "
             "of a photo with the engagement it really got; **pairwise accuracy**: for two "
             "posts of one account, how often the one that did better is predicted better "
             "(0.5 is chance).",
             "- **NDCG@10 / precision@10**: for each account, rank all held-out photos; the "
             "right answers are that account's own posts, weighted by how well they did. "
             "Compare the score with the random, engagement-only, cluster-KL-only and "
             "fit-only rankings. The default ranking blends fit and engagement with the α "
             "its bundle chose the same way on its validation posts, never these (`rank.alpha"
             "=null`; column *α it used*). **Tied fits**: the share of the top 20 whose fit equals "
             "another's (a fit that cannot tell photos apart). One seed ranks a few dozen "
             "held-out photos for a few accounts, so its NDCG@10 moves by several hundredths "
             "with the draw; the **pooled comparison** puts every seed's accounts together and "
             "gives the default's mean lead over each baseline with a 95% bootstrap interval "
             "(BCa, 10,000 resamples of the pairs): an interval across 0 means the pairs cannot "
             "tell the two rankings apart.",
             "- **Goals**: each seed is judged on its own; a goal is met only if it is met on "
             "every seed. The first five (held-out NMI against the frozen-feature reference, "
             "image-only against full posts, the two train-versus-held-out gaps, auto-K) are "
             "the learned embedding's goals on real data; on synthetic data they are shown as "
             "a check. The next two (the ranking against its baselines, tied fits) are the "
             "ranking's, and synthetic data keeps its own four goals.", ""]
    summary = ["## Goals at a glance", "", "| source | seeds | goals met on every seed | "
               "goals not met |", "|---|---|---|---|"]
    for data in order:
        rows = goal_rows(data, by_data[data])
        unmet = [r["what"] for r in rows if not r["met"]]
        summary.append(f"| {DATA.get(data, data).split(' (')[0]} | "
                       f"{', '.join(str(r['seed']) for r in by_data[data])} | "
                       f"{sum(bool(r['met']) for r in rows)} of {len(rows)} | "
                       f"{'; '.join(unmet) or 'none'} |")
    lines += [*summary, ""]
    for data in order:
        lines += source_section(data, by_data[data])
    lines += k_criteria_section(k_rows or [])
    lines += ["## Reproduce", "", "```",
              "python scripts/evaluation.py --data synthetic tuxpaint --seeds 0 1 2 "
              "--out outputs/evaluation",
              "python scripts/evaluation.py --data openclipart --seeds 0 1 2 "
              "--out outputs/evaluation     # adds its section to the same EVALUATION.md",
              "python scripts/evaluation.py --render outputs/evaluation        "
              "# only rewrite the markdown",
              "python scripts/k_criteria.py OUT/index/joint_clip-* --k-max 40 "
              f"--json OUT/{K_CRITERIA_FILE}   # the Choosing K table, rendered with OUT",
              "python scripts/evaluation.py --render OUT_A OUT_B --fill-chance   "
              "# merge runs made in several folders",
              "```", "",
              "One experiment alone: `python train.py [+experiment=NAME] "
              "data=synthetic|tuxpaint|openclipart seed=S`, then `python -m mmembed.evaluate "
              "bundle=index/NAME` (writes `eval.json` and `eval.md` beside the bundle)."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------ the entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", nargs="+", choices=list(DATA), default=list(DATA))
    parser.add_argument("--experiments", nargs="+", choices=list(EXPERIMENTS),
                        default=list(EXPERIMENTS))
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "evaluation",
                        help="bundles, runs, logs and results/*.json; runs into the same folder "
                             "add up (a source and seed run again replaces its results)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="data and feature cache (default: one under --out)")
    parser.add_argument("--md", type=Path, default=ROOT / "EVALUATION.md")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="extra",
                        help="extra train.py overrides for every run (recorded in the commands)")
    parser.add_argument("--render", type=Path, nargs="+", default=None, metavar="OUT",
                        help="only rewrite --md from the results/*.json of earlier runs")
    parser.add_argument("--fill-chance", action="store_true",
                        help="with --render: first add the chance NMIs, the reference's "
                             "training NMI and the per-community NDCG@10 to saved runs that "
                             "lack them, from their bundles")
    args = parser.parse_args(argv)
    if args.render:
        if args.fill_chance:
            print(f"added chance NMIs or reference gaps to {fill_chance(args.render)} runs")
        write_markdown(args.md, load_results(args.render), load_k_criteria(args.render))
        print(f"wrote {args.md} from {', '.join(map(str, args.render))}")
        return 0

    out = args.out.resolve()
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        parser.error(f"--out {out} is not empty and is not an earlier evaluation folder; "
                     "choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by scripts/evaluation.py\n")
    cache = (args.cache or out / "cache").resolve()
    command = "python scripts/evaluation.py " + shlex.join(
        ["--data", *args.data, "--seeds", *map(str, args.seeds)]
        + (["--experiments", *args.experiments] if args.experiments != list(EXPERIMENTS)
           else []) + (["--set", *args.extra] if args.extra else []))
    failed: list[str] = []
    env = environment()  # the commit of the code that runs: taken once, at the start
    for data in args.data:
        for seed in args.seeds:
            started = time.perf_counter()
            env = {**env, "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                   "load_average": round(os.getloadavg()[0], 1)}
            runs = {e: run_one(e, data, seed, out, cache, args.extra) for e in args.experiments}
            ref = None
            joint = runs.get("joint_clip")
            if _ok(joint) and joint.get("nmi") is not None:
                try:
                    ref = reference(joint, seed)
                except Exception as exc:  # the reference failing must not lose the runs
                    failed.append(f"{data} seed {seed}: reference failed: {exc!r}")
                    print(f"  reference failed: {exc!r}", flush=True)
            failed += [f"{data} seed {seed} {e}: {r['error']}" for e, r in runs.items()
                       if "error" in r]
            wall_s = time.perf_counter() - started
            rec = {"data": data, "seed": seed, "experiments": runs, "reference": ref,
                   "invocations": [{"command": command, "environment": env, "wall_s": wall_s,
                                    "experiments": list(runs)}]}
            path = result_path(out, data, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
            path.write_text(json.dumps(merge_record(old, rec), indent=1, default=str),
                            encoding="utf-8")
            write_markdown(args.md, load_results([out]), load_k_criteria([out]))
            print(f"[{time.strftime('%H:%M:%S')}] {data} seed {seed} done in "
                  f"{wall_s / 60:.1f} min; wrote {path} and {args.md}", flush=True)
    for error in failed:
        print(f"FAILED: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
