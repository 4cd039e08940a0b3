"""PostIndex: exact flat search, IVF beyond flat_max, subsets, save/load, GPU when present."""

import json

import faiss
import numpy as np
import pytest

from mmembed.search import PostIndex, default_nlist, num_gpus
from mmembed.search.index import KIND_FLAT, KIND_IVF, KIND_IVFPQ, index_bytes

requires_gpu = pytest.mark.skipif(num_gpus() == 0, reason="FAISS sees no GPU (faiss-cpu or "
                                  "no CUDA device); the GPU path needs faiss-gpu and a GPU")


def clustered(n: int, dim: int = 32, centres: int = 20, spread: float = 0.35, seed: int = 0):
    """Unit vectors around ``centres`` random directions (a Gaussian mixture on the sphere)."""
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((centres, dim))
    x = mu[rng.integers(0, centres, n)] + spread * rng.standard_normal((n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(x: np.ndarray, q: np.ndarray, k: int, rows: np.ndarray | None = None):
    """Exact top-k rows by inner product with numpy (optionally among ``rows`` only)."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    sims = q @ x[rows].T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, top, axis=1), rows[top]


def ids_for(n: int) -> list[str]:
    return [f"post-{i:05d}" for i in range(n)]


@pytest.fixture(scope="module")
def data():
    x = clustered(3000)
    q = clustered(40, seed=1)
    return x, q


def _assert_same_searches(index, loaded, q, n):
    """``loaded`` answers every query as ``index`` does, over all rows and over a subset."""
    for subset in (None, np.arange(0, n, 3)):
        a, ids_a, rows_a = index.search(q, 10, subset=subset)
        b, ids_b, rows_b = loaded.search(q, 10, subset=subset)
        np.testing.assert_array_equal(rows_a, rows_b)
        np.testing.assert_array_equal(a, b)
        assert ids_a == ids_b


def test_flat_search_is_exact_and_maps_post_ids(data):
    x, q = data
    index = PostIndex.build(x, ids_for(len(x)), use_gpu=False)
    assert index.kind == KIND_FLAT and len(index) == len(x)
    scores, post_ids, rows = index.search(q, 10)
    ref_scores, ref_rows = brute_force(x, q, 10)
    assert scores.shape == rows.shape == (len(q), 10) and rows.dtype == np.int64
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    # Ties can swap equal-score rows; compare the sets of neighbours per query.
    assert all(set(a) == set(b) for a, b in zip(rows, ref_rows))
    assert post_ids == [[f"post-{r:05d}" for r in row] for row in rows]


def test_build_normalises_vectors_and_queries(data):
    x, q = data
    index = PostIndex.build(x * 7.0, ids_for(len(x)), use_gpu=False)
    scores, _, rows = index.search(q * 0.1, 5)
    ref_scores, _ = brute_force(x, q, 5)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    assert scores.max() <= 1.0 + 1e-5


def test_single_query_vector_is_accepted(data):
    x, q = data
    index = PostIndex.build(x, ids_for(len(x)), use_gpu=False)
    scores, post_ids, rows = index.search(q[0], 3)
    assert scores.shape == (1, 3) and len(post_ids) == 1


def test_ivf_beyond_flat_max_has_high_recall(data):
    x, q = data
    index = PostIndex.build(x, ids_for(len(x)), flat_max=1000, nprobe=8, use_gpu=False)
    assert index.kind == KIND_IVF
    assert index.nlist == default_nlist(len(x))
    assert isinstance(faiss.downcast_index(index.index), faiss.IndexIVFFlat)
    _, _, rows = index.search(q, 10)
    _, ref_rows = brute_force(x, q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, ref_rows)])
    assert recall >= 0.9


def test_default_nlist_is_four_root_n_with_enough_training_points():
    assert default_nlist(1_000_000) == 4000
    assert default_nlist(3000) == 3000 // 39  # 4·√3000 ≈ 219 would leave < 39 points per list
    assert default_nlist(10) == 1


@pytest.mark.parametrize("flat_max", [100_000, 1000], ids=["flat", "ivf"])
def test_subset_search_only_returns_subset_rows(data, flat_max):
    x, q = data
    index = PostIndex.build(x, ids_for(len(x)), flat_max=flat_max, nprobe=2, use_gpu=False)
    subset = np.arange(5, len(x), 37)
    scores, post_ids, rows = index.search(q, 10, subset=subset)
    assert np.isin(rows, subset).all()  # full: the subset has more than k rows
    assert all(pid == [index.post_ids[r] for r in row] for pid, row in zip(post_ids, rows))
    # Exact within the subset: flat always; IVF once it widens nprobe or already covers them.
    ref_scores, ref_rows = brute_force(x, q, 10, rows=subset)
    if flat_max > len(x):
        np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    else:
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, ref_rows)])
        assert recall >= 0.8


def test_ivf_subset_far_from_the_query_is_still_found():
    # The subset lies in one cluster; queries come from others, so nprobe=1 alone would visit
    # lists with no subset rows. The search widens nprobe until it finds k of them.
    x = clustered(4000, centres=8, spread=0.2)
    index = PostIndex.build(x, ids_for(len(x)), flat_max=100, nprobe=1, use_gpu=False)
    subset = np.arange(0, 12)
    q = clustered(5, centres=8, spread=0.2, seed=5)
    scores, post_ids, rows = index.search(q, 10, subset=subset)
    assert (rows >= 0).all() and np.isin(rows, subset).all()
    ref_scores, _ = brute_force(x, q, 10, rows=subset)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_k_beyond_available_is_padded(data):
    x, q = data
    small = PostIndex.build(x[:7], ids_for(7), use_gpu=False)
    scores, post_ids, rows = small.search(q[:3], 10)
    assert rows.shape == (3, 10)
    assert (rows[:, :7] >= 0).all() and (rows[:, 7:] == -1).all()
    assert np.isneginf(scores[:, 7:]).all()
    assert all(len(p) == 7 for p in post_ids)

    index = PostIndex.build(x, ids_for(len(x)), use_gpu=False)
    scores, post_ids, rows = index.search(q[:2], 10, subset=[3, 4, 4])
    assert sorted(rows[0, :2].tolist()) == [3, 4] and (rows[:, 2:] == -1).all()
    assert sorted(post_ids[0]) == ["post-00003", "post-00004"]
    scores, post_ids, rows = index.search(q[:2], 4, subset=np.array([], dtype=np.int64))
    assert (rows == -1).all() and post_ids == [[], []]


def test_bad_inputs_are_refused(data):
    x, q = data
    with pytest.raises(ValueError, match="post ids"):
        PostIndex.build(x, ids_for(len(x) - 1), use_gpu=False)
    with pytest.raises(ValueError, match="unique"):
        PostIndex.build(x[:2], ["a", "a"], use_gpu=False)
    with pytest.raises(ValueError, match="NaN"):
        PostIndex.build(np.full((2, 4), np.nan), ["a", "b"], use_gpu=False)
    index = PostIndex.build(x, ids_for(len(x)), use_gpu=False)
    with pytest.raises(ValueError, match="dimension"):
        index.search(q[:, :5], 3)
    with pytest.raises(ValueError, match="subset rows"):
        index.search(q, 3, subset=[len(x)])


def test_rows_of_maps_post_ids_back(data):
    x, _ = data
    index = PostIndex.build(x, ids_for(len(x)), use_gpu=False)
    assert index.rows_of(["post-00010", "post-00002"]).tolist() == [10, 2]
    with pytest.raises(KeyError):
        index.rows_of(["nope"])


@pytest.mark.parametrize("flat_max", [100_000, 1000], ids=["flat", "ivf"])
def test_save_load_round_trip(tmp_path, data, flat_max):
    x, q = data
    index = PostIndex.build(x, ids_for(len(x)), flat_max=flat_max, nprobe=4, use_gpu=False)
    index.write_index(tmp_path / "posts.faiss")
    meta = json.loads(json.dumps(index.metadata()))  # stored as JSON beside it
    loaded = PostIndex.load(tmp_path / "posts.faiss", meta)
    assert (loaded.kind, loaded.nprobe, loaded.nlist) == (index.kind, 4, index.nlist)
    assert loaded.post_ids == index.post_ids and not loaded.on_gpu
    _assert_same_searches(index, loaded, q, len(x))


def test_load_refuses_mismatched_metadata(tmp_path, data):
    x, _ = data
    index = PostIndex.build(x, ids_for(len(x)), use_gpu=False)
    index.write_index(tmp_path / "posts.faiss")
    meta = index.metadata()
    meta["post_ids"] = [*meta["post_ids"], "one-too-many"]
    with pytest.raises(ValueError, match="does not match"):
        PostIndex.load(tmp_path / "posts.faiss", meta)


def test_use_gpu_true_without_gpu_is_a_clear_error(data):
    if num_gpus() > 0:
        pytest.skip("a GPU is present")
    x, _ = data
    with pytest.raises(RuntimeError, match="faiss-gpu"):
        PostIndex.build(x, ids_for(len(x)), use_gpu=True)


@requires_gpu
@pytest.mark.parametrize("flat_max", [100_000, 1000], ids=["flat", "ivf"])
def test_gpu_matches_cpu_and_saves_a_cpu_index(tmp_path, data, flat_max):
    x, q = data
    cpu = PostIndex.build(x, ids_for(len(x)), flat_max=flat_max, nprobe=8, use_gpu=False)
    gpu = PostIndex.build(x, ids_for(len(x)), flat_max=flat_max, nprobe=8, use_gpu=True)
    assert gpu.on_gpu and gpu.kind == cpu.kind
    _, _, ref_rows = brute_force(x, q, 10)
    _, _, rows = gpu.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, ref_rows)])
    assert recall >= (0.99 if flat_max > len(x) else 0.9)
    subset = np.arange(0, len(x), 5)
    _, _, sub_rows = gpu.search(q, 10, subset=subset)
    assert np.isin(sub_rows[sub_rows >= 0], subset).all()
    gpu.write_index(tmp_path / "posts.faiss")
    loaded = PostIndex.load(tmp_path / "posts.faiss", gpu.metadata())  # CPU by default
    assert not loaded.on_gpu and "Gpu" not in type(faiss.downcast_index(loaded.index)).__name__
    again = PostIndex.load(tmp_path / "posts.faiss", gpu.metadata(), use_gpu=True)
    assert again.on_gpu and again.search(q, 10)[2].shape == (len(q), 10)


def recall_at(rows: np.ndarray, ref_rows: np.ndarray) -> float:
    k = ref_rows.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(rows, ref_rows)]))


def ivf_flat_budget_mb(x: np.ndarray) -> float:
    """Just under what IVF-Flat would hold, so the build must compress."""
    return index_bytes(len(x), x.shape[1], KIND_IVF) / 2**20 * 0.99


def test_ivfpq_above_the_memory_budget_from_a_memory_map(data, tmp_path):
    x, q = data
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    budget_mb = index_bytes(len(x), x.shape[1], KIND_FLAT) / 2**20 / 2  # flat would not fit
    index = PostIndex.build(mapped, ids_for(len(x)), memory_budget_mb=budget_mb, nprobe=8,
                            use_gpu=False)
    assert index.kind == KIND_IVFPQ and index.refine is not None
    pq = faiss.downcast_index(index.refine.base_index)
    assert isinstance(pq, faiss.IndexIVFPQ) and pq.pq.M == 8  # dim 32 / 4 bytes a vector
    assert isinstance(faiss.downcast_index(index.refine.refine_index),
                      faiss.IndexScalarQuantizer)
    # PQ code + id + SQ8 code (one byte a dimension), within the budget
    assert index_bytes(len(x), 32, KIND_IVFPQ, refine="SQ8") == len(x) * (8 + 8 + 32)
    assert index_bytes(len(x), 32, KIND_IVFPQ, refine="SQ8") < budget_mb * 2**20
    _, _, rows = index.search(q, 10)
    _, ref_rows = brute_force(x, q, 10)
    assert recall_at(rows, ref_rows) >= 0.9
    # under the budget nothing changes
    assert PostIndex.build(x, ids_for(len(x)), memory_budget_mb=1024,
                           use_gpu=False).kind == KIND_FLAT


def test_refine_lifts_recall_over_pq_alone_on_clustered_data():
    x = clustered(6000, dim=64, centres=30, spread=0.5, seed=3)
    q = clustered(60, dim=64, centres=30, spread=0.5, seed=4)
    _, ref_rows = brute_force(x, q, 10)
    common = dict(flat_max=1000, nprobe=16, use_gpu=False, pq_m=8,
                  memory_budget_mb=ivf_flat_budget_mb(x))
    pq_only = PostIndex.build(x, ids_for(len(x)), refine=None, **common)
    refined = PostIndex.build(x, ids_for(len(x)), refine="SQ8", k_factor=16, **common)
    assert pq_only.refine is None and refined.refine is not None
    r_pq = recall_at(pq_only.search(q, 10)[2], ref_rows)
    r_refined = recall_at(refined.search(q, 10)[2], ref_rows)
    assert r_refined >= 0.95 and r_refined > r_pq + 0.1
    # k_factor 1 re-ranks only the PQ top-k: the same neighbours as PQ alone
    refined.set_k_factor(1)
    assert recall_at(refined.search(q, 10)[2], ref_rows) == pytest.approx(r_pq, abs=0.05)


def test_refine_index_saved_and_loaded_gives_identical_results(tmp_path, data):
    x, q = data
    index = PostIndex.build(x, ids_for(len(x)), flat_max=1000, nprobe=4, k_factor=8,
                            memory_budget_mb=ivf_flat_budget_mb(x), use_gpu=False)
    assert index.kind == KIND_IVFPQ and index.refine is not None
    index.write_index(tmp_path / "posts.faiss")
    # the file holds what the budget counts (codes, ids, refine codes) plus the centroids
    counted = index_bytes(len(x), x.shape[1], KIND_IVFPQ, refine="SQ8")
    centroids = 4 * x.shape[1] * (index.nlist + 256)  # coarse + PQ codebooks
    assert counted < (tmp_path / "posts.faiss").stat().st_size < counted + centroids + 4096
    meta = json.loads(json.dumps(index.metadata()))
    loaded = PostIndex.load(tmp_path / "posts.faiss", meta)
    assert (loaded.kind, loaded.nprobe, loaded.k_factor) == (KIND_IVFPQ, 4, 8)
    assert loaded.refine is not None and loaded.refine.k_factor == 8
    _assert_same_searches(index, loaded, q, len(x))


def test_refine_subset_search_stays_in_the_subset_and_near_exact(data):
    x, q = data
    # (at nprobe 8 IVF-Flat itself finds only 0.87 of this subset's top 10: lists unvisited)
    index = PostIndex.build(x, ids_for(len(x)), flat_max=1000, nprobe=16,
                            memory_budget_mb=ivf_flat_budget_mb(x), use_gpu=False)
    subset = np.arange(1, len(x), 7)
    scores, _, rows = index.search(q, 10, subset=subset)
    assert np.isin(rows, subset).all()
    _, ref_rows = brute_force(x, q, 10, rows=subset)
    assert recall_at(rows, ref_rows) >= 0.9
    # a subset smaller than k comes back padded, all of it found
    few = np.array([3, 500, 2999])
    scores, ids, rows = index.search(q[:2], 5, subset=few)
    assert (np.sort(rows[:, :3], axis=1) == few).all() and (rows[:, 3:] == -1).all()
    assert np.isneginf(scores[:, 3:]).all() and all(len(i) == 3 for i in ids)


def test_budget_too_small_for_refine_codes_keeps_pq_alone(data, caplog):
    x, q = data
    pq_only_mb = index_bytes(len(x), x.shape[1], KIND_IVFPQ) / 2**20
    with caplog.at_level("WARNING", logger="mmembed.search.index"):
        index = PostIndex.build(x, ids_for(len(x)), flat_max=1000,
                                memory_budget_mb=pq_only_mb * 1.01, use_gpu=False)
    assert index.kind == KIND_IVFPQ and index.refine is None
    assert isinstance(faiss.downcast_index(index.index), faiss.IndexIVFPQ)
    assert "exceeds memory_budget_mb" in caplog.text
    assert index.search(q, 10)[2].shape == (len(q), 10)
    with pytest.raises(ValueError, match="refine must be one of"):
        PostIndex.build(x, ids_for(len(x)), refine="PQ4", use_gpu=False)


def test_vectors_added_in_batches_equal_one_add(data, monkeypatch):
    import mmembed.search.index as index_module

    x, q = data
    whole = PostIndex.build(x, ids_for(len(x)), use_gpu=False).search(q, 10)
    monkeypatch.setattr(index_module, "ADD_BATCH", 7)
    batched = PostIndex.build(x, ids_for(len(x)), use_gpu=False).search(q, 10)
    assert (whole[2] == batched[2]).all()
    x_bad = x.copy()
    x_bad[12, 3] = np.nan
    with pytest.raises(ValueError, match=r"from row 7\) rows \[5\]"):
        PostIndex.build(x_bad, ids_for(len(x)), use_gpu=False)


def test_refine_index_in_a_bundle_loads_with_its_k_factor(tmp_path, data):
    from mmembed.bundle import read_bundle, write_bundle
    from mmembed.fileio import dumps_json

    x, q = data
    index = PostIndex.build(x, ids_for(len(x)), flat_max=1000, nprobe=16, k_factor=12,
                            memory_budget_mb=ivf_flat_budget_mb(x), use_gpu=False)
    files = {"posts.faiss": index.write_index,
             "post_ids.json": dumps_json(index.metadata(), indent=None).encode()}
    target = write_bundle(tmp_path / "bundle", files, config={}, data_fingerprint="x",
                          metrics={})
    loaded = read_bundle(target).index()
    assert (loaded.kind, loaded.nprobe, loaded.k_factor) == (KIND_IVFPQ, 16, 12)
    assert isinstance(faiss.downcast_index(loaded.index), faiss.IndexRefine)
    (a, ids_a, rows_a), (b, ids_b, rows_b) = index.search(q, 10), loaded.search(q, 10)
    np.testing.assert_array_equal(rows_a, rows_b)
    np.testing.assert_array_equal(a, b)
    assert ids_a == ids_b
