"""Which criterion chooses K best? Compare them on bundles' latents against the true categories.

    python scripts/k_criteria.py BUNDLE [BUNDLE ...] [--k-max 30] [--json out.json]

For each bundle, k-means (the project's :class:`KMeansClusterer`) is fitted on the latents of the
posts the bundle was fitted on (every split but test) at every K in ``[3, k_max]``, and each
criterion picks its K:

- ``silhouette``: the highest mean silhouette (the default today);
- ``bic``: the lowest BIC of a diagonal Gaussian mixture at that K;
- ``stability``: the highest mean adjusted Rand index between the labels of two k-means fits on
  random halves of the posts, compared on all posts (Ben-Hur et al. 2002), 3 pairs per K;
- ``gap``: Tibshirani's gap statistic with 5 uniform reference sets in the PCA-aligned bounding
  box: the smallest K with gap(K) ≥ gap(K+1) − s(K+1);
- ``floor``: the silhouette's K, but at least ``round(√(N / 2))`` clusters: the cost per cluster
  with a floor tied to corpus size;
- ``capped``: the highest mean silhouette of 5 k-means fits (seeds 0–4) among
  K ≤ ``round(√(N / 2))``: the default's auto-K (``k_range: [3, auto]``, ``k_seeds: 5``, see
  :func:`mmembed.communities.clustering.base.auto_k_max`);
- ``capped1``: the same with one fit per K (the default before ``k_seeds``).

It prints, per bundle, the true number of topics, each criterion's K, and the held-out posts' NMI
at that K (k-means on the fitted posts, held-out posts assigned to the nearest centroid), so a
criterion is judged both by how near it comes to the truth and by what its K does for clusters
of unseen posts.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.metrics import adjusted_rand_score, silhouette_score  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402

from mmembed.bundle import Bundle  # noqa: E402
from mmembed.communities.clustering import KMeansClusterer  # noqa: E402
from mmembed.communities.clustering.base import auto_k_max  # noqa: E402
from mmembed.communities.metrics import truth_metrics  # noqa: E402

CRITERIA = ("silhouette", "capped", "capped1", "bic", "stability", "gap", "floor")
#: k-means fits per K of the default's mean silhouette (``cluster.k_seeds``).
K_SEEDS = 5


def _dispersion(x: np.ndarray, labels: np.ndarray) -> float:
    return float(sum(((x[labels == c] - x[labels == c].mean(0)) ** 2).sum()
                     for c in np.unique(labels)))


def curves(x: np.ndarray, ks: range, seed: int = 0) -> dict[str, dict[int, float]]:
    rng = np.random.default_rng(seed)
    x32 = x.astype(np.float32)
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    rotated = centred @ vt.T
    low, high = rotated.min(0), rotated.max(0)
    refs = [rng.uniform(low, high, size=rotated.shape) @ vt for _ in range(5)]
    out: dict[str, dict[int, float]] = {c: {} for c in ("silhouette", "silhouette_mean", "bic",
                                                        "stability", "gap", "gap_s")}
    for k in ks:
        fit = KMeansClusterer(k=k, seed=seed).fit(x32)
        labels = fit.labels_
        out["silhouette"][k] = float(silhouette_score(x, labels))
        out["silhouette_mean"][k] = float(np.mean(
            [out["silhouette"][k]] + [silhouette_score(x, KMeansClusterer(k=k, seed=s).fit(x32)
                                                       .labels_) for s in range(1, K_SEEDS)]))
        out["bic"][k] = float(GaussianMixture(k, covariance_type="diag", random_state=seed,
                                              n_init=2).fit(x).bic(x))
        aris = []
        for rep in range(3):
            a = rng.choice(len(x), len(x) // 2, replace=False)
            b = rng.choice(len(x), len(x) // 2, replace=False)
            fa = KMeansClusterer(k=k, seed=rep).fit(x32[a])
            fb = KMeansClusterer(k=k, seed=rep + 10).fit(x32[b])
            aris.append(adjusted_rand_score(fa.soft_assign(x32).argmax(1),
                                            fb.soft_assign(x32).argmax(1)))
        out["stability"][k] = float(np.mean(aris))
        log_w = math.log(_dispersion(x, labels))
        ref_logs = []
        for ref in refs:
            rl = KMeansClusterer(k=k, seed=seed, n_init=1).fit(ref.astype(np.float32)).labels_
            ref_logs.append(math.log(_dispersion(ref, rl)))
        out["gap"][k] = float(np.mean(ref_logs) - log_w)
        out["gap_s"][k] = float(np.std(ref_logs) * math.sqrt(1 + 1 / len(refs)))
    return out


def choose(c: dict[str, dict[int, float]], n: int) -> dict[str, int]:
    ks = sorted(c["silhouette"])
    gap_k = next((k for k, k1 in zip(ks, ks[1:])
                  if c["gap"][k] >= c["gap"][k1] - c["gap_s"][k1]), ks[-1])
    sil = max(ks, key=lambda k: c["silhouette"][k])
    floor = max(ks[0], min(ks[-1], round(math.sqrt(n / 2))))
    cap = [k for k in ks if k <= auto_k_max(n, ks[0])]
    capped = max(cap, key=lambda k: c["silhouette_mean"][k])
    capped1 = max(cap, key=lambda k: c["silhouette"][k])
    return {"silhouette": sil, "capped": capped, "capped1": capped1,
            "bic": min(ks, key=lambda k: c["bic"][k]),
            "stability": max(ks, key=lambda k: c["stability"][k]), "gap": gap_k,
            "floor": max(sil, floor)}


def held_out_nmi(x_fit: np.ndarray, x_held: np.ndarray, topics: list, k: int) -> float:
    fit = KMeansClusterer(k=k, seed=0).fit(x_fit.astype(np.float32))
    return truth_metrics(fit.soft_assign(x_held.astype(np.float32)).argmax(1), topics)["nmi"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--k-max", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or None
    for path in args.bundles:
        bundle = Bundle.load(path)
        posts = list(bundle.posts())
        latent = bundle.latents()["latent"].astype(np.float64)
        held = np.array([p["split"] == "test" for p in posts])
        topics = [p["topic"] for p in posts]
        fit_topics = [t for t, h in zip(topics, held) if not h]
        ks = range(3, min(args.k_max, int((~held).sum()) - 1) + 1)
        c = curves(latent[~held], ks)
        picked = choose(c, int((~held).sum()))
        row = {"bundle": bundle.name, "created": bundle.created, "commit": commit,
               "posts": int((~held).sum()),
               "true_k": len(set(fit_topics)), "picked": picked,
               "held_out_nmi": {name: held_out_nmi(latent[~held], latent[held],
                                                   [t for t, h in zip(topics, held) if h], k)
                                for name, k in picked.items()},
               "curves": c}
        rows.append(row)
        cells = " | ".join(f"{picked[n]} ({row['held_out_nmi'][n]:.3f})" for n in CRITERIA)
        print(f"| {bundle.name} | {row['posts']} | {row['true_k']} | {cells} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
