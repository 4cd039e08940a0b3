"""The fast image-tower path: same features as the eager tower, ONNX export cached, fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmembed.models.features import compute_features, prefetched
from mmembed.models.joint import JointEmbedding
from mmembed.models.towers import EfficientNetLite0Tower, SmallCNNTower
from mmembed.models.towers.runtime import FastImageTower, onnxruntime_available

needs_ort = pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime not installed")


def _photos() -> torch.Tensor:
    """scikit-learn's two bundled photos and two noise images, uint8 [4, 3, 96, 96]."""
    from sklearn.datasets import load_sample_images

    photos = [torch.from_numpy(np.array(img)).permute(2, 0, 1)
              for img in load_sample_images().images]
    photos = [F.interpolate(p[None].float(), size=(96, 96), mode="bilinear", antialias=True)[0]
              for p in photos]
    noise = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0)) * 255
    return torch.cat([torch.stack(photos), noise]).round().clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def lite0():
    return EfficientNetLite0Tower(input_size=64, photo_stats=True).eval()


@pytest.mark.parametrize("backend", [pytest.param("onnx", marks=needs_ort), "torch"])
def test_fast_tower_matches_eager_tower(lite0, backend, tmp_path):
    images = _photos()
    with torch.no_grad():
        expected = lite0(images)
    fast = FastImageTower(lite0, backend, cache_dir=tmp_path)
    assert fast.backend == backend
    out = fast(images)
    assert out.shape == expected.shape == (4, lite0.out_dim)
    assert F.cosine_similarity(out, expected).min() > 1 - 1e-3
    # The photo statistics are appended exactly as the tower does.
    assert torch.allclose(out[:, lite0.feature_dim:], expected[:, lite0.feature_dim:], atol=1e-6)
    assert not out.is_inference()  # usable where autograd sees it (training heads)


@needs_ort
def test_onnx_export_is_written_once_into_the_cache(tmp_path, monkeypatch):
    tower = SmallCNNTower(width=8, out_dim=16, input_size=32).eval()
    FastImageTower(tower, "onnx", cache_dir=tmp_path)
    files = list(tmp_path.glob("tower-*.onnx"))
    assert len(files) == 1

    def no_export(self):
        raise AssertionError("exported again")

    monkeypatch.setattr(FastImageTower, "_onnx_bytes", no_export)
    x = torch.rand(3, 3, 32, 32)
    out = FastImageTower(tower, "onnx", cache_dir=tmp_path)(x)
    with torch.no_grad():
        assert torch.allclose(out, tower(x), atol=1e-5)
    # Other weights, another file.
    with torch.no_grad():
        tower.head.bias.add_(1.0)
    monkeypatch.undo()
    FastImageTower(tower, "onnx", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("tower-*.onnx"))) == 2


@needs_ort
def test_a_tower_onnx_cannot_export_falls_back_to_torch(monkeypatch):
    def broken(self):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(FastImageTower, "_onnx_bytes", broken)
    tower = SmallCNNTower(width=8, out_dim=16, input_size=32).eval()
    with pytest.warns(UserWarning, match="backend=torch"):
        fast = FastImageTower(tower, "onnx")
    assert fast.backend == "torch"


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown tower backend"):
        FastImageTower(SmallCNNTower(width=8, input_size=32), "tensorrt")


def test_fast_towers_only_for_frozen_towers_and_only_inside_the_context():
    frozen = JointEmbedding(image_tower=SmallCNNTower(width=8, out_dim=16, input_size=32))
    with frozen.fast_towers("torch") as fast:
        assert isinstance(fast, FastImageTower) and frozen._fast_image_tower is fast
    assert frozen._fast_image_tower is None
    trained = JointEmbedding(image_tower=SmallCNNTower(width=8, out_dim=16, input_size=32),
                             freeze_towers=False)
    with trained.fast_towers("torch") as fast:
        assert fast is None


def test_compute_features_match_the_eager_tower_in_index_order():
    from torch.utils.data import DataLoader

    tower = SmallCNNTower(width=8, out_dim=16, input_size=32, photo_stats=True).eval()
    model = JointEmbedding(image_tower=tower)
    images = torch.rand(7, 3, 32, 32)
    data = [{"image": images[i], "index": torch.tensor(i)} for i in range(7)]
    loader = DataLoader(data, batch_size=3, shuffle=True)
    for backend in ("eager", "torch", *(("onnx",) if onnxruntime_available() else ())):
        out = compute_features(model, loader, backend=backend)
        with torch.no_grad():
            assert torch.allclose(out["image"], tower(images), atol=1e-5), backend


def test_prefetched_keeps_order_raises_errors_and_stops_early():
    assert list(prefetched(range(10))) == list(range(10))

    def failing():
        yield 1
        raise OSError("disk gone")

    it = prefetched(failing())
    assert next(it) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(it)
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    it = prefetched(endless(), depth=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()  # joins the thread
    assert len(produced) <= 3 + 2 + 1


def test_ranker_puts_the_index_on_the_gpu_only_for_a_gpu_device(tiny_bundle, monkeypatch):
    """``rank.device=cuda`` (or auto with a GPU) loads the FAISS indexes onto the GPUs FAISS
    sees; the CPU device never does. The copy to the GPU is faked (faiss-cpu has none)."""
    from mmembed.ranking.ranker import Ranker
    from mmembed.search import index as search_index

    moved = []
    monkeypatch.setattr(search_index, "num_gpus", lambda: 1)
    monkeypatch.setattr(search_index, "_to_gpu", lambda index: moved.append(index) or index)
    cpu = Ranker.from_bundle(tiny_bundle, device="cpu", load_weights=False)
    assert not cpu.index.on_gpu and not moved
    gpu = Ranker.from_bundle(tiny_bundle, device="cuda", load_weights=False)
    assert gpu.index.on_gpu and len(moved) == 1
    monkeypatch.setattr(search_index, "num_gpus", lambda: 0)  # faiss-cpu: stays on the CPU
    assert not Ranker.from_bundle(tiny_bundle, device="cuda", load_weights=False).index.on_gpu
