"""P5, P12: recall@10 and queries/s of the IVF PostIndex vs exact flat search (goal: recall
≥ 0.95 at ≥ 10× the speed of exact search).

    python benchmarks/faiss_recall.py [--n 1000000] [--dim 256] [--queries 1000] [--k 10]
        [--centres 1000] [--spread 1.0] [--nlist N] [--nprobe 1,2,4,8,16,32,64]
        [--threads N] [--repeats 3] [--gpu] [--pq 64[,32]] [--refine none,SQ8]
        [--k-factor 1,4,16,64] [--shards S] [--no-ivf-flat]

Data: a Gaussian mixture (``--centres`` centres ~ N(0, I), points = centre + spread·N(0, I)),
float32, L2-normalised (as post vectors are); queries are fresh draws from the same mixture,
not database points. ``--pq M`` adds the index beyond memory: ``IndexIVFPQ`` with M bytes a
vector (what :class:`PostIndex` builds above ``memory_budget_mb``; trained on a sample, vectors
added in batches), with its memory beside the IVF-Flat one; ``--refine`` the refine codes it
is tried with (``none``: PQ alone; ``SQ8`` etc.: ``IndexRefine`` re-ranking the ``k_factor · k``
best PQ candidates, each ``--k-factor`` a row). Each index is built as the project builds it
above the budget: ``memory_budget_mb`` set to what that index needs, which IVF-Flat exceeds.
Memory is :func:`mmembed.search.index.index_bytes` (what the budget counts), also per vector.

``--shards S`` simulates an index of S·N vectors as S shards of N (S draws of the same
mixture): each shard is built and searched on its own, exact and approximate top-k are merged
over shards by score (``faiss.merge_knn_results``, as ``IndexShards`` does), and queries/s is
for all shards searched one after the other. Both indexes are built with
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
from mmembed.search.index import KIND_IVF, KIND_IVFPQ, REFINE_BYTES_PER_DIM, index_bytes

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
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """Scores and rows found, and the best wall time of ``repeats`` batched searches (after a
    warm-up)."""
    index.search(q[: min(len(q), 16)], k)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        scores, _, rows = index.search(q, k)
        best = min(best, time.perf_counter() - start)
    return scores, rows, best


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth)]))


def configs(args, nlist: int) -> list[tuple[str, int | None, str | None]]:
    """(name, pq_m, refine) of each approximate index to build."""
    out = [] if args.no_ivf_flat else [(f"IVF{nlist},Flat", None, None)]
    for m in (int(m) for m in args.pq.split(",") if m):
        for refine in (r for r in args.refine.split(",") if r):
            refine = None if refine.lower() == "none" else refine
            out.append((f"IVF{nlist},PQ{m}" + (f",Refine({refine})" if refine else ""), m,
                        refine))
    return out


def build(x: np.ndarray, post_ids: list[str], nlist: int, pq_m: int | None,
          refine: str | None, gpu: bool) -> PostIndex:
    """IVF-Flat, or IVF-PQ (+ refine) as the project builds it above ``memory_budget_mb``."""
    n, dim = x.shape
    if pq_m is None:
        return PostIndex.build(x, post_ids, flat_max=n - 1, nlist=nlist, use_gpu=gpu)
    budget_mb = index_bytes(n, dim, KIND_IVFPQ, pq_m, refine) / 2**20
    assert budget_mb < index_bytes(n, dim, KIND_IVF) / 2**20, "IVF-Flat would fit the budget"
    index = PostIndex.build(x, post_ids, flat_max=n - 1, nlist=nlist, use_gpu=gpu,
                            memory_budget_mb=budget_mb, pq_m=pq_m, refine=refine)
    assert index.kind == KIND_IVFPQ and (index.refine is not None) == bool(refine)
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors (per shard)")
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
    parser.add_argument("--refine", default="none,SQ8",
                        help="refine codes tried with each --pq: none or one of "
                        f"{sorted(REFINE_BYTES_PER_DIM)}")
    parser.add_argument("--k-factor", default="1,4,16,64",
                        help="PQ candidates re-ranked per result (refine rows)")
    parser.add_argument("--shards", type=int, default=1, help="simulate S·N vectors as S shards")
    parser.add_argument("--no-ivf-flat", action="store_true", help="skip the IVF-Flat sweep")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    nlist = args.nlist or default_nlist(args.n)
    nprobes = [int(p) for p in args.nprobe.split(",")]
    k_factors = [int(f) for f in args.k_factor.split(",")]
    todo = configs(args, nlist)
    total = args.n * args.shards

    q = mixture(args.queries, args.dim, args.centres, args.spread, seed=2)
    post_ids = [f"p{i}" for i in range(args.n)]
    exact_parts, exact_seconds, build_flat = [], 0.0, 0.0
    parts: dict[tuple, list] = {}
    seconds: dict[tuple, float] = {}
    builds = {name: 0.0 for name, _, _ in todo}
    for shard in range(args.shards):
        start = time.perf_counter()
        # shard 0 is the single-index data set; the others are fresh draws (not the queries')
        x = mixture(args.n, args.dim, args.centres, args.spread,
                    seed=1 if shard == 0 else 1000 + shard)
        offset = shard * args.n
        print(f"shard {shard}: data {time.perf_counter() - start:.1f} s", file=sys.stderr)
        start = time.perf_counter()
        exact = PostIndex.build(x, post_ids, flat_max=args.n, use_gpu=args.gpu)
        build_flat += time.perf_counter() - start
        d, rows, exact_before = timed_search(exact, q, args.k, args.repeats)
        exact_parts.append((d, np.where(rows >= 0, rows + offset, -1)))
        for name, pq_m, refine in todo:
            start = time.perf_counter()
            index = build(x, post_ids, nlist, pq_m, refine, args.gpu)
            builds[name] += time.perf_counter() - start
            print(f"shard {shard}: {name} built {time.perf_counter() - start:.1f} s",
                  file=sys.stderr)
            for nprobe in nprobes:
                index.set_nprobe(nprobe)
                for k_factor in (k_factors if index.refine is not None else [None]):
                    if k_factor is not None:
                        index.set_k_factor(k_factor)
                    d, rows, secs = timed_search(index, q, args.k, args.repeats)
                    key = (name, nprobe, k_factor)
                    parts.setdefault(key, []).append((d, np.where(rows >= 0, rows + offset, -1)))
                    seconds[key] = seconds.get(key, 0.0) + secs
            del index
        # Timed again after the sweep, so a change in background load affects both sides alike.
        exact_seconds += min(exact_before, timed_search(exact, q, args.k, args.repeats)[2])
        del exact, x
    truth = merged(exact_parts)
    exact_qps = args.queries / exact_seconds
    memory = {name: index_bytes(total, args.dim, KIND_IVFPQ if pq_m else KIND_IVF, pq_m, refine)
              for name, pq_m, refine in todo}
    results = [(*key, recall(merged(parts[key]), truth), args.queries / seconds[key])
               for key in parts]
    report(args, results, memory, exact_qps, build_flat, builds, load_before, total)


def merged(parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Rows of the best k over shards (higher score first), as ``IndexShards`` merges."""
    if len(parts) == 1:
        return parts[0][1]
    scores = np.stack([p[0] for p in parts]).astype(np.float32)
    rows = np.stack([p[1] for p in parts])
    return faiss.merge_knn_results(scores, rows, keep_max=True)[1]


def report(args, results, memory, exact_qps, build_flat, builds, load_before, total) -> None:
    device = "GPU" if args.gpu else f"CPU, {args.threads} thread(s)"
    shards = (f" as {args.shards} shards of {args.n:,} searched one after the other and merged"
              if args.shards > 1 else "")
    print(f"{total:,}×{args.dim} float32{shards} (L2-normalised Gaussian mixture: "
          f"{args.centres} centres, spread {args.spread}), {args.queries} held-out queries, "
          f"k={args.k}, {device}\n")
    flat = index_bytes(total, args.dim, "flat")
    print(f"| index | nprobe | k_factor | recall@{args.k} | queries/s | speed-up vs exact "
          "| memory MB | bytes/vector | goal met |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|:---:|")
    print(f"| Flat (exact) | – | – | 1.000 | {exact_qps:,.0f} | 1.0× | {flat / 2**20:,.0f} | "
          f"{flat / total:,.0f} | – |")
    for name, nprobe, k_factor, r, qps in results:
        speedup = qps / exact_qps
        ok = "yes" if r >= GOAL_RECALL and speedup >= GOAL_SPEEDUP else "no"
        print(f"| {name} | {nprobe} | {k_factor or '–'} | {r:.3f} | {qps:,.0f} | "
              f"{speedup:.1f}× | {memory[name] / 2**20:,.0f} | {memory[name] / total:,.0f} | "
              f"{ok} |")
    met = [m for m in results if m[3] >= GOAL_RECALL and m[4] / exact_qps >= GOAL_SPEEDUP]
    verdict = (f"goal (recall@{args.k} ≥ {GOAL_RECALL}, ≥ {GOAL_SPEEDUP:.0f}× exact) met by "
               + ", ".join(f"{m[0]} nprobe {m[1]}" + (f" k_factor {m[2]}" if m[2] else "")
                           for m in met) if met else "goal not met")
    built = ", ".join(f"{name} (train + add) {s:.1f} s" for name, s in builds.items())
    print(f"\nbuild: flat {build_flat:.1f} s, {built}; {verdict}")
    print(f"faiss {faiss.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), load average {load_before:.1f} "
          f"before, {os.getloadavg()[0]:.1f} after")
    env = "".join(f"{v}={shlex.quote(os.environ[v])} " for v in ENV_SHOWN if v in os.environ)
    print(f"command: {env}python {shlex.join(['benchmarks/faiss_recall.py', *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
