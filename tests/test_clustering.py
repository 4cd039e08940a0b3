"""Content clusterers (kmeans, gmm, pam, lda) and cluster metrics on planted blobs."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mmembed.communities.clustering import (
    METHODS,
    GMMClusterer,
    KMeansClusterer,
    LDAClusterer,
    PAMClusterer,
    choose_k,
    load_clusterer,
    make_clusterer,
    student_t_soft_assign,
)
from mmembed.communities.metrics import (
    cluster_metrics,
    profile_tv_error,
    silhouette,
    stability,
    subsample_nmi,
    truth_metrics,
)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "cluster"
N_TOPICS, PER_TOPIC, DIM = 6, 100, 16


def make_blobs(per=PER_TOPIC, k=N_TOPICS, dim=DIM, seed=0, spread=8.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, dim)) * spread
    truth = np.repeat(np.arange(k), per)
    latent = (centers[truth] + rng.normal(size=(k * per, dim))).astype(np.float32)
    return latent, truth


def make_posts(truth, seed=0):
    """Posts with captions from disjoint per-topic vocabularies and one hashtag of the topic."""
    rng = np.random.default_rng(seed)
    vocab = [[f"topic{t}word{j}" for j in range(20)] for t in range(N_TOPICS)]
    return [SimpleNamespace(caption=" ".join(rng.choice(vocab[t], 12)) + " the and",
                            hashtags=[str(rng.choice(vocab[t]))]) for t in truth]


@pytest.fixture(scope="module")
def blobs():
    return make_blobs()


@pytest.fixture(scope="module")
def posts(blobs):
    return make_posts(blobs[1])


FIT_KWARGS = {
    "kmeans": {},
    "gmm": {},
    "pam": {},
    "lda": {"max_iter": 10, "n_init": 2},
}


@pytest.fixture(scope="module")
def fitted(blobs, posts):
    """One fit per method at k=6, shared by the tests below (fits are the slow part)."""
    cache = {}

    def get(method):
        if method not in cache:
            clusterer = make_clusterer(method, k=N_TOPICS, seed=0, **FIT_KWARGS[method])
            cache[method] = clusterer.fit(blobs[0], posts)
        return cache[method]

    return get


# --------------------------------------------------------------------------- every method

@pytest.mark.parametrize("method", sorted(METHODS))
def test_fixed_k_recovers_planted_topics(method, fitted, blobs):
    clusterer = fitted(method)
    assert clusterer.n_clusters_ == N_TOPICS and clusterer.k_curve_ is None
    assert clusterer.labels_.shape == (len(blobs[1]),) and clusterer.labels_.dtype == np.int64
    assert truth_metrics(clusterer.labels_, blobs[1])["nmi"] >= 0.9


@pytest.mark.parametrize("method", sorted(METHODS))
def test_soft_assign_is_a_distribution_matching_labels(method, fitted, blobs):
    clusterer = fitted(method)
    q = clusterer.soft_assign(blobs[0])
    assert q.shape == (len(blobs[1]), N_TOPICS)
    assert np.isfinite(q).all() and (q >= 0).all()
    np.testing.assert_allclose(q.sum(1), 1.0, atol=1e-9)
    assert (q.argmax(1) == clusterer.labels_).mean() >= 0.95

    # any new latent, including absurdly far ones, still gets a finite distribution
    far = np.random.default_rng(1).normal(scale=1e6, size=(7, DIM)).astype(np.float32)
    q_far = clusterer.soft_assign(np.vstack([far, np.zeros((1, DIM), np.float32)]))
    assert np.isfinite(q_far).all()
    np.testing.assert_allclose(q_far.sum(1), 1.0, atol=1e-9)
    assert clusterer.soft_assign(np.zeros((0, DIM), np.float32)).shape == (0, N_TOPICS)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_state_round_trip_without_pickle(method, fitted, blobs, tmp_path):
    clusterer = fitted(method)
    arrays, params = clusterer.state()
    assert all(isinstance(a, np.ndarray) and not a.dtype.hasobject for a in arrays.values())
    params = json.loads(json.dumps(params))  # JSON-able, and what the bundle reads back
    np.savez(tmp_path / "clusters.npz", **arrays)
    with np.load(tmp_path / "clusters.npz", allow_pickle=False) as npz:
        loaded = load_clusterer({key: npz[key] for key in npz.files}, params)
    assert type(loaded) is type(clusterer) and loaded.n_clusters_ == N_TOPICS
    new = make_blobs(per=5, seed=7)[0]
    for latent in (blobs[0], new):
        np.testing.assert_array_equal(loaded.soft_assign(latent), clusterer.soft_assign(latent))
    again_arrays, again_params = loaded.state()
    assert again_params["params"] == params["params"]
    assert again_params["params"] == json.loads(json.dumps(clusterer.get_params()))
    assert set(again_arrays) == set(arrays)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_clusters_are_numbered_canonically(method, fitted, blobs):
    """Cluster j holds the earliest post not in clusters 0..j-1, whatever order the library
    fitted them in. The blobs are listed topic by topic, so the labels are the topics; the
    saved state and the columns of q follow the same numbering."""
    clusterer = fitted(method)
    np.testing.assert_array_equal(clusterer.labels_, blobs[1])
    loaded = load_clusterer(*clusterer.state())
    assert (loaded.soft_assign(blobs[0]).argmax(1) == blobs[1]).mean() >= 0.95
    if method == "pam":  # each medoid is a post of its own cluster
        np.testing.assert_array_equal(blobs[1][clusterer.medoid_indices_], np.arange(N_TOPICS))


def test_same_partition_gives_the_same_labels_whatever_the_seed(blobs):
    order = np.random.default_rng(3).permutation(len(blobs[1]))
    x, truth = blobs[0][order], blobs[1][order]
    _, first = np.unique(truth, return_index=True)
    by_first_post = np.argsort(np.argsort(first))[truth]  # topics numbered by first appearance
    for seed in (0, 1):
        labels = KMeansClusterer(k=N_TOPICS, seed=seed, n_init=1).fit(x).labels_
        np.testing.assert_array_equal(labels, by_first_post)


def test_empty_clusters_come_last_by_their_closest_post():
    """Two centroids that no post is nearest to: ordered by the post most assigned to them,
    then by how much, the same whichever order the fit listed them in."""
    centroids = np.array([[100.0, 100.0], [0.0, 0.0], [50.0, 50.0], [10.0, 10.0]], np.float32)
    x = np.array([[10, 10], [0, 0], [1, 1], [11, 11]], np.float32)
    _, params = KMeansClusterer(k=4, n_init=1).fit(np.vstack([x, x + 1.0])).state()
    orders = []
    for perm in ([0, 1, 2, 3], [2, 3, 0, 1]):
        arrays = {"centroids": centroids[perm], "scale": np.array([1.0])}
        clusterer = load_clusterer(arrays, params)
        clusterer.labels_ = clusterer.soft_assign(x).argmax(1)
        orders.append(np.asarray(perm)[clusterer.canonical_order(x)])
    np.testing.assert_array_equal(orders[0], [3, 1, 2, 0])
    np.testing.assert_array_equal(orders[1], orders[0])


@pytest.mark.parametrize("method", sorted(METHODS))
def test_soft_assign_rejects_bad_latents(method, fitted):
    clusterer = fitted(method)
    with pytest.raises(ValueError, match="dimension"):
        clusterer.soft_assign(np.zeros((2, DIM + 1), np.float32))
    bad = np.zeros((3, DIM), np.float32)
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clusterer.soft_assign(bad)


@pytest.mark.parametrize("cls", [KMeansClusterer, GMMClusterer, PAMClusterer])
def test_auto_k_finds_the_six_blobs(cls, blobs):
    clusterer = cls(k="auto", k_range=(3, 12), seed=0).fit(blobs[0])
    assert clusterer.n_clusters_ == N_TOPICS
    assert sorted(clusterer.k_curve_) == list(range(3, 13))
    assert all(math.isfinite(v) for v in clusterer.k_curve_.values())


def test_auto_upper_end_of_k_range_grows_with_the_corpus(blobs):
    from mmembed.communities.clustering.base import auto_k_max

    assert [auto_k_max(n) for n in (8, 380, 2700)] == [2, 14, 37]
    assert auto_k_max(8, low=3) == 3
    x = blobs[0]
    clusterer = KMeansClusterer(k="auto", k_range=[3, "auto"], seed=0).fit(x)
    assert max(clusterer.k_curve_) == auto_k_max(len(x)) and clusterer.n_clusters_ == N_TOPICS
    with pytest.raises(ValueError, match="'auto'"):
        KMeansClusterer(k_range=[3, "many"])


def test_unfitted_and_unknown_methods_fail_clearly():
    with pytest.raises(RuntimeError, match="not fitted"):
        KMeansClusterer(k=3).soft_assign(np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="unknown clustering method"):
        make_clusterer("hdbscan")
    with pytest.raises(ValueError, match="does not know"):
        load_clusterer({}, {"method": "hdbscan"})
    with pytest.raises(ValueError, match="not 'gmm'"):
        GMMClusterer.from_state({}, {"method": "kmeans"})


@pytest.mark.parametrize("k, expected", [("auto", None), (None, None), ("AUTO", None), (6, 6),
                                         (np.int64(4), 4), ("5", 5)])
def test_k_accepts_int_or_auto(k, expected):
    from mmembed.communities.clustering.base import _check_k

    KMeansClusterer(k=k)  # accepted
    assert _check_k(k) == expected


@pytest.mark.parametrize("k", [1, 0, -3, True, 2.5, "many"])
def test_k_rejects_nonsense(k):
    with pytest.raises(ValueError, match="k must be"):
        KMeansClusterer(k=k)


def test_fixed_k_needs_enough_posts():
    with pytest.raises(ValueError, match="need more than"):
        KMeansClusterer(k=5).fit(np.zeros((5, 2), np.float32))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_hydra_configs_build_each_method(name):
    cfg = OmegaConf.create({"seed": 3, "cluster": OmegaConf.load(CONF_DIR / f"{name}.yaml")})
    clusterer = instantiate(cfg.cluster)
    assert isinstance(clusterer, METHODS[name])
    # k-means (the default) searches up to a K that grows with the corpus; the others to 12.
    top = "auto" if name == "kmeans" else 12
    assert clusterer.k == "auto" and list(clusterer.k_range) == [3, top] and clusterer.seed == 3


# --------------------------------------------------------------------------- k-means

def test_kmeans_trains_on_every_point():
    """faiss subsamples to 256 points per centroid by default; ours must not."""
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(10_000, 8)).astype(np.float32)
    clusterer = KMeansClusterer(k=2, n_init=1, max_iter=20, seed=0).fit(latent)
    assert clusterer.max_points_per_centroid_ * 2 >= len(latent)
    # faiss's objective is the sum of squared distances over the points it trained on: with a
    # 512-point subsample it would be ~5% of the full-data inertia, not ~100%.
    d2 = ((latent[:, None, :] - clusterer.centroids_[None]) ** 2).sum(-1).min(1)
    assert clusterer.train_objective_ == pytest.approx(d2.sum(), rel=0.02)


def test_kmeans_spherical_clusters_directions():
    rng = np.random.default_rng(0)
    directions = np.eye(4)[np.repeat(np.arange(4), 50)]
    scales = rng.uniform(0.5, 20.0, size=(200, 1))
    latent = (directions * scales + rng.normal(scale=0.05, size=(200, 4))).astype(np.float32)
    clusterer = KMeansClusterer(k=4, spherical=True, seed=0).fit(latent)
    assert truth_metrics(clusterer.labels_, np.repeat(np.arange(4), 50))["nmi"] > 0.99
    np.testing.assert_allclose(np.linalg.norm(clusterer.centroids_, axis=1), 1.0, atol=1e-4)


def test_student_t_kernel_formula():
    z = np.zeros((1, 2))
    centroids = np.array([[1.0, 0.0], [0.0, 2.0]])  # squared distances 1 and 4
    np.testing.assert_allclose(student_t_soft_assign(z, centroids, alpha=1.0),
                               [[(1 / 2) / (1 / 2 + 1 / 5), (1 / 5) / (1 / 2 + 1 / 5)]])
    a, b = (1 + 1 / 2) ** -1.5, (1 + 4 / 2) ** -1.5
    np.testing.assert_allclose(student_t_soft_assign(z, centroids, alpha=2.0),
                               [[a / (a + b), b / (a + b)]])


def test_choose_k_curve_and_custom_criterion(blobs):
    latent = blobs[0]

    def fit_fn(k):
        return KMeansClusterer(k=k, n_init=1).fit(latent)

    best_k, curve, best = choose_k(latent, fit_fn, (4, 8))
    assert best_k == N_TOPICS and sorted(curve) == [4, 5, 6, 7, 8] and best.n_clusters_ == 6
    # a custom criterion, lower is better: smallest k wins
    best_k, _, _ = choose_k(latent, fit_fn, (4, 8), criterion=lambda r: r.n_clusters_,
                            higher_is_better=False)
    assert best_k == 4
    with pytest.raises(ValueError, match="no candidate"):
        choose_k(latent[:3], fit_fn, (4, 8))



def test_choose_k_with_fit_seeds_scores_the_mean_and_keeps_the_best_fit(blobs):
    latent = blobs[0]
    calls = []

    def fit_fn(k, seed):
        calls.append((k, seed))
        return SimpleNamespace(labels_=np.zeros(len(latent)), k=k, seed=seed)

    # the score of a fit is its seed at k = 5, else 0: k = 5 wins on its mean (1 + 2 + 3) / 3
    def criterion(fit):
        return float(fit.seed) if fit.k == 5 else 0.0

    best_k, curve, best = choose_k(latent, fit_fn, (4, 6), criterion=criterion,
                                   fit_seeds=[1, 2, 3])
    assert calls == [(k, s) for k in (4, 5, 6) for s in (1, 2, 3)]
    assert best_k == 5 and curve == {4: 0.0, 5: 2.0, 6: 0.0}
    assert best.seed == 3  # the best of k = 5's fits
    # NaN fits never count: k = 4 has one finite fit and wins on it alone
    best_k, curve, best = choose_k(
        latent, fit_fn, (4, 5), fit_seeds=[0, 1],
        criterion=lambda f: (9.0 if f.seed else math.nan) if f.k == 4 else 1.0)
    assert best_k == 4 and curve[4] == 9.0 and best.seed == 1


def test_k_seeds_steadies_auto_k_and_is_validated(blobs):
    latent = blobs[0]
    one = KMeansClusterer(k="auto", k_range=(3, 9), seed=0, k_seeds=1).fit(latent)
    five = KMeansClusterer(k="auto", k_range=(3, 9), seed=0, k_seeds=5).fit(latent)
    assert five.n_clusters_ == N_TOPICS == one.n_clusters_
    # each K's score is the mean silhouette of its fits with seeds 0..4
    assert sorted(five.k_curve_) == list(range(3, 10))
    for k in (4, 8):
        fits = [KMeansClusterer(k=k, seed=s).fit(latent) for s in range(5)]
        assert five.k_curve_[k] == pytest.approx(
            np.mean([silhouette(latent, f.labels_) for f in fits]), abs=1e-9)
    assert five.get_params()["k_seeds"] == 5
    with pytest.raises(ValueError, match="k_seeds"):
        KMeansClusterer(k_seeds=0)
    with pytest.raises(ValueError, match="k_seeds"):
        GMMClusterer(k_seeds=1.5)

# --------------------------------------------------------------------------- PAM

def test_pam_medoids_are_fitted_posts(fitted, blobs):
    pam = fitted("pam")
    np.testing.assert_array_equal(pam.medoids_, blobs[0][pam.medoid_indices_])
    assert len(set(blobs[1][pam.medoid_indices_])) == N_TOPICS


def test_pam_samples_above_max_points(blobs):
    pam = PAMClusterer(k=N_TOPICS, max_points=200, seed=0).fit(blobs[0])
    assert pam.labels_.shape == (len(blobs[0]),)
    assert truth_metrics(pam.labels_, blobs[1])["nmi"] >= 0.9


# --------------------------------------------------------------------------- LDA

def test_lda_needs_matching_posts(blobs, posts):
    with pytest.raises(ValueError, match="pass the posts"):
        LDAClusterer(k=3).fit(blobs[0])
    with pytest.raises(ValueError, match="one post per row"):
        LDAClusterer(k=3).fit(blobs[0], posts[:-1])
    empty = [SimpleNamespace(caption="the and", hashtags=[]) for _ in blobs[0]]
    with pytest.raises(ValueError, match="no usable words"):
        LDAClusterer(k=3).fit(blobs[0], empty)


def test_lda_keeps_hashtags_and_drops_stop_words(fitted):
    vocabulary = set(fitted("lda").vocabulary_.tolist())
    assert any(word.startswith("#topic") for word in vocabulary)
    assert "the" not in vocabulary and "and" not in vocabulary


# --------------------------------------------------------------------------- metrics

def test_cluster_metrics_on_blobs(blobs):
    latent, truth = blobs
    scores = cluster_metrics(latent, truth)
    assert scores["silhouette"] > 0.7 and scores["davies_bouldin"] < 0.5
    assert scores["n_clusters"] == N_TOPICS and scores["calinski_harabasz"] > 0
    single = cluster_metrics(latent, np.zeros(len(latent), int))
    assert math.isnan(single["silhouette"]) and math.isnan(single["davies_bouldin"])


def test_calinski_harabasz_in_blocks_is_scikit_learn_s_score(blobs, monkeypatch):
    from sklearn.metrics import calinski_harabasz_score

    import mmembed.communities.metrics as metrics

    latent, truth = blobs
    monkeypatch.setattr(metrics, "DISPERSION_BLOCK", 7)  # many blocks, one of them partial
    assert metrics.calinski_harabasz(latent, truth) == pytest.approx(
        calinski_harabasz_score(latent, truth), rel=1e-9)
    assert math.isnan(metrics.calinski_harabasz(latent, np.zeros(len(latent), int)))


def test_silhouette_sample_is_seeded(blobs):
    latent, truth = blobs
    a = silhouette(latent, truth, seed=1, sample_size=100)
    assert a == silhouette(latent, truth, seed=1, sample_size=100)
    assert a != silhouette(latent, truth, seed=2, sample_size=100)


def test_stability_is_one_on_blobs(blobs):
    assert stability(KMeansClusterer(k=N_TOPICS), blobs[0]) > 0.99


def test_class_defaults_are_the_configs_defaults():
    """A clusterer built in code behaves as the command line's: same kernel, alpha, ranges."""
    for name, cls in METHODS.items():
        cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / f"{name}.yaml"), resolve=False)
        defaults = cls().get_params()
        for key, expected in cfg.items():
            if key in ("_target_", "seed"):
                continue
            got = list(defaults[key]) if isinstance(defaults[key], tuple) else defaults[key]
            assert got == expected, (name, key, got, expected)


def test_truth_metrics_ignore_cluster_names():
    truth = ["a", "a", "b", "b", "c", "c"]
    assert truth_metrics([2, 2, 0, 0, 1, 1], truth) == pytest.approx({"nmi": 1.0, "ari": 1.0})
    assert truth_metrics([0, 0, 0, 0, 0, 0], truth)["nmi"] == pytest.approx(0.0)


def test_subsample_nmi_shows_the_bias_of_few_posts_on_noisy_clusters():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, 2000)
    labels = np.where(rng.random(2000) < 0.5, truth, rng.integers(0, 10, 2000))  # half noise
    full = truth_metrics(labels, truth)["nmi"]
    # on 50 posts the same clusters score well above their NMI on all 2,000
    assert subsample_nmi(labels, truth, 50, repeats=100) > full + 0.1
    # on all the posts a sample is the whole set
    assert subsample_nmi(labels, truth, 2000, repeats=3) == pytest.approx(full)
    # perfect clusters are perfect at any size
    assert subsample_nmi(truth, truth, 50, repeats=20) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="between 1 and the 2000 posts"):
        subsample_nmi(labels, truth, 2001)


def test_profile_tv_error_maps_clusters_to_topics():
    labels = [0, 0, 1, 1]
    topics = ["b", "b", "a", "a"]  # cluster 0 is topic b, cluster 1 is topic a
    result = profile_tv_error(
        {"exact": [0.3, 0.7], "off": [0.3, 0.7], "profile_only": [1.0, 0.0]},
        {"exact": {"a": 0.7, "b": 0.3}, "off": {"a": 0.5, "b": 0.5}, "truth_only": {"a": 1}},
        labels, topics)
    assert result["per_community"]["exact"] == pytest.approx(0.0)
    # 0.5 * (|0.7 - 0.5| + |0.3 - 0.5|)
    assert result["per_community"]["off"] == pytest.approx(0.2)
    assert result["mean"] == pytest.approx(0.1) and result["max"] == pytest.approx(0.2)
    assert result["missing"] == ["profile_only", "truth_only"] and result["topics"] == ["a", "b"]
    json.dumps(result)


def test_profile_tv_error_impure_and_empty_clusters():
    # cluster 0: 3 a + 1 b -> P(a|0) = 0.75; cluster 1: all b; cluster 2: no posts -> marginal
    labels = np.array([0, 0, 0, 0, 1, 1])
    topics = ["a", "a", "a", "b", "b", "b"]
    result = profile_tv_error({"x": [0.5, 0.5, 0.0], "y": [0.0, 0.0, 1.0]},
                              {"x": {"a": 1.0}, "y": {"a": 0.5, "b": 0.5, "c": 0.0}},
                              labels, topics)
    # x: p(a) = 0.5 * 0.75 = 0.375, p(b) = 0.625 -> TV = 0.5 * (0.625 + 0.625)
    assert result["per_community"]["x"] == pytest.approx(0.625)
    # y: the empty cluster borrows P(topic) = (0.5, 0.5, 0) -> TV 0
    assert result["per_community"]["y"] == pytest.approx(0.0)
    assert result["topic_given_cluster"][2] == pytest.approx([0.5, 0.5, 0.0])


def test_profile_tv_error_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="no community"):
        profile_tv_error({"x": [1.0]}, {"y": {"a": 1.0}}, [0], ["a"])
    with pytest.raises(ValueError, match="cover 2 clusters"):
        profile_tv_error({"x": [0.5, 0.5]}, {"x": {"a": 1.0}}, [0, 2], ["a", "a"])
    with pytest.raises(ValueError, match="one label per"):
        profile_tv_error({"x": [0.5, 0.5]}, {"x": {"a": 1.0}}, [0, 1], ["a"])


@pytest.mark.parametrize("method", ["kmeans", "pam"])
def test_scaled_kernel_does_not_depend_on_the_latent_scale(method, blobs):
    latent = blobs[0]
    small = make_clusterer(method, k=N_TOPICS, seed=0).fit(latent)
    big = make_clusterer(method, k=N_TOPICS, seed=0).fit(latent * 100.0)
    np.testing.assert_allclose(small.soft_assign(latent), big.soft_assign(latent * 100.0),
                               atol=1e-6)
    # a raw (unscaled) Cauchy kernel would flatten out on the small latents
    assert small.soft_assign(latent).max(axis=1).mean() > 0.8


def test_multivariate_kernel_formula():
    z = np.zeros((1, 2))
    centroids = np.array([[1.0, 0.0], [0.0, 2.0]])  # squared distances 1 and 4, d = 2
    # exponent (alpha + d)/2 = 1.5 at alpha = 1, per-dimension scale 1
    a, b = (1 + 1) ** -1.5, (1 + 4) ** -1.5
    np.testing.assert_allclose(student_t_soft_assign(z, centroids, alpha=1.0,
                                                     kernel="multivariate"),
                               [[a / (a + b), b / (a + b)]])
    with pytest.raises(ValueError, match="kernel"):
        student_t_soft_assign(z, centroids, kernel="gaussian")
    with pytest.raises(ValueError, match="kernel"):
        KMeansClusterer(k=2, kernel="gaussian")


@pytest.mark.parametrize("method", ["kmeans", "pam"])
def test_multivariate_kernel_profiles_count_well_separated_clusters(method):
    """In a 32-d latent with clusters ~2 radii apart (no post is ever assigned across), the mean
    q of a group must equal its share of posts per cluster. DEC's 1-d kernel smears it."""
    rng = np.random.default_rng(0)
    k, dim, per = 6, 32, 150
    centers = rng.normal(size=(k, dim)) * 1.8  # centres ≈ 14 apart, radius √32 ≈ 5.7
    truth = np.repeat(np.arange(k), per)
    latent = (centers[truth] + rng.normal(size=(k * per, dim))).astype(np.float32)
    group = rng.random(k * per) < np.where(truth == 0, 0.8, 0.05)  # a community of mostly topic 0
    shares = {}
    for kernel in ("multivariate", "dec"):
        c = make_clusterer(method, k=k, seed=0, alpha=5.0, kernel=kernel).fit(latent)
        assert truth_metrics(c.labels_, truth)["nmi"] > 0.99
        counts = np.bincount(c.labels_[group], minlength=k) / group.sum()
        profile = c.soft_assign(latent[group]).mean(axis=0)
        shares[kernel] = 0.5 * np.abs(profile - counts).sum()
    assert shares["multivariate"] < 0.02
    assert shares["dec"] > 5 * shares["multivariate"]


@pytest.mark.parametrize("method", ["kmeans", "pam"])
def test_multivariate_kernel_is_scale_free_and_round_trips(method, blobs, tmp_path):
    latent = blobs[0]
    small = make_clusterer(method, k=N_TOPICS, seed=0, kernel="multivariate").fit(latent)
    big = make_clusterer(method, k=N_TOPICS, seed=0, kernel="multivariate").fit(latent * 100.0)
    np.testing.assert_allclose(small.soft_assign(latent), big.soft_assign(latent * 100.0),
                               atol=1e-6)
    arrays, params = small.state()
    assert params["params"]["kernel"] == "multivariate"
    np.savez(tmp_path / "c.npz", **arrays)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as loaded:
        again = load_clusterer(dict(loaded), json.loads(json.dumps(params)))
    np.testing.assert_allclose(again.soft_assign(latent), small.soft_assign(latent))


def test_an_unknown_kernel_is_refused_with_the_choices():
    from mmembed.communities.clustering import PAMClusterer, student_t_soft_assign

    for make in (lambda: KMeansClusterer(k=2, kernel="gauss"),
                 lambda: PAMClusterer(k=2, kernel="gauss"),
                 lambda: student_t_soft_assign(np.zeros((1, 2)), np.zeros((2, 2)),
                                               kernel="gauss")):
        with pytest.raises(ValueError, match=r"kernel must be one of \('dec', 'multivariate'\)"):
            make()


def test_soft_assign_and_radius_in_row_blocks_equal_the_whole_array(monkeypatch):
    from mmembed.communities.clustering import base

    rng = np.random.default_rng(3)
    x = rng.normal(size=(1000, 16)).astype(np.float32)
    centres = rng.normal(size=(5, 16)).astype(np.float32)
    labels = rng.integers(0, 5, size=1000)
    whole = [base.student_t_log_soft_assign(x, centres, 5.0, 0.7, kernel)
             for kernel in ("dec", "multivariate")]
    radius = base.cluster_radius(x, centres, labels)
    monkeypatch.setattr(base, "SOFT_ASSIGN_BLOCK", 64)  # 1000 rows: 15 full blocks and a part
    for kernel, expected in zip(("dec", "multivariate"), whole):
        blocked = base.student_t_log_soft_assign(x, centres, 5.0, 0.7, kernel)
        np.testing.assert_allclose(blocked, expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.exp(blocked).sum(1), 1.0, atol=1e-12)
    assert base.cluster_radius(x, centres, labels) == pytest.approx(radius, rel=1e-12)
    assert base.student_t_log_soft_assign(x[:0], centres).shape == (0, 5)
