import os
import zlib
from pathlib import Path

# Before torch/faiss load: their two OpenMP runtimes otherwise spin against each other.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest
from PIL import Image

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


#: The session's pytest temporary root (``.../pytest-<n>``), recorded by :func:`_basetemp`.
_BASETEMP: list[Path] = []


@pytest.fixture(scope="session", autouse=True)
def _basetemp(tmp_path_factory):
    _BASETEMP[:] = [tmp_path_factory.getbasetemp().resolve()]


def _noise_seed(path) -> int:
    """The same seed for the same file in every run: CRC-32 of the path below the session's
    temporary root. ``hash()`` is salted per process (PYTHONHASHSEED), and the root's
    ``pytest-<n>`` changes from one session to the next."""
    path = Path(path).resolve()
    for base in _BASETEMP:
        if path.is_relative_to(base):
            path = path.relative_to(base)
    return zlib.crc32(path.as_posix().encode())


def write_image(path, size=(32, 24), color=(200, 30, 30), mode="RGB", fmt=None):
    """A ``size`` image of ``color`` with seeded noise (the same pixels for the same path in
    every run), saved at ``path`` in ``mode`` and ``fmt``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(_noise_seed(path))
    arr = np.clip(np.array(color)[None, None, :3] + rng.integers(-20, 20, (size[1], size[0], 3)),
                  0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, format=fmt)
    return path


@pytest.fixture
def make_image():
    return write_image


#: The tiny training run behind :func:`tiny_bundle`: 240 synthetic posts at 64 px, the default
#: towers (EfficientNet-Lite0 at 64 px input, MiniLM) frozen, 15 epochs without early stopping,
#: K = 6 for the 6 planted topics.
TINY = [
    "data.num_posts=240", "data.image_size=64", "data.shoot_size=12",
    "datamodule.image_size=64", "datamodule.batch_size=32", "model.image_tower.input_size=64",
    "trainer.max_epochs=15", "callbacks.early_stopping=null", "callbacks.best_checkpoint=null",
    "cluster.k=6", "logger=csv", "print_config=false", "trainer.enable_progress_bar=false",
    "bundle_name=tiny",
]


def tiny_overrides(root) -> list[str]:
    """:data:`TINY` with every folder under ``root``."""
    return TINY + [f"paths.output_dir={root / 'run'}", f"paths.cache_dir={root / 'cache'}",
                   f"paths.index_dir={root / 'index'}"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One tiny training run for the whole session: ``{"root", "metrics", "objects"}`` (the
    model, datamodule, checkpoints and build result; treat all of it as read-only)."""
    from mmembed.config import compose
    from mmembed.training import train

    root = tmp_path_factory.mktemp("tiny_run")
    metrics, objects = train(compose(tiny_overrides(root)))
    return {"root": root, "metrics": metrics, "objects": objects}


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run):
    """The tiny run's bundle folder (read-only: copy it before altering it)."""
    return tiny_run["objects"]["bundle"].path


@pytest.fixture(scope="module")
def ranker(tiny_bundle):
    """A Ranker on the tiny bundle, one per test module."""
    from mmembed.ranking.ranker import Ranker

    return Ranker.from_bundle(tiny_bundle)


@pytest.fixture(scope="module")
def shoot(ranker):
    """The tiny bundle's held-out shoot: its JPEG photos, sorted."""
    cache = Path(ranker.bundle.config["data"]["cache_dir"])
    root = next(p for p in cache.iterdir() if (p / "truth.json").is_file())
    return sorted((root / "shoot").glob("*.jpg"))
