"""The synthetic source: determinism, caching, and the planted truth being really there.

The structure tests check the generator against its own ground truth with deliberately simple
tools (pixel statistics, logistic regression, rank correlations), so that a failure points at
the data, not at a model.
"""

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from mmembed.data.images import ImageError, load_image
from mmembed.data.sources.synthetic import (
    ATTRIBUTES,
    DETAIL_RATE,
    MOOD_PHRASES,
    MOOD_RATE,
    NAMED_COLOURS,
    SyntheticSource,
)

N_POSTS = 480


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    # the detailed-caption variant: every check below holds for it, and for plain captions
    return SyntheticSource(num_posts=N_POSTS, shoot_size=30, seed=0,
                           cache_dir=tmp_path_factory.mktemp("synthetic"),
                           caption_detail_rate=DETAIL_RATE, caption_mood_rate=MOOD_RATE)


@pytest.fixture(scope="module")
def corpus(source):
    return source.load()


@pytest.fixture(scope="module")
def topic_index(corpus):
    return np.array([corpus.truth["topics"].index(p.topic) for p in corpus.posts])


def _pixel_features(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(all features, mean RGB) of an image: statistics only, no learned features, no caption.

    All features: per-channel mean and std, mean colour of the top and bottom thirds, a 4x4x4
    colour histogram, a saturation-weighted 8-bin hue histogram and mean absolute gradients.
    """
    img = Image.open(path).convert("RGB")
    rgb = np.asarray(img, dtype=np.float32) / 255
    hsv = np.asarray(img.convert("HSV"), dtype=np.float32) / 255
    third = rgb.shape[0] // 3
    levels = (rgb * 3.999).astype(int)
    colour_hist = np.bincount((levels[..., 0] * 16 + levels[..., 1] * 4 + levels[..., 2]).ravel(),
                              minlength=64) / levels[..., 0].size
    hue_hist = np.histogram(hsv[..., 0], bins=8, range=(0, 1), weights=hsv[..., 1])[0]
    grey = rgb.mean(axis=2)
    gradients = [np.abs(np.diff(grey, axis=1)).mean(), np.abs(np.diff(grey, axis=0)).mean()]
    mean = rgb.mean(axis=(0, 1))
    features = np.concatenate([
        mean, rgb.std(axis=(0, 1)), rgb[:third].mean(axis=(0, 1)), rgb[-third:].mean(axis=(0, 1)),
        colour_hist, hue_hist / grey.size, gradients,
    ])
    return features, mean


def _hue_features(path: str, bins: int = 24) -> np.ndarray:
    """Log fraction of clearly coloured pixels (HSV saturation > 0.35) in each hue bin."""
    hsv = np.asarray(Image.open(path).convert("HSV"), dtype=np.float32) / 255
    coloured = hsv[..., 1] > 0.35
    counts = np.bincount((hsv[..., 0][coloured] * bins).astype(int) % bins, minlength=bins)
    return np.log(counts / coloured.size + 1e-3)


def _layout_features(path: str, k: int = 12) -> np.ndarray:
    """A k x k thumbnail (RGB) and a k x k map of edge strength: where things are, coarsely."""
    img = Image.open(path).convert("RGB")
    thumb = np.asarray(img.resize((k, k), Image.Resampling.BOX), dtype=np.float32) / 255
    grey = np.asarray(img.convert("L"), dtype=np.float32) / 255
    edges = np.abs(np.diff(grey, axis=1))[:-1] + np.abs(np.diff(grey, axis=0))[:, :-1]
    edge_map = np.asarray(Image.fromarray(edges).resize((k, k), Image.Resampling.BOX))
    return np.concatenate([thumb.ravel(), edge_map.ravel()])


def _cv_accuracy(features: np.ndarray, labels: np.ndarray, c: float) -> float:
    """Cross-validated accuracy (5 folds, fewer if a class is rarer) of a regularised logistic
    regression. BLAS runs single-threaded: many tiny fits are much slower with threads fighting
    over a busy machine's cores."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=c))
    folds = min(5, int(np.unique(labels, return_counts=True)[1].min()))
    with threadpool_limits(limits=1):
        return float(cross_val_score(clf, features, labels, cv=folds).mean())


def _held_out_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    half = len(labels) // 2
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    with threadpool_limits(limits=1):
        clf.fit(features[:half], labels[:half])
    return float(clf.score(features[half:], labels[half:]))


def _within_topic_z(values: np.ndarray, topics: np.ndarray) -> np.ndarray:
    """Standardise per topic (or any grouping, e.g. by scene), so that a quality proxy is not
    confounded by each topic's palette."""
    out = np.empty_like(values)
    for t in np.unique(topics):
        mask = topics == t
        out[mask] = (values[mask] - values[mask].mean()) / (values[mask].std() + 1e-9)
    return out


def _scene_index(corpus) -> np.ndarray:
    """Group index by topic and the details that relight a whole scene (sky, table surface)."""
    attributes = corpus.truth["post_attributes"]
    scenes = ["/".join([p.topic, attributes[p.post_id].get("light", ""),
                        attributes[p.post_id].get("table", "")]) for p in corpus.posts]
    return np.unique(scenes, return_inverse=True)[1]


def _image_bytes(corpus) -> list[bytes]:
    return [Path(p.image_path).read_bytes() for p in corpus.posts]


def _without_paths(corpus) -> list[dict]:
    return [{k: v for k, v in p.to_dict().items() if k != "image_path"} for p in corpus.posts]


# -- records ---------------------------------------------------------------------------------


def test_posts_are_complete_records(corpus):
    assert len(corpus.posts) == N_POSTS
    assert corpus.name == "synthetic"
    followers = corpus.truth["account_followers"]
    for i, post in enumerate(corpus.posts):
        assert post.post_id == f"syn-{i:06d}"
        assert Path(post.image_path).is_absolute() and Path(post.image_path).is_file()
        assert post.source == "synthetic"  # no hashtag_audiences given
        assert post.topic in corpus.truth["topics"]
        assert post.followers == followers[post.account]
        assert post.hashtags and post.caption
        assert post.true_engagement > 0 and post.likes >= 0 and post.comments >= 0
        assert datetime.fromisoformat(post.timestamp).year == 2024
    stamps = [p.timestamp for p in corpus.posts]
    assert stamps == sorted(stamps), "post ids follow publication order"
    assert sum(bool(p.mentions) for p in corpus.posts) > N_POSTS // 5


def test_truth_describes_the_dataset(corpus):
    truth = corpus.truth
    assert truth["seed"] == 0 and truth["generator_version"]
    assert truth["topics"] == ["rockclimbing", "nightlife", "foodporn", "cosmetics",
                               "countryhomes", "fashiontravel"]
    assert set(truth["account_mixtures"]) == {p.account for p in corpus.posts}
    for mixture in truth["account_mixtures"].values():
        assert list(mixture) == truth["topics"]
        assert sum(mixture.values()) == pytest.approx(1.0)
    assert set(truth["post_qualities"]) == {p.post_id for p in corpus.posts}
    assert set(truth["attributes"]) == set(truth["topics"])
    for post in corpus.posts:
        details = truth["post_attributes"][post.post_id]
        schema = truth["attributes"][post.topic]
        assert list(details) == list(schema) and "colour" in details
        assert all(details[name] in values for name, values in schema.items())
        assert set(truth["post_caption_details"][post.post_id]) <= \
            set(schema) | {"exposure", "saturation"}


def test_images_decode_at_the_configured_size(corpus):
    for post in corpus.posts[:50]:
        img = load_image(post.image_path)
        assert not isinstance(img, ImageError), img
        assert img.size == (96, 96)


def test_more_topics_than_named_ones_are_recoloured_variants(tmp_path):
    corpus = SyntheticSource(num_posts=40, num_topics=8, num_accounts=9, shoot_size=0,
                             cache_dir=tmp_path).load()
    assert corpus.truth["topics"][6:] == ["rockclimbing2", "nightlife2"]
    assert len(corpus.truth["account_mixtures"]) == 9  # names stay unique past the suffix list


# -- determinism and cache -------------------------------------------------------------------


def test_same_seed_same_posts_and_bytes_other_seed_differs(tmp_path):
    kwargs = dict(num_posts=40, shoot_size=6)
    a = SyntheticSource(seed=3, cache_dir=tmp_path / "a", **kwargs)
    b = SyntheticSource(seed=3, cache_dir=tmp_path / "b", **kwargs)
    c = SyntheticSource(seed=4, cache_dir=tmp_path / "c", **kwargs)
    corpus_a, corpus_b, corpus_c = a.load(), b.load(), c.load()
    assert _without_paths(corpus_a) == _without_paths(corpus_b)
    assert _image_bytes(corpus_a) == _image_bytes(corpus_b)
    assert corpus_a.truth == corpus_b.truth
    shoot = sorted(p.name for p in a.shoot_dir.iterdir())
    assert [(a.shoot_dir / n).read_bytes() for n in shoot] == \
        [(b.shoot_dir / n).read_bytes() for n in shoot]
    assert _without_paths(corpus_a) != _without_paths(corpus_c)
    assert _image_bytes(corpus_a) != _image_bytes(corpus_c)


def test_shoot_does_not_depend_on_the_number_of_posts(tmp_path):
    small = SyntheticSource(num_posts=10, shoot_size=5, cache_dir=tmp_path)
    large = SyntheticSource(num_posts=30, shoot_size=5, cache_dir=tmp_path)
    assert small.fingerprint != large.fingerprint
    for name in sorted(p.name for p in small.shoot_dir.iterdir()):
        assert (small.shoot_dir / name).read_bytes() == (large.shoot_dir / name).read_bytes()


def test_second_load_reuses_the_cache(tmp_path):
    first = SyntheticSource(num_posts=30, shoot_size=4, cache_dir=tmp_path).load()
    mtimes = [Path(p.image_path).stat().st_mtime_ns for p in first.posts]
    second = SyntheticSource(num_posts=30, shoot_size=4, cache_dir=tmp_path).load()
    assert [Path(p.image_path).stat().st_mtime_ns for p in second.posts] == mtimes
    assert [p.to_dict() for p in second.posts] == [p.to_dict() for p in first.posts]
    assert [p.name for p in tmp_path.iterdir()] == [Path(first.posts[0].image_path).parents[1].name]


def test_half_written_cache_is_regenerated(tmp_path):
    source = SyntheticSource(num_posts=30, shoot_size=4, cache_dir=tmp_path)
    first = source.load()
    (source.root / "posts.jsonl").unlink()
    (source.root / "images" / "syn-000007.jpg").unlink()
    again = source.load()
    assert (source.root / "posts.jsonl").is_file()
    assert [p.to_dict() for p in again.posts] == [p.to_dict() for p in first.posts]
    assert all(Path(p.image_path).is_file() for p in again.posts)
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.root.name], "no temp folders"


# -- planted structure -----------------------------------------------------------------------


def test_topics_are_learnable_from_pixels_but_not_from_mean_colour(corpus, topic_index):
    features, means = map(np.array, zip(*(_pixel_features(p.image_path) for p in corpus.posts)))
    full = _held_out_accuracy(features, topic_index)
    mean_only = _held_out_accuracy(means, topic_index)
    # Observed with seed 0: 0.80 on pixel statistics, 0.47 on mean RGB alone (chance: 0.17).
    # (Generator version 1 gave 0.97 and 0.58; the per-photo details of version 2 - coloured
    # plates, marble tables, golden-hour and night skies - vary the colours within a topic.
    # With 1200 posts instead of 480 the same classifier reaches 0.88.)
    assert full >= 0.7, f"pixel statistics separate topics poorly: accuracy {full:.2f}"
    assert mean_only < 0.9, f"mean colour alone nearly solves topics: accuracy {mean_only:.2f}"
    assert full - mean_only >= 0.15


def test_likes_follow_the_planted_engagement(corpus):
    rate = np.log([(p.likes + 1) / p.followers for p in corpus.posts])
    true = np.log([p.true_engagement for p in corpus.posts])
    # Observed: 0.89 (the log-normal noise has sigma 0.3).
    assert spearmanr(rate, true).statistic >= 0.7
    assert abs(np.median(rate - true)) < 0.1, "noise is centred on the planted rate"


def test_pixel_quality_proxy_tracks_engagement(corpus, topic_index):
    hsv = [np.asarray(Image.open(p.image_path).convert("HSV"), dtype=np.float32)
           for p in corpus.posts]
    brightness = np.log([h[..., 2].mean() + 1 for h in hsv])
    saturation = np.log([h[..., 1].mean() + 1 for h in hsv])
    # Night skies and marble tables change brightness whatever the exposure, so standardise
    # within each topic and scene (a model sees the moon and the marble too).
    scene = _scene_index(corpus)
    proxy = _within_topic_z(brightness, scene) + _within_topic_z(saturation, scene)
    true = np.log([p.true_engagement for p in corpus.posts])
    # Observed: 0.73 (0.70 standardised per topic only). Centring is the third planted
    # quality; this proxy ignores it.
    assert spearmanr(proxy, true).statistic >= 0.45
    qualities = corpus.truth["post_qualities"]
    exposure = np.array([qualities[p.post_id]["exposure"] for p in corpus.posts])
    # Observed: 0.89 per scene; 0.78 per topic only, where night and marble scenes blur it.
    assert spearmanr(_within_topic_z(brightness, scene), exposure).statistic >= 0.8
    assert spearmanr(_within_topic_z(brightness, topic_index), exposure).statistic >= 0.65


def test_captions_describe_visible_details_at_the_planted_rate(corpus):
    truth = corpus.truth
    chances = said = 0
    for post in corpus.posts:
        sentence = post.caption.split("\n\n")[0].lower()
        details = truth["post_attributes"][post.post_id]
        mentioned = truth["post_caption_details"][post.post_id]
        for attr in ATTRIBUTES[post.topic]:
            true_phrases = attr.phrases.get(details[attr.name], ())
            if attr.name in mentioned:
                assert any(ph in sentence for ph in true_phrases), (post.caption, attr.name)
            others = [ph for value, phrases in attr.phrases.items()
                      if value != details[attr.name] for ph in phrases]
            assert not any(ph in sentence for ph in others), \
                f"caption contradicts its photo's {attr.name}: {post.caption!r}"
            if true_phrases:  # absent props are never mentioned
                chances += 1
                said += attr.name in mentioned
    # About 1200 chances, so the rate is within +-0.04 of DETAIL_RATE (3 standard deviations).
    assert chances > 2 * len(corpus.posts)
    assert abs(said / chances - DETAIL_RATE) < 0.04, said / chances


def test_captions_sometimes_put_extreme_qualities_into_words(corpus):
    truth = corpus.truth
    chances = said = 0
    for post in corpus.posts:
        sentence = post.caption.split("\n\n")[0].lower()
        qualities = truth["post_qualities"][post.post_id]
        mentioned = truth["post_caption_details"][post.post_id]
        for quality in ("exposure", "saturation"):
            phrases = [phrases for name, side, threshold, phrases in MOOD_PHRASES
                       if name == quality and (qualities[name] < threshold if side == "below"
                                               else qualities[name] > threshold)]
            if quality in mentioned:
                assert phrases, f"{quality} {qualities[quality]:.2f} is not extreme"
                assert any(ph in sentence for ph in phrases[0]), post.caption
            chances += bool(phrases)
            said += quality in mentioned
    # About 500 chances: the rate is within +-0.07 of MOOD_RATE (3 standard deviations).
    assert abs(said / chances - MOOD_RATE) < 0.07, said / chances


def test_visible_details_are_learnable_from_pixels(corpus):
    """Within each topic, simple pixel statistics predict the details a caption names."""
    truth = corpus.truth
    hue = np.array([_hue_features(p.image_path) for p in corpus.posts])
    layout = np.array([_layout_features(p.image_path) for p in corpus.posts])
    colour, excess = {}, {}
    for topic in truth["topics"]:
        members = np.array([i for i, p in enumerate(corpus.posts) if p.topic == topic])
        details = [truth["post_attributes"][corpus.posts[i].post_id] for i in members]
        for name in truth["attributes"][topic]:
            labels = np.array([d[name] for d in details])
            if name == "colour":  # 5-fold CV on ~80 posts per topic
                colour[topic] = _cv_accuracy(hue[members], labels, c=0.3)
            else:
                majority = np.unique(labels, return_counts=True)[1].max() / len(labels)
                excess[topic, name] = _cv_accuracy(layout[members], labels, c=0.05) - majority
    chance = 1 / len(NAMED_COLOURS)
    # Observed with seed 0: colour accuracy 0.48 (drinks) .. 0.78 (plates), mean 0.59; chance 0.2.
    assert np.mean(list(colour.values())) >= 2 * chance, colour
    assert min(colour.values()) >= chance + 0.15, colour
    # Observed: accuracy above the majority class 0.25 on average; skies and table tops
    # (light, table) 0.33 .. 0.59; the small props (boat, flowers, rope) are near 0 here: a
    # linear model on a 12 x 12 thumbnail of 80 photos does not find them, a CNN does.
    assert np.mean(list(excess.values())) >= 0.15, excess
    assert min(v for (_, name), v in excess.items() if name in ("light", "table")) >= 0.2


def test_account_topics_follow_the_planted_mixtures(corpus):
    topics = corpus.truth["topics"]
    distances = []
    for account, planted in corpus.truth["account_mixtures"].items():
        posted = [p.topic for p in corpus.posts if p.account == account]
        empirical = np.array([posted.count(t) / len(posted) for t in topics])
        distances.append(0.5 * np.abs(empirical - np.array(list(planted.values()))).sum())
        first, second = sorted(planted.values())[-1:-3:-1]
        if first - second > 0.25:  # a clearly dominant planted topic is the most posted one
            assert topics[int(empirical.argmax())] == max(planted, key=planted.get)
    # Total variation distance; observed at most 0.15 with ~60 posts per account.
    assert max(distances) < 0.25
    assert np.mean(distances) < 0.15


# -- shoot -----------------------------------------------------------------------------------


def test_shoot_folder_holds_captionless_photos_and_truth_lives_outside(source, corpus):
    shoot = source.shoot_dir
    files = sorted(shoot.iterdir())
    assert len(files) == 30
    assert all(f.suffix == ".jpg" for f in files), "photos only: no captions or metadata"
    assert not any(isinstance(load_image(f), ImageError) for f in files)
    truth_path = shoot.parent / "shoot_truth.json"
    assert truth_path.is_file() and not (shoot / "shoot_truth.json").exists()
    truth = json.loads(truth_path.read_text())
    assert set(truth["photos"]) == {f.name for f in files}
    per_topic = [r["topic"] for r in truth["photos"].values()]
    assert {per_topic.count(t) for t in corpus.truth["topics"]} == {5}, "balanced over topics"
    assert all(r["true_engagement_factor"] > 0 for r in truth["photos"].values())
    for r in truth["photos"].values():
        schema = corpus.truth["attributes"][r["topic"]]
        assert list(r["attributes"]) == list(schema)
        assert all(value in schema[name] for name, value in r["attributes"].items())
    post_bytes = set(_image_bytes(corpus))
    assert not any(f.read_bytes() in post_bytes for f in files), "shoot photos are new"


def test_caption_rates_change_captions_and_nothing_else(tmp_path, corpus):
    plain = SyntheticSource(num_posts=N_POSTS, shoot_size=30, seed=0,
                            cache_dir=tmp_path).load()
    assert all(not m for m in plain.truth["post_caption_details"].values())
    assert sum(a.caption != b.caption for a, b in zip(plain.posts, corpus.posts)) > N_POSTS / 2
    for a, b in zip(plain.posts, corpus.posts):
        assert (a.post_id, a.topic, a.likes, a.account, a.hashtags) == \
            (b.post_id, b.topic, b.likes, b.account, b.hashtags)
    for a, b in list(zip(plain.posts, corpus.posts))[:50]:
        assert Path(a.image_path).read_bytes() == Path(b.image_path).read_bytes()


def test_hashtag_audiences_become_sources(source, corpus):
    audiences = SyntheticSource(num_posts=N_POSTS, shoot_size=30, seed=0,
                                cache_dir=source.cache_dir, caption_detail_rate=DETAIL_RATE,
                                caption_mood_rate=MOOD_RATE,
                                hashtag_audiences=["#RockClimbing", "party"])
    assert audiences.fingerprint == source.fingerprint  # the same cached dataset
    again = audiences.load()
    assert [p.post_id for p in again.posts] == [p.post_id for p in corpus.posts]
    for post in again.posts:
        tags = set(post.hashtags)
        expected = ("#rockclimbing" if "rockclimbing" in tags else
                    "#party" if "party" in tags else "synthetic")
        assert post.source == expected
    assert {"#rockclimbing", "#party", "synthetic"} <= {p.source for p in again.posts}
