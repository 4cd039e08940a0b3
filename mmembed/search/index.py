"""FAISS index of post vectors: exact (flat) or IVF, on CPU or sharded over GPUs.

Vectors are L2-normalised float32, so the inner product is the cosine similarity and the
indexes use ``METRIC_INNER_PRODUCT`` (higher score = nearer). FAISS ids are row numbers
``0..N-1`` into the vectors given to :meth:`PostIndex.build`; ``post_ids[row]`` maps them
back to posts.

Index type: ``IndexFlatIP`` (exact) up to ``flat_max`` vectors, ``IndexIVFFlat`` beyond,
with ``nlist ≈ 4·√N`` inverted lists (at most N/39, so every list centroid sees at least
39 training points) trained by spherical k-means on a sample of ``64·nlist`` vectors.
A search visits ``nprobe`` lists, trading recall for speed (see benchmarks/faiss_recall.py).

Beyond memory: when the chosen index would hold more than ``memory_budget_mb`` (4 bytes per
dimension per vector, flat or IVF-Flat), it becomes IVF-PQ instead: each vector's residual is
stored as ``pq_m`` bytes (product quantisation, 8 bits per sub-vector; by default ``dim / 4``
sub-vectors, 16× smaller than float32), trained with the coarse quantizer on the same sample.
PQ alone ranks poorly (its scores are too coarse to order close neighbours), so by default the
IVF-PQ index is wrapped in ``faiss.IndexRefine`` (index factory ``IVF…,PQ…x8,Refine(SQ8)``):
a search takes the ``k_factor · k`` best PQ candidates and re-ranks them by a second copy of
every vector, scalar-quantised to ``refine`` (``SQ8``: one byte per dimension, 4× smaller
than float32; see :data:`REFINE_BYTES_PER_DIM`). The budget counts everything kept per vector
(:func:`index_bytes`): PQ code + 8-byte id + refine code, e.g. 64 + 8 + 256 = 328 bytes at
dim 256 against 1,032 for IVF-Flat. If even that exceeds the budget the refine codes are
dropped (plain ``IndexIVFPQ``, with a warning). Vectors are normalised and added in batches of
:data:`ADD_BATCH` rows, so a memory-mapped array of features is never copied whole. Scores are
then approximate: recall@10 against exact search is measured in benchmarks/faiss_recall.py
``--pq``.

On disk (:meth:`PostIndex.write_index`, named and stored by :class:`mmembed.bundle.Bundle`):
``faiss.write_index`` of a CPU index (a GPU index is copied back with ``index_gpu_to_cpu``
first; a refine index keeps its refine codes on CPU, only the IVF-PQ part goes to the GPUs) and
:meth:`PostIndex.metadata` as JSON (post ids, kind, nprobe, k_factor, dimension). No pickle.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

log = logging.getLogger(__name__)

KIND_FLAT = "flat"
KIND_IVF = "ivf"
KIND_IVFPQ = "ivfpq"
IVF_KINDS = (KIND_IVF, KIND_IVFPQ)
#: Rows normalised and added to the index at a time.
ADD_BATCH = 4_096
GPU_MAX_K = 2048  # FAISS GPU indexes refuse k (and nprobe) above this
MIN_POINTS_PER_LIST = 39  # below this FAISS warns that k-means is under-trained
TRAIN_POINTS_PER_LIST = 64
#: Refine codes an IVF-PQ index may keep (``SearchSettings.refine``): bytes per dimension.
REFINE_BYTES_PER_DIM = {"SQ4": 0.5, "SQ8": 1.0, "SQfp16": 2.0}
#: PQ candidates re-ranked per result wanted (``k_factor · k``; benchmarks/faiss_recall.py).
DEFAULT_K_FACTOR = 16

UseGpu = bool | Literal["auto"]


def num_gpus() -> int:
    """GPUs visible to FAISS (0 with faiss-cpu)."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def default_nlist(n: int) -> int:
    """``round(4·√n)`` inverted lists, capped so each list has ≥ 39 training points."""
    return max(1, min(int(round(4 * math.sqrt(n))), n // MIN_POINTS_PER_LIST))


def default_pq_m(dim: int) -> int:
    """Sub-quantizers of an IVF-PQ index: the largest divisor of ``dim`` up to ``dim / 4``."""
    return max(m for m in range(1, max(1, dim // 4) + 1) if dim % m == 0)


def index_bytes(n: int, dim: int, kind: str, pq_m: int | None = None,
                refine: str | None = None) -> int:
    """About what an index of ``n`` vectors holds in memory: float32 vectors (flat, IVF-Flat)
    or ``pq_m`` code bytes (IVF-PQ), plus an 8-byte id per vector in inverted lists, plus for
    IVF-PQ the ``refine`` codes (:data:`REFINE_BYTES_PER_DIM`; none when ``refine`` is None).
    Fixed costs are left out: coarse centroids (``4·dim·nlist`` bytes) and PQ codebooks
    (``4·dim·256``), about 1.3 MB at 1M × 256 with 1,000 lists."""
    if kind == KIND_FLAT:
        return 4 * n * dim
    if kind == KIND_IVF:
        return n * (4 * dim + 8)
    return n * ((pq_m or default_pq_m(dim)) + 8) + int(math.ceil(n * _refine_bytes(refine) * dim))


def _refine_bytes(refine: str | None) -> float:
    if not refine:
        return 0.0
    if refine not in REFINE_BYTES_PER_DIM:
        raise ValueError(f"refine must be one of {sorted(REFINE_BYTES_PER_DIM)} or null, "
                         f"got {refine!r}")
    return REFINE_BYTES_PER_DIM[refine]


def _refined(index: faiss.Index) -> faiss.IndexRefine | None:
    """The ``IndexRefine`` wrapping an IVF-PQ index, or None."""
    index = faiss.downcast_index(index)
    return index if isinstance(index, faiss.IndexRefine) else None


def _want_gpu(use_gpu: UseGpu) -> bool:
    if use_gpu == "auto":
        return num_gpus() > 0
    if use_gpu and num_gpus() == 0:
        raise RuntimeError(
            "use_gpu=true but FAISS sees no GPU; install faiss-gpu instead of faiss-cpu "
            "(never both) or pass use_gpu='auto'"
        )
    return bool(use_gpu)


def _normalised(x: np.ndarray, dim: int | None, what: str) -> np.ndarray:
    """A float32 C-contiguous copy of ``x`` with unit-norm rows (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array [n, dim], got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{what} have dimension {x.shape[1]}, the index has {dim}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(f"{what} rows {np.flatnonzero(bad)[:10].tolist()} contain NaN or inf")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def _to_gpu(index: faiss.Index) -> faiss.Index:
    """Copy a CPU index to all GPUs, sharded (each GPU holds 1/ngpu of the vectors); of an
    ``IndexRefine`` only the IVF-PQ part moves, its refine codes stay on CPU."""
    options = faiss.GpuMultipleClonerOptions()
    options.shard = True
    refine = _refined(index)
    if refine is None:
        return faiss.index_cpu_to_all_gpus(index, co=options)
    gpu = faiss.IndexRefine(faiss.index_cpu_to_all_gpus(refine.base_index, co=options),
                            refine.refine_index)
    gpu.k_factor = refine.k_factor
    return gpu


@dataclass
class SearchSettings:
    """How the bundle indexes its posts (``conf: search``): exact up to ``flat_max`` posts,
    IVF with ``nlist`` lists (null: about 4·√N) beyond, ``nprobe`` lists visited per query,
    on the GPU when FAISS sees one (``use_gpu: auto``), ``true`` or ``false``. An index that
    would hold more than ``memory_budget_mb`` becomes IVF-PQ with ``pq_m`` bytes per vector
    (null: dim / 4), its ``k_factor · k`` best candidates re-ranked by ``refine`` codes
    (``SQ8``, ``SQ4``, ``SQfp16``; null: none), which the budget counts."""

    flat_max: int = 200_000
    nlist: int | None = None
    nprobe: int = 16
    use_gpu: Any = "auto"
    memory_budget_mb: float = 8192.0
    pq_m: int | None = None
    refine: str | None = "SQ8"
    k_factor: int = DEFAULT_K_FACTOR


class PostIndex:
    """Nearest-neighbour search over post vectors, by cosine similarity.

    Build with :meth:`build` or :meth:`load`; query with :meth:`search`.
    """

    def __init__(self, index: faiss.Index, post_ids: list[str], *, kind: str,
                 nlist: int | None = None, nprobe: int = 16, on_gpu: bool = False,
                 k_factor: int = DEFAULT_K_FACTOR):
        if index.ntotal != len(post_ids):
            raise ValueError(f"the index holds {index.ntotal} vectors but {len(post_ids)} "
                             "post ids were given")
        if kind not in (KIND_FLAT, *IVF_KINDS):
            raise ValueError(f"kind must be one of {(KIND_FLAT, *IVF_KINDS)}, got {kind!r}")
        if kind in IVF_KINDS and nlist is None:
            if on_gpu:
                raise ValueError("pass nlist for an IVF index on GPU")
            nlist = int(faiss.extract_index_ivf(index).nlist)
        self.index = index
        self.post_ids = [str(p) for p in post_ids]
        self.kind = kind
        self.nlist = nlist if kind in IVF_KINDS else None
        self.on_gpu = on_gpu
        #: The ``IndexRefine`` of an IVF-PQ index with refine codes (else None).
        self.refine = _refined(index) if kind == KIND_IVFPQ else None
        self._row_of: dict[str, int] | None = None
        self.set_nprobe(nprobe)
        self.set_k_factor(k_factor)

    # ---------------------------------------------------------------- construction
    @classmethod
    def build(cls, vectors: np.ndarray, post_ids: list[str], flat_max: int = 200_000,
              nlist: int | None = None, nprobe: int = 16, use_gpu: UseGpu = "auto",
              seed: int = 0, memory_budget_mb: float | None = None,
              pq_m: int | None = None, refine: str | None = "SQ8",
              k_factor: int = DEFAULT_K_FACTOR) -> PostIndex:
        """Index ``vectors`` (one row per post, any array or memory map; normalised here,
        :data:`ADD_BATCH` rows at a time) under ``post_ids``.

        Exact ``IndexFlatIP`` when ``len(vectors) <= flat_max``, else ``IndexIVFFlat`` with
        ``nlist`` lists (default :func:`default_nlist`); ``IndexIVFPQ`` with ``pq_m`` bytes a
        vector when that would exceed ``memory_budget_mb``, wrapped in ``IndexRefine`` with
        ``refine`` codes (re-ranking ``k_factor · k`` candidates) if those fit the budget too
        (see the module docstring).
        ``use_gpu``: ``"auto"`` uses all GPUs FAISS sees, ``True`` requires them, ``False``
        stays on CPU.
        """
        if np.ndim(vectors) != 2:
            raise ValueError(f"vectors must be a 2-D array [n, dim], got shape "
                             f"{np.shape(vectors)}")
        n, dim = vectors.shape
        post_ids = [str(p) for p in post_ids]
        if len(post_ids) != n:
            raise ValueError(f"{n} vectors but {len(post_ids)} post ids")
        if len(set(post_ids)) != n:
            raise ValueError("post ids must be unique")
        gpu = _want_gpu(use_gpu)
        kind = KIND_FLAT if n <= flat_max else KIND_IVF
        pq_m = int(pq_m) if pq_m else default_pq_m(dim)
        _refine_bytes(refine)  # an unknown name is refused even when the index is flat
        budget = None if memory_budget_mb is None else memory_budget_mb * 2**20
        if budget is not None and index_bytes(n, dim, kind) > budget:
            kind = KIND_IVFPQ
            if dim % pq_m:
                raise ValueError(f"pq_m={pq_m} must divide the dimension {dim}")
            if refine and index_bytes(n, dim, kind, pq_m, refine) > budget:
                log.warning("IVF-PQ with %s refine codes (%.0f MB) exceeds memory_budget_mb="
                            "%g: searching PQ codes alone, recall will be low", refine,
                            index_bytes(n, dim, kind, pq_m, refine) / 2**20, memory_budget_mb)
                refine = None
        if kind == KIND_FLAT:
            cpu_index = faiss.IndexFlatIP(dim)
        else:
            nlist = default_nlist(n) if nlist is None else int(nlist)
            if not 1 <= nlist <= n:
                raise ValueError(f"nlist={nlist} must be between 1 and the number of vectors {n}")
            codes = ("Flat" if kind == KIND_IVF else f"PQ{pq_m}x8"
                     + (f",Refine({refine})" if refine else ""))
            cpu_index = faiss.index_factory(dim, f"IVF{nlist},{codes}",
                                            faiss.METRIC_INNER_PRODUCT)
            if kind == KIND_IVFPQ:
                # The factory turns on polysemous training (Hamming-distance filtering, which
                # searches here never use); it is most of the training time.
                faiss.downcast_index(faiss.extract_index_ivf(cpu_index)).do_polysemous_training \
                    = False
            cls._train(cpu_index, vectors, nlist, gpu, seed,
                       pq_points=256 * TRAIN_POINTS_PER_LIST if kind == KIND_IVFPQ else 0)
        index = _to_gpu(cpu_index) if gpu else cpu_index
        for start in range(0, n, ADD_BATCH):
            what = "vectors" if start == 0 else f"vectors (from row {start})"
            index.add(_normalised(vectors[start:start + ADD_BATCH], dim, what))
        return cls(index, post_ids, kind=kind, nlist=nlist if kind in IVF_KINDS else None,
                   nprobe=nprobe, on_gpu=gpu, k_factor=k_factor)

    @staticmethod
    def _train(index: faiss.Index, vectors: np.ndarray, nlist: int, gpu: bool, seed: int,
               pq_points: int = 0) -> None:
        """Coarse quantizer = spherical k-means centroids of a sample (on GPU if asked); the
        product quantizer (IVF-PQ) is trained on a sample of at least ``pq_points``."""
        n, dim = vectors.shape
        size = min(n, max(TRAIN_POINTS_PER_LIST * nlist, pq_points))
        rng = np.random.default_rng(seed)
        rows = np.arange(n) if size == n else np.sort(rng.choice(n, size, replace=False))
        sample = _normalised(vectors[rows], dim, "vectors")
        kmeans = faiss.Kmeans(dim, nlist, niter=20, spherical=True, seed=seed, gpu=gpu,
                              max_points_per_centroid=TRAIN_POINTS_PER_LIST)
        kmeans.train(sample)
        ivf = faiss.extract_index_ivf(index)
        ivf.quantizer.add(kmeans.centroids)
        # The quantizer now holds nlist centroids, so IVF training only marks it trained.
        index.train(sample)

    # ---------------------------------------------------------------- properties
    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return self.ntotal

    def __repr__(self) -> str:
        where = "gpu" if self.on_gpu else "cpu"
        extra = f", nlist={self.nlist}, nprobe={self.nprobe}" if self.kind in IVF_KINDS else ""
        if self.refine is not None:
            extra += f", refine k_factor={self.k_factor}"
        return f"PostIndex({self.kind}, n={self.ntotal}, dim={self.dim}{extra}, {where})"

    def set_nprobe(self, nprobe: int) -> None:
        """How many inverted lists an IVF search visits (ignored by a flat index)."""
        self.nprobe = max(1, int(nprobe))
        if self.kind not in IVF_KINDS:
            return
        if self.on_gpu:
            ivf = self.index if self.refine is None else self.refine.base_index
            faiss.GpuParameterSpace().set_index_parameter(
                ivf, "nprobe", min(self.nprobe, self.nlist, GPU_MAX_K))
        else:
            faiss.extract_index_ivf(self.index).nprobe = min(self.nprobe, self.nlist)

    def set_k_factor(self, k_factor: int) -> None:
        """How many PQ candidates per result a refine index re-ranks (``k_factor · k``;
        ignored by other indexes). Set beside :meth:`set_nprobe`: recall needs both."""
        self.k_factor = max(1, int(k_factor))
        if self.refine is not None:
            self.refine.k_factor = float(self.k_factor)

    def rows_of(self, post_ids: list[str]) -> np.ndarray:
        """Row numbers of ``post_ids`` (e.g. a community's posts, as a ``subset``)."""
        if self._row_of is None:
            self._row_of = {p: i for i, p in enumerate(self.post_ids)}
        missing = [p for p in post_ids if p not in self._row_of]
        if missing:
            raise KeyError(f"post ids not in the index: {missing[:5]}")
        return np.array([self._row_of[p] for p in post_ids], dtype=np.int64)

    # ---------------------------------------------------------------- search
    def search(self, queries: np.ndarray, k: int, subset: np.ndarray | None = None
               ) -> tuple[np.ndarray, list[list[str]], np.ndarray]:
        """The ``k`` posts most similar (cosine) to each query, best first.

        Returns ``(scores [n, k] float32, post_ids, rows [n, k] int64)``. Where fewer than
        ``k`` posts qualify (k > N, or a small ``subset``), ``rows`` is padded with ``-1`` and
        ``scores`` with ``-inf``, and the padding is dropped from ``post_ids`` (so its inner
        lists can be shorter than k).

        ``subset`` (row numbers) restricts the search to those rows. On CPU it is passed to
        FAISS as an ``IDSelectorBatch`` in the search parameters, so a flat index is exact
        within the subset; an IVF index only sees subset rows in the lists it visits, so
        queries that found fewer than ``min(k, len(subset))`` are searched again with 4×
        ``nprobe`` until satisfied or all lists are visited (then it is exact too). FAISS GPU
        indexes ignore ID selectors, so on GPU the search over-fetches (up to 2048, the GPU
        limit) and filters; a query whose neighbours are mostly outside a tiny subset can then
        come back short (padded).
        """
        q = _normalised(queries, self.dim, "queries")
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be ≥ 1, got {k}")
        if subset is None:
            scores, rows = self._search_all(q, k)
        else:
            scores, rows = self._search_subset(q, k, np.asarray(subset))
        ids = [[self.post_ids[r] for r in row if r >= 0] for row in rows]
        return scores, ids, rows

    def _faiss_search(self, q: np.ndarray, k: int, params=None) -> tuple[np.ndarray, np.ndarray]:
        fetched = k * self.k_factor if self.refine is not None else k
        if self.on_gpu and fetched > GPU_MAX_K:
            raise ValueError(f"k={k} (× k_factor {self.k_factor} PQ candidates) exceeds the "
                             f"FAISS GPU limit of {GPU_MAX_K}; search with a smaller k or "
                             "k_factor or load the index on CPU (use_gpu=false)")
        if params is None:
            return self.index.search(q, k)
        return self.index.search(q, k, params=params)

    def _search_all(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k_eff = min(k, self.ntotal)
        if k_eff == 0:
            return _pad(np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64), k)
        scores, rows = self._faiss_search(q, k_eff)
        return _pad(scores, rows, k)

    def _search_subset(self, q: np.ndarray, k: int, subset: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
        subset = np.unique(subset.astype(np.int64, copy=False).ravel())
        if subset.size and (subset[0] < 0 or subset[-1] >= self.ntotal):
            raise ValueError(f"subset rows must lie in [0, {self.ntotal}), got "
                             f"[{subset[0]}, {subset[-1]}]")
        want = min(k, subset.size)
        if want == 0:
            return _pad(np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64), k)
        if self.on_gpu:
            scores, rows = self._search_filtered(q, want, subset)
        else:
            scores, rows = self._search_selected(q, want, subset)
        return _pad(scores, rows, k)

    def _search_selected(self, q: np.ndarray, k: int, subset: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
        """CPU: FAISS skips rows outside ``subset`` while scanning (``IDSelectorBatch``)."""
        selector = faiss.IDSelectorBatch(subset)
        if self.kind not in IVF_KINDS:
            return self._faiss_search(q, k, faiss.SearchParameters(sel=selector))
        nprobe, nlist = min(self.nprobe, self.nlist), self.nlist
        scores, rows = self._faiss_search(q, k, self._ivf_params(selector, nprobe))
        short = np.flatnonzero((rows < 0).any(axis=1))
        while short.size and nprobe < nlist:
            nprobe = min(nlist, nprobe * 4)
            params = self._ivf_params(selector, nprobe)
            scores[short], rows[short] = self._faiss_search(q[short], k, params)
            short = short[(rows[short] < 0).any(axis=1)]
        return scores, rows

    def _ivf_params(self, selector: faiss.IDSelector, nprobe: int) -> faiss.SearchParameters:
        """Search parameters of an IVF index; a refine index takes its own, holding the IVF
        ones (FAISS refuses IVF parameters given to ``IndexRefine`` directly)."""
        ivf = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
        if self.refine is None:
            return ivf
        params = faiss.IndexRefineSearchParameters(k_factor=float(self.k_factor),
                                                   base_index_params=ivf)
        params.referenced = ivf  # keep the IVF parameters alive as long as these
        return params

    def _search_filtered(self, q: np.ndarray, k: int, subset: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
        """GPU: over-fetch, keep rows in ``subset``, best first."""
        fetch = min(self.ntotal, GPU_MAX_K, max(k, math.ceil(2 * k * self.ntotal / subset.size)))
        scores, rows = self._faiss_search(q, fetch)
        keep = np.isin(rows, subset) & (rows >= 0)
        out_s = np.full((len(q), k), -np.inf, np.float32)
        out_r = np.full((len(q), k), -1, np.int64)
        for i in range(len(q)):
            hit = np.flatnonzero(keep[i])[:k]
            out_s[i, : hit.size], out_r[i, : hit.size] = scores[i, hit], rows[i, hit]
        return out_s, out_r

    # ---------------------------------------------------------------- persistence
    def to_cpu(self) -> faiss.Index:
        """A CPU copy of the index (the index itself when already on CPU)."""
        if not self.on_gpu:
            return self.index
        if self.refine is None:
            return faiss.index_gpu_to_cpu(self.index)
        cpu = faiss.IndexRefine(faiss.index_gpu_to_cpu(self.refine.base_index),
                                self.refine.refine_index)
        cpu.k_factor = float(self.k_factor)
        return cpu

    def metadata(self) -> dict:
        """What :meth:`load` needs beside the FAISS file: post ids, kind, nprobe, k_factor,
        dimension."""
        return {"post_ids": self.post_ids, "kind": self.kind, "nprobe": self.nprobe,
                "k_factor": self.k_factor, "dim": self.dim, "metric": "inner_product"}

    def write_index(self, path: str | Path) -> None:
        """``faiss.write_index`` of a CPU copy of the index (a GPU index is copied back)."""
        faiss.write_index(self.to_cpu(), str(path))

    @classmethod
    def load(cls, index_path: str | Path, meta: dict, use_gpu: UseGpu = False) -> PostIndex:
        """Read an index :meth:`write_index` wrote, with its :meth:`metadata`; on CPU unless
        ``use_gpu`` (then sharded over the GPUs)."""
        index = faiss.read_index(str(index_path))
        if index.d != meta["dim"] or index.ntotal != len(meta["post_ids"]):
            raise ValueError(f"{index_path} ({index.ntotal}×{index.d}) does not match its "
                             f"metadata ({len(meta['post_ids'])}×{meta['dim']}); rebuild it")
        nlist = (int(faiss.extract_index_ivf(index).nlist) if meta["kind"] in IVF_KINDS
                 else None)
        gpu = _want_gpu(use_gpu)
        if gpu:
            index = _to_gpu(index)
        return cls(index, meta["post_ids"], kind=meta["kind"], nlist=nlist,
                   nprobe=meta["nprobe"], on_gpu=gpu,
                   k_factor=meta.get("k_factor", DEFAULT_K_FACTOR))


def _pad(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Widen FAISS results to ``k`` columns; missing hits become row -1 with score -inf."""
    n = rows.shape[0]
    out_s = np.full((n, k), -np.inf, np.float32)
    out_r = np.full((n, k), -1, np.int64)
    width = min(k, rows.shape[1])
    out_r[:, :width] = rows[:, :width]
    out_s[:, :width] = np.where(rows[:, :width] >= 0, scores[:, :width], -np.inf)
    return out_s, out_r
