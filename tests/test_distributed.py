"""Many devices: validation metrics that are global and bounded, bf16, and 2-process DDP on CPU."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import TINY, tiny_overrides
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mmembed.config import compose
from mmembed.training import attach_tokenizer, resolve_trainer, setup_datamodule, train

ROOT = Path(__file__).resolve().parent.parent

#: Every source of randomness in a training step off (projection and modality dropout; the
#: ridge engagement head has none), so a 2-rank run and a 1-rank run of the same global batches
#: can agree to rounding.
NO_DROPOUT = ["model.proj_dropout=0", "model.text_dropout=0"]


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
    model.prepare(datamodule)  # what fit does first: feature cache, engagement head fitted
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


@pytest.mark.slow  # a whole tiny train and build in bf16 (~11 s)
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
    # DDP first: both ranks compute the tower features and write the same cache file (each
    # through its own temporary file); the single process then reads that file.
    proc = run_train(*common, "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
                     "trainer.precision=32-true", "datamodule.batch_size=16",
                     f"paths.output_dir={ddp}")
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in proc.stderr + proc.stdout
    assert "sync_batchnorm=true needs CUDA" in proc.stderr + proc.stdout
    names = [p.name for p in (tmp_path / "cache" / "features").iterdir()]
    assert len([n for n in names if n.startswith("features-")]) == 1, names
    assert not [n for n in names if ".tmp-" in n], names  # no temporary file left behind
    run_train(*common, f"paths.output_dir={single}")
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


class Preempted(Exception):
    """What submitit's handler does after requeueing: end the process (here: raise)."""


class SignalAt(L.Callback):
    """Sends this process ``signum`` before batch ``batch`` of epoch ``epoch``."""

    def __init__(self, signum, epoch, batch):
        self.signum, self.epoch, self.batch = signum, epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            os.kill(os.getpid(), self.signum)


SLURM_ENV = {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "mmembed",
             "SLURM_JOB_ID": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
             "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost", "SLURM_JOB_NUM_NODES": "1"}


@pytest.mark.slow
def test_preempted_slurm_job_saves_mid_epoch_and_its_requeue_resumes(tmp_path, monkeypatch):
    """A submitit SLURM job gets USR2 in epoch 2: the run saves hpc_ckpt_1.ckpt there, then
    submitit's handler (a stand-in) runs; the requeued job (same config and folder, under
    SLURM) resumes from that checkpoint and ends at the step count of an unbroken run."""
    calls = []

    def submitit_handler(signum, frame):
        calls.append(signum)
        raise Preempted

    common = tiny_overrides(tmp_path) + ["trainer.max_epochs=3", "trainer.min_epochs=1",
                                         "build=false"]
    kill = (f"+callbacks.signal={{_target_:test_distributed.SignalAt,"
            f"signum:{int(signal.SIGUSR2)},epoch:1,batch:2}}")
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL", raising=False)
    previous = signal.signal(signal.SIGUSR2, submitit_handler)
    try:
        with pytest.raises(Preempted):
            train(compose([*common, kill]))
        assert calls == [signal.SIGUSR2]
        with pytest.raises(Preempted):  # after the run the signal still reaches submitit
            os.kill(os.getpid(), signal.SIGUSR2)
        assert calls == [signal.SIGUSR2, signal.SIGUSR2]
        (saved,) = (tmp_path / "run").glob("hpc_ckpt_*.ckpt")
        assert saved.name == "hpc_ckpt_1.ckpt"
        assert torch.load(saved, map_location="cpu", weights_only=True)["epoch"] == 1

        for key, value in SLURM_ENV.items():  # the requeued job: same folder, under SLURM
            monkeypatch.setenv(key, value)
        _, objects = train(compose(common))
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert objects["trainer"].ckpt_path == str(saved)
    n_train = len(objects["datamodule"].datasets["train"])
    assert objects["trainer"].global_step == 3 * (n_train // 32)


@pytest.mark.slow
def test_submitit_local_multirun_trains_every_job_and_writes_its_bundle(tmp_path):
    """``train.py -m hydra/launcher=submitit_local seed=0,1``: two submitit jobs, each its own
    process and folder, each ending in its own bundle."""
    tiny = [o for o in TINY if not o.startswith(("bundle_name=", "trainer.max_epochs="))]
    run_train("-m", "hydra/launcher=submitit_local", "seed=0,1", *tiny,
              "trainer.max_epochs=2", "trainer.min_epochs=1", "bundle_name=tiny-${seed}",
              f"paths.cache_dir={tmp_path / 'cache'}", f"paths.index_dir={tmp_path / 'index'}",
              f"hydra.sweep.dir={tmp_path / 'sweep'}")
    logs = sorted((tmp_path / "sweep" / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2  # one submitit job per seed
    for seed in (0, 1):
        manifest = json.loads((tmp_path / "index" / f"tiny-{seed}" / "manifest.json").read_text())
        assert manifest["config"]["seed"] == seed
        assert (tmp_path / "sweep" / str(seed) / "checkpoints" / "last.ckpt").is_file()


def test_slurm_launcher_asks_for_the_trainer_s_nodes_and_gpus():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from mmembed.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("train", return_hydra_config=True, overrides=[
            "hydra/launcher=slurm", "trainer=ddp", "trainer.num_nodes=2", "trainer.devices=8",
            "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=90"])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["nodes"], launcher["gpus_per_node"], launcher["tasks_per_node"]) == (2, 8, 8)
    assert (launcher["partition"], launcher["timeout_min"]) == ("gpu", 90)
    assert launcher["max_num_timeout"] > 0 and launcher["signal_delay_s"] > 0
