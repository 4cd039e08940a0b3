import logging

import numpy as np
import pytest

from mmembed.communities.naming import cluster_names, cluster_terms, post_terms
from mmembed.communities.profiles import Community, build_communities, member_sets, profile
from mmembed.data.post import Post, parse_mentions


def _post(i, account, source, caption, hashtags, likes=10):
    return Post(f"p{i}", f"{i}.jpg", caption=caption, hashtags=hashtags,
                mentions=parse_mentions(caption), likes=likes, followers=1000, account=account,
                source=source)


def test_post_terms_merge_tags_and_words_without_stopwords_or_mentions():
    post = Post("1", "a.jpg", caption="Sending the crag with @alex #Crag", hashtags=["crag"])
    assert post_terms(post) == ["crag", "sending", "crag"]


def test_ctfidf_prefers_distinctive_terms_over_frequent_generic_ones():
    posts, labels = [], []
    for i in range(30):
        topic = i % 2
        tags = (["climbing", "crag"] if topic == 0 else ["food", "dinner"]) + ["love", "instagood"]
        posts.append(_post(i, "a", "s", "", tags))
        labels.append(topic)
    terms = cluster_terms(posts, np.array(labels), 2)
    assert {t for t, _ in terms[0][:2]} == {"climbing", "crag"}
    assert {t for t, _ in terms[1][:2]} == {"food", "dinner"}
    weights0 = dict(terms[0])
    assert weights0["climbing"] > weights0["love"]
    names = cluster_names(terms, n_terms=2)
    assert names[0] in ("climbing · crag", "crag · climbing") and len(set(names)) == 2


def test_profile_is_mean_soft_assignment_and_engagement_weighting_shifts_it():
    q = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.2, 0.0, 0.8]])
    np.testing.assert_allclose(profile(q), [0.3, 0.5, 0.2])
    liked_first = profile(q, engagement=np.log([10.0, 1.0, 1.0, 1.0]))
    np.testing.assert_allclose(liked_first, [(10 + 0.2) / 13, 2 / 13, 0.8 / 13])


def test_hand_made_communities():
    # the seed's example: a rockclimbing account, a food account, a nightlife hashtag
    posts = [
        _post(0, "crag_co", "crag_co", "", ["climbing"], likes=50),
        _post(1, "crag_co", "crag_co", "", ["climbing", "boulder"], likes=30),
        _post(2, "crag_co", "crag_co", "", ["climbing"], likes=20),
        _post(3, "eats", "eats", "@chef", ["food"], likes=5),
        _post(4, "eats", "eats", "", ["food"], likes=9),
        _post(5, "", "#nightlife", "", ["club"], likes=7),
    ]
    q = np.array([[0.98, 0.01, 0.01]] * 3 + [[0.01, 0.98, 0.01]] * 2 + [[0.01, 0.01, 0.98]])
    labels = q.argmax(1)
    eng = np.log(np.array([p.likes for p in posts]) / 1000.0)
    communities = build_communities(
        posts, q, labels, eng, ["climbing", "food", "club"],
        groups={"outdoor_and_food": {"accounts": ["crag_co", "eats"]}}, min_size=1)
    # account and source folders with the same posts are one community
    assert {n: c.kind for n, c in communities.items()} == {
        "crag_co": "account", "eats": "account", "#nightlife": "source",
        "outdoor_and_food": "group", "climbing": "cluster", "food": "cluster", "club": "cluster",
    }
    crag = communities["crag_co"]
    np.testing.assert_allclose(crag.profile, [0.98, 0.01, 0.01])
    assert crag.size == 3 and crag.top_clusters[0] == 0
    assert crag.top_hashtags[0] == ("climbing", 3)
    assert crag.engagement["sorted"] == sorted(eng[:3].tolist())
    assert communities["eats"].top_mentions == [("chef", 1)]
    assert Community.from_dict("crag_co", crag.to_dict()) == crag  # communities.json round trip
    np.testing.assert_allclose(communities["outdoor_and_food"].profile,
                               [0.6 * 0.98 + 0.4 * 0.01, 0.6 * 0.01 + 0.4 * 0.98, 0.01])


def test_name_clash_with_different_members_is_prefixed():
    posts = [_post(0, "natgeo", "#travel", "", []), _post(1, "x", "natgeo", "", [])]
    sets = member_sets(posts, np.zeros(2, dtype=int), ["c0"])
    assert {"account:natgeo", "source:natgeo", "#travel", "x"} <= set(sets)


def test_small_community_warns_by_name(caplog):
    posts = [_post(i, "tiny_acct" if i < 2 else "big", "s", "", []) for i in range(20)]
    q = np.full((20, 2), 0.5)
    with caplog.at_level(logging.WARNING):
        build_communities(posts, q, np.zeros(20, dtype=int), np.zeros(20), ["a", "b"],
                          min_size=5)
    assert any("tiny_acct" in r.message for r in caplog.records)
    assert not any("'big'" in r.message for r in caplog.records)


def test_unknown_weighting_is_refused():
    with pytest.raises(ValueError, match="weighting"):
        build_communities([], np.zeros((0, 2)), np.zeros(0, dtype=int), np.zeros(0), ["a", "b"],
                          weighting="likes")
