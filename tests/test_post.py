import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmembed.data.post import (
    POST_FIELDS,
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


@pytest.mark.parametrize("record, field", [
    ({"hashtags": 5}, "hashtags"),
    ({"mentions": {"a": 1}}, "mentions"),
    ({"true_engagement": "abc"}, "true_engagement"),
    ({"likes": 10**400}, "likes"),
    ({"account": ["a", "b"]}, "account"),
    ({"caption": "cut emoji \ud83d here"}, "caption"),
    ({"caption": "latin-1 byte \udce9 read with surrogateescape"}, "caption"),
    ({"hashtags": ["ok", "\udfff"]}, "hashtags"),
])
def test_bad_values_are_post_errors_naming_the_field(record, field):
    with pytest.raises(PostError) as err:
        make_post({"post_id": "1", "image_path": "a.jpg", **record}, "posts.jsonl row 3")
    assert field in err.value.detail and err.value.where == "posts.jsonl row 3"
    assert "posts.jsonl row 3" not in err.value.detail  # sources name the row once, not twice


def test_the_error_for_a_bad_byte_says_which_byte():
    with pytest.raises(PostError, match="not UTF-8 text.*0xe9"):
        make_post({"post_id": "1", "image_path": "a.jpg", "caption": "caf\udce9"}, "row 1")
    with pytest.raises(PostError, match="lone surrogate U\\+D83D"):
        make_post({"post_id": "1", "image_path": "a.jpg", "caption": "\ud83d"}, "row 1")


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                     st.text(st.characters(codec=None), max_size=12))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)


@settings(max_examples=200, deadline=None)
@given(record=st.dictionaries(st.sampled_from(POST_FIELDS), _values))
def test_make_post_raises_only_post_errors_and_its_posts_write_as_utf8(record):
    """Any record (JSON's types, lone surrogates, huge numbers) becomes a Post or a PostError."""
    try:
        post = make_post(record, "row 1")
    except PostError as exc:
        assert exc.where == "row 1" and exc.detail
        return
    json.dumps(post.to_dict(), ensure_ascii=False).encode("utf-8")  # what the bundle writes


def test_resolve_inside_follows_the_users_symlinks_but_not_dot_dot(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    base = tmp_path / "shoot"
    base.mkdir()
    (base / "images").symlink_to(elsewhere)
    assert resolve_inside(base, "images/a.jpg") == base / "images" / "a.jpg"
    assert resolve_inside(base, "images/./x/../a.jpg") == base / "images" / "a.jpg"
    for bad in ("images/../../elsewhere/a.jpg", "../shoot2/a.jpg", str(elsewhere / "a.jpg")):
        with pytest.raises(PostError, match="escapes"):
            resolve_inside(base, bad)
