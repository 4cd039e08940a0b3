import math

import numpy as np
import pytest

from mmembed.data.post import (
    Post,
    PostError,
    engagement,
    make_post,
    parse_hashtags,
    parse_mentions,
    resolve_inside,
)


def test_hashtags_and_mentions_parsed_from_caption_when_absent():
    post = make_post({"post_id": "1", "image_path": "a.jpg",
                      "caption": "Send it! #RockClimbing #crag #crag with @Alex.Honnold and @bob."},
                     "row 1")
    assert post.hashtags == ["rockclimbing", "crag"]
    assert post.mentions == ["alex.honnold", "bob"]


def test_explicit_hashtags_win_over_caption():
    post = make_post({"post_id": "1", "image_path": "a.jpg", "caption": "#a", "hashtags": "#b, c"},
                     "row 1")
    assert post.hashtags == ["b", "c"]


def test_email_is_not_a_mention_and_anchor_is_not_a_hashtag():
    assert parse_mentions("mail me at me@example.com") == []
    assert parse_hashtags("see page#section") == []


@pytest.mark.parametrize("record, field", [
    ({"image_path": "a.jpg"}, "post_id"),
    ({"post_id": "1"}, "image_path"),
    ({"post_id": "1", "image_path": "a.jpg", "likes": "many"}, "likes"),
    ({"post_id": "1", "image_path": "a.jpg", "followers": -3}, "followers"),
    ({"post_id": "1", "image_path": "a.jpg", "comments": "nan"}, "comments"),
])
def test_validation_names_row_and_field(record, field):
    with pytest.raises(PostError) as err:
        make_post(record, "posts.csv row 7")
    assert "posts.csv row 7" in str(err.value) and field in str(err.value)


def test_missing_followers_is_none_not_zero():
    post = make_post({"post_id": "1", "image_path": "a.jpg", "followers": ""}, "row 1")
    assert post.followers is None


def test_engagement_uses_followers_and_falls_back_to_source_median():
    posts = [
        Post("a", "a.jpg", likes=99, followers=1000, source="acct"),
        Post("b", "b.jpg", likes=9, followers=1000, source="acct"),
        Post("c", "c.jpg", likes=49, followers=None, source="#tag"),
        Post("d", "d.jpg", likes=199, followers=None, source="#tag"),
        Post("e", "e.jpg", likes=0, followers=None, source="#other"),
    ]
    e = engagement(posts)
    assert np.all(np.isfinite(e)) and len(e) == 5
    assert e[0] == pytest.approx(math.log(100 / 1000))
    assert e[0] > e[1]
    # hashtag posts are ordered by likes within their source and centred on the known rates
    assert e[3] > e[2]
    assert np.median(e[2:4]) == pytest.approx(np.median(e[:2]), abs=1e-5)
    assert e[4] == pytest.approx(np.median(e[:2]), abs=1e-5)


def test_resolve_inside_rejects_escape(tmp_path):
    assert resolve_inside(tmp_path, "x/y.jpg") == tmp_path.resolve() / "x/y.jpg"
    for bad in ("../y.jpg", "/etc/passwd", "x/../../y.jpg"):
        with pytest.raises(PostError, match="escapes"):
            resolve_inside(tmp_path, bad)
