"""scripts/evaluation.py: the EVALUATION.md tables and goal verdicts from per-seed results."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluation.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("evaluation_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(nmi, tv, ndcg, baselines, k=6, src=0.7):
    sweep = {"0.0": {"ndcg@10": baselines["fit_only"]}, "0.3": {"ndcg@10": ndcg},
             "1.0": {"ndcg@10": baselines["engagement_only"]}}
    return {"k": k, "nmi": nmi, "image_only_nmi": nmi, "image_only_agreement": 0.95,
            "profile_tv": tv, "profile_tv_shares": tv / 2, "engagement_src": src,
            "pairwise_accuracy": 0.6, "ndcg@10": ndcg, "precision@10": 0.4, "train_s": 60.0,
            "baselines": {name: {"ndcg@10": v, "precision@10": 0.1}
                          for name, v in baselines.items()} | {
                "alpha_sweep": {a: {**v, "precision@10": 0.1} for a, v in sweep.items()}}}


BASE = {"random": 0.07, "engagement_only": 0.12, "fit_only": 0.30}


def test_markdown_has_means_spreads_and_honest_verdicts(script, tmp_path):
    results = {
        "synthetic": {
            "joint_clip": [_run(0.99, 0.09, 0.35, BASE), _run(0.97, 0.13, 0.28, BASE)],
            "seed_baseline": [_run(0.5, 0.4, 0.2, BASE), {"error": "train.py exited with 1"}],
        },
        "tuxpaint": {"joint_clip": [_run(0.40, 0.5, 0.2, BASE, k=3),
                                    _run(0.50, 0.5, 0.2, BASE, k=4)]},
    }
    refs = {"tuxpaint": [{"k_bundle": 3, "k_topics": 15, "by_k": {3: {"nmi": 0.41},
                                                                 15: {"nmi": 0.6}}},
                         {"k_bundle": 4, "k_topics": 15, "by_k": {4: {"nmi": 0.42},
                                                                 15: {"nmi": 0.6}}}]}
    env = {"date": "2026-01-01 00:00", "commit": "abc1234", "dirty": False, "cpus": 2,
           "python": "3.11", "torch": "2.14"}
    md = tmp_path / "EVALUATION.md"
    script.write_markdown(md, results, refs, [0, 1], 12.0, env)
    text = md.read_text()
    assert "commit `abc1234`" in text and "mean ± standard deviation over 2 seeds" in text
    assert "| nmi | ≥ 0.90 | 0.980 | **met** (2 of 2 seeds) |" in text
    # mean TV 0.11 misses 0.10 by 0.01; one seed of two met it
    assert "| profile_tv | ≤ 0.10 | 0.110 | **missed by 0.010** (1 of 2 seeds) |" in text
    # seed 1's NDCG (0.28) is below fit-only (0.30): the ranking goal is missed
    assert "**missed** (1 of 2 seeds)" in text
    assert "| joint_clip | 6, 6 | 0.980 ± 0.014 |" in text
    assert "| seed_baseline (1 of 2 runs failed) |" in text
    # Tux Paint: 0.45 mean vs the reference's 0.415 at the same K; seed 0 alone lost (0.40 < 0.41)
    assert "0.450 vs 0.415 | **met** (1 of 2 seeds)" in text
    assert "k-means on frozen features (K = number of topics) | 15, 15 | 0.600 ± 0.000" in text


def test_render_rewrites_from_saved_json(script, tmp_path):
    saved = {"seeds": [0], "minutes": 1.0,
             "environment": {"date": "d", "commit": "c", "dirty": True, "cpus": 2,
                             "python": "3.11", "torch": "t"},
             "results": {"synthetic": {"joint_clip": [_run(0.9, 0.1, 0.3, BASE)]}},
             "reference": {"synthetic": [{"k_bundle": 6, "k_topics": 6,
                                          "by_k": {"6": {"nmi": 0.8}}}]}}
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps(saved))
    md = tmp_path / "out.md"
    assert script.main(["--render", str(path), "--md", str(md)]) == 0
    text = md.read_text()
    assert "(with uncommitted changes)" in text and "result of one seed (0)" in text
    assert "| k-means on frozen features (joint_clip's K = number of topics) | 6 | 0.800 |" in text


def test_refuses_to_empty_a_folder_it_did_not_make(script, tmp_path, capsys):
    keep = tmp_path / "precious.txt"
    keep.write_text("mine")
    with pytest.raises(SystemExit):
        script.main(["--out", str(tmp_path), "--seeds", "0"])
    assert keep.read_text() == "mine"
    assert "not an earlier evaluation folder" in capsys.readouterr().err
