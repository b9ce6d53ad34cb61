"""The LightningModule: training and validation steps, the optimiser and its schedule.

Hooks for other parts of seglab:

- ``self.augment``: an ``nn.Module`` (or None) applied to ``(images, masks)`` of
  training batches on the device, in :meth:`on_after_batch_transfer`.
- Non-finite losses are skipped here (the step returns None) and counted by
  :class:`seglab.engine.guards.NanGuard`, which also checks gradients.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from seglab.config import Config
from seglab.data.augment import build_augment
from seglab.engine.memory_format import probe_memory_format
from seglab.engine.optim import build_optimizer, build_scheduler, lr_factor  # noqa: F401
from seglab.engine.rng import capture_rng, restore_rng
from seglab.losses import create_loss, probabilities
from seglab.losses.functional import cells_divide, pool_target
from seglab.metrics import SegMetrics
from seglab.models.blocks import upsample_to

Batch = tuple[torch.Tensor, torch.Tensor]
log = logging.getLogger("seglab")


class SegModule(L.LightningModule):
    def __init__(self, model: nn.Module, cfg: Config) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.loss_fn = create_loss(cfg.loss, cfg.model.num_classes, cfg.data.ignore_index)
        self.val_metrics = SegMetrics(cfg.model.num_classes, cfg.data.ignore_index)
        # on-device augmentation of training batches (None when switched off)
        self.augment: nn.Module | None = build_augment(cfg.data.augment, cfg.data.ignore_index)
        self._augmented = 0  # training batches augmented so far: seeds the next one
        # None: train.channels_last is auto, decided on the first training batch
        self.channels_last: bool | None = (
            None if cfg.train.channels_last == "auto" else cfg.train.channels_last
        )
        # seconds that choice took, until StopConditions takes them out of the batch's time
        self.format_probe_s = 0.0
        self.bad_loss: str | None = None  # why the last step was skipped (read by NanGuard)
        self.last_val: dict[str, float] = {}
        # the epoch's training loss, kept here (and in checkpoints) so a run resumed
        # mid-epoch reports the same mean as one that never stopped
        self._loss_epoch = -1
        self._loss_sum = torch.zeros((), dtype=torch.float64)
        self._loss_count = 0
        self._forward = model
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if cfg.train.compile:
            object.__setattr__(self, "_forward", torch.compile(model))  # not a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        images, masks = batch
        training = self._trainer is not None and self.trainer.training
        if training and self.augment is not None:
            images, masks = self._augment(images, masks)
        if training and self.channels_last is None:
            self._choose_memory_format(images)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, masks

    def _choose_memory_format(self, images: torch.Tensor) -> None:
        """``train.channels_last: auto``: time both formats on this batch, keep the faster.

        Rank 0's choice holds on every rank, so that all processes train alike.
        """
        start = time.monotonic()
        probe = probe_memory_format(
            self.model, images, self.trainer.precision_plugin.forward_context
        )
        if self.trainer.world_size > 1:
            probe = self.trainer.strategy.broadcast(probe, src=0)
        self.channels_last = probe.channels_last
        if probe.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.format_probe_s = time.monotonic() - start
        log.info(probe.describe())

    def _augment(self, images: torch.Tensor, masks: torch.Tensor) -> Batch:
        """Augment one training batch with random draws fixed by (seed, batch number).

        The draws come from a forked generator seeded per batch, so they do not depend on
        whatever else consumed the global generator (a resumed run creates its data loader
        at another moment than an uninterrupted one).
        """
        seed = int(np.random.SeedSequence([self.cfg.seed, self._augmented]).generate_state(1)[0])
        self._augmented += 1
        devices = [images.device] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return self.augment(images, masks)

    def on_train_epoch_start(self) -> None:
        if self._loss_epoch != self.current_epoch:
            self._loss_epoch = self.current_epoch
            self._loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
            self._loss_count = 0

    def epoch_train_loss(self) -> float | None:
        """Mean training loss of this epoch's finite steps, over all processes."""
        total = torch.stack(
            [
                self._loss_sum.to(self.device),
                torch.tensor(float(self._loss_count), device=self.device, dtype=torch.float64),
            ]
        )
        total = self.trainer.strategy.reduce(total, reduce_op="sum") if self._trainer else total
        return float(total[0] / total[1]) if total[1] > 0 else None

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        images, masks = batch
        loss = self.loss_fn(self(images), masks) + self.deep_supervision_loss(masks)
        finite = bool(torch.isfinite(loss))
        if self._trainer is not None and self.trainer.world_size > 1:
            # every rank skips, or none: the gradient all-reduce needs all ranks in step
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            value = "not finite on another rank" if torch.isfinite(loss) else float(loss.detach())
            where = f" on rank {self.global_rank}" if self.trainer.world_size > 1 else ""
            self.bad_loss = f"loss is {value}{where} at step {self.global_step}"
            if self.trainer.world_size == 1:
                return None  # Lightning skips backward and the optimiser step
            # DDP cannot skip a backward: every rank runs one that gives zero gradients
            # everywhere, and NanGuard then drops the gradients so the optimiser skips the step
            return sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
        self.bad_loss = None
        self._loss_sum = self._loss_sum.to(loss.device) + loss.detach().double() * images.shape[0]
        self._loss_count += images.shape[0]
        return loss

    def deep_supervision_loss(self, masks: torch.Tensor) -> torch.Tensor | float:
        """The loss of the auxiliary logits a model with ``deep_supervision`` left behind.

        ``model.aux_outputs`` lists them deepest first, each at its own resolution over the
        model's padded input (``model.aux_extent``); the stage next to the output weighs
        0.5, the one below 0.25, and so on. 0 when there are none. ``loss.aux_resolution``
        says where each is scored: upsampled to the mask, or at its own resolution against
        the mask pooled over its cells (where the cells divide the padded input evenly).
        """
        aux = getattr(self.model, "aux_outputs", None) or []
        extent = getattr(self.model, "aux_extent", None) or masks.shape[-2:]
        return sum(
            0.5**k * self._aux_loss(logits, masks, extent)
            for k, logits in enumerate(reversed(aux), 1)
        )

    def _aux_loss(
        self, logits: torch.Tensor, masks: torch.Tensor, extent: tuple[int, int]
    ) -> torch.Tensor:
        """One auxiliary output's loss, where ``loss.aux_resolution`` says to score it."""
        if self.cfg.loss.aux_resolution == "native" and cells_divide(extent, logits.shape[-2:]):
            cfg = self.cfg
            target = pool_target(
                masks, logits.shape[-2:], cfg.model.num_classes, cfg.data.ignore_index, extent
            )
            return self.loss_fn(logits, target)
        height, width = masks.shape[-2:]
        return self.loss_fn(upsample_to(logits, extent)[..., :height, :width], masks)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        images, masks = batch
        logits = self(images)
        loss = self.loss_fn(logits, masks)
        self.log("val_loss", loss, on_epoch=True, batch_size=images.shape[0], sync_dist=True)
        self.val_metrics.update(predict_labels(logits, self.cfg.eval.threshold), masks)

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.val_metrics.reset()
        if not values:
            return
        self.last_val = values
        for name, value in values.items():
            if name != "constant_prediction":
                self.log(f"val_{name}", _finite(value), prog_bar=name == "iou", sync_dist=False)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.model, self.cfg)
        return {"optimizer": optimizer, "lr_scheduler": build_scheduler(optimizer, self.cfg)}

    def on_train_epoch_end(self) -> None:
        loss = self.epoch_train_loss()
        if loss is not None:
            self.log("train_loss", loss, on_step=False, on_epoch=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["seglab_rng"] = capture_rng()
        checkpoint["seglab_augmented_batches"] = self._augmented
        checkpoint["seglab_train_loss"] = {
            "epoch": self._loss_epoch,
            "sum": self._loss_sum.detach().cpu(),
            "count": self._loss_count,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "seglab_rng" in checkpoint:
            restore_rng(checkpoint["seglab_rng"])
        self._augmented = int(checkpoint.get("seglab_augmented_batches", 0))
        if "seglab_train_loss" in checkpoint:
            state = checkpoint["seglab_train_loss"]
            self._loss_epoch, self._loss_count = int(state["epoch"]), int(state["count"])
            self._loss_sum = state["sum"].to(torch.float64)


def predict_labels(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Class map from logits: threshold the foreground probability, or argmax."""
    if logits.shape[1] == 1:
        return (torch.sigmoid(logits[:, 0]) > threshold).long()
    return probabilities(logits).argmax(dim=1)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
