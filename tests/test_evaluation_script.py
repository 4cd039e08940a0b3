"""scripts/evaluation.py: per-seed result files, their merge, and the EVALUATION.md verdicts."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluation.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("evaluation_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BASE = {"random": 0.07, "engagement_only": 0.12, "cluster_kl_only": 0.20, "fit_only": 0.30}


def _run(nmi, ndcg, k=6, nmi_train=None, image_nmi=None, tv=0.05, tied=0.0, src=0.7,
         baselines=BASE):
    sweep = {"0.0": {"ndcg@10": baselines["fit_only"]}, "0.3": {"ndcg@10": ndcg},
             "1.0": {"ndcg@10": baselines["engagement_only"]}}
    return {"held_out": 60, "k": k, "nmi": nmi,
            "nmi_train": nmi if nmi_train is None else nmi_train,
            "image_only_nmi": nmi if image_nmi is None else image_nmi,
            "image_only_agreement": 0.95, "profile_tv": tv, "profile_tv_shares": tv / 2,
            "engagement_src": src, "pairwise_accuracy": 0.6, "ndcg@10": ndcg,
            "precision@10": 0.4, "tied_fit_top20": tied, "train_s": 60.0,
            "baselines": {name: {"ndcg@10": v, "precision@10": 0.1}
                          for name, v in baselines.items()} | {"alpha_sweep": sweep}}


def _ref(k_bundle, k_topics, concat, image=0.3):
    # as saved in JSON: the K keys are strings
    return {"k_bundle": k_bundle, "k_topics": k_topics,
            "concat": {"by_k": {str(k_bundle): {"nmi": concat}, str(k_topics): {"nmi": 0.7}}},
            "image": {"by_k": {str(k_bundle): {"nmi": image}, str(k_topics): {"nmi": 0.4}}}}


def _record(data, seed, experiments, ref, command="python scripts/evaluation.py --data x",
            commit="abc1234", wall_s=600.0):
    env = {"date": "2026-01-01 00:00 UTC", "commit": commit, "dirty": False, "cpus": 2,
           "python": "3.11", "torch": "2.14", "load_average": 3.5}
    return {"data": data, "seed": seed, "command": command, "environment": env,
            "wall_s": wall_s, "experiments": experiments, "reference": ref}


def _save(out, rec):
    path = out / "results" / f"{rec['data']}-s{rec['seed']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))


def _row(text, start):
    return next(line for line in text.splitlines() if line.startswith(start))


def test_goals_are_judged_seed_by_seed_in_plain_words(script, tmp_path):
    out = tmp_path / "out"
    # seed 0 beats the concatenated reference (0.60 vs 0.55); seed 1 does not (0.50 vs 0.52)
    _save(out, _record("tuxpaint", 0, {"joint_clip": _run(0.60, 0.35, k=14, nmi_train=0.62,
                                                          image_nmi=0.57) | {
        "nmi_chance": 0.3, "nmi_train_chance": 0.05,
        "settings": {"alpha": 0.1, "alpha_source": "chosen on 40 held-out posts of 8"}}},
                       _ref(14, 15, concat=0.55)))
    _save(out, _record("tuxpaint", 1, {"joint_clip": _run(0.50, 0.25, k=5, nmi_train=0.70,
                                                          image_nmi=0.40, tied=0.2) | {
        "settings": {"alpha": 0.3, "alpha_source": "rank.alpha"}},
                                       "seed_baseline": _run(0.3, 0.2)},
                       _ref(5, 15, concat=0.52)))
    md = tmp_path / "EVALUATION.md"
    assert script.main(["--render", str(out), "--md", str(md)]) == 0
    text = md.read_text()
    row = _row(text, "| held-out NMI at or above k-means on concatenated")
    assert "0.600 vs 0.550: met" in row and "0.500 vs 0.520: not met" in row
    assert "**not met** (met on 1 of 2 seeds)" in row
    # image-only 0.57/0.60 = 0.95 met; 0.40/0.50 = 0.80 not met
    assert "0.950: met" in _row(text, "| image-only NMI ÷ full-post NMI")
    assert "0.800: not met" in _row(text, "| image-only NMI ÷ full-post NMI")
    # gap 0.02 met, 0.20 not met
    gap = _row(text, "| training-post NMI − held-out NMI")
    assert "0.020 (by chance alone 0.05 training, 0.30 held-out): met" in gap
    assert "0.200: not met" in gap
    # chance-adjusted: (0.62 - 0.05) / 0.95 - (0.60 - 0.30) / 0.70 = 0.171, not met; seed 1 has
    # no chance levels
    assert "| 0.171: not met | – |" in _row(text, "| the same gap in chance-adjusted NMI")
    # K 14 of 15 is within 20%; K 5 is not
    k = _row(text, "| auto-K")
    assert "K = 14 for 15: met" in k and "K = 5 for 15: not met" in k
    # seed 1's default ranking (0.25) is below fit only (0.30)
    assert "0.250 vs 0.300 (fit only (α = 0)): not met" in _row(text, "| default ranking's")
    # the ranking table names each seed's alpha, and whether the bundle chose it
    ranking = next(line for line in text.splitlines()
                   if line.startswith("| joint_clip |") and "of 2 seeds |" in line)
    assert ranking.startswith("| joint_clip | 0.300 ± 0.071 | 0.1, 0.3 (fixed) | ")
    # the synthetic-only goals do not appear for Tux Paint
    assert "| profile TV | ≤ 0.10" not in text
    assert "Only 2 of the 3 seeds were run on this source" in text
    assert "| joint_clip (seeds" not in text
    assert "| seed_baseline (seed 1 only) | 60 | 6 | 0.300 |" in text
    assert "| joint_clip | 60, 60 | 14, 5 | 0.550 ± 0.071 | 0.300 | 0.660 ± 0.057 |" in text
    assert "**not met** (met on 0 of 2 seeds)" in _row(text, "| the same gap in chance")
    concat = _row(text, "| k-means on concatenated frozen image + text features (joint_clip's K)")
    assert "| 14, 5 | 0.535 ± 0.021 |" in concat
    assert "(frozen-feature k-means" not in text  # these references have no training NMI
    assert "| 15, 15 | 0.700 ± 0.000 |" in _row(
        text, "| k-means on concatenated frozen image + text features (K = true categories)")


def test_the_reference_shows_its_own_train_versus_held_out_gap(script, tmp_path):
    out = tmp_path / "out"
    ref = _ref(14, 15, concat=0.55)
    ref["concat"]["by_k"]["14"].update(nmi_chance=0.30, nmi_train=0.60, nmi_train_chance=0.05)
    _save(out, _record("tuxpaint", 0, {"joint_clip": _run(0.60, 0.35, k=14, nmi_train=0.62,
                                                          image_nmi=0.57) | {
        "nmi_chance": 0.3, "nmi_train_chance": 0.05}}, ref))
    md = tmp_path / "EVALUATION.md"
    assert script.main(["--render", str(out), "--md", str(md)]) == 0
    text = md.read_text()
    # reference: (0.60 - 0.05) / 0.95 - (0.55 - 0.30) / 0.70 = 0.222; the model's 0.171
    assert "0.171 (frozen-feature k-means: 0.222): not met" in _row(
        text, "| the same gap in chance-adjusted NMI")
    concat = _row(text, "| k-means on concatenated frozen image + text features (joint_clip's K)")
    assert "| 0.550 | 0.300 | 0.600 | 0.050 | 0.050 | 0.222 |" in concat


def test_the_pooled_comparison_puts_every_seeds_communities_together(script, tmp_path):
    out = tmp_path / "out"
    default = [0.5, 0.4, 0.6]
    for seed, noise in ((0, [0.1, -0.1, 0.05]), (1, [-0.05, 0.0, 0.0])):
        by = {"default": default, "fit_only": [v - 0.2 for v in default],
              "random": [v - e for v, e in zip(default, noise)],
              "engagement_only": [v + 0.3 for v in default],
              "cluster_kl_only": [v - 0.1 * (i + 1) for i, v in enumerate(default)]}
        _save(out, _record("tuxpaint", seed, {"joint_clip": _run(0.6, 0.5) | {
            "ndcg@10_by_community": by}}, _ref(6, 15, concat=0.5)))
    md = tmp_path / "EVALUATION.md"
    assert script.main(["--render", str(out), "--md", str(md)]) == 0
    text = md.read_text()
    # fit only: +0.2 on each of the 6 pairs; engagement only: -0.3 on each
    assert ("| fit only (α = 0) | 6 | +0.200 | +0.200 to +0.200 | 6 / 0 / 0 | default ahead |"
            in text)
    assert ("| engagement only (α = 1) | 6 | -0.300 | -0.300 to -0.300 | 0 / 0 / 6 | "
            "default behind |") in text
    # random: +0.1, -0.1, +0.05, -0.05, 0, 0 -- a mean of 0 the pairs cannot tell from 0
    random = _row(text, "| random | 6 | +0.000 |")
    assert "| 2 / 2 / 2 | no difference these pairs can show |" in random
    low, high = (float(x) for x in random.split("|")[4].split(" to "))
    assert low < 0 < high
    kl = _row(text, "| cluster KL only | 6 | +0.200 |")
    assert kl.endswith("| 6 / 0 / 0 | default ahead |")


def test_the_pooled_comparison_says_when_the_runs_did_not_keep_it(script, tmp_path):
    out = tmp_path / "out"
    _save(out, _record("tuxpaint", 0, {"joint_clip": _run(0.6, 0.5)}, _ref(6, 15, concat=0.5)))
    md = tmp_path / "EVALUATION.md"
    assert script.main(["--render", str(out), "--md", str(md)]) == 0
    assert "were not kept by these runs (`--render OUT --fill-chance` adds them" in md.read_text()


def test_fill_evaluates_a_saved_bundle_again_only_where_it_gives_the_saved_figures(
        script, tiny_bundle, tmp_path):
    from mmembed.evaluate import EvalSettings, evaluate

    saved = evaluate(tiny_bundle, EvalSettings())
    kept = saved.pop("ndcg@10_by_community")
    saved.update(nmi_chance=0.1, nmi_train_at_held_size=0.9)  # the small-sample figures: kept
    out = tmp_path / "out"
    _save(out, _record("synthetic", 0, {"joint_clip": dict(saved)}, None))
    changed = dict(saved, **{"ndcg@10": saved["ndcg@10"] + 0.1})
    _save(out, _record("synthetic", 1, {"joint_clip": changed}, None))
    assert script.fill_chance([out]) == 1  # seed 0 only: seed 1's saved NDCG@10 differs
    seed0 = json.loads((out / "results" / "synthetic-s0.json").read_text())
    run = seed0["experiments"]["joint_clip"]
    assert run["ndcg@10_by_community"] == kept and run["by_community_filled_later"]
    seed1 = json.loads((out / "results" / "synthetic-s1.json").read_text())
    assert "ndcg@10_by_community" not in seed1["experiments"]["joint_clip"]


def test_sources_from_separate_runs_merge_each_with_its_own_provenance(script, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for seed in (0, 1, 2):
        _save(first, _record("synthetic", seed,
                             {"joint_clip": _run(0.99, 0.40), "seed_baseline": {
                                 "error": "train.py exited with 1"}},
                             _ref(6, 6, concat=0.9), command="python scripts/evaluation.py "
                             "--data synthetic tuxpaint --seeds 0 1 2", wall_s=300))
    _save(second, _record("openclipart", 0, {"joint_clip": _run(0.5, 0.3, k=12) | {
        "cluster": {"k": "auto", "k_range": [3, 12]}}},
                          _ref(12, 21, concat=0.45), commit="def5678",
                          command="python scripts/evaluation.py --data openclipart --seeds 0"))
    # a stale record of the same source and seed in the earlier folder loses to the later one
    _save(first, _record("openclipart", 0, {"joint_clip": _run(0.1, 0.1)}, None))
    md = tmp_path / "EVALUATION.md"
    assert script.main(["--render", str(first), str(second), "--md", str(md)]) == 0
    text = md.read_text()
    assert text.index("## Synthetic") < text.index("## Open Clip Art")
    assert ("- joint_clip, seed_baseline, seeds 0, 1, 2: `python scripts/evaluation.py --data "
            "synthetic tuxpaint --seeds 0 1 2` at commit `abc1234`") in text
    assert "15 min on 2 CPU cores" in text
    assert ("- joint_clip, seed 0: `python scripts/evaluation.py --data openclipart --seeds 0` "
            "at commit `def5678`") in text
    assert "K = 12 for 21 (auto-K searches 3–12 only): not met" in text
    assert "0.500 vs 0.450: met" in text
    assert "| seed_baseline (3 of 3 runs failed) |" in text
    assert "Only 1 of the 3 seeds was run on this source" in text
    assert "| held-out NMI | ≥ 0.90 | 0.990: met | 0.990: met | 0.990: met | **met** on every" \
        in text
    assert "data.max_posts=3000" in text
    assert "Not run on this source: scratch_clip, image_ae, seed_baseline" in text


def test_a_later_run_of_other_rows_adds_them_to_the_seed(script, tmp_path):
    first = _record("tuxpaint", 0, {"joint_clip": _run(0.6, 0.3, k=14)}, _ref(14, 15, 0.5),
                    command="python scripts/evaluation.py --experiments joint_clip", wall_s=60)
    second = _record("tuxpaint", 0, {"seed_baseline": _run(0.3, 0.2)}, None,
                     command="python scripts/evaluation.py --experiments seed_baseline",
                     wall_s=120, commit="fff0000")
    merged = script.merge_record(first, second)
    assert set(merged["experiments"]) == {"joint_clip", "seed_baseline"}
    assert merged["reference"] == first["reference"]  # the reference follows joint_clip
    assert [i["experiments"] for i in merged["invocations"]] == [["joint_clip"],
                                                                 ["seed_baseline"]]
    # running joint_clip again replaces its row and its invocation, and keeps seed_baseline
    third = _record("tuxpaint", 0, {"joint_clip": _run(0.7, 0.4, k=15)}, _ref(15, 15, 0.6),
                    command="python scripts/evaluation.py --experiments joint_clip")
    again = script.merge_record(merged, third)
    assert again["experiments"]["joint_clip"]["nmi"] == 0.7
    assert again["reference"]["k_bundle"] == 15
    assert [i["environment"]["commit"] for i in again["invocations"]] == ["fff0000", "abc1234"]
    out = tmp_path / "out"
    _save(out, again)
    md = tmp_path / "EVALUATION.md"
    script.main(["--render", str(out), "--md", str(md)])
    text = md.read_text()
    assert "| seed_baseline | 60 | 6 | 0.300 |" in text  # all of the section's one seed
    assert "| joint_clip | 60 | 15 | 0.700 |" in text
    assert "- seed_baseline, seed 0: `python scripts/evaluation.py --experiments seed_baseline` " \
        "at commit `fff0000`" in text and "2 min on 2 CPU cores" in text


def test_a_missing_folder_says_what_to_do(script, tmp_path):
    with pytest.raises(SystemExit, match="no results"):
        script.main(["--render", str(tmp_path), "--md", str(tmp_path / "x.md")])


def test_refuses_a_folder_it_did_not_make(script, tmp_path, capsys):
    keep = tmp_path / "precious.txt"
    keep.write_text("mine")
    with pytest.raises(SystemExit):
        script.main(["--out", str(tmp_path), "--seeds", "0"])
    assert keep.read_text() == "mine"
    assert "not an earlier evaluation folder" in capsys.readouterr().err


def test_openclipart_runs_are_capped(script, tmp_path):
    cmd = script.train_command("joint_clip", "openclipart", 1, tmp_path, tmp_path / "cache")
    assert "data=openclipart" in cmd and "data.max_posts=3000" in cmd and "seed=1" in cmd
    assert not any("max_posts" in c for c in script.train_command(
        "joint_clip", "tuxpaint", 1, tmp_path, tmp_path / "cache"))


def test_chance_nmi_shows_how_much_nmi_few_posts_give_for_nothing(script, monkeypatch, tmp_path):
    import mmembed.bundle

    rng = np.random.default_rng(0)
    # 2,000 training posts and 40 held-out ones, 10 topics, clusters equal to the topics
    topics = rng.integers(0, 10, 2040)
    rows = [{"topic": f"t{t}", "cluster": int(t), "split": "test" if i < 40 else "train"}
            for i, t in enumerate(topics)]

    class FakeBundle:
        def posts(self):
            return iter(rows)

    monkeypatch.setattr(mmembed.bundle.Bundle, "load", classmethod(lambda cls, *a, **k:
                                                                   FakeBundle()))
    chance = script.small_sample_nmis(tmp_path, seed=0, repeats=30, sample_repeats=20)
    # the clusters match the topics perfectly (NMI 1), but shuffled they still score a lot
    # on 40 posts and almost nothing on 2,000
    assert chance["nmi_chance"] > 0.2
    assert chance["nmi_train_chance"] < 0.02
    # perfect clusters on both sets have no gap, whatever chance gives each
    perfect = {"nmi": 1.0, "nmi_train": 1.0, "nmi_chance": 0.04, "nmi_train_chance": 0.004}
    assert script.metric(perfect, "nmi_gap_above_chance") == pytest.approx(0.0)
    # measured at the held-out size, the training posts' perfect clusters are perfect too
    assert chance["nmi_train_at_held_size"] == pytest.approx(1.0)
    same = {"nmi_train_at_held_size": chance["nmi_train_at_held_size"]}
    assert script.metric({**perfect, **same}, "nmi_gap_same_size") == pytest.approx(0.0)


def test_the_auto_k_criteria_table_marks_the_ks_near_the_truth(script, tmp_path):
    out = tmp_path / "out"
    _save(out, _record("tuxpaint", 0, {"joint_clip": _run(0.60, 0.35, k=14)},
                       _ref(14, 15, concat=0.55)))
    curves = {"silhouette": {str(k): 0.1 for k in range(3, 41)}}
    rows = [{"bundle": "joint_clip-tuxpaint-s0", "posts": 380, "true_k": 15,
             "picked": {"silhouette": 28, "capped": 13, "capped1": 10, "bic": 4, "stability": 3,
                        "gap": 7, "floor": 28},
             "held_out_nmi": {"silhouette": 0.65, "capped": 0.64, "capped1": 0.60, "bic": 0.51,
                              "stability": 0.47, "gap": 0.57, "floor": 0.65}, "curves": curves}]
    (out / "k_criteria.json").write_text(json.dumps(rows))
    md = tmp_path / "EVALUATION.md"
    assert script.main(["--render", str(out), "--md", str(md)]) == 0
    text = md.read_text()
    assert "## Choosing K" in text and "from 3 to 40" in text
    row = _row(text, "| joint_clip-tuxpaint-s0 | 380 | 15 |")
    assert "| 28 (0.650) | **13 (0.640)** | 10 (0.600) | 4 (0.510) |" in row
    assert ("mean silhouette of 5 fits, K ≤ √(N/2) (the default) 1 of 1; silhouette of one fit, "
            "K ≤ √(N/2) (the default before) 0 of 1; BIC (diagonal GMM) 0 of 1") in text
    # rows without a date or commit say the table may be older than the runs above it
    assert "dates and commit were not recorded: it may predate the runs" in text
    rows[0].update(created="2026-12-04T18:00:00+00:00", commit="abc1234")
    (out / "k_criteria.json").write_text(json.dumps(rows))
    assert script.main(["--render", str(out), "--md", str(md)]) == 0
    assert "Bundles built 2026-12-04; criteria run at commit `abc1234`." in md.read_text()
    # rows saved before a criterion existed still render, without its column
    for r in rows:
        del r["picked"]["capped1"], r["held_out_nmi"]["capped1"]
    (out / "k_criteria.json").write_text(json.dumps(rows))
    assert script.main(["--render", str(out), "--md", str(md)]) == 0
    assert "| 28 (0.650) | **13 (0.640)** | 4 (0.510) |" in _row(
        md.read_text(), "| joint_clip-tuxpaint-s0 | 380 | 15 |")
