"""Towers beyond the packaged ones: any torchvision model, any timm model, the two halves of an
open_clip model. Built through their configs with random weights and with small checkpoints the
tests save themselves; a bundle trained with them loads again through ``Ranker.from_bundle``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from safetensors.torch import save_file

from mmembed.models.towers import (
    HubDownloadError,
    OpenCLIPImageTower,
    OpenCLIPTextTower,
    TimmTower,
    TorchvisionTower,
    WeightsMismatchError,
    open_clip_model,
)

CONF = Path(__file__).resolve().parent.parent / "conf" / "model"
CAPTIONS = ["Sending it at the crag #rockclimbing @alex_h", "pizza night #foodporn", "", None]


def from_config(group: str, config: str, **settings):
    """The tower a ``model/<group>=<config>`` config builds, with ``settings`` overridden."""
    cfg = OmegaConf.load(CONF / group / f"{config}.yaml")
    return instantiate(OmegaConf.merge(cfg, settings)).eval()


def images(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 40, 52, generator=torch.Generator().manual_seed(seed))


def run(tower, batch):
    with torch.no_grad():
        return tower(batch)


def differ(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` differ by more than 0.1% of their scale (random-init networks
    in eval mode can give tiny activations, which an absolute tolerance would call equal)."""
    scale = max(a.abs().max().item(), b.abs().max().item())
    return scale > 0 and (a - b).abs().max().item() > 1e-3 * scale


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` agree to 1e-4 of their scale (float rounding only)."""
    scale = max(a.abs().max().item(), b.abs().max().item())
    return a.shape == b.shape and scale > 0 and (a - b).abs().max().item() <= 1e-4 * scale


# --------------------------------------------------------------------------------- torchvision
def torchvision_state(arch: str, seed: int) -> dict[str, torch.Tensor]:
    """A full torchvision state dict (classifier included), seeded random weights."""
    from torchvision.models import get_model

    torch.manual_seed(seed)
    return {k: v.clone() for k, v in get_model(arch, weights=None).state_dict().items()}


@pytest.mark.parametrize("arch, dim", [("mobilenet_v3_small", 1024),
                                       ("shufflenet_v2_x0_5", 1024), ("regnet_x_400mf", 400)])
def test_any_torchvision_model_by_name(arch, dim):
    tower = from_config("image_tower", "torchvision", arch=arch, input_size=48)
    assert tower.feature_dim == tower.out_dim == dim and not tower.pretrained
    out = run(tower, images())
    assert out.shape == (3, dim) and torch.isfinite(out).all()
    assert torch.equal(out, run(tower, images()))  # deterministic in eval mode
    assert differ(out[0], out[1])  # depends on the image


def test_torchvision_checkpoint_is_really_used(tmp_path):
    from torchvision.models import get_model

    arch = "mobilenet_v3_small"
    state = torchvision_state(arch, seed=7)
    path = tmp_path / f"{arch}.safetensors"
    save_file(state, str(path))
    loaded = from_config("image_tower", "torchvision", arch=arch, weights=str(path), input_size=48)
    other = from_config("image_tower", "torchvision", arch=arch, input_size=48)
    assert loaded.pretrained
    batch = images()
    out = run(loaded, batch)
    assert differ(out, run(other, batch))
    # The same file through torchvision itself, classifier's last layer off: the same features.
    reference = get_model(arch, weights=None).eval()
    reference.load_state_dict(state)
    reference.classifier[3] = torch.nn.Identity()
    with torch.no_grad():
        expected = reference(loaded.preprocess(batch))
    assert same(out, expected)
    # A .pth state dict without the classifier loads the same weights.
    torch.save({k: v for k, v in state.items() if not k.startswith("classifier.3.")},
               tmp_path / "backbone.pth")
    again = from_config("image_tower", "torchvision", arch=arch, input_size=48,
                        weights=str(tmp_path / "backbone.pth"))
    assert torch.equal(run(again, batch), out)


def test_torchvision_mismatched_and_missing_checkpoints(tmp_path):
    path = tmp_path / "resnet18.safetensors"
    save_file(torchvision_state("resnet18", seed=0), str(path))
    with pytest.raises(WeightsMismatchError) as err:
        TorchvisionTower("mobilenet_v3_small", weights=str(path))
    message = str(err.value)
    assert str(path) in message and "missing keys" in message and "unexpected keys" in message
    assert "weights=null" in message
    with pytest.raises(FileNotFoundError, match="weights file not found.*nope.pth"):
        TorchvisionTower("resnet18", weights=str(tmp_path / "nope.pth"))
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsMismatchError, match="broken.pth could not be read"):
        TorchvisionTower("resnet18", weights=str(tmp_path / "broken.pth"))
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet_18'"):
        TorchvisionTower("resnet_18")
    with pytest.raises(ValueError, match="no linear classifier"):
        TorchvisionTower("squeezenet1_0")


# ---------------------------------------------------------------------------------------- timm
def test_any_timm_model_by_name():
    cnn = from_config("image_tower", "timm", name="mobilenetv3_small_050", input_size=48)
    assert not cnn.pretrained and cnn.input_size == 48
    out = run(cnn, images())
    assert out.shape == (3, cnn.out_dim) and torch.isfinite(out).all()
    assert torch.equal(out, run(cnn, images()))
    # A ViT fixes its input size: the native one by default, another set with set_input_size.
    vit = from_config("image_tower", "timm", name="vit_tiny_patch16_224")
    assert vit.input_size == 224 and vit.out_dim == 192
    assert torch.allclose(vit.mean.flatten(), torch.tensor([0.5, 0.5, 0.5]))  # its own config
    small = TimmTower("vit_tiny_patch16_224", input_size=32).eval()
    assert small.input_size == 32 and run(small, images()).shape == (3, 192)


def test_timm_checkpoint_is_really_used(tmp_path):
    import timm

    name = "mobilenetv3_small_050"
    torch.manual_seed(11)
    source = timm.create_model(name).eval()  # with its 1000-class head, as timm saves it
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = from_config("image_tower", "timm", name=name, weights=str(path), input_size=48)
    other = from_config("image_tower", "timm", name=name, input_size=48)
    batch = images()
    out = run(loaded, batch)
    assert loaded.pretrained and differ(out, run(other, batch))
    with torch.no_grad():  # timm's own pre-logits features of the saved model
        x = loaded.preprocess(batch)
        expected = source.forward_head(source.forward_features(x), pre_logits=True)
    assert same(out, expected)


def test_timm_errors_name_the_file_and_the_fix(tmp_path, monkeypatch):
    import timm

    path = tmp_path / "resnet.safetensors"
    save_file(timm.create_model("resnet10t").state_dict(), str(path))
    with pytest.raises(WeightsMismatchError, match=r"resnet\.safetensors does not fit timm "
                                                   r"mobilenetv3_small_050.*missing keys"):
        TimmTower("mobilenetv3_small_050", weights=str(path))
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        TimmTower("resnet10t", weights=str(tmp_path / "absent.safetensors"))
    with pytest.raises(ValueError, match="unknown timm model"):
        TimmTower("not_a_timm_model")
    with pytest.raises(ValueError, match="DEFAULT"):
        TimmTower("resnet10t", weights="IMAGENET1K_V1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: it must download
    with pytest.raises(HubDownloadError, match="timm/resnet10t.*local path"):
        TimmTower("resnet10t", weights="DEFAULT")


# ----------------------------------------------------------------------------------- open_clip
def tiny_clip(folder: Path, width: int = 32, context: int = 16) -> str:
    """A tiny open_clip model config (one-layer ViT and text transformer) in ``folder``, laid
    out as a Hugging Face open_clip repository; returns its ``local-dir:`` name."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": {
        "embed_dim": 24,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": width, "head_width": 16,
                       "patch_size": 8},
        "text_cfg": {"context_length": context, "vocab_size": 49408, "width": width,
                     "heads": 2, "layers": 1}},
        "preprocess_cfg": {"mean": [0.4, 0.45, 0.5], "std": [0.25, 0.26, 0.27]}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    return f"local-dir:{folder}"


@pytest.fixture(scope="module")
def clip_checkpoint(tmp_path_factory):
    """``(name, checkpoint path, the model it was saved from)``: seeded random weights of the
    tiny model, saved as open_clip saves them (one file for both towers)."""
    folder = tmp_path_factory.mktemp("tiny_clip")
    name = tiny_clip(folder / "model")
    torch.manual_seed(5)
    model = open_clip_model(name).eval()
    path = folder / "open_clip_model.safetensors"
    save_file(model.state_dict(), str(path))
    return name, path, model


def test_open_clip_towers_from_configs(clip_checkpoint):
    name = clip_checkpoint[0]
    image = from_config("image_tower", "open_clip", name=name)
    text = from_config("text_tower", "open_clip", name=name)
    assert image.input_size == 32 and image.out_dim == text.out_dim == 24
    assert torch.allclose(image.mean.flatten(), torch.tensor([0.4, 0.45, 0.5]))
    assert not image.pretrained and not text.pretrained and not text.fits_vocabulary
    feats = run(image, images())
    assert feats.shape == (3, 24) and torch.equal(feats, run(image, images()))
    tokens = text.tokenize(CAPTIONS + ["word " * 40])
    assert tokens["input_ids"].shape == (5, 16) == (5, text.max_length)  # padded, truncated
    emb = run(text, tokens)
    assert emb.shape == (5, 24) and torch.isfinite(emb).all()
    assert torch.equal(emb, run(text, text.tokenize(CAPTIONS + ["word " * 40])))
    assert differ(emb[0], emb[1])
    # The text tower holds no image weights and the image tower no text weights.
    assert not any(k.startswith("model.visual") for k in text.state_dict())
    assert not any("token_embedding" in k for k in image.state_dict())


def test_open_clip_checkpoint_is_really_used_by_both_towers(clip_checkpoint):
    name, path, source = clip_checkpoint
    image = from_config("image_tower", "open_clip", name=name, weights=str(path))
    text = from_config("text_tower", "open_clip", name=name, weights=str(path))
    fresh_image = from_config("image_tower", "open_clip", name=name)
    fresh_text = from_config("text_tower", "open_clip", name=name)
    batch, tokens = images(), text.tokenize(CAPTIONS)
    with torch.no_grad():
        expected_image = source.encode_image(image.preprocess(batch))
        expected_text = source.encode_text(tokens["input_ids"])
    assert same(run(image, batch), expected_image)
    assert same(run(text, tokens), expected_text)
    assert differ(run(fresh_image, batch), expected_image)
    assert differ(run(fresh_text, tokens), expected_text)
    # Another input size: the checkpoint's position embeddings are resampled to fit it.
    resized = OpenCLIPImageTower(name, weights=str(path), input_size=48).eval()
    assert resized.input_size == 48 and run(resized, batch).shape == (3, 24)
    assert torch.equal(resized.model.conv1.weight, source.visual.conv1.weight)


def test_open_clip_errors_name_the_file_and_the_fix(clip_checkpoint, tmp_path):
    name, path, _ = clip_checkpoint
    wider = tiny_clip(tmp_path / "wider", width=48)
    with pytest.raises(WeightsMismatchError) as err:
        OpenCLIPImageTower(wider, weights=str(path))
    assert str(path) in str(err.value) and "of another shape" in str(err.value)
    assert "weights=null" in str(err.value)
    partial = {k: v for k, v in open_clip_model(name).state_dict().items()
               if not k.startswith("visual.")}
    save_file(partial, str(tmp_path / "text_only.safetensors"))
    with pytest.raises(WeightsMismatchError, match=r"text_only.safetensors does not fit .*"
                                                   r"missing keys \(visual\."):
        OpenCLIPTextTower(name, weights=str(tmp_path / "text_only.safetensors"))
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        OpenCLIPTextTower(name, weights=str(tmp_path / "absent.safetensors"))
    with pytest.raises(ValueError, match="neither a file nor a pretrained tag"):
        OpenCLIPImageTower("ViT-B-32", weights="no_such_tag")
    with pytest.raises(ValueError, match="unknown open_clip model"):
        OpenCLIPImageTower("ViT-Nope-1")
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        OpenCLIPImageTower(f"local-dir:{tmp_path / 'empty'}")


def test_open_clip_tokenizer_hook_pickles(clip_checkpoint):
    import pickle

    text = OpenCLIPTextTower(clip_checkpoint[0])
    hook = pickle.loads(pickle.dumps(text.tokenizer_fn()))
    assert torch.equal(hook(CAPTIONS)["input_ids"], text.tokenize(CAPTIONS)["input_ids"])


# ------------------------------------------------------------------- train → bundle → Ranker
def test_open_clip_experiment_ties_the_text_tower_to_the_image_tower(tmp_path):
    from mmembed.config import compose

    cfg = compose(["+experiment=open_clip", "model.image_tower.name=local-dir:/m",
                   "model.image_tower.weights=/m/open_clip_model.safetensors",
                   f"paths.cache_dir={tmp_path}"])
    assert cfg.model.image_tower._target_ == "mmembed.models.towers.OpenCLIPImageTower"
    assert cfg.model.text_tower._target_ == "mmembed.models.towers.OpenCLIPTextTower"
    assert cfg.model.text_tower.name == "local-dir:/m"
    assert cfg.model.text_tower.weights == "/m/open_clip_model.safetensors"


def test_open_clip_bundle_loads_again_without_the_checkpoint(clip_checkpoint, tmp_path):
    """train → bundle → Ranker.from_bundle with both towers from the tiny open_clip checkpoint;
    the bundle carries their weights, so the checkpoint file is not needed to rank."""
    import shutil

    from conftest import TINY

    from mmembed.bundle import BundleError
    from mmembed.config import compose
    from mmembed.ranking.ranker import Ranker
    from mmembed.training import train

    name, path, source = clip_checkpoint
    folder = tmp_path / "clip"
    shutil.copytree(Path(name.removeprefix("local-dir:")), folder)
    shutil.copy(path, tmp_path / "clip.safetensors")
    changed = {"data.num_posts": "120", "trainer.max_epochs": "3", "cluster.k": "4",
               "model.image_tower.input_size": "32", "bundle_name": "clip"}
    overrides = [o for o in TINY if o.split("=")[0] not in changed]
    overrides += [f"{k}={v}" for k, v in changed.items()] + [
        "+experiment=open_clip", f"model.image_tower.name=local-dir:{folder}",
        f"model.image_tower.weights={tmp_path / 'clip.safetensors'}",
        "data.num_posts=120", "data.image_size=64", "datamodule.image_size=64",
        f"paths.output_dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.index_dir={tmp_path / 'index'}"]
    overrides = list(dict((o.split("=")[0], o) for o in overrides).values())  # last one wins
    _, objects = train(compose(overrides))
    trained = objects["model"].eval()
    # Training built both towers from the checkpoint (frozen, so still its weights).
    for tower, part in ((trained.image_tower.model, source.visual),
                        (trained.text_tower.model.token_embedding, source.token_embedding)):
        for key, value in part.state_dict().items():
            assert torch.equal(tower.state_dict()[key], value), key
    bundle_path = objects["bundle"].path
    (tmp_path / "clip.safetensors").unlink()  # ranking must not need the checkpoint

    ranker = Ranker.from_bundle(bundle_path)
    model = ranker.model
    assert type(model.image_tower) is OpenCLIPImageTower
    assert type(model.text_tower) is OpenCLIPTextTower
    for key, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[key].cpu(), value.cpu()), key
    shoot = sorted((tmp_path / "cache").rglob("shoot/*.jpg"))[:4]
    assert shoot
    result = ranker.rank(shoot, next(iter(ranker.communities)))
    assert len(result.photos) == len(shoot) and not result.skipped
    # A local-dir: model needs its folder's open_clip_config.json (not its weights) to rebuild.
    shutil.rmtree(folder)
    with pytest.raises(BundleError, match="open_clip_config.json"):
        Ranker.from_bundle(bundle_path)
