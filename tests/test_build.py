"""The bundle build at the end of train(): contents, metrics, rebuilds without retraining."""

import json

import numpy as np
import pytest

from mmembed.build import topic_shares
from mmembed.bundle import read_bundle
from mmembed.config import compose
from mmembed.training import train

TINY = [
    "data.num_posts=180", "data.image_size=32", "data.shoot_size=6",
    "datamodule.image_size=32", "datamodule.batch_size=32", "print_config=false",
    "trainer.enable_progress_bar=false", "trainer.max_epochs=4", "trainer.min_epochs=1",
    "logger=csv",
    "model.image_tower.input_size=64",
]


def _cfg(root, *overrides):
    return compose(TINY + [f"paths.output_dir={root / 'run'}", f"paths.cache_dir={root / 'cache'}",
                           f"paths.index_dir={root / 'index'}", *overrides])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    metrics, objects = train(_cfg(root, "bundle_name=tiny"))
    return root, metrics, objects


def test_train_ends_with_a_complete_bundle(trained, capsys):
    root, metrics, objects = trained
    bundle = read_bundle(root / "index" / "tiny")  # verifies every sha256 and the version
    manifest = bundle.manifest
    for name in ("model.safetensors", "clusters.npz", "clusters.json", "communities.json",
                 "posts.jsonl", "posts.faiss", "latents.npz", "pictures/map.png",
                 "pictures/communities.html", "pictures/cluster_00.png"):
        assert name in manifest["files"] and len(manifest["files"][name]["sha256"]) == 64, name
    k = manifest["metrics"]["k"]
    for key in ("nmi", "ari", "silhouette", "davies_bouldin", "stability_ari", "profile_tv",
                "image_only_agreement", "image_only_nmi"):
        assert key in manifest["metrics"], key
    assert 0.0 <= manifest["metrics"]["nmi"] <= 1.0
    m = manifest["metrics"]
    for key in ("profile_tv", "profile_tv_shares", "profile_tv_sampling"):
        assert 0.0 <= m[key] <= 1.0, key
    # TV is a metric: the error against the plan is at most the model's error against what was
    # posted plus the sampling error of what was posted against the plan (per account, so also
    # on average)
    assert m["profile_tv"] <= m["profile_tv_shares"] + m["profile_tv_sampling"] + 1e-9
    assert metrics["bundle/k"] == k
    clusters = bundle.json("clusters.json")
    assert len(clusters["clusters"]) == k and all(c["name"] for c in clusters["clusters"])
    communities = bundle.json("communities.json")
    accounts = [c for c in communities.values() if c["kind"] == "account"]
    assert accounts and all(abs(sum(c["profile"]) - 1) < 1e-6 for c in communities.values())
    posts = [json.loads(line) for line in bundle.file("posts.jsonl").read_text().splitlines()]
    assert len(posts) == len(objects["datamodule"].posts)
    latents = bundle.npz("latents.npz")
    assert latents["latent"].shape[0] == len(posts) and np.isfinite(latents["latent"]).all()
    assert manifest["config"]["cluster"]["_target_"].endswith("KMeansClusterer")


@pytest.mark.parametrize("method", ["gmm", "pam", "dec", "lda"])
def test_rebuild_from_checkpoint_with_another_method_needs_no_training(trained, method):
    root, _, objects = trained
    checkpoint = objects["best_checkpoint"]
    metrics, rebuilt = train(_cfg(root / method, "build_only=true", f"ckpt_path={checkpoint}",
                                  f"cluster={method}", "cluster.k=6", f"bundle_name={method}",
                                  f"paths.cache_dir={root / 'cache'}"))
    assert rebuilt["trainer"] is None
    bundle = read_bundle(root / method / "index" / method)
    assert bundle.manifest["metrics"]["method"] == method
    assert bundle.manifest["metrics"]["k"] == 6
    assert metrics["bundle/nmi"] == bundle.manifest["metrics"]["nmi"]


def test_build_only_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="ckpt_path"):
        train(_cfg(tmp_path, "build_only=true"))


def test_topic_shares_are_what_each_account_posted():
    from types import SimpleNamespace as P

    posts = [P(account="a", topic="x"), P(account="a", topic="x"), P(account="a", topic="y"),
             P(account="b", topic="y"), P(account="c", topic="x")]
    assert topic_shares(posts, ["a", "b"]) == {"a": {"x": 2 / 3, "y": 1 / 3}, "b": {"y": 1.0}}
