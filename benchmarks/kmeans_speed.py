"""P6: FAISS k-means vs scikit-learn KMeans on the same data (goal: ≥ 10× faster, inertia
within 1%).

    python benchmarks/kmeans_speed.py [--n 200000] [--dim 64] [--k 50] [--niter 25]
                                      [--seeds 3] [--centres 50] [--spread 1.0] [--threads N]

Data: a Gaussian mixture (``--centres`` centres ~ N(0, I), points = centre + spread·N(0, I)),
float32. Every method runs once per seed (``n_init=1`` / ``nredo=1``) with at most
``--niter`` Lloyd iterations; scikit-learn stops earlier if it converges (``tol=1e-4``, its
default) and the table reports the iterations it ran. FAISS's default trains on a sample of
256 points per centroid (``max_points_per_centroid``), which is most of its speed; the
"all points" rows turn that off, and the last row polishes the sampled result with 5 Lloyd
iterations on all points. Inertia is computed the same way for every method, after
fitting: the sum over *all* points of the squared distance to the nearest centroid, in
float64. Times are wall seconds (median over seeds), with the process's CPU seconds beside
them; both libraries get ``--threads`` threads (default: all CPUs). On a machine shared with
other jobs use ``--threads 1`` or set ``OMP_WAIT_POLICY=PASSIVE``: FAISS's OpenMP threads
spin-wait for each other, so one descheduled thread slows every iteration many times over.
Methods are interleaved seed by seed so background load hits them alike; the load average is
printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time

import faiss
import numpy as np
import sklearn
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

ENV_SHOWN = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")


def mixture(n: int, dim: int, centres: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((centres, dim), dtype=np.float32)
    noise = rng.standard_normal((n, dim), dtype=np.float32)
    return np.ascontiguousarray(mu[rng.integers(0, centres, n)] + spread * noise)


def inertia(x: np.ndarray, centroids: np.ndarray, chunk: int = 50_000) -> float:
    """Σ_i min_c ‖x_i − c‖² over all points, in float64."""
    c = centroids.astype(np.float64)
    c_sq = (c * c).sum(axis=1)
    total = 0.0
    for start in range(0, len(x), chunk):
        xb = x[start:start + chunk].astype(np.float64)
        d = (xb * xb).sum(axis=1, keepdims=True) - 2 * xb @ c.T + c_sq
        total += float(np.maximum(d.min(axis=1), 0).sum())
    return total


def run_sklearn(x, k, niter, seed, init: str):
    model = KMeans(n_clusters=k, init=init, n_init=1, max_iter=niter, algorithm="lloyd",
                   random_state=seed)
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(x)
    return (time.perf_counter() - start, time.process_time() - cpu, model.cluster_centers_,
            int(model.n_iter_))


def run_faiss(x, k, niter, seed, all_points: bool, init: str, refine: int = 0):
    """FAISS k-means; ``refine`` > 0 adds that many Lloyd iterations on all points, started
    from the (sampled) result."""
    kwargs = {"niter": niter, "nredo": 1, "seed": seed}
    if all_points:
        kwargs["max_points_per_centroid"] = len(x) // k + 1
    if init == "k-means++":
        kwargs["init_method"] = faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS
    kmeans = faiss.Kmeans(x.shape[1], k, **kwargs)
    start, cpu = time.perf_counter(), time.process_time()
    kmeans.train(x)
    centroids = kmeans.centroids
    if refine:
        polish = faiss.Kmeans(x.shape[1], k, niter=refine, seed=seed,
                              max_points_per_centroid=len(x) // k + 1)
        polish.train(x, init_centroids=centroids)
        centroids = polish.centroids
    return time.perf_counter() - start, time.process_time() - cpu, centroids, niter + refine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--niter", type=int, default=25)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--centres", type=int, default=50)
    parser.add_argument("--spread", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    limits = threadpool_limits(limits=args.threads)  # noqa: F841 - sklearn's OpenMP and BLAS
    load_before = os.getloadavg()[0]

    x = mixture(args.n, args.dim, args.centres, args.spread, seed=1234)
    k, niter = args.k, args.niter
    methods = {
        "scikit-learn KMeans (k-means++, lloyd)": lambda s: run_sklearn(x, k, niter, s,
                                                                        "k-means++"),
        "scikit-learn KMeans (random init, lloyd)": lambda s: run_sklearn(x, k, niter, s,
                                                                          "random"),
    }
    for init in ("random", "k-means++"):
        for all_points in (False, True):
            label = f"faiss Kmeans ({init} init, {'all points' if all_points else 'sampled'})"
            methods[label] = (lambda s, i=init, a=all_points:
                              run_faiss(x, k, niter, s, all_points=a, init=i))
    methods["faiss Kmeans (k-means++ init, sampled, then 5 iterations on all points)"] = (
        lambda s: run_faiss(x, k, niter, s, all_points=False, init="k-means++", refine=5))
    results: dict[str, list] = {name: [] for name in methods}
    run_faiss(x[:10_000], args.k, 2, 0, all_points=False, init="random")  # warm up OpenMP
    for seed in range(args.seeds):
        for name, fit in methods.items():
            seconds, cpu, centroids, iters = fit(seed)
            results[name].append((seconds, inertia(x, centroids), iters, cpu))
        print(f"done: seed {seed}", file=sys.stderr)

    base = "scikit-learn KMeans (k-means++, lloyd)"
    base_time = float(np.median([r[0] for r in results[base]]))
    base_inertia = float(np.median([r[1] for r in results[base]]))
    base_cpu = float(np.median([r[3] for r in results[base]]))
    print(f"{args.n:,}×{args.dim} float32, k={args.k}, ≤{args.niter} iterations, "
          f"{args.seeds} seeds (medians), {args.threads} thread(s), data: {args.centres} "
          f"Gaussian centres, spread {args.spread}\n")
    print("| method | seconds | speed-up | CPU s | CPU speed-up | iterations "
          "| inertia / sklearn k-means++ | min–max over seeds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, runs in results.items():
        seconds = float(np.median([r[0] for r in runs]))
        ratios = [r[1] / base_inertia for r in runs]
        iters = "–".join(sorted({str(r[2]) for r in runs}, key=int))
        cpu = float(np.median([r[3] for r in runs]))
        print(f"| {name} | {seconds:.2f} | {base_time / seconds:.1f}× | {cpu:.2f} "
              f"| {base_cpu / cpu:.1f}× | {iters} "
              f"| {float(np.median(ratios)):.4f} | {min(ratios):.4f}–{max(ratios):.4f} |")
    print(f"\nfaiss {faiss.__version__}, scikit-learn {sklearn.__version__}, numpy "
          f"{np.__version__}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}),"
          f" load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    env = "".join(f"{v}={shlex.quote(os.environ[v])} " for v in ENV_SHOWN if v in os.environ)
    print(f"command: {env}python {shlex.join(['benchmarks/kmeans_speed.py', *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
