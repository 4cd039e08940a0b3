"""The maths behind a ranking a manager can trust: calibration, local lift, absolute scores,
novelty, duplicates and the diversity re-rank (pure numpy, no model)."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from mmembed.ranking.calibration import expected_calibration_error, fit_temperature, temper
from mmembed.ranking.density import bandwidth, local_lift
from mmembed.ranking.diversity import mmr_order
from mmembed.ranking.duplicates import (
    duplicate_groups,
    group_leaders,
    perceptual_hash,
    photo_quality,
)
from mmembed.ranking.score import Reference, audience_score, score
from mmembed.ranking.trust import Novelty, clip_engagement


# ------------------------------------------------------------------------------ calibration
def overconfident(n=2000, k=4, accuracy=0.7, seed=0):
    """log q that puts ~all mass on its argmax, right only ``accuracy`` of the time."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    guess = np.where(rng.random(n) < accuracy, labels, (labels + rng.integers(1, k, n)) % k)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), guess] += 40.0
    return logits, labels


def test_temperature_fixes_an_overconfident_assignment():
    logits, labels = overconfident()
    before = expected_calibration_error(temper(logits, 1.0), labels)
    t = fit_temperature(logits, labels)
    after = expected_calibration_error(temper(logits, t), labels)
    assert before > 0.25 and after < 0.05 and t > 5
    q = temper(logits, t)
    assert np.allclose(q.sum(1), 1) and (q.argmax(1) == temper(logits, 1).argmax(1)).all()


def test_temperature_of_a_calibrated_assignment_stays_near_one():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (4000, 3))
    q = temper(logits, 1.0)
    labels = np.array([rng.choice(3, p=row) for row in q])
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.15)


def test_temper_handles_zero_probabilities_and_checks_input():
    q = temper(np.array([[0.0, -np.inf, -np.inf]]), 10.0)
    assert np.isfinite(q).all() and q[0, 0] > 0.99
    with pytest.raises(ValueError, match="temperature"):
        temper(np.zeros((1, 2)), 0.0)
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(np.zeros((3, 2)), [0, 1])


# ------------------------------------------------------------------------------ local lift
def test_lift_is_positive_where_the_community_posts_and_smooth():
    sim = np.array([[0.9, 0.88, 0.85, 0.8], [0.9, 0.88, 0.85, 0.8], [0.95, 0.6, 0.5, 0.4]])
    member = np.array([[1, 1, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]], dtype=bool)
    lift = local_lift(sim, member, prior=0.25, bandwidth=0.1)
    assert lift[0] > 0 > lift[1]
    assert lift[0] < np.log(1 / 0.25)  # bounded by log(1 / prior)
    nearer = local_lift(sim[:1] + np.array([[0, 0, 0.01, 0]]), member[:1], 0.25, 0.1)
    assert nearer != pytest.approx(lift[0], abs=1e-9)  # no plateaus: a nearer member moves it


def test_lift_without_neighbours_is_zero_and_padding_is_ignored():
    sim = np.full((1, 3), -np.inf)
    assert local_lift(sim, np.zeros((1, 3), bool), 0.1, 0.1)[0] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="prior"):
        local_lift(np.zeros((1, 1)), np.zeros((1, 1), bool), 0.0, 0.1)


def test_bandwidth_is_the_median_distance_to_the_kth_neighbour():
    sims = np.array([[0.9, 0.8, 0.7], [0.95, 0.9, 0.5], [0.99, 0.6, 0.6]])
    assert bandwidth(sims, 2) == pytest.approx(np.median([0.2, 0.1, 0.4]))


# ------------------------------------------------------------------------------ absolute score
def test_score_against_a_reference_is_absolute():
    ref = Reference(fit=np.array([1.0, 2.0, 3.0, 4.0]), engagement=np.array([0.0, 1.0, 2.0, 3.0]))
    alone = score([1.0], [3.0], 0.5, ref)
    among = score([1.0, 4.0, 2.5], [3.0, 0.0, 1.0], 0.5, ref)
    assert alone[0] == pytest.approx(among[0])  # same photo, same score, whatever its company
    assert score([1.0], [3.0], 0.5)[0] == 0.0  # without a reference, one photo says nothing
    a1 = audience_score(alone, ref, 0.5)[0]
    a2 = audience_score(score([3.5], [0.5], 0.5, ref), ref, 0.5)[0]
    assert a1 == 100.0 and a2 < 25.0


# ------------------------------------------------------------------------------ novelty
def test_novelty_flags_beyond_the_held_out_quantile():
    rng = np.random.default_rng(0)
    novelty = Novelty.from_held_out(rng.random(500), rng.random(500) * 0.2)
    unlike = novelty.unlike([0.5, 5.0, 0.5], [0.1, 0.1, 0.9])
    assert unlike.tolist() == [False, True, True]
    clipped, unreliable = clip_engagement([-9.0, -3.0, 1.0], -5.0, 0.0, [False, True, False])
    assert clipped.tolist() == [-5.0, -3.0, 0.0] and unreliable.tolist() == [True, True, True]
    _, ok = clip_engagement([-3.0], -5.0, 0.0, [False])
    assert not ok[0]


# ------------------------------------------------------------------------------ duplicates
def photo(seed, size=96):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * x + seed), np.cos(5 * y * (seed % 3 + 1)), x * y], -1)
    noise = rng.normal(0, 0.05, (size, size, 3))
    return (np.clip((base + 1) / 2 + noise, 0, 1) * 255).astype(np.uint8)


def recompress(pixels, quality):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def test_recompressed_copies_form_one_group_and_distinct_photos_do_not():
    original = photo(1)
    copies = [recompress(original, q) for q in (95, 70, 50, 40)]
    others = [photo(s) for s in (2, 3, 4)]
    images = [original, *copies, *others]
    hashes = np.stack([perceptual_hash(im) for im in images])
    features = np.stack([im.astype(np.float64).ravel() for im in images])
    groups = duplicate_groups(hashes, features)
    assert len(set(groups[:5])) == 1
    assert len(set(groups)) == 4


def test_leader_prefers_the_sharper_photo_when_engagement_ties():
    sharp = photo(5)
    blurred = np.asarray(Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(2)))
    groups = np.array([0, 0, 1])
    quality = photo_quality(sharpness=[0.2, 0.9, 0.5], clipping=[0, 0, 0],
                            exposure_offset=[0, 0, 0])
    # photo 0 (blurred) scores a hair higher, but engagement cannot tell them apart
    leader = group_leaders(groups, score=[1.01, 1.0, 0.3], engagement=[-3.0, -3.05, -2.0],
                           quality=quality)
    assert leader.tolist() == [1, 1, 2]
    clear = group_leaders(groups, score=[1.5, 1.0, 0.3], engagement=[-2.0, -3.0, -2.0],
                          quality=quality)
    assert clear.tolist() == [0, 0, 2]  # clearly better engagement wins
    assert perceptual_hash(blurred).shape == (64,)


# ------------------------------------------------------------------------------ diversity
def test_mmr_moves_a_near_copy_down_and_zero_keeps_the_order():
    emb = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [0.7, 0.7]])
    s = np.array([1.0, 0.95, 0.6, 0.5])
    assert mmr_order(s, emb, 0.0).tolist() == [0, 1, 2, 3]
    assert mmr_order(s, emb, 0.5).tolist()[:2] == [0, 2]
    with pytest.raises(ValueError, match="diversity"):
        mmr_order(s, emb, 1.5)
