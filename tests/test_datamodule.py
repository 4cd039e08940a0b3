import numpy as np
import pytest
import torch

from mmembed.data.datamodule import PostDataModule, split_of
from mmembed.data.post import Corpus, Post


@pytest.fixture
def corpus(tmp_path, make_image):
    posts = []
    for i in range(40):
        path = make_image(tmp_path / "img" / f"{i}.jpg", color=(i * 6, 100, 200 - i * 4))
        posts.append(Post(f"p{i}", str(path), caption=f"post {i} #tag{i % 3}", likes=10 + i,
                          followers=1000, account=f"acct{i % 4}"))
    (tmp_path / "img" / "bad.jpg").write_bytes(b"")
    posts.append(Post("bad", str(tmp_path / "img" / "bad.jpg"), account="acct0"))
    return Corpus(posts=posts, name="fixture")


def test_split_is_deterministic_and_roughly_proportional():
    ids = [f"post-{i}" for i in range(5000)]
    splits = [split_of(i) for i in ids]
    assert splits == [split_of(i) for i in ids]
    frac = {s: splits.count(s) / len(ids) for s in ("train", "val", "test")}
    assert abs(frac["val"] - 0.1) < 0.02 and abs(frac["test"] - 0.1) < 0.02


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batches_and_tokenize_hook(corpus, tmp_path, num_workers):
    calls = []

    def tokenize(captions):
        calls.append(len(captions))
        return {"input_ids": torch.tensor([[len(c)] for c in captions])}

    dm = PostDataModule(corpus, image_size=16, batch_size=8, num_workers=num_workers,
                        cache_dir=str(tmp_path / "cache"), tokenize=tokenize)
    dm.setup()
    assert len(dm.posts) == 40 and [s.reason.split(":")[0] for s in dm.skipped] == ["empty"]
    seen = []
    for split in ("train", "val", "test"):
        loader = getattr(dm, f"{split}_dataloader")()
        for batch in loader:
            assert batch["image"].shape[1:] == (3, 16, 16)
            assert batch["image"].dtype == torch.float32 and batch["image"].max() <= 1.0
            assert batch["tokens"]["input_ids"].shape == (len(batch["caption"]), 1)
            for idx, caption in zip(batch["index"].tolist(), batch["caption"]):
                assert dm.posts[idx].caption == caption
                assert dm.split[idx] == split
            seen += batch["index"].tolist()
    # training drops its last partial batch; every post is still reachable for embedding
    assert len(seen) == len(set(seen)) and set(seen) <= set(range(40))
    assert sorted(i for b in dm.all_dataloader() for i in b["index"].tolist()) == list(range(40))
    if num_workers == 0:
        assert sum(calls) == len(seen) + 40  # + the all_dataloader pass


def test_cache_is_reused_and_images_not_decoded_again(corpus, tmp_path, monkeypatch):
    dm = PostDataModule(corpus, image_size=16, cache_dir=str(tmp_path / "cache"))
    dm.setup()
    first = next(iter(dm.val_dataloader()))["image"]

    import mmembed.data.datamodule as module

    def fail(*args, **kwargs):
        raise AssertionError("decoded an image again")

    monkeypatch.setattr(module, "load_image", fail)
    again = PostDataModule(corpus, image_size=16, cache_dir=str(tmp_path / "cache"))
    again.setup()
    assert torch.equal(next(iter(again.val_dataloader()))["image"], first)
    for _ in range(2):  # epochs read the cache
        n = sum(len(b["index"]) for b in again.train_dataloader())
        assert n == len(again.datasets["train"])
    assert np.isfinite(again.engagement).all()
