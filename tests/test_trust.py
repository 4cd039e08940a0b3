"""A ranking a manager can trust, on the session's tiny bundle: held-out posts enter nothing,
photos unlike the training data are flagged, near-copies form one group, a photo alone gets a
meaningful audience score, the fit separates photos of one cluster."""

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mmembed.ranking.captions import CopyGuard
from mmembed.ranking.settings import RankSettings
from mmembed.ranking.trust import DUPLICATE, UNLIKE, UNRELIABLE


def strangers(folder: Path) -> dict[str, Path]:
    """A blank frame, uniform noise, a screenshot of text and a drawn portrait."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = {"blank": folder / "blank.jpg", "noise": folder / "noise.png",
           "text": folder / "screenshot.png", "portrait": folder / "portrait.jpg"}
    Image.new("RGB", (480, 360), (255, 255, 255)).save(out["blank"], quality=95)
    Image.fromarray(rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)).save(out["noise"])
    text = Image.new("RGB", (480, 360), (255, 255, 255))
    draw = ImageDraw.Draw(text)
    for i in range(14):
        draw.text((12, 8 + 25 * i), f"Terms of service, section {i}: the user agrees to",
                  fill=(20, 20, 20))
    text.save(out["text"])
    face = Image.new("RGB", (360, 480), (210, 190, 170))
    draw = ImageDraw.Draw(face)
    draw.ellipse((80, 90, 280, 360), fill=(235, 200, 175))
    draw.ellipse((130, 180, 160, 200), fill=(40, 40, 40))
    draw.ellipse((200, 180, 230, 200), fill=(40, 40, 40))
    draw.arc((140, 250, 220, 300), 20, 160, fill=(150, 60, 60), width=5)
    face.save(out["portrait"], quality=92)
    return out


def test_held_out_posts_are_in_no_index_profile_or_cluster(ranker):
    test_ids = {r["post_id"] for r in ranker.posts() if r["split"] == "test"}
    assert test_ids  # the evaluation has posts to treat as new photos
    assert not test_ids & set(ranker.index.post_ids)
    assert not test_ids & set(ranker.bundle.feature_index().post_ids)
    for community in ranker.communities.values():
        assert not test_ids & set(community.members), community.name
    for cluster in ranker.clusters:
        assert not test_ids & set(cluster.medoids)


def test_a_post_ranked_again_never_names_itself(ranker):
    row = next(r for r in ranker.posts() if r["split"] == "train" and r["account"])
    photo = ranker.rank([row["image_path"]], row["account"], RankSettings()).photos[0]
    assert row["post_id"] not in {n["post_id"] for n in photo.neighbours}
    assert all(n["similarity"] < 0.9999 for n in photo.neighbours)
    assert all(CopyGuard([row["caption"]]).allows(d) for d in photo.captions)


def test_photos_unlike_the_training_data_are_flagged_and_make_no_claims(ranker, shoot,
                                                                        tmp_path):
    odd = strangers(tmp_path / "odd")
    result = ranker.rank([*shoot, *odd.values()], ranker.default_community(), RankSettings())
    by_name = {p.name: p for p in result.photos}
    for kind in ("blank", "noise", "text"):
        photo = by_name[odd[kind].name]
        assert UNLIKE in photo.flags and UNRELIABLE in photo.flags, (kind, photo.flags)
        assert photo.audience_score is None and not photo.hashtags and not photo.captions
        low, high = ranker.calibration["engagement_range"]
        assert low <= photo.engagement <= high  # no "179 % ≈ 44,839 likes"
        assert photo.image not in result.post
    flagged = [p.rank for p in result.photos if UNLIKE in p.flags]
    clean = [p.rank for p in result.photos if not p.flags]
    assert max(clean) < min(flagged)  # nothing unlike the training data ranks above them
    # the shoot looks like the training data: (nearly) none of it is flagged
    assert sum(UNLIKE in by_name[p.name].flags for p in shoot) <= 1


def recompressed(photo: Path, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.open(photo).convert("RGB").resize((320, 320))
    out = []
    for quality in (92, 75, 55, 35):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        path = folder / f"copy_q{quality}.jpg"
        path.write_bytes(buffer.getvalue())
        out.append(path)
    return out


def test_four_recompressed_copies_are_one_group_led_once(ranker, shoot, tmp_path):
    copies = recompressed(shoot[0], tmp_path / "copies")
    result = ranker.rank([*shoot[1:], *copies], ranker.default_community(), RankSettings())
    by_name = {p.name: p for p in result.photos}
    groups = {by_name[c.name].duplicate_group for c in copies}
    assert len(groups) == 1 and None not in groups
    members = [p for p in result.photos if p.duplicate_group in groups]
    assert {p.name for p in members} == {c.name for c in copies}  # no other photo joins
    leaders = [p for p in members if p.duplicate_of is None]
    assert len(leaders) == 1
    for p in members:
        if p is not leaders[0]:
            assert f"{DUPLICATE}:{leaders[0].name}" in p.flags and p.rank > leaders[0].rank
    assert sum(p.image in result.post for p in members) <= 1


def test_one_photo_alone_gets_an_audience_score_that_means_something(ranker, shoot):
    community = ranker.default_community()
    together = {p.name: p for p in ranker.rank(shoot, community, RankSettings()).photos}
    alone = [ranker.rank([path], community, RankSettings()).photos[0] for path in shoot[:4]]
    scores = [p.audience_score for p in alone]
    assert all(s is not None and 0 <= s <= 100 for s in scores)
    assert len(set(scores)) > 1  # two different photos alone: different scores
    for p in alone:  # the same number as among the whole shoot
        assert p.audience_score == pytest.approx(together[p.name].audience_score, abs=1e-9)


def test_fits_do_not_tie_inside_a_cluster(ranker, shoot):
    result = ranker.rank(shoot, ranker.default_community(), RankSettings())
    top = result.photos[:20]
    fits = np.sort([p.fit for p in top])
    ties = np.diff(fits) <= 1e-6
    assert ties.mean() < 0.05
    # the cluster-level KL alone is (nearly) a step function; the lift makes the fit continuous
    assert len({round(p.fit, 9) for p in result.photos}) == len(result.photos)


def test_post_these_are_unflagged_and_beat_the_typical_post(ranker, shoot, tmp_path):
    folder = tmp_path / "shoot"
    shutil.copytree(shoot[0].parent, folder)
    result = ranker.rank(sorted(folder.glob("*.jpg")), ranker.default_community(),
                         RankSettings(post_top=3))
    by_image = {p.image: p for p in result.photos}
    assert len(result.post) <= 3
    for image in result.post:
        assert not by_image[image].flags and by_image[image].audience_score >= 50
    ranks = [by_image[i].rank for i in result.post]
    assert ranks == sorted(ranks)


def test_calibration_was_measured_on_held_out_posts(ranker):
    calibration = ranker.calibration
    assert calibration["temperature"] > 0
    metrics = ranker.bundle.metrics
    assert 0 <= metrics["calibration_ece"] <= 1 and 0 <= metrics["calibration_ece_before"] <= 1
    assert metrics["nmi_train"] is not None and metrics["nmi"] is not None
