"""The bundle build at the end of train(): contents, metrics, rebuilds without retraining."""

import numpy as np
import pytest
from conftest import tiny_overrides

from mmembed.build.metrics import topic_shares
from mmembed.bundle import Bundle
from mmembed.config import compose
from mmembed.training import train


def _cfg(root, *overrides):
    return compose(tiny_overrides(root) + list(overrides))


def test_train_ends_with_a_complete_bundle(tiny_run):
    metrics, objects = tiny_run["metrics"], tiny_run["objects"]
    bundle = Bundle.load(objects["bundle"].path)  # verifies every sha256 and the version
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
    clusters = bundle.clusters()
    assert [c.id for c in clusters] == list(range(k)) and all(c.name for c in clusters)
    communities = bundle.communities()
    accounts = [c for c in communities.values() if c.kind == "account"]
    assert accounts and all(abs(sum(c.profile) - 1) < 1e-6 for c in communities.values())
    posts = list(bundle.posts())
    assert len(posts) == len(objects["datamodule"].posts)
    latents = bundle.latents()
    assert latents["latent"].shape[0] == len(posts) and np.isfinite(latents["latent"]).all()
    # the default contrastive latent: a photo's latent is its z_image, one array in the build
    assert objects["model"].image_latent_is_z_image
    np.testing.assert_array_equal(latents["latent_image"], latents["z_image"])
    with np.load(bundle.path / bundle.LATENTS) as stored:  # and stored once
        assert "z_image" in stored.files and "latent_image" not in stored.files
    assert manifest["config"]["cluster"]["_target_"].endswith("KMeansClusterer")


@pytest.mark.parametrize(  # the lda rebuild takes ~10 s: with the long tests
    "method", ["gmm", "pam", pytest.param("lda", marks=pytest.mark.slow)])
def test_rebuild_from_checkpoint_with_another_method_needs_no_training(tiny_run, tmp_path,
                                                                     method):
    checkpoint = tiny_run["objects"]["last_checkpoint"]
    metrics, rebuilt = train(_cfg(tmp_path, "build_only=true", f"ckpt_path={checkpoint}",
                                  f"cluster={method}", "cluster.k=6", f"bundle_name={method}",
                                  f"paths.cache_dir={tiny_run['root'] / 'cache'}"))
    assert rebuilt["trainer"] is None
    bundle = Bundle.load(tmp_path / "index" / method)
    assert bundle.manifest["metrics"]["method"] == method
    assert bundle.manifest["metrics"]["k"] == 6
    assert metrics["bundle/nmi"] == bundle.manifest["metrics"]["nmi"]


def test_rebuild_with_dec_from_a_contrastive_latent_checkpoint_is_a_clear_error(tiny_run,
                                                                              tmp_path):
    # DEC refines an encoder, which the default (contrastive) latent does not have.
    checkpoint = tiny_run["objects"]["last_checkpoint"]
    with pytest.raises(ValueError, match=r"another model.*model/autoencoder=post"):
        train(_cfg(tmp_path, "build_only=true", f"ckpt_path={checkpoint}", "cluster=dec",
                   f"paths.cache_dir={tiny_run['root'] / 'cache'}"))


def test_build_only_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="ckpt_path"):
        train(_cfg(tmp_path, "build_only=true"))


def test_topic_shares_are_what_each_account_posted():
    from types import SimpleNamespace as P

    posts = [P(account="a", topic="x"), P(account="a", topic="x"), P(account="a", topic="y"),
             P(account="b", topic="y"), P(account="c", topic="x")]
    assert topic_shares(posts, ["a", "b"]) == {"a": {"x": 2 / 3, "y": 1 / 3}, "b": {"y": 1.0}}
