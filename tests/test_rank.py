"""rank.py end to end on the session's tiny bundle (``tiny_bundle`` in conftest.py), plus the
suggestion maths."""

import csv
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmembed.cli import run
from mmembed.cli.rank import rank
from mmembed.config import compose
from mmembed.data.photos import photo_loader
from mmembed.ranking.settings import RankError, RankSettings
from mmembed.ranking.suggest import neighbour_weights, weighted_terms
from mmembed.report.files import CSV_COLUMNS


def ranked(ranker, *args, **kwargs) -> dict:
    """``Ranker.rank`` as the dict ranking.json holds."""
    return ranker.rank(*args, **kwargs).to_dict()

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return tiny_bundle


@pytest.fixture(scope="module")
def dataset(ranker):
    """The synthetic dataset folder behind the bundle: truth, shoot and its truth."""
    cache = Path(ranker.bundle.config["data"]["cache_dir"])
    root = next(p for p in cache.iterdir() if (p / "truth.json").is_file())
    return {"root": root, "shoot": root / "shoot",
            "truth": json.loads((root / "truth.json").read_text()),
            "shoot_truth": json.loads((root / "shoot_truth.json").read_text())["photos"]}


def rank_cfg(tmp_path, *overrides):
    return compose([f"out={tmp_path / 'out'}", f"paths.index_dir={tmp_path / 'index'}",
                    *overrides], config_name="rank")


def rank_py(*args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "rank.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "160"})


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def broken_photos(folder: Path, good: Path) -> dict[str, str]:
    """Zero-byte, truncated and text-as-JPEG files, a folder named like a photo and a broken
    symbolic link in ``folder``; name -> expected reason."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    data = good.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "notes.jpg").write_text("not a photo, just a note\n")
    (folder / "album.jpg").mkdir()
    (folder / "gone.jpg").symlink_to(folder / "deleted.jpg")
    return {"empty.jpg": "empty", "truncated.jpg": "", "notes.jpg": "not an image",
            "album.jpg": "not a file: a directory", "gone.jpg": "missing: broken symbolic link"}


# ------------------------------------------------------------------------------ end to end
def test_rank_py_end_to_end(bundle, dataset, tmp_path):
    out = tmp_path / "out"
    proc = rank_py(f"bundle={bundle}", f"out={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "community not given" in proc.stdout and "community=ID" in proc.stdout
    assert f"bundle {bundle} (given by bundle=)" in proc.stdout
    assert str(out) in proc.stdout
    for name in ("ranking.csv", "ranking.json", "report.html"):
        assert (out / name).is_file(), name
    assert not (tmp_path / "outputs").exists() and not list(tmp_path.rglob("*.log"))
    rows = read_csv(out / "ranking.csv")
    assert set(CSV_COLUMNS) <= set(rows[0])
    shoot = {p.name for p in dataset["shoot"].glob("*.jpg")}
    assert {Path(r["image"]).name for r in rows} == shoot  # every input listed
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    result = json.loads((out / "ranking.json").read_text())
    assert result["community"]["defaulted"] and result["community"]["kind"] == "account"
    alpha = result["settings"]["alpha"]  # the terminal says which weight it used, and why
    assert (f"Score: {100 * (1 - alpha):.0f}% content fit, {100 * alpha:.0f}% predicted "
            f"engagement (α = {alpha:g}, {result['settings']['alpha_source']})") in proc.stdout
    k = result["bundle"]["k"]
    photo = result["photos"][0]
    assert len(photo["q"]) == k and abs(sum(photo["q"]) - 1) < 1e-6
    assert photo["neighbours"] and photo["hashtags"] and photo["captions"]


def test_dominant_topic_ranks_above_absent_topic(ranker, dataset):
    """On planted data: for the account with the most dominant topic, its shoot photos of that
    topic rank above every shoot photo of a topic the account (almost) never posts."""
    mixtures = dataset["truth"]["account_mixtures"]
    account = max(mixtures, key=lambda a: max(mixtures[a].values()))
    mix = mixtures[account]
    dominant, absent = max(mix, key=mix.get), min(mix, key=mix.get)
    assert mix[dominant] > 0.6 and mix[absent] < 0.01
    photos = dataset["shoot_truth"]
    paths = [dataset["shoot"] / n for n, t in photos.items() if t["topic"] in (dominant, absent)]
    result = ranked(ranker, paths, account, RankSettings(alpha=0.0))
    rank_of = {p["name"]: p["rank"] for p in result["photos"]}
    good = [rank_of[n] for n, t in photos.items() if t["topic"] == dominant]
    bad = [rank_of[n] for n, t in photos.items() if t["topic"] == absent]
    assert good and bad
    assert max(good) < min(bad), (account, dominant, absent, good, bad)


def test_alpha_extremes_order_by_fit_and_by_engagement(ranker, dataset):
    paths = sorted(dataset["shoot"].glob("*.jpg"))
    community = ranker.default_community()
    by_fit = ranked(ranker, paths, community, RankSettings(alpha=0.0))["photos"]
    fits = [p["fit"] for p in by_fit if not p["flags"]]  # flagged photos come after these
    assert len(fits) > 1 and fits == sorted(fits)
    by_eng = ranked(ranker, paths, community, RankSettings(alpha=1.0))["photos"]
    eng = [p["engagement"] for p in by_eng if not p["flags"]]
    assert eng == sorted(eng, reverse=True)
    assert {p["image"] for p in by_fit} == {p["image"] for p in by_eng}
    # the fit is the cluster-level KL minus the local lift, exactly
    for p in by_fit:
        assert p["fit"] == pytest.approx(p["fit_cluster"] - p["fit_local"], abs=1e-12)


def test_explanations_and_suggestions(ranker, dataset):
    community = ranker.default_community()
    result = ranked(ranker, sorted(dataset["shoot"].glob("*.jpg"))[:3], community,
                                RankSettings(neighbours=10))
    members = set(ranker.communities[community].members)
    for photo in result["photos"]:
        e = photo["explanation"]  # what the photo is, and how that does for the community
        assert e["cluster"] == photo["top_cluster"] and e["share"] == max(photo["q"])
        assert e["community_share"] == pytest.approx(
            ranker.communities[community].profile[e["cluster"]["id"]])
        assert e["local_ratio"] == pytest.approx(np.exp(photo["fit_local"]))
        sims = [n["similarity"] for n in photo["neighbours"]]
        assert len(sims) == 3 and sims == sorted(sims, reverse=True)
        assert {n["post_id"] for n in photo["neighbours"]} <= members
        weights = [h["weight"] for h in photo["hashtags"]]
        assert len(weights) <= 10 and weights == sorted(weights, reverse=True)
        assert all(0 < h["count"] <= 10 and 0 <= h["weight"] <= 1 for h in photo["hashtags"])
        assert len(photo["mentions"]) <= 5
        assert 0 < len(photo["captions"]) == len(set(photo["captions"])) <= 3
        # drafts, not the neighbours' captions (tests/test_captions.py checks the words)
        assert not {n["caption"] for n in photo["neighbours"]} & set(photo["captions"])
        assert photo["audience_score"] is None or 0 <= photo["audience_score"] <= 100


def test_a_photos_numbers_do_not_depend_on_its_batch(ranker, dataset):
    """Alone, beside other photos, elsewhere in its batch, listed in another order: the same
    q, fit, engagement, neighbours and score, bit for bit, at one rank.batch_size; across
    batch sizes within the tolerance the README states (float32 rounding in the model)."""
    paths = sorted(dataset["shoot"].glob("*.jpg"))
    community = ranker.default_community()

    def photos(subset, batch_size=8):
        result = ranked(ranker, subset, community, RankSettings(batch_size=batch_size))
        return {p["name"]: p for p in result["photos"]}

    def numbers(p):
        return (p["q"], p["fit"], p["fit_local"], p["engagement"], p["neighbours"],
                p["hashtags"], p["audience_score"], p["flags"])

    together = photos(paths)  # 12 photos: a full batch of 8, then 4 padded to 8
    backwards = photos(paths[::-1])  # other positions, other partners
    for path in paths[::4]:
        alone = photos([path])[path.name]
        assert numbers(alone) == numbers(together[path.name]) == numbers(backwards[path.name])
    assert {n: p["score"] for n, p in together.items()} == \
        {n: p["score"] for n, p in backwards.items()}

    for name, p in photos(paths, batch_size=5).items():
        ref = together[name]
        np.testing.assert_allclose(p["q"], ref["q"], rtol=0, atol=1e-6)
        np.testing.assert_allclose([p["fit"], p["engagement"]], [ref["fit"], ref["engagement"]],
                                   rtol=1e-6)
        np.testing.assert_allclose([n["similarity"] for n in p["neighbours"]],
                                   [n["similarity"] for n in ref["neighbours"]], rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------ bad inputs
def test_mixed_folder_ranks_good_and_skips_broken(ranker, dataset, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    good = sorted(dataset["shoot"].glob("*.jpg"))[:3]
    for p in good:
        shutil.copy(p, folder / p.name)
    expected = broken_photos(folder, good[0])
    (folder / "readme.txt").write_text("a caption draft")
    shutil.copy(good[1], folder / os.fsdecode(b"caf\xe9.jpg"))  # a name that is not UTF-8
    names = {p.name for p in good} | {"caf\\xe9.jpg"}  # shown with its odd byte escaped
    cfg = rank_cfg(tmp_path, f"images={folder}", f"community={ranker.default_community()}")
    result = run(functools.partial(rank, ranker=ranker), cfg)
    assert {p["name"] for p in result["photos"]} == names
    reasons = {Path(s["image"]).name: s["reason"] for s in result["skipped"]}
    assert set(reasons) == {*expected, "readme.txt"}
    for name, start in expected.items():
        assert reasons[name].startswith(start) and reasons[name], (name, reasons[name])
    rows = read_csv(tmp_path / "out" / "ranking.csv")
    assert {Path(r["image"]).name for r in rows} == names | set(reasons)
    assert {r["status"] for r in rows if r["reason"]} == {"skipped"}
    assert "skipped" in capsys.readouterr().out


def test_only_broken_photos_fail_with_one_line(ranker, dataset, tmp_path, capsys):
    folder = tmp_path / "broken"
    broken_photos(folder, next(dataset["shoot"].glob("*.jpg")))
    cfg = rank_cfg(tmp_path, f"images={folder}")
    with pytest.raises(SystemExit) as exit_info:
        run(functools.partial(rank, ranker=ranker), cfg)
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: no photo could be read") and "Traceback" not in "".join(err)


def test_missing_bundle_says_run_train(tmp_path):
    proc = rank_py(f"paths.index_dir={tmp_path / 'empty'}", f"out={tmp_path / 'out'}",
                   cwd=tmp_path)
    assert proc.returncode != 0
    assert "python train.py" in proc.stderr and "Traceback" not in proc.stderr


def test_tampered_bundle_names_the_file(bundle, tmp_path, capsys):
    copy = tmp_path / "index" / "tampered"
    shutil.copytree(bundle, copy)
    target = copy / "communities.json"
    target.write_text(target.read_text().replace('"account"', '"accnt"', 1))
    with pytest.raises(SystemExit) as exit_info:
        run(rank, rank_cfg(tmp_path, f"bundle={copy}"))
    assert exit_info.value.code != 0
    assert str(target) in capsys.readouterr().err


# ------------------------------------------------------------------------------ communities
def test_community_list_prints_them(ranker, tmp_path, capsys):
    result = run(functools.partial(rank, ranker=ranker), rank_cfg(tmp_path, "community=list"))
    out = capsys.readouterr().out
    for name in ranker.communities:
        if ranker.communities[name].kind == "account":
            assert name in out
    assert len(result["communities"]) == len(ranker.communities)
    assert not (tmp_path / "out").exists()


def test_unknown_community_suggests_close_names(ranker, tmp_path, capsys):
    real = ranker.default_community()
    typo = real[:-2] + real[-1]  # one letter dropped
    with pytest.raises(SystemExit) as exit_info:
        run(functools.partial(rank, ranker=ranker), rank_cfg(tmp_path, f"community={typo}"))
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "unknown community" in err and repr(ranker.community_ids[real]) in err
    assert "community=list" in err


# ------------------------------------------------------------------------------ pieces
@pytest.mark.parametrize("workers", [0, 2])
def test_photo_loader_keeps_order_and_reports_errors(dataset, tmp_path, workers):
    shoot = sorted(dataset["shoot"].glob("*.jpg"))[:5]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    paths = shoot[:2] + [bad] + shoot[2:]
    batches = list(photo_loader(paths, 32, batch_size=2, workers=workers))
    assert [len(b["paths"]) + len(b["errors"]) for b in batches] == [2, 2, 2]
    assert [p for b in batches for p in b["paths"]] == shoot
    assert [e.path for b in batches for e in b["errors"]] == [str(bad)]
    images = batches[0]["image"]
    assert images.shape == (2, 3, 32, 32) and str(images.dtype) == "torch.uint8"


def test_suggestion_weights():
    w = neighbour_weights(np.array([0.9, 0.9, -0.2, 0.5]), np.array([1.0, 0.0, 3.0, 10.0]))
    assert w[0] == pytest.approx(0.9 * np.e) and w[1] == pytest.approx(0.9)
    assert w[2] == 0 and w[3] == pytest.approx(0.5 * np.exp(2.0))  # clipped at z = 2
    terms = weighted_terms([["a", "b"], ["b"], ["c", "c"]], np.array([1.0, 1.0, 2.0]), 2, "tag")
    assert terms == [{"tag": "b", "weight": 0.5, "count": 2},
                     {"tag": "c", "weight": 0.5, "count": 1}]


def test_settings_are_checked():
    with pytest.raises(RankError, match="alpha"):
        RankSettings(alpha=1.5)
    with pytest.raises(RankError, match="divergence"):
        RankSettings(divergence="kl")
    with pytest.raises(RankError, match="followers"):
        RankSettings(followers=-3)


def test_the_default_alpha_is_the_bundle_s_choice_and_a_given_one_is_kept(ranker, dataset):
    """rank.alpha=null (the default) uses the weight that ranked the accounts' own validation
    posts best; the result says which weight it used and where it came from."""
    from mmembed.ranking.blend import ALPHA_GRID

    paths = sorted(dataset["shoot"].glob("*.jpg"))[:6]
    community = ranker.default_community()
    chosen = ranker.chosen_alpha(RankSettings())
    assert chosen.alpha in ALPHA_GRID and chosen.posts > 0 and chosen.communities > 0
    assert set(chosen.ndcg) == set(ALPHA_GRID) and chosen.ndcg[chosen.alpha] == max(
        chosen.ndcg.values())
    default = ranked(ranker, paths, community, RankSettings())
    assert default["settings"]["alpha"] == chosen.alpha
    assert default["settings"]["alpha_source"] == chosen.source
    same = ranked(ranker, paths, community, RankSettings(alpha=chosen.alpha))
    assert same["settings"]["alpha_source"] == "rank.alpha"
    assert [p["score"] for p in same["photos"]] == [p["score"] for p in default["photos"]]
    given = ranked(ranker, paths, community, RankSettings(alpha=1.0))
    assert given["settings"]["alpha"] == 1.0
