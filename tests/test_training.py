"""train(cfg) on tiny synthetic data: each experiment, resume, W&B offline files, NaN guard."""

import glob
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

import mmembed.training
from mmembed.cli.train import train as train_app
from mmembed.config import compose
from mmembed.training import train

ROOT = Path(__file__).resolve().parent.parent

TINY = [
    "data.num_posts=96", "data.image_size=32", "data.shoot_size=6",
    "datamodule.image_size=32", "datamodule.batch_size=16", "print_config=false",
    "trainer.enable_progress_bar=false", "trainer.min_epochs=1",
]


def tiny_cfg(tmp_path, *overrides, cache=None):
    return compose(TINY + [
        f"paths.output_dir={tmp_path / 'run'}",
        f"paths.cache_dir={cache or tmp_path / 'cache'}",
        f"paths.index_dir={tmp_path / 'index'}",
        *overrides,
    ])


@pytest.mark.parametrize("experiment", [None, "joint_clip", "scratch_clip", "image_ae"])
def test_fast_dev_run_each_experiment(tmp_path, experiment):
    overrides = ["logger=csv", "trainer.fast_dev_run=true"]
    if experiment:
        overrides.append(f"+experiment={experiment}")
    if experiment == "joint_clip":  # full size is for clusters; keep the data tiny here
        overrides += ["data.num_posts=48", "data.image_size=64", "datamodule.image_size=64",
                      "model.image_tower.input_size=64", "datamodule.batch_size=16"]
    metrics, objects = train_app(tiny_cfg(tmp_path, *overrides))  # what train.py runs
    assert objects["trainer"].state.finished
    assert "train/loss" in metrics and "val/loss" in metrics
    if experiment == "image_ae":
        assert objects["model"].text_tower is None and "train/contrastive" not in metrics
    else:
        assert "val/recall@1_i2t" in metrics
    assert (tmp_path / "run" / "config_resolved.yaml").is_file()


def test_resume_continues_steps_and_wandb_run(tmp_path):
    common = ["model/image_tower=small_cnn", "model/text_tower=scratch",
              "model.freeze_towers=false", "model/engagement_head=mlp", "logger=wandb"]
    _, first = train(tiny_cfg(tmp_path, *common, "trainer.max_epochs=1"))
    steps_one_epoch = first["trainer"].global_step
    last = first["last_checkpoint"]
    assert steps_one_epoch > 0 and Path(last).is_file()
    run_id = first["trainer"].logger.version

    cfg = tiny_cfg(tmp_path / "resumed", *common, "trainer.max_epochs=2", f"ckpt_path={last}",
                   cache=tmp_path / "cache")
    _, second = train(cfg)
    assert second["trainer"].global_step == 2 * steps_one_epoch
    assert second["trainer"].current_epoch == 2
    assert second["trainer"].logger.version == run_id
    # the vocabulary its weights were trained with, not a new fit (whose token ids differ)
    captions = [p.caption for p in first["datamodule"].posts]
    assert torch.equal(second["model"].text_tower.tokenize(captions)["input_ids"],
                       first["model"].text_tower.tokenize(captions)["input_ids"])


class CrashMidEpoch(Callback):
    """Stands for a crash: raises in the middle of ``epoch``, after last.ckpt of the one before."""

    def __init__(self, epoch: int, batch: int = 2):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise KeyError("crash")  # not KeyboardInterrupt: Lightning would end gracefully


def final_state(objects):
    trainer = objects["trainer"]
    stop = trainer.early_stopping_callback
    best = objects["best_checkpoint"]
    return {"weights": {k: v.clone() for k, v in objects["model"].state_dict().items()},
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
            "best": (Path(best).name, float(trainer.checkpoint_callback.best_model_score)),
            "early_stopping": (stop.wait_count, float(stop.best_score)),
            "epoch": trainer.current_epoch, "step": trainer.global_step}


@pytest.mark.slow  # two tiny trains (~10 s); test_resume_continues_steps_and_wandb_run is fast
def test_resume_after_a_crash_mid_epoch_ends_as_the_unbroken_run(tmp_path, monkeypatch):
    """Same weights, metrics, best epoch and early-stopping state as the unbroken run: the
    batch order, dropout masks and checkpoint callbacks pick up where they were."""
    common = ["trainer.max_epochs=2", "logger=none", "build=false"]
    cache = tmp_path / "cache"
    unbroken = final_state(train(tiny_cfg(tmp_path / "unbroken", *common, cache=cache))[1])

    with monkeypatch.context() as patch:
        patch.setattr(mmembed.training, "SampleTable", lambda: CrashMidEpoch(epoch=1))
        with pytest.raises(KeyError, match="crash"):
            train(tiny_cfg(tmp_path / "crashed", *common, cache=cache))
    last = tmp_path / "crashed" / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 0

    # a new output folder, as Hydra gives every run
    resumed = final_state(train(tiny_cfg(tmp_path / "resumed", *common, f"ckpt_path={last}",
                                         cache=cache))[1])
    assert resumed["weights"].keys() == unbroken["weights"].keys()
    different = [k for k, v in resumed["weights"].items()
                 if not torch.equal(v, unbroken["weights"][k])]
    assert not different, different[:5]
    for key in ("metrics", "best", "early_stopping", "epoch", "step"):
        assert resumed[key] == unbroken[key], key


KILL = textwrap.dedent("""
    import os, signal, sys
    from lightning.pytorch.callbacks import Callback
    from mmembed.config import compose
    from mmembed.training import train

    class Kill(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.current_epoch == int(sys.argv[1]) and batch_idx == 2:
                os.kill(os.getpid(), signal.SIGKILL)

    train(compose(sys.argv[2:] + ["+callbacks.kill._target_=__main__.Kill"]))
""")


def bundle_files(path: Path) -> dict[str, str]:
    """sha256 of every bundle file (the manifest itself names the run's own folders)."""
    return json.loads((path / "manifest.json").read_text())["files"]


@pytest.mark.slow
def test_sigkill_and_resume_give_the_unbroken_bundle_and_ranking(tmp_path):
    """SIGKILL in the middle of epoch 2, resume from last.ckpt (of epoch 1): the bundle's
    files and metrics and rank.py's ranking.csv are those of the unbroken run."""
    from mmembed.cli.rank import write_outputs
    from mmembed.ranking.ranker import Ranker
    from mmembed.ranking.settings import RankSettings

    common = ["trainer.max_epochs=4", "trainer.min_epochs=2", "logger=csv", "cluster.k=3"]
    cache = tmp_path / "cache"
    _, unbroken = train(tiny_cfg(tmp_path / "unbroken", *common, cache=cache))
    killed = tiny_cfg(tmp_path / "killed", *common, cache=cache)
    overrides = [f"{k}={v}" for k, v in {
        "paths.output_dir": killed.paths.output_dir, "paths.cache_dir": cache,
        "paths.index_dir": killed.paths.index_dir}.items()]
    proc = subprocess.run([sys.executable, "-c", KILL, "2", *TINY, *common, *overrides],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    last = Path(killed.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 1
    _, resumed = train(tiny_cfg(tmp_path / "resumed", *common, f"ckpt_path={last}", cache=cache))

    assert resumed["bundle"].metrics == unbroken["bundle"].metrics
    assert bundle_files(resumed["bundle"].path) == bundle_files(unbroken["bundle"].path)
    assert Path(resumed["best_checkpoint"]).name == Path(unbroken["best_checkpoint"]).name
    shoot = sorted(Path(unbroken["datamodule"].source.shoot_dir).glob("*.jpg"))
    tables = []
    for name, objects in (("unbroken", unbroken), ("resumed", resumed)):
        ranker = Ranker.from_bundle(objects["bundle"].path)
        result = ranker.rank(shoot, ranker.default_community(), RankSettings()).to_dict()
        out = tmp_path / f"rank-{name}"
        out.mkdir()
        write_outputs(result, out, report=False)
        tables.append((out / "ranking.csv").read_text())
    assert tables[0] == tables[1]


def test_wandb_offline_run_folder_holds_curves_and_sample_table(tmp_path):
    _, objects = train(tiny_cfg(tmp_path, "logger=wandb", "trainer.max_epochs=2"))
    run_dirs = glob.glob(str(tmp_path / "run" / "wandb" / "offline-run-*"))
    assert len(run_dirs) == 1
    run_dir = Path(run_dirs[0])
    tables = list((run_dir / "files" / "media" / "table" / "samples").glob("*.table.json"))
    assert tables and "caption" in tables[0].read_text()
    keys = (b"train/loss", b"train/logit_scale", b"val/recall@1_i2t", b"val/engagement_src",
            b"lr-AdamW")
    records, deadline = b"", time.monotonic() + 60
    while not all(key in records for key in keys) and time.monotonic() < deadline:
        # wandb's service process writes the transaction log; on a loaded machine it may still
        # be flushing it for a moment after run.finish() returned
        time.sleep(0.5)
        records = next(run_dir.glob("run-*.wandb")).read_bytes()
    for key in keys:
        assert key in records, key
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        assert os.environ[var].startswith(str(objects["output_dir"].resolve())), var


@pytest.mark.slow  # a tiny train (~9 s)
def test_csv_logger_does_not_touch_wandb(tmp_path, monkeypatch):
    import mmembed.tracking

    def fail(*args, **kwargs):
        raise AssertionError("wandb used with logger=csv")

    monkeypatch.setattr(mmembed.tracking, "wandb_logger", fail)
    train(tiny_cfg(tmp_path, "logger=csv", "trainer.max_epochs=1"))
    assert list((tmp_path / "run" / "csv").rglob("metrics.csv"))
    assert not (tmp_path / "run" / "wandb").exists()


def test_nan_loss_stops_with_the_step(tmp_path):
    from hydra.utils import instantiate

    cfg = tiny_cfg(tmp_path, "model/image_tower=small_cnn", "model/text_tower=scratch",
                   "model.freeze_towers=false", "model/engagement_head=mlp")
    model = instantiate(cfg.model)
    model.text_tower.fit_tokenizer(["a red house #home", "night out #club"])
    batch = {
        "image": torch.full((2, 3, 32, 32), float("nan")),
        "tokens": model.text_tower.tokenize(["a red house #home", "night out #club"]),
        "engagement": torch.zeros(2), "account": torch.zeros(2, dtype=torch.long),
        "index": torch.arange(2),
    }
    with pytest.raises(FloatingPointError, match="step 0"):
        model.training_step(batch, 0)


def test_projection_dropout_reaches_both_heads(tmp_path):
    from hydra.utils import instantiate

    cfg = tiny_cfg(tmp_path, "+experiment=scratch_clip", "model.proj_dropout=0.3")
    model = instantiate(cfg.model)
    for head in (model.proj_image, model.proj_text):
        rates = [m.p for m in head.modules() if isinstance(m, torch.nn.Dropout)]
        assert rates == [0.3]


def test_photo_statistics_feed_the_engagement_head_not_the_content_embedding(tmp_path):
    from hydra.utils import instantiate

    cfg = tiny_cfg(tmp_path, "model/image_tower=small_cnn", "model.image_tower.photo_stats=true",
                   "model/text_tower=scratch")
    model = instantiate(cfg.model).eval()
    tower = model.image_tower
    assert model.content_dim == tower.feature_dim < tower.out_dim
    train = torch.randn(64, tower.out_dim)  # likes that follow the photo statistics
    model.engagement_head.fit(train, train[:, model.content_dim:].sum(1))
    feats = torch.randn(4, tower.out_dim)
    other = feats.clone()
    other[:, model.content_dim:] += 1.0  # same content, different photo statistics
    with torch.no_grad():
        assert torch.equal(model.project_image(feats), model.project_image(other))
        assert not torch.allclose(model.predict_engagement(feats),
                                  model.predict_engagement(other))


def _manifest_cfg(tmp_path, make_image, rows):
    import json

    make_image(tmp_path / "img" / "a.jpg")
    (tmp_path / "posts.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return compose(["data=manifest", f"data.path={tmp_path / 'posts.jsonl'}", "logger=csv",
                    "print_config=false", f"paths.output_dir={tmp_path / 'run'}",
                    f"paths.cache_dir={tmp_path / 'cache'}",
                    f"paths.index_dir={tmp_path / 'index'}"])


class ModelBuilt(Exception):
    pass


@pytest.fixture
def no_model(monkeypatch):
    """Building the model (towers and weights included) raises ModelBuilt at once."""
    import mmembed.training

    real = mmembed.training.instantiate

    def guarded(config, *args, **kwargs):
        if str(config.get("_target_", "")).endswith("JointEmbedding"):
            raise ModelBuilt("the model was built")
        return real(config, *args, **kwargs)

    monkeypatch.setattr(mmembed.training, "instantiate", guarded)


def test_data_with_no_usable_post_fails_before_the_model_with_reasons(tmp_path, make_image,
                                                                      no_model):
    from mmembed.data.sources import SourceError

    rows = [{"post_id": f"p{i}", "image_path": "img/a.jpg", "likes": "lots"} for i in range(40)]
    with pytest.raises(SourceError) as err:
        train(_manifest_cfg(tmp_path, make_image, rows))
    text = str(err.value)
    assert "loaded no posts" in text and "40 ×" in text and text.count("'likes'") == 1


def test_skipped_inputs_are_reported_before_the_model_is_built(tmp_path, make_image, no_model,
                                                               caplog):
    import logging

    rows = [{"post_id": f"p{i}", "image_path": "img/a.jpg"} for i in range(3)] + [
        {"post_id": "bad", "image_path": "img/a.jpg", "hashtags": 5},
        {"post_id": "gone", "image_path": "img/gone.jpg"}]
    with caplog.at_level(logging.WARNING, logger="mmembed.training"):
        with pytest.raises(ModelBuilt):
            train(_manifest_cfg(tmp_path, make_image, rows))
    assert "2 input(s) skipped" in caplog.text
    assert "'hashtags' must be text" in caplog.text and "img/gone.jpg" in caplog.text


def _fit_flat(max_epochs: int, patience: int | None):
    """A one-parameter model whose validation loss never improves, fitted by Lightning."""
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping
    from torch.utils.data import DataLoader, TensorDataset

    class Flat(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, batch_idx):
            return (self.w * batch[0]).sum() ** 2

        def validation_step(self, batch, batch_idx):
            self.log("val/loss", torch.tensor(1.0))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    data = DataLoader(TensorDataset(torch.ones(4, 1)), batch_size=2)
    callbacks = [EarlyStopping(monitor="val/loss", patience=patience)] if patience else []
    trainer = L.Trainer(max_epochs=max_epochs, callbacks=callbacks, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(Flat(), data, data)
    return trainer


def test_stop_reason_names_early_stopping_or_max_epochs():
    early = mmembed.training.stop_reason(_fit_flat(max_epochs=10, patience=2))
    assert early.startswith("training stopped early after epoch 3 of 10")
    assert "val/loss had not improved for 2 epochs" in early
    assert mmembed.training.stop_reason(_fit_flat(max_epochs=2, patience=None)) == \
        "training ran all 2 epochs (max_epochs=2)"


def test_feature_views_are_cached_once_and_change_only_training(tmp_path):
    """model.feature_views=2 caches two augmented views' image features beside the photos'
    own (read back, not recomputed, on the next run) and trains on them; with the same seed
    the first step's loss then differs from a run without views."""
    from hydra.utils import instantiate

    from mmembed.models.features import tower_features

    runs = {}
    for views in (0, 2):
        cfg = tiny_cfg(tmp_path / f"v{views}", "logger=csv", "trainer.fast_dev_run=true",
                       f"model.feature_views={views}", cache=tmp_path / "cache")
        runs[views] = train_app(cfg)
    assert runs[0][0]["train/loss"] != runs[2][0]["train/loss"]
    folder = tmp_path / "cache" / "features"
    names = sorted(p.name for p in folder.glob("features-*.safetensors"))
    digest = min(names, key=len).removesuffix(".safetensors")
    assert sorted(names) == sorted([f"{digest}.safetensors", f"{digest}-view1.safetensors",
                                    f"{digest}-view2.safetensors"])
    from safetensors.torch import load_file

    assert set(load_file(folder / f"{digest}-view1.safetensors")) == {"image"}  # no captions
    written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    model, datamodule = instantiate(cfg.model), runs[2][1]["datamodule"]
    feats = tower_features(model, datamodule, cache_dir=str(folder), views=2)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == written  # read back
    photo, first, second = feats["image"], feats["image_view1"], feats["image_view2"]
    assert photo.shape == first.shape == second.shape and "text" in feats
    assert not torch.allclose(photo, first) and not torch.allclose(first, second)
    fresh = tower_features(model, datamodule, cache_dir=None, views=1)  # the same views again
    torch.testing.assert_close(fresh["image_view1"], first, rtol=0, atol=1e-5)
