"""A shared bundle runs no code: its manifest's config builds only mmembed's own classes."""

import json
import pickle
import shutil

import numpy as np
import pytest

from mmembed.allowlist import BUILDABLE, UnsafeConfigError, build, check_targets
from mmembed.bundle import Bundle, BundleError
from mmembed.cli.rank import default_images
from mmembed.ranking.ranker import Ranker


def attacks(tmp_path):
    """``name -> (_target_ config, the file it would create)`` for five harmful targets."""
    src = tmp_path / "payload.npy"
    with open(src, "wb") as fh:
        pickle.dump({"x": 1}, fh)
    return {
        "pathlib.Path.touch": ({"_target_": "pathlib.Path.touch",
                                "_args_": [str(tmp_path / "touched")]}, tmp_path / "touched"),
        "builtins.open": ({"_target_": "builtins.open",
                           "_args_": [str(tmp_path / "opened"), "w"]}, tmp_path / "opened"),
        "numpy.load": ({"_target_": "numpy.load", "file": str(src), "allow_pickle": True,
                        "_partial_": False}, None),
        "shutil.copyfile": ({"_target_": "shutil.copyfile",
                             "_args_": [str(src), str(tmp_path / "copied")]},
                            tmp_path / "copied"),
        "os.system": ({"_target_": "os.system",
                       "_args_": [f"touch {tmp_path / 'system'}"]}, tmp_path / "system"),
    }


def tampered_copy(bundle, tmp_path, edit):
    copy = tmp_path / "index" / "tampered"
    shutil.copytree(bundle, copy)
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    edit(manifest["config"])
    manifest_path.write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize("name", sorted(BUILDABLE))
def test_every_buildable_name_is_a_class_at_that_name(name):
    """Bundles store these dotted names: moving a class must leave it importable under them."""
    from hydra.utils import get_class

    cls = get_class(name)
    assert isinstance(cls, type) and cls.__qualname__ == name.rsplit(".", 1)[1]


@pytest.mark.parametrize("target", ["pathlib.Path.touch", "builtins.open", "numpy.load",
                                    "shutil.copyfile", "os.system"])
def test_manifest_targets_three_levels_down_are_refused(tiny_bundle, tmp_path, target):
    payload, created = attacks(tmp_path)[target]

    def edit(config):  # model -> image_tower -> options -> hook: three levels below model
        config["model"]["image_tower"]["options"] = {"hook": payload}

    copy = tampered_copy(tiny_bundle, tmp_path, edit)
    bundle = Bundle.load(copy)
    with pytest.raises(BundleError) as err:
        bundle.model()
    message = str(err.value)
    assert "config.model.image_tower.options.hook._target_" in message
    assert repr(target) in message and "manifest.json" in message
    if created is not None:
        assert not created.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index", "payload.npy"]


def test_manifest_target_in_args_list_and_partial_is_refused(tiny_bundle, tmp_path):
    def edit(config):
        config["model"]["text_tower"]["_args_"] = [
            {"_target_": "builtins.open", "_partial_": True,
             "_args_": [str(tmp_path / "opened"), "w"]}]

    copy = tampered_copy(tiny_bundle, tmp_path, edit)
    with pytest.raises(BundleError, match=r"text_tower\._args_\[0\]\._target_='builtins.open'"):
        Ranker.from_bundle(copy)
    assert not (tmp_path / "opened").exists()


def test_model_target_itself_must_be_a_model_class(tiny_bundle, tmp_path):
    def edit(config):
        config["model"]["_target_"] = "mmembed.models.joint.JointEmbedding.__init__"

    copy = tampered_copy(tiny_bundle, tmp_path, edit)
    with pytest.raises(BundleError, match="refused to build config.model._target_"):
        Ranker.from_bundle(copy)


def test_data_config_for_the_default_shoot_is_checked(tiny_bundle, tmp_path):
    def edit(config):
        config["data"]["seed"] = {"_target_": "pathlib.Path.touch",
                                  "_args_": [str(tmp_path / "touched")]}

    copy = tampered_copy(tiny_bundle, tmp_path, edit)
    ranker = Ranker.from_bundle(copy, load_weights=False)
    with pytest.raises(BundleError, match=r"config\.data\.seed\._target_"):
        default_images(ranker.bundle, tmp_path / "cache")
    assert not (tmp_path / "touched").exists()


def test_default_shoot_is_generated_under_the_local_cache_not_the_bundles(tiny_bundle,
                                                                            tmp_path):
    elsewhere = tmp_path / "elsewhere"

    def edit(config):
        config["data"]["cache_dir"] = str(elsewhere)

    copy = tampered_copy(tiny_bundle, tmp_path, edit)
    ranker = Ranker.from_bundle(copy, load_weights=False)
    shoot = default_images(ranker.bundle, tmp_path / "cache")
    assert shoot.is_relative_to((tmp_path / "cache").resolve())
    assert sorted(shoot.glob("*.jpg")) and not elsewhere.exists()


def test_check_targets_walks_every_depth():
    good = {"_target_": "mmembed.models.joint.JointEmbedding",
            "image_tower": {"_target_": "mmembed.models.towers.SmallCNNTower"},
            "list": [1, "x", {"a": [{"b": 2}]}]}
    check_targets(good, "m.json")
    bad = {"a": [{"b": [{"c": {"_target_": "subprocess.run"}}]}]}
    with pytest.raises(UnsafeConfigError, match=r"a\[0\]\.b\[0\]\.c\._target_='subprocess.run'"):
        check_targets(bad, "m.json")
    with pytest.raises(UnsafeConfigError, match="_target_"):
        check_targets({"_target_": ["os", "system"]}, "m.json")
    with pytest.raises(UnsafeConfigError, match="interpolation"):
        check_targets({"x": "${oc.env:HOME}"}, "m.json")


def test_build_makes_allowed_classes():
    tower = build({"_target_": "mmembed.models.towers.SmallCNNTower", "width": 8, "out_dim": 16,
                   "input_size": 32}, "test")
    assert tower.out_dim == 16
    assert np.isfinite(tower(__import__("torch").rand(2, 3, 32, 32)).detach().numpy()).all()
