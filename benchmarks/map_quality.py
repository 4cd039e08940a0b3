"""Map quality and cost: the bundle map's t-SNE of a sample against the old full t-SNE / PCA.

    python benchmarks/map_quality.py [--sizes 2000,8000,32000] [--dim 32] [--clusters 20]
        [--spread 1.0] [--seed 0] [--iters 250,300,400,500,1000] [--iter-size 2000]

Latents: ``--clusters`` Gaussian blobs in ``--dim`` dimensions of unequal sizes (cluster k has
weight 0.85^k, so the largest is ~22× the smallest), centres N(0, ``--spread``²) per
coordinate, unit noise: at 1.0 neighbouring blobs touch in the latent (at 0.8 they overlap, at
1.5 they are apart), so neither map is trivially perfect.

For each size, two maps of the same latents in the same run:

* **old**: what ``map_2d(method="auto")`` did without UMAP before the sample: full t-SNE
  (scikit-learn defaults, 1,000 iterations) up to 5,000 posts, PCA above;
* **new**: ``map_2d(method="tsne", labels=...)``: t-SNE of at most ``TSNE_SAMPLE`` posts
  (stratified by cluster, ``TSNE_ITER`` iterations), the others placed by their
  ``MAP_NEIGHBORS`` nearest sampled posts.

Columns: CPU seconds of the map (``time.process_time``, every thread of the process);
trustworthiness (``sklearn.manifold.trustworthiness``, n_neighbors=10, on a seeded 2,000-row
subsample of all posts, placed ones included); 10-NN label agreement in 2-D (the share of each
post's 10 nearest 2-D neighbours in its own cluster, over every post).

``--iters`` first prints the same measures for t-SNE of ``--iter-size`` posts at each
``max_iter`` (the first 250 are early exaggeration): the check behind ``TSNE_ITER``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

from mmembed.report import maps
from mmembed.report.maps import TSNE_ITER, TSNE_SAMPLE, map_2d

OLD_TSNE_MAX = 5000
TRUST_ROWS = 2000
NEIGHBORS = 10


def blob_latents(
    n: int, dim: int, clusters: int, seed: int, spread: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = 0.85 ** np.arange(clusters)
    labels = rng.choice(clusters, size=n, p=weights / weights.sum())
    centres = rng.normal(0.0, spread, (clusters, dim))
    x = centres[labels] + rng.normal(0.0, 1.0, (n, dim))
    return x.astype(np.float32), labels


def old_map(x: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """The map before the sample: full t-SNE (scikit-learn's defaults) ≤ 5,000 posts, else PCA."""
    if len(x) > OLD_TSNE_MAX:
        return map_2d(x, seed=seed, method="pca")
    return tsne_full(x, seed, max_iter=1000), "tsne"


def tsne_full(x: np.ndarray, seed: int, max_iter: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tsne.fit_transform(x).astype(np.float32)


def quality(
    x: np.ndarray, labels: np.ndarray, coords: np.ndarray, seed: int
) -> tuple[float, float]:
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed + 1)
    rows = np.sort(rng.choice(len(x), min(TRUST_ROWS, len(x)), replace=False))
    trust = trustworthiness(x[rows], coords[rows], n_neighbors=NEIGHBORS)
    _, idx = NearestNeighbors(n_neighbors=NEIGHBORS + 1).fit(coords).kneighbors(coords)
    agree = float((labels[idx[:, 1:]] == labels[:, None]).mean())
    return float(trust), agree


def timed(fn, *args, **kwargs):
    start = time.process_time()
    out = fn(*args, **kwargs)
    return out, time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="2000,8000,32000")
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--clusters", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spread", type=float, default=1.0, help="centres' standard deviation")
    ap.add_argument("--iters", default="", help="e.g. 250,300,400,500,1000")
    ap.add_argument("--iter-size", type=int, default=TSNE_SAMPLE)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; TSNE_SAMPLE = "
          f"{TSNE_SAMPLE}, TSNE_ITER = {TSNE_ITER}, MAP_NEIGHBORS = {maps.MAP_NEIGHBORS}\n")

    if args.iters:
        x, labels = blob_latents(args.iter_size, args.dim, args.clusters, args.seed,
                                 args.spread)
        print(f"t-SNE of {args.iter_size:,} posts by max_iter:\n")
        print("| max_iter | CPU s | trustworthiness | 10-NN label agreement |")
        print("|---:|---:|---:|---:|")
        for it in (int(v) for v in args.iters.split(",")):
            coords, cpu = timed(tsne_full, x, args.seed, it)
            trust, agree = quality(x, labels, coords, args.seed)
            print(f"| {it} | {cpu:.1f} | {trust:.3f} | {agree:.3f} |", flush=True)
        print()

    print("| posts | old map | old CPU s | old trust | old agree | new CPU s | new trust "
          "| new agree |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in (int(v) for v in args.sizes.split(",")):
        x, labels = blob_latents(n, args.dim, args.clusters, args.seed, args.spread)
        (old, old_used), old_cpu = timed(old_map, x, args.seed)
        (new, new_used), new_cpu = timed(map_2d, x, seed=args.seed, method="tsne", labels=labels)
        assert new_used == "tsne", new_used
        old_q, new_q = quality(x, labels, old, args.seed), quality(x, labels, new, args.seed)
        label = {"tsne": "full t-SNE", "pca": "PCA"}[old_used]
        print(f"| {n:,} | {label} | {old_cpu:.1f} | {old_q[0]:.3f} | {old_q[1]:.3f} "
              f"| {new_cpu:.1f} | {new_q[0]:.3f} | {new_q[1]:.3f} |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
