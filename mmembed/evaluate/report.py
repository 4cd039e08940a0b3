"""The evaluation as files and dashboards: ``eval.json``, ``eval.md``, the W&B summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mmembed.fileio import atomic_write, dumps_json

__all__ = ["log_wandb", "write_evaluation", "write_markdown"]


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def write_markdown(res: dict[str, Any], path: str | Path) -> None:
    """``eval.md``: the metrics and the ranking table (mmembed vs baselines) in markdown."""
    k = res["settings"]["k"]
    lines = [f"# Evaluation of bundle `{res['bundle']['name']}`", "",
             f"{res['held_out']} held-out posts ({res['skipped']} unreadable), evaluated as "
             f"image-only photos; {len(res['communities'])} account communities. Held-out "
             "posts entered nothing the bundle fitted or searches; the training column is the "
             "build's figure on the posts it was fitted on.", "",
             "| metric | held-out | training posts |", "|---|---|---|"]
    for key in ("nmi", "ari", "image_only_nmi", "image_only_agreement"):
        lines.append(f"| {key} | {_fmt(res.get(key))} | {_fmt(res.get(key + '_train'))} |")
    for key in ("calibration_ece_before", "calibration_ece", "calibration_temperature",
                "profile_tv", "profile_tv_max", "profile_tv_shares", "profile_tv_sampling",
                "engagement_src", "pairwise_accuracy", "unlike_training_data",
                "tied_fit_top20", f"ndcg@{k}", f"precision@{k}"):
        lines.append(f"| {key} | {_fmt(res.get(key))} | |")
    b = res["baselines"]
    rows = [(f"mmembed (alpha={res['settings']['alpha']:g}, rank.py's order)",
             {f"ndcg@{k}": res[f"ndcg@{k}"], f"precision@{k}": res[f"precision@{k}"]}),
            ("random", b["random"]), ("engagement only (alpha=1)", b["engagement_only"]),
            ("cluster-level KL only (the fit before the lift)", b["cluster_kl_only"]),
            ("fit only (alpha=0)", b["fit_only"])]
    rows += [(f"alpha={float(a):g}", v) for a, v in b["alpha_sweep"].items()]
    lines += ["", f"| ranking | NDCG@{k} | precision@{k} |", "|---|---|---|"]
    lines += [f"| {name} | {_fmt(v[f'ndcg@{k}'])} | {_fmt(v[f'precision@{k}'])} |"
              for name, v in rows]
    atomic_write(path, "\n".join(lines) + "\n")


def log_wandb(res: dict[str, Any]) -> None:
    """Put the scalar metrics into the active W&B run's summary (``eval/...``); no run, no-op."""
    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None) if wandb is not None else None
    if run is None:
        return
    k = res["settings"]["k"]
    flat = {f"eval/{key}": v for key, v in res.items() if isinstance(v, int | float)}
    for name, v in res["baselines"].items():
        if name != "alpha_sweep":
            flat.update({f"eval/{name}/{m}": x for m, x in v.items() if x is not None})
    for a, v in res["baselines"]["alpha_sweep"].items():
        flat[f"eval/alpha_{a}/ndcg@{k}"] = v[f"ndcg@{k}"]
    run.summary.update({key: v for key, v in flat.items() if v is not None})




def write_evaluation(res: dict[str, Any], out: str | Path) -> Path:
    """``eval.json`` and ``eval.md`` into ``out``; the folder."""
    target = Path(out)
    atomic_write(target / "eval.json", dumps_json(res))
    write_markdown(res, target / "eval.md")
    return target
