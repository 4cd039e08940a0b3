"""P5: recall@10 and queries/s of the IVF PostIndex vs exact flat search (goal: recall ≥ 0.95
at ≥ 10× the speed of exact search).

    python benchmarks/faiss_recall.py [--n 1000000] [--dim 256] [--queries 1000] [--k 10]
        [--centres 1000] [--spread 1.0] [--nlist N] [--nprobe 1,2,4,8,16,32,64]
        [--threads N] [--repeats 3] [--gpu] [--pq 64[,32]] [--no-ivf-flat]

Data: a Gaussian mixture (``--centres`` centres ~ N(0, I), points = centre + spread·N(0, I)),
float32, L2-normalised (as post vectors are); queries are fresh draws from the same mixture,
not database points. ``--pq M`` adds the index beyond memory: ``IndexIVFPQ`` with M bytes a
vector (what :class:`PostIndex` builds above ``memory_budget_mb``; trained on a sample, vectors
added in batches), with its memory beside the IVF-Flat one. Both indexes are built with
:class:`mmembed.search.PostIndex`: exact ``IndexFlatIP`` (``flat_max`` above N) and
``IndexIVFFlat`` (``flat_max`` below N, nlist ``4·√N`` unless ``--nlist``, trained on a sample
of 64·nlist vectors). recall@k is
|IVF top-k ∩ exact top-k| / k averaged over queries. Queries/s: one batched ``search`` of all
queries, best wall time of ``--repeats`` after a warm-up (exact search: timed before and
after the sweep), with ``--threads`` FAISS threads (default: all CPUs). On a machine shared
with other jobs prefer ``--threads 1`` or set ``OMP_WAIT_POLICY=PASSIVE``: FAISS's OpenMP
threads spin-wait for each other, so one descheduled thread stalls them all. The load
average is printed with the table.
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

from mmembed.search import PostIndex, default_nlist
from mmembed.search.index import KIND_IVF, KIND_IVFPQ, index_bytes

GOAL_RECALL, GOAL_SPEEDUP = 0.95, 10.0

ENV_SHOWN = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")


def mixture(n: int, dim: int, centres: int, spread: float, seed: int,
            chunk: int = 100_000) -> np.ndarray:
    """Unit-norm float32 rows from a Gaussian mixture, generated in chunks (1M×256 = 1 GB)."""
    rng = np.random.default_rng(seed)
    mu = np.random.default_rng(0).standard_normal((centres, dim), dtype=np.float32)
    x = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        block = mu[rng.integers(0, centres, stop - start)]
        block += spread * rng.standard_normal((stop - start, dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        x[start:stop] = block
    return x


def timed_search(index: PostIndex, q: np.ndarray, k: int, repeats: int
                 ) -> tuple[np.ndarray, float]:
    """Rows found and the best wall time of ``repeats`` batched searches (after a warm-up)."""
    index.search(q[: min(len(q), 16)], k)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        _, _, rows = index.search(q, k)
        best = min(best, time.perf_counter() - start)
    return rows, best


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--centres", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=1.0)
    parser.add_argument("--nlist", type=int, default=None)
    parser.add_argument("--nprobe", default="1,2,4,8,16,32,64")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3, help="timed searches; best is kept")
    parser.add_argument("--gpu", action="store_true", help="build both indexes on the GPU(s)")
    parser.add_argument("--pq", default="", help="IVF-PQ bytes per vector to compare, e.g. 64,32")
    parser.add_argument("--no-ivf-flat", action="store_true", help="skip the IVF-Flat sweep")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    nlist = args.nlist or default_nlist(args.n)

    start = time.perf_counter()
    x = mixture(args.n, args.dim, args.centres, args.spread, seed=1)
    q = mixture(args.queries, args.dim, args.centres, args.spread, seed=2)
    post_ids = [f"p{i}" for i in range(args.n)]
    print(f"data: {time.perf_counter() - start:.1f} s", file=sys.stderr)

    start = time.perf_counter()
    exact = PostIndex.build(x, post_ids, flat_max=args.n, use_gpu=args.gpu)
    build_flat = time.perf_counter() - start
    truth, exact_seconds = timed_search(exact, q, args.k, args.repeats)
    print(f"exact: {args.queries / exact_seconds:.0f} q/s", file=sys.stderr)

    indexes = [] if args.no_ivf_flat else [(f"IVF{nlist},Flat", None)]
    indexes += [(f"IVF{nlist},PQ{m}", int(m)) for m in args.pq.split(",") if m]
    rows, builds, memory = [], {}, {}
    for name, pq_m in indexes:
        start = time.perf_counter()
        index = PostIndex.build(x, post_ids, flat_max=args.n - 1, nlist=nlist, use_gpu=args.gpu,
                                memory_budget_mb=0 if pq_m else None, pq_m=pq_m)
        builds[name] = time.perf_counter() - start
        memory[name] = index_bytes(args.n, args.dim, KIND_IVFPQ if pq_m else KIND_IVF,
                                   pq_m) / 2**20
        print(f"{name} built: {builds[name]:.1f} s", file=sys.stderr)
        for nprobe in (int(p) for p in args.nprobe.split(",")):
            index.set_nprobe(nprobe)
            found, seconds = timed_search(index, q, args.k, args.repeats)
            rows.append((name, nprobe, recall(found, truth), args.queries / seconds))
        del index
    # Timed again after the sweep, so a change in background load affects both sides alike.
    exact_seconds = min(exact_seconds, timed_search(exact, q, args.k, args.repeats)[1])
    exact_qps = args.queries / exact_seconds

    device = "GPU" if args.gpu else f"CPU, {args.threads} thread(s)"
    print(f"{args.n:,}×{args.dim} float32 (L2-normalised Gaussian mixture: {args.centres} "
          f"centres, spread {args.spread}), {args.queries} held-out queries, k={args.k}, "
          f"{device}\n")
    flat_mb = index_bytes(args.n, args.dim, "flat") / 2**20
    print(f"| index | nprobe | recall@{args.k} | queries/s | speed-up vs exact | memory MB "
          "| goal met |")
    print("|---|---:|---:|---:|---:|---:|:---:|")
    print(f"| Flat (exact) | – | 1.000 | {exact_qps:,.0f} | 1.0× | {flat_mb:,.0f} | – |")
    for name, nprobe, r, qps in rows:
        speedup = qps / exact_qps
        ok = "yes" if r >= GOAL_RECALL and speedup >= GOAL_SPEEDUP else "no"
        print(f"| {name} | {nprobe} | {r:.3f} | {qps:,.0f} | {speedup:.1f}× | "
              f"{memory[name]:,.0f} | {ok} |")
    met = [row for row in rows if row[2] >= GOAL_RECALL and row[3] / exact_qps >= GOAL_SPEEDUP]
    verdict = (f"goal (recall@{args.k} ≥ {GOAL_RECALL}, ≥ {GOAL_SPEEDUP:.0f}× exact) met by "
               f"{', '.join(f'{m[0]} nprobe {m[1]}' for m in met)}" if met else "goal not met")
    built = ", ".join(f"{name} (train + add) {s:.1f} s" for name, s in builds.items())
    print(f"\nbuild: flat {build_flat:.1f} s, {built}; {verdict}")
    print(f"faiss {faiss.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), load average {load_before:.1f} "
          f"before, {os.getloadavg()[0]:.1f} after")
    env = "".join(f"{v}={shlex.quote(os.environ[v])} " for v in ENV_SHOWN if v in os.environ)
    print(f"command: {env}python {shlex.join(['benchmarks/faiss_recall.py', *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
