"""Ranking math: fit divergences (direction, smoothing, bounds), contributions, the score blend,
percentiles, expected likes, rank order."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mmembed.ranking.divergence import METHODS, fit, fit_contributions, kl, smooth
from mmembed.ranking.score import expected_likes, percentile_among, rank_order, score, standardize

LN2 = math.log(2.0)
FAST = settings(max_examples=60, deadline=None)

# --------------------------------------------------------------------------- strategies

_mass = st.one_of(st.just(0.0), st.floats(0.0, 1.0, allow_subnormal=False))


@st.composite
def distributions(draw, k=None, n=None):
    """A distribution over k clusters (``[k]``) or n of them (``[n, k]``), zeros included."""
    k = draw(st.integers(1, 6)) if k is None else k
    rows = []
    for _ in range(1 if n is None else n):
        w = np.array(draw(st.lists(_mass, min_size=k, max_size=k)))
        assume(w.sum() > 1e-6)
        rows.append(w / w.sum())
    return rows[0] if n is None else np.stack(rows)


@st.composite
def profile_and_photos(draw):
    k = draw(st.integers(1, 6))
    n = draw(st.integers(1, 5))
    return draw(distributions(k=k)), draw(distributions(k=k, n=n))


methods = st.sampled_from(METHODS)
epsilons = st.sampled_from([1e-6, 1e-3, 1e-2, 0.1])

# --------------------------------------------------------------------------- smooth / kl


def test_smooth_formula_and_shapes():
    p = np.array([1.0, 0.0, 0.0])
    eps = 1e-3
    np.testing.assert_allclose(smooth(p, eps), (p + eps) / (1 + 3 * eps))
    batch = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    s = smooth(batch, eps)
    assert s.shape == (2, 3)
    np.testing.assert_allclose(s.sum(axis=1), 1.0)
    assert (s > 0).all()
    np.testing.assert_array_equal(smooth(batch, 0.0), batch)
    with pytest.raises(ValueError, match="eps"):
        smooth(p, -1e-3)


def test_kl_zero_conventions():
    assert kl([0.5, 0.5, 0.0], [0.5, 0.25, 0.25]) == pytest.approx(0.5 * math.log(2.0))
    assert kl([0.5, 0.5], [1.0, 0.0]) == math.inf
    assert kl([1.0, 0.0], [1.0, 0.0]) == 0.0


# --------------------------------------------------------------------------- fit properties


@FAST
@given(profile_and_photos(), methods, epsilons)
def test_fit_nonnegative_and_finite_with_zeros(pq, method, eps):
    p, q = pq
    f = fit(p, q, method, eps)
    assert f.shape == (q.shape[0],)
    assert np.isfinite(f).all()
    assert (f >= 0).all()


@FAST
@given(distributions(), methods, st.sampled_from([0.0, 1e-3, 0.1]))
def test_fit_zero_for_equal_distributions(p, method, eps):
    assert fit(p, p, method, eps)[0] == pytest.approx(0.0, abs=1e-9)


@FAST
@given(profile_and_photos(), methods, epsilons)
def test_contributions_sum_to_fit(pq, method, eps):
    p, q = pq
    c = fit_contributions(p, q, method, eps)
    assert c.shape == q.shape
    np.testing.assert_allclose(c.sum(axis=1), fit(p, q, method, eps), rtol=0, atol=1e-12)


@FAST
@given(profile_and_photos(), st.sampled_from([0.0, 1e-3, 0.1]))
def test_js_symmetric_bounded_and_terms_nonnegative(pq, eps):
    p, q = pq
    js = fit(p, q, "js", eps)
    swapped = np.array([fit(row, p, "js", eps)[0] for row in q])
    np.testing.assert_allclose(js, swapped, rtol=0, atol=1e-12)
    assert (js <= LN2 + 1e-12).all()
    assert (fit_contributions(p, q, "js", eps) >= -1e-15).all()


@FAST
@given(profile_and_photos(), epsilons)
def test_kl_methods_match_explicit_kl_of_smoothed(pq, eps):
    p, q = pq
    np.testing.assert_allclose(fit(p, q, "kl_pq", eps), kl(smooth(p, eps), smooth(q, eps)),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fit(p, q, "kl_qp", eps), kl(smooth(q, eps), smooth(p, eps)),
                               rtol=1e-12, atol=1e-12)


def test_js_bound_reached_for_disjoint_supports():
    assert fit([1.0, 0.0], [0.0, 1.0], "js", eps=0.0)[0] == pytest.approx(LN2, abs=1e-15)


def test_unsmoothed_kl_can_be_infinite():
    assert fit([0.5, 0.5], [1.0, 0.0], "kl_pq", eps=0.0)[0] == math.inf


# --------------------------------------------------------------------------- direction

EPS = 1e-3
P_A = np.array([1.0, 0.0, 0.0])  # community posts cluster A only
Q_AB = np.array([0.5, 0.5, 0.0])  # photo 1: half A, half B
Q_B = np.array([0.0, 1.0, 0.0])  # photo 2: all B


def test_direction_kl_pq_is_community_as_reference():
    q = np.stack([Q_AB, Q_B])
    ps, qs = smooth(P_A, EPS), smooth(q, EPS)
    explicit_pq = np.array([np.sum(ps * np.log(ps / row)) for row in qs])
    explicit_qp = np.array([np.sum(row * np.log(row / ps)) for row in qs])
    np.testing.assert_allclose(fit(P_A, q, "kl_pq", EPS), explicit_pq, rtol=1e-12)
    np.testing.assert_allclose(fit(P_A, q, "kl_pq", EPS), kl(ps, qs), rtol=1e-12)
    # swapping the arguments of kl is the other method
    np.testing.assert_allclose(fit(P_A, q, "kl_qp", EPS), explicit_qp, rtol=1e-12)
    np.testing.assert_allclose(fit(P_A, q, "kl_qp", EPS), kl(qs, ps), rtol=1e-12)
    # default is kl_pq
    np.testing.assert_array_equal(fit(P_A, q), fit(P_A, q, "kl_pq"))
    # both directions prefer the photo that shares the community's cluster
    for method in METHODS:
        f = fit(P_A, q, method, EPS)
        assert f[0] < f[1], method
    # kl_pq: photo 1 misses half of the community's mass on A -> about log 2 (less smoothing)
    assert fit(P_A, Q_AB, "kl_pq", EPS)[0] == pytest.approx(LN2, rel=0.02)
    # kl_qp: photo 1 puts half its mass on B, which the community never posts -> ~0.5 log(1/eps)
    assert fit(P_A, Q_AB, "kl_qp", EPS)[0] > 3 * fit(P_A, Q_AB, "kl_pq", EPS)[0]
    # the contributions name the cluster that drives the fit: A for kl_pq, B for kl_qp
    assert np.argmax(fit_contributions(P_A, Q_AB, "kl_pq", EPS)[0]) == 0
    assert np.argmax(fit_contributions(P_A, Q_AB, "kl_qp", EPS)[0]) == 1


def test_directions_disagree_on_ranking():
    """Community posts A and B equally. Photo "a" is all A (one of the community's modes);
    photo "b" covers A and B but also puts 20% on C, which the community never posts.
    Mode-covering kl_pq prefers b (a misses B entirely); mode-seeking kl_qp prefers a
    (b has mass where the community has none)."""
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([[1.0, 0.0, 0.0], [0.4, 0.4, 0.2]])
    pq = fit(p, q, "kl_pq", EPS)
    qp = fit(p, q, "kl_qp", EPS)
    assert pq[1] < pq[0]  # kl_pq ranks b first
    assert qp[0] < qp[1]  # kl_qp ranks a first
    assert list(rank_order(-pq)) == [2, 1]
    assert list(rank_order(-qp)) == [1, 2]


def test_fit_accepts_single_photo_and_float32_rows():
    q32 = np.array([[0.1, 0.2, 0.7]], dtype=np.float32)
    f = fit([0.2, 0.3, 0.5], q32)
    assert f.shape == (1,) and f.dtype == np.float64
    np.testing.assert_allclose(fit([0.2, 0.3, 0.5], q32[0]), f)


@pytest.mark.parametrize(
    "profile, q, method, match",
    [
        ([0.5, 0.5], [[0.5, 0.5]], "kl", "unknown fit method"),
        ([0.5, 0.5], [[0.2, 0.3, 0.5]], "kl_pq", "shape"),
        ([[0.5, 0.5]], [[0.5, 0.5]], "kl_pq", "1-D"),
        ([1.5, -0.5], [[0.5, 0.5]], "kl_pq", "negative"),
        ([0.5, 0.5], [[0.5, 0.6]], "kl_pq", "sum to 1"),
        ([0.5, 0.5], [[np.nan, 0.5]], "kl_pq", "NaN"),
    ],
)
def test_fit_rejects_bad_input(profile, q, method, match):
    with pytest.raises(ValueError, match=match):
        fit(profile, q, method)


# --------------------------------------------------------------------------- standardize / score

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False)
vectors = st.lists(finite, min_size=2, max_size=12).map(np.array)


def test_standardize_basic_and_constant():
    z = standardize([1.0, 2.0, 3.0])
    np.testing.assert_allclose(z, [-math.sqrt(1.5), 0.0, math.sqrt(1.5)])
    np.testing.assert_array_equal(standardize([0.1, 0.1, 0.1]), 0.0)  # rounding noise too
    np.testing.assert_array_equal(standardize([7.0]), [0.0])
    assert standardize([]).shape == (0,)
    with pytest.raises(ValueError, match="NaN or inf"):
        standardize([1.0, math.inf])


@FAST
@given(vectors)
def test_standardize_mean_zero_std_one(x):
    assume(np.std(x) > 1e-6 * max(1.0, np.max(np.abs(x))))
    z = standardize(x)
    assert abs(z.mean()) < 1e-9
    assert abs(z.std() - 1.0) < 1e-9


coarse = st.integers(-1000, 1000).map(lambda i: i / 100)  # distinct values differ by >= 0.01


@FAST
@given(st.integers(2, 10).flatmap(lambda n: st.tuples(
    st.lists(coarse, min_size=n, max_size=n), st.lists(coarse, min_size=n, max_size=n))))
def test_alpha_endpoints(pair):
    f, e = map(np.array, pair)
    assume(np.ptp(f) > 0 and np.ptp(e) > 0)
    s0 = score(f, e, 0.0)
    s1 = score(f, e, 1.0)
    # alpha = 0: pure fit, lower fit -> higher score (strictly, and equal fits tie)
    np.testing.assert_allclose(s0, -standardize(f), atol=1e-12)
    i, j = np.argmin(f), np.argmax(f)
    assert s0[i] > s0[j]
    assert (np.sign(np.subtract.outer(s0, s0)) == -np.sign(np.subtract.outer(f, f))).all()
    # alpha = 1: pure engagement
    np.testing.assert_allclose(s1, standardize(e), atol=1e-12)
    assert (np.sign(np.subtract.outer(s1, s1)) == np.sign(np.subtract.outer(e, e))).all()


@FAST
@given(
    st.integers(2, 10).flatmap(lambda n: st.tuples(
        st.lists(st.floats(0, 10, allow_subnormal=False), min_size=n, max_size=n),
        st.lists(st.floats(-8, 0, allow_subnormal=False), min_size=n, max_size=n))),
    st.floats(0.0, 1.0),
    st.floats(0.01, 100.0), st.floats(-50.0, 50.0),
    st.floats(0.01, 100.0), st.floats(-50.0, 50.0),
)
def test_score_invariant_to_affine_rescaling(pair, alpha, a, b, c, d):
    f, e = map(np.array, pair)
    assume(np.ptp(f) > 1e-2 and np.ptp(e) > 1e-2)
    np.testing.assert_allclose(score(a * f + b, c * e + d, alpha), score(f, e, alpha),
                               rtol=0, atol=1e-8)


def test_score_blend_example():
    f = np.array([0.1, 0.5, 0.9])  # photo 0 fits best
    e = np.array([-6.0, -5.0, -2.0])  # photo 2 engages best
    assert rank_order(score(f, e, 0.0))[0] == 1
    assert rank_order(score(f, e, 1.0))[2] == 1
    half = score(f, e, 0.5)
    np.testing.assert_allclose(half, 0.5 * -standardize(f) + 0.5 * standardize(e))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, math.nan])
def test_score_rejects_alpha_out_of_range(alpha):
    with pytest.raises(ValueError, match=r"rank\.alpha must be in \[0, 1\]"):
        score([1.0, 2.0], [1.0, 2.0], alpha)


def test_score_rejects_bad_shapes_and_types():
    with pytest.raises(ValueError, match="same length"):
        score([1.0, 2.0], [1.0], 0.5)
    with pytest.raises(TypeError, match="alpha"):
        score([1.0, 2.0], [1.0, 2.0], "0.5")


def test_score_single_candidate_is_zero():
    np.testing.assert_array_equal(score([0.3], [-4.0], 0.5), [0.0])


# --------------------------------------------------------------------------- percentile


def test_percentile_among_edge_cases():
    ref = [1.0, 2.0, 3.0, 4.0]
    np.testing.assert_allclose(percentile_among([0.0, 5.0], ref), [0.0, 100.0])
    np.testing.assert_allclose(percentile_among([2.5], ref), [50.0])
    np.testing.assert_allclose(percentile_among([2.0], ref), [37.5])  # 1 below + half of 1 tie
    np.testing.assert_allclose(percentile_among([3.0, 3.0], [3.0, 3.0, 3.0]), [50.0, 50.0])
    np.testing.assert_allclose(percentile_among([1.0], [1.0]), [50.0])
    np.testing.assert_allclose(percentile_among([-math.inf, math.inf], ref), [0.0, 100.0])
    assert percentile_among(2.5, ref).shape == ()
    assert percentile_among([], ref).shape == (0,)
    with pytest.raises(ValueError, match="non-empty"):
        percentile_among([1.0], [])
    with pytest.raises(ValueError, match="NaN"):
        percentile_among([math.nan], ref)


@FAST
@given(st.lists(finite, max_size=8), st.lists(finite, min_size=1, max_size=20))
def test_percentile_matches_definition_and_is_monotone(values, reference):
    ref = np.array(reference)
    got = percentile_among(values, ref)
    for v, pct in zip(values, got):
        expected = 100.0 * (np.sum(ref < v) + 0.5 * np.sum(ref == v)) / ref.size
        assert pct == pytest.approx(expected)
        assert 0.0 <= pct <= 100.0
    order = np.argsort(values)
    assert (np.diff(got[order]) >= 0).all()


# --------------------------------------------------------------------------- expected likes


def test_expected_likes():
    np.testing.assert_allclose(expected_likes(math.log(0.03), 10_000), 300.0)
    np.testing.assert_allclose(expected_likes([0.0, math.log(0.5)], [100, 100]), [100.0, 50.0])
    np.testing.assert_allclose(expected_likes([math.log(0.01)], [[10.0], [20.0]]),
                               [[0.1], [0.2]])  # broadcasts
    assert math.isnan(expected_likes(math.log(0.03), math.nan))  # unknown followers
    with pytest.raises(ValueError, match="followers"):
        expected_likes(0.0, -1.0)


def test_expected_likes_inverts_engagement_target():
    likes, comments, followers = 480.0, 19.0, 12_000.0
    e = math.log((likes + comments + 1.0) / followers)
    assert expected_likes(e, followers) == pytest.approx(likes + comments + 1.0)


# --------------------------------------------------------------------------- rank order


def test_rank_order():
    np.testing.assert_array_equal(rank_order([0.2, 0.9, -1.0]), [2, 1, 3])
    np.testing.assert_array_equal(rank_order([1.0, 1.0, 2.0, 1.0]), [2, 3, 1, 4])  # stable
    np.testing.assert_array_equal(rank_order([math.nan, -math.inf, 0.0]), [3, 2, 1])
    assert rank_order([]).shape == (0,)


@FAST
@given(st.lists(st.floats(-5, 5, allow_subnormal=False), max_size=15))
def test_rank_order_is_a_permutation_sorting_best_first(s):
    ranks = rank_order(s)
    assert sorted(ranks.tolist()) == list(range(1, len(s) + 1))
    by_rank = np.asarray(s)[np.argsort(ranks)]
    assert (np.diff(by_rank) <= 0).all()


def _case(fit, engagement, relevance):
    from mmembed.ranking.blend import Case
    from mmembed.ranking.score import Reference

    fit, engagement = np.asarray(fit, float), np.asarray(engagement, float)
    return Case(fit, engagement, Reference(fit, engagement), np.asarray(relevance, float))


def test_alpha_is_chosen_where_the_community_s_own_posts_rank_best():
    from mmembed.ranking.blend import FALLBACK_ALPHA, choose_alpha

    rng = np.random.default_rng(0)
    relevance = np.r_[np.linspace(1.0, 0.5, 20), np.zeros(180)]
    member = (relevance > 0).astype(float)
    clear = -member + 0.01 * rng.normal(size=200)  # low fit / high engagement = member
    blurred = -member + 0.8 * rng.normal(size=200)
    misleading = member + 0.8 * rng.normal(size=200)
    # fit tells the members apart and predicted engagement points the other way: fit alone
    by_fit = choose_alpha([_case(blurred, -misleading, relevance)], posts=200)
    assert by_fit.alpha == 0.0 and by_fit.ndcg[0.0] > by_fit.ndcg[0.3] > by_fit.ndcg[1.0]
    assert by_fit.source.startswith("chosen on 200 held-out posts of 1 account, as the weight")
    assert f"top-10 quality {by_fit.ndcg[0.0]:.3f} of 1" in by_fit.source
    # the other way round: engagement alone
    assert choose_alpha([_case(misleading, -blurred, relevance)]).alpha == 1.0
    # both rank perfectly: every weight does, and the tie goes to the fallback
    agree = choose_alpha([_case(clear, -clear, member)])
    assert agree.alpha == FALLBACK_ALPHA and min(agree.ndcg.values()) == pytest.approx(1.0)
    # nothing to find: the fallback, saying so
    none = choose_alpha([_case(blurred, misleading, np.zeros(200))])
    assert none.alpha == FALLBACK_ALPHA and none.ndcg == {} and "no held-out post" in none.source
