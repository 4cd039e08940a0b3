"""Many devices: validation metrics that are global and bounded, bf16, and 2-process DDP on CPU."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
from conftest import TINY, tiny_overrides
from hydra.utils import instantiate

from mmembed.config import compose
from mmembed.training import attach_tokenizer, resolve_trainer, setup_datamodule, train

ROOT = Path(__file__).resolve().parent.parent

#: Every source of randomness in a training step off (projection, engagement-head and modality
#: dropout), so a 2-rank run and a 1-rank run of the same global batches can agree to rounding.
NO_DROPOUT = [
    "model.proj_dropout=0", "model.text_dropout=0",
    "+model.engagement_head={_target_:mmembed.models.heads.EngagementHead,_partial_:true,"
    "dropout:0.0}",
]


def val_metrics(run_dir: Path) -> dict[str, dict[int, float]]:
    """``{metric: {epoch: value}}`` of every ``val/`` column in the run's CSV log."""
    (path,) = [p for p in Path(run_dir).glob("csv/*/metrics.csv")]
    out: dict[str, dict[int, float]] = {}
    for row in csv.DictReader(path.open()):
        for key, value in row.items():
            if key.startswith("val/") and value:
                out.setdefault(key, {})[int(row["epoch"])] = float(value)
    return out


def small_model(tmp_path, *overrides):
    cfg = compose(tiny_overrides(tmp_path) + ["model/image_tower=small_cnn",
                                              "model/text_tower=scratch", *overrides])
    datamodule = setup_datamodule(cfg)
    model = instantiate(cfg.model)
    attach_tokenizer(model, datamodule)
    return model, datamodule


def validate(model, datamodule) -> dict[str, float]:
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    (metrics,) = trainer.validate(model, datamodule=datamodule, verbose=False)
    return metrics


def test_validation_recall_is_on_a_bounded_sample_whatever_the_batches(tmp_path):
    model, datamodule = small_model(tmp_path, "model.val_retrieval_sample=5")
    n_val = len(datamodule.datasets["val"])
    assert n_val > 5
    results = []
    for batch_size in (4, 7):
        datamodule.batch_size = batch_size
        results.append(validate(model, datamodule))
    recalls = {k: v for k, v in results[0].items() if k.startswith("val/recall@")}
    assert len(recalls) == 6
    # The pool is 5 posts (recall@k in fifths), and the same 5 for either batching.
    for key, value in recalls.items():
        assert math.isclose(value * 5, round(value * 5), abs_tol=1e-6), (key, value)
        assert results[1][key] == pytest.approx(value)
    assert recalls["val/recall@5_i2t"] == 1.0 and recalls["val/recall@5_t2i"] == 1.0
    # The per-post figures still cover the whole split.
    assert results[1]["val/engagement_src"] == pytest.approx(results[0]["val/engagement_src"])


def test_sync_batchnorm_only_on_cuda():
    ddp = compose(["trainer=ddp", "trainer.accelerator=cpu"]).trainer
    assert ddp.sync_batchnorm
    assert resolve_trainer(ddp).sync_batchnorm is False
    assert resolve_trainer(compose(["trainer=ddp"]).trainer).sync_batchnorm is True  # gpu
    assert "sync_batchnorm" not in resolve_trainer(compose([]).trainer)


def test_bf16_mixed_trains_a_tiny_run_and_builds_its_bundle(tmp_path):
    metrics, objects = train(compose(tiny_overrides(tmp_path) + [
        "trainer.precision=bf16-mixed", "trainer.max_epochs=3", "trainer.min_epochs=1"]))
    assert objects["trainer"].precision == "bf16-mixed"
    n_train = len(objects["datamodule"].datasets["train"])
    assert objects["trainer"].global_step == 3 * (n_train // 32)
    for key in ("train/loss", "val/loss", "val/recall@1_i2t", "val/engagement_src"):
        assert math.isfinite(metrics[key]), key
    assert objects["bundle"].path.is_dir() and metrics["bundle/n_clusters"] == 6


def run_train(*overrides, timeout=900):
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "train.py", *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_two_process_ddp_on_cpu_matches_one_process_at_the_same_global_batch(tmp_path):
    """train.py trainer=ddp on 2 CPU processes (gloo), 16 posts per rank, against one process
    of 32: the same global batches (the DistributedSampler deals rank r the positions r, r+2, …
    of the epoch's permutation) and, with dropout off, the same training step. The loss is
    exact under DDP (gathered features, local loss) and DDP averages the gradients, so the two
    runs differ by float32 rounding only (summation order of the all-reduce): 5 epochs later
    the validation losses agree to 1e-6 measured; asserted to 1e-4. Recall counts posts, so
    it is compared exactly but for one post of 28 (a near-tie may flip)."""
    common = [*TINY, *NO_DROPOUT, "trainer.max_epochs=5", "trainer.min_epochs=1", "build=false",
              f"paths.cache_dir={tmp_path / 'cache'}"]
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    run_train(*common, f"paths.output_dir={single}")
    proc = run_train(*common, "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
                     "trainer.precision=32-true", "datamodule.batch_size=16",
                     f"paths.output_dir={ddp}")
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in proc.stderr + proc.stdout
    assert "sync_batchnorm=true needs CUDA" in proc.stderr + proc.stdout
    one, two = val_metrics(single), val_metrics(ddp)
    assert set(one) == set(two) and set(one["val/loss"]) == set(range(5))
    n_val = 28
    for key in one:
        for epoch, value in one[key].items():
            other = two[key][epoch]
            if "recall@" in key:
                # Global: in 28ths (all validation posts), not in 14ths (one rank's share).
                assert math.isclose(other * n_val, round(other * n_val), abs_tol=1e-4)
                assert abs(other - value) <= 1 / n_val + 1e-6, (key, epoch)
            else:
                assert other == pytest.approx(value, abs=1e-4), (key, epoch)
