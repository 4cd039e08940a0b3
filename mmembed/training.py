"""``train(cfg)``: fit the joint embedding. ``train.py`` is a thin Hydra wrapper around it.

**Resume.** ``ckpt_path=.../last.ckpt`` continues a run and ends where the unbroken run of the
same seed ends (same weights, bundle and ranking on CPU), even after a SIGKILL mid-epoch:

- Lightning restores the weights, optimiser, scheduler and loop counters, and restarts the
  interrupted epoch from its beginning (``last.ckpt`` is written at each epoch's end);
- the epoch's batch order is a pure function of ``(seed, epoch)``
  (:class:`mmembed.data.datamodule.PostDataModule`);
- :class:`BatchSeed` re-seeds every random generator before each training batch from
  ``(seed, epoch, batch, rank)``, so dropout and modality dropout draw the same masks whatever
  ran before (model building, the sanity check, the epochs before a crash);
- :class:`ResumableCheckpoint` restores its best score and kept files even when the resumed
  run writes to a new output folder (Hydra gives every run its own), so the best epoch and the
  early-stopping state are those of the unbroken run.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import signal
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from mmembed.bundle import default_bundle_name
from mmembed.data.post import format_skipped
from mmembed.progress import QUIET, Progress
from mmembed.tracking import is_wandb

log = logging.getLogger(__name__)


class WandbRunIdInCheckpoint(Callback):
    """Stores the W&B run id in each checkpoint, so a resume continues the same dashboard run."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        for logger in trainer.loggers:
            if is_wandb(logger):
                checkpoint["wandb_run_id"] = logger.version


class BatchSeed(Callback):
    """Re-seeds torch (CPU and CUDA), numpy and ``random`` before every training batch.

    The seed of batch b of epoch e on rank r is drawn from
    ``numpy.random.SeedSequence([seed, e, b, r])``, so each step's dropout and modality-dropout
    masks (and the validation that follows the epoch's last batch) depend on nothing that ran
    before it: model building, the sanity check, the epochs before a crash. A resumed run thus
    draws exactly what the unbroken run drew, with no generator state saved in the checkpoint.
    Per batch rather than per epoch: a DataLoader draws its workers' base seed from the global
    generator when its iterator is made, and Lightning makes the first epoch's iterator before
    ``on_train_epoch_start`` but later epochs' after it, so at the first batch of a resumed
    epoch a per-epoch seed would have been drawn from once less. Ranks draw different masks.
    """

    def __init__(self, seed: int):
        self.seed = int(seed)

    def batch_seed(self, epoch: int, batch_idx: int, rank: int = 0) -> int:
        return int(np.random.SeedSequence([self.seed, epoch, batch_idx, rank]).generate_state(1)[0])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        seed = self.batch_seed(trainer.current_epoch, batch_idx, trainer.global_rank)
        torch.manual_seed(seed)  # every device's generator
        np.random.seed(seed)
        random.seed(seed)


class ResumableCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose state (best score, kept files) survives a resume into a new folder.

    Lightning's ModelCheckpoint restores only ``best_model_path`` when the checkpoint folder
    changed, and then treats the first resumed epoch as the best so far: the resumed run would
    keep and serve another epoch than the unbroken run. Every Hydra run has its own output
    folder, so here the state is restored in full. Files of the earlier run stay where they are
    (Lightning never deletes a checkpoint outside its own folder, nor the one resumed from).
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict({**state_dict, "dirpath": self.dirpath})


class BestCheckpoint(ResumableCheckpoint):
    """ModelCheckpoint that starts ranking epochs only after ``min_epochs``.

    The first epochs can have the lowest validation loss before the slower parts of the model
    (the image-only path's consistency term) have learnt anything; a bundle built from them
    would place new photos badly. Keep it equal to ``trainer.min_epochs``, so early stopping
    cannot end training before the first candidate is saved.
    """

    def __init__(self, *args: Any, min_epochs: int = 0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.min_epochs = min_epochs

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch + 1 >= self.min_epochs:
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch + 1 >= self.min_epochs:
            super().on_validation_end(trainer, pl_module)


class SampleTable(Callback):
    """Logs a W&B table of sample image–caption pairs from the validation split, once."""

    def __init__(self, rows: int = 16):
        self.rows = rows

    def on_fit_start(self, trainer, pl_module) -> None:
        loggers = [lg for lg in trainer.loggers if is_wandb(lg)]
        if not loggers or trainer.global_rank != 0:
            return
        import wandb

        dm = trainer.datamodule
        if dm.streams:  # a stream has no random access: its first items would need a read
            return
        dataset = dm.datasets["val"]
        data = []
        for i in range(min(self.rows, len(dataset))):
            item = dataset[i]
            post = dm.posts[int(item["index"])]
            image = (item["image"].permute(1, 2, 0).numpy() * 255).astype("uint8")
            data.append([post.post_id, wandb.Image(image), post.caption, post.account,
                         float(item["engagement"]), post.topic or ""])
        loggers[0].log_table("samples/image_caption_pairs",
                             columns=["post_id", "image", "caption", "account",
                                      "log_engagement", "topic"], data=data)


HPC_CHECKPOINT = re.compile(r"^hpc_ckpt_(\d+)\.ckpt$")


def hpc_checkpoints(folder: str | Path) -> list[Path]:
    """Lightning's HPC checkpoints (``hpc_ckpt_<n>.ckpt``) in ``folder``, oldest first."""
    folder = Path(folder)
    found = [(int(m[1]), p) for p in folder.glob("hpc_ckpt_*.ckpt")
             if (m := HPC_CHECKPOINT.match(p.name))] if folder.is_dir() else []
    return [p for _, p in sorted(found)]


def submitit_signal() -> signal.Signals | None:
    """The signal a submitit SLURM job receives before its time limit or on preemption
    (``SUBMITIT_PREEMPT_SIGNAL``, USR2 by default); ``None`` outside such a job."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
        return None
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


class PreemptionCheckpoint(Callback):
    """On ``signum``, save Lightning's HPC checkpoint at the next training batch's end, then
    hand the signal on.

    Under ``hydra/launcher=slurm`` SLURM sends every task submitit's signal
    (``hydra.launcher.signal_delay_s`` before the time limit, or on preemption). The handler
    only notes it; at the end of the next training batch the ranks agree that one of them got
    it (a collective inside a signal handler could meet another rank in the middle of a
    gradient all-reduce), save ``hpc_ckpt_<n+1>.ckpt`` in the run folder (the mid-epoch
    state) and call the handler that was there before: submitit's, which requeues the job on
    rank 0. A signal that arrives after the last training batch is handed on when fit ends.
    The requeued job runs the same Hydra job in the same folder, and :func:`train` resumes
    from its newest checkpoint (:func:`resume_path`).
    """

    def __init__(self, signum: int):
        self.signum = signum
        self._previous: Any = None
        self._pending: tuple[int, Any] | None = None
        self._active = False

    def on_fit_start(self, trainer, pl_module) -> None:
        self._previous = signal.getsignal(self.signum)
        self._active = True
        signal.signal(self.signum, self._handle)

    def _handle(self, signum, frame) -> None:
        if self._active:
            self._pending = (signum, frame)
        else:  # fit is over (Lightning may restore this handler): pass it straight on
            self._hand_on(signum, frame)

    def _hand_on(self, signum, frame) -> None:
        if callable(self._previous):
            self._previous(signum, frame)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.strategy.reduce_boolean_decision(self._pending is not None, all=False):
            return
        existing = hpc_checkpoints(trainer.default_root_dir)
        n = int(HPC_CHECKPOINT.match(existing[-1].name)[1]) + 1 if existing else 1
        path = Path(trainer.default_root_dir) / f"hpc_ckpt_{n}.ckpt"
        log.info("preemption signal: saving %s before the job is requeued", path)
        trainer.save_checkpoint(path)
        self._release()

    def _release(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._hand_on(*pending)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._active = False
        self._release()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._active = False
        self._pending = None


def resume_path(cfg: DictConfig, output_dir: Path) -> str | None:
    """``ckpt_path``; or, under SLURM (a requeued job reruns in its own folder), the newest of
    the run folder's HPC checkpoints and ``checkpoints/last.ckpt``."""
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    from lightning.fabric.plugins.environments import SLURMEnvironment

    if not SLURMEnvironment.detect():
        return None
    saved = [*hpc_checkpoints(output_dir), output_dir / "checkpoints" / "last.ckpt"]
    saved = [p for p in saved if p.is_file()]
    if not saved:
        return None
    newest = max(saved, key=lambda p: p.stat().st_mtime_ns)
    log.info("requeued SLURM job: resuming from %s", newest)
    return str(newest)


def checkpoint_extras(ckpt_path: str | None) -> dict[str, Any]:
    """What a checkpoint stores besides the training state: the W&B run id
    (``wandb_run_id``) and a from-scratch text tower's vocabulary (``tokenizer_json``); read
    with ``weights_only=True``. Empty without a checkpoint."""
    if not ckpt_path:
        return {}
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    return {key: checkpoint[key] for key in ("wandb_run_id", "tokenizer_json")
            if key in checkpoint}


def build_logger(cfg: DictConfig, run_id: str | None):
    """The configured logger (``False`` for none); a logger config with a ``run_id`` key (W&B)
    continues the run a resumed checkpoint names."""
    if not cfg.get("logger"):
        return False
    kwargs = {"run_id": run_id} if "run_id" in cfg.logger else {}
    return instantiate(cfg.logger, **kwargs)


def setup_datamodule(cfg: DictConfig, progress: Progress = QUIET) -> Any:
    """The configured datamodule, set up: the source loaded and every image decoded.

    Runs before the model is built, so bad data fails in seconds with its reasons rather than
    after the towers are loaded. Raises :class:`~mmembed.data.sources.SourceError` when no post
    loaded; the message lists why the inputs were skipped.
    """
    datamodule = instantiate(cfg.datamodule, source=instantiate(cfg.data))
    datamodule.progress = progress
    datamodule.setup()
    return datamodule


def attach_tokenizer(model, datamodule, tokenizer_json: str | None = None,
                     ckpt_path: str | None = None) -> None:
    """Give the text tower its vocabulary and hand the tokenizer to the datamodule.

    The vocabulary is fitted on the training captions, or, given ``tokenizer_json`` (from the
    checkpoint a run resumes or builds from), set to the one the checkpoint's weights were
    trained with.
    """
    if model.text_tower is not None:
        if tokenizer_json is not None:
            model.text_tower.load_tokenizer(tokenizer_json)
        else:
            if ckpt_path and model.text_tower.fits_vocabulary:
                log.warning("%s stores no text vocabulary (written by an older version): "
                            "fitting it again, which may not give the token ids its weights "
                            "were trained with", ckpt_path)
            train_captions = [p.caption for p, s in zip(datamodule.posts, datamodule.split)
                              if s == "train"]
            model.text_tower.fit_tokenizer(train_captions)
        datamodule.tokenize = model.text_tower.tokenizer_fn()  # small, pickles into workers


def load_weights(model, ckpt_path: str) -> None:
    """Load a Lightning checkpoint's weights into ``model`` (``weights_only``: no code runs)."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    state = checkpoint["state_dict"]
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        def _some(keys: list[str]) -> str:
            return ", ".join(keys[:3]) + (f", … {len(keys) - 3} more" if len(keys) > 3 else "")
        raise ValueError(
            f"checkpoint {ckpt_path} was trained with another model than this config builds "
            f"(missing: {_some(missing) or 'none'}; not in this model: "
            f"{_some(unexpected) or 'none'}); pass the model overrides it was trained with "
            "(cluster=dec, for one, needs a model trained with model/autoencoder=post)")
    model.load_state_dict(state)


def _runs_on_cuda(accelerator: Any) -> bool:
    """Whether a Trainer with this ``accelerator`` setting runs on CUDA GPUs."""
    name = str(accelerator or "auto").lower()
    if name in ("gpu", "cuda"):
        return True
    return name == "auto" and torch.cuda.is_available()


def resolve_trainer(trainer_cfg: DictConfig) -> DictConfig:
    """The trainer config with what this machine cannot run turned off, one log line each.

    ``sync_batchnorm`` works on CUDA only (``torch.nn.SyncBatchNorm`` refuses CPU modules), so
    ``trainer=ddp trainer.accelerator=cpu`` (gloo) runs with each rank's own batch-norm
    statistics. (The frozen towers' batch norms are in eval mode either way.)
    """
    trainer_cfg = OmegaConf.create(OmegaConf.to_container(trainer_cfg, resolve=True))
    if trainer_cfg.get("sync_batchnorm") and not _runs_on_cuda(trainer_cfg.get("accelerator")):
        log.info("trainer.sync_batchnorm=true needs CUDA GPUs; turned off for accelerator=%s",
                 trainer_cfg.get("accelerator"))
        trainer_cfg.sync_batchnorm = False
    return trainer_cfg


def fit(cfg: DictConfig, model, datamodule, logger, output_dir: Path, ckpt_path: str | None):
    """Run ``Trainer.fit``; return the trainer and the best/last checkpoint paths."""
    configured = {name: instantiate(c) for name, c in (cfg.get("callbacks") or {}).items() if c}
    callbacks = [*configured.values(), BatchSeed(cfg.seed), WandbRunIdInCheckpoint(),
                 SampleTable()]
    if (signum := submitit_signal()) is not None:
        callbacks.append(PreemptionCheckpoint(signum))
    if logger:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    trainer: L.Trainer = instantiate(resolve_trainer(cfg.trainer), logger=logger,
                                     callbacks=callbacks, default_root_dir=str(output_dir))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    log.info("model %s: %.1f M trainable parameters, %.1f M frozen", type(model).__name__,
             trainable / 1e6, frozen / 1e6)
    with warnings.catch_warnings():
        # Frozen towers are in eval mode on purpose (see towers.freeze).
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode")
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    log.info(stop_reason(trainer))
    paths = {name: getattr(configured.get(f"{name}_checkpoint"), "best_model_path", None) or None
             for name in ("best", "last")}
    log.info("checkpoints: best %s, last %s", paths["best"], paths["last"])
    return trainer, paths


def stop_reason(trainer: L.Trainer) -> str:
    """One line saying why ``trainer.fit`` ended: early stopping (with its patience and best
    score), ``max_epochs``/``max_steps``, or an interruption."""
    from lightning.pytorch.callbacks import EarlyStopping

    epochs = trainer.current_epoch
    for cb in trainer.callbacks:
        if isinstance(cb, EarlyStopping) and cb.stopped_epoch > 0:
            best = cb.best_score.item() if torch.is_tensor(cb.best_score) else cb.best_score
            return (f"training stopped early after epoch {cb.stopped_epoch + 1} of "
                    f"{trainer.max_epochs}: {cb.monitor} had not improved for {cb.patience} "
                    f"epochs (best {best:.4f})")
    if trainer.interrupted:
        return f"training was interrupted during epoch {epochs + 1}"
    if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
        return f"training stopped at max_steps={trainer.max_steps} (epoch {epochs})"
    return f"training ran all {epochs} epochs (max_epochs={trainer.max_epochs})"


def bundle_target(cfg: DictConfig) -> Path:
    """``index/<bundle_name>``, by default ``<experiment_name>-<data source>``."""
    if cfg.get("bundle_name"):
        name = str(cfg.bundle_name)
    else:
        name = default_bundle_name(cfg.get("experiment_name"),
                                   str(cfg.data._target_).split(".")[-2])
    return Path(cfg.paths.index_dir) / name


def train(cfg: DictConfig, progress: Progress = QUIET) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit the model the config describes and build its bundle; return ``(metrics, objects)``.

    ``objects`` holds the model, datamodule, trainer, the output folder, the checkpoints and
    the :class:`~mmembed.build.BuildResult`, so callers (the app, tests) continue from here
    without re-reading anything.
    """
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))

    ckpt_path = resume_path(cfg, output_dir)
    extras = checkpoint_extras(ckpt_path)
    datamodule = setup_datamodule(cfg, progress)
    log.info("posts: %d (%s); skipped: %d", len(datamodule.posts),
             {s: int((datamodule.split == s).sum()) for s in ("train", "val", "test")},
             len(datamodule.skipped))
    if datamodule.skipped:
        log.warning("%s\n(every input and reason: python -m mmembed.data with the same data "
                    "overrides)", format_skipped(datamodule.skipped, examples=3))
    progress.phase("loading the towers")
    model = instantiate(cfg.model)
    # Frozen towers read cached features by row: a stream then needs no image after the cache.
    datamodule.stream_images = not getattr(model, "freeze_towers", False)
    attach_tokenizer(model, datamodule, extras.get("tokenizer_json"), ckpt_path)
    progress.phase(None)

    logger = build_logger(cfg, extras.get("wandb_run_id"))
    trainer, checkpoints = None, {"best": None, "last": None}
    if cfg.get("build_only"):
        if not ckpt_path:
            raise ValueError("build_only=true needs ckpt_path=... (a checkpoint of a trained run)")
        load_weights(model, ckpt_path)
        metrics: dict[str, float] = {}
    else:
        trainer, checkpoints = fit(cfg, model, datamodule, logger, output_dir, ckpt_path)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if torch.is_tensor(v) and v.numel() == 1 and math.isfinite(float(v))}
        if checkpoints["best"]:  # later epochs may overfit: serve the best validation epoch
            load_weights(model, checkpoints["best"])
    objects = {"model": model, "datamodule": datamodule, "trainer": trainer,
               "output_dir": output_dir, "best_checkpoint": checkpoints["best"],
               "last_checkpoint": checkpoints["last"]}
    if cfg.get("build", True) and (trainer is None or trainer.global_rank == 0):
        from mmembed.build import build_bundle

        result = build_bundle(
            model, datamodule, instantiate(cfg.cluster), bundle_target(cfg),
            communities=OmegaConf.to_object(cfg.communities),
            search=OmegaConf.to_object(cfg.search), trust=OmegaConf.to_object(cfg.trust),
            refine=instantiate(cfg.refine) if cfg.get("refine") else None,
            config=OmegaConf.to_container(cfg, resolve=True), seed=cfg.seed,
            feature_cache_dir=cfg.model.get("feature_cache_dir"), progress=progress,
            wandb_run=logger.experiment if is_wandb(logger) else None)
        metrics.update({f"bundle/{k}": v for k, v in result.metrics.items()
                        if isinstance(v, int | float) and v is not None})
        objects["bundle"] = result
    if is_wandb(logger):
        run = logger.experiment
        objects["wandb"] = run.url or str(Path(run.dir).parent)  # offline: its folder
        run.finish()  # wandb's service then writes out the offline run folder's last records
    return metrics, objects
