"""Callbacks: the per-epoch history file and the epoch line on the console."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning as L

from seglab.runs import HISTORY_FILE, Run

log = logging.getLogger("seglab")

HISTORY_FIELDS = ["epoch", "train_loss", "val_loss", "val_iou", "val_dice", "lr", "seconds"]


class HistoryWriter(L.Callback):
    """Appends one row per epoch to ``history.csv`` (rewritten atomically) and logs it."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.rows: list[dict[str, Any]] = []
        self._start = 0.0
        self._lr = float("nan")

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self._lr = trainer.optimizers[0].param_groups[0]["lr"]  # the rate this epoch trains at

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        row: dict[str, Any] = {"epoch": trainer.current_epoch + 1}
        for key in ("train_loss", "val_loss", "val_iou", "val_dice"):
            value = metrics.get(key)
            row[key] = float(value) if value is not None else None
        row["lr"] = self._lr
        row["seconds"] = round(time.perf_counter() - self._start, 3)
        self.rows.append(row)
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


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"
