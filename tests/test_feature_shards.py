"""Per-shard tower features: resumable, split by rank, merged without holding them twice."""

import numpy as np
import pytest
import torch

from mmembed.data.datamodule import PostDataModule
from mmembed.data.post import Corpus, Post
from mmembed.data.shards import write_shards
from mmembed.data.sources.shards import ShardSource
from mmembed.models.feature_shards import (
    feature_folder,
    merge_features,
    open_features,
    shard_features,
    write_shard_features,
)
from mmembed.models.features import compute_features
from mmembed.models.joint import JointEmbedding
from mmembed.models.towers import SmallCNNTower


@pytest.fixture
def datamodule(tmp_path, make_image):
    posts = [Post(f"p{i}", str(make_image(tmp_path / "img" / f"{i}.jpg",
                                          color=(i * 9, 80, 220 - i * 6))),
                  caption=f"post {i}", likes=i, followers=100, account=f"a{i % 3}")
             for i in range(26)]
    folder = write_shards(Corpus(posts=posts, name="fixture"), tmp_path / "shards",
                          maxcount=5).folder
    dm = PostDataModule(ShardSource(urls=str(folder)), image_size=16, batch_size=4)
    dm.setup()
    return dm


@pytest.fixture
def model():
    torch.manual_seed(0)
    return JointEmbedding(image_tower=SmallCNNTower(width=8, out_dim=16, input_size=16),
                          text_tower=None, embed_dim=8, proj_hidden_dim=None)


def test_features_per_shard_equal_the_whole_corpus_pass(datamodule, model, tmp_path):
    feats = shard_features(model, datamodule, tmp_path / "cache")
    assert feats["image"].shape == (26, 16)
    reference = compute_features(model, datamodule.all_dataloader())["image"]
    torch.testing.assert_close(feats["image"], reference, rtol=1e-5, atol=1e-6)
    folder = feature_folder(model, datamodule, tmp_path / "cache")
    assert sorted(p.name for p in folder.glob("shard-*")) == [
        f"shard-{s:06d}.safetensors" for s in range(6)]
    assert not list(folder.glob(".*"))  # no temporary file left
    assert isinstance(np.load(folder / "image.npy", mmap_mode="r"), np.memmap)


def test_writer_resumes_and_ranks_split_the_shards(datamodule, model, tmp_path):
    folder = tmp_path / "f"
    done = [write_shard_features(model, datamodule, folder, rank, 2) for rank in range(2)]
    assert done == [[0, 2, 4], [1, 3, 5]]
    assert write_shard_features(model, datamodule, folder, 0, 1) == []  # all there: skipped
    before = (folder / "shard-000003.safetensors").read_bytes()
    (folder / "shard-000003.safetensors").unlink()
    (folder / ".shard-000001.safetensors.tmp-1-dead.safetensors").write_bytes(b"half")
    assert write_shard_features(model, datamodule, folder, 0, 1) == [3]  # only the missing one
    assert (folder / "shard-000003.safetensors").read_bytes() == before
    merge_features(folder, 6, 26)
    assert open_features(folder)["image"].shape == (26, 16)


def test_rows_read_from_the_files_equal_the_mapped_rows(datamodule, model, tmp_path):
    feats = shard_features(model, datamodule, tmp_path / "cache")
    for index in ([3, 4, 5, 6], [25, 0, 7, 7, 1, 24], [], list(range(26))):
        torch.testing.assert_close(feats.rows("image", torch.tensor(index, dtype=torch.long)),
                                   feats["image"][torch.tensor(index, dtype=torch.long)])
    with pytest.raises(IndexError):
        feats.rows("image", [26])


def test_augmented_views_of_a_sharded_corpus_are_refused_by_name(datamodule, model, tmp_path):
    from mmembed.models.features import tower_features

    with pytest.raises(ValueError, match=r"model\.feature_views=0"):
        tower_features(model, datamodule, tmp_path / "cache", views=2)
