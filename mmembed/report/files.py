"""The ranking as files: ``ranking.csv`` (one row per input) and ``ranking.json``.

Both render a :meth:`mmembed.ranking.result.RankingResult.to_dict` (``report.html`` is
:mod:`mmembed.report.html`'s); both are written atomically.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mmembed.fileio import atomic_write, dumps_json

__all__ = ["CSV_COLUMNS", "csv_rows", "csv_text", "write_csv", "write_json"]

CSV_COLUMNS = ("image", "status", "reason", "rank", "audience_score", "flags",
               "duplicate_group", "score", "fit", "fit_cluster", "fit_local", "engagement",
               "engagement_rate", "expected_likes", "top_cluster", "hashtags", "mentions")


def _num(x: float) -> str:
    return f"{x:.6g}"


def csv_rows(result: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """One row per input: the ranked photos by rank, then the skipped ones."""
    for p in result["photos"]:
        yield {
            "image": p["image"], "status": "ranked", "reason": "", "rank": p["rank"],
            "audience_score": ("" if p["audience_score"] is None
                               else f"{p['audience_score']:.1f}"),
            "flags": ";".join(p["flags"]),
            "duplicate_group": "" if p["duplicate_group"] is None else p["duplicate_group"],
            "score": _num(p["score"]), "fit": _num(p["fit"]),
            "fit_cluster": _num(p["fit_cluster"]), "fit_local": _num(p["fit_local"]),
            "engagement": _num(p["engagement"]), "engagement_rate": _num(p["engagement_rate"]),
            "expected_likes": "" if p["expected_likes"] is None else round(p["expected_likes"]),
            "top_cluster": p["top_cluster"]["name"],
            "hashtags": " ".join(f"#{h['tag']}" for h in p["hashtags"]),
            "mentions": " ".join(f"@{m['mention']}" for m in p["mentions"]),
        }
    for s in result["skipped"]:
        yield {"image": s["image"], "status": "skipped", "reason": s["reason"]}


def csv_text(result: Mapping[str, Any]) -> str:
    """``ranking.csv``'s text."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, restval="")
    writer.writeheader()
    writer.writerows(csv_rows(result))
    return buffer.getvalue()


def write_csv(result: Mapping[str, Any], path: str | Path) -> Path:
    return atomic_write(path, csv_text(result))


def write_json(result: Mapping[str, Any], path: str | Path) -> Path:
    return atomic_write(path, dumps_json(result))
