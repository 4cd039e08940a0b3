"""train(cfg) on tiny synthetic data: each experiment, resume, W&B offline files, NaN guard."""

import glob
import os
from pathlib import Path

import pytest
import torch

from mmembed.config import compose
from mmembed.training import train

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
    metrics, objects = train(tiny_cfg(tmp_path, *overrides))
    assert objects["trainer"].state.finished
    assert "train/loss" in metrics and "val/loss" in metrics
    if experiment == "image_ae":
        assert objects["model"].text_tower is None and "train/contrastive" not in metrics
    else:
        assert "val/recall@1_i2t" in metrics
    assert (tmp_path / "run" / "config_resolved.yaml").is_file()


def test_resume_continues_steps_and_wandb_run(tmp_path):
    common = ["model/image_tower=small_cnn", "model/text_tower=scratch",
              "model.freeze_towers=false", "logger=wandb"]
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


def test_wandb_offline_run_folder_holds_curves_and_sample_table(tmp_path):
    _, objects = train(tiny_cfg(tmp_path, "logger=wandb", "trainer.max_epochs=2"))
    run_dirs = glob.glob(str(tmp_path / "run" / "wandb" / "offline-run-*"))
    assert len(run_dirs) == 1
    run_dir = Path(run_dirs[0])
    tables = list((run_dir / "files" / "media" / "table" / "samples").glob("*.table.json"))
    assert tables and "caption" in tables[0].read_text()
    records = next(run_dir.glob("run-*.wandb")).read_bytes()
    for key in (b"train/loss", b"train/logit_scale", b"val/recall@1_i2t",
                b"val/engagement_src", b"lr-AdamW"):
        assert key in records, key
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        assert os.environ[var].startswith(str(objects["output_dir"].resolve())), var


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
                   "model.freeze_towers=false")
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
