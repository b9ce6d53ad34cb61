"""``fit(cfg, run, data)``: train a model with Lightning and keep the best weights."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from dataclasses import dataclass

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from torch import nn
from torch.utils.data import DataLoader

from seglab.config import Config
from seglab.data.datasets import ImageDataset, train_dataset
from seglab.data.prepare import PreparedData
from seglab.engine.callbacks import HistoryWriter
from seglab.engine.checkpoint_io import SafeCheckpointIO, load_state_dict
from seglab.engine.module import SegModule
from seglab.models.registry import create_model
from seglab.runs import Run

log = logging.getLogger("seglab")


@dataclass
class FitResult:
    model: nn.Module  # with the best validation weights loaded
    best_epoch: int | None
    best_val_iou: float | None
    epochs_run: int
    seconds: float
    stopped_because: str


def fit(cfg: Config, run: Run, data: PreparedData) -> FitResult:
    """Train ``cfg.model`` on ``data``; checkpoints and history go into ``run``."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = create_model(cfg.model)
    module = SegModule(model, cfg)
    train_loader = DataLoader(
        train_dataset(cfg, data.train, data.normalization),
        batch_size=cfg.train.batch_size,
        shuffle=False,
        num_workers=cfg.train.num_workers,
        drop_last=cfg.data.patches_per_epoch >= 2 * cfg.train.batch_size,
    )
    val_loader = DataLoader(
        ImageDataset(data.val, data.normalization),
        batch_size=1,
        num_workers=cfg.train.num_workers,
    )
    best = ModelCheckpoint(
        dirpath=run.checkpoints,
        filename="best",
        monitor="val_iou",
        mode="max",
        save_last=True,
        enable_version_counter=False,
    )
    history = HistoryWriter(run)
    callbacks: list[L.Callback] = [best, history]
    show_bar = cfg.train.progress and sys.stdout.isatty()
    if show_bar:
        callbacks.append(RichProgressBar(leave=True))
    trainer = L.Trainer(
        max_epochs=cfg.train.epochs,
        accelerator=cfg.train.accelerator,
        devices=cfg.train.devices,
        precision=cfg.train.precision,
        gradient_clip_val=cfg.train.grad_clip,
        callbacks=callbacks,
        plugins=[SafeCheckpointIO()],
        logger=False,
        default_root_dir=run.path,
        enable_progress_bar=show_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*")
        trainer.fit(module, train_loader, val_loader)
    seconds = time.perf_counter() - start
    if best.best_model_path:
        model.load_state_dict(load_state_dict(best.best_model_path))
    best_epoch = _best_epoch(history.rows)
    return FitResult(
        model=model.eval(),
        best_epoch=best_epoch,
        best_val_iou=float(best.best_model_score) if best.best_model_score is not None else None,
        epochs_run=len(history.rows),
        seconds=seconds,
        stopped_because="interrupted" if trainer.interrupted else "max_epochs",
    )


def _best_epoch(rows: list[dict]) -> int | None:
    scored = [r for r in rows if r.get("val_iou") is not None]
    return max(scored, key=lambda r: r["val_iou"])["epoch"] if scored else None


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
