"""Callbacks: the per-epoch history file (with memory figures), the epoch line on the console,
last.ckpt after every epoch and the moving average of the weights."""

from __future__ import annotations

import logging
import math
import os
import resource
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn

from seglab.runs import HISTORY_FILE, Run

log = logging.getLogger("seglab")

HISTORY_FIELDS = [
    "epoch",
    "train_loss",
    "val_loss",
    "val_iou",  # dataset-level (pixels of all validation images pooled)
    "val_dice",
    "val_image_iou",  # mean over validation images of each image's IoU
    "val_image_dice",
    "val_precision",
    "val_recall",
    "lr",
    "seconds",  # the whole epoch, validation included
    "train_seconds",  # training batches only
    "images_per_s",  # training patches per second
    "skipped_steps",  # non-finite steps skipped by the NaN guard
    "peak_gpu_mb",
    "rss_mb",
]


def process_rss_mb() -> float:
    """Resident memory of this process now (Linux /proc), else its peak (getrusage)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class HistoryWriter(L.Callback):
    """One row per epoch in ``history.csv`` (rewritten atomically); the rows live in checkpoints."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.rows: list[dict[str, Any]] = []
        self._start = self._train_end = 0.0
        self._images = 0
        self._lr = float("nan")
        self.skipped_steps = 0  # incremented by the NaN guard
        self._validated_epoch = -1  # the last epoch whose validation ran to its end

    @property
    def state_key(self) -> str:
        return "HistoryWriter"

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "lr": self._lr, "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))
        self._lr = float(state_dict.get("lr", float("nan")))  # of an epoch resumed midway
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = self._train_end = time.perf_counter()  # a resumed epoch starts now

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = self._train_end = time.perf_counter()
        self._images = 0
        self.skipped_steps = 0
        self._lr = trainer.optimizers[0].param_groups[0]["lr"]  # the rate this epoch trains at
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self._images += int(batch[0].shape[0])
        self._train_end = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated_epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        validated = self._validated_epoch == trainer.current_epoch
        if trainer.val_dataloaders is not None and not validated and validation_planned(trainer):
            # stopped inside the epoch (signal, rollback): its validation did not run, and the
            # resumed run writes this epoch's row; a row with stale val figures would be wrong
            return
        metrics = trainer.callback_metrics
        row: dict[str, Any] = {"epoch": trainer.current_epoch + 1}
        for key in HISTORY_FIELDS[1:9]:
            # an epoch that skipped validation (train.val_every) has none: Lightning still
            # holds the previous validation's figures
            value = metrics.get(key) if validated or not key.startswith("val_") else None
            row[key] = float(value) if value is not None else None
        if hasattr(module, "epoch_train_loss"):  # resumed mid-epoch: the whole epoch's mean
            row["train_loss"] = module.epoch_train_loss()
        train_seconds = self._train_end - self._start
        row["lr"] = self._lr
        row["seconds"] = round(time.perf_counter() - self._start, 3)
        row["train_seconds"] = round(train_seconds, 3)
        row["images_per_s"] = self._images * trainer.world_size / max(train_seconds, 1e-9)
        row["skipped_steps"] = self.skipped_steps
        if torch.cuda.is_available():
            row["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        row["rss_mb"] = process_rss_mb()
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        if trainer.is_global_zero:
            self.run.write_csv(HISTORY_FILE, self.rows, HISTORY_FIELDS)
            log.info(
                "epoch %d/%d  train_loss %s  val_loss %s  val_iou %s  lr %.2e  %.1fs",
                row["epoch"],
                trainer.max_epochs,
                _fmt(row["train_loss"]),
                _fmt(row["val_loss"]),
                _fmt(row["val_iou"]),
                row["lr"],
                row["seconds"],
            )


def validation_planned(trainer: L.Trainer) -> bool:
    """Whether Lightning validates at the end of the current epoch (``train.val_every``)."""
    every = trainer.check_val_every_n_epoch
    return every is None or (trainer.current_epoch + 1) % every == 0


class _AfterValidation:
    """Acts at an epoch's end only if that epoch validates, when it watches a ``val_`` metric.

    With ``train.val_every`` > 1 some epochs do not validate, and Lightning's logged
    metrics still hold the previous validation's figures: such an epoch would be judged by
    its predecessor's score.
    """

    monitor: str | None

    @property
    def state_key(self) -> str:
        # the Lightning class's key: a run checkpointed before these classes were used
        # resumes with its best score and patience
        lightning = next(c for c in type(self).__mro__ if c.__module__.startswith("lightning"))
        return super().state_key.replace(type(self).__qualname__, lightning.__qualname__, 1)  # type: ignore[misc]

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if (self.monitor or "").startswith("val_") and not validation_planned(trainer):
            return
        super().on_train_epoch_end(trainer, module)  # type: ignore[misc]


class BestCheckpoint(_AfterValidation, ModelCheckpoint):
    """``best.ckpt`` by ``monitor``, saved at the end of an epoch that validated."""


class TopCheckpoints(BestCheckpoint):
    """The ``save_top_k`` best epochs by ``monitor`` (``train.checkpoint.ensemble``), beside
    ``best.ckpt``, with a state of its own in a checkpoint (resumes keep both)."""

    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            monitor=self.monitor, mode=self.mode, save_top_k=self.save_top_k
        )


class ValidatedEarlyStopping(_AfterValidation, EarlyStopping):
    """Early stopping whose patience counts validations, not epochs."""


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` (full state, to resume) at the end of every training epoch.

    Lightning's ``save_last`` writes ``last.ckpt`` only in an epoch that also saved a top-k
    checkpoint, so after epochs that did not improve the monitored metric it lagged behind:
    a resume went back to the best epoch and trained the later ones again.
    """

    def __init__(self, path: Path) -> None:
        if path.suffix != self.FILE_EXTENSION:
            raise ValueError(f"{path}: a checkpoint file name ends in {self.FILE_EXTENSION}")
        super().__init__(
            dirpath=path.parent,
            filename=path.stem,
            monitor=None,
            save_top_k=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        )


class WeightEMA(WeightAveraging):
    """An exponential moving average of the weights, updated after every optimizer step.

    Lightning's ``WeightAveraging`` does the rest: validation runs with the average, a
    checkpoint's ``state_dict`` is the average (the raw weights go in
    ``current_model_state``), and a resume restores both. Unlike Lightning's
    ``EMAWeightAveraging`` it updates with torch's foreach EMA: 2.9 instead of 10.2 ms per
    update for the seglab U-Net, 8.2 instead of 70.1 ms for SMP's ``Unet(resnet18)`` on the
    2-core CI CPU (``bench/ema_update.py``).
    """

    def __init__(self, decay: float) -> None:  # in (0, 1): train.ema_decay validates it
        super().__init__(use_buffers=True, multi_avg_fn=get_ema_multi_avg_fn(decay))
