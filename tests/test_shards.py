"""Tar shards: writer → reader round trip, per-rank/worker splits, training from shards."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from mmembed.data.datamodule import PostDataModule
from mmembed.data.post import Corpus, Post
from mmembed.data.shards import (
    INDEX_NAME,
    POST_TRUTH_NAME,
    member_bytes,
    read_samples,
    write_shards,
)
from mmembed.data.sources import SourceError
from mmembed.data.sources.shards import ShardSource
from mmembed.data.stream import batch_caps, worker_shards
from mmembed.report.thumbnails import load_thumbnail


@pytest.fixture
def corpus(tmp_path, make_image):
    posts = []
    for i in range(30):
        ext = "png" if i % 5 == 0 else "jpg"
        path = make_image(tmp_path / "img" / f"{i}.{ext}", size=(20 + i, 24),
                          color=(i * 8, 90, 200 - i * 5))
        posts.append(Post(f"p{i}", str(path), caption=f"post {i} #tag{i % 3}", likes=10 + i,
                          followers=1000, account=f"acct{i % 4}", hashtags=[f"tag{i % 3}"]))
    (tmp_path / "img" / "bad.jpg").write_bytes(b"not a jpeg")
    posts.insert(7, Post("bad", str(tmp_path / "img" / "bad.jpg"), account="acct0"))
    posts.insert(9, Post("gone", str(tmp_path / "img" / "gone.jpg"), account="acct0"))
    return Corpus(posts=posts, name="fixture", truth={"topics": ["a", "b"]})


@pytest.fixture
def shards(corpus, tmp_path):
    return write_shards(corpus, tmp_path / "shards", maxcount=7)


def test_round_trip_keeps_counts_captions_and_image_bytes(corpus, shards):
    folder = shards.folder
    index = json.loads((folder / INDEX_NAME).read_text())
    assert [s["posts"] for s in index["shards"]] == [7, 7, 7, 7, 2]
    assert index["posts"] == 30 and shards.posts == 30
    assert sorted(s["item"].split(" ")[0] for s in index["skipped"]) == ["bad", "gone"]
    assert sorted(p.name for p in folder.glob("shard-*.tar")) == [
        f"shard-{i:06d}.tar" for i in range(5)]
    assert not list(folder.glob(".*"))  # no temporary file left behind

    loaded = ShardSource(urls=f"{folder}/shard-{{000000..000004}}.tar").load()
    originals = [p for p in corpus.posts if p.post_id not in ("bad", "gone")]
    assert [p.post_id for p in loaded.posts] == [p.post_id for p in originals]
    assert [p.caption for p in loaded.posts] == [p.caption for p in originals]
    assert [p.hashtags for p in loaded.posts] == [p.hashtags for p in originals]
    assert loaded.truth == {"topics": ["a", "b"]} and loaded.name == "fixture"
    images = [(name, data) for s in range(5)
              for _, name, data in read_samples(str(folder / f"shard-{s:06d}.tar"))]
    assert [data for _, data in images] == [Path(p.image_path).read_bytes() for p in originals]
    assert [name.rsplit(".", 1)[1] for name, _ in images] == [
        Path(p.image_path).suffix[1:] for p in originals]
    # one post's image is read back from its shard by its image_path (pictures, thumbnails)
    assert member_bytes(loaded.posts[8].image_path) == Path(originals[8].image_path).read_bytes()
    thumb = load_thumbnail(loaded.posts[8].image_path, 16)
    assert thumb.size == (16, 16)
    # the folder itself names every shard, and a subset of shards loads its posts only
    assert len(ShardSource(urls=str(folder)).load().posts) == 30
    assert len(ShardSource(urls=[str(folder / "shard-000004.tar")]).load().posts) == 2


def test_per_post_truth_is_kept_beside_the_index_not_in_it(corpus, tmp_path):
    ids = [p.post_id for p in corpus.posts]
    corpus.truth = {"topics": ["a", "b"], "post_qualities": {i: 0.5 for i in ids}}
    folder = write_shards(corpus, tmp_path / "truth").folder
    index = json.loads((folder / INDEX_NAME).read_text())
    assert index["truth"] == {"topics": ["a", "b"]}
    post_truth = json.loads((folder / POST_TRUTH_NAME).read_text())
    assert post_truth == {"post_qualities": {i: 0.5 for i in ids}}
    assert ShardSource(urls=str(folder)).load().truth == {"topics": ["a", "b"]}
    # a corpus without per-post truth writes no such file
    plain = write_shards(Corpus(posts=corpus.posts[:3], truth={"topics": ["a"]}),
                         tmp_path / "plain").folder
    assert not (plain / POST_TRUTH_NAME).exists()


def test_member_bytes_reads_every_member_and_sees_a_rewritten_shard(corpus, shards, tmp_path):
    loaded = ShardSource(urls=str(shards.folder)).load()
    originals = [p for p in corpus.posts if p.post_id not in ("bad", "gone")]
    assert [member_bytes(p.image_path) for p in loaded.posts] == [
        Path(p.image_path).read_bytes() for p in originals]
    first = loaded.posts[0].image_path
    assert member_bytes(first.rpartition("#")[0] + "#999999999") is None
    # a tar written by tarfile itself (GNU format, long names) is read as well
    tar_path = tmp_path / "other.tar"
    long = "k" * 120
    with tarfile.open(tar_path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in ((f"{long}.jpg", b"long"), ("000000001.png", b"short")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert member_bytes(f"{tar_path}#000000001") == b"short"
    # the same shard name written again with other posts is read again, not from memory
    shard = Path(first.rpartition("#")[0])
    size = shard.stat().st_size
    for other in sorted(shards.folder.glob("shard-*.tar"), reverse=True):
        if other.stat().st_size != size:
            other.replace(shard)
            break
    assert member_bytes(first) != Path(originals[0].image_path).read_bytes()


def test_metadata_read_from_the_tar_when_the_sidecar_is_gone(shards):
    before = ShardSource(urls=str(shards.folder)).load().posts
    (shards.folder / "shard-000001.jsonl").unlink()
    assert ShardSource(urls=str(shards.folder)).load().posts == before


def test_writer_refuses_a_folder_with_shards_and_reader_names_the_fix(corpus, shards, tmp_path):
    with pytest.raises(ValueError, match="already holds shards"):
        write_shards(corpus, shards.folder)
    with pytest.raises(SourceError, match="no shard index"):
        ShardSource(urls=str(tmp_path / "nowhere")).load()


def test_write_shards_respects_maxsize(corpus, tmp_path):
    summary = write_shards(corpus, tmp_path / "small", maxsize=12_000)
    shards = summary.index["shards"]
    assert len(shards) > 3 and sum(s["posts"] for s in shards) == 30
    # a tar ends padded to a 10 KiB record; a shard holds at least one post
    assert all(s["bytes"] <= 12_000 + 10240 for s in shards if s["posts"] > 1)


@pytest.mark.parametrize("num_shards,world", [(5, 1), (5, 2), (7, 3), (2, 4)])
def test_rank_and_worker_shards_are_disjoint_and_complete(num_shards, world):
    for workers in (1, 2, 3):
        parts = [worker_shards(num_shards, r, world, w, workers)
                 for r in range(world) for w in range(workers)]
        flat = [s for part in parts for s in part]
        assert sorted(flat) == list(range(num_shards))


def test_batch_caps_give_every_rank_the_same_full_batches():
    counts = np.array([9, 3, 12, 5, 8, 1, 7])
    for world, workers, batch in [(2, 1, 4), (3, 2, 2), (2, 3, 3)]:
        caps = batch_caps(counts, world, workers, batch)
        assert len(set(caps.sum(axis=1))) == 1 and caps.sum() > 0
        for r in range(world):
            for w in range(workers):
                n = sum(counts[s] for s in worker_shards(len(counts), r, world, w, workers))
                assert caps[r, w] * batch <= n


def test_streamed_items_split_by_rank_cover_the_split_once(shards):
    dm = PostDataModule(ShardSource(urls=str(shards.folder)), image_size=16, batch_size=4)
    dm.setup()
    assert dm.streams and len(dm.posts) == 30 and dm.fingerprint.startswith("shards-")
    for split in ("train", "val", "test", None):
        want = sorted(np.flatnonzero(dm.split == split).tolist() if split else range(30))
        seen = []
        for rank in range(2):
            stream = dm.stream(split, shuffle=split == "train", rank=rank, world_size=1 + 1)
            stream.caps = None  # everything, to check the split is complete
            items = list(stream)
            for item in items:
                assert item["image"].shape == (3, 16, 16)
                assert item["caption"] == dm.posts[int(item["index"])].caption
            seen += [int(item["index"]) for item in items]
        assert sorted(seen) == want
    # with the DDP caps, both ranks yield the same number of full batches
    lengths = [len(list(dm.stream("train", True, rank, 2))) for rank in range(2)]
    assert lengths[0] == lengths[1] and lengths[0] % 4 == 0


def test_loaders_stream_batches_with_workers(shards):
    dm = PostDataModule(ShardSource(urls=str(shards.folder)), image_size=16, batch_size=4,
                        num_workers=2)
    dm.setup()
    rows = sorted(i for b in dm.all_dataloader() for i in b["index"].tolist())
    assert rows == list(range(30))
    train = [i for b in dm.train_dataloader() for i in b["index"].tolist()]
    assert len(train) == len(set(train)) and all(dm.split[i] == "train" for i in train)


def test_tiny_train_from_shards_writes_a_bundle(tmp_path):
    from conftest import tiny_overrides

    from mmembed.config import compose
    from mmembed.data.__main__ import main
    from mmembed.training import train

    base = tiny_overrides(tmp_path)
    assert main(base + [f"shards={tmp_path}/sh", "maxcount=60"]) == 0
    overrides = [o for o in base if not o.startswith("data.")] + [
        "data=shards", f"data.urls='{tmp_path}/sh/shard-{{000000..000003}}.tar'",
        "trainer.max_epochs=1"]
    metrics, objects = train(compose(overrides))
    bundle = objects["bundle"]
    assert (bundle.path / "manifest.json").is_file() and bundle.metrics["k"] == 6
    posts = [json.loads(line) for line in (bundle.path / "posts.jsonl").open()]
    assert len(posts) == 240 and posts[0]["image_path"].startswith(f"{tmp_path}/sh/shard-")
    assert objects["datamodule"].streams


def test_shard_urls_on_the_command_line_quoted_or_brace_expanded_by_the_shell():
    from mmembed.cli.argv import prepare
    from mmembed.config import CONF_DIR, compose

    config = CONF_DIR / "train.yaml"
    pattern = compose(prepare(["data=shards", "data.urls=/d/shard-{000000..000002}.tar"],
                              config))
    assert pattern.data.urls == "/d/shard-{000000..000002}.tar"
    expanded = compose(prepare(["data=shards"] + [f"data.urls=/d/shard-00000{i}.tar"
                                                  for i in range(3)], config))
    assert list(expanded.data.urls) == [f"/d/shard-00000{i}.tar" for i in range(3)]
